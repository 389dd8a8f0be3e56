"""Tests of the versioned store (ml_toolbox.persistence)."""

import datetime as dt
import gc
import hashlib
import json
import os
import pickle
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import blake3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from ml_toolbox.store import _io as _store_io
from ml_toolbox.persistence import (
    AliasedVersionError,
    Gate,
    GateError,
    IntegrityError,
    InvalidNameError,
    PipelinePersistence,
    SignatureError,
    StoreError,
    VersionMismatchWarning,
    VersionNotFoundError,
    environment,
)

X, Y = make_classification(n_samples=60, n_features=4, random_state=0)


@pytest.fixture
def fitted():
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y)


@pytest.fixture
def store(tmp_path):
    return PipelinePersistence(tmp_path / "store")


class FakeClock:
    def __init__(self, start=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, **kwargs):
        self.now += dt.timedelta(**kwargs)


LOADED = []


def _record_load(tag):
    LOADED.append(tag)
    return tag


class SideEffectOnLoad:
    """Unpickling this runs _record_load: a stand-in for code a malicious pickle would run."""

    def __init__(self, payload):
        self.payload = payload

    def __reduce__(self):
        return (_record_load, (self.payload,))


class WithSchema:
    """A stub 'fitted pipeline' with parameters and an input schema, like UnifiedMLPipeline."""

    def __init__(self, alpha=1.0, columns=("a", "b")):
        self.alpha = alpha
        self.columns = columns
        self.input_schema_ = _Schema(columns)

    def get_params(self, deep=False):
        return {"alpha": self.alpha, "columns": list(self.columns), "estimator": LogisticRegression(C=2.0)}


class _Schema:
    def __init__(self, columns):
        self.columns = columns

    def to_dict(self):
        return {"columns": {c: "float64" for c in self.columns}, "n_features": len(self.columns)}


def _artifact(store, name, version):
    manifest = store.manifest(name, version)
    return store.path / name / f"v{manifest['version']:06d}" / manifest["artifact"]


def _rewrite_manifest(store, name, version, change, key=None):
    path = store.path / name / f"v{version:06d}" / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    if key is not None:
        manifest.pop("signature", None)
        manifest["signature"] = {"algorithm": "hmac-sha256", "value": _store_io.sign(key, manifest)}
    path.write_text(json.dumps(manifest))


# ------------------------------------------------------------------------------------ save / load
def test_save_load_roundtrip_gives_same_predictions(store, fitted):
    assert store.save(fitted, "churn") == 1
    assert store.save(fitted, "churn") == 2
    assert store.list_versions("churn") == [1, 2]
    assert store.names() == ["churn"]
    loaded = store.load("churn")
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    np.testing.assert_array_equal(store.load("churn", 1).predict(X), fitted.predict(X))
    assert store.resolve("churn", "2") == 2
    assert store.resolve("churn", "latest") == 2


def test_manifest_records_everything(store):
    obj = WithSchema(alpha=0.5)
    store.save(obj, "m", metrics={"accuracy": 0.9, "n": np.int64(3)}, tags={"team": "risk"}, message="first")
    store.save(obj, "m", message="second")
    manifest = store.manifest("m", 1)
    artifact = _artifact(store, "m", 1).read_bytes()
    files = manifest["files"]["artifact.joblib"]
    assert files["size"] == len(artifact)
    assert files["blake3"] == blake3.blake3(artifact).hexdigest()
    assert manifest["version"] == 1 and manifest["parent"] is None
    assert store.manifest("m", 2)["parent"] == 1  # default lineage: the latest version at save time
    assert manifest["environment"] == environment()
    assert set(manifest["environment"]) == {"python", "scikit-learn", "numpy", "pandas", "joblib", "ml_toolbox"}
    # every parameter under its set_params name; a nested estimator by its class name, then its parameters
    # (expanded here, as this stub's get_params does not list them)
    nested = {f"estimator__{k}": v for k, v in LogisticRegression(C=2.0).get_params().items()}
    assert manifest["params"] == {"alpha": 0.5, "columns": ["a", "b"], "estimator": "LogisticRegression", **nested}
    assert manifest["params"]["estimator__C"] == 2.0
    assert manifest["metrics"] == {"accuracy": 0.9, "n": 3}
    assert manifest["tags"] == {"team": "risk"}
    assert manifest["schema"] == {"columns": {"a": "float64", "b": "float64"}, "n_features": 2}
    assert manifest["message"] == "first"
    assert dt.datetime.fromisoformat(manifest["created"]).tzinfo is not None


def test_durable_fsyncs_and_the_default_stays_atomic(tmp_path, fitted, monkeypatch):
    calls = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))
    durable = PipelinePersistence(tmp_path / "a", durable=True)
    calls.clear()
    durable.save(fitted, "churn")  # the name's first version: its .kind marker too, and its directory
    assert ".kind." in calls[1] and calls[2] == str(durable.path / "churn") and len(calls) == 6
    calls.clear()
    durable.save(fitted, "churn")
    # the artifact and manifest, the staging directory (before its rename) and the name's directory (after)
    assert len(calls) == 4 and calls[-1] == str(durable.path / "churn")
    assert {os.path.basename(c) for c in calls[:2]} == {"artifact.joblib", "manifest.json"}
    calls.clear()
    durable.promote("churn", 1, "production")
    alias_file = os.path.basename(calls[0])  # the new aliases.json, fsynced before its rename
    assert len(calls) == 2 and alias_file.startswith(".aliases.json.") and calls[1] == str(durable.path / "churn")
    fast = PipelinePersistence(tmp_path / "b")  # the default: durable=False
    assert fast.durable is False
    calls.clear()
    assert fast.save(fitted, "churn") == 1
    assert calls == []
    np.testing.assert_array_equal(fast.load("churn").predict(X), fitted.predict(X))
    assert fast.verify() == [("churn", 1, None)]
    # an alias is only pointed at a version that is on disk for good: promote fsyncs it first
    fast.promote("churn", 1, "production")
    version = str(fast.path / "churn" / "v000001")
    assert sorted(calls[:3]) == sorted([f"{version}/artifact.joblib", f"{version}/manifest.json", version])
    assert calls[3] == str(fast.path / "churn") and len(calls) == 6
    assert os.path.basename(calls[4]).startswith(".aliases.json.") and calls[5] == str(fast.path / "churn")


