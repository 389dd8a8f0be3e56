"""Training callbacks: hooks into the epoch loop of :class:`~ml_toolbox.TrainingPipeline`.

A callback subclasses :class:`Callback` and overrides only the hooks it needs; the epoch loop
(:func:`ml_toolbox.lifecycle.fit_epochs`) calls them in the order they were given::

    on_run_start(run)
        on_epoch_start(epoch, metrics)     # metrics: a fresh, empty MetricLog for this epoch
        ... one epoch of partial_fit over mini-batches, then the epoch's scores ...
        on_epoch_end(epoch, metrics)       # return True to stop training after this epoch
    on_run_end(run)

Hooks are always closed: ``on_epoch_end`` runs even when the model or a callback raised during the
epoch (``metrics.error`` then holds the error), and ``on_run_end`` runs whatever happened
(``run.status`` is ``"success"``, ``"stopped"`` or ``"failed"``).

Shipped callbacks: :class:`EarlyStopping`, :class:`ModelCheckpoint`, :class:`History` (always
recorded as the pipeline's ``history_``; ``plot()`` draws the learning curves) and
:class:`ProgressBar`. :class:`Metric` names the standard metrics; :class:`MetricLog` is the object
the hooks receive, with ``track(name, value)`` (tracked: kept in the history, sent to the monitor)
and ``note(name, value)`` (untracked: seen by the other callbacks of this epoch only).
"""

from __future__ import annotations

import copy
import difflib
import inspect
import logging
import math
import numbers
import os
from collections.abc import Mapping
from enum import Enum

from ml_toolbox._docstrings import inherit_docstrings
from ml_toolbox.progress import is_watching

__all__ = ["Metric", "MetricLog", "Callback", "EarlyStopping", "ModelCheckpoint", "History",
           "ProgressBar", "metric_direction"]

logger = logging.getLogger(__name__)


class Metric(str, Enum):
    """The standard metric names, usable wherever a metric name is.

    Members are strings (``Metric.VAL_LOSS == "validation_loss"``), so
    ``EarlyStopping(monitor=Metric.VAL_LOSS)`` and ``EarlyStopping(monitor="validation_loss")`` are
    the same thing, and ``history["validation_loss"]`` finds what was recorded under
    ``Metric.VAL_LOSS``.

    ``train_*`` are measured on the training part, ``validation_*`` on the validation part (see
    ``TrainingPipeline(validation=...)``), ``test_*`` are for held-out test figures a user records
    (for example with ``run.metrics.track(Metric.TEST_SCORE, ...)`` in ``on_run_end``).
    ``*_score`` is the model's own ``score`` (``scoring=None``); a named scorer gives
    ``train_<name>`` / ``validation_<name>`` instead (``scoring="accuracy"``: ``train_accuracy``),
    as in ``TrainingPipeline.metrics_``.

    Parameters
    ----------
    value : str
        ``Metric(value)`` looks the member up by its value.

    Examples
    --------
    >>> from ml_toolbox.callbacks import Metric
    >>> Metric.VAL_LOSS == "validation_loss", str(Metric.TRAIN_SCORE)
    (True, 'train_score')
    >>> Metric("validation_score") is Metric.VALIDATION_SCORE
    True
    """

    TRAIN_LOSS = "train_loss"
    TRAIN_SCORE = "train_score"
    VAL_LOSS = "validation_loss"
    VAL_SCORE = "validation_score"
    TEST_LOSS = "test_loss"
    TEST_SCORE = "test_score"
    # long-form aliases (the same members)
    VALIDATION_LOSS = "validation_loss"
    VALIDATION_SCORE = "validation_score"

    def __str__(self):
        return self.value

    def __format__(self, spec):
        return format(self.value, spec)


# inspect.signature (help(), numpydoc) shows how a member is looked up -- Metric(value) -- rather
# than Enum's functional API (names, module, qualname, type, start, boundary), as RetryStrategy.
Metric.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [inspect.Parameter("value", inspect.Parameter.POSITIONAL_OR_KEYWORD)])


def _name(name):
    """A metric name as a plain ``str`` (``Metric`` members give their value)."""
    if isinstance(name, Metric):
        return name.value
    if not isinstance(name, str):
        raise TypeError(f"A metric name must be a str or a Metric, got {name!r} "
                        f"({type(name).__name__}).")
    return name


