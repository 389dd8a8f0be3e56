"""A generated equivalence suite: the fast path against scikit-learn's Pipeline, bit for bit.

Hypothesis draws pipelines from the space of scikit-learn preprocessing (ColumnTransformers with
nested Pipelines, every column-selection form and remainder, imputers, encoders, scalers,
discretizers, polynomial and spline features, function transformers, PCA, feature selection) at
default and non-default parameters, ahead of a linear model; and inputs from frames of int, float,
bool, category, string, object and datetime columns with NaN and None, numpy and CSR arrays,
unseen categories, one-row, few-row and (sometimes) 10k-row batches; with no plug-in, a monitor or
a debugger. Every output of ``UnifiedMLPipeline`` and of :func:`ml_toolbox.fast.build_plan` on
scikit-learn's own fitted Pipeline equals scikit-learn's, or both raise the same exception type.

CI runs a bounded number of examples; ``make test-long`` (``ML_TOOLBOX_LONG=1``) runs many more.
"""

import os
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.decomposition import PCA
from sklearn.feature_selection import SelectKBest, VarianceThreshold, f_classif, f_regression
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (FunctionTransformer, KBinsDiscretizer, MaxAbsScaler,
                                   MinMaxScaler, OneHotEncoder, OrdinalEncoder,
                                   PolynomialFeatures, RobustScaler, SplineTransformer,
                                   StandardScaler, TargetEncoder)

from ml_toolbox import PipelineDebugger, PipelineMonitor, UnifiedMLPipeline
from ml_toolbox.exceptions import InputSchemaError
from ml_toolbox.fast import build_plan

LONG = bool(os.environ.get("ML_TOOLBOX_LONG"))
EXAMPLES = 400 if LONG else 15
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=not LONG,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

KINDS = ["int", "float", "bool", "category", "string", "object", "datetime"]
NUMERIC = {"int", "float", "bool"}
CATEGORICAL = {"category", "string", "object"}
LEVELS = ["a", "b", "c", "d"]


# --------------------------------------------------------------------------------------------------
# data


def _column(kind, n, rng, missing):
    hole = rng.random(n) < missing
    if kind == "int":
        return pd.Series(rng.integers(0, 6, n), dtype="int64")
    if kind == "float":
        v = rng.normal(size=n) * 3
        v[hole] = np.nan
        return pd.Series(v)
    if kind == "bool":
        return pd.Series(rng.random(n) < 0.5)
    values = [LEVELS[i] for i in rng.integers(0, len(LEVELS), n)]
    if kind == "category":
        s = pd.Series(pd.Categorical(values, categories=LEVELS))
        return s.mask(pd.Series(hole))
    if kind == "string":  # pandas' default string dtype (NaN for missing)
        return pd.Series(values).mask(pd.Series(hole))
    if kind == "object":  # Python objects, None for missing
        return pd.Series([None if h else v for v, h in zip(values, hole)], dtype=object)
    dates = pd.Series(pd.date_range("2020-01-01", periods=n, freq="37h"))
    return dates.mask(pd.Series(hole))


def _frame(kinds, n, seed, missing):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({f"{k}{i}": _column(k, n, rng, missing) for i, k in enumerate(kinds)})


# --------------------------------------------------------------------------------------------------
# pipelines


@st.composite
def numeric_steps(draw):
    steps = []
    if draw(st.booleans()) or True:
        strategy = draw(st.sampled_from(["mean", "median", "most_frequent", "constant"]))
        steps.append(SimpleImputer(strategy=strategy, fill_value=0 if strategy == "constant" else None,
                                   add_indicator=draw(st.booleans())))
    scaler = draw(st.sampled_from([None, StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler]))
    if scaler is StandardScaler:
        steps.append(StandardScaler(with_mean=draw(st.booleans()), with_std=draw(st.booleans())))
    elif scaler is MinMaxScaler:
        steps.append(MinMaxScaler(clip=draw(st.booleans())))
    elif scaler is not None:
        steps.append(scaler())
    extra = draw(st.sampled_from([None, "kbins", "poly", "spline"]))
    if extra == "kbins":
        steps.append(KBinsDiscretizer(n_bins=3, encode=draw(st.sampled_from(["ordinal", "onehot-dense"])),
                                      strategy=draw(st.sampled_from(["uniform", "quantile"])),
                                      quantile_method="averaged_inverted_cdf"))
    elif extra == "poly":
        steps.append(PolynomialFeatures(2, include_bias=draw(st.booleans())))
    elif extra == "spline":
        steps.append(SplineTransformer(n_knots=3, degree=2))
    return steps


