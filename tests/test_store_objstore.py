"""The store on object storage, against a real S3-protocol server (moto's server mode) on 127.0.0.1.

The server runs in its own process (ml_toolbox/store/_s3server.py), started here and stopped at the
end; the store reaches it through s3fs, as it would reach S3. Nothing is mocked in the client.
"""

import json
import os
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

from sklearn.linear_model import LogisticRegression  # noqa: E402

from ml_toolbox.store import (  # noqa: E402
    GateError,
    IntegrityError,
    PipelinePersistence,
    SignatureError,
    StoreError,
)
from ml_toolbox.store import _s3server  # noqa: E402
from ml_toolbox.store._remote import ObjectStorePersistence  # noqa: E402
from ml_toolbox.store.objstore import FsspecBackend, _transient, is_url  # noqa: E402

BUCKET = "models"


@pytest.fixture(scope="module")
def s3_server():
    with _s3server.s3_server(BUCKET) as options:
        yield options


@pytest.fixture
def url():
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}"


def _raw(options):
    import s3fs

    return s3fs.S3FileSystem(**options, skip_instance_cache=True)


def _model(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, 3))
    return LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), X


def test_url_opens_the_object_store(s3_server, url, tmp_path):
    store = PipelinePersistence(url, storage_options=s3_server, cache_dir=tmp_path)
    assert isinstance(store, ObjectStorePersistence)
    assert store.path == url and url in repr(store)
    assert is_url(url) and not is_url(str(tmp_path)) and not is_url(f"file://{tmp_path}")
    assert _raw(s3_server).exists(f"{url}/ml_toolbox_store.json")
    assert PipelinePersistence.from_location(url, storage_options=s3_server).names() == []


def test_save_load_promote_rollback_round_trip(s3_server, url, tmp_path):
    store = PipelinePersistence(url, storage_options=s3_server, cache_dir=tmp_path / "cache")
    model, X = _model()
    assert store.save(model, "churn", metrics={"accuracy": 0.91}, message="first") == 1
    assert store.save(model, "churn", metrics={"accuracy": 0.95}) == 2
    assert store.save_config("settings", {"threshold": 0.5}) == 1
    assert store.names() == ["churn", "settings"]
    assert store.list_versions("churn") == [1, 2]
    assert store.manifest("churn", 2)["parent"] == 1
    np.testing.assert_array_equal(store.load("churn", 1).predict(X), model.predict(X))
    assert store.load_config("settings") == {"threshold": 0.5}
    assert store.promote("churn", 1, "production", gates={"accuracy": ">=0.9"}) == 1
    with pytest.raises(GateError, match="accuracy"):
        store.promote("churn", 2, "production", gates={"accuracy": ">=0.99"})
    assert store.promote("churn", 2, "production", gates=["accuracy>=current"]) == 2
    assert store.aliases("churn") == {"production": 2}
    np.testing.assert_array_equal(store.load("churn", "production").predict(X), model.predict(X))
    assert store.rollback("churn", "production", reason="regression") == 1
    assert store.aliases("churn") == {"production": 1}
    assert [e["action"] for e in store.history("churn")] == ["promote", "promote", "rollback"]
    assert all(problem is None for _, _, problem in store.verify())
    # another store object (another machine) sees the same registry
    other = PipelinePersistence(url, storage_options=s3_server, cache_dir=False)
    assert other.aliases("churn") == {"production": 1}
    np.testing.assert_array_equal(other.load("churn", "production").predict(X), model.predict(X))
    # a deleted version's number is never reused
    store.delete_version("churn", 2)
    assert store.list_versions("churn") == [1]
    assert store.save(model, "churn") == 3


