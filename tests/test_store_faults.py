"""Faults on object storage, against a real S3-protocol server (moto's, its own process on 127.0.0.1).

The clients under test reach the server through a TCP proxy (tests/_tcpproxy.py) that the tests use to
cut one chosen request at a chosen point: half its body sent, or the server's answer thrown away. A
writer process is SIGKILLed there (issue 22: "a writer killed mid-upload leaves no visible version"),
or the proxy stops there, so the server looks down to the client while its state survives, and starts
again on the same port ("the server stopped mid-operation gives a clean StoreError and a consistent
store after restart"). Checks are made by other store objects talking to the server directly.
"""

import copy
import json
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import numpy as np
import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

from sklearn.linear_model import LogisticRegression  # noqa: E402

from ml_toolbox.store import PipelinePersistence, StoreError  # noqa: E402
from ml_toolbox.store import _s3server  # noqa: E402

from _tcpproxy import TCPProxy  # noqa: E402

BUCKET = "models"
KEY = "k" * 32


@pytest.fixture(scope="module")
def server():
    with _s3server.s3_server(BUCKET) as options:
        yield options


@pytest.fixture
def proxy(server):
    port = int(server["client_kwargs"]["endpoint_url"].rsplit(":", 1)[1])
    with TCPProxy(port) as p:
        yield p


@pytest.fixture
def url():
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}"


def _through(options, proxy):
    """``options`` pointed at the proxy, with the client libraries' own retries off (tenacity's stay)."""
    options = copy.deepcopy(options)
    options["client_kwargs"]["endpoint_url"] = proxy.endpoint
    options["config_kwargs"] = {"connect_timeout": 1, "read_timeout": 10, "retries": {"total_max_attempts": 1}}
    return options


def _request(url, what):
    """The regex of the request line that writes ``what`` (a key under the store) at ``url``."""
    prefix = url.split("/", 3)[3]
    return rf"^PUT /{BUCKET}/{prefix}/{what}".encode()


def _model(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, 3))
    return LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), X


def _consistent(store, name):
    """Every listed version verifies and loads, and the alias history checks out (signed chain)."""
    assert all(problem is None for _, _, problem in store.verify(name)), store.verify(name)
    for number in store.list_versions(name):
        store.load(name, number)
    history = store.history(name)
    for alias, target in store.aliases(name).items():
        assert target in store.list_versions(name)
        assert [e["to"] for e in history if e["alias"] == alias][-1] == target
    return history


# ---------------------------------------------------------------------- a writer killed mid-upload
_WRITER = textwrap.dedent("""
    import json, sys
    import numpy as np
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from ml_toolbox.store import PipelinePersistence

    url, options = sys.argv[1], json.loads(sys.argv[2])
    X = np.random.default_rng(0).normal(size=(12000, 16))
    pipe = make_pipeline(StandardScaler(), KNeighborsClassifier()).fit(X, (X[:, 0] > 0).astype(int))
    store = PipelinePersistence(url, storage_options=options, cache_dir=False, signing_key=sys.argv[3])
    store.save(pipe, "churn", message="the writer that is killed")
    print("saved", flush=True)
""")


