"""ml_toolbox.Pipeline / make_pipeline: scikit-learn's Pipeline, with plug-ins and the fast path.

scikit-learn's own suite is the judge (tests/test_sklearn_judge.py); these tests cover what the
toolbox adds: the plug-ins see every step, the fast path gives scikit-learn's numbers bit for bit
over the family of chains, and nothing of scikit-learn's behaviour changes when plug-ins are on.
"""

from __future__ import annotations

import pickle
import re

import numpy as np
import pandas as pd
import pytest
import sklearn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import cross_validate
from sklearn.pipeline import Pipeline as SkPipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import SVC

import ml_toolbox
from ml_toolbox import (Pipeline, PipelineDebugger, PipelineMonitor, RetryConfig, RetryHandler,
                        make_pipeline)
from ml_toolbox.pipelines import Pipeline as SeedPathPipeline

RNG = np.random.default_rng(0)
X_NUM = RNG.normal(size=(60, 4))
Y_CLS = (X_NUM[:, 0] + X_NUM[:, 1] > 0).astype(int)
Y_REG = X_NUM @ np.array([1.0, -2.0, 0.5, 0.0])
FRAME = pd.DataFrame(X_NUM, columns=list("abcd"))

TRANSFORMERS = {
    "scale": StandardScaler,
    "minmax": MinMaxScaler,
    "impute": SimpleImputer,
    "pca": lambda: PCA(n_components=3),
}
FINALS = {
    "logreg": (LogisticRegression, Y_CLS, ("predict", "predict_proba", "decision_function")),
    "ridge": (Ridge, Y_REG, ("predict",)),
    "kmeans": (lambda: KMeans(n_clusters=2, n_init=2, random_state=0), None, ("predict",)),
    "minmax": (MinMaxScaler, None, ("transform",)),
}


def _both(names, final, **toolbox):
    steps = [(f"{n}{i}", TRANSFORMERS[n]()) for i, n in enumerate(names)]
    steps.append(("final", FINALS[final][0]()))
    return (SkPipeline([(n, clone(e)) for n, e in steps]), Pipeline(steps, **toolbox))


def test_same_objects_on_both_import_paths():
    assert SeedPathPipeline is ml_toolbox.Pipeline
    assert issubclass(Pipeline, SkPipeline)
    assert ml_toolbox.make_pipeline is make_pipeline


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(st.sampled_from(sorted(TRANSFORMERS)), max_size=3),
       final=st.sampled_from(sorted(FINALS)), frame=st.booleans(), monitored=st.booleans(),
       rows=st.sampled_from([1, 7]))
def test_same_numbers_as_sklearn_over_chains(names, final, frame, monitored, rows):
    """Any chain, with or without a monitor, on arrays or frames, one row or many: the fitted
    state and every output are scikit-learn's, bit for bit."""
    theirs, ours = _both(names, final, monitor=PipelineMonitor() if monitored else None)
    X = FRAME if frame else X_NUM
    y = FINALS[final][1]
    theirs.fit(X, y)
    assert ours.fit(X, y) is ours
    for method in FINALS[final][2]:
        Xp = X.iloc[:rows] if frame else X[:rows]
        np.testing.assert_array_equal(getattr(ours, method)(Xp), getattr(theirs, method)(Xp))
    if monitored:
        stats = ours.monitor.get_pipeline_statistics("pipeline")
        assert set(stats["stages"]) == {name for name, _ in ours.steps}


def test_fit_transform_and_fit_predict_with_plugins_equal_sklearn():
    theirs, ours = _both(["scale"], "minmax", monitor=PipelineMonitor())
    np.testing.assert_array_equal(ours.fit_transform(X_NUM), theirs.fit_transform(X_NUM))
    theirs, ours = _both(["scale"], "kmeans", monitor=PipelineMonitor())
    np.testing.assert_array_equal(ours.fit_predict(X_NUM), theirs.fit_predict(X_NUM))


def test_verbose_lines_are_sklearns_with_and_without_plugins(capsys):
    def lines(pipe):
        pipe.fit(X_NUM, Y_CLS)
        out = capsys.readouterr().out
        return [re.sub(r"total=\s*[\d.]+s", "total=", line) for line in out.splitlines()]

    expected = lines(SkPipeline([("scale", StandardScaler()), ("clf", LogisticRegression())],
                                verbose=True))
    assert expected[0].startswith("[Pipeline] ") and "(step 1 of 2) Processing scale" in expected[0]
    for monitor in (None, PipelineMonitor()):
        ours = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())],
                        verbose=True, monitor=monitor)
        assert lines(ours) == expected


