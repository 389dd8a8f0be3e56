"""The four pipelines: composition, the scikit-learn contract, bad input, atomic fits."""

import pickle
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.exceptions import NotFittedError
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.utils.validation import check_is_fitted

import ml_toolbox
import ml_toolbox.pipelines
from ml_toolbox import (FeaturePipeline, InferencePipeline, MLToolbox, PipelineStage,
                        TrainingPipeline, UnifiedMLPipeline)
from ml_toolbox.exceptions import InputSchemaError, StageDefinitionError
from ml_toolbox.plugins import PipelinePlugin


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(60, 3)), columns=["age", "income", "score"])
    X.iloc[3, 1] = np.nan
    y = pd.Series((X["age"] + rng.normal(scale=0.5, size=60) > 0).astype(int), name="target")
    return X, y


def make_pipe(**kw):
    return UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("scale", StandardScaler())],
                             model=LogisticRegression(), **kw)


class Recorder(PipelinePlugin):
    """A plug-in that records the hooks it sees."""

    def __init__(self):
        self.events = []

    def before_run(self, run):
        self.events.append(("before_run", run.pipeline_name, run.mode))

    def after_run(self, run):
        self.events.append(("after_run", run.pipeline_name, run.status))

    def on_run_error(self, run, error):
        self.events.append(("on_run_error", run.pipeline_name, type(error).__name__))

    def before_stage(self, ctx):
        self.events.append(("before_stage", ctx.stage_name, ctx.mode, ctx.n_rows))

    def after_stage(self, ctx):
        self.events.append(("after_stage", ctx.stage_name, ctx.status, ctx.duration >= 0))

    def on_stage_error(self, ctx, error):
        self.events.append(("on_stage_error", ctx.stage_name, type(error).__name__))


class Boom(StandardScaler):
    """A scaler that fails in transform when asked to."""

    def __init__(self, fail=False, with_mean=True):
        super().__init__(with_mean=with_mean)
        self.fail = fail

    def transform(self, X, copy=None):
        if self.fail:
            raise ValueError("boom: the stage itself failed")
        return super().transform(X, copy=copy)

    def fit_transform(self, X, y=None, **params):
        return self.fit(X, y).transform(X)


# -- public names -----------------------------------------------------------------------------
def test_public_names_are_the_same_objects_from_both_paths():
    for name in ["MLToolbox", "UnifiedMLPipeline", "PipelineStage", "FeaturePipeline",
                 "TrainingPipeline", "InferencePipeline", "PipelinePlugin"]:
        assert getattr(ml_toolbox, name) is getattr(ml_toolbox.pipelines, name)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        ml_toolbox.Nope  # noqa: B018


# -- scikit-learn behaviour -------------------------------------------------------------------
def test_fit_predict_score_like_sklearn(frame):
    X, y = frame
    pipe = make_pipe().fit(X, y)
    ref = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler()),
                    ("m", LogisticRegression())]).fit(X, y)
    np.testing.assert_array_equal(pipe.predict(X), ref.predict(X))
    np.testing.assert_array_equal(pipe.predict_proba(X), ref.predict_proba(X))
    np.testing.assert_array_equal(pipe.decision_function(X), ref.decision_function(X))
    assert pipe.score(X, y) == ref.score(X, y)
    np.testing.assert_array_equal(pipe.transform(X), ref[:-1].transform(X))
    np.testing.assert_array_equal(pipe.classes_, [0, 1])
    assert pipe.n_features_in_ == 3
    assert pipe.feature_names_in_.tolist() == ["age", "income", "score"]
    check_is_fitted(pipe)


def test_methods_follow_the_model():
    assert not hasattr(UnifiedMLPipeline(model=Ridge()), "predict_proba")
    assert hasattr(UnifiedMLPipeline(model=LogisticRegression()), "predict_proba")
    assert not hasattr(UnifiedMLPipeline(model="passthrough"), "predict")


def test_nested_params_grid_search_and_cross_val(frame):
    X, y = frame
    pipe = make_pipe()
    assert pipe.get_params()["features__scale__with_mean"] is True
    pipe.set_params(features__scale__with_mean=False, model__C=0.5)
    assert pipe.get_params()["features__scale__with_mean"] is False
    assert pipe.model.C == 0.5
    search = GridSearchCV(make_pipe(), {"features__scale__with_mean": [True, False],
                                        "model__C": [0.1, 1.0]}, cv=3).fit(X, y)
    assert set(search.best_params_) == {"features__scale__with_mean", "model__C"}
    assert len(cross_val_score(make_pipe(), X, y, cv=3)) == 3


