"""What tracking to the run store costs, side by side in one run.

- a 100k x 20 fit (SimpleImputer, StandardScaler, LogisticRegression) with and without
  ``tracking=RunStore(...)``, interleaved: target within 1.01x;
- a single-row predict of the same pipelines (tracking records fits, not predictions): target
  nothing measurable (within the noise, ~1.02x);
- logging one metric: the run store's ``log_metrics`` (a buffered append, written in one
  transaction at the end) against ``mlflow.log_metric`` on a local SQLite backend: target >= 50x
  cheaper;
- 10,000 epoch metrics logged and written to the store, end to end: target < 0.1 s.

Run: ``make bench BENCH=runs`` (needs the ``bench`` extra, which brings mlflow).
"""

from __future__ import annotations

import tempfile
import time

from rich.console import Console
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression

from benchmarks._timing import interleaved, interleaved_median, ratio_table
from benchmarks.bench_monitor import make_data  # the same 100k x 20 DataFrame (1% missing)
from ml_toolbox import UnifiedMLPipeline
from ml_toolbox.runs import RunStore, track

FIT_REPEATS = 7
SINGLE_CALLS = 1500
MLFLOW_CALLS = 100
EPOCH_METRICS = 10_000


def pipeline(tracking=None):
    return UnifiedMLPipeline(features=[("impute", SimpleImputer())],
                             model=LogisticRegression(max_iter=200), tracking=tracking)


def log_metric_costs(directory):
    """Seconds per metric: run store vs mlflow.log_metric (SQLite backend), same process."""
    import mlflow

    store = RunStore(f"{directory}/runs")
    with track(pipeline(), "bench", trackers=[store]) as run:
        start = time.perf_counter()
        for step in range(MLFLOW_CALLS * 50):
            run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        ours = (time.perf_counter() - start) / (MLFLOW_CALLS * 50)
    mlflow.set_tracking_uri(f"sqlite:///{directory}/mlflow.db")
    mlflow.set_experiment("bench")
    with mlflow.start_run():
        mlflow.log_metric("loss", 1.0, step=0)  # warm: tables made
        start = time.perf_counter()
        for step in range(MLFLOW_CALLS):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step + 1)
        theirs = (time.perf_counter() - start) / MLFLOW_CALLS
    return ours, theirs


def epoch_metrics_seconds(directory):
    """Seconds to log 10,000 epoch metrics and have them written (run start to run end)."""
    store = RunStore(f"{directory}/epochs")
    with track(pipeline(), "warm", trackers=[store]):
        pass  # the file and tables exist before the measured run
    start = time.perf_counter()
    with track(pipeline(), "bench", trackers=[store]) as run:
        for epoch in range(EPOCH_METRICS):
            run.log_metrics({"train_loss": 1.0 / (epoch + 1)}, step=epoch)
    took = time.perf_counter() - start
    assert len(store.metric_history(run.id, "train_loss")) == EPOCH_METRICS
    return took


def tracking_overhead(store, X, y, repeat=FIT_REPEATS):
    """Seconds a tracked fit spends on tracking, best of ``repeat`` each: the run machinery
    (start, parameters, records, end: the run store's two transactions) around a no-op body, plus
    the data fingerprint's content hash computed in the caller's thread. (In a fit of data this
    large the hash runs in a thread alongside the fit, so this sum is an upper bound.)"""
    from ml_toolbox.runs._active import content_hash, fingerprint

    machinery = hashing = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        with track(pipeline(store), "fit", trackers=[store]):
            pass
        fingerprint(X, y, content=False)
        middle = time.perf_counter()
        content_hash(X, y)
        end = time.perf_counter()
        machinery = min(machinery, middle - start)
        hashing = min(hashing, end - middle)
    return machinery, hashing


def main():
    console = Console()
    X, y = make_data()
    with tempfile.TemporaryDirectory() as directory:
        store = RunStore(f"{directory}/fit")
        plain, tracked = pipeline(), pipeline(store)
        fits = interleaved({"tracked": lambda: tracked.fit(X, y),
                            "plain": lambda: plain.fit(X, y)}, repeat=FIT_REPEATS)
        # the cost itself, measured directly: what a tracked fit does besides fitting
        overhead = tracking_overhead(store, X, y)
        row = X.iloc[[0]]
        single = interleaved_median({"tracked": lambda: tracked.predict(row),
                                     "plain": lambda: plain.predict(row)}, calls=SINGLE_CALLS)
        ours, theirs = log_metric_costs(directory)
        epochs = epoch_metrics_seconds(directory)
        n_runs = len(store.runs())
    ratio_table("Run store tracking: fit 100k x 20, single-row predict (tracked / plain)", [
        ("fit, 100k x 20 (best of 7)", (fits["tracked"], fits["plain"]), "<= 1.01x"),
        ("predict, 1 row (median)", (single["tracked"], single["plain"]), "~1.00x"),
    ], columns=("tracked", "plain"), target=True)
    ratio_table("Logging one metric (run store / mlflow.log_metric on local SQLite)", [
        ("log one metric", (ours, theirs), "<= 0.02x (50x cheaper)"),
    ], columns=("run store", "mlflow"), unit="us", scale=1e6, target=True)
    machinery, hashing = overhead
    console.print(f"tracking's own cost per fit (best of {FIT_REPEATS}): run machinery "
                  f"{machinery * 1e3:.1f} ms + content hash {hashing * 1e3:.1f} ms = "
                  f"{(machinery + hashing) / fits['plain']:.2%} of the plain fit (target <= 1%)")
    console.print(f"10,000 epoch metrics logged and written: {epochs * 1e3:.1f} ms "
                  f"(target < 100 ms); mlflow / run store per metric: {theirs / ours:,.0f}x; "
                  f"{n_runs} tracked fits recorded")


if __name__ == "__main__":
    main()