def test_signed_store_refuses_tampered_manifest_and_aliases(s3_server, url, tmp_path):
    store = PipelinePersistence(url, storage_options=s3_server, cache_dir=False, signing_key="k" * 32)
    model, _ = _model()
    store.save(model, "churn", metrics={"accuracy": 0.8})
    store.promote("churn", 1, "production")
    raw = _raw(s3_server)
    manifest = json.loads(raw.cat_file(f"{url}/churn/v000001/manifest.json"))
    manifest["metrics"]["accuracy"] = 0.99
    raw.pipe_file(f"{url}/churn/v000001/manifest.json", json.dumps(manifest).encode())
    with pytest.raises(SignatureError, match="does not match"):
        store.load("churn", 1)
    aliases = json.loads(raw.cat_file(f"{url}/churn/aliases.json"))
    aliases["history"][0]["to"] = 7
    raw.pipe_file(f"{url}/churn/aliases.json", json.dumps(aliases).encode())
    with pytest.raises(SignatureError):
        store.aliases("churn")


def test_tampered_or_truncated_artifact_is_refused(s3_server, url, tmp_path):
    store = PipelinePersistence(url, storage_options=s3_server, cache_dir=tmp_path / "cache")
    model, X = _model()
    store.save(model, "churn")
    fresh = PipelinePersistence(url, storage_options=s3_server, cache_dir=False)
    raw = _raw(s3_server)
    key = f"{url}/churn/{store.manifest('churn', 1)['location']}/artifact.joblib"
    data = raw.cat_file(key)
    raw.pipe_file(key, data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(IntegrityError, match="blake3"):
        fresh.load("churn", 1)
    raw.pipe_file(key, data[:-10])
    with pytest.raises(IntegrityError, match="truncated"):
        fresh.load("churn", 1)
    assert fresh.verify("churn")[0][2] is not None
    # the cache holds the verified bytes saved: the cached copy loads (verified again), and a damaged
    # cache entry is dropped and the object downloaded (and refused here, since it is damaged too)
    np.testing.assert_array_equal(store.load("churn", 1).predict(X), model.predict(X))
    cached = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path / "cache") for f in fs]
    assert len(cached) == 1
    with open(cached[0], "r+b") as f:
        f.write(b"\0")
    with pytest.raises(IntegrityError):
        store.load("churn", 1)
    raw.pipe_file(key, data)
    np.testing.assert_array_equal(store.load("churn", 1).predict(X), model.predict(X))


def test_cached_load_needs_no_download(s3_server, url, tmp_path):
    store = PipelinePersistence(url, storage_options=s3_server, cache_dir=tmp_path / "cache")
    model, X = _model()
    store.save(model, "churn")
    fresh = PipelinePersistence(url, storage_options=s3_server, cache_dir=tmp_path / "cache")
    _raw(s3_server).rm(f"{url}/churn/objects", recursive=True)  # only the cache has the bytes now
    np.testing.assert_array_equal(fresh.load("churn").predict(X), model.predict(X))


