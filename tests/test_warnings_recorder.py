"""Warnings recorded for a monitor from many threads at once: each run gets its own warnings,
the process-wide warnings state is as before afterwards, and warnings still reach the user."""

import threading
import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LinearRegression

from ml_toolbox import PipelineMonitor, UnifiedMLPipeline
from ml_toolbox._warnings_recorder import WarningRecorder


class Warns(TransformerMixin, BaseEstimator):
    """Warns once per transform, with the batch's first value in the message."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        warnings.warn(f"odd batch {float(np.asarray(X)[0, 0]):g}", UserWarning)
        return np.asarray(X, dtype=float)


class Quiet(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X, dtype=float)


def _state():
    return (list(warnings.filters), warnings.showwarning, warnings._showwarnmsg_impl)


@pytest.mark.parametrize("stage", [Warns, Quiet])
def test_many_threads_with_a_monitor_leave_the_warnings_state_as_it_was(stage):
    X = np.arange(20.0).reshape(10, 2)
    y = np.arange(10.0)
    monitor = PipelineMonitor(history_size=100_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = UnifiedMLPipeline(features=[("w", stage())], model=LinearRegression(),
                                 monitor=monitor).fit(X, y)
    before = _state()
    errors = []
    n_threads, n_calls = 6, 300

    def work(k):
        try:
            for i in range(n_calls):
                row = np.array([[k * 1000.0 + i, 1.0]])
                pipe.predict(row)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    shown = []
    original = warnings.showwarning
    warnings.showwarning = lambda message, *args, **kwargs: shown.append(str(message))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            saved = _state()
            threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert _state() == saved  # not one filter more, the user's hooks back in place
    finally:
        warnings.showwarning = original
    assert not errors
    assert _state() == before
    runs = monitor.history("inference_pipeline")
    assert len(runs) == n_threads * n_calls
    if stage is Warns:
        # every run recorded exactly its own warning, none of another thread's
        for run in runs:
            ws = run.stage("w").warnings
            assert len(ws) == 1, ws
        values = sorted(float(run.stage("w").warnings[0].rsplit(" ", 1)[1]) for run in runs)
        assert values == sorted(k * 1000.0 + i for k in range(n_threads) for i in range(n_calls))
        assert len(shown) == n_threads * n_calls  # and every one was shown to the user too
    else:
        assert shown == []
    # a warning raised afterwards reaches the user, under the user's filters
    with pytest.warns(UserWarning, match="after the threads"):
        warnings.warn("after the threads", UserWarning)


def test_a_thread_that_records_nothing_keeps_the_users_filters():
    started, release = threading.Event(), threading.Event()
    box = {}

    def recording_thread():
        with WarningRecorder(show=False) as recorder:
            started.set()
            release.wait(10)
            warnings.warn("mine", UserWarning)
            box["caught"] = [str(w.message) for w in recorder.caught]

    t = threading.Thread(target=recording_thread)
    t.start()
    started.wait(10)
    shown = []
    original = warnings.showwarning
    try:
        with warnings.catch_warnings():
            warnings.showwarning = lambda message, *a, **k: shown.append(str(message))
            warnings.filterwarnings("ignore", message="hidden")
            warnings.filterwarnings("error", message="fatal")
            warnings.simplefilter("always", UserWarning, append=True)
            warnings.warn("hidden", UserWarning)      # ignored by the user's filter
            warnings.warn("visible", UserWarning)     # shown
            with pytest.raises(UserWarning, match="fatal"):
                warnings.warn("fatal", UserWarning)   # an error, as the user asked
    finally:
        warnings.showwarning = original
        release.set()
        t.join()
    assert shown == ["visible"]
    assert box["caught"] == ["mine"]


def test_nested_recorders_hand_warnings_outwards():
    with WarningRecorder(show=False) as outer:
        with WarningRecorder() as inner:
            warnings.warn("deep", UserWarning)
            assert [str(w.message) for w in inner.take()] == ["deep"]
        # the inner recorder showed it again when it closed: the outer one has it
        assert [str(w.message) for w in outer.caught] == ["deep"]


def test_a_stage_timeout_thread_reports_to_the_callers_recorder():
    from ml_toolbox.orchestration import call_with_timeout

    with WarningRecorder(show=False) as recorder:
        call_with_timeout(lambda: warnings.warn("in the helper thread", UserWarning), 5.0)
    assert [str(w.message) for w in recorder.caught] == ["in the helper thread"]
