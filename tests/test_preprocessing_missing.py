"""AutoPreprocessor: None, pd.NA and NaN are one thing in a categorical column, missing.

On every pandas version and input kind (object and string dtypes, object arrays), in ``fit``,
``transform``, ``fit_transform`` and every predict path of the toolbox's pipelines (batch kernel,
one-row kernel, scikit-learn's own methods), bit for bit with scikit-learn's Pipeline running
the same ``AutoPreprocessor``. Plain scikit-learn estimators keep scikit-learn's rule (None is a
value unless ``missing_values=None``).
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from ml_toolbox import UnifiedMLPipeline
from ml_toolbox.fast import build_plan
from ml_toolbox.preprocessing import AutoPreprocessor

# no shrinking: a failing example is printed as drawn (shrinking frames here takes many minutes)
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow])

MISSING = {"None": None, "NaN": np.nan, "NA": pd.NA}
LEVELS = ["a", "b", "c"]
# object: Python objects as given; string: pandas' StringDtype (pd.NA); str: pandas' default for
# strings (pandas >= 3: the str dtype, NaN for missing; older: object, None kept)
DTYPES = ["object", "string", "str"]


def _column(tokens, dtype):
    values = [MISSING.get(t, t) for t in tokens]
    if dtype == "object":
        return pd.Series(values, dtype=object)
    if dtype == "string":
        return pd.Series(values, dtype="string")
    return pd.Series([None if v is pd.NA else v for v in values])  # the inferred dtype


def _as_nan(X):
    """``X`` with every missing value of its categorical columns as NaN, in object columns."""
    out = X.copy()
    for c in out.columns:
        if out[c].dtype.kind != "f":
            vals = out[c].to_numpy(dtype=object)
            out[c] = pd.Series([np.nan if pd.isna(v) else v for v in vals], index=out.index,
                               dtype=object)
    return out


tokens = st.sampled_from([*LEVELS, *MISSING])


@st.composite
def frames(draw, n=24):
    n_cat = draw(st.integers(1, 3), label="categorical columns")
    cols = {}
    for j in range(n_cat):
        col = draw(st.lists(tokens, min_size=n, max_size=n), label=f"c{j}")
        col[j] = "a"  # some value is seen in fit
        cols[f"c{j}"] = _column(col, draw(st.sampled_from(DTYPES), label=f"dtype c{j}"))
    if draw(st.booleans(), label="numeric column"):
        cols["x"] = pd.Series(np.linspace(-1.0, 1.0, n))
    return pd.DataFrame(cols)


def _assert_same(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=True), (got, want)


@SETTINGS
@given(X=frames(), threshold=st.sampled_from([50, 2]), how=st.sampled_from(["target", "ordinal"]),
       regression=st.booleans(), seed=st.integers(0, 2**16))
def test_none_na_and_nan_are_one_missing_value_on_every_path(X, threshold, how, regression, seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=len(X)) if regression else np.arange(len(X)) % 2
    params = {"high_cardinality_threshold": threshold, "high_cardinality": how}

    # the rule: the frame means what the same frame with NaN for every missing value means
    ap = AutoPreprocessor(**params)
    ref = AutoPreprocessor(**params)
    Xt, Xt_nan = ap.fit_transform(X, y), ref.fit_transform(_as_nan(X), y)
    _assert_same(Xt, Xt_nan)
    names = ap.get_feature_names_out().tolist()
    assert names == ref.get_feature_names_out().tolist()
    assert not any(n.endswith(("_None", "_<NA>", "_nan")) for n in names), names
    assert ap.fit(X, y).transform(X).shape == Xt.shape
    _assert_same(ap.transform(X), ref.transform(_as_nan(X)))
    before = X.copy()
    ap.transform(X)
    pd.testing.assert_frame_equal(X, before)  # the caller's frame is not changed

    # every predict path of the toolbox, bit for bit with scikit-learn running the same stage
    model = Ridge() if regression else LogisticRegression()
    ours = UnifiedMLPipeline(features=[("preprocessing", AutoPreprocessor(**params))],
                             model=model).fit(X, y)
    sk = make_pipeline(AutoPreprocessor(**params), Ridge() if regression else LogisticRegression())
    sk.fit(X, y)
    methods = ["predict"] if regression else ["predict", "predict_proba"]
    batches = [X, X.iloc[:3], *(X.iloc[[i]] for i in range(len(X)))]
    for batch in batches:
        _assert_same(ours.transform(batch), sk[0].transform(batch))
        for method in methods:
            _assert_same(getattr(ours, method)(batch), getattr(sk, method)(batch))
    plan = build_plan(sk)
    for batch in batches[:6]:
        _assert_same(plan.run(batch), sk.predict(batch))


def test_object_dtype_none_goes_through_the_kernels():
    """The one-row kernel (object columns, as pandas < 3 makes them) reads None and pd.NA as
    missing, and stays on the kernel path."""
    X = pd.DataFrame({"city": pd.Series(["a", "b", None, "a", pd.NA, "c"] * 5, dtype=object),
                      "size": [1.0, 2.0, 3.0, np.nan, 5.0, 6.0] * 5})
    y = np.linspace(0.0, 1.5, 30)
    ours = UnifiedMLPipeline(features=[("preprocessing", AutoPreprocessor())],
                             model=Ridge()).fit(X, y)
    assert ours.transform(X).shape == (30, 4)
    sk = make_pipeline(AutoPreprocessor(), Ridge()).fit(X, y)
    plan = ours.inference_pipeline.fast_plan_
    for i in range(6):
        _assert_same(ours.predict(X.iloc[[i]]), sk.predict(X.iloc[[i]]))
    assert all(r.path == "kernel" for r in plan.explain()), plan.explain()
    assert plan.path_counts()["fallback"] == 0 and plan.path_counts()["fast"] == 6
    # None imputed as the most frequent value, "a": the row of a None equals the row of an "a"
    _assert_same(ours.transform(X.iloc[[2]])[:, 1:], ours.transform(X.iloc[[0]])[:, 1:])


@pytest.mark.parametrize("missing", [None, pd.NA, np.nan])
def test_object_arrays_none_and_na_are_missing(missing):
    X = np.array([["a", "x"], ["b", missing], [missing, "x"], ["a", "y"]] * 3, dtype=object)
    X_nan = np.where(pd.isna(X), np.nan, X)
    ap = AutoPreprocessor().fit(X)
    names = AutoPreprocessor().fit(X_nan).get_feature_names_out().tolist()
    assert ap.get_feature_names_out().tolist() == names
    _assert_same(ap.transform(X), AutoPreprocessor().fit(X_nan).transform(X_nan))
    y = np.arange(12.0)
    ours = UnifiedMLPipeline(features=[("preprocessing", AutoPreprocessor())],
                             model=Ridge()).fit(X, y)
    sk = make_pipeline(AutoPreprocessor(), Ridge()).fit(X, y)
    for batch in (X, X[:1], X[1:2], X[2:3]):
        _assert_same(ours.predict(batch), sk.predict(batch))


def test_plain_simple_imputer_keeps_scikit_learns_rule():
    """Only AutoPreprocessor reads None as missing: a SimpleImputer(missing_values=np.nan) of the
    user's own keeps None as a value, on scikit-learn's path and on the fast path alike."""
    X = pd.DataFrame({"city": pd.Series(["a", "b", None, "a"] * 5, dtype=object)})
    y = np.arange(20.0)
    ct = ColumnTransformer([("c", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                                OneHotEncoder(handle_unknown="ignore",
                                                              sparse_output=False)), ["city"])])
    sk = make_pipeline(ct, Ridge()).fit(X, y)
    names = sorted(sk[0].get_feature_names_out().tolist())
    assert names == ["c__city_None", "c__city_a", "c__city_b"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = UnifiedMLPipeline(features=[("ct", ct)], model=Ridge()).fit(X, y)
    assert ours.transform(X).shape == (20, 3)
    plan = build_plan(sk)
    for batch in (X, X.iloc[[2]], X.iloc[[0]]):
        _assert_same(plan.run(batch), sk.predict(batch))
        _assert_same(ours.predict(batch), sk.predict(batch))


def test_one_row_with_a_na_valued_string_column_is_scikit_learns():
    """A pandas "string" column (pd.NA for missing) is not read by the one-row kernel: the row
    runs through scikit-learn's methods, whatever the other columns (it used to be read as an
    unknown category beside an object column, dropping its one)."""
    X = pd.DataFrame({"c0": pd.Series(list("abcab") * 5, dtype=object),
                      "c1": pd.Series(list("bbaca") * 5, dtype="string"),
                      "x": np.linspace(-1.0, 1.0, 25)})
    y = np.random.default_rng(0).normal(size=25)
    ours = UnifiedMLPipeline(features=[("preprocessing", AutoPreprocessor())],
                             model=Ridge()).fit(X, y)
    sk = make_pipeline(AutoPreprocessor(), Ridge()).fit(X, y)
    for i in range(5):
        _assert_same(ours.predict(X.iloc[[i]]), sk.predict(X.iloc[[i]]))
    assert ours.inference_pipeline.fast_plan_.path_counts()["fallback"] == 5
