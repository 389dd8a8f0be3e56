"""Tests of the store's two writers: the C pickler for objects without large arrays, joblib's otherwise."""

import hashlib
import json
import pickle
import re

import blake3
import joblib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ml_toolbox.store import _io as _store_io
from ml_toolbox.persistence import IntegrityError, PipelinePersistence

from test_persistence import LOADED, SideEffectOnLoad  # tests/ is on sys.path (pytest's rootdir)

X, Y = make_classification(n_samples=80, n_features=5, random_state=0)


@pytest.fixture
def store(tmp_path):
    return PipelinePersistence(tmp_path / "store")


@pytest.fixture
def fitted():
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y)


def _artifact(store, name, version=None):
    manifest = store.manifest(name, version)
    return store.path / name / f"v{manifest['version']:06d}" / manifest["artifact"]


@pytest.mark.parametrize("compress", [0, False, 3, True, "gzip", ("zlib", 1), ("bz2", 2), ("xz", 1), ("zlib", 0)])
def test_small_object_written_by_the_c_pickler_loads_with_plain_joblib(store, fitted, compress):
    obj = {"pipe": fitted, "forest": RandomForestClassifier(n_estimators=3, random_state=0).fit(X, Y),
           "shared": [fitted[-1].coef_, fitted[-1].coef_], "text": "é" * 10}
    store.save(obj, "small", compress=compress)
    manifest = store.manifest("small")
    assert manifest["pickler"] == "pickle"
    path = _artifact(store, "small")
    compressed = compress not in (0, False, ("zlib", 0))
    assert (path.read_bytes()[:1] == pickle.PROTO) != compressed  # a pickle, or in joblib's container
    for loaded in (store.load("small"), store.load("small", verify="blake3"), store.load("small", verify="size"),
                   joblib.load(path)):
        np.testing.assert_array_equal(loaded["pipe"].predict_proba(X), fitted.predict_proba(X))
        np.testing.assert_array_equal(loaded["forest"].predict_proba(X), obj["forest"].predict_proba(X))
        assert loaded["text"] == obj["text"]
    with open(path, "rb") as f:  # joblib.load of an open file too
        np.testing.assert_array_equal(joblib.load(f)["pipe"][-1].coef_, fitted[-1].coef_)
    assert store.verify("small") == [("small", 1, None)]


