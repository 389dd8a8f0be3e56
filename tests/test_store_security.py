"""The store against an attacker with write access to its directory (issue 19).

Each test acts as such an attacker would: swapping artifact files while loads run, editing aliases.json,
rewriting a manifest to a pickle with matching digests, planting symlinks, leaving malformed files.
Every one of them got through before the fixes these tests pin.
"""

import errno
import json
import os
import pickle
import re
import subprocess
import sys
import textwrap

import blake3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_toolbox import cli
from ml_toolbox.persistence import (
    FormatRefusedError,
    IntegrityError,
    InvalidNameError,
    MalformedFileError,
    PipelinePersistence,
    SignatureError,
    StoreError,
    VersionNotFoundError,
)
from ml_toolbox.store import LocalBackend, StoreBackend

KEY = "attack-test-key"


def _evil_pickle(marker, size=None):
    """A pickle that creates ``marker`` when unpickled (proof that attacker code ran), padded to ``size``."""
    data = pickle.dumps(_Touch(str(marker)), protocol=4)
    return data if size is None else data + b"\0" * (size - len(data))


class _Touch:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _artifact(store, name, version=1):
    manifest = store.manifest(name, version)
    return store.path / name / f"v{version:06d}" / manifest["artifact"]


def _manifest_path(store, name, version=1):
    return store.path / name / f"v{version:06d}" / "manifest.json"


# ------------------------------------------------------------------------------- check-then-use
_SWAPPER = textwrap.dedent("""
    import os, sys, time
    path, evil, good, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    evil_bytes, good_bytes = open(evil, "rb").read(), open(good, "rb").read()
    end = time.monotonic() + seconds
    i = 0
    print("ready", flush=True)
    while time.monotonic() < end:
        i += 1
        if i % 2:   # swap the file (os.replace), as a second process with write access would
            tmp = path + ".swap"
            with open(tmp, "wb") as f:
                f.write(evil_bytes if i % 4 == 1 else good_bytes)
            os.replace(tmp, path)
        else:       # or rewrite it in place, at the same size
            with open(path, "r+b") as f:
                f.write(evil_bytes)
                f.flush()
                f.seek(0)
                f.write(good_bytes)
""")


@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_a_file_swapped_during_loads_never_runs_its_pickle(tmp_path, mmap_mode):
    store = PipelinePersistence(tmp_path / "s", signing_key=KEY)
    obj = {"w": np.arange(700_000, dtype=np.float64), "tag": "good"}  # 5.6 MB: above the old 4 MB limit
    store.save(obj, "m")
    path = _artifact(store, "m")
    good = path.read_bytes()
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.bin"
    evil.write_bytes(_evil_pickle(marker, len(good)))
    (tmp_path / "good.bin").write_bytes(good)
    attacker = subprocess.Popen([sys.executable, "-c", _SWAPPER, str(path), str(evil), str(tmp_path / "good.bin"),
                                 "60"], stdout=subprocess.PIPE, text=True)
    try:
        assert attacker.stdout.readline().strip() == "ready"
        loaded = refused = 0
        for _ in range(60):
            try:
                result = store.load("m", mmap_mode=mmap_mode)
            except IntegrityError:
                refused += 1
                continue
            assert result["tag"] == "good"  # whatever loads is the object that was saved
            loaded += 1
            del result
        assert not marker.exists(), "a swapped-in pickle ran"
        assert loaded + refused == 60
    finally:
        attacker.kill()
        attacker.wait()