def metric_direction(name, known=None):
    """Say whether a higher or a lower value of metric ``name`` is better.

    Names ``known`` does not settle follow a rule: names containing ``loss`` or ``error`` (but not
    starting with ``neg_`` after the ``train_`` / ``validation_`` / ``test_`` prefix) are
    minimised, everything else is maximised.

    Parameters
    ----------
    name : str or Metric
        The metric's name.
    known : dict of str to {"min", "max"}, default=None
        Names whose direction is known for sure (the loop's own losses and scorers).

    Returns
    -------
    {"min", "max"}
        ``"max"`` if a higher value is better, else ``"min"``.

    Examples
    --------
    >>> metric_direction("validation_loss"), metric_direction("validation_accuracy")
    ('min', 'max')
    >>> metric_direction("validation_neg_log_loss"), metric_direction("mean_abs_error")
    ('max', 'min')
    """
    name = _name(name)
    if known and name in known:
        return known[name]
    bare = name
    for prefix in ("train_", "validation_", "val_", "test_"):
        if bare.startswith(prefix):
            bare = bare[len(prefix):]
            break
    if bare.startswith("neg_"):
        return "max"
    if "loss" in bare or "error" in bare:
        return "min"
    return "max"


class MetricLog(Mapping):
    """The metrics of one epoch (or of the whole run), as the callbacks see them.

    A read-only mapping of every value recorded so far -- tracked and untracked -- plus:

    - ``track(name, value)`` (or ``log[name] = value``, the seeds' ``epoch_metrics[...] = ...``):
      a *tracked* metric, a number, kept in the history and sent to the monitor;
    - ``note(name, value)``: an *untracked* value of any kind, seen by the callbacks of this epoch
      only (debug figures, intermediate state).

    A new, empty log is made for every epoch, so epoch ``k`` holds only what epoch ``k`` set. Once
    the epoch has ended the log is closed: writing to it raises ``RuntimeError``.

    Parameters
    ----------
    epoch : int, default=None
        The epoch (0-based); None for the run-level log.
    run : TrainingRun, default=None
        The training run this log belongs to.

    Attributes
    ----------
    epoch : int or None
        The epoch (0-based), or None for the run-level log.
    run : TrainingRun or None
        The training run this log belongs to (``run.stage`` is the stage being trained).
    error : BaseException or None
        Set when the epoch failed (the model or a callback raised); ``on_epoch_end`` still runs.
    tracked : dict
        A copy of the tracked metrics.
    untracked : dict
        A copy of the untracked values.

    Examples
    --------
    >>> from ml_toolbox.callbacks import Metric, MetricLog
    >>> log = MetricLog(epoch=0)
    >>> log.track(Metric.TRAIN_LOSS, 0.5)
    >>> log.note("grad_norm", 12.0)
    >>> log["train_loss"], log.tracked, log.untracked
    (0.5, {'train_loss': 0.5}, {'grad_norm': 12.0})
    """

    __slots__ = ("epoch", "run", "error", "_tracked", "_untracked", "_closed")

    def __init__(self, epoch=None, run=None):
        self.epoch = epoch
        self.run = run
        self.error = None
        self._tracked = {}
        self._untracked = {}
        self._closed = False

    # -- writing ---------------------------------------------------------------------------
    def _check_open(self, name):
        if self._closed:
            when = "the run" if self.epoch is None else f"epoch {self.epoch}"
            raise RuntimeError(f"Cannot record metric {name!r}: {when} has ended and its metrics "
                               "can no longer change.")

    def track(self, name, value):
        """Record a tracked metric: a real number, kept in the history and sent to the monitor.

        Parameters
        ----------
        name : str or Metric
            The metric's name.
        value : float
            A real number (a bool is refused).

        Raises
        ------
        TypeError
            ``value`` is not a real number (the message points to :meth:`note`).
        RuntimeError
            The log is closed: its epoch has ended.
        """
        name = _name(name)
        self._check_open(name)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"Tracked metric {name!r} must be a real number, got {value!r} "
                            f"({type(value).__name__}); use note() for other values.")
        self._untracked.pop(name, None)
        self._tracked[name] = float(value)

    def note(self, name, value):
        """Record an untracked value (any object), seen by the callbacks of this epoch only.

        Parameters
        ----------
        name : str or Metric
            The metric's name.
        value : object
            Anything.

        Raises
        ------
        RuntimeError
            The log is closed: its epoch has ended.
        """
        name = _name(name)
        self._check_open(name)
        self._tracked.pop(name, None)
        self._untracked[name] = value

    def __setitem__(self, name, value):
        self.track(name, value)

    def close(self):
        """End the log: later writes raise ``RuntimeError`` (the loop calls this).

        The log lets go of its run, so a log kept after training does not keep the model, the
        pipeline and the callbacks alive (or drag them into a pickle).
        """
        self._closed = True
        self.run = None

    # -- reading ---------------------------------------------------------------------------
    @property
    def failed(self):
        """True when the epoch failed (``error`` is set)."""
        return self.error is not None

    @property
    def tracked(self):
        """A copy of the tracked metrics (a dict)."""
        return dict(self._tracked)

    @property
    def untracked(self):
        """A copy of the untracked values (a dict)."""
        return dict(self._untracked)

    def __getitem__(self, name):
        name = _name(name)
        if name in self._tracked:
            return self._tracked[name]
        return self._untracked[name]

    def __iter__(self):
        yield from self._tracked
        yield from self._untracked

    def __len__(self):
        return len(self._tracked) + len(self._untracked)

    def __contains__(self, name):
        try:
            name = _name(name)
        except TypeError:
            return False
        return name in self._tracked or name in self._untracked

    def __repr__(self):
        where = "run" if self.epoch is None else f"epoch={self.epoch}"
        return f"MetricLog({where}, tracked={self._tracked!r}, untracked={self._untracked!r})"


