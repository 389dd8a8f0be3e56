"""Tests of ml_toolbox.debugger: breakpoints, snapshots, traces, profiles and post-mortems.

The first part drives the plug-in hooks through ``drive``, a faithful copy of the execution loop's
contract (real RunContext / StageContext objects, the retry policy protocol); the last part runs
real pipelines.
"""

import io
import logging
import pickle
import re
import sys
import threading
import time
import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, TransformerMixin, clone

from ml_toolbox.context import RunContext, StageContext
from ml_toolbox.debugger import (
    BreakpointConditionError,
    Failure,
    PipelineDebugger,
    Snapshot,
    Trace,
    UnknownStageError,
    parse_size,
    pdb_entry,
)
from ml_toolbox.plugins import PipelinePlugin
from ml_toolbox.retry import RetryConfig, RetryHandler

# ------------------------------------------------------------------------------------------------
# stubs: stages that record their calls, and a loop that follows the core's contract
# ------------------------------------------------------------------------------------------------
CALLS = []          # (stage name, mode) of every stage run
FAILURES_LEFT = {}  # key -> how many more calls of a Flaky stage fail


class Scale(BaseEstimator):
    def __init__(self, factor=2.0, name="scale"):
        self.factor = factor
        self.name = name

    def run(self, X, y=None, mode="transform"):
        CALLS.append((self.name, mode))
        if mode in ("fit", "fit_transform"):
            self.fitted_ = True
        return X * self.factor


class Boom(BaseEstimator):
    def __init__(self, message="bad column 'age'"):
        self.message = message

    def run(self, X, y=None, mode="transform"):
        CALLS.append(("boom", mode))
        raise ValueError(self.message)


class Flaky(BaseEstimator):
    """Fails the first FAILURES_LEFT[key] calls (shared by the clones each attempt makes)."""

    def __init__(self, key="flaky"):
        self.key = key

    def run(self, X, y=None, mode="transform"):
        CALLS.append(("flaky", mode))
        if FAILURES_LEFT.get(self.key, 0) > 0:
            FAILURES_LEFT[self.key] -= 1
            raise ConnectionError("feature store hiccup")
        return X + 1


def _busy_work(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


class FlakyTransformer(TransformerMixin, BaseEstimator):
    """A real scikit-learn transformer whose fit fails FAILURES_LEFT[key] times."""

    def __init__(self, key="flaky"):
        self.key = key

    def fit(self, X, y=None):
        if FAILURES_LEFT.get(self.key, 0) > 0:
            FAILURES_LEFT[self.key] -= 1
            raise ConnectionError("feature store hiccup")
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        return X


class Busy(BaseEstimator):
    def run(self, X, y=None, mode="transform"):
        _busy_work(200_000)
        return X


class Model(BaseEstimator):
    """A 'model' stage: fitting returns the fitted estimator (no data)."""

    def run(self, X, y=None, mode="fit"):
        if mode == "fit":
            self.coef_ = 1.0
            return self
        return np.zeros(len(X))


def quick_retry(times):
    """The project's retry handler: ``times`` attempts in all, immediately, without sleeping."""
    return RetryHandler(RetryConfig(max_retries=times - 1, strategy="immediate"),
                        sleep=lambda seconds: None)


class Pipe:
    """Enough of a pipeline for the debugger to read its stage names."""

    def __init__(self, name, steps):
        self.name = name
        self.steps = steps


def drive(plugins, steps, X, y=None, *, mode="fit", name="feature_pipeline", retry=None,
          pipeline=None):
    """Run `steps` ([(name, stage)]) as BasePipeline._run_stages does, calling the hooks."""
    plugins = [p for p in ([plugins] if isinstance(plugins, PipelinePlugin) else plugins)
               if p.enabled]
    fitting = mode in ("fit", "fit_transform")
    run = RunContext(pipeline, name, mode, [n for n, _ in steps])
    for p in plugins:
        p.before_run(run)
    try:
        for i, (stage_name, template) in enumerate(steps):
            stage_mode = ("fit_transform" if i < len(steps) - 1 else mode) if fitting else mode
            ctx = StageContext(run, template, stage_name, i, stage_mode, fitting, X, y)
            run.stages.append(ctx)
            for p in plugins:
                p.before_stage(ctx)

            def attempt(ctx=ctx):
                if ctx.attempt > 1:
                    for p in plugins:
                        p.on_stage_retry(ctx, ctx.last_error)
                if ctx.fitting:
                    ctx.stage = clone(ctx.template)
                return ctx.stage.run(ctx.X, ctx.y, mode=ctx.mode)

            try:
                out = retry.call(attempt, ctx) if retry is not None else attempt()
            except Exception as exc:
                ctx.duration = time.perf_counter() - ctx.start
                ctx.error, ctx.status = exc, "failed"
                for p in plugins:
                    p.on_stage_error(ctx, exc)
                raise
            ctx.duration = time.perf_counter() - ctx.start
            ctx.output, ctx.status = out, "success"
            for p in plugins:
                p.after_stage(ctx)
            X = out
    except BaseException as exc:
        run.duration, run.status, run.error = time.perf_counter() - run.start, "failed", exc
        for p in plugins:
            p.on_run_error(run, exc)
        raise
    run.duration, run.status = time.perf_counter() - run.start, "success"
    for p in plugins:
        p.after_run(run)
    return X


@pytest.fixture(autouse=True)
def _reset_stubs():
    CALLS.clear()
    FAILURES_LEFT.clear()


def frame(n=20, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"age": rng.normal(40, 10, n), "income": rng.normal(5e4, 1e4, n),
                      "city": rng.choice(["Oslo", "Rome", None], n)})
    X.loc[X.index[::5], "age"] = np.nan
    return X


STEPS = [("impute", Scale(1.0, "impute")), ("scale", Scale(2.0))]


def numeric(n=20):
    return frame(n)[["age", "income"]]


# ------------------------------------------------------------------------------------------------
# sizes and constructor arguments
# ------------------------------------------------------------------------------------------------
ALLOWED = ("max_snapshot_bytes must be a positive size: an int number of bytes (e.g. 1_000_000) "
           "or a string such as '512KB', '10MB' or '1GiB'")


@pytest.mark.parametrize("value, expected", [
    (1, 1), (4096, 4096), ("100", 100), ("512KB", 512_000), ("1.5 MB", 1_500_000),
    ("64kib", 65_536), ("2GiB", 2 * 2**30), ("10 b", 10), (np.int64(7), 7)])
