"""What retry costs when nothing fails.

Side by side, in one run:

1. a three-stage pipeline (impute, scale, logistic regression) on 100 000 x 20: plain
   scikit-learn ``Pipeline``, ``UnifiedMLPipeline`` without retry, and with a
   ``RetryHandler`` attached to every pipeline -- ``fit`` and batch ``predict`` (as users get it,
   and on the execution loop with ``fast_inference=False``; best of n, CPU
   time, one BLAS thread); the target is retry / no retry <= 1.03. The row "estimated overhead"
   (3 stage runs x the policy's own cost / the pipeline's time) is the noise-free figure;
2. the policy alone: microseconds per stage run for ``attempt()`` called directly and through
   ``RetryHandler.call`` (tenacity's ``Retrying`` loop, the context bookkeeping, the statistics);
3. the price of clean inputs for a stage that may mutate its input (a ``FunctionTransformer``):
   ``copy_input="auto"`` (copies each attempt) vs ``copy_input=False``.

Run: ``python -m benchmarks.bench_retry`` (or ``make bench``).
"""

from __future__ import annotations

import time

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.base import clone
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from ml_toolbox.context import RunContext, StageContext
from ml_toolbox.retry import RetryConfig, RetryHandler

N_ROWS, N_COLS = 100_000, 20


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N_ROWS, N_COLS))
    X[rng.random(X.shape) < 0.01] = np.nan
    y = (np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 1]) > 0).astype(int)
    return X, y


def _steps():
    return [("impute", SimpleImputer()), ("scale", StandardScaler()),
            ("model", LogisticRegression(max_iter=200))]


def _interleaved(fns, repeat, timer=time.perf_counter):
    """Run each fn ``repeat`` times, interleaved (so drift hits all alike); best seconds.

    The minimum, not the median: on a shared machine other processes only ever add time, so
    the fastest run is the closest to the code's own cost.
    """
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = timer()
            fn()
            times[name].append(timer() - start)
    return {name: min(t) for name, t in times.items()}


def bench_pipelines(X, y):
    """Fit and batch predict: sklearn vs ml_toolbox without / with retry.

    Batch predict is measured twice: as users get it (a fitted pipeline of scikit-learn stages
    keeps its fast inference path under a retry policy, as those stages cannot fail
    transiently), and on the execution loop (``fast_inference=False``), where every stage run
    goes through ``RetryHandler.call``.
    """
    try:
        from ml_toolbox import UnifiedMLPipeline
    except (ImportError, AttributeError):
        return None
    steps = _steps()
    handler = RetryHandler(RetryConfig(max_retries=3))

    def ours(**kw):
        return UnifiedMLPipeline(features=[(n, clone(e)) for n, e in steps[:2]],
                                 model=clone(steps[2][1]), **kw)

    pipes = {
        "sklearn Pipeline": Pipeline([(n, clone(e)) for n, e in steps]),
        "ml_toolbox, no retry": ours(),
        "ml_toolbox, retry": ours(retry=handler),
    }
    loop = {
        "loop path, no retry": ours(fast_inference=False),
        "loop path, retry": ours(fast_inference=False, retry=handler),
    }
    # CPU time of this process with one BLAS / OpenMP thread: the work is the same in every
    # variant, and CPU time does not count the time other processes hold the cores.
    with threadpool_limits(1):
        fit = _interleaved({name: (lambda p=p: p.fit(X, y)) for name, p in pipes.items()}, 5,
                           timer=time.process_time)
        for p in loop.values():
            p.fit(X, y)
        before = handler.statistics["runs"]
        predict = _interleaved({name: (lambda p=p: p.predict(X))
                                for name, p in (pipes | loop).items()}, 31,
                               timer=time.process_time)
    preds = [p.predict(X) for p in (pipes | loop).values()]
    assert all(np.array_equal(preds[0], p) for p in preds[1:]), "results differ"
    assert handler.statistics["runs"] > before, "the retry handler was not used on the loop path"
    return fit, predict


