"""The epoch loop: training a model stage over epochs of mini-batch ``partial_fit`` calls.

scikit-learn's incremental learners (``SGDClassifier``, ``SGDRegressor``, ``MLPClassifier``,
``MultinomialNB``, ``Perceptron``, ...) learn through ``partial_fit``, but scikit-learn has no
loop around it: no epochs, no per-epoch metrics, no callbacks. :func:`fit_epochs` is that loop.
:class:`~ml_toolbox.TrainingPipeline` calls it when ``epochs`` is set::

    TrainingPipeline(SGDClassifier(), epochs=20, batch_size=1024, validation=0.2,
                     scoring="accuracy", callbacks=[EarlyStopping("validation_loss", patience=3)]).fit(X, y)

One run::

    callbacks.on_run_start(run)
    for each epoch:
        callbacks.on_epoch_start(epoch, metrics)      # metrics: a new, empty MetricLog
        shuffle (random_state), then partial_fit on each mini-batch -- every call goes through the
            pipeline's execution loop, so the monitor / debugger / retry plug-ins see it;
            the first call gets classes= (np.unique(y) for a classifier)
        metrics: train_loss, train_<scorer>, validation_loss, validation_<scorer> (with validation)
        callbacks.on_epoch_end(epoch, metrics)        # True from any callback stops the run
        tracked metrics -> history (and the monitor)
    callbacks.on_run_end(run)

Epoch and run hooks are always closed (``finally``), also when the model or a callback raises.
"""

from __future__ import annotations

import difflib
import logging
import numbers
import time

import numpy as np
from sklearn.base import is_classifier, is_regressor
from sklearn.metrics import get_scorer, get_scorer_names, hinge_loss, log_loss, mean_squared_error
from sklearn.metrics import check_scoring
from sklearn.utils import check_random_state
from sklearn.utils.validation import _num_samples, check_consistent_length

from ml_toolbox.callbacks import Callback, History, Metric, MetricLog, ProgressBar
from ml_toolbox.runs._current import CURRENT as _current_run
from ml_toolbox._split import _split_params, _take
from ml_toolbox._split import split_validation as _split_validation

__all__ = ["fit_epochs", "TrainingRun", "check_epoch_model"]

logger = logging.getLogger(__name__)


class TrainingRun:
    """One training run, as the callbacks see it.

    The epoch loop (:func:`fit_epochs`) makes one per fit and hands it to the callbacks.

    Parameters
    ----------
    pipeline : TrainingPipeline
        The pipeline being fitted.
    stage : PipelineStage
        The model stage being trained.
    epochs : int
        Epochs asked for.
    params : dict
        What the run is (epochs, batch_size, n_samples, n_batches...).
    directions : dict
        ``"min"`` / ``"max"`` of every metric the loop itself produces.
    history : History
        The record of the epochs.

    Attributes
    ----------
    pipeline : TrainingPipeline
        The pipeline being fitted (its parameters: ``run.pipeline.epochs`` ...).
    stage : PipelineStage
        The model stage being trained (``stage.estimator_`` is the model). A callback may replace
        it with :meth:`restore`.
    epochs : int
        Epochs asked for.
    epoch : int
        The current (or last) epoch, 0-based; -1 before the first.
    model_epoch : int
        The epoch whose model ``stage`` holds (differs from ``epoch`` after :meth:`restore`).
    params : dict
        epochs, batch_size, n_samples (training part), n_val_samples, n_batches, loss, scorers,
        validation.
    directions : dict
        ``"min"`` / ``"max"`` of every metric the loop itself produces.
    metrics : MetricLog
        Run-level metrics (``run.metrics.track(Metric.TEST_SCORE, ...)`` in ``on_run_end``).
    history : History
        The record so far (what becomes the pipeline's ``history_``).
    status : str
        ``"running"``, then ``"success"``, ``"stopped"`` (stopped early) or ``"failed"``.
    error : BaseException or None
        What ended a failed run.
    stop_reason : str or None
        Why the run stopped early.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import SGDClassifier
    >>> from ml_toolbox import Callback, TrainingPipeline
    >>> class TwoEpochs(Callback):
    ...     def on_epoch_end(self, epoch, metrics):
    ...         if epoch == 1:
    ...             metrics.run.stop("two epochs are enough")
    ...     def on_run_end(self, run):
    ...         print(run.status, run.epoch, run.stop_reason, run.params["n_batches"])
    >>> X, y = load_iris(return_X_y=True)
    >>> _ = TrainingPipeline(SGDClassifier(random_state=0), epochs=5, batch_size=50,
    ...                      random_state=0, callbacks=[TwoEpochs()]).fit(X, y)
    stopped 1 two epochs are enough 3
    """

    def __init__(self, pipeline, stage, epochs, params, directions, history):
        self.pipeline = pipeline
        self.stage = stage
        self.epochs = epochs
        self.epoch = -1
        self.model_epoch = -1
        self.params = params
        self.directions = directions
        self.metrics = MetricLog(epoch=None, run=self)
        self.history = history
        self.status = "running"
        self.error = None
        self.stop_reason = None

    def stop(self, reason):
        """Ask the loop to stop after the current epoch.

        Parameters
        ----------
        reason : str
            Why; recorded as ``stop_reason`` (the first reason given is kept).
        """
        if self.stop_reason is None:
            self.stop_reason = reason

    @property
    def stop_requested(self):
        """Whether a callback asked the loop to stop (:meth:`stop`)."""
        return self.stop_reason is not None

    def restore(self, stage, epoch):
        """Make ``stage`` (a fitted copy from epoch ``epoch``) the run's result.

        Parameters
        ----------
        stage : PipelineStage
            The fitted copy (e.g. the best epoch's, kept by an EarlyStopping).
        epoch : int
            The epoch it comes from; becomes ``model_epoch``.
        """
        self.stage = stage
        self.model_epoch = epoch

    def __repr__(self):
        return (f"<TrainingRun {getattr(self.pipeline, 'name', '?')!r} epoch={self.epoch}/"
                f"{self.epochs} status={self.status!r}>")


