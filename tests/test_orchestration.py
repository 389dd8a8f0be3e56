"""Graphs, parallel stages, timeouts, failure strategies and caching (ml_toolbox.orchestration)."""

import re
import threading
import time

import joblib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joblib import parallel_config
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.feature_selection import SelectKBest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from ml_toolbox import FeaturePipeline, PipelineStage, TrainingPipeline, UnifiedMLPipeline
from ml_toolbox.orchestration import (PipelineGraphError, StageFailures, StageTimeoutError,
                                      fast_hash, plan_graph)
from ml_toolbox.plugins import PipelinePlugin

RNG = np.random.RandomState(0)
X = RNG.rand(60, 5)
Y = (X[:, 0] > 0.5).astype(int)


# -- stubs ---------------------------------------------------------------------------------------
class Recorder(PipelinePlugin):
    def __init__(self):
        self.events = []

    def before_run(self, run):
        self.events.append(("before_run", run.mode))

    def after_run(self, run):
        self.events.append(("after_run", run.mode))

    def on_run_error(self, run, error):
        self.events.append(("on_run_error", type(error).__name__))

    def before_stage(self, ctx):
        self.events.append(("before", ctx.stage_name))

    def after_stage(self, ctx):
        self.events.append(("after", ctx.stage_name, ctx.extra.get("cache")))

    def on_stage_error(self, ctx, error):
        self.events.append(("error", ctx.stage_name, type(error).__name__))

    def stage_events(self, kind):
        return [e[1] for e in self.events if e[0] == kind]


class Boom(TransformerMixin, BaseEstimator):
    """Fails at fit with the error it is given."""

    def __init__(self, error="boom", kind="value"):
        self.error = error
        self.kind = kind

    def fit(self, X, y=None):
        raise {"value": ValueError, "type": TypeError}[self.kind](self.error)

    def transform(self, X):
        return X


class Sleepy(TransformerMixin, BaseEstimator):
    def __init__(self, seconds=0.0):
        self.seconds = seconds

    def fit(self, X, y=None):
        time.sleep(self.seconds)
        return self

    def transform(self, X):
        return X


class CountingScaler(StandardScaler):
    """A StandardScaler that counts its fits in a file (fits may happen in other processes)."""

    def __init__(self, log=None, *, with_mean=True):
        super().__init__(with_mean=with_mean)
        self.log = log

    def fit(self, X, y=None, sample_weight=None):
        if self.log is not None:
            with open(self.log, "a") as f:
                f.write("fit\n")
        return super().fit(X, y, sample_weight)


class OtherScaler(CountingScaler):
    """Same parameters, another class."""


def fits(log):
    try:
        with open(log) as f:
            return len(f.read().split())
    except FileNotFoundError:
        return 0


def graph_steps():
    return [("scale", StandardScaler()),
            PipelineStage(PCA(2, random_state=0), "pca", depends_on=["scale"]),
            PipelineStage(SelectKBest(k=2), "kbest", depends_on=["scale"]),
            PipelineStage(MinMaxScaler(), "minmax", depends_on=["pca", "kbest"])]


# -- planning ------------------------------------------------------------------------------------
def test_plan_orders_waves_and_outputs_deterministically():
    names = ["b", "a", "c", "d"]
    stages = [PipelineStage(StandardScaler(), n, depends_on=d)
              for n, d in zip(names, [[], [], ["a", "b"], ["b"]])]
    plan = plan_graph(names, stages)
    assert plan.levels == [["b", "a"], ["c", "d"]]
    assert plan.order == ["b", "a", "c", "d"]
    assert plan.outputs == ["c", "d"]
    assert plan.inputs["c"] == ("a", "b")
    assert plan.ancestors("c") == ["b", "a", "c"]


def test_self_dependency_is_refused_naming_the_stage():
    fp = FeaturePipeline([PipelineStage(StandardScaler(), "scale", depends_on=["scale"])])
    msg = "FeaturePipeline 'feature_pipeline': stage 'scale' depends on itself " \
          "(depends_on=['scale'])."
    with pytest.raises(PipelineGraphError, match=re.escape(msg)):
        fp.fit(X)


def test_missing_dependency_is_refused_with_a_close_match():
    fp = FeaturePipeline([("scale", StandardScaler()),
                          PipelineStage(PCA(2), "pca", depends_on=["scael"])])
    msg = ("FeaturePipeline 'feature_pipeline': stage 'pca' depends on 'scael', which is not a "
           "stage of this pipeline. Did you mean 'scale'? Stages: ['scale', 'pca'].")
    with pytest.raises(PipelineGraphError, match=re.escape(msg)):
        fp.fit(X)


