"""Save and load through the versioned store vs raw joblib (and MLflow, when installed).

Three objects: a small fitted pipeline, a 200-tree random forest, and a pipeline-like dict holding a
200 MB array. The store's times include everything it does: hashing while writing (BLAKE3 by default,
on several threads for large blocks), the manifest and the atomic rename on save (the default,
``durable=False``: no fsync, as ``joblib.dump`` does none; the "durable=True" column adds the fsyncs,
the "digest=sha256" column records SHA-256 instead of BLAKE3); on load, the one read into private
memory, the size and digest check there (before anything is deserialised) and the library-version
check. Also: an ``mmap_mode`` load of the 200 MB array, verified and size-only, against a full load,
with the resident memory it adds (private memory: what was copied; file pages: what was mapped in).

Run: ``python -m benchmarks`` (all) or ``python benchmarks/bench_persistence.py``.
"""

import os
import shutil
import tempfile
import time

import joblib
import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ml_toolbox.persistence import PipelinePersistence


def _best(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _interleaved(variants, repeat):
    """Best time of each variant, running them in turn; a variant returns its clean-up (untimed)."""
    best = [float("inf")] * len(variants)
    for _ in range(repeat):
        for i, variant in enumerate(variants):
            start = time.perf_counter()
            cleanup = variant()
            best[i] = min(best[i], time.perf_counter() - start)
            cleanup()
    return best


def _no_cleanup(fn):
    def run():
        fn()
        return lambda: None
    return run


def _resident():
    """(private, file-backed) resident bytes of this process (Linux; zeros elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f if line.startswith(("RssAnon", "RssFile")))
    except OSError:  # pragma: no cover - not Linux
        return 0, 0
    return tuple(int(fields.get(k, "0 kB").split()[0]) * 1024 for k in ("RssAnon", "RssFile"))


def _resident_growth(load):
    """How much private memory (copies) and how many file pages one load adds while its result lives."""
    import gc

    gc.collect()
    before = _resident()
    result = load()
    after = _resident()
    del result
    gc.collect()
    return after[0] - before[0], after[1] - before[1]


def _objects():
    X, y = make_classification(n_samples=2000, n_features=20, random_state=0)
    small = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    forest = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=200, max_depth=8,
                                                                    random_state=0, n_jobs=2)).fit(X, y)
    big = {"pipeline": small, "embedding": np.random.default_rng(0).random(25_000_000)}  # 200 MB float64
    return [("small pipeline", small, 30), ("random forest (200 trees)", forest, 5), ("200 MB array", big, 3)]


def _mlflow():
    try:
        import mlflow.sklearn  # noqa: F401
    except Exception:  # not installed (the 'bench' extra), or broken
        return None
    import mlflow.sklearn

    return mlflow.sklearn


def main(console=None):
    console = console or Console()
    work = tempfile.mkdtemp(prefix="bench_persistence_")
    mlflow_sklearn = _mlflow()
    try:
        store = PipelinePersistence(os.path.join(work, "store"))  # the defaults
        durable = PipelinePersistence(os.path.join(work, "durable"), durable=True)
        sha = PipelinePersistence(os.path.join(work, "sha"), digest="sha256")
        raw_path = os.path.join(work, "raw.joblib")
        table = Table(title="Versioned store vs raw joblib (best of N, ms)")
        for col in ("object", "size", "joblib.dump", "store.save", "ratio", "durable=True", "ratio",
                    "digest=sha256", "ratio", "joblib.load", "store.load", "ratio"):
            table.add_column(col, justify="right")
        if mlflow_sklearn is not None:
            table.add_column("mlflow save", justify="right")
            table.add_column("store faster by", justify="right")
            table.add_column("mlflow load", justify="right")
        rows = []
        for label, obj, repeat in _objects():
            name = label.split()[0] + "_" + label.split()[1].strip("()")
            counter = iter(range(10_000))

            def raw_dump():  # a new file each time, as the store writes one per version
                path = os.path.join(work, f"raw{next(counter)}.joblib")
                joblib.dump(obj, path)
                return lambda: os.unlink(path)

            def saver(target):
                def save_once():
                    version = target.save(obj, name)
                    return lambda: target.delete_version(name, version)
                return save_once

            # Interleaved, and each file removed right after it is timed: no variant pays for another's
            # dirty pages being written back, nor for running later on a warmer or busier machine.
            dump, save, save_durable, save_sha = _interleaved(
                [raw_dump, saver(store), saver(durable), saver(sha)], repeat)
            joblib.dump(obj, raw_path)
            store.save(obj, name)
            load, sload = _interleaved([_no_cleanup(lambda: joblib.load(raw_path)),
                                        _no_cleanup(lambda: store.load(name))], repeat)
            size = os.path.getsize(raw_path)
            row = [label, f"{size / 1e6:.1f} MB", f"{dump * 1e3:.2f}", f"{save * 1e3:.2f}", f"{save / dump:.2f}x",
                   f"{save_durable * 1e3:.2f}", f"{save_durable / dump:.2f}x",
                   f"{save_sha * 1e3:.2f}", f"{save_sha / dump:.2f}x",
                   f"{load * 1e3:.2f}", f"{sload * 1e3:.2f}", f"{sload / load:.2f}x"]
            if mlflow_sklearn is not None:
                if isinstance(obj, dict):
                    row += ["-", "-", "-"]  # not an estimator: mlflow.sklearn does not take it
                else:
                    paths = []
                    extra = {}
                    try:  # MLflow 3 saves with skops by default and wants the non-default types named
                        import skops.io

                        untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(obj))
                        if untrusted:
                            extra["skops_trusted_types"] = untrusted
                    except ImportError:
                        pass

                    def mlflow_save():
                        paths.append(os.path.join(work, f"mlflow_{name}_{len(paths)}"))
                        mlflow_sklearn.save_model(obj, paths[-1], **extra)  # otherwise MLflow's defaults

                    msave = _best(mlflow_save, min(repeat, 2))
                    mload = _best(lambda: mlflow_sklearn.load_model(paths[0]), min(repeat, 3))
                    row += [f"{msave * 1e3:.1f}", f"{msave / save:.0f}x", f"{mload * 1e3:.2f}"]
            rows.append(row)
            table.add_row(*row)
            if isinstance(obj, dict):
                sha.save(obj, name)
                full, store_full, mmap_raw, mmap_size, mmap_verified, mmap_sha = _interleaved([
                    _no_cleanup(lambda: joblib.load(raw_path)),
                    _no_cleanup(lambda: store.load(name)),
                    _no_cleanup(lambda: joblib.load(raw_path, mmap_mode="r")),
                    _no_cleanup(lambda: store.load(name, mmap_mode="r", verify="size")),
                    _no_cleanup(lambda: store.load(name, mmap_mode="r")),
                    _no_cleanup(lambda: sha.load(name, mmap_mode="r")),
                ], repeat)
                array_bytes = obj["embedding"].nbytes
                memory = {label: _resident_growth(load) for label, load in (
                    ("verified", lambda: store.load(name, mmap_mode="r")),
                    ("size", lambda: store.load(name, mmap_mode="r", verify="size")))}
        console.print(table)

        mm = Table(title="200 MB array: mmap_mode='r' load vs a full joblib.load (ms)")
        for col in ("load", "ms", "fraction of a full joblib.load", "private memory added",
                    "file pages mapped in"):
            mm.add_column(col, justify="right")
        for label, value, grown in (
                ("joblib.load (full)", full, None), ("store.load (full, BLAKE3 verified)", store_full, None),
                ("joblib.load mmap_mode='r'", mmap_raw, None),
                ("store.load mmap, verify='size' (trusted store)", mmap_size, memory["size"]),
                ("store.load mmap, BLAKE3 verified (default)", mmap_verified, memory["verified"]),
                ("store.load mmap, SHA-256 verified", mmap_sha, None)):
            cells = ["-", "-"] if grown is None else [f"{grown[0] / array_bytes:.1%} of the array",
                                                      f"{grown[1] / array_bytes:.0%}"]
            mm.add_row(label, f"{value * 1e3:.2f}", f"{value / full:.3f}", *cells)
        console.print(mm)
        if mlflow_sklearn is None:
            console.print("mlflow is not installed (pip install 'ml_toolbox[bench]'): MLflow columns skipped.")
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
