"""The store's operations go through its backend (issues 19 and 22).

A recording proxy stands between a store and its backend and lists the operations each store call
makes: on the local store, listing, reads, deletes and alias moves are backend calls; on object storage
(fsspec's in-memory file system, one writer declared), a cached load reads one object, its manifest.
"""

import os
import uuid

import numpy as np
import pytest

from ml_toolbox.store import LocalBackend, PipelinePersistence, StoreBackend, VersionNotFoundError

pytest.importorskip("fsspec")


class Recording(StoreBackend):
    """Forwards every operation to ``inner`` and records ``(operation, key)``."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = []

    def _call(self, operation, key, *args, **kwargs):
        self.calls.append((operation, key))
        return getattr(self.inner, operation)(key, *args, **kwargs)

    def read(self, key):
        return self._call("read", key)

    def write(self, key, data, *, durable=True):
        return self._call("write", key, data, durable=durable)

    def create(self, key, data, *, durable=True):
        return self._call("create", key, data, durable=durable)

    def compare_and_swap(self, key, data, tag, *, durable=True):
        return self._call("compare_and_swap", key, data, tag, durable=durable)

    def list(self, prefix=""):
        return self._call("list", prefix)

    def delete(self, key):
        return self._call("delete", key)

    def delete_tree(self, prefix):
        return self._call("delete_tree", prefix)

    def exists(self, key):
        return self._call("exists", key)

    def url_of(self, key):
        return self.inner.url_of(key)

    def stage(self, name, token="", *, durable=True):
        self.calls.append(("stage", name))
        return self.inner.stage(name, token, durable=durable)

    def local_path(self, key):
        return self.inner.local_path(key)

    def __getattr__(self, name):  # FsspecBackend's own attributes (conditional, single_writer...)
        return getattr(self.inner, name)


def _record(store):
    store._backend = Recording(store._backend)
    return store._backend


def _ops(recording):
    calls = list(recording.calls)
    recording.calls.clear()
    return calls


def test_local_store_lists_reads_and_deletes_through_its_backend(tmp_path):
    store = PipelinePersistence(tmp_path / "store")
    recording = _record(store)
    for _ in range(3):
        store.save({"w": np.arange(3.0)}, "m", metrics={"accuracy": 0.9})
    # the save path too: the version staged through the backend, numbered from its listing
    assert _ops(recording)[-2:] == [("stage", "m"), ("list", "m")]
    assert store.names() == ["m"]
    assert ("list", "") in _ops(recording)
    assert store.list_versions("m") == [1, 2, 3]
    assert _ops(recording) == [("list", "m")]
    store.load("m", 2)
    assert _ops(recording) == [("read", "m/v000002/manifest.json")]  # the artifact: opened in place
    store.promote("m", 3, "production")
    assert ("compare_and_swap", "m/aliases.json") in _ops(recording)
    assert store.delete_version("m", 1) == 1
    calls = _ops(recording)
    assert calls.index(("compare_and_swap", "m/aliases.json")) < calls.index(("delete_tree", "m/v000001"))
    assert ("write", "m/v000001.deleted") in calls
    assert store.prune("m", keep_last=0) == [("m", 2)]
    assert ("delete_tree", "m/v000002") in _ops(recording)
    with pytest.raises(VersionNotFoundError):
        store.load("m", 1)
    assert isinstance(recording.inner, LocalBackend)


@pytest.fixture
def memory_store(tmp_path):
    url = f"memory://ml-toolbox-{uuid.uuid4().hex[:8]}/store"
    return PipelinePersistence(url, single_writer=True, cache_dir=str(tmp_path / "cache"))


def test_cached_object_store_load_reads_only_the_manifest(memory_store):
    store = memory_store
    obj = {"w": np.arange(1000.0)}
    store.save(obj, "m")
    store.promote("m", 1, "production")
    recording = _record(store)
    assert store.load("m", 1)["w"].sum() == obj["w"].sum()  # cached by the save
    assert _ops(recording) == [("read", "m/v000001/manifest.json")]
    store.load("m", "production")
    assert [op for op, _ in _ops(recording)] == ["read", "read"]  # the alias file, the manifest
    store.load("m")
    assert _ops(recording) == [("list", "m"), ("read", "m/v000001/manifest.json")]


def test_uncached_object_store_load_reads_manifest_and_artifact_once(memory_store):
    store = memory_store
    store.cache_dir = None
    store.save({"w": np.arange(10.0)}, "m")
    recording = _record(store)
    store.load("m", 1)
    calls = _ops(recording)
    assert [op for op, _ in calls] == ["read", "read"]
    assert calls[0] == ("read", "m/v000001/manifest.json") and calls[1][1].startswith("m/objects/")


def test_object_store_delete_goes_through_the_backend(memory_store):
    store = memory_store
    for _ in range(2):
        store.save({"w": np.arange(3.0)}, "m")
    store.promote("m", 2, "production")
    recording = _record(store)
    store.delete_version("m", 1)
    calls = _ops(recording)
    assert calls.index(("compare_and_swap", "m/aliases.json")) < calls.index(("delete_tree", "m/v000001"))
    assert store.list_versions("m") == [2]
    with pytest.raises(ValueError, match="loads into memory only"):
        store.load("m", 2, mmap_mode="r")


@pytest.mark.parametrize("durable", [False, True])
def test_local_staging_commits_whole_or_not_at_all(tmp_path, durable):
    """The local backend's staging: files in a private directory under .tmp, committed by one rename; a
    number already taken answers False (the save numbers again) and leaves nothing; a symlinked .tmp is
    refused before anything is written; a discarded staging leaves no trace."""
    from ml_toolbox.store import _io
    from ml_toolbox.store.errors import StoreError

    root = tmp_path / "store"
    (root / ".tmp").mkdir(parents=True)
    backend = LocalBackend(root)
    first = backend.stage("m", "tok", durable=durable)
    digests = _io.write_bytes_hashed(first.target("artifact.json"), b"[1]", fsync=durable)
    assert first.store("artifact.json", digests["blake3"]) == {} and first.data("artifact.json") is None
    assert first.commit("m/v000001", b'{"version": 1}')
    first.discard()
    assert backend.read("m/v000001/artifact.json")[0] == b"[1]" and os.listdir(root / ".tmp") == []
    second = backend.stage("m", "tok", durable=durable)
    _io.write_bytes_hashed(second.target("artifact.json"), b"[2]", fsync=durable)
    assert not second.commit("m/v000001", b'{"version": 1}')  # taken: nothing replaced
    assert second.commit("m/v000002", b'{"version": 2}')
    second.discard()
    assert backend.read("m/v000001/artifact.json")[0] == b"[1]" and backend.list("m") == ["v000001", "v000002"]
    third = backend.stage("m", "tok", durable=durable)
    _io.write_bytes_hashed(third.target("artifact.json"), b"[3]", fsync=durable)
    third.discard()  # never committed
    assert os.listdir(root / ".tmp") == [] and backend.list("m") == ["v000001", "v000002"]
    os.rmdir(root / ".tmp")
    os.symlink(tmp_path, root / ".tmp")
    with pytest.raises(StoreError, match="symlink"):
        backend.stage("m", "tok")
