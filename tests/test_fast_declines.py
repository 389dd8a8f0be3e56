"""The fast path never crashes and never differs: structural eligibility, run-time declines, counts.

The first two tests are issue 17's repros, as a new user met them.
"""

import re

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from ml_toolbox import PipelineMonitor, UnifiedMLPipeline
from ml_toolbox.fast import Decline, NoKernel, build_plan, register_kernel, unregister_kernel


def identical(a, b):
    if sp.issparse(a) or sp.issparse(b):
        return sp.issparse(a) and sp.issparse(b) and (a != b).nnz == 0 and a.dtype == b.dtype
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(
        a, b, equal_nan=a.dtype.kind == "f")


def test_default_sparse_one_hot_in_a_nested_pipeline_gives_sklearns_answer():
    X = pd.DataFrame({"c": list("xyxy")})
    y = [0, 1, 0, 1]

    def ct():
        return ColumnTransformer([("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                                        OneHotEncoder()), ["c"])])

    p = UnifiedMLPipeline(features=[("prep", ct())], model=LogisticRegression()).fit(X, y)
    ref = make_pipeline(ct(), LogisticRegression()).fit(X, y)
    for rows in ([0], [1], [0, 1, 2, 3]):
        for method in ("predict", "predict_proba", "decision_function"):
            assert identical(getattr(p, method)(X.iloc[rows]), getattr(ref, method)(X.iloc[rows]))
    # the ColumnTransformer densifies the one-hot output: the dense kernel gives the same array
    explanation = p.inference_pipeline.fast_plan_.explain()
    assert [r.path for r in explanation] == ["kernel"] * 4


def test_sparse_input_gives_sklearns_answer_and_never_a_fast_path_error():
    rng = np.random.default_rng(0)
    csr = sp.csr_matrix(rng.random((20, 4)) * (rng.random((20, 4)) > 0.5))
    y = np.arange(20) % 2
    p = UnifiedMLPipeline(features=[("scale", StandardScaler(with_mean=False))],
                          model=LogisticRegression()).fit(csr, y)
    ref = make_pipeline(StandardScaler(with_mean=False), LogisticRegression()).fit(csr, y)
    for rows in (slice(0, 1), slice(None)):
        for method in ("predict", "predict_proba", "decision_function"):
            assert identical(getattr(p, method)(csr[rows]), getattr(ref, method)(csr[rows]))
    counts = p.inference_pipeline.fast_plan_.path_counts("predict")
    assert counts["fast"] == 0 and counts["fallback"] == 2
    assert any("input of type csr_matrix" in r for r in counts["reasons"]), counts


def test_sparse_input_error_is_sklearns_with_the_note_naming_pipeline_and_stage():
    csr = sp.csr_matrix(np.eye(4))
    y = [0, 1, 0, 1]
    p = UnifiedMLPipeline(features=[("scale", StandardScaler(with_mean=False))],
                          model=LogisticRegression(), name="churn").fit(csr, y)
    ref = make_pipeline(StandardScaler(with_mean=False), LogisticRegression()).fit(csr, y)
    bad = sp.csr_matrix(np.eye(3))  # 3 features where 4 were seen
    with pytest.raises(ValueError) as want:
        ref.predict(bad)
    with pytest.raises(ValueError) as got:
        p.inference_pipeline.fast_plan_.run(bad, "predict")
    assert str(got.value).splitlines()[0] == str(want.value).splitlines()[0]
    assert any("stage 'scale'" in n for n in getattr(got.value, "__notes__", [])), got.value


class _Broken:
    """A kernel factory whose kernel fails with an error of its own (a bug in a kernel)."""

    def __init__(self, exc):
        self.exc = exc

    def __call__(self, est, method):
        exc = self.exc

        def kernel(X):
            raise exc

        return kernel


@pytest.mark.parametrize("exc", [TypeError("boom"), IndexError("boom"), Decline("no")])
def test_a_kernels_own_error_never_reaches_the_user(exc):
    X = np.arange(12.0).reshape(6, 2)
    y = [0, 1] * 3
    ref = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    previous = register_kernel(StandardScaler, _Broken(exc))
    try:
        plan = build_plan(ref, name="p")
        assert plan.explain()[0].path == "kernel"
        for rows in (slice(0, 1), slice(None)):
            assert identical(plan.run(X[rows], "predict_proba"), ref.predict_proba(X[rows]))
        reasons = plan.path_counts("predict_proba")["reasons"]
        assert plan.path_counts("predict_proba")["fallback"] == 2
        assert list(reasons) == ["stage 'standardscaler': " + (
            "no" if isinstance(exc, Decline) else f"kernel error ({type(exc).__name__})")]
    finally:
        unregister_kernel(StandardScaler, previous)


def test_register_kernel_factory_that_declines_at_build_time():
    def factory(est, method):
        raise NoKernel("not this one")

    X = np.arange(12.0).reshape(6, 2)
    ref = make_pipeline(StandardScaler(), Ridge()).fit(X, np.arange(6.0))
    previous = register_kernel(StandardScaler, factory)
    try:
        plan = build_plan(ref)
        assert tuple(plan.explain()[0])[2:] == ("fallback", "not this one")
        assert identical(plan.run(X, "predict"), ref.predict(X))
    finally:
        unregister_kernel(StandardScaler, previous)
    assert build_plan(ref).explain()[0].path == "kernel"


def _frame():
    return pd.DataFrame({"a": [1.0, np.nan, 3.0, 4.0, 5.0, 6.0],
                         "b": ["x", "y", None, "x", "y", "x"],
                         "n": [1, 2, 3, 4, 5, 6]})


@pytest.mark.parametrize("make, reason", [
    (lambda: ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), ["a"]),
                                ("f", FunctionTransformer(np.log1p), ["n"])]),
     "prep/f: no kernel for FunctionTransformer"),
    (lambda: ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), ["a"]),
                                ("cat", OneHotEncoder(drop="first"), ["n"])]),
     "prep/cat: drop='first'"),
    (lambda: ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), ["a"]),
                                ("cat", OneHotEncoder(min_frequency=2), ["n"])]),
     "prep/cat: infrequent categories are grouped"),
    (lambda: ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), ["a"]),
                                ("cat", OneHotEncoder(), ["n"])], sparse_threshold=1.0),
     "sparse output"),
    (lambda: ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), ["a"]),
                                ("imp", SimpleImputer(add_indicator=True), ["a"])]),
     "prep/imp: add_indicator=True"),
    (lambda: ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), ["a"])],
                               transformer_weights={"num": 2.0}),
     "transformer_weights"),
    (lambda: ColumnTransformer([("num", make_pipeline(
        SimpleImputer(), StandardScaler().set_output(transform="pandas")), ["a"])]),
     "prep/num/standardscaler: set_output(transform=...) is not 'default'"),
])
def test_configurations_without_a_kernel_decline_at_build_time_naming_the_stage(make, reason):
    X, y = _frame(), [0, 1, 0, 1, 0, 1]
    ours = UnifiedMLPipeline(features=[("prep", make())], model=LogisticRegression()).fit(X, y)
    ref = make_pipeline(make(), LogisticRegression()).fit(X, y)
    rows = ours.inference_pipeline.fast_plan_.explain("predict_proba")
    assert (rows[0].path, rows[0].reason) == ("fallback", reason)
    for r in ([0], [1], [2], slice(None)):
        assert identical(ours.predict_proba(X.iloc[r]), ref.predict_proba(X.iloc[r]))