_HOOKS = ("on_run_start", "on_epoch_start", "on_epoch_end", "on_run_end")


class Callback:
    """Base class of training callbacks: every hook is a no-op.

    Override the hooks you need. ``run`` is the :class:`~ml_toolbox.lifecycle.TrainingRun`
    (``run.stage`` the stage being trained, ``run.pipeline`` the TrainingPipeline, ``run.metrics``
    the run-level :class:`MetricLog`, ``run.history`` the :class:`History` so far). ``metrics`` is
    the epoch's :class:`MetricLog`.

    A callback keeps state between hooks (counters, best values); ``on_run_start`` is where it
    resets, so one callback object can serve several fits in a row.

    Examples
    --------
    >>> from ml_toolbox.callbacks import Callback
    >>> class StopAt(Callback):
    ...     def __init__(self, score):
    ...         self.score = score
    ...     def on_epoch_end(self, epoch, metrics):
    ...         return metrics.get("train_score", 0.0) >= self.score   # True stops training
    """

    def __init_subclass__(cls, **kwargs):
        """Give a hook a subclass overrides without a docstring the contract's docstring."""
        super().__init_subclass__(**kwargs)
        inherit_docstrings(cls, _HOOKS)

    def on_run_start(self, run):
        """Training starts (before the first epoch).

        Parameters
        ----------
        run : TrainingRun
            The run: ``run.stage``, ``run.pipeline``, ``run.metrics``, ``run.history``,
            ``run.params``.
        """

    def on_epoch_start(self, epoch, metrics):
        """Epoch ``epoch`` starts; ``metrics`` is its new, empty log.

        Parameters
        ----------
        epoch : int
            The epoch, 0-based.
        metrics : MetricLog
            The epoch's log: ``metrics.track(name, value)`` records a metric.
        """

    def on_epoch_end(self, epoch, metrics):
        """Epoch ``epoch`` ended; return True to stop training after it.

        Called even when the epoch failed (``metrics.failed``); the return value is then ignored.

        Parameters
        ----------
        epoch : int
            The epoch, 0-based.
        metrics : MetricLog
            The epoch's log: ``metrics.track(name, value)`` records a metric.

        Returns
        -------
        bool
            True stops training after this epoch.
        """
        return False

    def on_run_end(self, run):
        """Training ended (``run.status``: ``"success"``, ``"stopped"`` or ``"failed"``).

        Parameters
        ----------
        run : TrainingRun
            The run: ``run.stage``, ``run.pipeline``, ``run.metrics``, ``run.history``,
            ``run.params``.
        """

    def __repr__(self):
        params = getattr(self, "_repr_params", ())
        args = ", ".join(f"{p}={getattr(self, p)!r}" for p in params)
        return f"{type(self).__name__}({args})"