def test_objects_with_large_arrays_keep_joblibs_writer_and_memory_map(store):
    store.save({"w": np.arange(_store_io._LARGE_ARRAY // 8, dtype=np.float64), "b": np.ones(3)}, "big")
    assert store.manifest("big")["pickler"] == "joblib"
    mapped = store.load("big", mmap_mode="r")
    assert isinstance(mapped["w"], np.memmap) and isinstance(mapped["b"], np.memmap)
    np.testing.assert_array_equal(mapped["w"], np.arange(_store_io._LARGE_ARRAY // 8))
    store.save({"w": np.ones(_store_io._LARGE_ARRAY // 8 - 1)}, "under")  # one element under: the C pickler
    assert store.manifest("under")["pickler"] == "pickle"


def test_many_small_arrays_past_the_budget_keep_joblibs_writer(store, monkeypatch):
    monkeypatch.setattr(_store_io, "_ARRAY_BUDGET", 10_000)
    store.save([np.ones(500) for _ in range(2)], "within")  # 8000 bytes
    store.save([np.ones(500) for _ in range(3)], "past")  # 12000 bytes
    assert store.manifest("within")["pickler"] == "pickle"
    assert store.manifest("past")["pickler"] == "joblib"
    assert all(isinstance(a, np.memmap) for a in store.load("past", mmap_mode="r"))


def test_memmaps_read_only_arrays_and_foreign_byte_order_keep_joblibs_writer(store, tmp_path):
    """joblib writes a memmap as a plain array, loads a read-only array writable and a foreign byte order
    as native: kept as it was."""
    swapped = np.arange(5, dtype=">f8")
    store.save({"a": swapped}, "swapped")
    assert store.manifest("swapped")["pickler"] == "joblib"
    loaded = store.load("swapped")["a"]
    assert loaded.dtype == joblib.load(_artifact(store, "swapped"))["a"].dtype == np.dtype("<f8")
    np.testing.assert_array_equal(loaded, swapped)
    frozen = np.arange(5.0)
    frozen.flags.writeable = False
    store.save({"a": frozen}, "frozen")
    assert store.manifest("frozen")["pickler"] == "joblib"
    assert store.load("frozen")["a"].flags.writeable == joblib.load(_artifact(store, "frozen"))["a"].flags.writeable
    mm = np.memmap(tmp_path / "m.dat", dtype=np.float64, mode="w+", shape=(4,))
    mm[:] = 2.0
    store.save({"m": mm}, "mapped")
    assert store.manifest("mapped")["pickler"] == "joblib"
    assert type(store.load("mapped")["m"]) is np.ndarray


def test_mmap_mode_on_a_c_pickled_artifact_loads_in_memory(store, fitted):
    store.save({"pipe": fitted, "w": np.arange(10.0)}, "small")
    loaded = store.load("small", mmap_mode="r")
    assert type(loaded["w"]) is np.ndarray and loaded["w"].flags.writeable  # as joblib.load(path, mmap_mode="r")
    np.testing.assert_array_equal(loaded["w"], np.arange(10.0))
    assert type(joblib.load(_artifact(store, "small"), mmap_mode="r")["w"]) is np.ndarray
    store.save({"w": np.arange(10.0)}, "packed", compress=3)
    with pytest.raises(ValueError, match="only uncompressed joblib artifacts can be memory-mapped"):
        store.load("packed", mmap_mode="r")


@pytest.mark.parametrize("compress", [0, 3])
def test_tampered_c_pickled_artifact_refused_before_anything_is_deserialised(store, compress):
    LOADED.clear()
    store.save({"evil": SideEffectOnLoad("x" * 50), "w": np.arange(100.0)}, "evil", compress=compress)
    assert store.manifest("evil")["pickler"] == "pickle"
    assert store.load("evil")["evil"] == "x" * 50 and LOADED == ["x" * 50]
    LOADED.clear()
    path = _artifact(store, "evil")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1  # same size, different content
    path.write_bytes(bytes(data))
    for verify in ("auto", "blake3"):
        with pytest.raises(IntegrityError, match=f"{re.escape(repr(str(path)))} failed its blake3 check"):
            store.load("evil", verify=verify)
    path.write_bytes(bytes(data[:-1]))
    with pytest.raises(IntegrityError, match="is truncated"):
        store.load("evil", verify="size")
    assert LOADED == []  # the tampered pickle never ran


def test_manifests_without_a_pickler_load_as_before(store, fitted, monkeypatch):
    """Versions saved before the C pickler existed (joblib-written, no 'pickler' key) load through joblib."""
    monkeypatch.setattr(_store_io, "_LARGE_ARRAY", 0)  # every array is 'large': joblib writes everything
    store.save({"pipe": fitted, "w": np.arange(10.0)}, "old")
    monkeypatch.undo()
    path = store.path / "old" / "v000001" / "manifest.json"
    manifest = json.loads(path.read_text())
    assert manifest.pop("pickler") == "joblib"
    path.write_text(json.dumps(manifest))
    loaded = store.load("old")
    np.testing.assert_array_equal(loaded["pipe"].predict(X), fitted.predict(X))
    assert isinstance(store.load("old", mmap_mode="r")["w"], np.memmap)


def test_failures_give_joblibs_own_errors_and_leave_nothing(store):
    with pytest.raises(Exception, match="lambda"):  # the C pickler fails, then joblib's, with its message
        store.save({"f": lambda: 1}, "broken")
    with pytest.raises(ValueError, match=re.escape('Non valid compress level given: "12"')):
        store.save({"a": 1}, "broken", compress=12)
    with pytest.raises(ValueError, match=re.escape('Non valid compression method given: "nope"')):
        store.save({"a": 1}, "broken", compress=("nope", 3))
    if joblib.compressor.lz4 is None:
        with pytest.raises(ValueError, match=re.escape(joblib.compressor.LZ4_NOT_INSTALLED_ERROR)):
            store.save({"a": 1}, "broken", compress=("lz4", 3))
    assert store.list_versions("broken") == []
    assert list((store.path / ".tmp").iterdir()) == []
    assert store.save({"a": 1}, "broken") == 1


def test_fallback_after_a_large_array_rewrites_the_file_from_the_start(store, fitted):
    """The C pickler stops at the large array after writing the pipeline; joblib then writes it all."""
    obj = {"pipe": fitted, "w": np.ones(_store_io._LARGE_ARRAY // 8 + 1)}
    store.save(obj, "mixed", compress=3)
    store.save(obj, "plain")
    for name in ("mixed", "plain"):
        assert store.manifest(name)["pickler"] == "joblib"
        files = store.manifest(name)["files"][store.manifest(name)["artifact"]]
        data = _artifact(store, name).read_bytes()
        assert files["size"] == len(data) and files["blake3"] == blake3.blake3(data).hexdigest()
        for loaded in (store.load(name, verify="blake3"), joblib.load(_artifact(store, name))):
            np.testing.assert_array_equal(loaded["pipe"].predict(X), fitted.predict(X))
            np.testing.assert_array_equal(loaded["w"], obj["w"])


@pytest.mark.parametrize("compress", [0, 3])
def test_fallback_after_megabytes_already_written_starts_a_new_file(store, compress):
    """12 MB of small arrays reach the file (and the SHA-256 thread) before the large one stops the C pickler."""
    rng = np.random.default_rng(0)
    obj = [rng.random(100_000) for _ in range(15)] + [rng.random(_store_io._LARGE_ARRAY // 8)]
    store.save(obj, "late", compress=compress)
    assert store.manifest("late")["pickler"] == "joblib"
    data = _artifact(store, "late").read_bytes()
    files = store.manifest("late")["files"]["artifact.joblib"]
    assert files["size"] == len(data) and files["blake3"] == blake3.blake3(data).hexdigest()
    for loaded in (store.load("late", verify="blake3"), joblib.load(_artifact(store, "late"))):
        for got, want in zip(loaded, obj, strict=True):
            np.testing.assert_array_equal(got, want)
    if not compress:
        assert all(isinstance(a, np.memmap) for a in store.load("late", mmap_mode="r"))
    assert list((store.path / ".tmp").iterdir()) == []


_DTYPES = ["<f8", ">f8", "<i4", "u1", "?", "datetime64[s]", "c16", "S3", [("a", "<i4"), ("b", ">f8")]]


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")  # np.matrix is one layout
@settings(max_examples=25, deadline=None)
@given(dtype=st.sampled_from(_DTYPES), shape=st.lists(st.integers(0, 40), min_size=1, max_size=3),
       layout=st.sampled_from(["C", "F", "strided", "matrix", "memmap"]), big=st.booleans())
def test_arrays_written_from_their_memory_are_byte_for_byte_joblibs_file(tmp_path_factory, dtype, shape, layout,
                                                                          big):
    """Contiguous arrays are written from their own memory, not through joblib's chunk.tobytes(): for any
    dtype, shape and layout the file is exactly joblib.dump's, and regions name the arrays' bytes."""
    directory = tmp_path_factory.mktemp("raw")
    rng = np.random.default_rng(0)
    if big:  # past the C pickler's limit: joblib's writer, with the arrays written from memory
        shape = [1 << 17] + shape[1:]
    array = rng.integers(0, 250, size=int(np.prod(shape)) * np.dtype(dtype).itemsize, dtype=np.uint8)
    array = array.view(dtype).reshape(shape)
    if layout == "F":
        array = np.asfortranarray(array)
    elif layout == "strided" and array.ndim and array.shape[0] > 1:
        array = array[::2]
    elif layout == "matrix" and array.ndim <= 2 and np.dtype(dtype).kind in "fiub":
        array = np.asmatrix(array)
    elif layout == "memmap":
        mapped = np.memmap(directory / "m.bin", dtype=dtype, mode="w+", shape=array.shape or (1,))
        mapped[...] = array if array.shape else array.reshape(1)
        array = mapped
    obj = {"array": array, "again": array, "small": np.arange(3)}
    joblib.dump(obj, directory / "ref.joblib")
    pickler = _store_io._region_pickler()
    with open(directory / "ours.joblib", "wb") as f:
        writer = _store_io.HashingWriter(f)
        ours = pickler(writer)
        ours.dump(obj)
        digests = writer.digests()
    data = (directory / "ours.joblib").read_bytes()
    assert data == (directory / "ref.joblib").read_bytes()
    assert digests["blake3"] == blake3.blake3(data).hexdigest() and digests["size"] == len(data)
    raw = np.ascontiguousarray(array).tobytes(order="F" if array.flags.f_contiguous and not array.flags.c_contiguous
                                               else "C")
    if raw:
        assert any(data[start:end] == raw for start, end in ours.regions)