def test_mmap_load_maps_the_verified_file_and_copies_no_array(tmp_path):
    store = PipelinePersistence(tmp_path / "s", signing_key=KEY)
    w = np.arange(300_000, dtype=np.float64)
    store.save({"w": w, "f": np.asfortranarray(np.ones((300, 500))), "small": np.arange(3)}, "m")
    files = store.manifest("m")["files"]["artifact.joblib"]
    assert [end - start for start, end in files["regions"]] == [w.nbytes, 300 * 500 * 8, 3 * 8]
    loaded = store.load("m", mmap_mode="r")
    assert isinstance(loaded["w"], np.memmap) and not loaded["w"].flags.writeable
    np.testing.assert_array_equal(loaded["w"], w)
    assert loaded["f"].flags.f_contiguous and loaded["f"].shape == (300, 500)
    # the pickle parts of the file (everything outside the regions) are not what runs: the verified copy is
    path = _artifact(store, "m")
    with open(path, "r+b") as f:
        f.write(b"\0" * 16)
    np.testing.assert_array_equal(loaded["w"], w)  # already loaded from the verified copy
    with pytest.raises(IntegrityError, match="failed its blake3 check"):
        store.load("m", mmap_mode="r")


def test_array_ranges_in_the_manifest_are_checked(tmp_path):
    store = PipelinePersistence(tmp_path / "s")
    store.save({"w": np.arange(200_000, dtype=np.float64)}, "m")
    manifest_path = _manifest_path(store, "m")
    manifest = json.loads(manifest_path.read_text())
    for regions in ([[0, 10**9]], [[5, 3]], ["all"], [[1, 2, 3]], [[True, 3]]):
        manifest["files"]["artifact.joblib"]["regions"] = regions
        manifest_path.write_text(json.dumps(manifest))
        with pytest.raises(IntegrityError, match="array ranges are malformed|not one of the manifest's array"):
            store.load("m", mmap_mode="r")
    manifest["files"]["artifact.joblib"]["regions"] = []  # the array's bytes claimed as pickle: mapped nowhere
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="is not one of the manifest's array ranges"):
        store.load("m", mmap_mode="r")


# ------------------------------------------------------------------------------ signed aliases
@pytest.fixture
def signed(tmp_path):
    store = PipelinePersistence(tmp_path / "s", signing_key=KEY)
    for accuracy in (0.9, 0.5, 0.95):
        store.save({"accuracy": accuracy}, "m", metrics={"accuracy": accuracy})
    store.promote("m", 1, "production", gates={"accuracy": 0.8})
    store.promote("m", 3, "production", gates={"accuracy": 0.8})
    return store


def _edit_aliases(store, name, edit):
    path = store.path / name / "aliases.json"
    payload = json.loads(path.read_text())
    edit(payload)
    path.write_text(json.dumps(payload))
    return path


@pytest.mark.parametrize("edit", [
    lambda p: p.update(aliases={"production": {"stack": [2]}}, history=[]),           # the attack
    lambda p: p["aliases"]["production"].update(stack=[1, 2]),                        # the alias alone
    lambda p: p["history"][-1].update(to=2) or p["aliases"]["production"].update(stack=[1, 2]),
    lambda p: p.update(history=p["history"][1:]),                                     # an event removed
    lambda p: p.update(history=p["history"][::-1]),                                   # reordered
    lambda p: p["history"][0].pop("signature"),                                       # unsigned
], ids=["reset", "stack", "event", "removed", "reordered", "unsigned"])
def test_edited_alias_files_are_refused_by_load_and_verify(signed, edit, tmp_path):
    assert signed.load("m", "production") == {"accuracy": 0.95}
    path = _edit_aliases(signed, "m", edit)
    with pytest.raises(SignatureError, match=re.escape(repr(str(path)))):
        signed.load("m", "production")
    with pytest.raises(SignatureError):
        signed.promote("m", 3, "staging")
    problems = [r for r in signed.verify() if r[2] is not None]
    assert problems and problems[0][:2] == ("m", "aliases")
    out, err = _console(), _console()
    code = cli.main(["--store", str(signed.path), "--signing-key", KEY, "verify"], console=out, error_console=err)
    assert code == cli.EXIT_REFUSED and "aliases" in out.file.getvalue()


def test_a_history_copied_from_another_name_is_refused(signed):
    signed.save({"accuracy": 0.1}, "other")
    signed.save({"accuracy": 0.2}, "other")
    signed.save({"accuracy": 0.3}, "other")
    (signed.path / "other" / "aliases.json").write_bytes((signed.path / "m" / "aliases.json").read_bytes())
    with pytest.raises(SignatureError, match="does not match the signing key"):
        signed.load("other", "production")