def _check_mode(owner, mode):
    if mode not in ("min", "max", "auto"):
        raise ValueError(f"{owner}: mode must be 'min', 'max' or 'auto', got {mode!r}.")
    return mode


def _improved(value, best, direction, min_delta):
    if best is None:
        return True
    if direction == "min":
        return value < best - min_delta
    return value > best + min_delta


def _missing_metric(owner, name, epoch, metrics):
    names = sorted(metrics.tracked) + sorted(metrics.untracked)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    if name.startswith("val") and not any(n.startswith("validation_") for n in names):
        hint += (" validation_* metrics need a validation set: "
                 "TrainingPipeline(validation=0.2 or (X_val, y_val)).")
    return ValueError(f"{owner}: monitored metric {name!r} was not produced in epoch {epoch}. "
                      f"Metrics produced: {names}.{hint}")


class EarlyStopping(Callback):
    """Stop training when a monitored metric has stopped improving; restore the best epoch.

    Parameters
    ----------
    monitor : str or Metric, default="validation_loss"
        The metric to watch. If no epoch produces it, training fails at the end of the first epoch
        with the list of metrics that exist.
    mode : {"auto", "min", "max"}, default="auto"
        Whether lower or higher is better. ``"auto"`` knows the loop's own losses (min) and scores
        (max) and guesses for other names (``*loss*`` / ``*error*`` are minimised).
    patience : int, default=5
        Stop after this many epochs in a row without improvement (as Keras counts: 0 stops at
        the first epoch that does not improve).
    min_delta : float, default=0.0
        The smallest change that counts as an improvement.
    restore_best : bool, default=True
        At the end of the run, put back the model as it was after the best epoch (a deep copy of
        the fitted stage is kept at each improvement), so the fitted pipeline scores exactly the
        best value recorded.

    Attributes
    ----------
    best_ : float or None
        The best value seen.
    best_epoch_ : int or None
        The epoch that produced it.
    stopped_epoch_ : int or None
        The epoch after which training stopped, or None if it ran to the end.
    restored_ : bool
        Whether the best epoch's model was restored.

    Examples
    --------
    >>> from ml_toolbox.callbacks import EarlyStopping
    >>> EarlyStopping(monitor="validation_score", patience=3)
    EarlyStopping(monitor='validation_score', mode='auto', patience=3, min_delta=0.0, restore_best=True)
    """

    _repr_params = ("monitor", "mode", "patience", "min_delta", "restore_best")

    def __init__(self, monitor="validation_loss", mode="auto", patience=5, min_delta=0.0,
                 restore_best=True):
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best = restore_best

    def _owner(self):
        return f"EarlyStopping(monitor={_name(self.monitor)!r})"

    def on_run_start(self, run):
        _check_mode(self._owner(), self.mode)
        if not isinstance(self.patience, numbers.Integral) or self.patience < 0:
            raise ValueError(f"{self._owner()}: patience must be an integer >= 0, "
                             f"got {self.patience!r}.")
        if not isinstance(self.min_delta, numbers.Real) or self.min_delta < 0:
            raise ValueError(f"{self._owner()}: min_delta must be a number >= 0, "
                             f"got {self.min_delta!r}.")
        self._run = run
        self.best_ = None
        self.best_epoch_ = None
        self.stopped_epoch_ = None
        self.restored_ = False
        self._best_stage = None
        self._wait = 0

    def on_epoch_end(self, epoch, metrics):
        if metrics.failed:
            return False
        name = _name(self.monitor)
        if name not in metrics:
            raise _missing_metric(self._owner(), name, epoch, metrics)
        value = metrics[name]
        direction = (self.mode if self.mode != "auto"
                     else metric_direction(name, getattr(self._run, "directions", None)))
        if isinstance(value, float) and math.isnan(value):
            improved = False
        else:
            improved = _improved(value, self.best_, direction, self.min_delta)
        if improved:
            self.best_, self.best_epoch_, self._wait = value, epoch, 0
            if self.restore_best:
                self._best_stage = copy.deepcopy(self._run.stage)
            return False
        self._wait += 1
        if self._wait >= self.patience:
            self.stopped_epoch_ = epoch
            self._run.stop(f"{self._owner()}: no improvement for {self._wait} epochs "
                           f"(best {self.best_:.6g} at epoch {self.best_epoch_})")
            return True
        return False

    def on_run_end(self, run):
        if (self.restore_best and run.status != "failed" and self._best_stage is not None
                and self.best_epoch_ != run.model_epoch):
            run.restore(self._best_stage, self.best_epoch_)
            self.restored_ = True
            logger.info("%s: restored the model of epoch %d (%s=%.6g)", self._owner(),
                        self.best_epoch_, _name(self.monitor), self.best_)
        self._best_stage = None  # do not keep a model copy (or the run) alive in the callback
        self._run = None