def test_set_params_replaces_a_stage_without_touching_the_old_list():
    steps = [("impute", SimpleImputer()), ("scale", StandardScaler())]
    pipe = UnifiedMLPipeline(features=steps, model=LogisticRegression())
    pipe.set_params(features__scale=MinMaxScaler())
    assert isinstance(pipe.features[1][1], MinMaxScaler)
    assert isinstance(steps[1][1], StandardScaler)


def test_fit_never_touches_the_given_estimators(frame):
    X, y = frame
    scaler, model = StandardScaler(), LogisticRegression()
    pipe = UnifiedMLPipeline(features=[("scale", scaler), ("impute", SimpleImputer())],
                             model=model).fit(X, y)
    assert not hasattr(scaler, "mean_") and not hasattr(model, "coef_")
    assert hasattr(pipe.feature_pipeline["scale"].estimator_, "mean_")


def test_indexing_and_slicing_like_pipeline(frame):
    X, y = frame
    fp = FeaturePipeline([("impute", SimpleImputer()), ("scale", StandardScaler()),
                          ("minmax", MinMaxScaler())]).fit(X)
    assert len(fp) == 3
    assert fp["scale"] is fp[1] is fp.named_steps.scale is fp.named_stages["scale"]
    head = fp[:2]
    assert isinstance(head, FeaturePipeline) and len(head) == 2
    np.testing.assert_array_equal(head.transform(X), fp.transform(X, until="scale"))
    msg = "FeaturePipeline 'feature_pipeline' has no stage 'scael'. Did you mean 'scale'?"
    with pytest.raises(KeyError, match=re.escape(msg)):
        fp["scael"]


def test_make_pipeline_style_auto_names():
    fp = FeaturePipeline([StandardScaler(), StandardScaler(), np.log1p])
    assert list(fp.named_stages) == ["standardscaler-1", "standardscaler-2", "log1p"]


def test_set_output_pandas_and_feature_names(frame):
    X, y = frame
    pipe = make_pipe().set_output(transform="pandas").fit(X, y)
    features = pipe.transform(X)
    assert isinstance(features, pd.DataFrame)
    assert list(features.columns) == ["age", "income", "score"]
    assert pipe.get_feature_names_out().tolist() == ["age", "income", "score"]


def test_clone_shares_plugins_and_drops_fitted_state(frame):
    X, y = frame
    recorder = Recorder()
    pipe = make_pipe(monitor=recorder)
    pipe.feature_pipeline.debugger = recorder
    pipe.fit(X, y)
    copy = clone(pipe)
    assert copy.monitor is recorder
    assert copy.feature_pipeline.debugger is recorder
    assert not hasattr(copy, "input_schema_")


def test_pickle_round_trip(frame):
    X, y = frame
    pipe = make_pipe().fit(X, y)
    again = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(again.predict_proba(X), pipe.predict_proba(X))


def test_html_repr_draws_the_stages_and_the_model(frame):
    X, y = frame
    pipe = make_pipe()
    for fitted in (False, True):
        html = pipe._repr_html_()
        assert "UnifiedMLPipeline" in html
        # each stage is drawn as its own box, linked to its documentation
        for cls in ("impute.SimpleImputer", "preprocessing.StandardScaler",
                    "linear_model.LogisticRegression"):
            assert f"sklearn.{cls}.html" in html
        pipe.fit(X, y)
    html = FeaturePipeline([StandardScaler()])._repr_html_()
    assert "sklearn.preprocessing.StandardScaler.html" in html


# -- the seed's way ---------------------------------------------------------------------------
def test_seed_pattern_with_toolbox_defaults():
    X, y = load_iris(return_X_y=True, as_frame=True)
    toolbox = MLToolbox()
    pipeline = UnifiedMLPipeline(toolbox)
    result = pipeline.execute(X, y, mode="train")
    assert isinstance(result["model"], LogisticRegression)
    assert 0.9 < result["metrics"]["train_score"] <= 1.0
    assert pipeline.feature_pipeline.stage_names_ == ["preprocessing"]
    predictions = pipeline.execute(X, mode="predict")["predictions"]
    assert predictions.shape == (150,)
    assert pipeline.execute(X, mode="transform")["features"].shape == (150, 4)
    assert pipeline.execute(X, y, mode="score")["score"] == pipeline.score(X, y)
    state = pipeline.state
    assert state["pipeline"] is pipeline and state["fitted"] is True
    assert state["schema"]["columns"] == list(X.columns)


