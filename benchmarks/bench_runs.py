"""What tracking to the run store costs, side by side in one run.

- a 100k x 20 fit (SimpleImputer, LogisticRegression) with and without
  ``tracking=RunStore(...)``: target within 1.01x. Fits come in pairs (tracked and plain, the order
  alternating from pair to pair so drift favours neither); the figure is the median of the pairs'
  ratios, with its quartiles, and beside it tracking's direct cost as a share of the adjacent plain
  fit, also a median over pairs: the run machinery around a no-op plus the data's content hash in
  the caller's thread (an upper bound), and what the caller's thread really spends (the hash on
  the hashing thread, alongside the fit): target <= 1%;
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
from rich.table import Table
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression

from benchmarks._timing import interleaved_median, ratio_table
from benchmarks.bench_monitor import make_data  # the same 100k x 20 DataFrame (1% missing)
from ml_toolbox import UnifiedMLPipeline
from ml_toolbox.runs import RunStore, track

FIT_PAIRS = 15
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


def direct_cost(store, X, y):
    """Seconds a tracked fit spends on tracking itself.

    - the run machinery (start, parameters, records, end: the run store's two transactions) around
      a no-op body, without data; and the fingerprint's content hash computed in the caller's
      thread: their sum is an upper bound (the old figure);
    - what the caller's thread really spends in a tracked fit of this data: the run entered with
      ``X, y`` (fingerprint; the hash handed to the hashing thread) and ended, the hash waited for
      inside the body (in a fit it runs alongside: a fit this size takes longer than the hash), in
      wall time and in the thread's CPU time.
    """
    from ml_toolbox.runs._active import content_hash, fingerprint

    cpu0, start = time.thread_time(), time.perf_counter()
    with track(pipeline(store), "fit", trackers=[store]):
        pass
    fingerprint(X, y, content=False)
    middle = time.perf_counter()
    content_hash(X, y)
    hashing = time.perf_counter() - middle
    machinery, old_cpu = middle - start, time.thread_time() - cpu0
    cpu0, start = time.thread_time(), time.perf_counter()
    manager = track(pipeline(store), "fit", X, y, trackers=[store])
    run = manager.__enter__()
    entered, entered_cpu = time.perf_counter(), time.thread_time()
    if run._hashing is not None:
        run._hashing.result()  # what a fit this long overlaps
    body, body_cpu = time.perf_counter() - entered, time.thread_time() - entered_cpu
    manager.__exit__(None, None, None)
    caller = time.perf_counter() - start - body
    caller_cpu = time.thread_time() - cpu0 - body_cpu
    return machinery, hashing, old_cpu, caller, caller_cpu


def paired_fits(store, X, y, pairs=FIT_PAIRS):
    """Per pair: (tracked fit / plain fit, machinery / plain fit, hash / plain fit, plain fit s,
    CPU seconds of machinery + hash in this thread / CPU seconds of the plain fit (the process),
    the caller's part of a tracked fit / plain fit, its CPU / the plain fit's CPU)."""
    import gc

    plain, tracked = pipeline(), pipeline(store)
    plain.fit(X, y), tracked.fit(X, y)  # warm both (imports, first allocations)
    out = []
    for i in range(pairs):
        times, cpu = {}, {}
        for name in (("tracked", "plain") if i % 2 else ("plain", "tracked")):
            gc.collect()
            cpu0, start = time.process_time(), time.perf_counter()
            (tracked if name == "tracked" else plain).fit(X, y)
            times[name], cpu[name] = time.perf_counter() - start, time.process_time() - cpu0
        gc.collect()
        machinery, hashing, direct_cpu, caller, caller_cpu = direct_cost(store, X, y)
        base = times["plain"]
        out.append((times["tracked"] / base, machinery / base, hashing / base, base,
                    direct_cpu / cpu["plain"], caller / base, caller_cpu / cpu["plain"],
                    caller, caller_cpu))
    return out


def _quartiles(values):
    import numpy as np

    return [float(q) for q in np.percentile(values, [25, 50, 75])]


def main():
    console = Console()
    X, y = make_data()
    with tempfile.TemporaryDirectory() as directory:
        store = RunStore(f"{directory}/fit")
        pairs = paired_fits(store, X, y)
        plain, tracked = pipeline().fit(X, y), pipeline(store).fit(X, y)
        row = X.iloc[[0]]
        single = interleaved_median({"tracked": lambda: tracked.predict(row),
                                     "plain": lambda: plain.predict(row)}, calls=SINGLE_CALLS)
        ours, theirs = log_metric_costs(directory)
        epochs = epoch_metrics_seconds(directory)
        n_runs = len(store.runs())
    ratio_table("Run store tracking: single-row predict (tracked / plain)", [
        ("predict, 1 row (median)", (single["tracked"], single["plain"]), "~1.00x"),
    ], columns=("tracked", "plain"), target=True)
    fit_q, machinery_q, hash_q = (_quartiles([p[k] for p in pairs]) for k in range(3))
    direct_q = _quartiles([p[1] + p[2] for p in pairs])
    table = Table(title=f"Fit 100k x 20, tracked and plain in {len(pairs)} pairs (order alternating): "
                        "quartiles over the pairs (target <= 1.01x, direct cost <= 1%)")
    for col in ("measurement", "25%", "median", "75%"):
        table.add_column(col, justify="left" if col == "measurement" else "right")
    table.add_row("tracked fit / plain fit", *(f"{q:.3f}x" for q in fit_q))
    table.add_row("run machinery / plain fit", *(f"{q:.2%}" for q in machinery_q))
    table.add_row("content hash (in the caller's thread) / plain fit", *(f"{q:.2%}" for q in hash_q))
    table.add_row("direct cost: machinery + hash / plain fit", *(f"{q:.2%}" for q in direct_q))
    table.add_row("direct cost in CPU time (its thread) / the plain fit's CPU time (the process)",
                  *(f"{q:.2%}" for q in _quartiles([p[4] for p in pairs])))
    table.add_row("caller's part of a tracked fit (hash on the worker thread) / plain fit",
                  *(f"{q:.2%}" for q in _quartiles([p[5] for p in pairs])))
    table.add_row("its CPU time (the caller's thread) / the plain fit's CPU time (the process)",
                  *(f"{q:.2%}" for q in _quartiles([p[6] for p in pairs])))
    table.add_row("the caller's part (ms): wall", *(f"{q * 1e3:.2f}" for q in _quartiles([p[7] for p in pairs])))
    table.add_row("the caller's part (ms): CPU of its thread",
                  *(f"{q * 1e3:.2f}" for q in _quartiles([p[8] for p in pairs])))
    table.add_row("plain fit (s)", *(f"{q:.3f}" for q in _quartiles([p[3] for p in pairs])))
    console.print(table)
    ratio_table("Logging one metric (run store / mlflow.log_metric on local SQLite)", [
        ("log one metric", (ours, theirs), "<= 0.02x (50x cheaper)"),
    ], columns=("run store", "mlflow"), unit="us", scale=1e6, target=True)
    console.print(f"10,000 epoch metrics logged and written: {epochs * 1e3:.1f} ms "
                  f"(target < 100 ms); mlflow / run store per metric: {theirs / ours:,.0f}x; "
                  f"{n_runs} tracked fits recorded")


if __name__ == "__main__":
    main()
