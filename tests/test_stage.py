"""PipelineStage: wrapping estimators and functions, the run() template method."""

import re

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.preprocessing import StandardScaler

from ml_toolbox import PipelineStage
from ml_toolbox.exceptions import StageDefinitionError

X = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 7.0], [0.0, 1.0]])
y = np.array([0, 1, 1, 0])


def test_fit_clones_and_leaves_the_wrapped_estimator_untouched():
    scaler = StandardScaler()
    stage = PipelineStage(scaler, name="scale").fit(X)
    assert not hasattr(scaler, "mean_")
    assert stage.estimator_ is not scaler
    np.testing.assert_array_equal(stage.transform(X), StandardScaler().fit_transform(X))
    assert stage.n_features_in_ == 2


def test_function_stage_wraps_like_function_transformer():
    stage = PipelineStage(np.log1p)
    assert stage.stage_name == "log1p"
    np.testing.assert_array_equal(stage.fit_transform(X), np.log1p(X))
    stage = PipelineStage(lambda Z, k: Z * k, kw_args={"k": 2})
    assert stage.stage_name == "function"
    np.testing.assert_array_equal(stage.fit(X).transform(X), X * 2)


def test_passthrough_and_default_names():
    assert PipelineStage().fit_transform(X) is not None
    np.testing.assert_array_equal(PipelineStage("passthrough").fit_transform(X), X)
    assert PipelineStage(StandardScaler()).stage_name == "standardscaler"


@pytest.mark.parametrize("mode, expected", [
    ("predict", lambda m: m.predict(X)),
    ("predict_proba", lambda m: m.predict_proba(X)),
    ("decision_function", lambda m: m.decision_function(X)),
])
def test_run_modes_match_the_estimator(mode, expected):
    stage = PipelineStage(LogisticRegression())
    assert stage.run(X, y, mode="fit") is stage
    reference = LogisticRegression().fit(X, y)
    np.testing.assert_array_equal(stage.run(X, mode=mode), expected(reference))
    assert stage.run(X, y, mode="score") == reference.score(X, y)


def test_run_partial_fit_and_partial_fit_transform():
    stage = PipelineStage(SGDClassifier(random_state=0))
    stage.run(X, y, mode="partial_fit", classes=np.array([0, 1]))
    assert hasattr(stage.estimator_, "coef_")
    scaler = PipelineStage(StandardScaler())
    out = scaler.run(X, mode="partial_fit_transform")
    np.testing.assert_array_equal(out, StandardScaler().fit_transform(X))


def test_methods_exist_only_when_the_wrapped_estimator_has_them():
    assert not hasattr(PipelineStage(StandardScaler()), "predict")
    assert not hasattr(PipelineStage(LogisticRegression()), "transform")
    assert hasattr(PipelineStage(LogisticRegression()), "predict_proba")
    assert not hasattr(PipelineStage(LogisticRegression()), "partial_fit")


def test_not_fitted_error_names_the_stage():
    msg = ("This PipelineStage 'scale' is not fitted yet. Call 'fit' with appropriate arguments "
           "before using this estimator.")
    with pytest.raises(NotFittedError, match=re.escape(msg)):
        PipelineStage(StandardScaler(), name="scale").run(X, mode="transform")


def test_unknown_mode_lists_the_modes():
    stage = PipelineStage(StandardScaler(), name="scale").fit(X)
    with pytest.raises(ValueError, match=re.escape("PipelineStage 'scale': unknown mode 'fly'")):
        stage.run(X, mode="fly")


def test_not_an_estimator_nor_callable():
    msg = ("PipelineStage 'bad': expected a scikit-learn estimator (an object with a fit method), "
           "a callable or 'passthrough', got int: 5.")
    with pytest.raises(StageDefinitionError, match=re.escape(msg)):
        PipelineStage(5, name="bad").fit(X)
    assert issubclass(StageDefinitionError, TypeError)


def test_clone_keeps_parameters_not_fitted_state():
    stage = PipelineStage(StandardScaler(with_mean=False), name="s", retry=False,
                          depends_on=["a"], timeout=3.0).fit(X)
    copy = clone(stage)
    assert copy.get_params()["estimator__with_mean"] is False
    assert copy.depends_on == ["a"] and copy.timeout == 3.0 and copy.retry is False
    assert not hasattr(copy, "estimator_")