@st.composite
def categorical_steps(draw):
    steps = []
    if draw(st.booleans()):
        strategy = draw(st.sampled_from(["most_frequent", "constant"]))
        steps.append(SimpleImputer(strategy=strategy,
                                   fill_value="missing" if strategy == "constant" else None))
    encoder = draw(st.sampled_from(["onehot", "onehot", "ordinal", "target"]))
    if encoder == "onehot":
        steps.append(OneHotEncoder(
            sparse_output=draw(st.booleans()),
            handle_unknown=draw(st.sampled_from(["error", "ignore", "infrequent_if_exist"])),
            drop=draw(st.sampled_from([None, None, "first", "if_binary"])),
            min_frequency=draw(st.sampled_from([None, None, 3])),
            max_categories=draw(st.sampled_from([None, None, 2]))))
    elif encoder == "ordinal":
        if draw(st.booleans()):
            steps.append(OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                        encoded_missing_value=-2))
        else:
            steps.append(OrdinalEncoder())
    else:
        steps.append(TargetEncoder(cv=KFold(3, shuffle=True, random_state=0)))
    return steps


def _part(steps):
    return steps[0] if len(steps) == 1 else Pipeline([(f"s{i}", s) for i, s in enumerate(steps)])


@st.composite
def column_transformers(draw, columns, kinds):
    num = [c for c, k in zip(columns, kinds) if k in NUMERIC]
    cat = [c for c, k in zip(columns, kinds) if k in CATEGORICAL]
    how = draw(st.sampled_from(["name", "position", "mask", "selector"]))

    def select(group):
        if how == "name":
            return list(group)
        if how == "position":
            return [columns.index(c) for c in group]
        if how == "mask":
            return np.array([c in group for c in columns])
        return None

    parts = []
    if num:
        cols = select(num) if how != "selector" else make_column_selector(dtype_include="number")
        parts.append(("num", _part(draw(numeric_steps())), cols))
    if cat:
        cols = select(cat) if how != "selector" else make_column_selector(
            dtype_include=["object", "category", "string"])
        parts.append(("cat", _part(draw(categorical_steps())), cols))
    if not parts:
        parts.append(("all", "passthrough", list(columns)))
    return ColumnTransformer(parts, remainder=draw(st.sampled_from(["drop", "passthrough"])),
                             sparse_threshold=draw(st.sampled_from([0.3, 0.0, 1.0])),
                             verbose_feature_names_out=draw(st.booleans()))


def after_steps(draw, regression):
    choice = draw(st.sampled_from([None, None, "pca", "kbest", "variance", "abs", "identity",
                                   "maxabs"]))
    if choice == "pca":
        return [PCA(n_components=2, random_state=0)]  # seeded: arpack on sparse input
    if choice == "kbest":
        return [SelectKBest(f_regression if regression else f_classif, k=2)]
    if choice == "variance":
        return [VarianceThreshold()]
    if choice == "abs":
        return [FunctionTransformer(np.abs)]
    if choice == "identity":
        return [FunctionTransformer()]
    if choice == "maxabs":
        return [MaxAbsScaler()]
    return []


def _model(regression, C):
    return Ridge(alpha=C) if regression else LogisticRegression(C=C, max_iter=200)


def _plugins(kind):
    if kind == "monitor":
        return {"monitor": PipelineMonitor()}
    if kind == "debugger":
        return {"debugger": PipelineDebugger()}
    return {}


# --------------------------------------------------------------------------------------------------
# comparison


def _identical(a, b):
    if sp.issparse(a) or sp.issparse(b):
        return (sp.issparse(a) and sp.issparse(b) and a.shape == b.shape and a.dtype == b.dtype
                and (a != b).nnz == 0)
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        return np.array_equal(a, b, equal_nan=True)
    if a.dtype.kind in "mM":  # NaT != NaT: compare the stored integers
        return np.array_equal(a.view(np.int64), b.view(np.int64))
    if a.dtype.kind == "O":  # None, NaN and NaT stand for themselves
        return all(x is y or type(x) is type(y) and (x == y or pd.isna(x) and pd.isna(y))
                   for x, y in zip(a.ravel().tolist(), b.ravel().tolist()))
    return np.array_equal(a, b)