def test_parse_size_accepts_ints_and_unit_strings(value, expected):
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", [0, -5, "0KB", "-1MB", "ten", "10 XB", "", "1e6"])
def test_snapshot_budget_that_is_not_a_positive_size_is_refused(value):
    with pytest.raises(ValueError, match=re.escape(f"{ALLOWED}; got {value!r}.")):
        PipelineDebugger(max_snapshot_bytes=value)


@pytest.mark.parametrize("value", [True, 1.5, None, [1024]])
def test_snapshot_budget_of_the_wrong_type_is_refused(value):
    with pytest.raises(TypeError, match=re.escape(
            f"{ALLOWED}; got {value!r} of type {type(value).__name__}.")):
        PipelineDebugger(max_snapshot_bytes=value)


def test_failure_budget_is_checked_too():
    with pytest.raises(ValueError, match=re.escape("max_failure_bytes must be a positive size")):
        PipelineDebugger(max_failure_bytes=-1)


@pytest.mark.parametrize("kwargs, exc, msg", [
    ({"capture": "fit"}, ValueError, "capture must be None or 'all', got 'fit'."),
    ({"head_rows": -1}, ValueError, "head_rows must be an int >= 0, got -1."),
    ({"max_events": 0}, ValueError, "max_events must be an int >= 1, got 0."),
    ({"debugger_entry": "pdb"}, TypeError, "debugger_entry must be callable or None, got 'pdb'."),
    ({"profile": 3}, TypeError,
     "profile must be True, False, a stage name or a list of stage names, got 3."),
])
def test_bad_constructor_arguments(kwargs, exc, msg):
    with pytest.raises(exc, match=re.escape(msg)):
        PipelineDebugger(**kwargs)


# ------------------------------------------------------------------------------------------------
# breakpoints: arguments and stage names
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, exc, msg", [
    ({"stage": 3}, TypeError, "stage must be a stage name (str), got 3."),
    ({"stage": "scale", "when": "during"}, ValueError,
     "when must be one of ['before', 'after', 'error'], got 'during'."),
    ({"stage": "scale", "condition": True}, TypeError,
     "condition must be a callable taking the stage context, or None; got True."),
    ({"stage": "scale", "action": "print"}, ValueError,
     "action must be 'snapshot', 'pdb' or a callable taking the stage context, got 'print'."),
    ({"stage": "scale", "pipeline": 1}, TypeError,
     "pipeline must be a pipeline name (str) or None, got 1."),
])
def test_bad_breakpoint_arguments(kwargs, exc, msg):
    debugger = PipelineDebugger()
    with pytest.raises(exc, match=re.escape(msg)):
        debugger.add_breakpoint(**kwargs)
    assert debugger.breakpoints == []


def test_unknown_stage_fails_at_run_start_before_any_stage_runs():
    debugger = PipelineDebugger()
    debugger.add_breakpoint("scael")  # not attached: cannot be checked yet
    with pytest.raises(UnknownStageError, match=re.escape(
            "Breakpoint('scael', when='before', action='snapshot') (remove it with "
            "debugger.remove_breakpoint('scael')) names stage 'scael', which pipeline "
            "'feature_pipeline' does not have. Stage names: ['impute', 'scale']. "
            "Did you mean 'scale'?")) as info:
        drive(debugger, STEPS, numeric())
    assert CALLS == []  # no stage ran
    assert isinstance(info.value, ValueError)
    assert info.value.suggestion == "scale"
    assert info.value.stage_names == ["impute", "scale"]
    assert len(debugger.breakpoints) == 1  # kept: the user decides


def test_unknown_stage_fails_at_once_when_the_pipeline_is_known():
    debugger = PipelineDebugger().attach(Pipe("feature_pipeline", STEPS))
    with pytest.raises(UnknownStageError, match=re.escape(
            "Breakpoint('sclae', when='after', action='snapshot') names stage 'sclae', which "
            "pipeline 'feature_pipeline' does not have. Stage names: ['impute', 'scale']. "
            "Did you mean 'scale'?")):
        debugger.add_breakpoint("sclae", when="after")
    assert debugger.breakpoints == []


def test_unknown_stage_after_a_run_fails_at_once_and_without_suggestion_when_nothing_is_close():
    debugger = PipelineDebugger()
    drive(debugger, STEPS, numeric())
    with pytest.raises(UnknownStageError, match=re.escape(
            "Stage names: ['impute', 'scale'].")) as info:
        debugger.add_breakpoint("zzz")
    assert "Did you mean" not in str(info.value)
    assert info.value.suggestion is None


def test_attach_checks_breakpoints_added_before():
    debugger = PipelineDebugger()
    debugger.add_breakpoint("scale")
    debugger.add_breakpoint("imptue")
    with pytest.raises(UnknownStageError, match=re.escape("Did you mean 'impute'?")):
        debugger.attach(Pipe("feature_pipeline", STEPS))


def test_breakpoint_scoped_to_a_pipeline_is_checked_against_that_pipeline():
    debugger = PipelineDebugger()
    debugger.add_breakpoint("model", pipeline="training_pipeline")
    drive(debugger, STEPS, numeric())  # feature pipeline: not its business
    with pytest.raises(UnknownStageError, match=re.escape(
            "names stage 'model', which pipeline 'training_pipeline' does not have. "
            "Stage names: ['clf'].")):
        drive(debugger, [("clf", Model())], numeric(), name="training_pipeline")


def test_profiled_stage_names_are_checked_too():
    debugger = PipelineDebugger(profile=["scale", "impte"])
    with pytest.raises(UnknownStageError, match=re.escape(
            "profile=['scale', 'impte'] names stage 'impte', which pipeline 'feature_pipeline' "
            "does not have. Stage names: ['impute', 'scale']. Did you mean 'impute'?")):
        drive(debugger, STEPS, numeric())
    assert CALLS == []


def test_remove_and_clear_breakpoints():
    debugger = PipelineDebugger()
    a = debugger.add_breakpoint("scale")
    debugger.add_breakpoint("scale", when="after")
    debugger.add_breakpoint("impute")
    assert debugger.remove_breakpoint("scale", when="after") == 1
    assert debugger.breakpoints[0] is a
    assert debugger.remove_breakpoint(a) == 1
    with pytest.raises(ValueError, match=re.escape(
            "No breakpoint on stage 'scale'. Breakpoints: "
            "[\"Breakpoint('impute', when='before', action='snapshot')\"].")):
        debugger.remove_breakpoint("scale")
    debugger.clear_breakpoints()
    assert debugger.breakpoints == []
    drive(debugger, STEPS, numeric())
    assert debugger.snapshots == {}