def test_monitor_sees_fit_and_predict_runs_and_names_the_pipeline():
    monitor = PipelineMonitor()
    pipe = make_pipeline(StandardScaler(), LogisticRegression(), monitor=monitor, name="churn")
    pipe.fit(FRAME, Y_CLS).predict(FRAME.iloc[:1])
    pipe.predict_proba(FRAME)
    stats = monitor.get_pipeline_statistics("churn")
    assert set(stats["stages"]) == {"standardscaler", "logisticregression"}
    modes = [record.mode for record in monitor.history("churn")]
    assert modes == ["fit", "predict", "predict_proba"]


class Flaky(TransformerMixin, BaseEstimator):
    """Fails its first ``failures`` fits with a ConnectionError (counted on the class)."""

    calls = 0

    def __init__(self, failures=1):
        self.failures = failures

    def fit(self, X, y=None):
        type(self).calls += 1
        if type(self).calls <= self.failures:
            raise ConnectionResetError("feature store: connection reset")
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        return np.asarray(X) * 2.0


def test_retry_reattempts_a_failing_step():
    Flaky.calls = 0
    delays = []
    handler = RetryHandler(RetryConfig(max_retries=2, sleep=delays.append))
    pipe = Pipeline([("remote", Flaky()), ("clf", LogisticRegression())], retry=handler)
    pipe.fit(X_NUM, Y_CLS)
    assert Flaky.calls == 2 and len(delays) == 1
    assert handler.get_statistics("remote")["successes_after_retry"] == 1
    np.testing.assert_array_equal(
        pipe.predict(X_NUM),
        SkPipeline([("remote", Flaky(failures=0)), ("clf", LogisticRegression())])
        .fit(X_NUM, Y_CLS).predict(X_NUM))


def test_a_failing_step_keeps_its_error_with_a_note_naming_pipeline_and_step():
    Flaky.calls = 0
    pipe = Pipeline([("remote", Flaky(failures=5)), ("clf", LogisticRegression())],
                    monitor=PipelineMonitor(), name="nightly")
    with pytest.raises(ConnectionResetError, match="connection reset") as info:
        pipe.fit(X_NUM, Y_CLS)
    assert any("'remote'" in note and "'nightly'" in note for note in info.value.__notes__)
    assert pipe.monitor.get_pipeline_statistics("nightly")["stages"]["remote"]


def test_debugger_traces_each_step():
    debugger = PipelineDebugger(enable_debugging=True)
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())],
                    debugger=debugger, name="dbg")
    pipe.fit(X_NUM, Y_CLS).predict(X_NUM[:2])
    trace = [(event.stage, event.mode) for event in debugger.get_execution_trace()]
    assert trace == [("scale", "fit_transform"), ("clf", "fit"), ("scale", "transform"),
                     ("clf", "predict")]


def test_slices_keep_the_plugins_and_steps_share_estimators():
    monitor = PipelineMonitor()
    pipe = Pipeline([("scale", StandardScaler()), ("pca", PCA(2)), ("clf", LogisticRegression())],
                    monitor=monitor, name="p", fast_inference=False).fit(X_NUM, Y_CLS)
    head = pipe[:-1]
    assert isinstance(head, Pipeline)
    assert head.monitor is monitor and head.name == "p" and head.fast_inference is False
    assert head["scale"] is pipe["scale"] and pipe[-1] is pipe.named_steps["clf"]
    np.testing.assert_array_equal(head.transform(X_NUM), pipe[:2].transform(X_NUM))


def test_text_sparse_and_predict_params_go_to_sklearns_methods():
    docs = ["the cat sat", "the dog ran", "a cat ran", "a dog sat"] * 5
    labels = [0, 1, 0, 1] * 5
    pipe = make_pipeline(CountVectorizer(), LogisticRegression(), monitor=PipelineMonitor())
    assert pipe.fit(docs, labels).predict(["a cat sat"]).tolist() == [0]
    from sklearn.gaussian_process import GaussianProcessRegressor

    gp = make_pipeline(StandardScaler(), GaussianProcessRegressor()).fit(X_NUM, Y_REG)
    mean, std = gp.predict(X_NUM[:3], return_std=True)
    assert mean.shape == std.shape == (3,)