def _store_from(store):
    if hasattr(store, "save"):
        return store
    if isinstance(store, (str, os.PathLike)):
        from ml_toolbox.persistence import PipelinePersistence  # noqa: PLC0415 (lazy, optional)

        return PipelinePersistence.from_location(store)
    raise TypeError(f"ModelCheckpoint: store must be a PipelinePersistence (or an object with "
                    f"save()) or a path, got {store!r} ({type(store).__name__}).")


class ModelCheckpoint(Callback):
    """Save the model being trained into the versioned store during training.

    Each checkpoint is a new version of ``name`` in the store, carrying the epoch's tracked metrics,
    the tags ``{"epoch": k, "checkpoint": True, ...}`` and a message such as
    ``"epoch 3: validation_loss=0.4132"``; ``store.list_versions(name)`` lists them. What is saved is the
    fitted estimator of the model stage (``stage.estimator_``), a plain scikit-learn object.

    Parameters
    ----------
    store : PipelinePersistence or path
        The versioned store, or its location (``PipelinePersistence.from_location(path)``).
    name : str, default=None
        Name under which versions are saved; default: the TrainingPipeline's name.
    every : int, default=1
        Save every ``every`` epochs (epochs ``every-1``, ``2*every-1``, ... 0-based). Ignored when
        ``save_best_only``.
    save_best_only : bool, default=False
        Save only when ``monitor`` improved (the first epoch always counts as an improvement).
    monitor : str or Metric, default="validation_loss"
        The metric that decides improvement (``save_best_only=True`` only).
    mode : {"auto", "min", "max"}, default="auto"
        Direction of ``monitor``, as in :class:`EarlyStopping`.
    tags : dict, default=None
        Extra tags stored with every checkpoint.

    Attributes
    ----------
    saved_ : list of (int, object)
        ``(epoch, version)`` of every checkpoint saved during the last run.

    Examples
    --------
    >>> from ml_toolbox.callbacks import ModelCheckpoint
    >>> ModelCheckpoint("models/", name="churn", save_best_only=True, monitor="validation_score")
    ModelCheckpoint(name='churn', every=1, save_best_only=True, monitor='validation_score', mode='auto')
    """

    _repr_params = ("name", "every", "save_best_only", "monitor", "mode")

    def __init__(self, store, name=None, *, every=1, save_best_only=False, monitor="validation_loss",
                 mode="auto", tags=None):
        self.store = store
        self.name = name
        self.every = every
        self.save_best_only = save_best_only
        self.monitor = monitor
        self.mode = mode
        self.tags = tags

    def _owner(self):
        return f"ModelCheckpoint(name={self.name!r})" if self.name else "ModelCheckpoint"

    def on_run_start(self, run):
        _check_mode(self._owner(), self.mode)
        if not isinstance(self.every, numbers.Integral) or self.every < 1:
            raise ValueError(f"{self._owner()}: every must be an integer >= 1, got {self.every!r}.")
        self._store = _store_from(self.store)
        self._run = run
        self._save_name = self.name or getattr(run.pipeline, "name", None) or "model"
        self._best = None
        self.saved_ = []

    def on_epoch_end(self, epoch, metrics):
        if metrics.failed:
            return False
        if self.save_best_only:
            name = _name(self.monitor)
            if name not in metrics:
                raise _missing_metric(self._owner(), name, epoch, metrics)
            direction = (self.mode if self.mode != "auto"
                         else metric_direction(name, getattr(self._run, "directions", None)))
            if not _improved(metrics[name], self._best, direction, 0.0):
                return False
            self._best = metrics[name]
            message_metric = f"{name}={metrics[name]:.6g}"
        else:
            if (epoch + 1) % self.every:
                return False
            message_metric = ", ".join(f"{k}={v:.6g}" for k, v in metrics.tracked.items())
        stage = self._run.stage
        model = getattr(stage, "estimator_", stage)
        tags = {"epoch": epoch, "checkpoint": True, **(self.tags or {})}
        # a store with save_model (PipelinePersistence) records the version as a model
        save = getattr(self._store, "save_model", None) or self._store.save
        version = save(model, self._save_name, metrics=metrics.tracked, tags=tags,
                       message=f"epoch {epoch}: {message_metric}".rstrip(": "))
        self.saved_.append((epoch, version))
        metrics.note("checkpoint_version", version)
        logger.info("%s: saved epoch %d as version %s", self._owner(), epoch, version)
        return False

    def on_run_end(self, run):
        self._run = self._store = None  # nothing of the run (or an open store) kept after it


