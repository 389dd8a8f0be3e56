"""The serving path of InferencePipeline / UnifiedMLPipeline: its descriptor and its gate.

``ml_toolbox.inference.available_if`` is scikit-learn's ``available_if`` with a cheaper access;
these tests hold it to behaving exactly as scikit-learn's does (hasattr, the AttributeError and its
cause, docstrings, class access, pickling, clone), and check that what a user sets on a fitted
pipeline (a stage's timeout or retry, plug-ins, the fast switch, batch_size) still takes effect on
the next call.
"""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils._available_if import _AvailableIfDescriptor
from sklearn.utils.metaestimators import available_if as sk_available_if

from ml_toolbox import InferencePipeline, PipelineMonitor, UnifiedMLPipeline
from ml_toolbox.inference import available_if
from ml_toolbox.plugins import PipelinePlugin


def _checks():
    def yes(self):
        return True

    def no(self):
        return False

    def raises(self):
        raise ValueError("no model here")

    def attribute_error(self):
        return getattr(object(), "missing")

    return {"yes": yes, "no": no, "raises": raises, "attribute_error": attribute_error}


def _pair(check):
    class Sk:
        @sk_available_if(check)
        def predict(self, X):
            """Predict it."""
            return ("sk", X)

    class Ours:
        @available_if(check)
        def predict(self, X):
            """Predict it."""
            return ("ours", X)

    Ours.__name__ = Ours.__qualname__ = "Sk"  # the same owner name in both messages
    return Sk, Ours


def _outcome(obj):
    try:
        method = obj.predict
    except AttributeError as error:
        cause = error.__cause__
        return ("AttributeError", str(error), type(cause), str(cause) if cause else None)
    return ("method", method(1)[1], method.__self__ is obj, method.__name__, method.__doc__)


@pytest.mark.parametrize("kind", list(_checks()))
def test_descriptor_behaves_as_scikit_learns(kind):
    Sk, Ours = _pair(_checks()[kind])
    sk, ours = Sk(), Ours()
    assert _outcome(ours) == _outcome(sk)
    assert hasattr(ours, "predict") == hasattr(sk, "predict") == (kind == "yes")
    assert isinstance(Ours.__dict__["predict"], _AvailableIfDescriptor)
    # class access: the wrapped function's name and docstring, usable unbound
    assert (Ours.predict.__name__, Ours.predict.__doc__) == (Sk.predict.__name__, Sk.predict.__doc__)
    if kind == "yes":
        assert Ours.predict(ours, 2) == ("ours", 2)
    else:
        with pytest.raises(AttributeError) as theirs:
            Sk.predict(sk, 2)
        with pytest.raises(AttributeError) as mine:
            Ours.predict(ours, 2)
        assert str(mine.value) == str(theirs.value)


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=list("abcd"))
    X = X.mask(rng.random(X.shape) < 0.05)
    y = (X["a"].fillna(0) > 0).astype(int).to_numpy()
    return X, y


def _unified(model=None):
    X, y = _data()
    model = LogisticRegression() if model is None else model
    return UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("scale", StandardScaler())],
                             model=model).fit(X, y), X, y


def test_pipelines_missing_methods_fail_as_with_scikit_learns_descriptor():
    pipe, X, y = _unified(LinearRegression())
    for method in ("predict_proba", "predict_log_proba", "decision_function"):
        assert not hasattr(pipe, method)
        with pytest.raises(AttributeError, match=f"This 'UnifiedMLPipeline' has no attribute "
                                                 f"'{method}'") as info:
            getattr(pipe, method)
        assert isinstance(info.value.__cause__, AttributeError)  # the model's own, chained
        assert not hasattr(pipe.inference_pipeline, method)
    assert hasattr(pipe, "predict") and hasattr(pipe.inference_pipeline, "predict")
    features_only = UnifiedMLPipeline(features=[("scale", StandardScaler())],
                                      model="passthrough").fit(X)
    with pytest.raises(AttributeError, match="has no attribute 'predict'") as info:
        features_only.predict(X)
    assert "model='passthrough'" in str(info.value.__cause__)
    ip = InferencePipeline(features_only.feature_pipeline).fit(X)
    with pytest.raises(AttributeError, match="has no attribute 'predict'") as info:
        ip.predict(X)
    assert "has no model stage" in str(info.value.__cause__)


