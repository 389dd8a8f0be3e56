"""Fast inference: identical, bit for bit, to scikit-learn's own methods; fallback, errors, pickling."""

import importlib.util
import pickle
import re
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import datasets
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.neighbors import KNeighborsClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import (LinearRegression, LogisticRegression, Ridge, SGDClassifier,
                                  SGDRegressor)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (MaxAbsScaler, MinMaxScaler, OneHotEncoder, RobustScaler,
                                   StandardScaler)

from ml_toolbox import UnifiedMLPipeline
from ml_toolbox.plugins import PipelinePlugin
from ml_toolbox.fast import FastPlan, PlanExplanation, build_plan

CLASSIFICATION = ["load_iris", "load_wine", "load_breast_cancer", "load_digits"]
REGRESSION = ["load_diabetes", "load_linnerud"]  # linnerud: 3 targets (multi-output regression)

from _versions import needs_kernels


def identical(a, b):
    return isinstance(a, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and \
        np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def check_same(plan, pipe, X, methods, rows=(0, 1, 7)):
    """The plan gives sklearn's output for single rows and for the whole batch."""
    for method in methods:
        batches = [X.iloc[[r]] if hasattr(X, "iloc") else X[r:r + 1] for r in rows] + [X]
        for batch in batches:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # the fast path must not warn where sklearn does not
                got = plan.run(batch, method)
            want = getattr(pipe, method)(batch)
            assert identical(got, want), (method, batch.shape, pipe)


def load(name, as_frame):
    X, y = getattr(datasets, name)(return_X_y=True, as_frame=as_frame)
    if name == "load_digits":
        X = X[:400]
        y = y[:400]
    return X, y


def classifier_pipelines():
    return [
        make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=300)),
        make_pipeline(MinMaxScaler(), PCA(n_components=3, whiten=True), LogisticRegression()),
        make_pipeline(RobustScaler(), MaxAbsScaler(), SGDClassifier(loss="log_loss", random_state=0)),
        make_pipeline(StandardScaler(with_mean=False), SGDClassifier(random_state=0)),
        make_pipeline(MinMaxScaler(clip=True), PCA(n_components=2), LogisticRegression(C=0.1)),
    ]


@needs_kernels
@pytest.mark.parametrize("as_frame", [True, False], ids=["frame", "array"])
@pytest.mark.parametrize("name", CLASSIFICATION)
def test_classifiers_identical_on_sklearn_datasets(name, as_frame):
    X, y = load(name, as_frame)
    for pipe in classifier_pipelines():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings in fit only
            pipe.fit(X, y)
        plan = build_plan(pipe)
        methods = ["predict", "decision_function"]
        if hasattr(pipe, "predict_proba"):
            methods += ["predict_proba", "predict_log_proba"]
        check_same(plan, pipe, X, methods)
        assert all(r.path == "kernel" for r in plan.explain("predict"))


@needs_kernels
@pytest.mark.parametrize("as_frame", [True, False], ids=["frame", "array"])
@pytest.mark.parametrize("name", REGRESSION)
def test_regressors_identical_on_sklearn_datasets(name, as_frame):
    X, y = load(name, as_frame)
    models = [LinearRegression(), Ridge(alpha=0.5), make_pipeline(PCA(n_components=2), Ridge())]
    if np.ndim(y) == 1:
        models.append(SGDRegressor(random_state=0))
    for model in models:
        pipe = make_pipeline(SimpleImputer(strategy="median"), RobustScaler(), model).fit(X, y)
        plan = build_plan(pipe)
        check_same(plan, pipe, X, ["predict"])
        assert all(r.path == "kernel" for r in plan.explain("predict"))


def make_mixed(n=240, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "income": rng.normal(50, 10, n),
        "age": rng.integers(18, 90, n),
        "city": rng.choice(["paris", "oslo", "rome"], n),
        "ratio": rng.random(n).astype(np.float32),
        "plan": rng.choice(["basic", "pro"], n),
    })
    df.loc[::7, "income"] = np.nan
    df.loc[::5, "ratio"] = np.nan
    df.loc[::11, "city"] = np.nan
    y = (df["age"] > 50).to_numpy().astype(int) + (df["plan"] == "pro").to_numpy()
    return df, y


