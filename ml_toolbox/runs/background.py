"""Background executions: a fit or an ``execute`` that returns a handle at once.

``submit(pipe, X, y)`` runs ``pipe.fit(X, y)`` in a worker thread and returns a
:class:`RunFuture` -- a :class:`concurrent.futures.Future` that also knows its run's id, status
and progress, and whose ``cancel()`` is honoured between stages and epochs. With a run store among
the pipeline's trackers, the execution is visible from any other process while it runs
(``ml-toolbox runs active``).
"""

from __future__ import annotations

import concurrent.futures
import os
import threading

from ml_toolbox.runs._active import _PREPARED, ActiveRun, RunCancelled, as_trackers, track

__all__ = ["submit", "RunFuture"]

_EXECUTOR = None
_EXECUTOR_LOCK = threading.Lock()
_MODES = ("fit", "partial_fit", "train", "predict", "predict_proba", "transform", "score")


def _executor():
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = concurrent.futures.ThreadPoolExecutor(
                max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="ml_toolbox-run")
        return _EXECUTOR


class RunFuture(concurrent.futures.Future):
    """The handle of a background execution: a Future, plus the run's id, status and progress.

    Made by :func:`submit`.

    Parameters
    ----------
    run : ActiveRun
        The run the execution records.

    Attributes
    ----------
    run : ActiveRun
        The run (its id is known at once, before the work starts).
    run_id : str
        The run's id.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ml_toolbox import UnifiedMLPipeline
    >>> from ml_toolbox.runs import submit
    >>> future = submit(UnifiedMLPipeline(model=LogisticRegression()), [[0.0], [1.0]] * 5, [0, 1] * 5)
    >>> _ = future.result(timeout=60)
    >>> future.status, len(future.run_id)
    ('success', 32)
    """

    def __init__(self, run):
        super().__init__()
        self.run = run
        self.run_id = run.id

    @property
    def status(self):
        """``"pending"`` (not started), then the run's: running, success, failed, cancelled."""
        if super().cancelled():
            return "cancelled"
        if not self.running() and not self.done():
            return "pending"
        return self.run.status

    @property
    def progress(self):
        """Fraction done (epochs), or None when it cannot be told; 1.0 once it succeeded."""
        return self.run.progress

    def cancel(self):
        """Cancel the execution.

        At once if the work has not started; else at the next stage or epoch boundary (the run ends
        ``"cancelled"`` and ``result()`` raises :class:`RunCancelled`).

        Returns
        -------
        bool
            False only when the execution has already finished.
        """
        if super().cancel():
            self.run.status = "cancelled"
            return True
        if self.done():
            return False
        self.run.cancel()
        return True

    def cancelled(self):
        """Tell whether the execution was cancelled (before it started, or at a boundary).

        Returns
        -------
        bool
            True when cancelled.
        """
        return super().cancelled() or (self.done() and self.run.status == "cancelled")

    def __repr__(self):
        return f"<RunFuture run={self.run_id[:12]} status={self.status!r}>"


def submit(pipeline, X, y=None, *, mode="fit", executor=None, **fit_params):
    """Run ``pipeline.fit(X, y)`` (or ``execute(X, y, mode=...)``) in the background.

    Parameters
    ----------
    pipeline : UnifiedMLPipeline
        Its ``tracking`` trackers record the run (none: the run is only in the handle).
    X : array-like or DataFrame
        The features.
    y : array-like, optional
        The targets.
    mode : str, default="fit"
        ``"fit"`` or ``"partial_fit"`` call that method; any other mode (``"train"``,
        ``"predict"``...) calls ``pipeline.execute(X, y, mode=mode)``.
    executor : concurrent.futures.Executor, optional
        Where to run (default: a shared thread pool).
    **fit_params
        Passed to ``fit``.

    Returns
    -------
    RunFuture
        ``result()`` gives what the method returns (the fitted pipeline, or the ``execute``
        Bunch).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import SGDClassifier
    >>> from ml_toolbox import UnifiedMLPipeline
    >>> from ml_toolbox.runs import submit
    >>> X, y = load_iris(return_X_y=True)
    >>> future = submit(UnifiedMLPipeline(model=SGDClassifier(random_state=0), epochs=3), X, y)
    >>> fitted = future.result(timeout=60)
    >>> future.status, future.progress
    ('success', 1.0)
    """
    if mode not in _MODES:
        raise ValueError(f"submit: unknown mode {mode!r}; expected one of {list(_MODES)}.")
    trackers = as_trackers(getattr(pipeline, "tracking", None),
                           f"{type(pipeline).__name__}.tracking")
    kind = mode if mode in ("fit", "partial_fit") else "execute"
    name = getattr(pipeline, "name", None) or type(pipeline).__name__
    run = ActiveRun(trackers, name=name, kind=kind, tags={"background": "true"})
    future = RunFuture(run)

    def work():
        if not future.set_running_or_notify_cancel():
            return
        token = _PREPARED.set(run)
        try:
            if getattr(pipeline, "tracking", None) is not None and mode in ("fit", "partial_fit",
                                                                            "train"):
                result = _call(pipeline, mode, X, y, fit_params)  # the pipeline's own run
            else:
                with track(pipeline, kind, X, y, trackers=trackers):
                    result = _call(pipeline, mode, X, y, fit_params)
        except BaseException as exc:  # noqa: BLE001 - handed to the future
            future.set_exception(exc)
        else:
            future.set_result(result)
        finally:
            _PREPARED.reset(token)

    (executor or _executor()).submit(work)
    return future


def _call(pipeline, mode, X, y, fit_params):
    if mode == "fit":
        return pipeline.fit(X, y, **fit_params)
    if mode == "partial_fit":
        return pipeline.partial_fit(X, y, **fit_params)
    return pipeline.execute(X, y, mode=mode)


__all__ += ["RunCancelled"]