def test_a_signed_store_refuses_ref_moves_and_deletes_without_the_key(signed, monkeypatch):
    monkeypatch.delenv("ML_TOOLBOX_SIGNING_KEY", raising=False)
    keyless = PipelinePersistence(signed.path)
    for attempt in (lambda: keyless.promote("m", 2, "production"), lambda: keyless.rollback("m", "production"),
                    lambda: keyless.delete_version("m", 2), lambda: keyless.prune(keep_last=1)):
        with pytest.raises(SignatureError, match="the store .* is signed, and this store object has no signing key"):
            attempt()
    assert signed.aliases("m") == {"production": 3} and signed.list_versions("m") == [1, 2, 3]
    err = _console()
    code = cli.main(["--store", str(signed.path), "promote", "m", "2", "production"], console=_console(),
                    error_console=err)
    assert code == cli.EXIT_REFUSED and "no signing key" in err.file.getvalue()
    assert signed.rollback("m", "production") == 1  # with the key, as usual
    assert [e["action"] for e in signed.history("m")] == ["promote", "promote", "rollback"]


def test_an_unsigned_history_is_signed_once_with_sign_aliases(tmp_path, monkeypatch):
    monkeypatch.delenv("ML_TOOLBOX_SIGNING_KEY", raising=False)
    plain = PipelinePersistence(tmp_path / "s")
    plain.save({"a": 1}, "m")
    plain.save({"a": 2}, "m")
    plain.promote("m", 1, "production")
    plain.promote("m", 2, "production")
    keyed = PipelinePersistence(tmp_path / "s", signing_key=KEY)
    with pytest.raises(SignatureError, match="sign it as it stands with store.sign_aliases"):
        keyed.load("m", "production")
    assert keyed.sign_aliases("m", reason="adopted") == {"production": 2}
    assert keyed.resolve("m", "production") == 2  # (its versions themselves are unsigned: loads refuse them)
    assert keyed.rollback("m", "production") == 1
    with pytest.raises(SignatureError):
        PipelinePersistence(tmp_path / "s").sign_aliases("m")


@settings(max_examples=25, deadline=None)
@given(moves=st.lists(st.tuples(st.sampled_from(["promote", "rollback"]), st.sampled_from(["prod", "stage"]),
                                st.integers(1, 3)), max_size=8))
def test_any_history_replays_to_its_aliases_and_any_edit_is_caught(tmp_path_factory, moves):
    store = PipelinePersistence(tmp_path_factory.mktemp("h"), signing_key=KEY)
    for i in range(3):
        store.save({"i": i}, "m")
    for action, alias, version in moves:
        try:
            store.promote("m", version, alias) if action == "promote" else store.rollback("m", alias)
        except VersionNotFoundError:
            pass  # nothing to roll back to
    assert store.verify("m") == [("m", v, None) for v in (1, 2, 3)]
    history = store.history("m")
    if history:
        _edit_aliases(store, "m", lambda p: p["history"][-1].update(reason="edited"))
        with pytest.raises(SignatureError):
            store.aliases("m")


# -------------------------------------------------------------------------------- no downgrade
def _downgrade(store, name, marker):
    """Rewrite a skops version's manifest to joblib, with a payload pickle and matching digests."""
    directory = store.path / name / "v000001"
    payload = _evil_pickle(marker)
    (directory / "artifact.joblib").write_bytes(payload)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest.update(format="joblib", artifact="artifact.joblib", pickler="pickle",
                    files={"artifact.joblib": {"size": len(payload), "blake3": blake3.blake3(payload).hexdigest()}})
    (directory / "manifest.json").write_text(json.dumps(manifest))