def test_metadata_routing_with_plugins():
    weights = np.linspace(0.1, 1.0, len(Y_CLS))
    with sklearn.config_context(enable_metadata_routing=True):
        for monitor in (None, PipelineMonitor()):
            pipe = Pipeline([("scale", StandardScaler().set_fit_request(sample_weight=True)),
                             ("clf", LogisticRegression().set_fit_request(sample_weight=True))],
                            monitor=monitor)
            theirs = SkPipeline([("scale", StandardScaler().set_fit_request(sample_weight=True)),
                                 ("clf", LogisticRegression().set_fit_request(
                                     sample_weight=True))])
            pipe.fit(X_NUM, Y_CLS, sample_weight=weights)
            theirs.fit(X_NUM, Y_CLS, sample_weight=weights)
            np.testing.assert_array_equal(pipe["scale"].mean_, theirs["scale"].mean_)
            np.testing.assert_array_equal(pipe.predict_proba(X_NUM), theirs.predict_proba(X_NUM))
            result = cross_validate(pipe, X_NUM, Y_CLS, params={"sample_weight": weights}, cv=3)
            assert len(result["test_score"]) == 3


def test_step_name_equal_to_a_constructor_parameter_is_refused():
    for name in ("memory", "monitor", "name"):
        pipe = Pipeline([(name, StandardScaler()), ("clf", LogisticRegression())])
        with pytest.raises(ValueError, match="conflict with constructor arguments"):
            pipe.fit(X_NUM, Y_CLS)


def test_non_transformer_in_the_middle_is_a_type_error_naming_class_and_position():
    pipe = Pipeline([("scale", StandardScaler()), ("svc", SVC()), ("clf", LogisticRegression())],
                    monitor=PipelineMonitor())
    with pytest.raises(TypeError, match="All intermediate steps should be transformers") as info:
        pipe.fit(X_NUM, Y_CLS)
    assert any("'svc' at position 1 is a SVC" in note for note in info.value.__notes__)


def test_a_class_instead_of_an_instance_gets_sklearns_message():
    # scikit-learn's own error for this scikit-learn (1.9 words it "Expected an estimator
    # instance"; 1.8 fails on the class's unbound fit)
    with pytest.raises(Exception) as expected:
        SkPipeline([("scale", StandardScaler), ("clf", LogisticRegression())]).fit(X_NUM, Y_CLS)
    pipe = Pipeline([("scale", StandardScaler), ("clf", LogisticRegression())])
    with pytest.raises(type(expected.value), match=re.escape(str(expected.value))):
        pipe.fit(X_NUM, Y_CLS)


def test_pickle_clone_and_store_round_trip(tmp_path):
    pipe = make_pipeline(StandardScaler(), LogisticRegression(), name="rt").fit(FRAME, Y_CLS)
    expected = pipe.predict_proba(FRAME.iloc[:1])
    again = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(again.predict_proba(FRAME.iloc[:1]), expected)
    assert clone(pipe).get_params()["name"] == "rt"
    version = pipe.save(tmp_path, name="rt")
    loaded = Pipeline.load(tmp_path, name="rt", version=version)
    np.testing.assert_array_equal(loaded.predict_proba(FRAME.iloc[:1]), expected)


def test_refitting_a_step_in_place_is_seen_by_predict():
    pipe = make_pipeline(StandardScaler(), Ridge()).fit(X_NUM, Y_REG)
    pipe.predict(X_NUM[:1])
    pipe.steps = list(pipe.steps)  # scikit-learn users may rebuild the list; the plan follows
    pipe.steps[-1] = ("ridge", Ridge(alpha=10.0).fit(pipe[:-1].transform(X_NUM), Y_REG))
    theirs = SkPipeline(pipe.steps)
    np.testing.assert_array_equal(pipe.predict(X_NUM[:1]), theirs.predict(X_NUM[:1]))


def test_html_diagram_is_sklearns():
    """The diagram scikit-learn draws for the same steps, nothing under the model."""
    steps = [("scale", StandardScaler()), ("clf", LogisticRegression())]
    for fitted in (False, True):
        ours, theirs = Pipeline(steps, monitor=PipelineMonitor()), SkPipeline(steps)
        if fitted:
            ours, theirs = ours.fit(X_NUM, Y_CLS), theirs.fit(X_NUM, Y_CLS)
        a, b = ours._sk_visual_block_(), theirs._sk_visual_block_()
        assert (a.kind, a.names, a.name_details, a.estimators) == (
            b.kind, b.names, b.name_details, b.estimators)
        assert (re.findall(r"\d+ features", ours._repr_html_())
                == re.findall(r"\d+ features", theirs._repr_html_()))


class Recorder:
    """A scikit-learn 1.9 fit callback recording (hook, task name, X's shape)."""

    def __init__(self):
        self.events = []

    def setup(self, estimator, context):
        self.events.append(("setup", context.task_name))

    def on_fit_task_begin(self, estimator, context, *, X=None, y=None, metadata=None,
                          fitted_estimator=None):
        self.events.append(("begin", context.task_name, np.shape(X)))

    def on_fit_task_end(self, estimator, context, *, X=None, y=None, metadata=None,
                        fitted_estimator=None):
        self.events.append(("end", context.task_name, np.shape(X)))

    def teardown(self, estimator, context):
        self.events.append(("teardown", context.task_name))