# ------------------------------------------------------------------------------------------------
# breakpoints: firing, conditions, actions
# ------------------------------------------------------------------------------------------------
def test_default_breakpoint_snapshots_the_stage_input_and_carries_on():
    debugger = PipelineDebugger()
    bp = debugger.add_breakpoint("scale")
    X = frame()
    out = drive(debugger, STEPS, X[["age", "income"]])
    assert out.shape == (20, 2)
    assert CALLS == [("impute", "fit_transform"), ("scale", "fit")]
    snap = debugger.snapshots[("scale", "before")]
    assert list(debugger.snapshots) == [("scale", "before")]
    assert bp.hits == 1
    assert (snap.pipeline, snap.stage, snap.phase, snap.mode) == (
        "feature_pipeline", "scale", "before", "fit")
    assert snap.shape == (20, 2)
    assert snap.null_counts.to_dict() == {"age": 4, "income": 0}
    pd.testing.assert_frame_equal(snap.head, X[["age", "income"]].head(5))


def test_after_breakpoint_snapshots_the_output():
    debugger = PipelineDebugger()
    debugger.add_breakpoint("scale", when="after")
    X = numeric()
    drive(debugger, STEPS, X)
    snap = debugger.snapshot("scale", "after")
    assert snap.stats.loc["income", "mean"] == pytest.approx(2 * X["income"].mean())
    with pytest.raises(KeyError, match=re.escape(
            "No snapshot for ('scale', 'before'). Snapshots: [('scale', 'after')].")):
        debugger.snapshot("scale")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(thresholds=st.lists(st.integers(0, 30), min_size=1, max_size=6), limit=st.integers(0, 30))
def test_conditional_breakpoint_fires_only_when_its_condition_holds(thresholds, limit):
    debugger = PipelineDebugger()
    seen = []
    bp = debugger.add_breakpoint("scale", condition=lambda ctx: ctx.n_rows > limit,
                                 action=lambda ctx: seen.append(ctx.n_rows))
    for n in thresholds:
        drive(debugger, STEPS, np.ones((n, 2)))
    assert seen == [n for n in thresholds if n > limit]
    assert bp.hits == len(seen)


def test_condition_sees_mode_and_attempt():
    debugger = PipelineDebugger()
    seen = []
    debugger.add_breakpoint("flaky", when="after",
                            condition=lambda ctx: ctx.mode == "fit" and ctx.attempt == 2,
                            action=lambda ctx: seen.append((ctx.attempt, ctx.output.shape)))
    FAILURES_LEFT["flaky"] = 1
    drive(debugger, [("flaky", Flaky())], np.zeros((3, 2)), retry=quick_retry(3))
    FAILURES_LEFT["flaky"] = 0
    drive(debugger, [("flaky", Flaky())], np.zeros((3, 2)), retry=quick_retry(3))
    assert seen == [(2, (3, 2))]


@pytest.mark.parametrize("when", ["before", "after"])
def test_condition_that_raises_is_reported_as_the_conditions_error(when):
    debugger = PipelineDebugger()
    debugger.add_breakpoint("scale", when=when, condition=lambda ctx: ctx.X["salary"].mean() > 0)
    with pytest.raises(BreakpointConditionError, match=re.escape(
            f"The condition of Breakpoint('scale', when={when!r} if <lambda>, action='snapshot') "
            "raised KeyError: 'salary' (stage 'scale' of pipeline 'feature_pipeline', "
            "mode 'fit', attempt 1).")) as info:
        drive(debugger, STEPS, numeric())
    err = info.value
    assert isinstance(err, RuntimeError)
    assert isinstance(err.__cause__, KeyError)
    assert (err.stage_name, err.pipeline_name, err.mode) == ("scale", "feature_pipeline", "fit")
    assert err.breakpoint is debugger.breakpoints[0]


def test_condition_error_on_an_error_breakpoint_names_the_condition_and_chains_it():
    debugger = PipelineDebugger()
    debugger.add_breakpoint("boom", when="error", condition=lambda ctx: 1 / 0)
    with pytest.raises(BreakpointConditionError, match="raised ZeroDivisionError") as info:
        drive(debugger, [("boom", Boom())], numeric())
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert isinstance(info.value.__context__, ZeroDivisionError)
    assert debugger.last_failure.stage == "boom"  # the post-mortem is kept all the same


def test_pdb_action_calls_the_injected_entry_with_the_stage_context():
    entered = []
    debugger = PipelineDebugger(debugger_entry=entered.append)
    debugger.add_breakpoint("scale", action="pdb")
    X, y = numeric(), np.arange(20)
    drive(debugger, STEPS, X, y)
    (ctx,) = entered
    assert isinstance(ctx, StageContext)
    assert (ctx.stage_name, ctx.mode) == ("scale", "fit")
    assert ctx.y is y and ctx.X.shape == X.shape
    assert debugger.snapshots == {}


def test_default_pdb_entry_opens_breakpoint_with_stage_x_y_and_ctx_at_hand(monkeypatch):
    frames = []
    monkeypatch.setattr(sys, "breakpointhook", lambda *a, **k: frames.append(
        dict(sys._getframe(1).f_locals)))
    debugger = PipelineDebugger()
    debugger.add_breakpoint("scale", when="error", action="pdb")
    with pytest.raises(ValueError):
        drive(debugger, [("scale", Boom())], numeric(), np.arange(20))
    (local,) = frames
    assert {"stage", "X", "y", "ctx", "output", "error"} <= set(local)
    assert isinstance(local["stage"], Boom) and local["X"].shape == (20, 2)
    assert isinstance(local["error"], ValueError)
    assert pdb_entry.__name__ == "pdb_entry"


def test_callable_action_and_error_breakpoint_see_the_error():
    got = []
    debugger = PipelineDebugger()
    debugger.add_breakpoint("boom", when="error", action=lambda ctx: got.append(ctx.error))
    debugger.add_breakpoint("boom", when="error")  # and a snapshot of the failing input
    with pytest.raises(ValueError, match="bad column 'age'"):
        drive(debugger, [("impute", Scale(1.0, "impute")), ("boom", Boom())], numeric())
    assert [type(e) for e in got] == [ValueError]
    assert debugger.snapshots[("boom", "error")].shape == (20, 2)