def test_toolbox_defaults_handle_categorical_columns_and_regression():
    # None is missing, as NaN, on every pandas version (pandas < 3 keeps it in an object column)
    X = pd.DataFrame({"city": pd.Series(["a", "b", None, "a", "b", "c"] * 5, dtype=object),
                      "size": [1.0, 2.0, 3.0, np.nan, 5.0, 6.0] * 5})
    y_reg = np.linspace(0.0, 1.5, 30)
    pipe = UnifiedMLPipeline(MLToolbox()).fit(X, y_reg)
    assert isinstance(pipe.training_pipeline.model_, Ridge)
    assert pipe.transform(X).shape == (30, 4)


def test_execute_with_validation_reports_validation_metrics(frame):
    X, y = frame
    pipe = make_pipe(validation=0.25, random_state=0, scoring="accuracy")
    result = pipe.execute(X, y, mode="train")
    assert set(result["metrics"]) == {"train_accuracy", "validation_accuracy"}


def test_execute_unknown_mode(frame):
    X, y = frame
    msg = ("UnifiedMLPipeline 'unified_pipeline': unknown mode 'fly'; expected one of "
           "['train', 'fit', 'predict', 'predict_proba', 'transform', 'score'].")
    with pytest.raises(ValueError, match=re.escape(msg)):
        make_pipe().execute(X, y, mode="fly")


def test_training_pipeline_alone(frame):
    X, y = frame
    tp = TrainingPipeline(LogisticRegression(), scoring=["accuracy", "f1"],
                          validation=(X.fillna(0), y)).fit(X.fillna(0), y)
    assert set(tp.metrics_) == {"train_accuracy", "train_f1", "validation_accuracy",
                                "validation_f1"}
    msg = ("TrainingPipeline 'training_pipeline': scoring 'acuracy' is not a scikit-learn scorer "
           "name. Did you mean 'accuracy'?")
    with pytest.raises(ValueError, match=re.escape(msg)):
        TrainingPipeline(LogisticRegression(), scoring="acuracy").fit(X.fillna(0), y)


def test_inference_pipeline_alone(frame):
    X, y = frame
    ip = InferencePipeline(FeaturePipeline([("impute", SimpleImputer())]),
                           TrainingPipeline(LogisticRegression())).fit(X, y)
    assert ip.stage_names_ == ["impute", "model"]
    assert ip.predict(X).shape == (60,)


def test_partial_fit_updates_stages_that_can_and_the_model(frame):
    X, y = frame
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())],
                             model=SGDClassifier(random_state=0))
    Xf = X.fillna(0)
    pipe.partial_fit(Xf[:30], y[:30], classes=np.array([0, 1]))
    pipe.partial_fit(Xf[30:], y[30:])
    ref_scaler = StandardScaler().partial_fit(Xf[:30]).partial_fit(Xf[30:])
    np.testing.assert_array_equal(pipe.feature_pipeline["scale"].estimator_.mean_,
                                  ref_scaler.mean_)
    assert pipe.predict(Xf).shape == (60,)


def test_partial_fit_refuses_an_unfitted_stage_without_partial_fit(frame):
    X, y = frame
    pipe = UnifiedMLPipeline(features=[("impute", SimpleImputer())],
                             model=SGDClassifier())
    msg = ("UnifiedMLPipeline 'unified_pipeline': stage 'impute' (SimpleImputer) has no "
           "partial_fit and is not fitted yet; fit the pipeline once with fit(), or use feature "
           "stages that support partial_fit.")
    with pytest.raises(ValueError, match=re.escape(msg)):
        pipe.partial_fit(X, y, classes=[0, 1])


# -- plug-in hooks ----------------------------------------------------------------------------
def test_loop_calls_hooks_in_order(frame):
    X, y = frame
    rec = Recorder()
    pipe = make_pipe(monitor=rec).fit(X, y)
    assert rec.events == [
        ("before_run", "feature_pipeline", "fit"),
        ("before_stage", "impute", "fit_transform", 60),
        ("after_stage", "impute", "success", True),
        ("before_stage", "scale", "fit_transform", 60),
        ("after_stage", "scale", "success", True),
        ("after_run", "feature_pipeline", "success"),
        ("before_run", "training_pipeline", "fit"),
        ("before_stage", "model", "fit", 60),
        ("after_stage", "model", "success", True),
        ("after_run", "training_pipeline", "success"),
    ]
    rec.events.clear()
    pipe.predict(X.iloc[[0]])
    assert [e[:2] for e in rec.events] == [
        ("before_run", "inference_pipeline"), ("before_stage", "impute"),
        ("after_stage", "impute"), ("before_stage", "scale"), ("after_stage", "scale"),
        ("before_stage", "model"), ("after_stage", "model"), ("after_run", "inference_pipeline")]