def test_digest_is_blake3_by_default_and_sha256_selectable(tmp_path):
    store = PipelinePersistence(tmp_path / "s")
    store.save({"w": np.arange(10)}, "w")
    assert set(store.manifest("w")["files"]["artifact.joblib"]) == {"size", "blake3"}
    np.testing.assert_array_equal(store.load("w")["w"], np.arange(10))
    assert store.verify() == [("w", 1, None)]
    path = _artifact(store, "w", 1)
    msg = f"{str(path)!r} was saved without a sha256 digest; it records ['blake3']."
    with pytest.raises(ValueError, match=re.escape(msg)):
        store.load("w", verify="sha256")
    both = PipelinePersistence(tmp_path / "s", sha256=True)
    both.save({"w": 1}, "w")
    assert set(both.manifest("w", 2)["files"]["artifact.joblib"]) == {"size", "blake3", "sha256"}
    assert both.load("w", 2, verify="sha256") == {"w": 1} == both.load("w", 2, verify="blake3")
    only = PipelinePersistence(tmp_path / "s", digest="sha256", signing_key="k")
    only.save({"w": 2}, "w")
    assert set(only.manifest("w", 3)["files"]["artifact.joblib"]) == {"size", "sha256"}
    assert only.load("w", 3) == {"w": 2} and only.verify("w", 3) == [("w", 3, None)]
    with pytest.raises(ValueError, match=re.escape("digest='md5' is not one of ['blake3', 'sha256']")):
        PipelinePersistence(tmp_path / "s", digest="md5")


def test_explicit_parent_by_alias(store, fitted):
    store.save(fitted, "churn")
    store.save(fitted, "churn")
    store.promote("churn", 1, "production")
    assert store.save(fitted, "churn", parent="production") == 3
    assert store.manifest("churn", 3)["parent"] == 1


def test_large_artifact_hash_computed_while_writing_matches_file(store):
    big = {"array": np.arange(2_000_000, dtype=np.float64)}  # 16 MB: the threaded SHA-256 path
    store.save(big, "big")
    data = _artifact(store, "big", 1).read_bytes()
    files = store.manifest("big", 1)["files"]["artifact.joblib"]
    assert files["blake3"] == blake3.blake3(data).hexdigest()
    assert files["size"] == len(data)
    np.testing.assert_array_equal(store.load("big")["array"], big["array"])
    both = PipelinePersistence(store.path, sha256=True)  # SHA-256 in its helper thread, as the bytes pass
    both.save(big, "big")
    data = _artifact(store, "big", 2).read_bytes()
    assert both.manifest("big", 2)["files"]["artifact.joblib"]["sha256"] == hashlib.sha256(data).hexdigest()
    np.testing.assert_array_equal(both.load("big", 2, verify="sha256")["array"], big["array"])


def test_compression_and_mmap(store, tmp_path):
    arrays = {"w": np.zeros(200_000)}
    store.save(arrays, "plain")
    store.save(arrays, "packed", compress=3)
    assert _artifact(store, "packed", 1).stat().st_size < _artifact(store, "plain", 1).stat().st_size / 10
    assert store.manifest("packed", 1)["compress"] == 3
    np.testing.assert_array_equal(store.load("packed")["w"], arrays["w"])
    mapped = store.load("plain", mmap_mode="r")["w"]
    assert isinstance(mapped, np.memmap)
    np.testing.assert_array_equal(mapped, arrays["w"])
    msg = ("Version 1 of 'packed' was saved with format='joblib', compress=3; only uncompressed joblib "
           "artifacts can be memory-mapped.")
    with pytest.raises(ValueError, match=re.escape(msg)):
        store.load("packed", mmap_mode="r")
    squeezed = PipelinePersistence(tmp_path / "z", compress=("zlib", 1))
    squeezed.save(arrays, "w")
    assert squeezed.manifest("w", 1)["compress"] == ["zlib", 1]


# ------------------------------------------------------------------------------------- integrity
def test_tampered_artifact_refused_before_anything_is_deserialised(store):
    LOADED.clear()
    store.save(SideEffectOnLoad("x" * 50), "evil")
    store.load("evil")
    assert LOADED == ["x" * 50]
    LOADED.clear()
    path = _artifact(store, "evil", 1)
    data = bytearray(path.read_bytes())
    data[data.index(b"xxxx")] = ord("y")  # same size, different content
    path.write_bytes(bytes(data))
    expected = store.manifest("evil", 1)["files"]["artifact.joblib"]["blake3"]
    with pytest.raises(IntegrityError, match=re.escape(f"{str(path)!r} failed its blake3 check: expected {expected}, found ")) as info:
        store.load("evil")
    assert info.value.path == str(path) and info.value.expected == expected
    assert isinstance(info.value, ValueError)
    assert LOADED == []  # the tampered pickle never ran
    assert store.verify("evil")[0][2].startswith(f"{str(path)!r} failed its blake3 check")