def test_column_selector_and_feature_union_have_kernels():
    X, y = _frame(), [0, 1, 0, 1, 0, 1]

    def make():
        return ColumnTransformer([
            ("num", make_pipeline(SimpleImputer(), StandardScaler()),
             make_column_selector(dtype_include="number")),
            ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                  OneHotEncoder(handle_unknown="infrequent_if_exist")),
             make_column_selector(dtype_exclude="number")),
        ])

    ours = UnifiedMLPipeline(features=[("prep", make()), ("fu", FeatureUnion(
        [("pca", PCA(n_components=2)), ("scale", StandardScaler()), ("same", "passthrough")]))],
        model=LogisticRegression()).fit(X, y)
    ref = make_pipeline(make(), FeatureUnion(
        [("pca", PCA(n_components=2)), ("scale", StandardScaler()), ("same", "passthrough")]),
        LogisticRegression()).fit(X, y)
    plan = ours.inference_pipeline.fast_plan_
    assert all(r.path == "kernel" for r in plan.explain()), str(plan.explain())
    unseen = X.iloc[[0]].assign(b="zzz")
    for batch in (X.iloc[[0]], X.iloc[[2]], unseen, X):
        assert identical(ours.predict_proba(batch), ref.predict_proba(batch))


def test_unknown_category_declines_at_run_time_with_sklearns_error_and_the_count():
    X, y = _frame(), [0, 1, 0, 1, 0, 1]

    def make():
        return ColumnTransformer([("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                                        OneHotEncoder()), ["b"])])

    ours = UnifiedMLPipeline(features=[("prep", make())], model=LogisticRegression(),
                             name="churn").fit(X, y)
    ref = make_pipeline(make(), LogisticRegression()).fit(X, y)
    ours.predict(X.iloc[[0]])
    unseen = X.iloc[[0]].assign(b="zzz")
    with pytest.raises(ValueError) as want:
        ref.predict(unseen)
    with pytest.raises(ValueError) as got:
        ours.predict(unseen)
    assert str(got.value).splitlines()[0] == str(want.value).splitlines()[0]
    assert "[ml_toolbox] raised by stage 'prep' of pipeline" in "\n".join(got.value.__notes__)
    plan = ours.inference_pipeline.fast_plan_
    assert plan.path_counts("predict") == {
        "fast": 1, "fallback": 1, "reasons": {"stage 'prep': unknown category": 1}}
    text = str(plan.explain("predict"))
    assert "calls: 1 on kernels, 1 fell back" in text
    assert "1 x stage 'prep': unknown category" in text
    plan.reset_counts()
    assert plan.path_counts("predict") == {"fast": 0, "fallback": 0, "reasons": {}}


def test_counts_with_a_monitor_attached_and_stages_without_kernels():
    X = np.random.default_rng(0).random((30, 3))
    y = np.arange(30) % 2
    from sklearn.neighbors import KNeighborsClassifier  # no kernel (trees have them now)

    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())],
                             model=KNeighborsClassifier(n_neighbors=3),
                             monitor=PipelineMonitor()).fit(X, y)
    for i in range(3):
        pipe.predict(X[i:i + 1])
    counts = pipe.inference_pipeline.fast_plan_.path_counts("predict")
    assert counts["fast"] == 0 and counts["fallback"] == 3
    assert counts["reasons"] == {"stage 'model': no kernel for KNeighborsClassifier": 3}