def test_cycle_is_refused_before_anything_runs(tmp_path):
    log = tmp_path / "fits"
    fp = FeaturePipeline([("first", CountingScaler(str(log))),
                          PipelineStage(StandardScaler(), "a", depends_on=["b"]),
                          PipelineStage(StandardScaler(), "b", depends_on=["a"])])
    msg = ("FeaturePipeline 'feature_pipeline': the stages form a cycle: 'a' -> 'b' -> 'a'; "
           "a graph pipeline must be acyclic.")
    with pytest.raises(PipelineGraphError, match=re.escape(msg)):
        fp.fit(X)
    assert fits(log) == 0


def test_depends_on_of_the_wrong_type_is_refused():
    fp = FeaturePipeline([("scale", StandardScaler()),
                          PipelineStage(PCA(2), "pca", depends_on=3)])
    msg = ("FeaturePipeline 'feature_pipeline': stage 'pca': depends_on must be a list of stage "
           "names, got int: 3.")
    with pytest.raises(TypeError, match=re.escape(msg)):
        fp.fit(X)


@pytest.mark.parametrize("n_jobs, error, msg", [
    (0, ValueError, "FeaturePipeline 'feature_pipeline': n_jobs must be None or a non-zero int "
                    "(-1: all cores), got 0."),
    ("2", TypeError, "FeaturePipeline 'feature_pipeline': n_jobs must be None or a non-zero int "
                     "(-1: all cores), got str: '2'."),
])
def test_bad_n_jobs_is_refused(n_jobs, error, msg):
    with pytest.raises(error, match=re.escape(msg)):
        FeaturePipeline([("scale", StandardScaler())], n_jobs=n_jobs).fit(X)


def test_negative_timeouts_are_refused_naming_the_field():
    msg = ("FeaturePipeline 'feature_pipeline': timeout must be None or a positive number of "
           "seconds, got -1.")
    with pytest.raises(ValueError, match=re.escape(msg)):
        FeaturePipeline([("scale", StandardScaler())], timeout=-1).fit(X)
    msg = ("FeaturePipeline 'feature_pipeline': stage 'scale': timeout must be None or a "
           "positive number of seconds, got -0.5.")
    with pytest.raises(ValueError, match=re.escape(msg)):
        FeaturePipeline([PipelineStage(StandardScaler(), "scale", timeout=-0.5)]).fit(X)


def test_unknown_failure_strategy_gets_a_close_match():
    msg = ("FeaturePipeline 'feature_pipeline': failure_strategy must be one of ['fail_fast', "
           "'continue'], got 'contnue'. Did you mean 'continue'?")
    with pytest.raises(ValueError, match=re.escape(msg)):
        FeaturePipeline([("scale", StandardScaler())], failure_strategy="contnue").fit(X)


# -- graph execution -----------------------------------------------------------------------------
def test_graph_matches_the_same_stages_written_with_scikit_learn():
    fp = FeaturePipeline(graph_steps())
    out = fp.fit_transform(X, Y)
    union = Pipeline([("scale", StandardScaler()),
                      ("union", FeatureUnion([("pca", PCA(2, random_state=0)),
                                              ("kbest", SelectKBest(k=2))])),
                      ("minmax", MinMaxScaler())])
    expected = union.fit_transform(X, Y)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(fp.transform(X), expected)
    assert list(fp.get_feature_names_out()) == list(union.get_feature_names_out())
    assert fp["pca"].estimator_.n_components_ == 2


def test_transform_until_runs_only_the_needed_branch():
    fp = FeaturePipeline(graph_steps()).fit(X, Y)
    rec = Recorder()
    fp.monitor = rec
    out = fp.transform(X, until="pca")
    assert out.shape == (60, 2)
    assert rec.stage_events("after") == ["scale", "pca"]


def test_several_sinks_are_joined_in_declaration_order_with_pandas():
    frame = pd.DataFrame(X, columns=list("abcde"))
    fp = FeaturePipeline([PipelineStage(StandardScaler(), "z", depends_on=[]),
                          PipelineStage(MinMaxScaler(), "m", depends_on=[])])
    fp.set_output(transform="pandas")
    out = fp.fit_transform(frame)
    assert list(out.columns) == [f"z__{c}" for c in "abcde"] + [f"m__{c}" for c in "abcde"]
    assert list(fp.get_feature_names_out()) == list(out.columns)


def test_plugins_see_every_stage_of_a_parallel_graph_in_the_parent():
    rec = Recorder()
    fp = FeaturePipeline(graph_steps(), n_jobs=2, monitor=rec)
    with parallel_config(backend="threading"):
        fp.fit(X, Y)
    assert rec.events[0] == ("before_run", "fit") and rec.events[-1] == ("after_run", "fit")
    assert sorted(rec.stage_events("before")) == ["kbest", "minmax", "pca", "scale"]
    assert rec.stage_events("after") == ["scale", "pca", "kbest", "minmax"]