def test_tampered_large_artifact_refused_before_anything_is_deserialised(store):
    LOADED.clear()
    big = {"evil": SideEffectOnLoad("x" * 50), "w": np.arange(700_000, dtype=np.float64)}  # 5.6 MB: mapped check
    store.save(big, "evil")
    np.testing.assert_array_equal(store.load("evil")["w"], big["w"])
    assert LOADED == ["x" * 50]
    LOADED.clear()
    path = _artifact(store, "evil", 1)
    data = bytearray(path.read_bytes())
    assert len(data) > 4 * 1024 * 1024
    data[-100] ^= 1  # the array's last bytes, read after the side effect would have run
    path.write_bytes(bytes(data))
    for verify in ("auto", "blake3"):
        with pytest.raises(IntegrityError, match="failed its blake3 check"):
            store.load("evil", verify=verify)
    with pytest.raises(IntegrityError, match="failed its blake3 check"):
        store.load("evil", mmap_mode="r")
    assert LOADED == []  # the tampered pickle never ran


def test_truncated_artifact_refused(store, fitted):
    store.save(fitted, "churn")
    path = _artifact(store, "churn", 1)
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:-10])
    msg = f"{str(path)!r} is truncated: expected {size} bytes, found {size - 10}."
    with pytest.raises(IntegrityError, match=re.escape(msg)):
        store.load("churn")


def test_missing_artifact_refused(store, fitted):
    store.save(fitted, "churn")
    path = _artifact(store, "churn", 1)
    path.unlink()
    with pytest.raises(IntegrityError, match=re.escape(f"{str(path)!r} is missing: version 1 of 'churn' is incomplete")):
        store.load("churn")
    assert store.verify("churn")[0][2].startswith(f"{str(path)!r} is missing")


def test_verify_param_checked(store, fitted):
    store.save(fitted, "churn")
    with pytest.raises(ValueError, match=re.escape("verify='md5' is not one of 'auto', 'blake3', 'sha256', 'xxh3_128', 'size'.")):
        store.load("churn", verify="md5")
    store.save({"w": np.zeros(1000)}, "arr")
    path = _artifact(store, "arr", 1)
    data = bytearray(path.read_bytes())
    data[len(data) - 4000] = 1  # inside the array's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="failed its blake3 check"):
        store.load("arr", mmap_mode="r")
    assert store.load("arr", mmap_mode="r", verify="size")["w"].any()  # sizes only: trusted stores
    path.write_bytes(bytes(data[:-1]))
    with pytest.raises(IntegrityError, match="is truncated"):
        store.load("arr", verify="size")
    signed = PipelinePersistence(store.path, signing_key="k")
    for weak in ("size", "xxh3_128"):  # no non-cryptographic check under a key
        with pytest.raises(ValueError, match=re.escape(f"verify={weak!r} is not a cryptographic check, which a store "
                                                       "with a signing key requires")):
            signed.load("churn", verify=weak)


def test_signing_key_signs_and_refuses_unsigned_or_wrong(tmp_path, fitted, monkeypatch):
    path = tmp_path / "store"
    PipelinePersistence(path).save(fitted, "churn")  # unsigned version 1
    signed = PipelinePersistence(path, signing_key="s3cret")
    assert signed.save(fitted, "churn") == 2
    assert signed.manifest("churn", 2)["signature"]["algorithm"] == "hmac-sha256"
    signed.load("churn", 2)
    with pytest.raises(SignatureError, match=re.escape("Version 1 of 'churn' is not signed, and this store requires")):
        signed.load("churn", 1)
    with pytest.raises(SignatureError, match="does not match the signing key"):
        PipelinePersistence(path, signing_key="other").load("churn", 2)
    _rewrite_manifest(signed, "churn", 2, lambda m: m["metrics"].update(accuracy=1.0))  # altered, not re-signed
    with pytest.raises(SignatureError, match="does not match the signing key"):
        signed.load("churn", 2)
    monkeypatch.setenv("ML_TOOLBOX_SIGNING_KEY", "s3cret")
    from_env = PipelinePersistence(path)
    with pytest.raises(SignatureError, match="is not signed"):
        from_env.load("churn", 1)
    assert [r[2] is None for r in from_env.verify("churn")] == [False, False]


def test_signed_store_checks_the_cryptographic_digest_of_artifact(tmp_path, fitted):
    store = PipelinePersistence(tmp_path / "s", signing_key=b"k")
    store.save(fitted, "churn")
    path = _artifact(store, "churn", 1)
    data = bytearray(path.read_bytes())
    data[-3] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="failed its blake3 check"):
        store.load("churn")


@pytest.mark.parametrize("key", [None, "k"])
def test_other_library_versions_warn_naming_both(tmp_path, fitted, key):
    store = PipelinePersistence(tmp_path / "s", signing_key=key)
    store.save(fitted, "churn")
    _rewrite_manifest(store, "churn", 1, lambda m: m["environment"].update({"scikit-learn": "0.24.2"}),
                      key=key.encode() if key else None)
    here = environment()["scikit-learn"]
    with pytest.warns(VersionMismatchWarning, match=re.escape(f"scikit-learn 0.24.2 (saved) vs {here} (here)")):
        loaded = store.load("churn")
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))


