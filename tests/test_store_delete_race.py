"""Delete and prune racing promotes of the same versions never leave an alias on a deleted version.

Issue 22: on the local store (threads, and processes) and on the object store (processes against a real
S3-protocol server, moto on 127.0.0.1). Round ``v`` pits ``promote(v, "a<v>")`` against
``delete_version(v)`` (or a ``prune``), started together through a file barrier. Each alias is promoted
once, so nothing moves it afterwards: exactly one of the two must win each round, and every alias that
exists must point at a version the store still holds.
"""

import json
import os
import subprocess
import sys
import textwrap
import threading
import uuid

import numpy as np
import pytest

from ml_toolbox.store import AliasedVersionError, PipelinePersistence, VersionNotFoundError

ROUNDS = 12

_WORKER = textwrap.dedent("""
    import json, os, sys, time
    from ml_toolbox.store import AliasedVersionError, PipelinePersistence, VersionNotFoundError

    location, options, role, rounds, barrier = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
    store = PipelinePersistence(location, **({"storage_options": options, "cache_dir": False} if options else {}))
    other = "delete" if role == "promote" else "promote"
    won = []
    for v in range(1, rounds + 1):
        open(os.path.join(barrier, f"{role}-{v}"), "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(barrier, f"{other}-{v}")) and time.monotonic() < deadline:
            time.sleep(0.0005)
        try:
            if role == "promote":
                store.promote("m", v, f"a{v}")
            elif v % 2:
                store.delete_version("m", v)
            elif store.prune("m", keep_last=rounds - v) != [("m", v)]:
                continue  # the promote won: prune skipped the version
        except (AliasedVersionError, VersionNotFoundError):
            continue
        won.append(v)
    print(json.dumps(won))
""")


def _fill(store, rounds=ROUNDS):
    obj = {"w": np.arange(4.0)}
    for _ in range(rounds):
        store.save(obj, "m", metrics={"accuracy": 0.9})


def _check(store, promoted, deleted, rounds=ROUNDS):
    assert not set(promoted) & set(deleted), "a version both promoted and deleted"
    assert sorted(promoted + deleted) == list(range(1, rounds + 1)), "a round where neither won"
    aliases = store.aliases("m")
    existing = set(store.list_versions("m"))
    assert {a: v for a, v in aliases.items() if v not in existing} == {}
    assert sorted(aliases.values()) == sorted(promoted)
    assert existing == set(promoted)
    for alias in aliases:
        assert store.load("m", alias)["w"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert all(problem is None for _, _, problem in store.verify("m"))


def _race_in_processes(location, options, tmp_path, rounds=ROUNDS):
    script = tmp_path / "race.py"
    script.write_text(_WORKER)
    barrier = tmp_path / f"barrier-{uuid.uuid4().hex[:6]}"
    barrier.mkdir()
    processes = {role: subprocess.Popen([sys.executable, str(script), location, json.dumps(options), role,
                                         str(rounds), str(barrier)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for role in ("promote", "delete")}
    won = {}
    for role, process in processes.items():
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
        won[role] = json.loads(out.strip().splitlines()[-1])
    return won["promote"], won["delete"]


def test_local_threads_racing_promote_and_delete(tmp_path):
    store = PipelinePersistence(tmp_path / "store")
    _fill(store)
    promoted, deleted = [], []
    for v in range(1, ROUNDS + 1):
        barrier = threading.Barrier(2)

        def promote(v=v, barrier=barrier):
            barrier.wait()
            try:
                promoted.append(store.promote("m", v, f"a{v}"))
            except VersionNotFoundError:
                pass

        def delete(v=v, barrier=barrier):
            other = PipelinePersistence(tmp_path / "store")  # another store object, as another user would
            barrier.wait()
            try:
                if v % 2:
                    deleted.append(other.delete_version("m", v))
                else:
                    deleted.extend(n for _, n in other.prune("m", keep_last=ROUNDS - v))
            except AliasedVersionError:
                pass

        threads = [threading.Thread(target=promote), threading.Thread(target=delete)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    _check(store, promoted, deleted)


def test_local_processes_racing_promote_and_delete(tmp_path):
    location = str(tmp_path / "store")
    store = PipelinePersistence(location)
    _fill(store)
    promoted, deleted = _race_in_processes(location, None, tmp_path)
    _check(store, promoted, deleted)


def test_a_deleted_mark_refuses_a_promote_and_an_interrupted_delete_finishes(tmp_path):
    store = PipelinePersistence(tmp_path / "store")
    _fill(store, 3)
    store._mark_deleted("m", 2)  # a delete killed after its mark, before its files went
    assert store.list_versions("m") == [1, 2, 3]
    with pytest.raises(VersionNotFoundError, match="has no version 2: it was deleted"):
        store.promote("m", 2, "production")
    assert store.aliases("m") == {}
    store.promote("m", 1, "production")
    store.promote("m", 3, "production")
    assert store.rollback("m", "production") == 1  # skips the marked version
    assert store.delete_version("m", 2) == 2  # the delete finishes
    assert store.list_versions("m") == [1, 3]
    payload = json.loads((tmp_path / "store" / "m" / "aliases.json").read_text())
    assert payload["deleted"] == [2]


def test_malformed_deleted_list_is_a_store_error(tmp_path):
    from ml_toolbox.store import StoreError

    store = PipelinePersistence(tmp_path / "store")
    _fill(store, 1)
    store.promote("m", 1, "production")
    path = tmp_path / "store" / "m" / "aliases.json"
    payload = json.loads(path.read_text())
    payload["deleted"] = "all"
    path.write_text(json.dumps(payload))
    with pytest.raises(StoreError, match=r"aliases.json.* is malformed: its 'deleted' is not a list"):
        store.aliases("m")


@pytest.fixture(scope="module")
def s3_server():
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    from ml_toolbox.store import _s3server

    with _s3server.s3_server("race") as options:
        yield options


def test_object_store_processes_racing_promote_and_delete(s3_server, tmp_path):
    url = f"s3://race/{uuid.uuid4().hex[:12]}"
    store = PipelinePersistence(url, storage_options=s3_server, cache_dir=False)
    _fill(store)
    promoted, deleted = _race_in_processes(url, s3_server, tmp_path)
    _check(store, promoted, deleted)
