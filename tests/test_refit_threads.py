"""A refit publishes the fitted state in one swap: predictions made meanwhile in other threads
answer with the old model or the new one, never a mix of the two."""

import sys
import threading

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

from ml_toolbox import PipelineMonitor, UnifiedMLPipeline


def _data(seed, n=200):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(loc=3 * seed, scale=1 + seed, size=(n, 3)),
                     columns=["a", "b", "c"])
    y = X["a"] * (1 - 2 * seed) + X["b"] * seed + rng.normal(scale=0.1, size=n)
    return X, y


@pytest.mark.parametrize("monitored, rows, fast", [(False, 1, True), (True, 1, True),
                                                   (False, 5, True), (True, 5, False)])
@pytest.mark.parametrize("kind", ["regression", "classification"])
def test_concurrent_predicts_see_the_old_or_the_new_model(monitored, kind, rows, fast):
    datasets = [_data(0), _data(1)]
    if kind == "classification":
        datasets = [(X, (y > y.median()).astype(int)) for X, y in datasets]
    model = Ridge() if kind == "regression" else LogisticRegression()
    method = "predict" if kind == "regression" else "predict_proba"

    def make():
        return UnifiedMLPipeline(features=[("scale", StandardScaler())], model=model,
                                 fast_inference=fast,
                                 monitor=PipelineMonitor(history_size=10) if monitored else None)

    X_test = pd.DataFrame(np.random.default_rng(7).normal(size=(rows, 3)) * 2,
                          columns=["a", "b", "c"])
    expected = [getattr(make().fit(X, y), method)(X_test) for X, y in datasets]
    assert not np.allclose(expected[0], expected[1])
    pipe = make().fit(*datasets[0])
    stop = threading.Event()
    answers, errors = [], []

    def reader():
        try:
            while not stop.is_set():
                answers.append(getattr(pipe, method)(X_test))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: many interleavings in few fits
    for t in threads:
        t.start()
    try:
        for i in range(12):
            pipe.fit(*datasets[(i + 1) % 2])
    finally:
        stop.set()
        for t in threads:
            t.join()
        sys.setswitchinterval(interval)
    assert not errors
    assert len(answers) > 0
    mixed = [a for a in answers
             if not (np.array_equal(a, expected[0]) or np.array_equal(a, expected[1]))]
    assert mixed == []


def test_a_predict_in_the_middle_of_a_refit_answers_with_the_old_model():
    """The refit's last step, the fast plan's build, is where a reader used to find the new
    stages beside the old plan: a predict made right there answers with the old model."""
    import ml_toolbox.inference as inference

    X0, y0 = _data(0)
    X1, y1 = _data(1)
    X_test = X0.iloc[:3]
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())], model=Ridge()).fit(X0, y0)
    old = pipe.predict(X_test)
    new = UnifiedMLPipeline(features=[("scale", StandardScaler())], model=Ridge()).fit(
        X1, y1).predict(X_test)
    seen = []
    build_plan = inference.build_plan

    def build_and_look(*args, **kwargs):
        plan = build_plan(*args, **kwargs)
        for fast in (True, False):
            pipe.fast_inference = fast
            seen.append(pipe.predict(X_test))
        pipe.fast_inference = True
        return plan

    inference.build_plan = build_and_look
    try:
        pipe.fit(X1, y1)
    finally:
        inference.build_plan = build_plan
    assert len(seen) == 2
    for answer in seen:
        np.testing.assert_array_equal(answer, old)
    np.testing.assert_array_equal(pipe.predict(X_test), new)