def test_manifest_ttl_makes_a_second_load_by_number_request_free(s3_server, url, tmp_path, monkeypatch):
    """With a cache and manifest_ttl, a second load by number asks the server nothing; by alias or the
    latest it still asks (aliases move); past the ttl, or by default, the manifest is read again, so a
    version deleted elsewhere is refused; a tampered cached manifest is still refused with a key."""
    from ml_toolbox.store import VersionNotFoundError
    from ml_toolbox.store.objstore import FsspecBackend

    key = "k" * 32
    writer = PipelinePersistence(url, storage_options=s3_server, cache_dir=False, signing_key=key)
    model, X = _model()
    writer.save(model, "churn")
    writer.promote("churn", 1, "production")
    clock = [1000.0]
    monkeypatch.setattr("ml_toolbox.store._remote._now", lambda: clock[0])
    reader = PipelinePersistence(url, storage_options=s3_server, cache_dir=tmp_path / "cache", signing_key=key,
                                 manifest_ttl=60)
    default = PipelinePersistence(url, storage_options=s3_server, cache_dir=tmp_path / "cache", signing_key=key)
    reader.load("churn", 1), default.load("churn", 1)
    requests = []
    for method in ("read", "list"):
        original = getattr(FsspecBackend, method)
        monkeypatch.setattr(FsspecBackend, method,
                            lambda self, k="", _o=original, _m=method: requests.append((_m, k)) or _o(self, k))
    np.testing.assert_array_equal(reader.load("churn", 1).predict(X), model.predict(X))
    reader.load("churn", "1")
    assert requests == []
    reader.load("churn", "production")
    reader.load("churn")
    assert [m for m, _ in requests] == ["read", "read", "list", "read"]  # aliases + manifest, listing + manifest
    requests.clear()
    default.load("churn", 1)
    assert requests == [("read", "churn/v000001/manifest.json")]
    writer.save(model, "churn")
    writer.promote("churn", 2, "production")
    writer.delete_version("churn", 1)
    reader.load("churn", 1)  # within the ttl: from memory (what the option says)
    clock[0] += 61
    with pytest.raises(VersionNotFoundError):
        reader.load("churn", 1)
    with pytest.raises(VersionNotFoundError):
        default.load("churn", 1)
    reader.load("churn", 2)
    data, stamp = reader._manifests[("churn", 2)]
    tampered = json.loads(data)
    tampered["metrics"] = {"accuracy": 1.0}
    reader._manifests[("churn", 2)] = (json.dumps(tampered).encode(), stamp)
    with pytest.raises(SignatureError):
        reader.load("churn", 2)
    with pytest.raises(ValueError, match="manifest_ttl"):
        PipelinePersistence(url, storage_options=s3_server, manifest_ttl=-1)


_WORKER = textwrap.dedent("""
    import json, sys
    from sklearn.dummy import DummyClassifier
    from ml_toolbox.store import PipelinePersistence

    url, options, worker, count = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    store = PipelinePersistence(url, storage_options=options, cache_dir=False)
    model = DummyClassifier().fit([[0], [1]], [0, 1])
    saved = []
    for i in range(count):
        number = store.save(model, "churn", metrics={"worker": worker, "i": i})
        store.promote("churn", number, "production", reason=f"worker {worker}")
        saved.append(number)
    print(json.dumps(saved))
""")