def mixed_pipelines(remainder):
    num = make_pipeline(SimpleImputer(), StandardScaler())
    cat = make_pipeline(SimpleImputer(strategy="most_frequent"),
                        OneHotEncoder(sparse_output=False, handle_unknown="ignore"))
    ct = ColumnTransformer([("num", num, ["income", "age"]), ("cat", cat, ["city", "plan"])],
                           remainder=remainder)
    ct2 = ColumnTransformer([("num", SimpleImputer(strategy="constant", fill_value=0.0), ["ratio"]),
                             ("cat", OneHotEncoder(sparse_output=False), ["plan"])],
                            remainder=remainder)
    return [make_pipeline(ct, LogisticRegression(max_iter=500)),
            make_pipeline(ct2, MinMaxScaler(), SGDClassifier(loss="log_loss", random_state=0)),
            make_pipeline(ColumnTransformer([("num", num, ["income", "age"])], remainder=remainder),
                          PCA(n_components=2, whiten=True), LogisticRegression())]


@needs_kernels
@pytest.mark.parametrize("remainder", ["drop", "passthrough"])
def test_column_transformer_with_missing_and_categories(remainder):
    df, y = make_mixed()
    pipes = mixed_pipelines(remainder)
    if remainder == "passthrough":  # the remainder (ratio, float32) reaches the model: no NaN
        df = df.assign(ratio=df["ratio"].fillna(0.5)).drop(columns="plan")
        pipes = [make_pipeline(ColumnTransformer(
            [("num", make_pipeline(SimpleImputer(), StandardScaler()), ["income", "age"]),
             ("cat", OneHotEncoder(sparse_output=False, handle_unknown="ignore"), ["city"])],
            remainder="passthrough"), LogisticRegression(max_iter=500))]
    for pipe in pipes:
        pipe.fit(df, y)
        plan = build_plan(pipe)
        check_same(plan, pipe, df, ["predict", "predict_proba", "decision_function"],
                   rows=range(0, 24, 2))
        assert [r.path for r in plan.explain("predict")][0] == "kernel"


def test_column_transformer_on_arrays_and_unknown_ignored():
    df, y = make_mixed()
    X = df[["income", "age", "city"]].to_numpy(dtype=object)
    ct = ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), [0, 1]),
                            ("cat", OneHotEncoder(sparse_output=False, handle_unknown="ignore"), [2])])
    pipe = make_pipeline(ct, LogisticRegression()).fit(X, y)
    plan = build_plan(pipe)
    check_same(plan, pipe, X, ["predict_proba"], rows=range(12))
    unseen = X[:2].copy()
    unseen[:, 2] = "berlin"
    assert identical(plan.run(unseen, "predict_proba"), pipe.predict_proba(unseen))


_PROPERTY_PIPES = {}


def _property_pipe(strategy):
    if strategy not in _PROPERTY_PIPES:
        X_fit = make_mixed(60, seed=3)[0][["income", "age", "ratio"]].to_numpy()
        X_fit = np.column_stack([X_fit, X_fit[:, 0] * 2])
        pipe = make_pipeline(SimpleImputer(strategy=strategy, fill_value=1.5), StandardScaler(),
                             LogisticRegression()).fit(X_fit, np.arange(60) % 3)
        _PROPERTY_PIPES[strategy] = pipe, build_plan(pipe)
    return _PROPERTY_PIPES[strategy]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6) | st.just(float("nan")), min_size=4, max_size=4),
       st.sampled_from(["mean", "median", "most_frequent", "constant"]))
def test_property_one_row_numeric(values, strategy):
    pipe, plan = _property_pipe(strategy)
    row = np.array([values])
    for method in ("predict", "predict_proba", "decision_function"):
        assert identical(plan.run(row, method), getattr(pipe, method)(row))


def test_float32_and_integer_input_keep_sklearn_dtypes():
    X, y = datasets.load_iris(return_X_y=True)
    for Xc in (X.astype(np.float32), (X * 10).astype(np.int64)):
        pipe = make_pipeline(StandardScaler(), PCA(2), LogisticRegression()).fit(Xc, y)
        check_same(build_plan(pipe), pipe, Xc, ["predict_proba", "decision_function"])
        pipe = make_pipeline(MinMaxScaler(), LinearRegression()).fit(Xc, y)
        check_same(build_plan(pipe), pipe, Xc, ["predict"])


@needs_kernels
def test_fallback_stage_and_explain():
    X, y = datasets.load_iris(return_X_y=True, as_frame=True)
    pipe = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=3))
    pipe.fit(X, y)
    plan = build_plan(pipe)
    check_same(plan, pipe, X, ["predict", "predict_proba"])
    report = plan.explain("predict_proba")
    assert isinstance(report, PlanExplanation)
    assert [(r.stage, r.path) for r in report] == [("standardscaler", "kernel"),
                                                    ("kneighborsclassifier", "fallback")]
    assert report[1].reason == "no kernel for KNeighborsClassifier"
    assert "kneighborsclassifier  KNeighborsClassifier  fallback" in str(report)
    sparse_ohe = make_pipeline(OneHotEncoder(), LogisticRegression())
    df, y2 = make_mixed()
    sparse_ohe.fit(df[["plan", "city"]].fillna("none"), y2)
    assert build_plan(sparse_ohe).explain()[0].reason == \
        "sparse_output=True (the kernel writes dense arrays)"