def test_a_manifest_rewritten_to_pickle_is_refused_by_the_no_pickle_policy(tmp_path):
    pytest.importorskip("skops")
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    store = PipelinePersistence(tmp_path / "s")
    store.save(model, "m", format="skops")
    marker = tmp_path / "pwned"
    _downgrade(store, "m", marker)
    for refusing in (lambda: store.load("m", trusted=[], allow_pickle=False),
                     lambda: store.load("m", formats=("skops",)),
                     lambda: PipelinePersistence(tmp_path / "s", allow_pickle=False).load("m", allow_pickle=True),
                     lambda: PipelinePersistence(tmp_path / "s", formats=["skops"]).load("m")):
        with pytest.raises(FormatRefusedError, match="asks for format 'joblib'"):
            refusing()
    assert not marker.exists()
    err, out = _console(), _console()
    code = cli.main(["--store", str(store.path), "--no-pickle", "verify"], console=out, error_console=err)
    assert code == cli.EXIT_REFUSED and "asks for format 'joblib'" in out.file.getvalue()
    with pytest.raises(FormatRefusedError, match="this store's policy allows"):
        PipelinePersistence(tmp_path / "s", allow_pickle=False).save(model, "m")
    store.load("m")  # without a policy (and without a key) the rewritten manifest is believed: the docs say so
    assert marker.exists()


def test_a_manifest_naming_another_artifact_file_is_refused(tmp_path):
    store = PipelinePersistence(tmp_path / "s")
    store.save({"a": 1}, "m")
    path = _manifest_path(store, "m")
    manifest = json.loads(path.read_text())
    manifest["artifact"] = "../../elsewhere.joblib"
    path.write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="with artifact '../../elsewhere.joblib'"):
        store.load("m")


# ------------------------------------------------------------------------------ the small ones
def test_an_empty_kind_marker_left_by_a_crash_is_repaired_not_cached(tmp_path):
    store = PipelinePersistence(tmp_path / "s")
    store.save({"a": 1}, "m")
    (store.path / "m" / ".kind").write_text("")  # what a kill between open and write used to leave
    fresh = PipelinePersistence(tmp_path / "s")
    assert fresh.save({"a": 2}, "m") == 2
    assert (store.path / "m" / ".kind").read_text() == "pipeline"
    with pytest.raises(ValueError, match="holds pipeline versions"):
        fresh.save_config("m", {"x": 1})