def test_breakpoint_scoped_to_a_pipeline_fires_only_there():
    debugger = PipelineDebugger()
    debugger.attach(Pipe("feature_pipeline", STEPS), Pipe("inference_pipeline", STEPS))
    debugger.add_breakpoint("scale", pipeline="inference_pipeline")
    drive(debugger, STEPS, numeric())
    assert debugger.snapshots == {}
    drive(debugger, STEPS, numeric(), mode="transform", name="inference_pipeline")
    assert debugger.snapshots[("scale", "before")].pipeline == "inference_pipeline"


# ------------------------------------------------------------------------------------------------
# snapshots and their budget
# ------------------------------------------------------------------------------------------------
def test_capture_all_snapshots_every_stage_output_while_fitting_only():
    debugger = PipelineDebugger(capture="all")
    X = numeric()
    drive(debugger, STEPS + [("model", Model())], X)
    assert sorted(debugger.snapshots) == [("impute", "after"), ("model", "after"),
                                          ("scale", "after")]
    assert debugger.snapshots[("scale", "after")].stats.loc["age", "max"] == pytest.approx(
        2 * X["age"].max())
    model = debugger.snapshots[("model", "after")]
    assert model.shape is None and model.kind == "Model"
    assert model.note == "no data: the stage returned Model"
    debugger.snapshots.clear()
    drive(debugger, STEPS, X, mode="transform")
    assert debugger.snapshots == {}


def test_snapshot_statistics_match_pandas_on_mixed_columns():
    X = frame(200)
    snap = Snapshot.capture(X, budget=1_000_000, pipeline="p", stage="s", phase="before", mode="fit")
    assert snap.dtypes.to_dict() == {c: str(t) for c, t in X.dtypes.items()}
    assert snap.null_counts.to_dict() == X.isna().sum().to_dict()
    for col in ("age", "income"):
        row = snap.stats.loc[col]
        assert row["mean"] == pytest.approx(X[col].mean())
        assert row["std"] == pytest.approx(X[col].std())
        assert (row["min"], row["max"]) == (X[col].min(), X[col].max())
    assert np.isnan(snap.stats.loc["city", "mean"])
    assert snap.note == "" and snap.columns_shown == 3


def test_snapshot_of_a_frame_far_larger_than_the_budget_stays_within_it():
    rng = np.random.default_rng(0)
    big = pd.DataFrame(rng.normal(size=(400_000, 16)))  # ~51 MB
    big.iloc[::3, 5] = np.nan
    budget = 64 * 1024
    tracemalloc.start()
    try:
        snap = Snapshot.capture(big, budget=budget, pipeline="p", stage="s", phase="before",
                                mode="fit")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    data_bytes = big.memory_usage().sum()
    assert data_bytes > 700 * budget
    assert snap.nbytes <= budget
    assert snap.nbytes == (snap.head.memory_usage(deep=True).sum()
                           + snap.stats.memory_usage(deep=True).sum())
    assert peak < data_bytes / 10  # never a copy of the data, however large
    assert snap.shape == (400_000, 16)
    assert snap.null_counts[str(5)] == big[5].isna().sum()  # exact, over all rows
    assert snap.stats.loc["3", "mean"] == pytest.approx(big[3].mean())
    assert not np.shares_memory(snap.head.to_numpy(), big.to_numpy())


def test_tiny_budget_keeps_what_fits_and_says_so():
    X = pd.DataFrame(np.ones((100, 40)), columns=[f"feature_{i}" for i in range(40)])
    snap = Snapshot.capture(X, budget=3_000, pipeline="p", stage="s", phase="before", mode="fit")
    assert snap.nbytes <= 3_000
    assert 0 < snap.columns_shown < 40
    assert snap.note.startswith(f"budget 3.0 KB holds statistics and first rows of "
                                f"{snap.columns_shown} of 40 columns")
    empty = Snapshot.capture(X, budget=10, pipeline="p", stage="s", phase="before", mode="fit")
    assert empty.nbytes == 0 and empty.head is None and empty.stats is None
    assert empty.shape == (100, 40)


@settings(max_examples=30, deadline=None)
@given(n_rows=st.integers(0, 60), n_cols=st.integers(1, 8), budget=st.integers(1, 20_000),
       nan_every=st.integers(1, 7))
def test_snapshot_never_exceeds_its_budget(n_rows, n_cols, budget, nan_every):
    X = pd.DataFrame(np.arange(n_rows * n_cols, dtype=float).reshape(n_rows, n_cols))
    X.iloc[::nan_every, 0] = np.nan
    snap = Snapshot.capture(X, budget=budget, pipeline="p", stage="s", phase="before", mode="fit")
    assert snap.nbytes <= budget
    if snap.stats is not None:
        assert snap.stats["nulls"].to_list() == X.isna().sum().to_list()[:snap.columns_shown]


@pytest.mark.parametrize("data, shape", [
    (np.arange(12.0), (12,)),
    (np.arange(24.0).reshape(2, 3, 4), (2, 3, 4)),
    (pd.Series([1.0, None, 3.0], name="s"), (3,)),
    ([[1, 2], [3, 4], [5, 6]], (3, 2)),
])
def test_snapshot_of_other_kinds_of_data(data, shape):
    snap = Snapshot.capture(data, budget=100_000, pipeline="p", stage="s", phase="after",
                            mode="transform")
    assert snap.shape == shape
    assert snap.stats is not None and snap.head is not None
    assert "Snapshot p/s after transform" in repr(snap)
    assert "<table" in snap._repr_html_()
    assert "columns:" in str(snap)


def test_snapshot_of_a_sparse_matrix():
    sparse = pytest.importorskip("scipy.sparse")
    X = sparse.random(50, 4, density=0.5, format="csr", random_state=0)
    snap = Snapshot.capture(X, budget=100_000, pipeline="p", stage="s", phase="after", mode="fit")
    assert snap.kind == "csr_matrix" and snap.shape == (50, 4)
    assert snap.stats["mean"].to_numpy() == pytest.approx(np.asarray(X.mean(axis=0)).ravel())