def test_nan_rejected_with_sklearn_error():
    X, y = datasets.load_iris(return_X_y=True, as_frame=True)
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    plan = build_plan(pipe, name="serve")
    bad = X.iloc[:1].copy()
    bad.iloc[0, 2] = np.nan
    with pytest.raises(ValueError) as want:
        pipe.predict(bad)
    with pytest.raises(ValueError, match=re.escape(str(want.value))) as got:
        plan.run(bad, "predict")
    assert "[ml_toolbox] raised by stage 'logisticregression' of pipeline 'serve' during predict" \
        in got.value.__notes__
    inf = bad.fillna(np.inf)
    with pytest.raises(ValueError, match="Input X contains infinity"):
        plan.run(inf, "predict")


def test_unknown_category_and_missing_column_errors_match_sklearn():
    df, y = make_mixed()
    pipe = make_pipeline(ColumnTransformer([("cat", OneHotEncoder(sparse_output=False), ["plan"])]),
                         LogisticRegression()).fit(df, y)
    plan = build_plan(pipe)
    bad = df.iloc[:1].copy()
    bad["plan"] = "gold"
    with pytest.raises(ValueError, match=re.escape("Found unknown categories ['gold'] in column 0")):
        plan.run(bad, "predict")
    with pytest.raises(ValueError, match=re.escape("columns are missing: {'plan'}")):
        plan.run(df.iloc[:1].drop(columns="plan"), "predict")


def test_chunked_and_parallel_equal_sklearn_per_chunk():
    X, y = datasets.load_breast_cancer(return_X_y=True)
    pipe = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    plan = build_plan(pipe)
    want = np.concatenate([pipe.predict_proba(X[i:i + 100]) for i in range(0, len(X), 100)])
    assert identical(plan.run(X, "predict_proba", batch_size=100), want)
    assert identical(plan.run(X, "predict_proba", batch_size=100, n_jobs=2), want)
    assert identical(plan.run(X, "predict", batch_size=1000), pipe.predict(X))
    with pytest.raises(ValueError, match=re.escape(
            "FastPlan 'pipeline': batch_size must be a positive int or None, got 0")):
        plan.run(X, "predict", batch_size=0)


def test_bad_method_and_missing_method():
    X, y = datasets.load_diabetes(return_X_y=True)
    plan = build_plan(make_pipeline(StandardScaler(), Ridge()).fit(X, y))
    with pytest.raises(ValueError, match=re.escape("FastPlan 'pipeline': unknown method 'fit'")):
        plan.run(X, "fit")
    with pytest.raises(AttributeError, match=re.escape(
            "FastPlan 'pipeline': the last stage 'ridge' (Ridge) has no method 'predict_proba'")):
        plan.run(X, "predict_proba")


def test_plan_pickles_without_kernels_and_rebuilds(tmp_path):
    X, y = datasets.load_wine(return_X_y=True, as_frame=True)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    plan = build_plan(pipe, methods=["predict_proba"])
    assert plan._compiled
    again = pickle.loads(pickle.dumps(plan))
    assert isinstance(again, FastPlan) and again._compiled == {}
    joblib.dump(plan, tmp_path / "plan.joblib")
    loaded = joblib.load(tmp_path / "plan.joblib")
    for p in (again, loaded):
        assert identical(p.run(X.iloc[:1], "predict_proba"), pipe.predict_proba(X.iloc[:1]))


def test_nested_pipeline_steps_are_flattened():
    X, y = datasets.load_iris(return_X_y=True)
    pipe = Pipeline([("pre", make_pipeline(SimpleImputer(), StandardScaler())), ("skip", None),
                     ("model", LogisticRegression())]).fit(X, y)
    plan = build_plan(pipe)
    assert [r.stage for r in plan.explain()] == ["pre/simpleimputer", "pre/standardscaler", "model"]
    check_same(plan, pipe, X, ["predict_proba"])


# -- through the ml_toolbox pipelines ---------------------------------------------------------