@pytest.mark.parametrize("backend", ["threading", "loky"])
def test_parallel_results_are_identical_to_serial(backend):
    serial = FeaturePipeline(graph_steps()).fit_transform(X, Y)
    with parallel_config(backend=backend):
        parallel = FeaturePipeline(graph_steps(), n_jobs=2).fit_transform(X, Y)
    np.testing.assert_array_equal(serial, parallel)


def test_unified_pipeline_serves_a_graph_like_scikit_learn():
    pipe = UnifiedMLPipeline(features=FeaturePipeline(graph_steps(), n_jobs=2),
                             model=LogisticRegression())
    pipe.fit(X, Y)
    sk = Pipeline([("scale", StandardScaler()),
                   ("union", FeatureUnion([("pca", PCA(2, random_state=0)),
                                           ("kbest", SelectKBest(k=2))])),
                   ("minmax", MinMaxScaler()), ("model", LogisticRegression())]).fit(X, Y)
    np.testing.assert_array_equal(pipe.predict_proba(X), sk.predict_proba(X))
    np.testing.assert_array_equal(pipe.transform(X), sk[:-1].transform(X))
    with pytest.raises(ValueError, match="partial_fit does not support graph"):
        UnifiedMLPipeline(features=graph_steps(), model=PipelineStage(
            __import__("sklearn.linear_model", fromlist=["SGDClassifier"]).SGDClassifier())
        ).partial_fit(X, Y, classes=[0, 1])


# -- failure strategies --------------------------------------------------------------------------
def failing_steps():
    return [("scale", StandardScaler()),
            PipelineStage(Boom("first"), "bad1", depends_on=["scale"]),
            PipelineStage(PCA(2), "good", depends_on=["scale"]),
            PipelineStage(Boom("second"), "bad2", depends_on=["scale"]),
            PipelineStage(StandardScaler(), "after_bad", depends_on=["bad1"])]


def test_fail_fast_raises_the_stage_own_error_and_stops():
    rec = Recorder()
    fp = FeaturePipeline(failing_steps(), monitor=rec)
    with pytest.raises(ValueError) as info:
        fp.fit(X)
    assert type(info.value) is ValueError and str(info.value) == "first"
    assert any("stage 'bad1'" in note for note in info.value.__notes__)
    assert rec.stage_events("after") == ["scale"]
    assert "stages_" not in fp.__dict__


def test_continue_runs_the_independent_stages_and_lists_every_failure():
    rec = Recorder()
    fp = FeaturePipeline(failing_steps(), failure_strategy="continue", monitor=rec)
    msg = ("FeaturePipeline 'feature_pipeline': 2 stage(s) failed during fit "
           "(failure_strategy='continue'):\n"
           "  - stage 'bad1': ValueError: first\n"
           "  - stage 'bad2': ValueError: second\n"
           "  - stage 'after_bad': skipped (depends on failed stage 'bad1')")
    with pytest.raises(ValueError, match=re.escape(msg)) as info:  # except ValueError works
        fp.fit(X)
    error = info.value
    assert isinstance(error, StageFailures) and isinstance(error, ExceptionGroup)
    assert list(error.failures) == ["bad1", "bad2"]
    assert error.skipped == {"after_bad": "bad1"}
    assert sorted(error.completed) == ["good", "scale"]
    assert rec.stage_events("after") == ["scale", "good"]
    assert rec.stage_events("error") == ["bad1", "bad2"]
    assert "after_bad" not in rec.stage_events("before")
    assert "stages_" not in fp.__dict__


def test_continue_with_mixed_error_types_is_an_exception_group():
    steps = [PipelineStage(Boom("v"), "a", depends_on=[]),
             PipelineStage(Boom("t", kind="type"), "b", depends_on=[])]
    with pytest.raises(StageFailures) as info:
        FeaturePipeline(steps, failure_strategy="continue").fit(X)
    assert not isinstance(info.value, (ValueError, TypeError))
    try:
        raise info.value
    except* TypeError as group:
        assert [str(e) for e in group.exceptions] == ["t"]
    except* ValueError as group:
        assert [str(e) for e in group.exceptions] == ["v"]


# -- timeouts ------------------------------------------------------------------------------------
def test_stage_timeout_is_reported_with_name_and_limit():
    fp = FeaturePipeline([("scale", StandardScaler()),
                          PipelineStage(Sleepy(2.0), "slow", timeout=0.05)])
    msg = ("FeaturePipeline 'feature_pipeline': stage 'slow' exceeded its timeout of 0.05 s and "
           "was stopped waiting for it")
    with pytest.raises(StageTimeoutError, match=re.escape(msg)) as info:
        fp.fit(X)
    assert isinstance(info.value, TimeoutError)
    assert info.value.stage_name == "slow" and info.value.limit == 0.05