def test_same_versions_load_without_warning(store, fitted):
    store.save(fitted, "churn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store.load("churn")


# ------------------------------------------------------------------------------------- bad input
def test_unknown_name_version_alias_list_what_exists(store, fitted):
    with pytest.raises(VersionNotFoundError, match="Names: none: the store is empty."):
        store.load("nope")
    store.save(fitted, "churn")
    store.save(fitted, "churn")
    store.promote("churn", 2, "production")
    with pytest.raises(VersionNotFoundError, match=re.escape("No versions named 'nope' in the store")) as info:
        store.load("nope")
    assert "Names: 'churn'." in str(info.value)
    msg = "'churn' has no version 7. Versions: 1, 2; aliases: 'production' -> 2."
    with pytest.raises(VersionNotFoundError, match=re.escape(msg)):
        store.load("churn", 7)
    msg = "'churn' has no version 'staging'. Versions: 1, 2; aliases: 'production' -> 2."
    with pytest.raises(LookupError, match=re.escape(msg)):
        store.load("churn", "staging")
    with pytest.raises(TypeError, match="version must be None, an int or an alias name"):
        store.load("churn", 1.5)


def test_store_path_that_is_a_file(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("hi")
    with pytest.raises(StoreError, match=re.escape(f"The store path {str(target)!r} is a file, not a directory.")):
        PipelinePersistence(target)
    with pytest.raises(StoreError, match="is a file."):
        PipelinePersistence(target / "below")
    assert isinstance(StoreError("x"), OSError)


def test_store_path_that_is_not_a_store(tmp_path):
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(StoreError, match=re.escape(f"{str(tmp_path)!r} is not an ml_toolbox store (no ml_toolbox_store.json; it holds data.csv).")):
        PipelinePersistence(tmp_path)
    assert os.listdir(tmp_path) == ["data.csv"]


def test_store_path_not_writable(tmp_path, monkeypatch, fitted):
    store = PipelinePersistence(tmp_path / "s")
    store.save(fitted, "churn")
    # Running as root ignores permission bits, so emulate a read-only location.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(StoreError, match=re.escape(f"The store at {str(store.path)!r} is not writable.")):
        store.save(fitted, "churn")
    with pytest.raises(StoreError, match="is not writable"):
        PipelinePersistence(tmp_path / "new")
    assert store.load("churn") is not None  # reading still works
    assert store.list_versions("churn") == [1]


@pytest.mark.parametrize("bad", ["", "a/b", "..", ".", "../evil", "a\\b", "/abs", ".hidden", "x" * 129, "a b"])
def test_invalid_names_refused_before_writing(store, fitted, bad):
    before = sorted(os.listdir(store.path))
    with pytest.raises(InvalidNameError, match=re.escape(f"Invalid name {bad!r}: use 1-128 letters")):
        store.save(fitted, bad)
    assert sorted(os.listdir(store.path)) == before
    assert os.listdir(store.path / ".tmp") == []


def test_non_string_name_and_bad_metrics(store, fitted):
    with pytest.raises(InvalidNameError, match=re.escape("The name must be a string; got 3 of type int.")):
        store.save(fitted, 3)
    with pytest.raises(TypeError, match=re.escape("Metric 'acc' must be a real number; got 'high' of type str.")):
        store.save(fitted, "churn", metrics={"acc": "high"})
    with pytest.raises(ValueError, match=re.escape("format='onnx' is not supported")):
        store.save(fitted, "churn", format="onnx")
    assert store.list_versions("churn") == []


def test_from_location(tmp_path, store):
    assert PipelinePersistence.from_location(store) is store
    opened = PipelinePersistence.from_location(str(tmp_path / "other"))
    assert isinstance(opened, PipelinePersistence) and (tmp_path / "other" / "ml_toolbox_store.json").is_file()
    assert PipelinePersistence.from_location(tmp_path / "other").path == opened.path
    with pytest.raises(TypeError, match=re.escape("Expected a PipelinePersistence or a directory path; got 5 of type int.")):
        PipelinePersistence.from_location(5)


# ------------------------------------------------------------------------------- gates / aliases
def _three_versions(store, fitted):
    store.save(fitted, "churn", metrics={"accuracy": 0.80, "log_loss": 0.5})
    store.save(fitted, "churn", metrics={"accuracy": 0.90, "log_loss": 0.4})
    store.save(fitted, "churn", metrics={"accuracy": 0.85})


def test_absolute_gates(store, fitted):
    _three_versions(store, fitted)
    msg = "Refusing to promote 'churn' version 1 to 'production': gate accuracy>=0.85 failed: version 1 has accuracy=0.8."
    with pytest.raises(GateError, match=re.escape(msg)) as info:
        store.promote("churn", 1, "production", gates={"accuracy": 0.85})
    assert info.value.failed == ["gate accuracy>=0.85 failed: version 1 has accuracy=0.8"]
    assert store.aliases("churn") == {} and store.history("churn") == []
    assert store.promote("churn", 2, "production", gates={"accuracy": ">=0.85", "log_loss": "<=0.45"}) == 2
    assert store.aliases("churn") == {"production": 2}


def test_relative_gates_compare_with_current_holder(store, fitted):
    _three_versions(store, fitted)
    store.promote("churn", 2, "production", gates=["accuracy>=current"])  # nothing holds it: skipped
    msg = ("gate accuracy>=current-0.01 failed: version 3 has accuracy=0.85, version 2 (currently "
           "'production') has 0.9")
    with pytest.raises(GateError, match=re.escape(msg)):
        store.promote("churn", 3, "production", gates=["accuracy>=current-0.01"])
    store.promote("churn", 3, "production", gates=["accuracy>=current-0.1"])
    assert store.aliases("churn") == {"production": 3}


def test_gate_on_missing_metric_is_refused_not_passed(store, fitted):
    _three_versions(store, fitted)
    msg = "gate log_loss<=0.45 failed: version 3 has no metric 'log_loss' (its metrics: accuracy)"
    with pytest.raises(GateError, match=re.escape(msg)):
        store.promote("churn", 3, "staging", gates={"log_loss": "<=0.45"})
    store.promote("churn", 3, "staging")
    msg = "gate log_loss<=current failed: version 3 (currently 'staging') has no metric 'log_loss' to compare with"
    with pytest.raises(GateError, match=re.escape(msg)):
        store.promote("churn", 2, "staging", gates=["log_loss<=current"])
    assert store.aliases("churn") == {"staging": 3}


def test_all_failed_gates_are_named(store, fitted):
    _three_versions(store, fitted)
    with pytest.raises(GateError) as info:
        store.promote("churn", 1, "production", gates=["accuracy>=0.95", "log_loss<0.1", "f1>=0.5"])
    assert len(info.value.failed) == 3
    assert "gate f1>=0.5 failed: version 1 has no metric 'f1'" in str(info.value)


def test_rollback_steps_back_with_audited_history(tmp_path, fitted):
    clock = FakeClock()
    store = PipelinePersistence(tmp_path / "s", clock=clock)
    _three_versions(store, fitted)
    for version in (1, 2, 3):
        clock.advance(hours=1)
        store.promote("churn", version, "production", reason=f"release {version}")
    clock.advance(hours=1)
    assert store.rollback("churn", "production", reason="latency regression") == 2
    assert store.aliases("churn") == {"production": 2}
    assert store.rollback("churn", "production") == 1
    msg = "Cannot roll back 'production' of 'churn': version 1 is the first version it held (nothing to roll back to)."
    with pytest.raises(VersionNotFoundError, match=re.escape(msg)):
        store.rollback("churn", "production")
    history = store.history("churn", "production")
    assert [(e["action"], e["from"], e["to"]) for e in history] == [
        ("promote", None, 1), ("promote", 1, 2), ("promote", 2, 3), ("rollback", 3, 2), ("rollback", 2, 1)]
    assert history[3]["reason"] == "latency regression"
    assert history[3]["when"] == "2026-01-01T04:00:00.000000+00:00"
    with pytest.raises(VersionNotFoundError, match=re.escape("'churn' has no alias 'staging'. Aliases: production.")):
        store.rollback("churn", "staging")


def test_rollback_skips_deleted_versions(store, fitted):
    _three_versions(store, fitted)
    for version in (1, 2, 3):
        store.promote("churn", version, "production")
    store.promote("churn", 3, "staging")
    store.rollback("churn", "production")  # production -> 2, so 2 unaliased only once staging moves
    store.promote("churn", 1, "production")  # stack: 1, 2, 1
    store.delete_version("churn", 2)
    assert store.rollback("churn", "production") == 1


def test_alias_names_checked(store, fitted):
    store.save(fitted, "churn")
    with pytest.raises(InvalidNameError, match=re.escape("Invalid alias '3': an alias cannot be a number or 'latest'.")):
        store.promote("churn", 1, "3")
    with pytest.raises(InvalidNameError, match="Invalid alias 'a/b'"):
        store.promote("churn", 1, "a/b")


@given(value=st.floats(-1e6, 1e6), threshold=st.floats(-1e6, 1e6), op=st.sampled_from([">=", "<=", ">", "<"]))
@settings(max_examples=60, deadline=None)
def test_gate_absolute_matches_python_comparison(value, threshold, op):
    gate = Gate.parse(f"m{op}{threshold!r}")
    assert gate.check(value) == eval(f"value {op} threshold")  # noqa: S307 - the comparison itself
    assert Gate.parse(str(gate)) == gate


def test_gate_parsing_errors():
    with pytest.raises(ValueError, match=re.escape("Cannot parse the gate 'accuracy is high'.")):
        Gate.parse("accuracy is high")
    with pytest.raises(ValueError, match=re.escape("Cannot parse the gate 'a>=best'.")):
        Gate.parse("a>=best")
    with pytest.raises(TypeError, match="A gate must be a string"):
        Gate.parse(None)
    assert Gate.parse("log_loss<=current*1.1").bound(2.0) == pytest.approx(2.2)
    assert Gate.parse(0.5, metric="auc") == Gate("auc", ">=", 0.5)


# ------------------------------------------------------------------------------ diff / retention
def test_diff_shows_changed_params_metrics_schema(store):
    store.save(WithSchema(alpha=1.0, columns=("a", "b")), "m", metrics={"accuracy": 0.8, "f1": 0.7})
    store.save(WithSchema(alpha=2.0, columns=("a", "c")), "m", metrics={"accuracy": 0.9, "f1": 0.7})
    changes = store.diff("m", 1, 2)
    assert changes["params"] == {"alpha": (1.0, 2.0), "columns": (["a", "b"], ["a", "c"])}
    assert changes["metrics"] == {"accuracy": (0.8, 0.9)}
    assert changes["schema"] == {"columns.b": ("float64", None), "columns.c": (None, "float64")}
    assert store.diff("m", 1, 1) == {"params": {}, "metrics": {}, "schema": {}, "tags": {}, "environment": {}}


def test_diff_names_nested_parameters_as_set_params_does(store, fitted):
    store.save(fitted, "churn")
    store.save(make_pipeline(StandardScaler(), LogisticRegression(C=0.5)).fit(X, Y), "churn")
    params = store.manifest("churn", 2)["params"]
    assert params["steps"] == [["standardscaler", "StandardScaler"], ["logisticregression", "LogisticRegression"]]
    assert params["logisticregression__C"] == 0.5 and params["standardscaler__with_mean"] is True
    assert store.diff("churn", 1, 2)["params"] == {"logisticregression__C": (1.0, 0.5)}


def test_versions_saved_with_the_earlier_params_format_still_load_show_and_diff(tmp_path, fitted, capsys,
                                                                                monkeypatch):
    from ml_toolbox.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    # Earlier releases recorded get_params(deep=False), each nested estimator as its repr; signed here too.
    store = PipelinePersistence(tmp_path / "s", signing_key="key")
    store.save(fitted, "churn")
    store.save(make_pipeline(StandardScaler(), LogisticRegression(C=0.5)).fit(X, Y), "churn")
    earlier = {"memory": None, "steps": [["standardscaler", "StandardScaler()"],
                                         ["logisticregression", "LogisticRegression()"]],
               "transform_input": None, "verbose": False}
    _rewrite_manifest(store, "churn", 1, lambda m: m.__setitem__("params", earlier), key=b"key")
    np.testing.assert_array_equal(store.load("churn", 1).predict(X), fitted.predict(X))
    assert store.verify("churn") == [("churn", 1, None), ("churn", 2, None)]
    changes = store.diff("churn", 1, 2)["params"]
    assert changes["steps"] == (earlier["steps"], store.manifest("churn", 2)["params"]["steps"])
    assert changes["logisticregression__C"] == (None, 0.5)
    assert main(["--store", str(store.path), "--signing-key", "key", "show", "churn", "1"]) == 0
    assert "LogisticRegression()" in capsys.readouterr().out
    assert main(["--store", str(store.path), "--signing-key", "key", "diff", "churn", "1", "2"]) == 0
    assert "logisticregression__C" in capsys.readouterr().out


def test_prune_never_deletes_aliased_versions(store, fitted):
    for _ in range(6):
        store.save(fitted, "churn")
    store.promote("churn", 1, "production")
    store.promote("churn", 2, "staging")
    assert store.prune(keep_last=2, dry_run=True) == [("churn", 3), ("churn", 4)]
    assert store.list_versions("churn") == [1, 2, 3, 4, 5, 6]
    assert store.prune(keep_last=2) == [("churn", 3), ("churn", 4)]
    assert store.list_versions("churn") == [1, 2, 5, 6]
    assert store.prune("churn", keep_last=0) == [("churn", 5), ("churn", 6)]
    assert store.list_versions("churn") == [1, 2]
    assert store.save(fitted, "churn") == 7  # numbers are never reused
    # deleted 3-6 leave one tombstone, the highest: every save lists the name's directory
    assert sorted(e for e in os.listdir(store.path / "churn") if e.endswith(".deleted")) == ["v000006.deleted"]
    store.delete_version("churn", 7)
    assert store.save(fitted, "churn") == 8 and store.save(fitted, "churn") == 9
    store.delete_version("churn", 8)  # below version 9: no tombstone needed, and 7's is redundant now
    assert [e for e in os.listdir(store.path / "churn") if e.endswith(".deleted")] == []
    store.delete_version("churn", 9)
    assert [e for e in os.listdir(store.path / "churn") if e.endswith(".deleted")] == ["v000009.deleted"]
    assert store.save(fitted, "churn") == 10


def test_prune_older_than_uses_the_clock(tmp_path, fitted):
    clock = FakeClock()
    store = PipelinePersistence(tmp_path / "s", clock=clock)
    store.save(fitted, "churn")
    clock.advance(days=40)
    store.save(fitted, "churn")
    clock.advance(days=1)
    assert store.prune(older_than="30d") == [("churn", 1)]
    assert store.prune(older_than=dt.timedelta(hours=1), keep_last=1) == []
    with pytest.raises(ValueError, match=re.escape("prune needs keep_last=..., older_than=..., or both.")):
        store.prune()
    with pytest.raises(ValueError, match=re.escape("older_than='soon' is not an age")):
        store.prune(older_than="soon")
    with pytest.raises(ValueError, match=re.escape("keep_last must be a non-negative integer; got -1.")):
        store.prune(keep_last=-1)


def test_delete_version(store, fitted):
    store.save(fitted, "churn")
    store.save(fitted, "churn")
    store.promote("churn", 2, "production")
    msg = "Refusing to delete 'churn' version 2: alias 'production' points at it."
    with pytest.raises(AliasedVersionError, match=re.escape(msg)):
        store.delete_version("churn", 2)
    assert store.delete_version("churn", 1) == 1
    assert store.list_versions("churn") == [2]
    with pytest.raises(VersionNotFoundError, match=re.escape("'churn' has no version 1. Versions: 2")):
        store.load("churn", 1)
    assert store.save(fitted, "churn") == 3


# --------------------------------------------------------------------------------- seed API / skops
def test_seed_usage_pattern_2(tmp_path, fitted):
    persistence = PipelinePersistence(storage_dir=str(tmp_path / "production_pipelines"))
    state = {"pipeline": fitted, "params": fitted.get_params(deep=False), "fitted": True,
             "schema": {"columns": ["a", "b", "c", "d"]}}
    result = {"model": fitted[-1]}
    state_id = persistence.save_pipeline_state("production", state)
    model_id = persistence.save_model(result["model"], "production_model")
    assert (state_id, model_id) == (1, 1)
    loaded_state = persistence.load_pipeline_state("production")
    model = persistence.load_model("production_model")
    assert loaded_state["fitted"] is True and loaded_state["schema"] == state["schema"]
    np.testing.assert_array_equal(loaded_state["pipeline"].predict(X), fitted.predict(X))
    assert type(model) is LogisticRegression
    manifest = persistence.manifest("production")
    assert manifest["kind"] == "state" and manifest["schema"] == {"columns": ["a", "b", "c", "d"]}
    assert "steps" in manifest["params"]
    with pytest.raises(ValueError, match=re.escape("'production' holds state versions; save this model under another name.")):
        persistence.save_model(result["model"], "production")
    with pytest.raises(ValueError, match=re.escape("'production_model' version 1 holds a model, not a state.")):
        persistence.load_pipeline_state("production_model")
    with pytest.raises(TypeError, match="state must be a dict"):
        persistence.save_pipeline_state("production", [1])


def test_configurations_are_json(store):
    config = {"model": "LogisticRegression", "C": 0.5, "features": ["a", "b"]}
    assert store.save_config("cfg", config) == 1
    assert store.load_config("cfg") == config
    assert json.loads(_artifact(store, "cfg", 1).read_text()) == config
    with pytest.raises(TypeError, match="The configuration for 'cfg' is not JSON-serialisable"):
        store.save_config("cfg", {"f": object()})


def test_skops_format_loads_without_pickle(store, fitted):
    store.save(fitted, "safe", format="skops")
    assert _artifact(store, "safe", 1).name == "artifact.skops"
    loaded = store.load("safe")
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))