def test_disabled_plugin_is_skipped(frame):
    X, y = frame
    rec = Recorder()
    rec.enabled = False
    make_pipe(monitor=rec).fit(X, y)
    assert rec.events == []


def test_own_plugin_wins_over_the_handed_down_one(frame):
    X, y = frame
    outer, inner = Recorder(), Recorder()
    pipe = make_pipe(monitor=outer)
    pipe.training_pipeline.monitor = inner
    pipe.fit(X, y)
    assert {e[1] for e in outer.events if e[0] == "before_run"} == {"feature_pipeline"}
    assert {e[1] for e in inner.events if e[0] == "before_run"} == {"training_pipeline"}


def test_warnings_are_recorded_for_plugins_that_ask_and_still_shown(frame):
    X, y = frame

    class Catcher(PipelinePlugin):
        captures_warnings = True

        def __init__(self):
            self.seen = []

        def after_stage(self, ctx):
            self.seen.extend(str(w.message) for w in ctx.warnings)

    def noisy(Z):
        import warnings
        warnings.warn("careful: noisy stage", UserWarning)
        return Z

    catcher = Catcher()
    fp = FeaturePipeline([("noisy", noisy)], monitor=catcher)
    with pytest.warns(UserWarning, match="careful: noisy stage"):
        fp.fit(X)
    assert catcher.seen == ["careful: noisy stage"]


def test_plugins_do_not_keep_intermediate_data_alive(frame):
    # With plug-ins attached a pipeline holds no more data at a time than without: each stage's
    # input and output are released from its context once its after_stage hooks have run (the
    # contexts keep the rest), so an intermediate array dies as soon as the next stage is done.
    import weakref

    X, y = frame

    class Watcher(PipelinePlugin):
        def __init__(self):
            self.outputs, self.alive_at_end, self.seen = [], None, []

        def after_stage(self, ctx):
            self.seen.append((ctx.stage_name, ctx.X is not None, ctx.output is not None))
            self.outputs.append(weakref.ref(ctx.output))

        def after_run(self, run):
            self.alive_at_end = [ref() is not None for ref in self.outputs]
            self.released = [(c.X, c.output, c.status) for c in run.stages]

    watcher = Watcher()
    pipe = make_pipe(monitor=watcher).fit(X, y)
    watcher.__init__()
    expected = make_pipe().fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(pipe.predict_proba(X), expected)
    assert watcher.seen == [("impute", True, True), ("scale", True, True), ("model", True, True)]
    assert watcher.alive_at_end == [False, False, True]  # by the end only the result is alive
    assert watcher.released == [(None, None, "success")] * 3


# -- bad input ------------------------------------------------------------------------------
def test_predict_before_fit(frame):
    X, _ = frame
    msg = ("This UnifiedMLPipeline 'unified_pipeline' is not fitted yet. Call 'fit' with "
           "appropriate arguments before using this estimator.")
    with pytest.raises(NotFittedError, match=re.escape(msg)):
        make_pipe().predict(X)


def test_missing_column_at_predict(frame):
    X, y = frame
    pipe = make_pipe().fit(X, y)
    msg = ("UnifiedMLPipeline 'unified_pipeline': X does not have the columns seen at fit time: "
           "missing column(s) ['income']. Expected the columns ['age', 'income', 'score'].")
    with pytest.raises(InputSchemaError, match=re.escape(msg)):
        pipe.predict(X.drop(columns="income"))


def test_unexpected_extra_column(frame):
    X, y = frame
    pipe = make_pipe().fit(X, y)
    msg = ("UnifiedMLPipeline 'unified_pipeline': X does not have the columns seen at fit time: "
           "unexpected column(s) ['height']. Expected the columns ['age', 'income', 'score'].")
    with pytest.raises(InputSchemaError, match=re.escape(msg)):
        pipe.predict(X.assign(height=1.0))


def test_columns_in_another_order_are_reordered(frame):
    X, y = frame
    pipe = make_pipe().fit(X, y)
    np.testing.assert_array_equal(pipe.predict_proba(X[["score", "age", "income"]]),
                                  pipe.predict_proba(X))