# ------------------------------------------------------------------------------------------------
# the execution trace
# ------------------------------------------------------------------------------------------------
def test_trace_lists_every_stage_run_in_order_with_its_fields():
    debugger = PipelineDebugger()
    drive(debugger, STEPS, numeric())
    drive(debugger, STEPS, numeric(), mode="transform")
    trace = debugger.get_execution_trace()
    assert isinstance(trace, Trace) and len(trace) == 4
    assert [(e.stage, e.mode, e.run_mode) for e in trace] == [
        ("impute", "fit_transform", "fit"), ("scale", "fit", "fit"),
        ("impute", "transform", "transform"), ("scale", "transform", "transform")]
    first = trace[0]
    assert (first.pipeline, first.status, first.attempt, first.input_shape,
            first.output_shape) == ("feature_pipeline", "success", 1, (20, 2), (20, 2))
    assert first.duration >= 0 and first.start <= time.time()
    assert trace[0].run_id == trace[1].run_id != trace[2].run_id
    assert [r.status for r in trace.runs] == ["success", "success"]
    frame_ = trace.to_frame()
    assert list(frame_.columns[:5]) == ["run_id", "pipeline", "stage", "index", "mode"]
    assert len(trace.filter(stage="scale")) == 2
    assert len(debugger.get_execution_trace(status="failed")) == 0


def test_retried_attempts_appear_as_such():
    ticks = iter(range(100))
    debugger = PipelineDebugger(clock=lambda: float(next(ticks)))
    FAILURES_LEFT["flaky"] = 2
    drive(debugger, [("flaky", Flaky())], np.zeros((4, 3)), retry=quick_retry(3))
    trace = debugger.get_execution_trace()
    assert [(e.attempt, e.status) for e in trace] == [(1, "retried"), (2, "retried"),
                                                     (3, "success")]
    assert trace[0].error == "ConnectionError: feature store hiccup"
    assert [e.duration for e in trace] == [1.0, 1.0, 1.0]  # the injected clock
    assert trace[2].output_shape == (4, 3)
    row = debugger.time_breakdown().iloc[0]
    assert (row["runs"], row["attempts"]) == (1, 3)


def test_failed_stage_run_is_traced_as_failed():
    debugger = PipelineDebugger()
    with pytest.raises(ValueError):
        drive(debugger, [("impute", Scale(1.0, "impute")), ("boom", Boom())], numeric())
    trace = debugger.get_execution_trace()
    assert [e.status for e in trace] == ["success", "failed"]
    assert trace[1].error == "ValueError: bad column 'age'" and trace[1].output_shape is None
    assert trace.runs[0].status == "failed"


def test_visualize_trace_renders_plain_text_when_rich_output_is_off():
    debugger = PipelineDebugger(rich_output=False)
    FAILURES_LEFT["flaky"] = 1
    drive(debugger, [("impute", Scale(1.0, "impute")), ("flaky", Flaky())], np.zeros((4, 3)),
          retry=quick_retry(2))
    lines = debugger.visualize_trace().splitlines()
    assert lines[0].startswith("Execution trace: 3 stage runs in 1 pipeline run, ")
    assert lines[1].split() == ["#", "started", "pipeline", "stage", "mode", "attempt", "input",
                                "output", "time", "status"]
    assert re.fullmatch(r"\d\d:\d\d:\d\d", lines[3].split()[1])  # local time, to the second
    assert lines[3].split()[:8] == ["1", lines[3].split()[1], "feature_pipeline", "impute",
                                    "fit_transform", "1", "(4,", "3)"]
    assert lines[4].endswith("retried: ConnectionError: feature store hiccup")
    assert lines[5].split()[5] == "2" and lines[5].endswith("success")
    assert str(debugger.get_execution_trace()) == "\n".join(lines)


def test_visualize_trace_renders_a_rich_tree_and_html():
    ticks = iter(range(100))
    debugger = PipelineDebugger(clock=lambda: float(next(ticks)))
    drive(debugger, STEPS, numeric())
    FAILURES_LEFT["flaky"] = 1
    drive(debugger, [("flaky", Flaky())], np.zeros((4, 3)), retry=quick_retry(2), mode="transform")
    lines = debugger.visualize_trace(width=200).splitlines()
    assert lines[0].startswith("Execution trace: 4 stage runs in 2 pipeline runs")
    assert re.fullmatch(r"├── feature_pipeline  fit  \d\d:\d\d:\d\d  \S+ [µm]?s  success", lines[1])
    assert re.fullmatch(r"│   ├── 1  impute  fit_transform  attempt 1  \(20, 2\) -> \(20, 2\) +"
                        r"\S+ [µm]?s  success", lines[2])
    assert lines[3].startswith("│   └── 2  scale   fit            attempt 1  (20, 2) -> (20, 2)")
    assert re.fullmatch(r"└── feature_pipeline  transform  \d\d:\d\d:\d\d  \S+ [µm]?s  success",
                        lines[4])
    assert re.fullmatch(r"    ├── 3  flaky   transform      attempt 1   \(4, 3\) -> - +1\.00 s  "
                        r"retried: ConnectionError: feature store hiccup", lines[5])
    assert lines[6].startswith("    └── 4  flaky   transform      attempt 2   (4, 3) -> (4, 3)")
    console_file = io.StringIO()
    from rich.console import Console
    debugger.visualize_trace(console=Console(file=console_file, width=110))
    assert "scale" in console_file.getvalue()
    html = debugger.get_execution_trace()._repr_html_()
    assert html.startswith("<style>.mlt-table") and "<td>scale</td>" in html
    assert '<td class="retried">retried: ConnectionError' in html and "not shown" not in html


def _events(n, start=1_700_000_000.0):
    from ml_toolbox.debugger import TraceEvent

    return [TraceEvent(run_id=i // 4, pipeline="feature_pipeline", stage=f"stage_{i % 4}",
                       index=i % 4, mode="transform", run_mode="transform", start=start + i,
                       duration=0.001, input_shape=(1000, 30), output_shape=(1000, 30),
                       status="success" if i % 7 else "failed", attempt=1,
                       error=None if i % 7 else "ValueError: bad <column> 'age'")
            for i in range(n)]


def test_trace_html_is_bounded_latest_rows_and_a_count_of_the_rest():
    """10,000 events render a page of bounded size (it was about 1.7 MB): the latest rows and a
    count of the others, which to_frame() still has."""
    trace = Trace(_events(10_000))
    page = trace._repr_html_()
    assert len(page.encode()) < 40_000
    assert page.count("<tr>") == 1 + 1 + Trace.html_rows  # header, the count, the latest rows
    assert "9,900 earlier stage runs not shown (trace.to_frame() has them all)" in page
    assert '<td class="num">10000</td>' in page and '<td class="num">9901</td>' in page
    assert '<td class="num">9900</td>' not in page
    assert "bad &lt;column&gt; &#x27;age&#x27;" in page  # escaped
    assert len(trace.to_frame()) == 10_000