# -- the one place that runs partial_fit -----------------------------------------------------------
def _partial_fit(pipeline, stage, X, y, params, parent):
    """One ``partial_fit`` of the model stage on one mini-batch, through the execution loop.

    The loop is the pipeline's ``_run_stages``, so the monitor / debugger / retry plug-ins see
    every batch; an object without it (a plain parameter holder) runs the stage directly.
    """
    run_stages = getattr(pipeline, "_run_stages", None)
    if run_stages is None:
        return stage.run(X, y, mode="partial_fit", **params)
    name = getattr(stage, "stage_name", None) or "model"
    return run_stages([stage], X, y, ["partial_fit"], fitting=False, names=[name],
                      parent=parent, params=params, run_mode="partial_fit")


# -- checks (all before any work) -----------------------------------------------------------------
def _owner(pipeline):
    return f"{type(pipeline).__name__} {getattr(pipeline, 'name', '?')!r}"


def _model_of(stage):
    return getattr(stage, "estimator", stage)


def _check_int(owner, name, value, minimum, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        allowed = f"an integer >= {minimum}" + (" or None" if allow_none else "")
        raise ValueError(f"{owner}: {name} must be {allowed}, got {value!r}.")
    return int(value)


def _unknown_scorer(owner, name):
    names = sorted(get_scorer_names())
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
    hint = (f" Did you mean: {', '.join(repr(c) for c in close)}?" if close
            else " See sklearn.metrics.get_scorer_names() for the valid names.")
    return ValueError(f"{owner}: scoring={name!r} is not a scorer scikit-learn knows.{hint}")


def _one_scorer(owner, model, scoring):
    if isinstance(scoring, Metric):
        scoring = scoring.value
    if isinstance(scoring, str):
        try:
            return get_scorer(scoring)
        except ValueError as exc:
            raise _unknown_scorer(owner, scoring) from exc
    if callable(scoring):
        return scoring
    raise TypeError(f"{owner}: scoring must be None, a scorer name, a callable "
                    f"scorer(estimator, X, y), or a list / dict of those; got {scoring!r} "
                    f"({type(scoring).__name__}).")


def _resolve_scoring(owner, pipeline, model, scoring):
    """``{key: scorer}``, named as ``TrainingPipeline.metrics_`` names them.

    None: ``{"score": the model's own score}``; a name: ``{name: ...}``; a callable:
    ``{its __name__: ...}``; a list: one per name; a dict: its keys. A TrainingPipeline resolves
    (and checks) them itself, so metrics read the same with and without epochs.
    """
    scorers = getattr(pipeline, "scorers", None)
    if callable(scorers):
        return scorers(model)
    if scoring is None:
        return {"score": check_scoring(model)}
    if isinstance(scoring, (list, tuple, set)):
        if not scoring:
            raise ValueError(f"{owner}: scoring is an empty {type(scoring).__name__}; "
                             "give at least one scorer or None.")
        return {_scorer_key(s, f"score{i}"): _one_scorer(owner, model, s)
                for i, s in enumerate(scoring)}
    if isinstance(scoring, dict):
        if not scoring:
            raise ValueError(f"{owner}: scoring is an empty dict; give at least one scorer or None.")
        return {str(k): _one_scorer(owner, model, v) for k, v in scoring.items()}
    return {_scorer_key(scoring, "score"): _one_scorer(owner, model, scoring)}


def _scorer_key(scoring, default):
    if isinstance(scoring, str):
        return str(scoring.value if isinstance(scoring, Metric) else scoring)
    return getattr(scoring, "__name__", default)


def _resolve_loss(model):
    """``(name, loss(estimator, X, y))`` the loop measures as ``*_loss``, or ``(None, None)``.

    Classifiers with ``predict_proba``: log loss; other classifiers with ``decision_function``:
    hinge loss; regressors: mean squared error. Others: no loss.
    """
    if is_classifier(model):
        if hasattr(model, "predict_proba"):
            return "log_loss", lambda est, X, y: log_loss(y, est.predict_proba(X),
                                                          labels=est.classes_)
        if hasattr(model, "decision_function"):
            return "hinge_loss", lambda est, X, y: hinge_loss(y, est.decision_function(X),
                                                              labels=est.classes_)
        return None, None
    if is_regressor(model) and hasattr(model, "predict"):
        return "mean_squared_error", lambda est, X, y: mean_squared_error(y, est.predict(X))
    return None, None


def _check_callbacks(owner, callbacks):
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        callbacks = [callbacks]
    try:
        callbacks = list(callbacks)
    except TypeError:
        raise TypeError(f"{owner}: callbacks must be a list of Callback objects, got "
                        f"{callbacks!r} ({type(callbacks).__name__}).") from None
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(f"{owner}: callbacks[{i}] is {cb!r} ({type(cb).__name__}), not a "
                            "ml_toolbox.callbacks.Callback.")
    return callbacks



def check_epoch_model(pipeline, model, epochs):
    """Fail unless ``model`` can be trained over epochs (it needs ``partial_fit``).

    Pipelines call this before any work (before fitting feature stages, before splitting off
    validation data), so a wrong model costs nothing.

    Parameters
    ----------
    pipeline : TrainingPipeline or UnifiedMLPipeline
        The pipeline the error message names.
    model : estimator or PipelineStage
        The model to train.
    epochs : int
        The ``epochs`` asked for, quoted in the message.

    Raises
    ------
    TypeError
        Naming the pipeline and the model.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression, SGDClassifier
    >>> from ml_toolbox import TrainingPipeline
    >>> check_epoch_model(TrainingPipeline(), SGDClassifier(), epochs=5)
    >>> check_epoch_model(TrainingPipeline(), LogisticRegression(), epochs=5)
    Traceback (most recent call last):
    ...
    TypeError: TrainingPipeline 'training_pipeline': epochs=5 trains the model with partial_fit, ...
    """
    model = _model_of(model)
    if not hasattr(model, "partial_fit"):
        raise TypeError(f"{_owner(pipeline)}: epochs={epochs!r} trains the model with partial_fit, "
                        f"but the model {type(model).__name__} has no partial_fit method. Use "
                        "epochs=None to fit it in one call, or a model that learns incrementally "
                        "(for example SGDClassifier, SGDRegressor, MLPClassifier, MultinomialNB).")


# -- closing hooks ---------------------------------------------------------------------------------
def _close_hooks(calls, error):
    """Run every ``(hook, args)``; never let one hook stop the others from running.

    With ``error`` (the run or epoch already failed) a hook's own error becomes a note on it;
    without, the first hook error is raised once all hooks ran. Returns the hooks' results.
    """
    results, first = [], None
    for hook, args in calls:
        try:
            results.append(hook(*args))
        except Exception as exc:  # noqa: BLE001 -- re-raised below or attached as a note
            results.append(None)
            if error is not None:
                error.add_note(f"While closing after this error, {_hook_name(hook)} also raised "
                               f"{type(exc).__name__}: {exc}")
            elif first is None:
                first = exc
    if first is not None:
        raise first
    return results


def _hook_name(hook):
    owner = getattr(hook, "__self__", None)
    return f"{type(owner).__name__}.{hook.__name__}" if owner is not None else repr(hook)


# -- the monitor -----------------------------------------------------------------------------------
def _send_to_monitor(pipeline, log, epoch, epochs=None):
    """Hand the tracked metrics of an epoch (or of the run, epoch None) to the pipeline's monitor,
    and to the tracked run in progress, if any (:mod:`ml_toolbox.runs`)."""
    if epoch is not None and _current_run.get() is not None:
        from ml_toolbox.runs._active import log_epoch

        log_epoch(log.tracked, epoch, epochs)
    monitor = getattr(pipeline, "monitor", None)
    if monitor is None or not getattr(monitor, "enabled", True):
        return
    record = getattr(monitor, "record_metrics", None)
    if record is None or not log.tracked:
        return
    record(getattr(pipeline, "name", "training_pipeline"), log.tracked, step=epoch)


# -- the loop --------------------------------------------------------------------------------------
def fit_epochs(training_pipeline, stage, X, y, *, parent=None, **fit_params):
    """Train ``stage`` (a fresh, unfitted model stage) over epochs of mini-batch ``partial_fit``.

    Called by ``TrainingPipeline.fit`` when ``epochs`` is set; it reads the pipeline's
    ``epochs``, ``batch_size``, ``shuffle``, ``random_state``, ``validation``, ``scoring``,
    ``callbacks``, ``verbose`` and ``monitor``. Nothing is set on the pipeline: the fitted state
    is returned for the caller to commit at once.

    Parameters
    ----------
    training_pipeline : TrainingPipeline
        The pipeline being fitted.
    stage : PipelineStage
        A fresh, unfitted clone of the model stage; its estimator must have ``partial_fit``.
    X, y : array-like
        Training data (the validation part, if any, is split off here).
    parent : RunContext, default=None
        Passed on to the execution loop (the run this fit belongs to).
    **fit_params
        Passed to every ``partial_fit`` call; per-sample arrays (``sample_weight``) are sliced
        with each batch. ``classes`` overrides the classes given to the first call.

    Returns
    -------
    dict
        ``stage_`` (the fitted stage: the last epoch's, or the best epoch's after an
        ``EarlyStopping(restore_best=True)``), ``history_`` (:class:`History`), ``metrics_``
        (run metrics: for each tracked metric ``m`` the value of the kept model's epoch ``m`` and
        the best value ``best_m``, plus the run-level tracked metrics) and ``n_epochs_`` (epochs
        actually run).

    Raises
    ------
    TypeError
        When the model has no ``partial_fit`` (before any work), or a callback is not a Callback.
    ValueError
        For a bad ``epochs`` / ``batch_size`` / ``validation``, a scorer name scikit-learn does not
        know (with close matches), or a monitored metric never produced (end of the first epoch).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import SGDClassifier
    >>> from ml_toolbox import PipelineStage, TrainingPipeline
    >>> X, y = load_iris(return_X_y=True)
    >>> tp = TrainingPipeline(SGDClassifier(random_state=0), epochs=3, random_state=0)
    >>> state = fit_epochs(tp, PipelineStage(SGDClassifier(random_state=0), name="model"), X, y)
    >>> sorted(state), state["n_epochs_"], state["history_"].metric_names
    (['history_', 'metrics_', 'n_epochs_', 'stage_'], 3, ['train_loss', 'train_score'])
    """
    tp = training_pipeline
    owner = _owner(tp)
    model = _model_of(stage)
    epochs = getattr(tp, "epochs", None)
    check_epoch_model(tp, model, epochs)
    epochs = _check_int(owner, "epochs", epochs, 1)
    batch_size = _check_int(owner, "batch_size", getattr(tp, "batch_size", None), 1,
                            allow_none=True)
    shuffle = bool(getattr(tp, "shuffle", True))
    random_state = getattr(tp, "random_state", None)
    verbose = getattr(tp, "verbose", 0) or 0
    scorers = _resolve_scoring(owner, tp, model, getattr(tp, "scoring", None))
    loss_name, loss_fn = _resolve_loss(model)
    callbacks = _check_callbacks(owner, getattr(tp, "callbacks", None))
    if y is None:
        raise ValueError(f"{owner}: epoch training needs y (the targets); got y=None.")
    check_consistent_length(X, y)

    classifier = is_classifier(model)
    fit_params = dict(fit_params)
    classes = fit_params.pop("classes", None)
    if classes is None and classifier:
        classes = np.unique(np.asarray(y))
    if "validation_data" in fit_params:  # TrainingPipeline.fit has split it off already
        validation = fit_params.pop("validation_data")
    else:
        validation = getattr(tp, "validation", None)
    per_sample, constant = _split_params(fit_params, _num_samples(X))
    X_tr, y_tr, per_sample, X_val, y_val = _split_validation(
        owner, validation, X, y, per_sample, classifier, random_state)
    n_train = _num_samples(X_tr)
    bs = n_train if batch_size is None else min(batch_size, n_train)
    n_batches = -(-n_train // bs)

    directions = {}
    names = []
    if loss_fn is not None:
        names.append(("loss", "min"))
    names += [(s, "max") for s in scorers]
    for part in ("train", "validation") if X_val is not None else ("train",):
        for suffix, direction in names:
            directions[f"{part}_{suffix}"] = direction
    params = {"epochs": epochs, "batch_size": batch_size, "n_samples": n_train,
              "n_val_samples": None if X_val is None else _num_samples(X_val),
              "n_batches": n_batches, "shuffle": shuffle, "loss": loss_name,
              "scorers": list(scorers), "validation": X_val is not None}

    history = History()
    hooks = list(callbacks)
    if verbose and not any(isinstance(cb, ProgressBar) for cb in hooks):
        hooks.append(ProgressBar())
    hooks.append(history)  # last: it keeps each epoch's log object, so order does not matter
    run = TrainingRun(tp, stage, epochs, params, directions, history)
    rng = check_random_state(random_state)
    first_params = {**constant, "classes": classes} if classes is not None else constant
    n_done = 0

    started = []
    try:
        for cb in hooks:
            cb.on_run_start(run)
            started.append(cb)
        for epoch in range(epochs):
            run.epoch = epoch
            log = MetricLog(epoch=epoch, run=run)
            epoch_started = []
            t0 = time.perf_counter()
            try:
                for cb in started:
                    cb.on_epoch_start(epoch, log)
                    epoch_started.append(cb)
                order = rng.permutation(n_train) if shuffle else None
                for start in range(0, n_train, bs):
                    idx = (order[start:start + bs] if order is not None
                           else slice(start, start + bs))
                    if order is None and bs == n_train:
                        Xb, yb, batch = X_tr, y_tr, per_sample
                    else:
                        Xb, yb = _take(X_tr, idx), _take(y_tr, idx)
                        batch = {k: _take(v, idx) for k, v in per_sample.items()}
                    call_params = {**(first_params if n_done == 0 and start == 0 else constant),
                                   **batch}
                    _partial_fit(tp, stage, Xb, yb, call_params, parent)
                run.model_epoch = epoch
                _measure(log, stage, loss_fn, scorers, X_tr, y_tr, X_val, y_val)
            except BaseException as exc:
                log.error = exc
                raise
            finally:
                results = _close_hooks([(cb.on_epoch_end, (epoch, log)) for cb in epoch_started],
                                       log.error)
                log.close()
            n_done += 1
            stoppers = [type(cb).__name__ for cb, r in zip(epoch_started, results) if r is True]
            if stoppers and not run.stop_requested:
                run.stop(f"{stoppers[0]}.on_epoch_end returned True at epoch {epoch}")
            _send_to_monitor(tp, log, epoch, epochs)
            if logger.isEnabledFor(logging.INFO):
                logger.info("%s epoch %d/%d (%.3fs): %s", owner, epoch + 1, epochs,
                            time.perf_counter() - t0,
                            ", ".join(f"{k}={v:.6g}" for k, v in log.tracked.items()))
            if run.stop_requested:
                logger.info("%s: stopped after epoch %d: %s", owner, epoch, run.stop_reason)
                break
    except BaseException as exc:
        run.status, run.error = "failed", exc
        raise
    finally:
        if run.status == "running":
            run.status = "stopped" if run.stop_requested else "success"
        _close_hooks([(cb.on_run_end, (run,)) for cb in started], run.error)
        run.metrics.close()

    metrics = {}
    kept = {r["epoch"]: r for r in history.records}.get(run.model_epoch, {})
    for name in history.metric_names:
        if name in kept:
            metrics[name] = kept[name]
        try:
            metrics[f"best_{name}"] = history.best(name)[1]
        except KeyError:  # only NaN values
            pass
    metrics.update(run.metrics.tracked)
    _send_to_monitor(tp, run.metrics, None)
    return {"stage_": run.stage, "history_": history, "metrics_": metrics, "n_epochs_": n_done}


def _fitted(stage):
    return getattr(stage, "estimator_", stage)


def _measure(log, stage, loss_fn, scorers, X_tr, y_tr, X_val, y_val):
    """Put the epoch's standard metrics (train_*, then validation_*) into ``log``."""
    est = _fitted(stage)
    parts = [("train", X_tr, y_tr)]
    if X_val is not None:
        parts.append(("validation", X_val, y_val))
    for part, Xp, yp in parts:
        if loss_fn is not None:
            log.track(f"{part}_loss", loss_fn(est, Xp, yp))
        for suffix, scorer in scorers.items():
            log.track(f"{part}_{suffix}", scorer(est, Xp, yp))
