"""Orchestration, side by side with scikit-learn: parallel branches and cached refits.

1. Two independent expensive branches (two PCA fits on 50k x 200): a graph FeaturePipeline run
   serially and with ``n_jobs=2``, beside ``sklearn.pipeline.FeatureUnion`` serial and
   ``n_jobs=2`` (target: ours parallel >= 1.6x faster than ours serial), both on joblib's
   threading backend. BLAS is limited to one thread per branch, so the ratio measures
   stage-level parallelism, not BLAS threading. Needs two idle cores to show anything.
2. A warm cached refit of PCA (50k x 200) -> LogisticRegression (``memory=``) against an uncached
   fit, beside scikit-learn's ``Pipeline(memory=...)`` (target: ours warm <= 0.2x uncached).

Run: ``python -m benchmarks orchestration`` (or ``python benchmarks/bench_orchestration.py``).
"""

import shutil
import tempfile

import numpy as np
from joblib import parallel_config
from rich.console import Console
from rich.table import Table
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from threadpoolctl import threadpool_limits

from ml_toolbox import FeaturePipeline, PipelineStage, UnifiedMLPipeline

try:
    from ._timing import interleaved
except ImportError:  # run as a script
    from _timing import interleaved

N_ROWS, N_COLS, N_COMPONENTS = 50_000, 200, 50


def _data():
    rng = np.random.RandomState(0)
    X = rng.rand(N_ROWS, N_COLS)
    y = (X[:, :5].sum(axis=1) + rng.normal(scale=0.5, size=N_ROWS) > 2.5).astype(int)
    return X, y


def _branches():
    return [PipelineStage(PCA(N_COMPONENTS, svd_solver="randomized", random_state=0), "pca_a",
                          depends_on=[]),
            PipelineStage(PCA(N_COMPONENTS, svd_solver="randomized", random_state=1), "pca_b",
                          depends_on=[])]


def _union(n_jobs):
    return FeatureUnion([("pca_a", PCA(N_COMPONENTS, svd_solver="randomized", random_state=0)),
                         ("pca_b", PCA(N_COMPONENTS, svd_solver="randomized", random_state=1))],
                        n_jobs=n_jobs)


def bench_parallel(X, repeat=2):
    serial = FeaturePipeline(_branches())
    parallel = FeaturePipeline(_branches(), n_jobs=2)
    # Threads: both PCA fits release the GIL in BLAS and X (80 MB) is shared, not copied to
    # worker processes; the same backend for ours and FeatureUnion.
    with threadpool_limits(limits=1), parallel_config(backend="threading"):
        same = np.allclose(serial.fit_transform(X), parallel.fit_transform(X))
        times = interleaved({
            "ours serial": lambda: serial.fit(X),
            "ours n_jobs=2": lambda: parallel.fit(X),
            "FeatureUnion serial": lambda: _union(None).fit(X),
            "FeatureUnion n_jobs=2": lambda: _union(2).fit(X),
        }, repeat=repeat)
    return times, same


def bench_cache(X, y, repeat=3):
    ours_dir, sk_dir = tempfile.mkdtemp(), tempfile.mkdtemp()
    try:
        def ours(memory):
            features = FeaturePipeline([("pca", PCA(N_COMPONENTS, random_state=0))],
                                       memory=memory)
            return UnifiedMLPipeline(features=features, model=LogisticRegression())

        def sk(memory):
            return Pipeline([("pca", PCA(N_COMPONENTS, random_state=0)),
                             ("model", LogisticRegression())], memory=memory)

        ours(ours_dir).fit(X, y)  # fill both caches
        sk(sk_dir).fit(X, y)
        same = np.allclose(ours(ours_dir).fit(X, y).predict_proba(X[:100]),
                           sk(None).fit(X, y).predict_proba(X[:100]))
        times = interleaved({
            "ours uncached": lambda: ours(None).fit(X, y),
            "ours warm cache": lambda: ours(ours_dir).fit(X, y),
            "sklearn uncached": lambda: sk(None).fit(X, y),
            "sklearn warm memory=": lambda: sk(sk_dir).fit(X, y),
        }, repeat=repeat)
    finally:
        shutil.rmtree(ours_dir, ignore_errors=True)
        shutil.rmtree(sk_dir, ignore_errors=True)
    return times, same


def main(console=None):
    console = console or Console()
    X, y = _data()
    par, par_same = bench_parallel(X)
    table = Table(title=f"Two independent PCA({N_COMPONENTS}) branches on {N_ROWS:,} x {N_COLS} "
                        "(threading backend, BLAS: 1 thread per branch)")
    for col in ("", "serial (s)", "n_jobs=2 (s)", "speed-up", "target"):
        table.add_column(col, justify="right" if col else "left")
    ours_speedup = par["ours serial"] / par["ours n_jobs=2"]
    sk_speedup = par["FeatureUnion serial"] / par["FeatureUnion n_jobs=2"]
    table.add_row("ml_toolbox graph FeaturePipeline", f"{par['ours serial']:.3f}",
                  f"{par['ours n_jobs=2']:.3f}", f"{ours_speedup:.2f}x", ">= 1.6x")
    table.add_row("sklearn FeatureUnion", f"{par['FeatureUnion serial']:.3f}",
                  f"{par['FeatureUnion n_jobs=2']:.3f}", f"{sk_speedup:.2f}x", "")
    table.add_row("ours n_jobs=2 / FeatureUnion n_jobs=2", "", "",
                  f"{par['ours n_jobs=2'] / par['FeatureUnion n_jobs=2']:.2f}x", "")
    console.print(table)
    console.print(f"parallel output equals serial output (allclose): {par_same}")

    cache, cache_same = bench_cache(X, y)
    table = Table(title=f"Refit of PCA({N_COMPONENTS}) -> LogisticRegression on {N_ROWS:,} x "
                        f"{N_COLS}")
    for col in ("", "uncached fit (s)", "warm refit (s)", "warm / uncached", "target"):
        table.add_column(col, justify="right" if col else "left")
    ours_ratio = cache["ours warm cache"] / cache["ours uncached"]
    sk_ratio = cache["sklearn warm memory="] / cache["sklearn uncached"]
    table.add_row("ml_toolbox memory= (xxh3 key)", f"{cache['ours uncached']:.3f}",
                  f"{cache['ours warm cache']:.3f}", f"{ours_ratio:.3f}x", "<= 0.2x")
    table.add_row("sklearn Pipeline(memory=)", f"{cache['sklearn uncached']:.3f}",
                  f"{cache['sklearn warm memory=']:.3f}", f"{sk_ratio:.3f}x", "")
    console.print(table)
    console.print(f"cached pipeline predicts as scikit-learn's (allclose): {cache_same}")
    return {"parallel_speedup": ours_speedup, "featureunion_speedup": sk_speedup,
            "cache_ratio": ours_ratio, "sklearn_cache_ratio": sk_ratio}


if __name__ == "__main__":
    main()