@pytest.mark.skipif(not hasattr(SkPipeline, "set_callbacks"),
                    reason="this scikit-learn has no callbacks (1.9 added them)")
@pytest.mark.parametrize("method", ["fit", "fit_transform", "fit_predict"])
@pytest.mark.parametrize("monitored", [False, True])
def test_callbacks_see_the_same_events_as_with_sklearns_pipeline(method, monitored):
    final = {"fit": LogisticRegression, "fit_transform": MinMaxScaler,
             "fit_predict": lambda: KMeans(n_clusters=2, n_init=2, random_state=0)}[method]
    theirs, ours = Recorder(), Recorder()
    steps = lambda: [("scale", StandardScaler()), ("skip", "passthrough"),  # noqa: E731
                     ("last", final())]
    getattr(SkPipeline(steps()).set_callbacks(theirs), method)(X_NUM, Y_CLS)
    pipe = Pipeline(steps(), monitor=PipelineMonitor() if monitored else None)
    getattr(pipe.set_callbacks(ours), method)(X_NUM, Y_CLS)
    assert theirs.events and ours.events == theirs.events


def test_unified_pipeline_has_steps_indexing_and_slicing_over_the_whole_chain():
    from ml_toolbox import UnifiedMLPipeline

    monitor = PipelineMonitor()
    pipe = UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("scale", StandardScaler())],
                             model=LogisticRegression(), monitor=monitor, name="u")
    assert [n for n, _ in pipe.steps] == ["impute", "scale", "model"]
    assert pipe["model"] is pipe.model and len(pipe) == 3 and bool(pipe)
    pipe.fit(FRAME, Y_CLS)
    assert pipe.named_steps["model"] is pipe.training_pipeline.model_
    assert pipe[0] is pipe.feature_pipeline.stages_[0].estimator_
    head = pipe[:-1]
    assert isinstance(head, Pipeline) and head.monitor is monitor and head.name == "u"
    np.testing.assert_array_equal(head.transform(FRAME), pipe.transform(FRAME))
    np.testing.assert_array_equal(pipe[:].predict_proba(FRAME), pipe.predict_proba(FRAME))
    with pytest.raises(KeyError, match="no step 'scaler'"):
        pipe["scaler"]
    with pytest.raises(ValueError, match="step of 1"):
        pipe[::2]
    assert [n for n, _ in UnifiedMLPipeline(features="passthrough", model=None).steps] == []


@settings(max_examples=15, deadline=None)
@given(est=st.sampled_from([StandardScaler(), PCA(2), SimpleImputer(), MinMaxScaler(),
                            CountVectorizer()]),
       wrapped=st.booleans())
def test_one_parameter_path_per_stage_whatever_the_stage_type(est, wrapped):
    """``features__<stage>__<param>`` for a (name, estimator) pair and a PipelineStage alike."""
    from ml_toolbox import PipelineStage, UnifiedMLPipeline

    step = PipelineStage(clone(est), name="s") if wrapped else ("s", clone(est))
    pipe = UnifiedMLPipeline(features=[step], model=LogisticRegression())
    params = pipe.get_params()
    for key, value in est.get_params().items():
        got = params[f"features__s__{key}"]
        assert got is value or got == value or (value != value and got != got)
    assert not any("__estimator__" in key for key in params)
    first = sorted(est.get_params())[0]
    pipe.set_params(**{f"features__s__{first}": est.get_params()[first]})
    assert pipe.get_params()[f"features__s__{first}"] == est.get_params()[first]


class FlakyTransform(TransformerMixin, BaseEstimator):
    """Its first ``transform`` call fails with a ConnectionError (a remote feature lookup)."""

    calls = 0

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        type(self).calls += 1
        if type(self).calls == 1:
            raise ConnectionResetError("feature store: connection reset")
        return np.asarray(X, dtype=float) + 1.0


def test_retry_covers_predictions_of_user_code():
    delays = []
    handler = RetryHandler(RetryConfig(max_retries=2, sleep=delays.append))
    pipe = Pipeline([("remote", FlakyTransform()), ("clf", LogisticRegression())])
    FlakyTransform.calls = 1  # (fitting transforms too: no failure there)
    pipe.fit(X_NUM, Y_CLS)
    expected = pipe.predict(X_NUM[:3])
    FlakyTransform.calls = 0
    pipe.set_params(retry=handler)
    np.testing.assert_array_equal(pipe.predict(X_NUM[:3]), expected)
    assert len(delays) == 1 and handler.get_statistics("remote")["successes_after_retry"] == 1