def test_kind_marker_is_written_atomically(tmp_path, monkeypatch):
    from ml_toolbox.store import _io

    store = PipelinePersistence(tmp_path / "s")
    real = _io.write_file

    def dies_half_way(path, data, fsync=True):
        real(path, data[:0], fsync)
        raise KeyboardInterrupt  # a kill after the file was opened, before its bytes were written

    monkeypatch.setattr(_io, "write_file", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        store.save({"a": 1}, "m")
    assert not (store.path / "m" / ".kind").exists()  # never seen empty under its name
    monkeypatch.setattr(_io, "write_file", real)
    assert store.save({"a": 1}, "m") == 1


def test_a_planted_tombstone_symlink_is_replaced_not_followed(tmp_path):
    store = PipelinePersistence(tmp_path / "s")
    store.save({"a": 1}, "m")
    store.save({"a": 2}, "m")
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    os.symlink(outside, store.path / "m" / "v000001.deleted")
    store.delete_version("m", 1)
    assert outside.read_text() == "keep me"


@pytest.mark.parametrize("target", ["artifact", "manifest", "aliases", "version_dir"])
def test_symlinks_planted_in_the_store_are_never_followed(tmp_path, target):
    store = PipelinePersistence(tmp_path / "s")
    store.save({"a": 1}, "m")
    store.promote("m", 1, "production")
    other = PipelinePersistence(tmp_path / "elsewhere")
    other.save({"a": "outside"}, "m")
    other.promote("m", 1, "production")
    version = store.path / "m" / "v000001"
    source = {"artifact": version / "artifact.joblib", "manifest": version / "manifest.json",
              "aliases": store.path / "m" / "aliases.json", "version_dir": version}[target]
    replacement = other.path / "m" / source.relative_to(store.path / "m")
    if source.is_dir():
        import shutil

        shutil.rmtree(source)
    else:
        source.unlink()
    os.symlink(replacement, source)
    with pytest.raises(StoreError, match="symlink"):
        store.load("m", "production" if target == "aliases" else 1)


@pytest.mark.parametrize("key", ["", b""])
def test_an_empty_signing_key_is_an_error(tmp_path, monkeypatch, key):
    with pytest.raises(ValueError, match="signing_key='' is empty"):
        PipelinePersistence(tmp_path / "s", signing_key=key)
    monkeypatch.setenv("ML_TOOLBOX_SIGNING_KEY", "")
    with pytest.raises(ValueError, match=r"\$ML_TOOLBOX_SIGNING_KEY is set but empty"):
        PipelinePersistence(tmp_path / "s")


@pytest.mark.parametrize("bad", ["churn\n", "churn\r", "churn\n\n", "\nchurn"])
def test_names_and_aliases_are_matched_in_full(tmp_path, bad):
    store = PipelinePersistence(tmp_path / "s")
    with pytest.raises(InvalidNameError):
        store.save({"a": 1}, bad)
    store.save({"a": 1}, "churn")
    with pytest.raises(InvalidNameError):
        store.promote("churn", 1, bad)


def test_racing_deletes_raise_version_not_found(tmp_path):
    store = PipelinePersistence(tmp_path / "s")
    store.save({"a": 1}, "m")
    store.save({"a": 2}, "m")
    other = PipelinePersistence(tmp_path / "s")
    number = store.resolve("m", 1)
    other.delete_version("m", 1)
    with pytest.raises(VersionNotFoundError):
        store._delete_locked("m", number)  # the second deleter, after resolving: as in a race
    with pytest.raises(VersionNotFoundError):
        store.delete_version("m", 1)
    with pytest.raises(VersionNotFoundError):
        store.load("m", 1)


_MALFORMED = [b"", b"not json", b"[]", b"[" * 100_000 + b"]" * 100_000, b'{"files": 3, "artifact": "a"}',
              b'{"files": {}, "artifact": null}', b"\xff\xfe"]


@pytest.mark.parametrize("data", _MALFORMED, ids=range(len(_MALFORMED)))
def test_a_malformed_manifest_is_a_store_error_naming_it(tmp_path, data):
    store = PipelinePersistence(tmp_path / "s")
    store.save({"a": 1}, "m")
    path = _manifest_path(store, "m")
    path.write_bytes(data)
    for attempt in (lambda: store.load("m"), lambda: store.manifest("m", 1)):
        with pytest.raises(StoreError, match=re.escape(repr(str(path)))) as info:
            attempt()
        assert isinstance(info.value, (MalformedFileError, IntegrityError))
    assert store.verify("m")[0][2] is not None


_MALFORMED_ALIASES = _MALFORMED[:4] + [b'{"aliases": [], "history": []}', b'{"aliases": {"p": {"stack": "1"}}}',
                                       b'{"aliases": {"p": 3}}', b'{"history": [1]}']


@pytest.mark.parametrize("data", _MALFORMED_ALIASES, ids=range(len(_MALFORMED_ALIASES)))
def test_a_malformed_alias_file_is_a_store_error_naming_it(tmp_path, data):
    store = PipelinePersistence(tmp_path / "s")
    store.save({"a": 1}, "m")
    store.promote("m", 1, "production")
    path = store.path / "m" / "aliases.json"
    path.write_bytes(data)
    for attempt in (lambda: store.load("m", "production"), lambda: store.aliases("m"),
                    lambda: store.promote("m", 1, "staging"), lambda: store.history("m")):
        with pytest.raises(StoreError, match=re.escape(repr(str(path)))):
            attempt()
    assert ("m", "aliases") in [r[:2] for r in store.verify()]


def test_every_write_to_a_read_only_store_is_a_store_error(tmp_path, monkeypatch):
    store = PipelinePersistence(tmp_path / "s")
    store.save({"a": 1}, "m")
    store.save({"a": 2}, "m")
    store.promote("m", 1, "production")
    store.promote("m", 2, "production")
    root = str(store.path)
    real_open, real_rename, real_replace, real_mkdir = os.open, os.rename, os.replace, os.mkdir
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def read_only(real, check):
        def call(path, *args, **kwargs):
            if str(os.fspath(path)).startswith(root) and check(*args):
                raise OSError(errno.EROFS, "Read-only file system", path)
            return real(path, *args, **kwargs)
        return call

    monkeypatch.setattr(os, "open", read_only(real_open, lambda flags, *a: flags & writes))
    for name, real in (("rename", real_rename), ("replace", real_replace), ("mkdir", real_mkdir)):
        monkeypatch.setattr(os, name, read_only(real, lambda *a: True))
    assert store.load("m", "production") == {"a": 2}  # reading still works
    for attempt in (lambda: store.promote("m", 1, "staging"), lambda: store.rollback("m", "production"),
                    lambda: store.delete_version("m", 1), lambda: store.prune(keep_last=1),
                    lambda: store.save({"a": 3}, "m")):
        with pytest.raises(StoreError, match="read-only|cannot be written|not writable|Read-only"):
            attempt()
    monkeypatch.undo()
    assert store.list_versions("m") == [1, 2] and store.aliases("m") == {"production": 2}


# ---------------------------------------------------------------------------------- the backend
def test_local_backend_implements_the_interface_with_s3_semantics(tmp_path):
    backend = LocalBackend(tmp_path)
    assert isinstance(backend, StoreBackend)
    assert backend.create("a/b.json", b"1") is True and backend.create("a/b.json", b"2") is False
    data, tag = backend.read("a/b.json")
    assert data == b"1"
    assert backend.compare_and_swap("a/b.json", b"3", "wrong") is False
    assert backend.compare_and_swap("a/b.json", b"3", tag) is True
    assert backend.compare_and_swap("a/b.json", b"4", tag) is False  # the tag moved on with the content
    assert backend.compare_and_swap("a/new.json", b"5", None) is True  # None: only if absent
    assert backend.write("a/b.json", b"6") == backend.read("a/b.json")[1]
    assert backend.list("a") == ["b.json", "new.json"] and backend.list("missing") == []
    assert backend.delete("a/b.json") is True and backend.delete("a/b.json") is False
    with pytest.raises(FileNotFoundError):
        backend.read("a/b.json")
    for bad in ("../x", "a/../../x", "/abs", "a//b", ""):
        with pytest.raises(StoreError, match="Invalid key"):
            backend.read(bad)


# ------------------------------------------------------------------------------- without fcntl
def test_the_store_works_where_fcntl_cannot_be_imported(tmp_path):
    """As on Windows: the store's tests run in a process where ``import fcntl`` fails."""
    tests = os.path.dirname(__file__)
    code = textwrap.dedent(f"""
        import sys
        sys.modules["fcntl"] = None  # import fcntl now raises ImportError
        import pytest
        sys.exit(pytest.main(["-q", "-x", "-p", "no:cacheprovider", "--basetemp", {str(tmp_path / "t")!r},
                              {os.path.join(tests, "test_persistence.py")!r},
                              "-k", "not sigkill and not processes and not staging and not threads"]))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=os.path.dirname(tests),
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout
    probe = subprocess.run([sys.executable, "-c", "import sys; sys.modules['fcntl'] = None; import ml_toolbox.cli, "
                            "ml_toolbox.store; import filelock; print(filelock.FileLock.__name__)"],
                           capture_output=True, text=True)
    assert probe.returncode == 0 and probe.stdout.strip() == "SoftFileLock", probe.stderr


def _console():
    import io

    from rich.console import Console

    return Console(file=io.StringIO(), width=200)


@pytest.mark.parametrize("planted", ["name", ".tmp"])
def test_a_save_never_writes_through_a_planted_directory_symlink(tmp_path, planted):
    store = PipelinePersistence(tmp_path / "s")
    store.save({"a": 1}, "other")
    outside = tmp_path / "outside"
    outside.mkdir()
    link = store.path / ("m" if planted == "name" else ".tmp")
    if link.exists():
        link.rmdir()
    os.symlink(outside, link)
    with pytest.raises(StoreError, match="symlink"):
        store.save({"a": 2}, "m")
    assert os.listdir(outside) == []


# ------------------------------------------------- the verified loader returns what joblib.load returns
_DTYPES = ["<f8", ">f8", "<i4", ">i2", "u1", "?", "<c16", "<M8[s]", "S3", "U2", [("a", "<i4"), ("b", ">f4")], "O"]


@st.composite
def _arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
    shape = draw(st.lists(st.integers(0, 5), max_size=3).map(tuple))
    size = int(np.prod(shape)) if shape else 1
    raw = np.arange(size * max(dtype.itemsize, 1), dtype=np.uint8).tobytes()[: size * dtype.itemsize]
    array = np.frombuffer(raw, dtype=dtype).reshape(shape) if dtype != object \
        else np.array([str(i) for i in range(size)], dtype=object).reshape(shape)
    if draw(st.booleans()) and array.ndim > 1:
        array = np.asfortranarray(array)
    return array.copy(order="K") if dtype != object else array


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix, on purpose
@settings(max_examples=30, deadline=None)
@given(arrays=st.lists(_arrays(), min_size=1, max_size=4), big=st.booleans(),
       mmap_mode=st.sampled_from([None, "r", "c"]))
def test_verified_loads_return_what_joblib_load_returns(tmp_path_factory, arrays, big, mmap_mode):
    import joblib

    from ml_toolbox.store import _io

    store = PipelinePersistence(tmp_path_factory.mktemp("v"))
    obj = {"arrays": arrays, "matrix": np.asmatrix(np.eye(2)), "text": "x"}
    if big:  # one array over the C pickler's limit: joblib's pickler writes them all, with their ranges
        obj["big"] = np.arange(_io._LARGE_ARRAY // 8 + 1, dtype=np.float64)
    store.save(obj, "m")
    path = _artifact(store, "m")
    mapped = store.manifest("m")["pickler"] == "joblib"  # the C pickler's arrays load in memory (as joblib's)
    expected = joblib.load(path, mmap_mode=mmap_mode if mapped else None)
    got = store.load("m", mmap_mode=mmap_mode)
    assert type(got["matrix"]) is np.matrix and got["text"] == "x"
    for mine, theirs in zip(got["arrays"] + [got.get("big")], expected["arrays"] + [expected.get("big")]):
        if theirs is None:
            continue
        assert mine.dtype == theirs.dtype and mine.shape == theirs.shape
        assert mine.flags.f_contiguous == theirs.flags.f_contiguous or mine.ndim < 2 or 0 in mine.shape
        assert mine.flags.writeable == theirs.flags.writeable
        if mine.dtype == object:
            assert mine.tolist() == theirs.tolist()
        else:
            assert mine.tobytes() == theirs.tobytes()


def test_versions_saved_before_blake3_and_array_ranges_still_load_and_verify(tmp_path):
    import hashlib

    import xxhash

    store = PipelinePersistence(tmp_path / "s")
    w = np.arange(200_000, dtype=np.float64)
    store.save({"w": w}, "m")
    path, manifest_path = _artifact(store, "m"), _manifest_path(store, "m")
    data = path.read_bytes()
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["artifact.joblib"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                                            "xxh3_128": xxhash.xxh3_128(data).hexdigest()}  # an earlier release's
    manifest_path.write_text(json.dumps(manifest))
    np.testing.assert_array_equal(store.load("m")["w"], w)  # checked with xxh3-128, the fastest recorded
    in_memory = store.load("m", mmap_mode="r")["w"]  # no ranges recorded: verified, in memory
    np.testing.assert_array_equal(in_memory, w)
    trusted = store.load("m", mmap_mode="r", verify="size")["w"]  # a trusted store: mapped by joblib
    assert isinstance(trusted, np.memmap)
    assert store.verify("m") == [("m", 1, None)]
    path.write_bytes(data[:-8] + b"\1" * 8)
    for verify in ("auto", "sha256", "xxh3_128"):
        with pytest.raises(IntegrityError, match="failed its (xxh3_128|sha256) check"):
            store.load("m", verify=verify)
    assert "failed its sha256 check" in store.verify("m")[0][2]