def test_column_whose_dtype_changed(frame):
    X, y = frame
    pipe = make_pipe().fit(X, y)
    msg = ("UnifiedMLPipeline 'unified_pipeline': column 'age' had dtype float64 at fit time but "
           "has dtype object now; expected a numeric column.")
    with pytest.raises(InputSchemaError, match=re.escape(msg)):
        pipe.predict(X.assign(age=X["age"].astype(str).astype(object)))


def test_wrong_number_of_features_for_numpy_input(frame):
    X, y = frame
    pipe = make_pipe().fit(X.to_numpy(), y)
    msg = ("UnifiedMLPipeline 'unified_pipeline': X has 2 features, but UnifiedMLPipeline is "
           "expecting 3 features as input.")
    with pytest.raises(InputSchemaError, match=re.escape(msg)):
        pipe.predict(X.to_numpy()[:, :2])


def test_empty_input(frame):
    X, y = frame
    msg = ("UnifiedMLPipeline 'unified_pipeline': X has no rows. Found array with 0 sample(s) "
           "(shape=(0, 3)) while a minimum of 1 is required.")
    with pytest.raises(InputSchemaError, match=re.escape(msg)):
        make_pipe().fit(X.iloc[:0], y.iloc[:0])
    pipe = make_pipe().fit(X, y)
    with pytest.raises(InputSchemaError, match=re.escape(msg)):
        pipe.predict(X.iloc[:0].to_numpy())


def test_y_of_the_wrong_length(frame):
    X, y = frame
    msg = ("UnifiedMLPipeline 'unified_pipeline': y has 59 rows but X has 60; they must have the "
           "same number of rows.")
    with pytest.raises(ValueError, match=re.escape(msg)):
        make_pipe().fit(X, y[:-1])


def test_unknown_stage_name_in_set_params():
    msg = ("Invalid parameter 'scael' for FeaturePipeline 'unified_pipeline.features': it is "
           "neither a parameter nor a stage name. Did you mean 'scale'? Stages: "
           "['impute', 'scale'].")
    with pytest.raises(ValueError, match=re.escape(msg)):
        make_pipe().set_params(features__scael__with_mean=False)


def test_two_stages_with_the_same_name(frame):
    X, y = frame
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler()), ("scale", MinMaxScaler())],
                             model=LogisticRegression())
    msg = ("FeaturePipeline 'feature_pipeline': two stages are named 'scale' (positions 0 and 1); "
           "stage names must be unique.")
    with pytest.raises(ValueError, match=re.escape(msg)):
        pipe.fit(X.fillna(0), y)


def test_stage_that_is_not_an_estimator_nor_callable(frame):
    X, y = frame
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler()), ("oops", 42)],
                             model=LogisticRegression())
    msg = ("FeaturePipeline 'feature_pipeline': stage 'oops' (position 1) is not a scikit-learn "
           "estimator (an object with a fit method) nor a callable: got int: 42.")
    with pytest.raises(StageDefinitionError, match=re.escape(msg)):
        pipe.fit(X.fillna(0), y)


def test_stage_error_keeps_type_message_and_gets_a_note(frame):
    X, y = frame
    pipe = UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("boom", Boom(fail=True))],
                             model=LogisticRegression())
    with pytest.raises(ValueError, match="^boom: the stage itself failed") as info:
        pipe.fit(X, y)
    assert info.value.__notes__ == [
        "[ml_toolbox] raised by stage 'boom' of pipeline 'unified_pipeline' (its "
        "feature_pipeline) during fit_transform (step 2 of 3, in fit)"]


def test_stage_error_with_plugins_is_reported_and_propagates(frame):
    X, y = frame
    rec = Recorder()
    pipe = UnifiedMLPipeline(features=[("boom", Boom(fail=True))], model=LogisticRegression(),
                             monitor=rec)
    with pytest.raises(ValueError, match="boom"):
        pipe.fit(X.fillna(0), y)
    assert ("on_stage_error", "boom", "ValueError") in rec.events
    assert ("on_run_error", "feature_pipeline", "ValueError") in rec.events


def test_failed_fit_leaves_the_fitted_pipeline_unchanged(frame):
    X, y = frame
    pipe = UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("boom", Boom())],
                             model=LogisticRegression()).fit(X, y)
    before = pipe.predict_proba(X)
    fp_stages = pipe.feature_pipeline.stages_
    model = pipe.training_pipeline.model_
    pipe.set_params(features__boom__fail=True)
    with pytest.raises(ValueError, match="boom"):
        pipe.fit(X * 10, y)
    assert pipe.feature_pipeline.stages_ is fp_stages
    assert pipe.training_pipeline.model_ is model
    np.testing.assert_array_equal(pipe.predict_proba(X), before)


