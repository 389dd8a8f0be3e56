"""The input check after fit: duplicated column names, extra columns (refused, or dropped with
``extra_columns="ignore"``), missing ones; and the dry run's stratified, seeded sample."""

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from ml_toolbox import UnifiedMLPipeline
from ml_toolbox.config import sample_rows
from ml_toolbox.exceptions import InputSchemaError

COLUMNS = ["age", "income", "score"]


def _fitted(**params):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(40, 3)), columns=COLUMNS)
    y = (X["age"] > 0).astype(int)
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())], model=LogisticRegression(),
                             name="churn", **params).fit(X, y)
    return pipe, X


@pytest.mark.parametrize("method", ["predict", "predict_proba", "transform", "score"])
@pytest.mark.parametrize("extra_columns", ["error", "ignore"])
def test_duplicated_columns_are_refused_at_the_check(method, extra_columns):
    pipe, X = _fitted(extra_columns=extra_columns)
    bad = pd.concat([X, X[["age"]]], axis=1)  # 'age' twice, every fitted column there
    args = (bad, np.zeros(len(bad))) if method == "score" else (bad,)
    with pytest.raises(InputSchemaError, match=re.escape(
            "UnifiedMLPipeline 'churn': X has duplicated column names ['age']; column names "
            "must be unique (as at fit time).")):
        getattr(pipe, method)(*args)


@settings(max_examples=25, deadline=None)
@given(st.permutations(COLUMNS), st.lists(st.sampled_from(["id", "ts", "x9"]), min_size=1,
                                           max_size=3, unique=True))
def test_extra_columns_refused_by_default_dropped_on_request(order, extras):
    pipe, X = _fitted()
    serving = X[list(order)].copy()
    for i, name in enumerate(extras):
        serving.insert(i % (serving.shape[1] + 1), name, np.arange(len(X)))
    with pytest.raises(InputSchemaError, match=re.escape(
            f"unexpected column(s) {[c for c in serving.columns if c in extras]}. Expected the "
            f"columns {COLUMNS}. To drop columns not seen at fit time, pass "
            "extra_columns='ignore' to the pipeline.")):
        pipe.predict(serving)
    pipe.set_params(extra_columns="ignore")
    np.testing.assert_array_equal(pipe.predict(serving), pipe.predict(X))
    np.testing.assert_array_equal(pipe.transform(serving), pipe.transform(X))


def test_missing_columns_are_refused_even_with_ignore():
    pipe, X = _fitted(extra_columns="ignore")
    with pytest.raises(InputSchemaError, match=re.escape(
            "missing column(s) ['score'] and unexpected column(s) ['id']")):
        pipe.predict(X.drop(columns="score").assign(id=1))


def test_a_wrong_extra_columns_value_names_the_parameter():
    pipe, X = _fitted(extra_columns="drop")
    with pytest.raises(ValueError, match=re.escape(
            "UnifiedMLPipeline 'churn': extra_columns must be one of ['error', 'ignore']; got "
            "'drop'.")):
        pipe.predict(X.assign(id=1))


# -- the dry run's sample ---------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 60), min_size=1, max_size=6), st.integers(1, 120),
       st.integers(0, 2**16))
def test_the_sample_keeps_every_class_and_its_share(sizes, n, seed):
    y = np.repeat([f"class{k}" for k in range(len(sizes))], sizes)  # sorted by the target
    rows = sample_rows(np.zeros((len(y), 1)), y, n, seed)
    assert len(rows) == min(n, len(y)) and len(set(rows)) == len(rows)
    assert list(rows) == sorted(rows)
    picked = y[rows]
    if n >= len(sizes):
        assert set(picked) == set(y)  # every class, as long as n allows one row each
    if n < len(y):
        for k, size in enumerate(sizes):
            share = n * size / len(y)
            assert abs(np.sum(picked == f"class{k}") - share) <= len(sizes) + 1
    np.testing.assert_array_equal(rows, sample_rows(np.zeros((len(y), 1)), y, n, seed))


def test_a_regression_sample_is_seeded_and_not_the_first_rows():
    y = np.arange(500.5, 0, -1.0)
    a = sample_rows(np.zeros((500, 1)), y, 50, 0)
    np.testing.assert_array_equal(a, sample_rows(np.zeros((500, 1)), y, 50, 0))
    assert a.max() > 50


def test_validate_on_a_frame_sorted_by_class():
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(600, 2)), columns=["a", "b"])
    y = pd.Series(np.repeat(["x", "y", "z"], 200))
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())],
                             model=LogisticRegression())
    report = pipe.validate(X, y, n_rows=100)  # the first 100 rows are all 'x'
    assert report.n_rows == 100
    assert not hasattr(pipe, "input_schema_")


# -- errors name the user's pipeline ----------------------------------------------------------
class _Boom(StandardScaler):
    def transform(self, X, copy=None):
        if np.asarray(X)[0, 0] > 1e6:
            raise ValueError("too big")
        return super().transform(X, copy=copy)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("monitored", [False, True])
@pytest.mark.parametrize("rows", [1, 4])
def test_a_stage_error_at_predict_names_the_users_pipeline(fast, monitored, rows):
    from ml_toolbox import PipelineMonitor

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(40, 3)), columns=COLUMNS)
    y = (X["age"] > 0).astype(int)
    pipe = UnifiedMLPipeline(features=[("boom", _Boom())], model=LogisticRegression(),
                             name="churn", fast_inference=fast,
                             monitor=PipelineMonitor() if monitored else None).fit(X, y)
    bad = X.iloc[:rows].copy()
    bad.iloc[0, 0] = 1e9
    with pytest.raises(ValueError, match="too big") as info:
        pipe.predict(bad)
    assert info.value.__notes__ == [
        "[ml_toolbox] raised by stage 'boom' of pipeline 'churn' (its inference_pipeline) "
        "during transform (step 1 of 2, in predict)"]


def test_a_stage_error_at_fit_names_the_users_pipeline():
    X = pd.DataFrame({"age": [1.0, 2e9], "income": [1.0, 2.0], "score": [0.0, 1.0]})
    pipe = UnifiedMLPipeline(features=[("boom", _Boom())], model=LogisticRegression(),
                             name="churn")
    with pytest.raises(ValueError, match="too big") as info:
        pipe.fit(X.iloc[[1, 0]], [0, 1])
    assert info.value.__notes__ == [
        "[ml_toolbox] raised by stage 'boom' of pipeline 'churn' (its feature_pipeline) during "
        "fit_transform (step 1 of 2, in fit)"]