class _FrozenLog:
    """An epoch's tracked metrics once the run is over (what a History keeps and pickles)."""

    __slots__ = ("epoch", "tracked")

    def __init__(self, epoch, tracked):
        self.epoch = epoch
        self.tracked = tracked

    def __getstate__(self):
        return (self.epoch, self.tracked)

    def __setstate__(self, state):
        self.epoch, self.tracked = state


class History(Callback):
    """The per-epoch record of a training run: one dict of tracked metrics per epoch.

    The epoch loop always keeps one, as the fitted pipeline's ``history_``; pass your own in
    ``callbacks`` to keep a handle on it. ``history["validation_loss"]`` is the list of values per epoch
    (None where an epoch did not record it), ``records`` the list of dicts, ``to_frame()`` a
    pandas DataFrame indexed by epoch, ``plot()`` the learning curves (needs matplotlib: the
    ``plot`` extra).

    Attributes
    ----------
    records : list of dict
        ``{"epoch": k, <metric>: value, ...}`` for every epoch run (tracked metrics only).
    epochs : list of int
        The epochs recorded.
    metric_names : list of str
        Every tracked metric name, in order of first appearance.
    params : dict
        What the run was: epochs, batch_size, n_samples, n_batches, loss, scorers, validation.
    stop_reason : str or None
        Why training ended before ``params["epochs"]`` (an EarlyStopping, a callback returning True).

    Examples
    --------
    >>> from ml_toolbox.callbacks import History, MetricLog
    >>> h = History()
    >>> for epoch, loss in enumerate([0.9, 0.5]):
    ...     log = MetricLog(epoch)
    ...     log.track("train_loss", loss)
    ...     stop = h.on_epoch_end(epoch, log)
    >>> h["train_loss"], h.best("train_loss")
    ([0.9, 0.5], (1, 0.5))
    """

    def __init__(self):
        self._logs = []
        self.params = {}
        self.stop_reason = None
        self._directions = {}

    def on_run_start(self, run):
        self._logs = []
        self.params = dict(getattr(run, "params", {}) or {})
        self.stop_reason = None
        self._directions = dict(getattr(run, "directions", {}) or {})

    def on_epoch_end(self, epoch, metrics):
        # The log object itself is kept: whatever later callbacks track in this epoch lands in
        # the record too, whatever the callbacks' order. The loop closes it when the epoch ends.
        if not metrics.failed:
            self._logs.append(metrics)
        return False

    def on_run_end(self, run):
        self.stop_reason = getattr(run, "stop_reason", None)
        # Freeze: plain records from now on, nothing that points back to the run.
        self._logs = [_FrozenLog(log.epoch, log.tracked) for log in self._logs]

    # -- reading ---------------------------------------------------------------------------
    @property
    def records(self):
        """``{"epoch": k, <metric>: value, ...}`` for every epoch run (tracked metrics only)."""
        return [{"epoch": log.epoch, **log.tracked} for log in self._logs]

    @property
    def epochs(self):
        """The epochs recorded, in order."""
        return [log.epoch for log in self._logs]

    @property
    def metric_names(self):
        """Every tracked metric name, in order of first appearance."""
        names = {}
        for log in self._logs:
            names.update(dict.fromkeys(log.tracked))
        return list(names)

    @property
    def history(self):
        """Keras-style ``{metric: [value per epoch]}``."""
        return {name: self[name] for name in self.metric_names}

    def __getitem__(self, name):
        name = _name(name)
        if name not in self.metric_names:
            raise KeyError(f"No metric {name!r} in this history. Recorded: {self.metric_names}.")
        return [log.tracked.get(name) for log in self._logs]

    def __contains__(self, name):
        try:
            return _name(name) in self.metric_names
        except TypeError:
            return False

    def __len__(self):
        return len(self._logs)

    def best(self, name, mode="auto"):
        """Find the epoch with the best recorded value of metric ``name``.

        Parameters
        ----------
        name : str or Metric
            The metric.
        mode : {"auto", "min", "max"}, default="auto"
            Whether lower or higher is better; ``"auto"`` decides by the metric (losses and
            errors are minimised, the rest maximised).

        Returns
        -------
        (int, float)
            ``(epoch, value)``; NaN values are skipped.

        Raises
        ------
        KeyError
            No value of ``name`` was recorded (the message lists what was).
        ValueError
            An unknown ``mode``.
        """
        name = _name(name)
        values = [(log.epoch, log.tracked[name]) for log in self._logs
                  if name in log.tracked and not math.isnan(log.tracked[name])]
        if not values:
            raise KeyError(f"No value of metric {name!r} in this history. "
                           f"Recorded: {self.metric_names}.")
        direction = _check_mode("History.best", mode)
        if direction == "auto":
            direction = metric_direction(name, self._directions)
        pick = min if direction == "min" else max
        return pick(values, key=lambda ev: ev[1])

    def to_frame(self):
        """Return the records as a pandas DataFrame indexed by epoch.

        Returns
        -------
        pandas.DataFrame
            One row per epoch, one column per metric (NaN where an epoch did not record it).
        """
        import pandas as pd  # noqa: PLC0415

        frame = pd.DataFrame.from_records(self.records, columns=["epoch", *self.metric_names])
        return frame.set_index("epoch")

    def plot(self, metrics=None, *, ax=None, title=None):
        """Draw the learning curves; returns the matplotlib Figure.

        Parameters
        ----------
        metrics : list of str, default=None
            Which metrics; default all. Losses and other metrics go in separate panels.
        ax : matplotlib Axes, default=None
            Draw everything into this Axes instead of a new figure.
        title : str, default=None
            Figure title.

        Returns
        -------
        matplotlib.figure.Figure
            The figure drawn (``ax.figure`` when ``ax`` is given).

        Raises
        ------
        ImportError
            When matplotlib is not installed (it comes with the ``plot`` extra).
        KeyError
            A metric in ``metrics`` was not recorded.
        ValueError
            Nothing to plot: no metric was recorded.
        """
        try:
            import matplotlib  # noqa: PLC0415

            if ax is None:
                import matplotlib.pyplot as plt  # noqa: PLC0415
        except ImportError as exc:
            raise ImportError("History.plot() needs matplotlib, which is not installed. Install "
                              "it with: pip install 'ml_toolbox[plot]'") from exc
        del matplotlib
        names = [_name(m) for m in metrics] if metrics is not None else self.metric_names
        for name in names:
            if name not in self.metric_names:
                raise KeyError(f"No metric {name!r} in this history. "
                               f"Recorded: {self.metric_names}.")
        if not names:
            raise ValueError("History.plot(): nothing to plot, no metric was recorded.")
        losses = [n for n in names if metric_direction(n, self._directions) == "min"]
        others = [n for n in names if n not in losses]
        if ax is not None:
            groups, axes, figure = [names], [ax], ax.figure
        else:
            groups = [g for g in (losses, others) if g]
            figure, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4),
                                        squeeze=False)
            axes = list(axes[0])
        for group, axis in zip(groups, axes):
            for name in group:
                pairs = [(e, v) for e, v in zip(self.epochs, self[name]) if v is not None]
                axis.plot([p[0] for p in pairs], [p[1] for p in pairs], marker="o",
                          markersize=3, label=name)
            axis.set_xlabel("epoch")
            if ax is None:
                axis.set_ylabel("loss" if group is losses else "score")
            axis.grid(True, alpha=0.3)
            axis.legend()
        if title:
            figure.suptitle(title)
        if ax is None:
            figure.tight_layout()
        return figure

    def __rich__(self):
        from rich.table import Table  # noqa: PLC0415

        table = Table(title=f"History ({len(self)} epochs)")
        table.add_column("epoch", justify="right")
        for name in self.metric_names:
            table.add_column(name, justify="right")
        for record in self.records:
            table.add_row(str(record["epoch"]),
                          *("" if record.get(n) is None else f"{record[n]:.4g}"
                            for n in self.metric_names))
        return table

    def __repr__(self):
        return f"History(epochs={len(self)}, metrics={self.metric_names})"