@given(n=st.integers(0, 250), shown=st.integers(0, 120))
@settings(max_examples=30, deadline=None)
def test_trace_html_shows_the_latest_rows_for_any_length(n, shown):
    trace = Trace(_events(n))
    trace.html_rows = shown
    page = trace._repr_html_()
    rows = min(n, shown)
    earlier = n - rows
    assert page.count("<tr>") == 1 + (earlier > 0) + rows
    assert ("not shown" in page) == (earlier > 0)
    if rows:
        assert f'<td class="num">{n}</td>' in page and f'<td class="num">{earlier + 1}</td>' in page


def test_trace_times_are_local_to_the_second(monkeypatch):
    monkeypatch.setenv("TZ", "IST-05:30")  # POSIX rule: UTC+05:30 named IST, needs no tz database
    time.tzset()
    try:
        trace = Trace(_events(1, start=1_700_000_000.4))  # 2023-11-14 22:13:20.4 UTC
        assert "from 2023-11-15 03:43:20 IST" in trace._title()
        assert str(trace).splitlines()[3].split()[1] == "03:43:20"
        assert '<td class="num">03:43:20</td>' in trace._repr_html_()
        assert "03:43:20" in trace.render(width=120).splitlines()[1]
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_trace_html_aligns_numbers_with_its_own_css():
    page = Trace(_events(3))._repr_html_()
    assert page.startswith("<style>") and ".mlt-table td.num{text-align:right" in page.replace(
        ".mlt-table th.num,", "")
    head = re.search(r"<thead>(.*)</thead>", page)[1]
    assert re.findall(r'<th class="num">(\w+|#)</th>', head) == ["#", "started", "attempt", "time"]


def test_trace_is_bounded_by_max_events():
    debugger = PipelineDebugger(max_events=3)
    for _ in range(3):
        drive(debugger, STEPS, numeric())
    assert len(debugger.get_execution_trace()) == 3
    assert debugger.time_breakdown()["runs"].to_list() == [3, 3]


# ------------------------------------------------------------------------------------------------
# profiling
# ------------------------------------------------------------------------------------------------
def test_time_breakdown_per_stage():
    debugger = PipelineDebugger()
    drive(debugger, [("impute", Scale(1.0, "impute")), ("busy", Busy())], np.zeros((3, 2)))
    table = debugger.time_breakdown()
    assert list(table.columns) == ["pipeline", "stage", "runs", "attempts", "total_s", "mean_s",
                                   "max_s", "share"]
    assert set(table["stage"]) == {"impute", "busy"}
    assert table["share"].sum() == pytest.approx(1.0)
    assert table["total_s"].is_monotonic_decreasing


def test_opt_in_profile_names_the_slowest_functions_of_a_stage():
    debugger = PipelineDebugger(profile="busy")
    drive(debugger, [("impute", Scale(1.0, "impute")), ("busy", Busy())], np.zeros((3, 2)))
    assert list(debugger.profiles) == [("busy", "fit")]
    profile = debugger.profiles["busy", "fit"]
    # wall-clock profile: on a loaded machine one preempted call elsewhere can outweigh a line or
    # two, so the busy function must be among the three slowest (it is the first on a quiet one)
    assert "_busy_work" in [entry.function for entry in profile.slowest(3)]
    assert profile.slowest(1, sort="cumtime")[0].cumtime >= profile.slowest(1)[0].tottime
    assert "_busy_work" in profile.report(3)
    assert sys.getprofile() is None
    with pytest.raises(ValueError, match=re.escape(
            "sort must be 'tottime' or 'cumtime', got 'calls'.")):
        profile.slowest(sort="calls")


def test_profile_is_switched_off_when_the_stage_fails():
    debugger = PipelineDebugger(profile=True)
    with pytest.raises(ValueError):
        drive(debugger, [("boom", Boom())], numeric())
    assert sys.getprofile() is None
    assert ("boom", "fit") in debugger.profiles


# ------------------------------------------------------------------------------------------------
# post-mortem
# ------------------------------------------------------------------------------------------------
def test_failure_keeps_input_and_error_and_replay_reproduces_it():
    debugger = PipelineDebugger()
    X, y = numeric(), np.arange(20)
    with pytest.raises(ValueError) as info:
        drive(debugger, [("impute", Scale(1.0, "impute")), ("boom", Boom())], X, y)
    failure = debugger.last_failure
    assert isinstance(failure, Failure)
    assert failure.error is info.value
    assert (failure.pipeline, failure.stage, failure.mode, failure.attempt) == (
        "feature_pipeline", "boom", "fit", 1)
    pd.testing.assert_frame_equal(failure.X, X)
    assert failure.X is not X and not failure.truncated
    assert "ValueError: bad column 'age'" in failure.traceback
    assert str(failure).startswith("feature_pipeline/boom failed in fit at attempt 1: "
                                   "ValueError: bad column 'age'; input kept ((20, 2)).")
    CALLS.clear()
    with pytest.raises(ValueError, match="bad column 'age'"):
        failure.replay()
    assert CALLS == [("boom", "fit")]  # the stage alone


def test_replay_fits_a_fresh_clone_and_takes_a_fixed_input():
    debugger = PipelineDebugger()
    FAILURES_LEFT["flaky"] = 1
    with pytest.raises(ConnectionError):
        drive(debugger, [("flaky", Flaky())], np.zeros((3, 2)))
    out = debugger.last_failure.replay()  # the hiccup is gone
    np.testing.assert_array_equal(out, np.ones((3, 2)))
    np.testing.assert_array_equal(debugger.last_failure.replay(X=np.ones((2, 2))), 2 * np.ones((2, 2)))


def test_failure_over_budget_keeps_the_first_rows_and_says_so(caplog):
    debugger = PipelineDebugger(max_failure_bytes=1_000)
    X, y = np.zeros((1_000, 4)), np.zeros(1_000)
    with caplog.at_level(logging.WARNING, logger="ml_toolbox.debugger"):
        with pytest.raises(ConnectionError):
            FAILURES_LEFT["flaky"] = 5
            drive(debugger, [("flaky", Flaky())], X, y)
    failure = debugger.last_failure
    assert failure.truncated and failure.n_rows == 1_000
    assert failure.X.nbytes + failure.y.nbytes <= 1_000
    assert failure.X.shape[0] == failure.y.shape[0] == failure.n_rows_kept == 25
    assert "keeps the first 25 of 1000 rows" in caplog.text
    assert "first 25 of 1000 rows kept (input over max_failure_bytes=1000)" in str(failure)
    with pytest.warns(UserWarning, match=re.escape(
            "Replaying feature_pipeline/flaky on the first 25 of 1000 rows it failed on")):
        with pytest.raises(ConnectionError):
            failure.replay()