@pytest.mark.parametrize("point", ["artifact-body", "manifest-body", "manifest-answer"])
def test_writer_killed_mid_upload_leaves_no_visible_version(server, proxy, url, tmp_path, point):
    store = PipelinePersistence(url, storage_options=server, cache_dir=False, signing_key=KEY)
    model, X = _model()
    assert store.save(model, "churn") == 1
    store.promote("churn", 1, "production")
    what = r"churn/objects/" if point == "artifact-body" else r"churn/v\d+/manifest\.json"
    proxy.trip(_request(url, what), at="response" if point == "manifest-answer" else "body", then="hold")
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    writer = subprocess.Popen([sys.executable, str(script), url, json.dumps(_through(server, proxy)), KEY],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not proxy.tripped.wait(0.2) and writer.poll() is None and time.monotonic() < deadline:
            pass
        tripped = proxy.tripped.is_set()
    finally:
        writer.send_signal(signal.SIGKILL)
        out, err = writer.communicate(timeout=60)
    assert tripped, f"the writer never reached the {point}: {err[-2000:]}"
    assert "saved" not in out and writer.returncode == -signal.SIGKILL, (out, proxy.requests)

    reader = PipelinePersistence(url, storage_options=server, cache_dir=False, signing_key=KEY)
    # the manifest's answer lost: the version was created whole before the kill; otherwise nothing shows
    expected = [1, 2] if point == "manifest-answer" else [1]
    assert reader.list_versions("churn") == expected, proxy.requests
    _consistent(reader, "churn")
    np.testing.assert_array_equal(reader.load("churn", "production").predict(X), model.predict(X))
    if point == "manifest-answer":
        assert reader.manifest("churn", 2)["message"] == "the writer that is killed"
    # an artifact uploaded whole without its manifest is reported, then cleaned; a partial PUT left nothing
    orphans = reader.unreferenced("churn")
    assert len(orphans) == (1 if point == "manifest-body" else 0)
    assert reader.clean_unreferenced(older_than="1h") == []  # too recent: it could be a save in progress
    assert reader.clean_unreferenced(older_than=0, dry_run=True) == [u for _, u in orphans]
    assert reader.unreferenced("churn") == orphans
    assert reader.clean_unreferenced(older_than=0) == [u for _, u in orphans]
    assert reader.unreferenced() == []
    # the next save takes the next number; everything still verifies and loads
    assert reader.save(model, "churn") == expected[-1] + 1
    _consistent(reader, "churn")


# ------------------------------------------------------------------ the server stopped mid-operation
def _operation(store, op):
    model, _ = _model(1)
    if op == "save":
        return store.save(model, "churn", message="during the outage")
    return store.promote("churn", 2, "production", reason="during the outage")


@pytest.mark.parametrize("op", ["save", "promote"])
@pytest.mark.parametrize("at", ["body", "response"])
@pytest.mark.parametrize("comes_back", [True, False], ids=["back-in-time", "down-too-long"])
def test_server_stopped_mid_operation(server, proxy, url, op, at, comes_back):
    direct = PipelinePersistence(url, storage_options=server, cache_dir=False, signing_key=KEY)
    model, _ = _model()
    direct.save(model, "churn")
    direct.save(model, "churn")
    direct.promote("churn", 1, "production")
    before = (direct.list_versions("churn"), len(direct.history("churn")))
    client = PipelinePersistence(url, storage_options=_through(server, proxy), cache_dir=False, signing_key=KEY,
                                 retries=50, retry_timeout=6.0 if comes_back else 1.5)
    client.aliases("churn")  # open connections through the proxy before the fault
    what = r"churn/v\d+/manifest\.json" if op == "save" else r"churn/aliases\.json"
    proxy.trip(_request(url, what), at=at, then="down")
    restarted = threading.Event()

    def restart():
        if proxy.tripped.wait(60):
            threading.Event().wait(0.5)  # down for half a second, well within the retry budget
            proxy.start()
            restarted.set()

    if comes_back:
        thread = threading.Thread(target=restart, daemon=True)
        thread.start()
        result = _operation(client, op)  # retried through the outage: done exactly once
        thread.join(60)
        assert restarted.is_set()
        after = direct.list_versions("churn")
        if op == "save":
            assert result == 3 and after == [1, 2, 3]
        else:
            assert result == 2 and direct.aliases("churn") == {"production": 2}
            assert len(direct.history("churn")) == before[1] + 1  # one entry, not two
    else:
        operation = "create" if op == "save" else "replace"
        key = "churn/v000003/manifest.json" if op == "save" else "churn/aliases.json"
        with pytest.raises(StoreError, match=rf"Cannot {operation} '{re.escape(url)}/{re.escape(key)}'.*after \d+ "
                                             r"attempts? in [\d.]+ s"):
            _operation(client, op)
        assert proxy.tripped.is_set()
        proxy.start()  # the server comes back with what it had: the operation happened whole, or not at all
        happened = at == "response"  # the server applied the request and only its answer was lost
        if op == "save":
            assert client.list_versions("churn") == ([1, 2, 3] if happened else [1, 2])
        else:
            assert client.aliases("churn") == {"production": 2 if happened else 1}
            assert len(client.history("churn")) == before[1] + happened
        number = client.save(model, "churn")  # and the store takes writes again, numbered right
        assert number == max(client.list_versions("churn")[:-1]) + 1
    _consistent(direct, "churn")
    _consistent(client, "churn")