def test_counts_are_exact_under_threads():
    from concurrent.futures import ThreadPoolExecutor

    X = pd.DataFrame({"a": np.arange(8.0), "b": np.arange(8.0)})
    y = np.arange(8) % 2
    pipe = UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("scale", StandardScaler())],
                             model=LogisticRegression()).fit(X, y)
    bad = X.iloc[[0]].assign(a=np.inf)  # refused by the imputer: falls back, sklearn raises

    def call(i):
        try:
            pipe.predict(bad if i % 4 == 0 else X.iloc[[i % 8]])
        except ValueError:
            pass

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(call, range(400)))
    counts = pipe.inference_pipeline.fast_plan_.path_counts("predict")
    assert counts["fast"] == 300 and counts["fallback"] == 100, counts
    assert sum(counts["reasons"].values()) == 100
    assert all(re.match(r"stage '\w+': (infinite|non-finite) value", r) for r in counts["reasons"])


def test_the_monitor_says_per_execution_which_path_and_why():
    X = pd.DataFrame({"a": np.arange(8.0), "b": np.arange(8.0) % 3})
    y = np.arange(8) % 2
    monitor = PipelineMonitor()
    pipe = UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("scale", StandardScaler())],
                             model=LogisticRegression(), monitor=monitor, name="churn").fit(X, y)
    pipe.predict(X.iloc[[0]])
    pipe.predict_proba(X.iloc[[1]])
    with pytest.raises(ValueError):
        pipe.predict(X.iloc[[0]].assign(a=np.inf))  # the imputer declines; sklearn raises
    runs = [m for m in monitor.history() if m.fast_path is not None]
    assert [m.fast_path for m in runs][:2] == ["kernel", "kernel"]
    assert runs[2].fast_path.startswith("fallback: stage 'impute': ")
    name = runs[0].pipeline_name
    stats = monitor.get_pipeline_statistics(name)["fast_path"]
    assert stats["fast"] == 2 and stats["fallback"] == 1
    assert list(stats["reasons"]) == [runs[2].fast_path[len("fallback: "):]]
    assert runs[2].to_dict()["fast_path"] == runs[2].fast_path
    # and the plan's own counts agree
    plan = pipe.inference_pipeline.fast_plan_
    assert plan.path_counts("predict")["fallback"] == 1
    assert plan.path_counts("predict_proba") == {"fast": 1, "fallback": 0, "reasons": {}}