def test_serving_methods_survive_pickle_and_clone():
    pipe, X, y = _unified()
    row = X.iloc[[3]]
    expected = pipe.predict_proba(row)
    loaded = pickle.loads(pickle.dumps(pipe))
    assert np.array_equal(loaded.predict_proba(row), expected)
    bound = pickle.loads(pickle.dumps(pipe.predict_proba))  # a bound method pickles by name
    assert np.array_equal(bound(row), expected)
    ip = pickle.loads(pickle.dumps(pipe.inference_pipeline))
    assert np.array_equal(ip.predict_proba(row), expected)
    unfitted = clone(pipe)
    assert hasattr(unfitted, "predict_proba")  # the given model says, before fit
    assert not hasattr(clone(UnifiedMLPipeline(model=LinearRegression())), "predict_proba")
    assert UnifiedMLPipeline.predict.__doc__.startswith("Predict ``X``, checked against")
    assert InferencePipeline.predict_proba.__doc__.startswith("Return the class probabilities for ``X``.")


class _Count(PipelinePlugin):
    def __init__(self):
        self.stages = 0

    def after_stage(self, ctx):
        self.stages += 1


def test_what_is_set_on_a_fitted_pipeline_applies_on_the_next_call(monkeypatch):
    pipe, X, y = _unified()
    row = X.iloc[[3]]
    expected = pipe.predict(row)
    ip = pipe.inference_pipeline
    plan = ip.fast_plan_
    calls = []  # how each call entered the plan: ("whole", method) or ("run", batch_size)
    whole, run = plan._run_whole, plan.run
    monkeypatch.setattr(plan, "_run_whole",
                        lambda *a: calls.append(("whole", a[1])) or whole(*a))
    monkeypatch.setattr(plan, "run",
                        lambda *a, **k: calls.append(("run", k.get("batch_size"))) or run(*a, **k))
    direct = [("whole", "predict")]
    assert np.array_equal(pipe.predict(row), expected) and calls == direct
    assert np.array_equal(ip.predict(row), expected) and calls == direct * 2

    def off_then_on(set_it, unset_it, parent_only=False, when_set=()):
        calls.clear()
        set_it()
        assert np.array_equal(pipe.predict(row), expected)
        assert calls == list(when_set)
        calls.clear()
        assert np.array_equal(ip.predict(row), expected)  # on its own: without pipe's plug-ins
        assert calls == (direct if parent_only else list(when_set))
        calls.clear()
        unset_it()
        assert np.array_equal(pipe.predict(row), expected) and calls == direct

    stage = ip.stages_[0]
    off_then_on(lambda: setattr(stage, "timeout", 5.0), lambda: setattr(stage, "timeout", None))
    off_then_on(lambda: setattr(pipe, "fast_inference", False),
                lambda: setattr(pipe, "fast_inference", True))
    off_then_on(lambda: setattr(ip, "batch_size", 10), lambda: setattr(ip, "batch_size", None),
                when_set=[("run", 10), ("whole", "predict")])  # through run's batch checks
    ip.batch_size = 0
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        pipe.predict(row)
    ip.batch_size = None
    counter = _Count()  # a plug-in: the plan runs stage by stage, the hooks see every stage
    off_then_on(lambda: setattr(pipe, "monitor", counter), lambda: setattr(pipe, "monitor", None),
                parent_only=True)
    assert counter.stages == 3
    off_then_on(lambda: setattr(ip, "debugger", _Count()), lambda: setattr(ip, "debugger", None))
    monitor = PipelineMonitor()
    off_then_on(lambda: setattr(ip, "monitor", monitor), lambda: setattr(ip, "monitor", None))
    assert len(monitor.history()) == 2


def test_a_wrong_retry_value_set_after_fit_meets_its_error():
    pipe, X, y = _unified()
    row = X.iloc[[3]]
    pipe.retry = "three times"
    with pytest.raises(TypeError):
        pipe.predict(row)
    pipe.retry = None
    pipe.predict(row)
    ip = pipe.inference_pipeline
    ip.retry_handler = 3
    with pytest.raises(TypeError):
        ip.predict(row)
    ip.enable_retry = False  # retry off: the value is not even read
    assert np.array_equal(ip.predict(row), pipe.predict(row))