# ------------------------------------------------------------------------------------------------
# plug-in citizenship
# ------------------------------------------------------------------------------------------------
def test_disabled_debugger_is_skipped():
    debugger = PipelineDebugger(enable_debugging=False)
    assert debugger.enabled is False
    drive(debugger, STEPS, numeric())
    assert len(debugger.get_execution_trace()) == 0
    debugger.enabled = True
    assert debugger.enable_debugging is True


def test_clone_shares_and_pickle_round_trips():
    debugger = PipelineDebugger(capture="all")
    debugger.add_breakpoint("scale")
    drive(debugger, STEPS, numeric())
    assert clone(debugger) is debugger
    again = pickle.loads(pickle.dumps(debugger))
    assert len(again.get_execution_trace()) == 2
    assert sorted(again.snapshots) == sorted(debugger.snapshots)
    drive(again, STEPS, numeric())  # its lock works
    assert len(again.get_execution_trace()) == 4
    assert repr(again).startswith("PipelineDebugger(on, 1 breakpoints, 4 trace events")


def test_concurrent_runs_from_threads_are_all_traced():
    debugger = PipelineDebugger(capture="all")
    debugger.add_breakpoint("scale", when="after", action=lambda ctx: None)
    errors = []

    def work():
        try:
            for _ in range(20):
                drive(debugger, STEPS, numeric())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(debugger.get_execution_trace()) == 4 * 20 * 2
    assert debugger.breakpoints[0].hits == 80
    assert debugger.time_breakdown()["runs"].to_list() == [80, 80]


def test_no_warning_from_a_plain_run():
    debugger = PipelineDebugger(capture="all", profile=True)
    debugger.add_breakpoint("scale")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        drive(debugger, STEPS, frame()[["age", "income"]])


# ------------------------------------------------------------------------------------------------
# through real pipelines
# ------------------------------------------------------------------------------------------------
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from ml_toolbox import FeaturePipeline, MLToolbox, PipelineStage, UnifiedMLPipeline  # noqa: E402


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :6].copy()
    X.iloc[::10, 1] = np.nan
    return X, y


def features():
    return [("impute", SimpleImputer()), ("scale", StandardScaler())]


def test_seed_usage_pattern_4_runs_as_written(cancer):
    X, y = cancer
    toolbox = MLToolbox()
    pipeline = UnifiedMLPipeline(toolbox)
    debugger = PipelineDebugger(enable_debugging=True)
    pipeline.feature_pipeline.debugger = debugger
    debugger.add_breakpoint('preprocessing')

    # Execute with debugging
    result = pipeline.execute(X, y, mode='train')

    # Get trace
    trace = debugger.get_execution_trace()
    visualization = debugger.visualize_trace()

    assert type(result["model"]).__name__ == "LogisticRegression"
    assert [(e.pipeline, e.stage, e.mode, e.status) for e in trace] == [
        ("feature_pipeline", "preprocessing", "fit_transform", "success")]
    assert trace[0].input_shape == X.shape
    snap = debugger.snapshots[("preprocessing", "before")]
    assert snap.shape == X.shape and snap.null_counts.iloc[1] == X.iloc[:, 1].isna().sum()
    assert "feature_pipeline  fit  " in visualization
    assert "1  preprocessing  fit_transform  attempt 1  (569, 6) -> (569, 6)" in visualization


def test_debugger_handed_down_by_a_unified_pipeline_knows_every_stage(cancer):
    X, y = cancer
    debugger = PipelineDebugger()
    pipe = UnifiedMLPipeline(features=features(), model=LogisticRegression(), debugger=debugger)
    debugger.add_breakpoint("model", when="after")  # a training stage; the feature run starts first
    debugger.add_breakpoint("scale", when="after", pipeline="inference_pipeline")
    pipe.fit(X, y)
    assert debugger.snapshots[("model", "after")].kind == "PipelineStage"  # a fitted model
    pipe.predict(X.iloc[:50])
    assert debugger.snapshots[("model", "after")].shape == (50,)  # the latest wins
    trace = debugger.get_execution_trace()
    assert [(e.pipeline, e.stage, e.mode) for e in trace] == [
        ("feature_pipeline", "impute", "fit_transform"),
        ("feature_pipeline", "scale", "fit_transform"),
        ("training_pipeline", "model", "fit"),
        ("inference_pipeline", "impute", "transform"),
        ("inference_pipeline", "scale", "transform"),
        ("inference_pipeline", "model", "predict")]
    assert trace[-1].output_shape == (50,)
    assert debugger.snapshots[("scale", "after")].shape == (50, 6)
    assert debugger.snapshots[("scale", "after")].pipeline == "inference_pipeline"
    with pytest.raises(UnknownStageError, match=re.escape(
            "Stage names: ['impute', 'scale', 'model']. Did you mean 'model'?")):
        debugger.add_breakpoint("modle")


def test_unknown_stage_in_a_real_pipeline_fails_before_fitting_anything(cancer):
    X, y = cancer
    ran = []
    debugger = PipelineDebugger()
    fp = FeaturePipeline([("log", PipelineStage(lambda Z: ran.append(1) or Z)),
                          ("scale", StandardScaler())], debugger=debugger)
    debugger.add_breakpoint("sacle")
    with pytest.raises(UnknownStageError, match=re.escape(
            "names stage 'sacle', which pipeline 'feature_pipeline' does not have. Stage names: "
            "['log', 'scale']. Did you mean 'scale'?")):
        fp.fit(X)
    assert ran == [] and "stages_" not in fp.__dict__


def test_condition_error_in_a_real_pipeline_keeps_its_own_type(cancer):
    X, y = cancer
    debugger = PipelineDebugger()
    fp = FeaturePipeline(features(), debugger=debugger)
    debugger.add_breakpoint("impute", condition=lambda ctx: ctx.X["nope"].any())
    with pytest.raises(BreakpointConditionError, match=re.escape("raised KeyError: 'nope'")) as info:
        fp.fit(X)
    assert isinstance(info.value.__cause__, KeyError)
    assert debugger.get_execution_trace().runs[-1].status == "failed"