def test_skops_untrusted_types_refused_then_trusted(store):
    pipe = make_pipeline(FunctionTransformer(_record_load), StandardScaler()).fit(X, Y)
    store.save(pipe, "custom", format="skops")
    with pytest.raises(IntegrityError, match=re.escape("holds types that are not trusted: ['test_persistence._record_load']")):
        store.load("custom")
    loaded = store.load("custom", trusted=["test_persistence._record_load"])
    assert loaded.steps[0][1].func is _record_load


# ------------------------------------------------------------------------------ crash / concurrency
_SAVER = textwrap.dedent("""
    import sys, numpy as np
    from ml_toolbox.persistence import PipelinePersistence
    store = PipelinePersistence(sys.argv[1])
    payload = {"w": np.arange(300_000, dtype=np.float64)}
    for i in range(int(sys.argv[2])):
        store.save(payload, sys.argv[3], metrics={"i": i})
        if i == 0:
            print("ready", flush=True)  # imports done, one version saved: kills now land mid-save
""")


def _run_saver(store_path, count, name):
    return subprocess.Popen([sys.executable, "-c", _SAVER, str(store_path), str(count), name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sigkill_during_saves_leaves_only_complete_versions(tmp_path):
    rng = random.Random(1234)
    path = tmp_path / "store"
    store = PipelinePersistence(path)
    interrupted = 0
    for run in range(5):
        proc = _run_saver(path, 10_000, "crashy")
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        results = store.verify("crashy")
        assert results, f"run {run}: no version was saved before the kill"
        assert all(problem is None for _, _, problem in results), results
        for number in store.list_versions("crashy")[-3:]:  # the dead process's own, and the last clean save
            assert store.load("crashy", number)["w"].shape in {(300_000,), (3,)}
        assert store.load("crashy")["w"].shape == (300_000,)  # the killed process saved at least once
        interrupted += any(not e.endswith(".tmp") for e in os.listdir(path / ".tmp"))
        before = store.list_versions("crashy")
        new = store.save({"w": np.ones(3)}, "crashy")
        assert new > before[-1] and store.list_versions("crashy") == before + [new]
        np.testing.assert_array_equal(store.load("crashy")["w"], np.ones(3))
        # the dead save's staging directory is gone after the next save
        assert [e for e in os.listdir(path / ".tmp") if not e.endswith(".tmp")] == []
    assert interrupted >= 1  # at least one kill landed in the middle of a save (the loop is all saves)


def test_failed_save_leaves_nothing(store):
    import threading

    threads = threading.active_count()
    unpicklable = {"big": np.zeros(1_000_000), "f": lambda: 1}  # 8 MB written (hash thread running), then fails
    with pytest.raises(Exception, match="lambda"):
        store.save(unpicklable, "broken")
    assert store.list_versions("broken") == []
    assert os.listdir(store.path / ".tmp") == []
    assert threading.active_count() == threads
    assert store.save({"ok": 1}, "broken") == 1


def test_leftovers_of_dead_writers_are_cleaned(store, fitted):
    tmp = store.path / ".tmp"
    (tmp / "deadbeef").mkdir()  # a staging directory whose lock file is gone
    (tmp / "deadbeef" / "artifact.joblib").write_bytes(b"partial")
    (tmp / ".aliases.json.999999999.1.tmp").write_text("{")  # a dead process's alias file
    store.save(fitted, "churn")
    assert os.listdir(tmp) == []
    assert store.list_versions("churn") == [1]


@pytest.mark.parametrize("algorithms", [("blake3",), ("blake3", "sha256"), ("sha256",), ("xxh3_128",)])
def test_hashing_writer_digests_exactly_the_bytes_written(tmp_path, algorithms):
    import xxhash

    rng = np.random.default_rng(0)
    pieces = [b"x", memoryview(b"abc"), bytearray(b"defg")]  # small ones are gathered into blocks ...
    pieces += [rng.bytes(n) for n in (70_000, 2_000_000, 5, 9_000_000, 300)]  # ... large ones pass through
    expected = b"".join(bytes(p) for p in pieces)
    with open(tmp_path / "f", "xb") as raw:
        writer = _store_io.HashingWriter(raw, algorithms)
        for piece in pieces:
            position = writer.tell()
            assert writer.write(piece) == len(bytes(piece)) and writer.tell() == position + len(bytes(piece))
        digests = writer.digests()
    assert (tmp_path / "f").read_bytes() == expected
    assert digests["size"] == len(expected)
    reference = {"blake3": blake3.blake3, "sha256": hashlib.sha256, "xxh3_128": xxhash.xxh3_128}
    assert digests == {"size": len(expected), **{a: reference[a](expected).hexdigest() for a in algorithms}}


def test_staging_directories_are_kept_while_their_owner_lives(tmp_path, fitted):
    store = PipelinePersistence(tmp_path / "s")
    store.save(fitted, "churn")
    locks, tmp = store.path / ".locks", store.path / ".tmp"
    assert len(os.listdir(locks)) == 1  # this store object's lock, held while it lives
    (locks / "live0000").touch()
    live = _store_io.acquire_lock(str(locks / "live0000"))  # another process's save in progress
    try:
        (tmp / "live0000-1").mkdir()
        (tmp / "dead0000-1").mkdir()  # a killed process's save: nobody holds .locks/dead0000
        (locks / "dead0000").touch()
        (tmp / "gone0000-1").mkdir()  # its owner's lock file is gone too
        store.save(fitted, "churn")
        assert sorted(os.listdir(tmp)) == ["live0000-1"]
        assert "dead0000" not in os.listdir(locks) and "live0000" in os.listdir(locks)
    finally:
        live.release()
    store.save(fitted, "churn")
    assert os.listdir(tmp) == []
    other = PipelinePersistence(tmp_path / "s")
    other.save(fitted, "churn")
    assert len(os.listdir(locks)) == 2
    del other
    gc.collect()
    assert len(os.listdir(locks)) == 1  # released and unlinked with its store object
    copy = pickle.loads(pickle.dumps(store))  # a copy takes its own lock
    (locks / "killed00").touch()  # a lock a killed process left, with no staging directory
    assert copy.save(fitted, "churn") == 5 and len(os.listdir(locks)) == 2  # gone as the copy took its own


@given(config=st.dictionaries(st.text(min_size=1, max_size=8),
                              st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=8),
                                        st.lists(st.booleans(), max_size=3)), max_size=5),
       metrics=st.dictionaries(st.text(min_size=1, max_size=8), st.floats(-1e9, 1e9), max_size=4))
