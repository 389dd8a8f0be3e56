"""What a PipelineMonitor costs: the same pipeline with and without one, side by side.

The pipeline is the foundation's three stages (SimpleImputer, StandardScaler, LogisticRegression)
as a ``UnifiedMLPipeline`` on a 100k x 20 DataFrame, next to the plain scikit-learn ``Pipeline``
for reference. Measured, interleaved so that machine drift hits both sides alike:

- fit and batch predict (100k rows): best of a few repeats, and the median ratio of calls made in
  turns; target within 1.03x of no monitor;
- single-row predict: median of thousands of calls; target within 1.15x, or < 10 us added per stage;
- memory of a monitor after one million recorded stage runs (the hooks fed directly): flat in the
  number of runs, proportional to ``history_size``.

Run: ``python -m benchmarks`` (all benchmarks) or ``python benchmarks/bench_monitor.py``.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
import types

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from ml_toolbox import FeaturePipeline, PipelineMonitor, UnifiedMLPipeline
from ml_toolbox.context import RunContext, StageContext

N_ROWS, N_COLS = 100_000, 20
FIT_REPEATS = 9
BATCH_REPEATS = 25
SINGLE_CALLS = 1500
IDENTITY_CALLS = 5000
STAGE_RUNS = 1_000_000
STAGES = ("impute", "scale", "model")


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N_ROWS, N_COLS))
    X[rng.random(X.shape) < 0.01] = np.nan
    y = (np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 1]) + rng.normal(size=N_ROWS) > 0)
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(N_COLS)]), y.astype(int)


def unified(monitor=None):
    return UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("scale", StandardScaler())],
                             model=LogisticRegression(max_iter=200), monitor=monitor)


def sklearn_pipeline():
    return Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler()),
                     ("model", LogisticRegression(max_iter=200))])


def interleaved(variants, repeats, call):
    """Best seconds of ``call(obj)`` per variant, and each variant's ratio to the first one.

    The variants take turns each repeat. The time is the best of the repeats, not the median: on a
    shared machine noise only ever adds time, and with a handful of repeats of a long call the
    minimum is the steadier estimate of its cost. The ratio is the median over the repeats of the
    ratio of two calls made one right after the other: bursts of noise on this machine last longer
    than one call, so a pair shares them, where two minima taken at different moments do not.
    """
    times = {name: [] for name in variants}
    order = list(variants)
    for r in range(repeats):
        for name in order[r % len(order):] + order[:r % len(order)]:  # rotate who goes first
            obj = variants[name]
            gc.collect()
            t0 = time.perf_counter()
            call(obj)
            times[name].append(time.perf_counter() - t0)
    base = times[order[0]]
    ratios = {name: statistics.median(t / b for t, b in zip(ts, base)) for name, ts in times.items()}
    return {name: min(ts) for name, ts in times.items()}, ratios


def single_row(variants, rows, calls, method="predict"):
    """Median seconds of one single-row call, variants interleaved in blocks of 100 calls."""
    times = {name: [] for name in variants}
    gc.collect()
    order = list(variants)
    for k, start in enumerate(range(0, calls, 100)):
        for name in order[k % len(order):] + order[:k % len(order)]:
            predict = getattr(variants[name], method)
            block = times[name]
            for i in range(start, min(start + 100, calls)):
                row = rows[i % len(rows)]
                t0 = time.perf_counter()
                predict(row)
                block.append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def deep_size(obj):
    """Bytes held by ``obj`` and everything it references (types, modules, functions excluded)."""
    seen, stack, total = set(), [obj], 0
    skip = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, skip):
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        stack.extend(gc.get_referents(o))
    return total


def feed(monitor, n_stage_runs, X, checkpoints=()):
    """Record ``n_stage_runs`` stage runs (3 per execution) through the hooks, as the loop does.

    Returns ``({checkpoint: deep size}, seconds per stage run spent in the hooks and contexts)``.
    """
    sizes = {}
    marks = sorted(checkpoints)
    done = 0
    t0 = time.perf_counter()
    spent_sizing = 0.0
    while done < n_stage_runs:
        run = RunContext(None, "inference_pipeline", "predict", STAGES)
        monitor.before_run(run)
        for i, name in enumerate(STAGES):
            ctx = StageContext(run, None, name, i, "transform" if i < 2 else "predict", False, X,
                               None)
            monitor.before_stage(ctx)
            ctx.duration = 1e-4 * (1 + (done % 7))
            ctx.status, ctx.output = "success", X
            monitor.after_stage(ctx)
            done += 1
        run.duration = 4e-4
        monitor.after_run(run)
        while marks and done >= marks[0]:
            s0 = time.perf_counter()
            sizes[marks.pop(0)] = deep_size(monitor)
            spent_sizing += time.perf_counter() - s0
    return sizes, (time.perf_counter() - t0 - spent_sizing) / done


def main(console=None):
    console = console or Console()
    X, y = make_data()
    rows = [X.iloc[[i]] for i in range(200)]

    plain = unified().fit(X, y)
    watched = unified(PipelineMonitor()).fit(X, y)
    quiet = unified(PipelineMonitor(capture_warnings=False)).fit(X, y)
    skl = sklearn_pipeline().fit(X, y)
    variants = {"no monitor": plain, "monitor": watched,
                "monitor (no warning capture)": quiet, "sklearn Pipeline": skl}
    fit_objs = {"no monitor": unified(), "monitor": unified(PipelineMonitor()),
                "monitor (no warning capture)": unified(PipelineMonitor(capture_warnings=False)),
                "sklearn Pipeline": sklearn_pipeline()}

    fit, fit_ratio = interleaved(fit_objs, FIT_REPEATS, lambda p: p.fit(X, y))
    batch, batch_ratio = interleaved(variants, BATCH_REPEATS, lambda p: p.predict(X))
    single = single_row(variants, rows, SINGLE_CALLS)

    table = Table(title=f"PipelineMonitor overhead: impute + scale + LogisticRegression, "
                        f"{N_ROWS:,} x {N_COLS} DataFrame (fit, batch: best of "
                        f"{FIT_REPEATS} / {BATCH_REPEATS}, x: median ratio of calls made in turns; "
                        f"1 row: median of {SINGLE_CALLS:,})")
    table.add_column("Variant")
    for col in ("fit", "x", "batch predict", "x", "1-row predict", "x", "added / stage"):
        table.add_column(col, justify="right")
    base = "no monitor"
    for name in variants:
        added = (single[name] - single[base]) / len(STAGES)
        table.add_row(name,
                      f"{fit[name]:.3f} s", f"{fit_ratio[name]:.3f}",
                      f"{batch[name] * 1e3:.1f} ms", f"{batch_ratio[name]:.3f}",
                      f"{single[name] * 1e6:.0f} µs", f"{single[name] / single[base]:.3f}",
                      "-" if name == base else f"{added * 1e6:+.1f} µs")
    console.print(table)
    console.print("targets: fit and batch predict within 1.03x of no monitor; 1-row predict within "
                  "1.15x or < 10 µs added per stage")

    # The per-stage cost itself, where the stages cost next to nothing: three identity stages on
    # one row. The difference is what the loop's contexts and the monitor's hooks add per stage.
    def identity(monitor=None):
        steps = [(f"id{i}", FunctionTransformer()) for i in range(len(STAGES))]
        return FeaturePipeline(steps, monitor=monitor).fit(one_row)

    one_row = np.zeros((1, N_COLS))
    ids = {"no monitor": identity(), "monitor": identity(PipelineMonitor()),
           "monitor (no warning capture)": identity(PipelineMonitor(capture_warnings=False))}
    cheap = single_row(ids, [one_row], IDENTITY_CALLS, method="transform")
    per = Table(title=f"Cost per stage: {len(STAGES)} identity stages on one row "
                      f"(median of {IDENTITY_CALLS:,} transforms)")
    per.add_column("Variant")
    per.add_column("transform", justify="right")
    per.add_column("added / stage", justify="right")
    for name in ids:
        per.add_row(name, f"{cheap[name] * 1e6:.1f} µs",
                    "-" if name == base else
                    f"{(cheap[name] - cheap[base]) / len(STAGES) * 1e6:+.1f} µs")
    console.print(per)

    # Memory: one monitor fed one million stage runs, and monitors of several history sizes.
    checkpoints = (10_000, 100_000, STAGE_RUNS)
    monitor = PipelineMonitor(history_size=1000)
    sizes, per_stage = feed(monitor, STAGE_RUNS, one_row, checkpoints)
    mem = Table(title="Monitor memory (deep size of the object) vs stage runs recorded "
                      "(3 stages per execution)")
    mem.add_column("history_size", justify="right")
    for n in checkpoints:
        mem.add_column(f"after {n:,} stage runs", justify="right")
    mem.add_column("per execution kept", justify="right")
    mem.add_row("1000", *(f"{sizes[n] / 2**20:.2f} MiB" for n in checkpoints),
                f"{sizes[STAGE_RUNS] / 1000 / 1024:.2f} KiB")
    for history_size in (100, 10_000):
        m = PipelineMonitor(history_size=history_size)
        n = max(30_000, 3 * 2 * history_size)
        s, _ = feed(m, n, one_row, (n,))
        mem.add_row(str(history_size), "", "", f"{s[n] / 2**20:.2f} MiB (after {n:,})",
                    f"{s[n] / history_size / 1024:.2f} KiB")
    console.print(mem)
    console.print(f"hooks + contexts, fed directly: {per_stage * 1e6:.1f} µs per stage run "
                  f"({STAGE_RUNS:,} stage runs)")
    return {"fit": fit, "batch": batch, "single": single, "identity": cheap, "memory": sizes,
            "hook_seconds_per_stage": per_stage}


if __name__ == "__main__":
    main()