@needs_kernels
def test_unified_pipeline_predicts_like_sklearn_and_can_switch_off(tmp_path):
    X, y = datasets.load_breast_cancer(return_X_y=True, as_frame=True)
    features = [("impute", SimpleImputer()), ("scale", StandardScaler())]
    pipe = UnifiedMLPipeline(features=features, model=LogisticRegression(max_iter=500)).fit(X, y)
    sk = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    plan = pipe.inference_pipeline.fast_plan_
    assert [r.path for r in plan.explain("predict_proba")] == ["kernel"] * 3
    for batch in (X.iloc[:1], X.iloc[5:6], X):
        for method in ("predict", "predict_proba", "decision_function"):
            assert identical(getattr(pipe, method)(batch), getattr(sk, method)(batch))
    calls = []
    original = plan._run_whole  # the inference pipeline's entry into the plan
    plan._run_whole = lambda *a, **k: calls.append(a[1]) or original(*a, **k)
    pipe.predict(X.iloc[:1])
    assert calls == ["predict"]
    pipe.set_params(fast_inference=False)
    assert identical(pipe.predict_proba(X.iloc[:1]), sk.predict_proba(X.iloc[:1]))
    assert calls == ["predict"]  # the switch turns the fast path off
    pipe.set_params(fast_inference=True)
    del plan._run_whole
    loaded = pickle.loads(pickle.dumps(pipe))
    assert loaded.inference_pipeline.fast_plan_._compiled == {}
    assert identical(loaded.predict_proba(X.iloc[:3]), sk.predict_proba(X.iloc[:3]))
    joblib.dump(pipe, tmp_path / "pipe.joblib")
    same = joblib.load(tmp_path / "pipe.joblib")
    assert identical(same.predict_proba(X.iloc[:1]), sk.predict_proba(X.iloc[:1]))
    if importlib.util.find_spec("ml_toolbox.persistence") is not None:  # the versioned store
        version = pipe.save(tmp_path / "store", name="cancer")
        same = UnifiedMLPipeline.load(tmp_path / "store", name="cancer", version=version)
        assert identical(same.predict_proba(X.iloc[:1]), sk.predict_proba(X.iloc[:1]))


def test_unified_pipeline_fast_path_errors_like_normal_path():
    X, y = datasets.load_iris(return_X_y=True, as_frame=True)
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())], model=LogisticRegression())
    pipe.fit(X, y)
    bad = X.iloc[:1].copy()
    bad.iloc[0, 0] = np.nan
    errors = []
    for fast in (True, False):
        pipe.set_params(fast_inference=fast)
        with pytest.raises(ValueError) as info:
            pipe.predict(bad)
        errors.append((str(info.value), info.value.__notes__))
    assert errors[0] == errors[1]
    with pytest.raises(Exception, match="missing column"):
        pipe.predict(X.iloc[:1, 1:])


class RecordingPlugin(PipelinePlugin):
    def __init__(self):
        self.stages = []

    def after_stage(self, ctx):
        self.stages.append(ctx.stage_name)


def test_plugin_attached_runs_the_plan_stage_by_stage():
    X, y = datasets.load_iris(return_X_y=True, as_frame=True)
    monitor = RecordingPlugin()
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())], model=LogisticRegression(),
                             monitor=monitor).fit(X, y)
    plan = pipe.inference_pipeline.fast_plan_
    assert pipe.inference_pipeline._fast_plan_for("predict", pipe) is plan
    assert plan._compiled == {}
    pipe.predict(X.iloc[:1])
    assert set(plan._compiled) == {"predict"}  # the loop ran the plan's stage functions
    assert monitor.stages[-2:] == ["scale", "model"]  # and the plug-in saw every stage


@needs_kernels
def test_plugins_see_every_stage_while_the_stages_run_on_kernels():
    from sklearn.datasets import load_breast_cancer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from ml_toolbox import UnifiedMLPipeline
    from ml_toolbox.plugins import PipelinePlugin

    class Seen(PipelinePlugin):
        def __init__(self):
            self.stages = []

        def after_stage(self, ctx):
            self.stages.append((ctx.stage_name, ctx.mode))

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    seen = Seen()
    pipe = UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("scale", StandardScaler())],
                             model=LogisticRegression(max_iter=500), monitor=seen).fit(X, y)
    ref = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler()),
                    ("m", LogisticRegression(max_iter=500))]).fit(X, y)
    plan = pipe.inference_pipeline.fast_plan_
    calls = []
    for step in plan._steps("predict_proba")[1:]:
        kernel = step.kernel

        def spy(Z, kernel=kernel):
            calls.append(1)
            return kernel(Z)

        step.kernel = spy
    seen.stages.clear()
    for data in (X, X.iloc[[0]]):
        assert np.array_equal(pipe.predict_proba(data), ref.predict_proba(data))
    assert seen.stages == [("impute", "transform"), ("scale", "transform"),
                           ("model", "predict_proba")] * 2
    assert len(calls) == 4  # scale and model ran on their kernels, twice