def test_pipeline_timeout_applies_to_the_whole_run():
    fp = FeaturePipeline([("slow", Sleepy(2.0))], timeout=0.05)
    msg = "stage 'slow' exceeded the pipeline's timeout of 0.05 s"
    with pytest.raises(StageTimeoutError, match=re.escape(msg)):
        fp.fit(X)


def test_stage_within_its_timeout_runs_normally_and_keeps_sklearn_config():
    fp = FeaturePipeline([PipelineStage(StandardScaler(), "scale", timeout=30)])
    from sklearn import config_context

    with config_context(transform_output="pandas"):
        out = fp.fit_transform(pd.DataFrame(X))
    assert isinstance(out, pd.DataFrame)


def test_model_stage_timeout_in_a_training_pipeline():
    tp = TrainingPipeline(PipelineStage(Sleepy(2.0), "model", timeout=0.05))
    with pytest.raises(StageTimeoutError, match=re.escape("stage 'model' exceeded its timeout")):
        tp.fit(X, Y)


# -- caching -------------------------------------------------------------------------------------
def test_cache_hits_and_invalidations(tmp_path):
    log = str(tmp_path / "fits")
    memory = str(tmp_path / "cache")
    rec = Recorder()

    def fit(data, **params):
        fp = FeaturePipeline([("scale", CountingScaler(log, **params)),
                              ("pca", PCA(2, random_state=0))], memory=memory, monitor=rec)
        return fp.fit_transform(data)

    first = fit(X)
    assert fits(log) == 1
    np.testing.assert_array_equal(fit(X), first)  # hit: same data, params, class
    assert fits(log) == 1
    assert [e[2] for e in rec.events if e[0] == "after"][-2:] == ["hit", "hit"]
    fit(X + 1.0)  # data changed
    assert fits(log) == 2
    fit(X, with_mean=False)  # parameters changed
    assert fits(log) == 3

    FeaturePipeline([("scale", OtherScaler(log)), ("pca", PCA(2, random_state=0))],
                    memory=memory).fit(X)  # class changed
    assert fits(log) == 4


def test_cache_with_a_joblib_memory_and_a_size_bound(tmp_path):
    memory = joblib.Memory(tmp_path / "cache", verbose=0)
    for i in range(5):
        FeaturePipeline([("scale", StandardScaler())], memory=memory,
                        memory_limit="30K").fit(X + i)
    size = sum(p.stat().st_size for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert size < 60_000


def test_cached_refit_through_unified_pipeline_gives_the_same_model(tmp_path):
    def make():
        return UnifiedMLPipeline(features=FeaturePipeline([("scale", StandardScaler())],
                                                          memory=str(tmp_path)),
                                 model=LogisticRegression())

    a = make().fit(X, Y).predict_proba(X)
    b = make().fit(X, Y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 30), st.integers(1, 4), st.sampled_from(["<f8", "<f4", "<i8"]))
def test_fast_hash_sees_values_dtype_and_shape(rows, cols, dtype):
    a = np.arange(rows * cols).reshape(rows, cols).astype(dtype)
    assert fast_hash(a) == fast_hash(a.copy()) == fast_hash(np.asfortranarray(a))
    b = a.copy()
    b.flat[-1] += 1
    assert fast_hash(a) != fast_hash(b)
    assert fast_hash(a) != fast_hash(a.reshape(cols, rows)) or rows == cols == 1 or \
        a.shape == (cols, rows)
    frame = pd.DataFrame(a)
    assert fast_hash(frame) != fast_hash(frame.rename(columns=str))


# -- Dask ----------------------------------------------------------------------------------------
class WhereFitted(StandardScaler):
    """Remembers the thread it was fitted in."""

    def fit(self, X, y=None, sample_weight=None):
        self.thread_ = threading.current_thread().name
        return super().fit(X, y, sample_weight)


def test_stages_run_on_a_dask_cluster():
    distributed = pytest.importorskip("distributed")
    steps = [PipelineStage(WhereFitted(), "left", depends_on=[]),
             PipelineStage(WhereFitted(with_mean=False), "right", depends_on=[])]
    serial = FeaturePipeline(steps).fit_transform(X)
    seen = []

    class ThreadNames(PipelinePlugin):
        def after_stage(self, ctx):
            seen.append(threading.current_thread().name)

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        with parallel_config(backend="dask"):
            fp = FeaturePipeline(steps, n_jobs=2, monitor=ThreadNames())
            out = fp.fit_transform(X)
    np.testing.assert_array_equal(out, serial)
    assert all("Dask" in fp[name].estimator_.thread_ for name in ("left", "right"))
    assert seen == [threading.current_thread().name] * 2  # hooks ran in the calling process