@settings(max_examples=25, deadline=None)
def test_configs_and_metrics_round_trip(tmp_path_factory, config, metrics):
    store = PipelinePersistence(tmp_path_factory.mktemp("prop"))
    store.save_config("cfg", config)
    assert store.load_config("cfg") == config
    store.save({"x": 1}, "obj", metrics=metrics)
    assert store.manifest("obj")["metrics"] == metrics


def test_concurrent_saves_from_processes_get_distinct_versions(tmp_path):
    path = tmp_path / "store"
    store = PipelinePersistence(path)
    procs = [_run_saver(path, 5, "shared") for _ in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    assert store.list_versions("shared") == list(range(1, 21))
    metrics = sorted(store.manifest("shared", v)["metrics"]["i"] for v in range(1, 21))
    assert metrics == sorted(list(range(5)) * 4)
    assert all(problem is None for _, _, problem in store.verify("shared"))


# ------------------------------------------------------------------- through the core pipelines
def _frame():
    from sklearn.datasets import load_breast_cancer

    data, target = load_breast_cancer(return_X_y=True, as_frame=True)
    return data.iloc[:200], target.iloc[:200]


def test_unified_pipeline_save_and_load_by_alias(tmp_path):
    from ml_toolbox import UnifiedMLPipeline

    data, target = _frame()
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())], model=LogisticRegression(max_iter=500))
    pipe.fit(data, target)
    assert pipe.save(tmp_path / "models", name="churn", metrics={"accuracy": 0.91}, tags={"run": "a"}) == 1
    pipe.set_params(model=LogisticRegression(C=0.1, max_iter=500)).fit(data, target)
    assert pipe.save(str(tmp_path / "models"), name="churn", metrics={"accuracy": 0.93}, message="C=0.1") == 2
    store = PipelinePersistence(tmp_path / "models")
    store.promote("churn", 1, "production", gates={"accuracy": 0.9})
    production = UnifiedMLPipeline.load(store, name="churn", version="production")
    latest = UnifiedMLPipeline.load(tmp_path / "models", name="churn")
    assert isinstance(production, UnifiedMLPipeline)
    np.testing.assert_array_equal(latest.predict_proba(data), pipe.predict_proba(data))
    assert production.get_params()["model__C"] == 1.0
    manifest = store.manifest("churn", 2)
    assert manifest["object_type"] == "ml_toolbox.unified.UnifiedMLPipeline"
    assert manifest["schema"] == json.loads(json.dumps(pipe.input_schema_.to_dict()))
    assert manifest["message"] == "C=0.1" and manifest["metrics"] == {"accuracy": 0.93}
    assert "model" in manifest["params"] and "features" in manifest["params"]
    assert manifest["params"]["model"] == "LogisticRegression" and manifest["params"]["features"] == [["scale", "StandardScaler"]]
    assert store.diff("churn", 1, 2)["params"] == {"model__C": (1.0, 0.1)}  # the name set_params takes
    with pytest.raises(VersionNotFoundError, match=re.escape("'churn' has no version 'staging'.")):
        UnifiedMLPipeline.load(store, name="churn", version="staging")