@pytest.mark.parametrize("first", ["chain", "column_transformer"])
def test_one_row_transform_is_shaped_as_sklearns(first):
    X = pd.DataFrame({"a": [1.0, 2.0, np.nan], "b": [3.0, 4.0, 5.0], "c": ["x", "y", None]})
    if first == "chain":
        X = X[["a", "b"]]
        pipe = make_pipeline(SimpleImputer(), StandardScaler()).fit(X)
    else:
        pipe = make_pipeline(ColumnTransformer([
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["a", "b"]),
            ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()), ["c"]),
        ])).fit(X)
    plan = build_plan(pipe)
    for i in range(3):
        assert identical(plan.run(X.iloc[[i]], "transform"), pipe.transform(X.iloc[[i]]))
    assert plan.path_counts("transform")["fast"] == 3


@pytest.mark.parametrize("regression", [False, True])
def test_target_encoder_kernel_copies_the_fitted_encodings(regression):
    from sklearn.preprocessing import TargetEncoder

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"name": pd.Series(rng.choice(["a", "b", "c", None], 80), dtype=object),
                      "code": rng.choice([1.0, 2.0, np.nan], 80)})
    y = rng.normal(size=80) if regression else rng.integers(0, 2, 80)

    def make():
        return make_pipeline(TargetEncoder(cv=4, shuffle=True, random_state=0),
                             Ridge() if regression else LogisticRegression())

    ours = UnifiedMLPipeline(features=[("te", make()[0])], model=make()[-1]).fit(X, y)
    ref = make().fit(X, y)
    plan = ours.inference_pipeline.fast_plan_
    assert plan.explain()[0].path == "kernel"
    test = pd.DataFrame({"name": pd.Series(["a", None, "zzz", np.nan], dtype=object),
                         "code": [2.0, np.nan, 7.0, 1.0]})
    for rows in ([0], [1], [2], [3], [0, 1, 2, 3]):
        assert identical(ours.predict(test.iloc[rows]), ref.predict(test.iloc[rows]))
        assert identical(build_plan(ref[:-1]).run(test.iloc[rows], "transform"),
                         ref[:-1].transform(test.iloc[rows]))
