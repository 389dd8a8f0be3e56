"""Every public method of ``ml_toolbox.Pipeline``, with and without plug-ins, against scikit-learn.

Two families (issue 16, "everything the toolbox adds still on"):

- over (method x plug-ins x input kind x parameters): the same result (or the same error) as
  ``sklearn.pipeline.Pipeline`` on the same steps; with a monitor, one run of the method recording
  every step in order with its mode; with a debugger, a trace of every step;
- a step that raises, at each position, under each method, with and without plug-ins: the
  exception scikit-learn raises (type and message), with a note naming the pipeline, the step
  (name and position) and the method.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import sklearn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.cluster import KMeans
from sklearn.ensemble import IsolationForest
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline as SkPipeline
from sklearn.preprocessing import MaxAbsScaler, StandardScaler

from ml_toolbox import Pipeline, PipelineDebugger, PipelineMonitor, RetryConfig, RetryHandler

RNG = np.random.default_rng(7)
N = 40
X_NUM = np.abs(RNG.normal(size=(N, 4)))
Y = (X_NUM[:, 0] > X_NUM[:, 1]).astype(int)
WEIGHTS = np.linspace(0.2, 1.0, N)
WORDS = ["cat", "dog", "sat", "ran", "the", "a"]
TEXT = [" ".join(RNG.choice(WORDS, size=4)) for _ in range(N)]

METHODS = ["fit", "fit_transform", "fit_predict", "predict", "predict_proba",
           "predict_log_proba", "decision_function", "transform", "inverse_transform", "score",
           "score_samples"]
PLUGINS = ["none", "monitor", "debugger", "retry", "all"]
KINDS = ["frame", "ndarray", "list", "text", "sparse"]
PARAMS = ["none", "routed_sample_weight", "predict_param"]


class OffsetLogistic(LogisticRegression):
    """A classifier whose prediction methods take a parameter (as ``return_std`` for a GP)."""

    def predict(self, X, offset=0):
        return super().predict(X) + offset

    def predict_proba(self, X, offset=0.0):
        return super().predict_proba(X) + offset

    def predict_log_proba(self, X, offset=0.0):
        return super().predict_log_proba(X) + offset

    def decision_function(self, X, offset=0.0):
        return super().decision_function(X) + offset


def _data(kind):
    if kind == "frame":
        return pd.DataFrame(X_NUM, columns=list("abcd"))
    if kind == "ndarray":
        return X_NUM
    if kind == "list":
        return X_NUM.tolist()
    if kind == "sparse":
        return sp.csr_matrix(X_NUM)
    return TEXT


def _steps(method, kind):
    """Steps for ``method`` on input ``kind``: a first step that takes it, then a final step
    having the method."""
    first = CountVectorizer() if kind == "text" else StandardScaler(with_mean=False)
    if method in ("fit_transform", "transform", "inverse_transform"):
        middle = MaxAbsScaler()
        final = MaxAbsScaler()
        if kind == "text" and method == "inverse_transform":
            return [("first", MaxAbsScaler()), ("second", middle), ("final", final)]
        return [("first", first), ("second", middle), ("final", final)]
    if method == "fit_predict":
        final = KMeans(n_clusters=2, n_init=1, random_state=0)
    elif method == "score_samples":
        final = IsolationForest(n_estimators=5, random_state=0)
    else:
        final = OffsetLogistic()
    return [("first", first), ("second", MaxAbsScaler()), ("final", final)]


def _request(steps, params):
    """Metadata requests for the routed sample_weight case: every step that takes it."""
    if params != "routed_sample_weight":
        return steps
    for _, est in steps:
        for attr in dir(est):
            if attr.startswith("set_") and attr.endswith("_request"):
                try:
                    getattr(est, attr)(sample_weight=True)
                except TypeError:  # this method takes no sample_weight
                    pass
    return steps


def _plugins(config):
    monitor = PipelineMonitor() if config in ("monitor", "all") else None
    debugger = PipelineDebugger(enable_debugging=True) if config in ("debugger", "all") else None
    retry = RetryHandler(RetryConfig(max_retries=1, sleep=lambda s: None)) \
        if config in ("retry", "all") else None
    return {"monitor": monitor, "debugger": debugger, "retry": retry}


def _call(pipe, method, X, params):
    """``(kind, value)``: the method's result, or the error's type and message."""
    fit_kw = {"sample_weight": WEIGHTS} if params == "routed_sample_weight" else {}
    try:
        if method in ("fit", "fit_transform", "fit_predict"):
            out = getattr(pipe, method)(X, Y, **fit_kw)
            return ("ok", pipe.predict_proba(X) if method == "fit" else out)
        pipe.fit(X, Y, **fit_kw)
        if method == "inverse_transform":
            X = pipe.transform(X)
        kwargs = {}
        if params == "predict_param":
            kwargs = {"offset": 1}
        elif params == "routed_sample_weight" and method == "score":
            kwargs = {"sample_weight": WEIGHTS}
        if method == "score":
            return ("ok", pipe.score(X, Y, **kwargs))
        return ("ok", getattr(pipe, method)(X, **kwargs))
    except Exception as error:  # noqa: BLE001 - compared with scikit-learn's
        return ("error", type(error), str(error))


def _equal(ours, theirs):
    assert ours[0] == theirs[0], (ours, theirs)
    if ours[0] == "error":
        assert ours[1:] == theirs[1:]
        return
    a, b = ours[1], theirs[1]
    if isinstance(b, list):  # inverse_transform of a text step: a list of arrays
        assert len(a) == len(b) and all(np.array_equal(x, z) for x, z in zip(a, b))
        return
    if isinstance(b, (Pipeline, SkPipeline)):
        return
    if sp.issparse(b):
        a, b = a.toarray(), b.toarray()
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                               rtol=1e-12, atol=1e-12)


def _expected_modes(method, n):
    if method in ("fit", "fit_transform", "fit_predict"):
        return ["fit_transform"] * (n - 1) + [method]
    if method in ("transform", "inverse_transform"):
        return [method] * n
    return ["transform"] * (n - 1) + [method]


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(method=st.sampled_from(METHODS), config=st.sampled_from(PLUGINS),
       kind=st.sampled_from(KINDS), params=st.sampled_from(PARAMS))
def test_every_method_equals_sklearn_and_runs_through_the_loop(method, config, kind, params):
    steps = _steps(method, kind)
    X = _data(kind) if not (kind == "text" and method == "inverse_transform") else X_NUM
    routing = params == "routed_sample_weight"
    plugins = _plugins(config)
    with sklearn.config_context(enable_metadata_routing=routing):
        theirs = _call(SkPipeline(_request([(n, clone(e)) for n, e in steps], params)), method,
                       X, params)
        pipe = Pipeline(_request([(n, clone(e)) for n, e in steps], params), name="fam",
                        **plugins)
        ours = _call(pipe, method, X, params)
    _equal(ours, theirs)
    if ours[0] != "ok":
        return
    names = [n for n, _ in steps]
    run_mode = method if method != "inverse_transform" else "inverse_transform"
    order = names[::-1] if method == "inverse_transform" else names
    if plugins["monitor"] is not None:
        runs = plugins["monitor"].history("fam", mode=run_mode)
        assert len(runs) == 1, [r.mode for r in plugins["monitor"].history("fam")]
        assert [(s.stage_name, s.mode) for s in runs[0].stages] == \
            list(zip(order, _expected_modes(method, len(names))))
    if plugins["debugger"] is not None:
        trace = plugins["debugger"].get_execution_trace(pipeline="fam")
        seen = [(e.stage, e.mode) for e in trace]
        assert list(zip(order, _expected_modes(method, len(names)))) == \
            [pair for pair in seen if pair[1] in _expected_modes(method, len(names))][-len(names):]


class Boom(TransformerMixin, BaseEstimator):
    """A step that raises in the method named ``where`` (and works in the others)."""

    def __init__(self, where="transform"):
        self.where = where

    def _maybe(self, method):
        if method == self.where:
            raise ArithmeticError(f"boom in {method}")

    def fit(self, X, y=None):
        self._maybe("fit")
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def fit_transform(self, X, y=None):
        self._maybe("fit_transform")
        return self.fit(X, y).transform(X) if self.where != "transform" else np.asarray(X)

    def transform(self, X):
        self._maybe("transform")
        return np.asarray(X, dtype=float)

    def inverse_transform(self, X):
        self._maybe("inverse_transform")
        return np.asarray(X, dtype=float)


class BoomFinal(Boom):
    """A last step with ``fit_predict``, ``predict`` and ``score``, raising in ``where``."""

    def fit_predict(self, X, y=None):
        self._maybe("fit_predict")
        return np.zeros(len(X))

    def predict(self, X):
        self._maybe("predict")
        return np.zeros(len(X))

    def score(self, X, y=None):
        self._maybe("score")
        return 0.5


def _final_with(method_name):
    """A last step raising in ``method_name``, with every prediction method."""

    class Final(BoomFinal):
        pass

    for m in ("predict_proba", "predict_log_proba", "decision_function", "score_samples"):
        def method(self, X, _m=m):
            self._maybe(_m)
            return np.zeros((len(X), 2)) if _m != "score_samples" else np.zeros(len(X))
        setattr(Final, m, method)
    Final.__name__ = "Final"
    return Final(where=method_name)


# the step method that raises, for each pipeline method and position (first, middle, last)
def _raising(method, position, last):
    if method in ("fit", "fit_transform", "fit_predict"):
        if position < last:
            return "fit_transform"
        return {"fit": "fit", "fit_transform": "fit_transform", "fit_predict": "fit_predict"}[
            method]
    if method in ("transform", "inverse_transform"):
        return method
    return "transform" if position < last else method


@pytest.mark.parametrize("config", PLUGINS)
@pytest.mark.parametrize("position", [0, 1, 2])
@pytest.mark.parametrize("method", METHODS)
def test_a_raising_step_keeps_sklearns_error_with_a_note_naming_pipeline_step_and_method(
        method, position, config):
    last = 2
    where = _raising(method, position, last)

    def steps(raise_now):
        out = []
        for i, name in enumerate(["a", "b", "c"]):
            w = where if (raise_now and i == position) else "never"
            out.append((name, _final_with(w) if i == last else Boom(w)))
        return out

    results = []
    for cls, kw in ((SkPipeline, {}), (Pipeline, {"name": "errs", **_plugins(config)})):
        fitting = method in ("fit", "fit_transform", "fit_predict")
        pipe = cls(steps(fitting), **kw)
        if not fitting:
            pipe.fit(X_NUM, Y)
            for i, (name, _) in enumerate(pipe.steps):  # now make the step raise
                pipe.steps[i][1].where = where if i == position else "never"
        args = (X_NUM, Y) if fitting or method == "score" else (X_NUM,)
        with pytest.raises(ArithmeticError) as info:
            getattr(pipe, method)(*args)
        results.append(info.value)
    theirs, ours = results
    assert type(ours) is type(theirs) and str(ours) == str(theirs)
    notes = [n for n in getattr(ours, "__notes__", []) if n.startswith("[ml_toolbox]")]
    name = "abc"[position]
    assert notes == [f"[ml_toolbox] raised by stage {name!r} of pipeline 'errs' during {where} "
                     f"(step {position + 1} of 3, in {method})"]


@pytest.mark.parametrize("monitored", [False, True])
@pytest.mark.parametrize("position", [0, 1, 2])
@pytest.mark.parametrize("method", ["fit", "fit_transform", "predict", "predict_proba",
                                    "decision_function", "score", "transform"])
def test_unified_pipeline_notes_name_the_step_position_and_method(method, position, monitored):
    from ml_toolbox import UnifiedMLPipeline

    fitting = method in ("fit", "fit_transform")
    if method == "transform" and position == 2:
        position = 1  # transform runs the feature stages only
    if method == "fit_transform" and position == 2:
        where = "fit"  # the model is fitted, its output not asked for
    else:
        where = _raising(method if method != "fit_transform" else "fit", position, 2)
    model = _final_with(where if (fitting and position == 2) else "never")
    features = [(n, Boom(where if (fitting and i == position) else "never"))
                for i, n in enumerate(["a", "b"])]
    pipe = UnifiedMLPipeline(features=features, model=model, name="uni",
                             monitor=PipelineMonitor() if monitored else None)
    ref = SkPipeline([*[(n, clone(e)) for n, e in features], ("model", clone(model))])
    if not fitting:
        pipe.fit(X_NUM, Y)
        ref.fit(X_NUM, Y)
        for est in (pipe.steps[position][1], ref.steps[position][1]):
            est.where = where
    args = (X_NUM, Y) if fitting or method == "score" else (X_NUM,)
    with pytest.raises(ArithmeticError) as theirs:
        (ref.fit if method == "fit_transform" else getattr(ref, method))(*args)
    with pytest.raises(ArithmeticError) as ours:
        getattr(pipe, method)(*args)
    assert str(ours.value) == str(theirs.value)
    inner = {"fit": "feature_pipeline" if position < 2 else "training_pipeline",
             "fit_transform": "feature_pipeline" if position < 2 else "training_pipeline",
             "transform": "feature_pipeline"}.get(method, "inference_pipeline")
    assert ours.value.__notes__ == [
        f"[ml_toolbox] raised by stage {['a', 'b', 'model'][position]!r} of pipeline 'uni' "
        f"(its {inner}) during {where} (step {position + 1} of 3, in {method})"]


@pytest.mark.parametrize("kind", ["frame", "ndarray"])
def test_unified_pipeline_score_runs_every_step_through_the_loop(kind):
    from ml_toolbox import UnifiedMLPipeline

    monitor, debugger = PipelineMonitor(), PipelineDebugger(enable_debugging=True)
    X = _data(kind)
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler()), ("maxabs", MaxAbsScaler())],
                             model=LogisticRegression(), monitor=monitor, debugger=debugger,
                             name="uni").fit(X, Y)
    ref = SkPipeline([("scale", StandardScaler()), ("maxabs", MaxAbsScaler()),
                      ("model", LogisticRegression())]).fit(X, Y)
    assert pipe.score(X, Y, sample_weight=WEIGHTS) == ref.score(X, Y, sample_weight=WEIGHTS)
    (run,) = monitor.history(mode="score")
    assert [(s.stage_name, s.mode) for s in run.stages] == [
        ("scale", "transform"), ("maxabs", "transform"), ("model", "score")]
    trace = [(e.stage, e.mode) for e in debugger.get_execution_trace()][-3:]
    assert trace == [("scale", "transform"), ("maxabs", "transform"), ("model", "score")]
