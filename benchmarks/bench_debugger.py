"""What attaching a PipelineDebugger costs, side by side in one run.

The benchmark pipeline of ``bench_core`` -- SimpleImputer -> StandardScaler -> LogisticRegression on a
100k x 20 DataFrame -- with and without a debugger:

- a debugger that only traces (no breakpoint), fit and batch predict, against no plug-in:
  target within 1.10x. Any plug-in takes a prediction off the fused fast inference path (which has
  no stage boundaries to report), so the table also splits that price from the debugger's own:
  a do-nothing plug-in against no plug-in, and the debugger against the do-nothing plug-in;
- for information: the same against scikit-learn's own Pipeline, a debugger that snapshots every
  stage's output while fitting (``capture="all"``, 1 MB budget), the single-row predict latency
  with a tracing debugger, and the debugger's own hook time per stage run (no estimator at all).

Run: ``python -m benchmarks debugger``.
"""

import time

import numpy as np
from rich.console import Console

from benchmarks._timing import interleaved, interleaved_median, ratio_table
from benchmarks.bench_core import data, ours_pipe, sklearn_pipe
from ml_toolbox import PipelineDebugger
from ml_toolbox.context import RunContext, StageContext
from ml_toolbox.plugins import PipelinePlugin


class DoNothing(PipelinePlugin):
    """A plug-in with every hook a no-op: the price of the plug-in path itself."""


def hook_cost(n=20_000):
    """Seconds a trace-only debugger spends in before_stage + after_stage for one stage run."""
    debugger = PipelineDebugger()
    X = np.zeros((100, 20))
    run = RunContext(None, "feature_pipeline", "transform", ["scale"])
    debugger.before_run(run)
    contexts = [StageContext(run, None, "scale", 0, "transform", False, X, None)
                for _ in range(n)]
    start = time.perf_counter()
    for ctx in contexts:
        debugger.before_stage(ctx)
        ctx.duration, ctx.output, ctx.status = 1e-6, X, "success"
        debugger.after_stage(ctx)
    return (time.perf_counter() - start) / n


def main():
    X, y = data()
    rows = []
    fit = interleaved({
        "traced": lambda: ours_pipe(debugger=PipelineDebugger()).fit(X, y),
        "none": lambda: ours_pipe().fit(X, y),
        "capture": lambda: ours_pipe(debugger=PipelineDebugger(capture="all",
                                                               max_snapshot_bytes="1MB")).fit(X, y),
        "sklearn": lambda: sklearn_pipe().fit(X, y),
    }, repeat=5)
    rows.append(("fit, trace-only debugger vs no plug-in", (fit["traced"], fit["none"]),
                 "<= 1.10x"))
    traced, plain = ours_pipe(debugger=PipelineDebugger()).fit(X, y), ours_pipe().fit(X, y)
    nothing = ours_pipe(monitor=DoNothing()).fit(X, y)
    assert np.array_equal(traced.predict_proba(X), plain.predict_proba(X))
    batch = interleaved({"traced": lambda: traced.predict(X), "none": lambda: plain.predict(X),
                         "nothing": lambda: nothing.predict(X)}, repeat=25)
    rows.append(("batch predict 100k, trace-only debugger vs no plug-in",
                 (batch["traced"], batch["none"]), "<= 1.10x"))
    rows.append(("  of which: do-nothing plug-in vs no plug-in (leaves the fast path)",
                 (batch["nothing"], batch["none"]), "(info)"))
    rows.append(("  of which: trace-only debugger vs do-nothing plug-in",
                 (batch["traced"], batch["nothing"]), "(info)"))
    rows.append(("fit, no plug-in vs scikit-learn Pipeline", (fit["none"], fit["sklearn"]),
                 "(info)"))
    rows.append(("fit, capture='all' (1 MB budget) vs no plug-in", (fit["capture"], fit["none"]),
                 "(info)"))
    row = X.iloc[[0]]
    single = interleaved_median({"traced": lambda: traced.predict(row),
                                 "none": lambda: plain.predict(row),
                                 "nothing": lambda: nothing.predict(row)}, calls=1000)
    rows.append(("single-row predict, trace-only debugger vs no plug-in",
                 (single["traced"], single["none"]), "(info)"))
    rows.append(("single-row predict, trace-only debugger vs do-nothing plug-in",
                 (single["traced"], single["nothing"]), "(info)"))
    ratio_table("PipelineDebugger overhead (best of runs; single row: median)", rows,
                columns=("with", "without"), target=True)
    Console().print(f"trace-only debugger hooks per stage run: {hook_cost() * 1e6:.1f} µs "
                    "(before_stage + after_stage, no estimator)")
    return rows


if __name__ == "__main__":
    main()