class ProgressBar(Callback):
    """A rich progress bar over epochs, with the latest metrics; shown only when someone watches.

    It shows when the console is a terminal or a notebook, and stays silent when output goes to a
    file or a pipe, or the ``CI`` environment variable is set. ``TrainingPipeline(verbose=1)``
    adds one automatically; with ``verbose=0`` (the default) none is added, but one you pass in
    ``callbacks`` still shows.

    Parameters
    ----------
    console : rich.console.Console, default=None
        Where to draw; default rich's global console (stderr-like). Inject
        ``Console(file=io.StringIO(), force_terminal=True)`` to capture it.
    metrics : list of str, default=None
        Metrics shown next to the bar; default all tracked metrics of the epoch. In a narrow
        terminal (80 columns) the last ones give way (``… +3`` says how many); the bar, the epoch
        count and the elapsed time always stay on the line.
    disable : bool, default=None
        True: never show; False: always show; None: decide as above.

    Examples
    --------
    >>> import io
    >>> from rich.console import Console
    >>> from ml_toolbox.callbacks import ProgressBar
    >>> bar = ProgressBar(console=Console(file=io.StringIO(), force_terminal=True))
    """

    _repr_params = ("metrics", "disable")

    def __init__(self, console=None, metrics=None, disable=None):
        self.console = console
        self.metrics = metrics
        self.disable = disable

    def on_run_start(self, run):
        from rich.console import Console  # noqa: PLC0415
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress,  # noqa: PLC0415
                                   TextColumn, TimeElapsedColumn)

        from ml_toolbox.progress import BAR_WIDTH, fixed, shrinking_text_column  # noqa: PLC0415

        console = self.console if self.console is not None else Console(stderr=True)
        self.shown_ = (not self.disable) if self.disable is not None else \
            is_watching(1, console=console)
        self._progress = None
        if not self.shown_:
            return
        name = getattr(run.pipeline, "name", "training")
        # at 80 columns the metrics shorten (cut with an ellipsis); name, bar, count, time stay
        self._progress = Progress(TextColumn("[bold]{task.description}", table_column=fixed()),
                                  BarColumn(bar_width=BAR_WIDTH, table_column=fixed()),
                                  MofNCompleteColumn(table_column=fixed()),
                                  shrinking_text_column("{task.fields[metrics]}", separator="  "),
                                  TimeElapsedColumn(table_column=fixed()), console=console,
                                  transient=False)
        self._progress.start()
        self._task = self._progress.add_task(f"{name} epoch", total=run.epochs, metrics="")

    def on_epoch_end(self, epoch, metrics):
        if self._progress is None:
            return False
        names = ([_name(m) for m in self.metrics] if self.metrics is not None
                 else list(metrics.tracked))
        text = "  ".join(f"{n}={metrics[n]:.4g}" for n in names
                         if n in metrics and isinstance(metrics[n], numbers.Real))
        if metrics.failed:
            text = f"[red]failed: {type(metrics.error).__name__}[/red]"
        self._progress.update(self._task, advance=0 if metrics.failed else 1, metrics=text)
        return False

    def on_run_end(self, run):
        if self._progress is None:
            return
        try:
            if run.status == "stopped":
                self._progress.update(self._task, description=f"{self._progress.tasks[0].description}"
                                      " (stopped early)")
            self._progress.stop()
        finally:
            self._progress = None
