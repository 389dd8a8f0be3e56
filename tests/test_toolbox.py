"""MLToolbox's defaults: the target-kind rule (classification or regression), ``task=``, missing
labels, and what the result and the display say about the choice."""

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge

from ml_toolbox import MLToolbox, UnifiedMLPipeline
from ml_toolbox.toolbox import MAX_CLASSES, infer_task


# -- the rule, over the family of targets -----------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=60),
       st.sampled_from(["list", "array", "series"]))
def test_a_target_with_a_fractional_part_is_regression(values, container):
    if all(float(v).is_integer() for v in values):
        values = [*values[:-1], values[-1] + 0.5]
    y = {"list": list, "array": np.asarray, "series": pd.Series}[container](values)
    assert infer_task(y).task == "regression"


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(2, 400), st.sampled_from(["int64", "float64", "list"]),
       st.randoms(use_true_random=False))
def test_whole_numbers_follow_the_distinct_values_rule(n_distinct, n_rows, kind, rnd):
    n_distinct = min(n_distinct, n_rows)
    values = [rnd.randrange(1000) * 3 for _ in range(n_distinct)]
    values = list(dict.fromkeys(values))
    n_distinct = len(values)
    rows = values + [rnd.choice(values) for _ in range(n_rows - n_distinct)]
    y = rows if kind == "list" else np.asarray(rows, dtype=kind)
    expected = "classification" if n_distinct <= 2 or (
        n_distinct <= MAX_CLASSES and n_distinct <= 0.5 * n_rows) else "regression"
    got = infer_task(y)
    assert got.task == expected, got.reason
    assert got.task in got.reason and str(n_distinct) in got.reason


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "long label", "é"]), min_size=1, max_size=50),
       st.sampled_from(["object", "str", "category", "list"]))
def test_labels_that_are_not_numbers_are_classes(labels, dtype):
    y = labels if dtype == "list" else pd.Series(labels, dtype=dtype)
    assert infer_task(y).task == "classification"


def test_booleans_are_classes():
    assert infer_task(np.array([True, False, True])).task == "classification"
    assert infer_task([True, False, False]).task == "classification"


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_task_wins_over_the_rule(task):
    assert infer_task([1.5, 2.5, 3.5], task=task).task == task
    assert MLToolbox(task=task).choose_task([0, 1, 0]).task == task


def test_a_wrong_task_is_refused():
    with pytest.raises(ValueError, match=re.escape(
            "MLToolbox: task must be one of ['classification', 'regression'] or None")):
        MLToolbox(task="clustering").choose_task([0, 1])


# -- missing labels ---------------------------------------------------------------------------
@pytest.mark.parametrize("y, rows", [
    (["x", "y", None, "x"], "[2]"),
    (pd.Series(["x", np.nan, "y", None]), "[1, 3]"),
    (np.array([1.0, np.nan, 2.0]), "[1]"),
    (pd.Series([1, None, 3], dtype="Int64"), "[1]"),
])
def test_missing_labels_are_refused_naming_how_many_and_where(y, rows):
    n_missing = rows.count(",") + 1
    X = pd.DataFrame({"a": np.arange(len(y), dtype=float)})
    pipe = UnifiedMLPipeline(MLToolbox())
    with pytest.raises(ValueError, match=re.escape(
            f"y has {n_missing} missing value(s) out of {len(y)} rows, at row position(s) "
            f"{rows}")):
        pipe.fit(X, y)
    assert not hasattr(pipe, "input_schema_")  # nothing half-fitted


def test_many_missing_labels_are_listed_up_to_ten():
    y = [None] * 12 + ["a", "b"]
    with pytest.raises(ValueError, match=re.escape("12 missing value(s) out of 14 rows, at row "
                                                   "position(s) [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ...]")):
        infer_task(y)


# -- through the pipeline ---------------------------------------------------------------------
def test_diabetes_is_regression_and_says_so():
    X, y = load_diabetes(return_X_y=True, as_frame=True, scaled=False)
    y = y.astype(float)  # whole numbers held as floats: the case that used to fail
    result = UnifiedMLPipeline(MLToolbox()).execute(X, y, mode="train")
    assert isinstance(result["model"], Ridge)
    assert result["task"] == "regression"
    pipe = result["pipeline"]
    assert pipe.task_ == "regression"
    assert "214 distinct values in 442 rows" in pipe.task_reason_
    from rich.console import Console
    import io

    out = io.StringIO()
    Console(file=out, width=200).print(pipe)
    assert "task: regression (whole numbers with 214 distinct values" in out.getvalue()
    assert "task:" in pipe._repr_html_()


def test_an_integer_regression_target_gets_a_regressor():
    X, y = load_diabetes(return_X_y=True)
    result = UnifiedMLPipeline(MLToolbox()).execute(X, y.astype(int), mode="train")
    assert isinstance(result["model"], Ridge)


def test_iris_is_classification_and_task_can_force_regression():
    X, y = load_iris(return_X_y=True, as_frame=True)
    assert isinstance(UnifiedMLPipeline(MLToolbox()).fit(X, y).training_pipeline.model_,
                      LogisticRegression)
    pipe = UnifiedMLPipeline(MLToolbox(task="regression")).fit(X, y)
    assert isinstance(pipe.training_pipeline.model_, Ridge)
    assert (pipe.task_, pipe.task_reason_) == ("regression", "task='regression' was given")


def test_the_task_of_a_model_given_is_what_the_model_is():
    X, y = load_iris(return_X_y=True)
    assert UnifiedMLPipeline(model=LogisticRegression(max_iter=500)).fit(X, y).task_ == \
        "classification"
    assert UnifiedMLPipeline(model=Ridge()).fit(X, y).task_ == "regression"
    assert UnifiedMLPipeline(model="passthrough").fit(X, y).task_ is None


def test_a_2d_class_target_gets_a_multioutput_classifier():
    X = np.arange(40.0).reshape(20, 2)
    y = np.column_stack([np.arange(20) % 2, np.arange(20) % 3])
    model = MLToolbox().default_model(y)
    assert type(model).__name__ == "MultiOutputClassifier"
    assert UnifiedMLPipeline(MLToolbox()).fit(X, y).predict(X).shape == (20, 2)