def test_four_processes_saving_and_promoting_lose_and_duplicate_nothing(s3_server, url, tmp_path):
    PipelinePersistence(url, storage_options=s3_server)  # create the store once
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    count = 3
    workers = [subprocess.Popen([sys.executable, str(script), url, json.dumps(s3_server), str(w), str(count)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(4)]
    results = []
    for process in workers:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    numbers = [n for saved in results for n in saved]
    assert sorted(numbers) == list(range(1, 4 * count + 1))  # no number taken twice, none lost
    store = PipelinePersistence(url, storage_options=s3_server, cache_dir=False)
    assert store.list_versions("churn") == sorted(numbers)
    history = store.history("churn", "production")
    assert sorted(e["to"] for e in history) == sorted(numbers)  # every promote recorded, none lost
    payload = json.loads(_raw(s3_server).cat_file(f"{url}/churn/aliases.json"))
    assert payload["aliases"]["production"]["stack"] == [e["to"] for e in history]
    for saved in results:  # each worker's own promotes appear in its order
        order = [e["to"] for e in history if e["to"] in saved]
        assert order == saved
    assert all(problem is None for _, _, problem in store.verify("churn"))


def test_no_conditional_writes_needs_a_declared_single_writer(tmp_path):
    url = f"memory://ml-toolbox-{uuid.uuid4().hex[:8]}/store"
    with pytest.raises(StoreError, match="single_writer=True"):
        PipelinePersistence(url)
    store = PipelinePersistence(url, single_writer=True, cache_dir=False)
    model, X = _model()
    assert store.save(model, "churn") == 1
    store.promote("churn", 1, "production")
    np.testing.assert_array_equal(store.load("churn", "production").predict(X), model.predict(X))
    with pytest.warns(UserWarning, match="read-only"):
        reader = PipelinePersistence(url, cache_dir=False)
    assert reader.aliases("churn") == {"production": 1}
    with pytest.raises(StoreError, match="single_writer"):
        reader.save(model, "churn")
    assert store.list_versions("churn") == [1]


def test_not_a_store_prefix_is_refused(s3_server, url):
    _raw(s3_server).pipe_file(f"{url}/data.csv", b"a,b\n")
    with pytest.raises(StoreError, match="not an ml_toolbox store"):
        PipelinePersistence(url, storage_options=s3_server)
    assert _raw(s3_server).cat_file(f"{url}/data.csv") == b"a,b\n"  # untouched


def test_unreachable_server_is_a_store_error_naming_url_and_operation():
    options = {"key": "testing", "secret": "testing",
               "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{_s3server.free_port()}", "region_name": "us-east-1"},
               "config_kwargs": {"connect_timeout": 0.2, "retries": {"total_max_attempts": 1}}}
    with pytest.raises(StoreError, match=r"Cannot read 's3://models/nowhere/ml_toolbox_store.json': "
                                         r"\w*Connect\w*Error.*after 2 attempts"):
        PipelinePersistence("s3://models/nowhere", storage_options=options, retries=2, retry_timeout=30)


@settings(max_examples=25, deadline=None)
@given(failures=st.integers(0, 6), kind=st.sampled_from([ConnectionError, TimeoutError, KeyError]))
def test_transient_errors_are_retried_then_reported(failures, kind):
    backend = FsspecBackend(f"memory://ml-toolbox-retry-{uuid.uuid4().hex[:8]}", single_writer=True, retries=4)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) <= failures:
            raise kind("boom")
        return "ok"

    import tenacity

    backend.wait = tenacity.wait_none()  # the back-off, not what is tested here
    if True:
        if kind is KeyError and failures:  # not transient: reported at once, naming URL and operation
            with pytest.raises(StoreError, match=r"Cannot list 'memory://.*/k'.*KeyError"):
                backend._run("list", "k", flaky)
            assert len(calls) == 1
        elif failures >= 4:
            with pytest.raises(StoreError, match=r"after 4 attempts"):
                backend._run("list", "k", flaky)
            assert len(calls) == 4
        else:
            assert backend._run("list", "k", flaky) == "ok"
            assert len(calls) == failures + 1
    assert _transient(ConnectionError()) and not _transient(FileNotFoundError())


def test_cli_takes_a_url(s3_server, url, monkeypatch):
    import io

    from rich.console import Console

    from ml_toolbox import cli

    store = PipelinePersistence(url, storage_options=s3_server, cache_dir=False)
    model, _ = _model()
    store.save(model, "churn", metrics={"accuracy": 0.9})
    monkeypatch.setenv("ML_TOOLBOX_STORAGE_OPTIONS", json.dumps(s3_server))
    out, err = Console(file=io.StringIO(), width=200), Console(file=io.StringIO(), width=200)
    assert cli.main(["--store", url, "promote", "churn", "1", "production"], console=out, error_console=err) == 0
    assert cli.main(["--store", url, "--json", "list", "churn"], console=out, error_console=err) == 0
    assert "production" in out.file.getvalue()
    assert store.aliases("churn") == {"production": 1}
    assert cli.main(["--store", url + "-missing", "list"], console=out, error_console=err) == 1
    assert "not an ml_toolbox store" in err.file.getvalue()
    monkeypatch.setenv("ML_TOOLBOX_STORAGE_OPTIONS", "{not json")
    assert cli.main(["--store", url, "list"], console=out, error_console=err) == 2
    assert "ML_TOOLBOX_STORAGE_OPTIONS" in err.file.getvalue()


@pytest.mark.parametrize("option, value", [("retries", 0), ("retries", True), ("retries", 2.5), ("retry_timeout", 0),
                                           ("retry_timeout", -1.0), ("retry_timeout", "10s")])
def test_bad_retry_budget_is_refused_naming_the_parameter(option, value):
    with pytest.raises(ValueError, match=rf"{option}={value!r}: expected"):
        PipelinePersistence(f"memory://ml-toolbox-{uuid.uuid4().hex[:8]}", single_writer=True, **{option: value})