class _Stage:
    """Minimal stage: the work is a fixed small computation."""

    def __init__(self, estimator):
        self.estimator = estimator

    def run(self, X, y=None, mode="transform"):
        return X


def bench_policy(X, n=20_000):
    """Microseconds per stage run: attempt() alone vs through RetryHandler.call."""
    handler = RetryHandler(RetryConfig(max_retries=3))
    stage = _Stage(StandardScaler())
    run = RunContext(None, "bench", "transform", ["scale"])
    ctx = StageContext(run, stage, "scale", 0, "transform", False, X, None)

    def attempt():
        return ctx.stage.run(ctx.X, ctx.y, mode=ctx.mode)

    def direct():
        for _ in range(n):
            attempt()

    def through():
        for _ in range(n):
            handler.call(attempt, ctx)

    times = _interleaved({"direct": direct, "handler": through}, 5, timer=time.process_time)
    return {k: v / n * 1e6 for k, v in times.items()}


def bench_copies(X):
    """A mutating-capable stage (FunctionTransformer): auto copies vs copy_input=False."""
    fitted = FunctionTransformer(np.abs).fit(X)
    out = {}
    for label, copy_input in (("copy_input=False", False), ('copy_input="auto" (copies)', "auto")):
        handler = RetryHandler(RetryConfig(max_retries=3, copy_input=copy_input))
        stage = _Stage(fitted)
        stage.run = lambda X, y=None, mode="transform": fitted.transform(X)
        run = RunContext(None, "bench", "transform", ["abs"])
        ctx = StageContext(run, stage, "abs", 0, "transform", False, X, None)
        out[label] = lambda h=handler, c=ctx: h.call(
            lambda: c.stage.run(c.X, c.y, mode=c.mode), c)
    with threadpool_limits(1):
        return _interleaved(out, 21, timer=time.process_time)


def main(console=None):
    console = console or Console()
    X, y = _data()
    table = Table(title=f"Retry overhead when nothing fails ({N_ROWS:,} x {N_COLS})")
    table.add_column("measure")
    table.add_column("variant")
    table.add_column("time", justify="right")
    table.add_column("ratio", justify="right")
    result = bench_pipelines(X, y)
    if result is None:
        console.print("[yellow]ml_toolbox pipelines not available: pipeline rows skipped")
    else:
        for what, times in zip(("fit", "batch predict"), result, strict=True):
            for name, t in times.items():
                base = times["loop path, no retry" if name.startswith("loop")
                             else "ml_toolbox, no retry"]
                plain = name in ("ml_toolbox, no retry", "loop path, no retry")
                ratio = f"{t / base:.3f}x" + ("" if plain else " vs no retry")
                table.add_row(what, name, f"{t * 1e3:.2f} ms", ratio)
    policy = bench_policy(X)
    extra_us = policy["handler"] - policy["direct"]
    table.add_row("one stage run (policy only)", "attempt() direct",
                  f"{policy['direct']:.2f} us", "")
    table.add_row("", "RetryHandler.call", f"{policy['handler']:.2f} us", f"+{extra_us:.2f} us")
    if result is not None:
        # The noise-free estimate: 3 stage runs x the policy's own cost, over the pipeline time.
        for what, times in zip(("fit", "batch predict"), result, strict=True):
            base = times.get("loop path, no retry", times["ml_toolbox, no retry"])
            table.add_row(f"estimated {what} overhead", "3 x policy cost / time", "",
                          f"{1 + 3 * extra_us * 1e-6 / base:.5f}x")
    copies = bench_copies(X)
    base = copies["copy_input=False"]
    for name, t in copies.items():
        table.add_row("FunctionTransformer stage", name, f"{t * 1e3:.2f} ms", f"{t / base:.2f}x")
    console.print(table)
    return {"pipelines": result, "policy_us": policy, "copies": copies}


if __name__ == "__main__":
    main()