def test_example_script_runs():
    script = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "persistence.py")
    proc = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "saved state version 1 and model version 1" in proc.stdout
    assert "refused: Refusing to promote 'cancer' version 2 to 'production': gate accuracy>=current-0.01" in proc.stdout


def test_seed_usage_pattern_2_with_unified_pipeline(tmp_path, monkeypatch):
    from ml_toolbox import MLToolbox, UnifiedMLPipeline

    X_frame, y = _frame()
    toolbox = MLToolbox()
    pipeline = UnifiedMLPipeline(toolbox)
    result = pipeline.execute(X_frame, y, mode="train")
    monkeypatch.chdir(tmp_path)  # the seed writes "production_pipelines" relative to the working directory

    persistence = PipelinePersistence(storage_dir="production_pipelines")
    state_id = persistence.save_pipeline_state('production', pipeline.state)
    model_id = persistence.save_model(result['model'], 'production_model')
    state = persistence.load_pipeline_state('production')
    model = persistence.load_model('production_model')

    assert (state_id, model_id) == (1, 1)
    assert state["fitted"] is True and state["schema"] == pipeline.state["schema"]
    np.testing.assert_array_equal(state["pipeline"].predict(X_frame), pipeline.predict(X_frame))
    assert type(model) is type(result["model"])
    assert (tmp_path / "production_pipelines" / "production" / "v000001" / "manifest.json").is_file()


def test_the_store_displays_its_names_versions_and_alias_history(tmp_path):
    import io

    from rich.console import Console
    from sklearn.linear_model import LogisticRegression

    from ml_toolbox import PipelinePersistence

    store = PipelinePersistence(tmp_path / "store")
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    store.save(model, "churn", metrics={"accuracy": 0.91}, message="first <try>")
    store.save(model, "churn", metrics={"accuracy": 0.93})
    store.promote("churn", 1, "production", reason="baseline")

    console = Console(file=io.StringIO(), width=200)
    console.print(store)
    console.print(store.show("churn"))
    text = console.file.getvalue()
    assert "churn" in text and "production->1" in text
    assert "accuracy=0.91" in text and "accuracy=0.93" in text
    assert "promote" in text and "baseline" in text

    html = store.show("churn")._repr_html_()
    assert "<caption>churn: 2 version(s)</caption>" in html and "<caption>churn: alias history</caption>" in html
    assert "first &lt;try&gt;" in html  # escaped
    assert "<td>production</td>" in html
    assert "<caption>Store " in store._repr_html_()
    with pytest.raises(LookupError, match="nope"):
        store.show("nope")
