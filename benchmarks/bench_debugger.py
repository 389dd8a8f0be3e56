"""What attaching a PipelineDebugger costs.

A 3-stage pipeline (SimpleImputer, StandardScaler, LogisticRegression) on 100 000 x 20, fit and
batch predict, four ways side by side: scikit-learn's own ``Pipeline``, ml_toolbox with no
plug-in, ml_toolbox with a debugger that only traces (no breakpoint: the target is within 1.10x
of no plug-in), and, for information, a debugger that snapshots every stage's output
(``capture="all"``, budget 1 MB). Runs are interleaved; the best of several is kept (as
``timeit`` does: the least disturbed by other work on the machine), the median is shown too.
A last row times the debugger's own hooks for one stage run, without any estimator.

Run: ``python -m benchmarks.bench_debugger`` (or ``python -m benchmarks`` for all).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from ml_toolbox import PipelineDebugger, UnifiedMLPipeline

N_ROWS, N_COLS, REPEATS, PREDICTS = 100_000, 20, 7, 3
TARGET = 1.10


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N_ROWS, N_COLS))
    X[rng.random(X.shape) < 0.01] = np.nan
    y = (np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 1]) + rng.normal(size=N_ROWS) > 0)
    return X, y.astype(int)


def _steps():
    from sklearn.preprocessing import StandardScaler

    return [("impute", SimpleImputer()), ("scale", StandardScaler())]


def _contenders():
    return {
        "scikit-learn Pipeline": lambda: Pipeline(_steps() + [("model", LogisticRegression())]),
        "ml_toolbox, no plug-in": lambda: UnifiedMLPipeline(features=_steps(),
                                                            model=LogisticRegression()),
        "ml_toolbox + debugger (trace only)": lambda: UnifiedMLPipeline(
            features=_steps(), model=LogisticRegression(), debugger=PipelineDebugger()),
        "ml_toolbox + debugger (capture='all')": lambda: UnifiedMLPipeline(
            features=_steps(), model=LogisticRegression(),
            debugger=PipelineDebugger(capture="all", max_snapshot_bytes="1MB")),
    }


def measure(repeats=REPEATS):
    """``{contender: {"fit": [seconds...], "predict": [seconds...]}}``."""
    X, y = _data()
    makers = _contenders()
    times = {name: {"fit": [], "predict": []} for name in makers}
    for _ in range(repeats):
        for name, make in makers.items():  # interleaved, so drift hits everyone alike
            pipe = make()
            t0 = time.perf_counter()
            pipe.fit(X, y)
            times[name]["fit"].append(time.perf_counter() - t0)
            for _ in range(PREDICTS):
                t1 = time.perf_counter()
                pipe.predict(X)
                times[name]["predict"].append(time.perf_counter() - t1)
    return times


def hook_cost(n=20_000):
    """Seconds the trace-only debugger spends in its hooks for one successful stage run."""
    from ml_toolbox.context import RunContext, StageContext

    debugger = PipelineDebugger()
    X = np.zeros((100, 20))
    run = RunContext(None, "feature_pipeline", "transform", ["scale"])
    debugger.before_run(run)
    t0 = time.perf_counter()
    for _ in range(n):
        ctx = StageContext(run, None, "scale", 0, "transform", False, X, None)
        debugger.before_stage(ctx)
        ctx.duration, ctx.output, ctx.status = 1e-6, X, "success"
        debugger.after_stage(ctx)
    return (time.perf_counter() - t0) / n


def main(console=None, repeats=REPEATS):
    console = console or Console()
    times = measure(repeats)
    best = {name: {k: min(v) for k, v in t.items()} for name, t in times.items()}
    median = {name: {k: statistics.median(v) for k, v in t.items()} for name, t in times.items()}
    base = best["ml_toolbox, no plug-in"]
    table = Table(title=f"Debugger overhead: SimpleImputer + StandardScaler + LogisticRegression, "
                        f"{N_ROWS:,} x {N_COLS} (best of {repeats} fits, "
                        f"{repeats * PREDICTS} predicts)")
    for col in ("", "fit (median)", "fit ratio", "batch predict (median)", "predict ratio"):
        table.add_column(col, justify="left" if not col else "right")
    verdicts = []
    for name, r in best.items():
        fit_ratio, pred_ratio = r["fit"] / base["fit"], r["predict"] / base["predict"]
        table.add_row(name, f"{r['fit'] * 1e3:.1f} ms ({median[name]['fit'] * 1e3:.0f})",
                      f"{fit_ratio:.3f}x",
                      f"{r['predict'] * 1e3:.1f} ms ({median[name]['predict'] * 1e3:.0f})",
                      f"{pred_ratio:.3f}x")
        if name == "ml_toolbox + debugger (trace only)":
            verdicts.append((fit_ratio, pred_ratio))
    console.print(table)
    console.print(f"trace-only debugger hooks per stage run: {hook_cost() * 1e6:.1f} µs")
    fit_ratio, pred_ratio = verdicts[0]
    ok = fit_ratio <= TARGET and pred_ratio <= TARGET
    console.print(f"trace-only debugger vs no plug-in: fit {fit_ratio:.3f}x, predict "
                  f"{pred_ratio:.3f}x (target <= {TARGET:.2f}x): "
                  f"{'[green]met[/]' if ok else '[red]missed[/]'}")
    return best


if __name__ == "__main__":
    main()