def test_retried_attempts_of_a_real_pipeline_appear_in_the_trace(cancer):
    X, y = cancer
    debugger = PipelineDebugger(rich_output=False)
    FAILURES_LEFT["real"] = 1
    fp = FeaturePipeline([("impute", SimpleImputer()), ("flaky", FlakyTransformer("real"))],
                         debugger=debugger, retry_handler=quick_retry(3))
    fp.fit(X)
    assert [(e.stage, e.attempt, e.status) for e in debugger.get_execution_trace()] == [
        ("impute", 1, "success"), ("flaky", 1, "retried"), ("flaky", 2, "success")]
    assert "retried: ConnectionError: feature store hiccup" in debugger.visualize_trace()


def test_partial_run_until_a_stage_refits_nothing_and_is_traced(cancer):
    X, y = cancer
    debugger = PipelineDebugger(capture="all")
    fp = FeaturePipeline(features(), debugger=debugger).fit(X)
    fitted = list(fp.stages_)
    debugger.add_breakpoint("scale")  # a later stage: still a valid name for the partial run
    debugger.add_breakpoint("impute", when="after")
    out = fp.transform(X, until="impute")
    np.testing.assert_allclose(out, SimpleImputer().fit_transform(X))
    assert fp.stages_ == fitted and all(a is b for a, b in zip(fp.stages_, fitted))
    last = debugger.get_execution_trace()[-1]
    assert (last.stage, last.mode, last.run_mode) == ("impute", "transform", "transform")
    assert len(debugger.get_execution_trace()) == 3
    assert debugger.snapshots[("impute", "after")].null_counts.sum() == 0
    # the fit's capture="all" snapshot of scale's output is the standardised data
    assert debugger.snapshots[("scale", "after")].stats["mean"].abs().max() < 1e-9
    assert ("scale", "before") not in debugger.snapshots


def _no_negatives(Z):
    if (np.asarray(Z) < 0).any():
        raise ValueError("negative values reached the log stage")
    return np.log1p(Z)


def test_post_mortem_of_a_real_fit_replays_and_checks_a_fix(cancer):
    X, y = cancer
    debugger = PipelineDebugger()
    fp = FeaturePipeline([("scale", StandardScaler()), ("log", _no_negatives)],
                         debugger=debugger)
    with pytest.raises(ValueError, match="negative values"):
        fp.fit(X)
    failure = debugger.last_failure
    assert (failure.pipeline, failure.stage, failure.mode) == (
        "feature_pipeline", "log", "fit_transform")
    assert failure.X.shape == X.shape  # the stage's input: the scaled data
    assert "raised by stage 'log' of pipeline 'feature_pipeline'" in failure.traceback
    with pytest.raises(ValueError, match="negative values"):
        failure.replay()
    fixed = failure.replay(X=np.abs(failure.X))
    np.testing.assert_allclose(fixed, np.log1p(np.abs(failure.X)))


def test_post_mortem_of_a_real_prediction(cancer):
    X, y = cancer
    debugger = PipelineDebugger()
    pipe = UnifiedMLPipeline(features=[("log", _no_negatives)], model=LogisticRegression(),
                             debugger=debugger).fit(X.fillna(0), y)
    bad = X.fillna(0).iloc[:5] - 1000
    with pytest.raises(ValueError, match="negative values"):
        pipe.predict(bad)
    failure = debugger.last_failure
    assert (failure.pipeline, failure.stage, failure.mode, failure.fitting) == (
        "inference_pipeline", "log", "transform", False)
    with pytest.raises(ValueError, match="negative values"):
        failure.replay()
    np.testing.assert_allclose(failure.replay(X=bad.abs()), np.log1p(bad.abs()))


def test_profile_of_a_real_stage_names_sklearn_functions(cancer):
    X, y = cancer
    debugger = PipelineDebugger(profile=["scale"])
    FeaturePipeline(features(), debugger=debugger).fit(X)
    assert list(debugger.profiles) == [("scale", "fit_transform")]
    profile = debugger.profiles["scale", "fit_transform"]
    names = {f.function for f in profile.slowest(50, sort="cumtime")}
    assert "fit_transform" in names or "partial_fit" in names


def test_shared_debugger_follows_clones_in_cross_validation(cancer):
    X, y = cancer
    debugger = PipelineDebugger()
    pipe = UnifiedMLPipeline(features=features(), model=LogisticRegression(), debugger=debugger)
    cross_val_score(pipe, X, y, cv=3)
    trace = debugger.get_execution_trace()
    assert len(trace.filter(stage="model", mode="fit")) == 3
    assert len(trace.filter(pipeline="inference_pipeline", stage="model")) == 3
    table = debugger.time_breakdown()
    assert set(zip(table["pipeline"], table["stage"])) >= {("training_pipeline", "model")}


def test_pipeline_with_a_debugger_pickles(cancer):
    X, y = cancer
    debugger = PipelineDebugger(capture="all")
    pipe = UnifiedMLPipeline(features=features(), model=LogisticRegression(),
                             debugger=debugger).fit(X, y)
    again = pickle.loads(pickle.dumps(pipe))
    assert again.debugger is not debugger
    np.testing.assert_array_equal(again.predict(X), pipe.predict(X))
    assert len(again.debugger.get_execution_trace()) == len(debugger.get_execution_trace()) == 6


def test_example_runs(capsys):
    import runpy
    from pathlib import Path

    runpy.run_path(str(Path(__file__).parent.parent / "examples" / "debugging.py"),
                   run_name="__main__")
    out = capsys.readouterr().out
    assert "1  preprocessing  fit_transform  attempt 1  (569, 30) -> (569, 30)" in out
    assert "replay reproduces it: log_features got negative values" in out


def test_attaching_a_unified_pipeline_checks_breakpoints_when_added():
    debugger = PipelineDebugger()
    pipe = UnifiedMLPipeline(features=features(), model=LogisticRegression())
    debugger.attach(pipe)
    assert str(debugger.add_breakpoint("model", pipeline="training_pipeline")) == (
        "Breakpoint('training_pipeline/model', when='before', action='snapshot')")
    with pytest.raises(UnknownStageError, match=re.escape(
            "names stage 'imputer', which none of the pipelines 'feature_pipeline', "
            "'training_pipeline', 'inference_pipeline' has. Stage names: ['impute', 'scale', "
            "'model']. Did you mean 'impute'?")):
        debugger.add_breakpoint("imputer")
    with pytest.raises(UnknownStageError, match=re.escape(
            "names stage 'scale', which pipeline 'training_pipeline' does not have. "
            "Stage names: ['model'].")):
        debugger.add_breakpoint("scale", pipeline="training_pipeline")