def test_failed_model_fit_leaves_the_feature_stages_unchanged(frame):
    X, y = frame
    pipe = make_pipe().fit(X, y)
    scaler = pipe.feature_pipeline["scale"]
    with pytest.raises(ValueError):
        pipe.fit(X * 10, np.zeros(60))  # one class only: LogisticRegression refuses
    assert pipe.feature_pipeline["scale"] is scaler


def test_wrong_steps_type():
    msg = ("FeaturePipeline 'feature_pipeline': steps must be a list of (name, estimator) pairs, "
           "PipelineStage objects or estimators, got int: 3.")
    with pytest.raises(StageDefinitionError, match=re.escape(msg)):
        FeaturePipeline(3).fit(np.zeros((2, 2)))


def test_one_dimensional_input():
    with pytest.raises(InputSchemaError, match="got 1D X of shape"):
        make_pipe().fit(np.zeros(5), np.zeros(5))


def test_transform_until_unknown_stage(frame):
    X, y = frame
    fp = FeaturePipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]).fit(X)
    msg = ("FeaturePipeline 'feature_pipeline' has no stage 'scal'. Did you mean 'scale'? "
           "Stages: ['impute', 'scale'].")
    with pytest.raises(ValueError, match=re.escape(msg)):
        fp.transform(X, until="scal")


def test_stage_with_its_own_retry_false_runs_on_the_plugin_path(frame):
    X, y = frame
    fp = FeaturePipeline([PipelineStage(StandardScaler(), name="s", retry=False)])
    np.testing.assert_array_equal(fp.fit_transform(X.fillna(0)),
                                  StandardScaler().fit_transform(X.fillna(0)))


def test_a_retry_handler_that_is_no_policy_is_refused_clearly(frame):
    X, _ = frame
    msg = "invalid retry=True (bool); allowed: a RetryHandler, a RetryConfig"
    with pytest.raises(TypeError, match=re.escape(msg)):
        FeaturePipeline([("scale", StandardScaler())], retry_handler=True).fit(X.fillna(0))


def test_inference_pipeline_fit_serves_a_graph_like_its_feature_pipeline(frame):
    X, y = frame
    X = X.fillna(0)
    graph = FeaturePipeline([PipelineStage(StandardScaler(), name="a"),
                             PipelineStage(MinMaxScaler(), name="b", depends_on=["a"]),
                             PipelineStage(StandardScaler(), name="c", depends_on=["a"])])
    ip = InferencePipeline(graph, TrainingPipeline(LogisticRegression())).fit(X, y)
    ref = UnifiedMLPipeline(features=graph, model=LogisticRegression()).fit(X, y)
    np.testing.assert_array_equal(ip.predict_proba(X), ref.predict_proba(X))


def test_model_params_without_a_model_say_why():
    msg = ("UnifiedMLPipeline 'unified_pipeline': cannot set ['model__C']: model is None (the "
           "toolbox chooses the model at fit time); pass model=<an estimator> first.")
    with pytest.raises(ValueError, match=re.escape(msg)):
        UnifiedMLPipeline(MLToolbox()).set_params(model__C=0.5)


def test_validation_fraction_cuts_sample_weight_with_the_training_rows(frame):
    X, y = frame
    weights = np.linspace(0.5, 1.5, 60)
    pipe = make_pipe(validation=0.25, random_state=0, scoring="accuracy")
    pipe.fit(X, y, sample_weight=weights)
    assert set(pipe.metrics_) == {"train_accuracy", "validation_accuracy"}
    tp = TrainingPipeline(LogisticRegression(), validation=0.25, random_state=0)
    tp.fit(X.fillna(0), y, sample_weight=weights)
    assert set(tp.metrics_) == {"train_score", "validation_score"}


def test_a_run_frees_its_data_when_it_ends(frame):
    import gc
    import weakref

    X, y = frame
    rec = Recorder()
    pipe = make_pipe(monitor=rec).fit(X, y)
    data = X.fillna(0).to_numpy()
    ref = weakref.ref(data)
    gc.disable()
    try:
        pipe.predict(data)
        del data
        assert ref() is None  # no reference cycle keeps the input alive until the next GC
    finally:
        gc.enable()
