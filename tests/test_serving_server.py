"""Reliability of ``ml-toolbox serve`` on a real uvicorn server on 127.0.0.1, started and stopped by
each test, with bounded request loops: alias moves under load, SIGTERM draining, and a challenger that
raises on every request (shadow and canary), rolled back by the policy."""

import contextlib
import json
import math
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
from sklearn.dummy import DummyClassifier

from _serving_models import Raising, Slow
from ml_toolbox import PipelinePersistence
from ml_toolbox.cli import main
from ml_toolbox.serving import evidence_of

pytestmark = pytest.mark.slow

TESTS = pathlib.Path(__file__).resolve().parent
X = np.array([[0.0], [1.0], [2.0], [3.0]])
Y = np.array([1, 2, 3, 1])
BODY = {"instances": [[0.5]]}


def _constant(k):
    """A model that answers its own version number: the answer proves which version answered."""
    return DummyClassifier(strategy="constant", constant=k).fit(X, Y)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server(store, *args, name="churn"):
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "ml_toolbox.cli", "--store", str(store.path), "serve",
                             "--name", name, "--port", str(port), "--poll-interval", "0.05", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start: {proc.communicate(timeout=5)[1].decode()[-2000:]}")
            time.sleep(0.1)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def _wait_for(check, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_twenty_alias_moves_under_load(tmp_path):
    store = PipelinePersistence(tmp_path / "models")
    for k in (1, 2, 3):
        store.save(_constant(k), "churn")
    store.promote("churn", 1, "production")
    results, stop = [], threading.Event()

    def client(url):
        with httpx.Client(base_url=url, timeout=30) as c:
            while not stop.is_set() and len(results) < 50_000:
                start = time.monotonic()
                r = c.post("/predict", json=BODY)
                results.append((start, time.monotonic(), r.status_code, r.json()))

    with server(store) as (url, _):
        clients = [threading.Thread(target=client, args=(url,)) for _ in range(2)]
        for t in clients:
            t.start()
        moves = [(-math.inf, 1, time.monotonic())]  # (moved at, version, seen serving at)
        with httpx.Client(base_url=url, timeout=30) as watcher:
            for i in range(20):
                target = (moves[-1][1] % 3) + 1
                moved = time.monotonic()
                store.promote("churn", target, "production", reason=f"move {i}")
                _wait_for(lambda: watcher.get("/health").json()["version"] == target, what=f"version {target}")
                moves.append((moved, target, time.monotonic()))
                time.sleep(0.05)
        stop.set()
        for t in clients:
            t.join(60)
    assert len(results) >= 100, len(results)
    assert all(status == 200 for _, _, status, _ in results), [r for r in results if r[2] != 200][:3]
    for start, end, _, body in results:
        version = body["version"]
        assert body["predictions"] == [version]  # the version named is the version that answered
        # it held the alias at some moment of the request, give or take the router's lag in seeing a move
        windows = [(moved, moves[i + 1][2] if i + 1 < len(moves) else math.inf)
                   for i, (moved, v, _) in enumerate(moves) if v == version]
        assert any(end >= lo and start <= hi for lo, hi in windows), (start, end, version)
    assert {body["version"] for *_, body in results} == {1, 2, 3}


def test_sigterm_drains_in_flight_requests(tmp_path):
    store = PipelinePersistence(tmp_path / "models")
    store.save(Slow(delay=1.0).fit(X, Y), "churn")
    store.promote("churn", 1, "production")
    with server(store) as (url, proc):
        for _ in range(3):  # (three slow answers in a row move the predictions off the event loop)
            httpx.post(url + "/predict", json=BODY, timeout=30)
        answers = []
        clients = [httpx.Client(base_url=url, timeout=60) for _ in range(3)]

        def ask(c):
            answers.append(c.post("/predict", json=BODY))

        askers = [threading.Thread(target=ask, args=(c,)) for c in clients]
        for t in askers:
            t.start()
        _wait_for(lambda: httpx.get(url + "/health").json()["in_flight"] == 3, what="three requests in flight")
        proc.send_signal(signal.SIGTERM)
        for t in askers:
            t.join(60)
        for c in clients:
            c.close()
        # uvicorn drains, then re-raises the signal it caught (so a supervisor sees it), hence -SIGTERM
        assert proc.wait(30) in (0, -signal.SIGTERM)
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all(a.json()["predictions"] == [1] for a in answers)
    with pytest.raises(httpx.TransportError):
        httpx.post(url + "/predict", json=BODY, timeout=5)


def _rollback_store(tmp_path):
    store = PipelinePersistence(tmp_path / "models")
    store.save(_constant(1), "churn")
    store.save(Raising().fit(X, Y), "churn")
    store.promote("churn", 1, "production")
    store.promote("churn", 2, "challenger")
    return store


def test_raising_challenger_in_shadow_costs_nothing_and_is_rolled_back(tmp_path, monkeypatch, capsys):
    store = _rollback_store(tmp_path)
    monkeypatch.setenv("ML_TOOLBOX_RUNS", str(tmp_path / "runs"))  # the rollout is recorded as a run
    with server(store, "--shadow", "challenger", "--rollback-rule", "error_rate<=0.01",
                "--min-requests", "50") as (url, _):
        with httpx.Client(base_url=url, timeout=30) as c:
            answers = [c.post("/predict", json=BODY) for _ in range(200)]
            _wait_for(lambda: c.get("/rollout").json()["decisions"], what="the rollback")
            status = c.get("/rollout").json()
    assert all(a.status_code == 200 and a.json()["version"] == 1 for a in answers)
    event = store.history("churn", "challenger")[-1]
    assert event["reason"].startswith("rollout rollback of version 2")
    evidence = evidence_of(event)
    assert evidence["challenger"]["error_rate"] == 1.0 and evidence["challenger"]["requests"] >= 50
    assert store.aliases("churn")["challenger"] == 1
    assert status["decisions"][-1]["action"] == "rollback" and status["decisions"][-1]["done"]
    capsys.readouterr()
    assert main(["runs", "list", "--kind", "rollout", "--json"]) == 0
    [run] = json.loads(capsys.readouterr().out)
    assert run["name"] == "churn" and run["status"] == "success" and run["tags"]["decision"] == "rollback"
    assert f"(run {run['id']})" in event["reason"] and status["decisions"][-1]["run_id"] == run["id"]
    assert main(["runs", "show", run["id"][:10], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    assert shown["metrics"]["challenger.error_rate"] == 1.0 and shown["metrics"]["challenger.requests"] >= 50
    assert shown["metrics"]["champion.errors"] == 0 and shown["params"]["mode"] == "shadow"


def test_raising_challenger_in_canary_costs_at_most_its_share(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    store = _rollback_store(tmp_path)
    with server(store, "--canary", "challenger", "--percent", "20", "--rollback-rule", "error_rate<=0.01",
                "--promote-rule", "agreement>=0.99", "--min-requests", "40") as (url, _):
        with httpx.Client(base_url=url, timeout=30) as c:
            before = []
            for i in range(3000):
                before.append(c.post("/predict", json=BODY, headers={"X-Request-Key": f"user-{i}"}))
                if store.aliases("churn")["challenger"] == 1:
                    break
            code = main(["--store", str(store.path), "rollout", "status", "churn", "--url", url])
            out = capsys.readouterr().out
            time.sleep(0.3)  # the router sees the rollback (poll interval 0.05 s)
            after = [c.post("/predict", json=BODY, headers={"X-Request-Key": f"user-{i}"}) for i in range(200)]
    failed = [r for r in before if r.status_code != 200]
    assert failed and all(r.status_code == 500 and r.json()["error"] == "RuntimeError" for r in failed)
    assert len(failed) / len(before) <= 0.2 + 4 * math.sqrt(0.2 * 0.8 / len(before))  # its share, no more
    assert all(r.status_code == 200 and r.json()["version"] == 1 for r in after)
    print(out)
    assert code == 0 and "rollout rollback of version 2" in out and "error_rate" in out and "champion" in out


def test_workers_serve_and_stop(tmp_path):
    store = PipelinePersistence(tmp_path / "models")
    store.save(_constant(2), "churn")
    store.promote("churn", 1, "production")
    with server(store, "--workers", "2") as (url, proc):
        with httpx.Client(base_url=url, timeout=30) as c:
            answers = [c.post("/predict", json=BODY).json() for _ in range(20)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) in (0, -signal.SIGTERM)
    assert all(a["predictions"] == [2] and a["version"] == 1 for a in answers)