def _same(ours, theirs, what, schema=False):
    """``ours()`` gives ``theirs()``'s output bit for bit, or raises the same exception type.

    ``schema``: ``ours`` checks its input against the schema recorded at fit first, and may
    refuse it with :class:`~ml_toolbox.exceptions.InputSchemaError`, a subclass of the
    ``ValueError`` scikit-learn raises, naming the pipeline and what was expected.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            want = theirs()
        except Exception as exc:  # noqa: BLE001 - whatever scikit-learn raises, we must raise
            try:
                ours()
            except Exception as got:  # noqa: BLE001
                if schema and isinstance(got, InputSchemaError):
                    assert isinstance(got, type(exc)), (what, got, exc)
                else:
                    assert type(got) is type(exc), (what, got, exc)
                return
            raise AssertionError(f"{what}: scikit-learn raised {exc!r}, the fast path did not")
        got = ours()
    assert _identical(got, want), (what, got, want)


def _check(ours, ref, batches, regression):
    plan = build_plan(ref, name="ref")
    methods = ["predict"] if regression else ["predict", "predict_proba", "decision_function"]
    for label, X in batches:
        for method in methods:
            _same(lambda: getattr(ours, method)(X), lambda: getattr(ref, method)(X),
                  f"UnifiedMLPipeline.{method} on {label}", schema=True)
            _same(lambda: plan.run(X, method), lambda: getattr(ref, method)(X),
                  f"FastPlan.run({method!r}) on {label}")
        _same(lambda: ours.transform(X), lambda: ref[:-1].transform(X), f"transform on {label}",
              schema=True)
        _same(lambda: plan.run(X, "transform") if len(ref) == 1 else build_plan(ref[:-1]).run(
            X, "transform"), lambda: ref[:-1].transform(X), f"FastPlan.run('transform') on {label}")


def _fit_both(features, model, X, y, plugins):
    from sklearn.base import clone

    ref = Pipeline([*[(f"f{i}", clone(s)) for i, s in enumerate(features)], ("model", clone(model))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ref.fit(X, y)
        except Exception as exc:  # noqa: BLE001
            ours = UnifiedMLPipeline(features=[(f"f{i}", clone(s)) for i, s in enumerate(features)],
                                     model=clone(model), **plugins)
            with pytest.raises(Exception) as got:
                ours.fit(X, y)
            assert type(got.value) is type(exc), (got.value, exc)
            return None, None
        ours = UnifiedMLPipeline(features=[(f"f{i}", clone(s)) for i, s in enumerate(features)],
                                 model=clone(model), **plugins).fit(X, y)
    return ours, ref


# --------------------------------------------------------------------------------------------------
# the suites


@SETTINGS
@given(data=st.data())
def test_frames_through_column_transformers(data):
    kinds = data.draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=5), label="kinds")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    missing = data.draw(st.sampled_from([0.0, 0.15]), label="missing")
    regression = data.draw(st.booleans(), label="regression")
    X = _frame(kinds, 60, seed, missing)
    rng = np.random.default_rng(seed + 1)
    y = rng.normal(size=60) if regression else rng.integers(0, data.draw(st.sampled_from([2, 3])), 60)
    ct = data.draw(column_transformers(list(X.columns), kinds), label="ct")
    features = [ct, *after_steps(data.draw, regression)]
    model = _model(regression, data.draw(st.sampled_from([1.0, 0.1])))
    plugins = _plugins(data.draw(st.sampled_from(["none", "none", "monitor", "debugger"])))
    ours, ref = _fit_both(features, model, X, y, plugins)
    if ours is None:
        return
    test = _frame(kinds, 12, seed + 7, missing)
    batches = [("one row", test.iloc[[0]]), ("another row", test.iloc[[5]]),
               ("few rows", test.iloc[:3])]
    cat = [c for c, k in zip(X.columns, kinds) if k in ("string", "object")]
    if cat:
        unseen = test.iloc[[1]].copy()
        unseen[cat[0]] = pd.Series(["zzz"], index=unseen.index, dtype=test[cat[0]].dtype)
        batches.append(("unseen category", unseen))
        if kinds[X.columns.get_loc(cat[0])] == "object":
            nan_row = test.iloc[[2]].copy()
            nan_row[cat[0]] = pd.Series([np.nan], index=nan_row.index, dtype=object)
            batches.append(("NaN in an object column", nan_row))
    if data.draw(st.integers(0, 19), label="big") == 0:
        batches.append(("10k rows", _frame(kinds, 10_000, seed + 11, missing)))
    _check(ours, ref, batches, regression)


@SETTINGS
@given(data=st.data())
def test_arrays_and_csr_through_chains(data):
    sparse = data.draw(st.booleans(), label="csr")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    regression = data.draw(st.booleans(), label="regression")
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, 4)) * (rng.random((60, 4)) > 0.3)
    if not sparse and data.draw(st.booleans(), label="nan"):
        X[rng.random(X.shape) < 0.1] = np.nan
    y = rng.normal(size=60) if regression else rng.integers(0, 2, 60)
    if sparse:
        X = sp.csr_matrix(X)
        pool = [StandardScaler(with_mean=False), MaxAbsScaler(), VarianceThreshold(),
                SimpleImputer(), SelectKBest(f_regression if regression else f_classif, k=2),
                FunctionTransformer(accept_sparse=True), StandardScaler()]
        features = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique_by=id),
                             label="features")
    else:
        features = data.draw(numeric_steps(), label="numeric") + after_steps(data.draw, regression)
        if not features:
            features = [StandardScaler()]
    model = _model(regression, 1.0)
    plugins = _plugins(data.draw(st.sampled_from(["none", "monitor", "debugger"])))
    ours, ref = _fit_both(features, model, X, y, plugins)
    if ours is None:
        return
    test = rng.normal(size=(8, 4))
    if not sparse:
        test[0, 1] = np.nan
        test[3, 2] = np.inf
    test = sp.csr_matrix(test) if sparse else test
    batches = [("one row", test[:1]), ("row with NaN/inf", test[3:4]), ("few rows", test[:5]),
               ("wrong width", test[:1, :3])]
    if data.draw(st.integers(0, 19), label="big") == 0:
        big = rng.normal(size=(10_000, 4))
        batches.append(("10k rows", sp.csr_matrix(big) if sparse else big))
    _check(ours, ref, batches, regression)
