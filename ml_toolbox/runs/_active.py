"""A run in progress (:class:`ActiveRun`), and :func:`track`, which records one execution as a run.

``track`` is what ``UnifiedMLPipeline(tracking=...)`` wraps around ``fit``, ``execute`` and
``partial_fit``: it makes the run, tells the trackers, hands the execution loop a recorder (a
:class:`~ml_toolbox.monitor.PipelineMonitor` whose sink is the run: the loop is the only caller of
plug-ins) and closes the run however the execution ends. A tracker that fails is recorded on the
run and warned about once; the pipeline's result is never changed by tracking.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import functools
import logging
import os
import socket
import threading
import time
import uuid
import warnings

from ml_toolbox.monitor import PipelineMonitor, _error_text
from ml_toolbox.runs._current import CURRENT
from ml_toolbox.runs._tracker import Tracker

__all__ = ["ActiveRun", "RunCancelled", "track", "current_run", "as_trackers", "fingerprint"]

logger = logging.getLogger(__name__)

_CURRENT = CURRENT
# a run made ahead of its execution (a background execution's, so its id is known at once)
_PREPARED = contextvars.ContextVar("ml_toolbox_prepared_run", default=None)

#: The statuses a run can have (``"stale"`` is derived: running, but its heartbeat stopped).
STATUSES = ("running", "success", "failed", "cancelled", "stale")


class RunCancelled(concurrent.futures.CancelledError):
    """Raised inside a run, between stages or epochs, once its cancellation was asked for.

    A :class:`concurrent.futures.CancelledError`, as a cancelled future's ``result()`` raises.
    """


def current_run():
    """Return the :class:`ActiveRun` of the execution running in this thread / task, or None.

    Returns
    -------
    ActiveRun or None
        The run, or None outside a tracked execution.

    Examples
    --------
    >>> from ml_toolbox.runs import current_run
    >>> current_run() is None
    True
    """
    return _CURRENT.get()


def as_trackers(tracking, owner="tracking"):
    """A list of trackers from a ``tracking`` parameter: a tracker, a directory, or a list of them.

    A string or path is a run store directory (:class:`~ml_toolbox.runs.RunStore`).

    Raises
    ------
    TypeError
        For anything else, naming what was given.
    """
    if tracking is None or tracking is False:
        return []
    items = tracking if isinstance(tracking, (list, tuple)) else [tracking]
    out = []
    for i, item in enumerate(items):
        if isinstance(item, (str, os.PathLike)):
            from ml_toolbox.runs.store import RunStore

            item = RunStore(item)
        if not (isinstance(item, Tracker) or callable(getattr(item, "emit", None))):
            where = owner if len(items) == 1 else f"{owner}[{i}]"
            raise TypeError(f"{where} must be a Tracker (RunStore, MLflowTracker, "
                            f"TensorBoardTracker...), a run store directory, or a list of those; "
                            f"got {item!r} ({type(item).__name__}).")
        out.append(item)
    return out


@functools.lru_cache(maxsize=256)
def _dtype_text(dtype):
    """``str(dtype)``, made once per dtype (dtypes are hashable and few)."""
    return str(dtype)


def fingerprint(X, y=None, *, content=True):
    """Return a cheap fingerprint of training data: shape, column names and dtypes, a content hash.

    The hash (xxh3-64) covers the data's bytes column by column (object columns through pandas'
    own hashing), so the same data gives the same fingerprint in any process. ``content=False``
    leaves the hash out (see :func:`content_hash`).

    Parameters
    ----------
    X : array-like, DataFrame or sparse matrix
        The features.
    y : array-like, optional
        The targets.
    content : bool, default=True
        Compute the content hash.

    Returns
    -------
    dict
        ``shape``, ``columns``, ``dtypes`` and (with ``content``) the hash.

    Examples
    --------
    >>> import numpy as np
    >>> fp = fingerprint(np.zeros((3, 2)))
    >>> fp["shape"], fp["dtypes"]
    ([3, 2], 'float64')
    """
    import numpy as np
    import xxhash

    out = {}
    try:
        if hasattr(X, "columns") and hasattr(X, "dtypes"):  # a DataFrame
            out["shape"] = [int(X.shape[0]), int(X.shape[1])]
            # (lists, not pandas objects, and each dtype's name made once per process: a numpy
            # dtype's str() costs microseconds, a Series sliced and zipped far more)
            names = [c if c.__class__ is str else str(c) for c in X.columns.tolist()[:1000]]
            out["columns"] = names
            out["dtypes"] = dict(zip(names, map(_dtype_text, X.dtypes.tolist()[:1000])))
        else:
            arr = X if hasattr(X, "dtype") and hasattr(X, "shape") else np.asarray(X, dtype=object)
            out["shape"] = [int(s) for s in arr.shape]
            out["dtypes"] = str(arr.dtype)
        if y is not None:
            y_arr = getattr(y, "to_numpy", lambda: np.asarray(y))()
            out["y"] = {"shape": [int(s) for s in np.shape(y_arr)], "dtype": str(y_arr.dtype)}
    except Exception as exc:  # noqa: BLE001 - data the fingerprint cannot read: say so, never fail
        out["error"] = _error_text(exc)
    if content:
        out["hash"] = content_hash(X, y)
    return out


def content_hash(X, y=None):
    """The xxh3-64 hex digest of the data's content (None when it cannot be read)."""
    import numpy as np
    import xxhash

    h = xxhash.xxh3_64()
    try:
        if hasattr(X, "columns") and hasattr(X, "dtypes"):  # a DataFrame, column by column
            block = _one_block(X)
            if block is not None:  # the columns' bytes one after another, in one call
                h.update(block.view(np.uint8).ravel() if block.size else b"")
            else:
                for column in X.columns:
                    _hash_column(h, X[column])
        else:
            arr = X if hasattr(X, "dtype") and hasattr(X, "shape") else np.asarray(X, dtype=object)
            if hasattr(arr, "toarray") and not isinstance(arr, np.ndarray):  # scipy sparse
                for part in (arr.data, getattr(arr, "indices", None), getattr(arr, "indptr", None)):
                    if part is not None:
                        h.update(np.ascontiguousarray(part).tobytes())
            else:
                _hash_array(h, arr)
        if y is not None:
            _hash_array(h, getattr(y, "to_numpy", lambda: np.asarray(y))())
    except Exception:  # noqa: BLE001 - data the hash cannot read: no hash, never a failure
        logger.debug("cannot hash the data", exc_info=True)
        return None
    return h.hexdigest()


_HASH_ALONGSIDE = 500_000  # values from which the hash is computed alongside the fit, in a thread


def _fingerprint_run(run, X, y):
    """Fill ``run.data``: the cheap part now, the hash now (small data) or, for large data, return
    the work that hashes it: :func:`track` hands it to the hashing thread once the trackers have
    recorded the run's start (they read ``run.data``: never while the thread writes into it), to
    run alongside the fit (joined when the run ends)."""
    run.data = fingerprint(X, y, content=False)
    shape = run.data.get("shape") or [0]
    size = 1
    for n in shape:
        size *= n
    if size < _HASH_ALONGSIDE:
        run.data["hash"] = content_hash(X, y)
        return None
    X, y = _frozen(X), _frozen(y)
    data = run.data

    def work():
        data["hash"] = content_hash(X, y)

    return work


def _frozen(data):
    """What the hashing thread reads: for a numeric frame in one block or an array, a read-only
    view of the same bytes (no copy; the hash is the same value as of ``data`` itself); else
    ``data`` as it is.

    The fit runs while the worker hashes: scikit-learn's estimators do not write into their input,
    and a read-only view makes sure this code does not either (a stage that did write into ``X``
    during the fit would change what is hashed: the hash is of the data as the fit saw it)."""
    import numpy as np

    if data is None:
        return None
    try:
        if hasattr(data, "columns") and hasattr(data, "dtypes"):
            block = _one_block(data)
            if block is None:
                return data
        elif hasattr(data, "to_numpy"):  # a Series
            block = data.to_numpy()
        else:
            block = data
        if not isinstance(block, np.ndarray) or block.dtype == object:
            return data
        view = block.view()
        view.flags.writeable = False
        return view
    except Exception:  # noqa: BLE001 - hashed as it is (content_hash says when it cannot)
        return data


_WORKER = None  # (pid, executor): one thread that hashes large training data, made once per process
_WORKER_LOCK = threading.Lock()


def _hash_worker():
    """The process's hashing thread (a thread started per run costs the caller about 0.2 ms of CPU
    and, on a busy machine, milliseconds of waiting for it to start; a forked child makes its
    own: its parent's thread does not exist there)."""
    global _WORKER
    worker = _WORKER
    if worker is None or worker[0] != os.getpid():
        with _WORKER_LOCK:
            worker = _WORKER
            if worker is None or worker[0] != os.getpid():
                from concurrent.futures import ThreadPoolExecutor

                worker = _WORKER = (os.getpid(), ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="ml_toolbox-run-hash"))
    return worker[1]


def _hash_array(h, arr):
    import numpy as np

    if arr.dtype == object:
        import pandas as pd

        flat = pd.Series(np.asarray(arr).ravel())
        h.update(pd.util.hash_pandas_object(flat, index=False).to_numpy().tobytes())
    else:
        h.update(np.ascontiguousarray(arr).view(np.uint8).ravel() if arr.size else b"")


def _one_block(frame):
    """The frame's values as one C-contiguous (columns, rows) array when its columns are one numpy
    dtype held in one block (no copy): its bytes are the columns' bytes one after another, what
    hashing column by column reads. None otherwise."""
    import numpy as np

    dtypes = set(frame.dtypes)
    if len(dtypes) != 1:
        return None
    dtype = dtypes.pop()
    if not isinstance(dtype, np.dtype) or dtype == object:
        return None
    values = frame.to_numpy().T
    if not values.flags.c_contiguous or values.dtype != dtype:
        return None
    return values


def _hash_column(h, column):
    import numpy as np
    import pandas as pd

    values = column.to_numpy()
    if isinstance(values, np.ndarray) and values.dtype != object:
        h.update(np.ascontiguousarray(values).view(np.uint8).ravel() if values.size else b"")
    else:
        h.update(pd.util.hash_pandas_object(column, index=False).to_numpy().tobytes())


def _cpu_seconds():
    """CPU seconds (user + system) of this process so far: ``os.times`` (a plain syscall;
    ``time.process_time`` costs milliseconds on some kernels once BLAS threads exist)."""
    t = os.times()
    return t.user + t.system


def _peak_memory():
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak * 1024) if os.uname().sysname != "Darwin" else int(peak)


class ActiveRun:
    """A run in progress, as trackers and callbacks see it (made by :func:`track`).

    Parameters
    ----------
    trackers : list of Tracker
        The trackers the run's hooks go to (each on its own: one that raises is dropped from the
        run, with a warning).
    name : str
        The pipeline's name.
    kind : str
        What runs: ``"fit"``, ``"execute"``, ``"partial_fit"``...
    params : dict, optional
        The pipeline's parameters, flattened and JSON-safe.
    data : dict, optional
        The fingerprint of the training data.
    tags : dict, optional
        Free labels.
    parent_id : str, optional
        The id of the run this one belongs to (e.g. a search's run).

    Attributes
    ----------
    id : str
        The run's id (32 hex digits; any unique prefix finds it in a :class:`RunStore`).
    name, kind : str
        The pipeline's name, and what ran: ``"fit"``, ``"execute"``, ``"partial_fit"``...
    status : str
        ``"running"``, then ``"success"``, ``"failed"`` or ``"cancelled"``.
    start_time, end_time : float
        Wall-clock seconds.
    params : dict
        The pipeline's parameters, flattened and JSON-safe.
    data : dict
        The fingerprint of the training data (:func:`fingerprint`).
    tags : dict
    metrics : dict
        Final metrics (the pipeline's ``metrics_``), set when the run ends.
    error, error_stage : str or None
        ``"TypeName: message"`` and the stage that raised it.
    progress : float or None
        Fraction done (epochs, or stages), for ``runs active``.
    versions : list of dict
        Store versions saved from this run.
    tracker_errors : dict
        ``{tracker repr: "TypeName: message"}`` of the trackers that failed (each warned once).

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ml_toolbox.runs import RunStore, track
    >>> store = RunStore(tempfile.mkdtemp())
    >>> model = LogisticRegression()
    >>> with track(model, "fit", trackers=[store]) as run:
    ...     _ = model.fit([[0.0], [1.0]], [0, 1])
    ...     run.log_metrics({"loss": 0.1}, step=1)
    >>> run.status, run.name, run.kind
    ('success', 'LogisticRegression', 'fit')
    """

    def __init__(self, trackers, *, name, kind, params=None, data=None, tags=None, parent_id=None):
        self.id = uuid.uuid4().hex
        self.trackers = list(trackers)
        self.name = name
        self.kind = kind
        self.status = "running"
        self.start_time = time.time()
        self.end_time = None
        self.params = params or {}
        self.data = data or {}
        self.tags = dict(tags or {})
        self.parent_id = parent_id
        self.metrics = {}
        self.error = None
        self.error_stage = None
        self.progress = None
        self.progress_text = None
        self.versions = []
        self.tracker_errors = {}
        self.cpu_time = None
        self.peak_memory = None
        self.environment = {}
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self._cancel = threading.Event()
        self._hooks = None  # (trackers, count, {hook: [(repr, bound method)]}), made once
        self._hashing = None  # the hash of large training data (a Future), while it runs
        self._cpu0 = _cpu_seconds()
        self._started = False

    # -- fan-out, each tracker on its own -----------------------------------------------------
    def _methods(self, hook):
        """``[(tracker repr, bound method), ...]`` of the trackers still in the run (cached)."""
        cache = self._hooks
        if cache is None or cache[0] is not self.trackers or cache[1] != len(self.trackers):
            cache = self._hooks = (self.trackers, len(self.trackers), {})
        found = cache[2].get(hook)
        if found is None:
            found = []
            for tracker in self.trackers:
                method = getattr(tracker, hook, None)
                if method is None:
                    continue
                if hook == "emit" and not isinstance(tracker, Tracker):
                    method = _first_argument(method)  # a plain monitor sink: emit(metrics)
                found.append((repr(tracker), method))
            cache[2][hook] = found
        return found

    def _call(self, hook, *args):
        for key, method in self._methods(hook):
            try:
                method(*args)
            except Exception as exc:  # noqa: BLE001 - a tracker never fails the pipeline
                self._failed(key, hook, exc)

    def _failed(self, key, hook, exc):
        text = _error_text(exc)
        self.tracker_errors[key] = text
        hooks = self._hooks[2]  # not asked again, not warned again (new lists: a loop may run)
        for name in list(hooks):
            hooks[name] = [(k, m) for k, m in hooks[name] if k != key]
        logger.warning("tracker %s failed in %s of run %s", key, hook, self.id, exc_info=True)
        warnings.warn(f"Tracker {key} failed ({hook}) on run {self.id[:12]} of {self.name!r}: "
                      f"{text}. The pipeline goes on; this tracker records nothing more of this "
                      f"run.", RuntimeWarning, stacklevel=4)

    def start(self):
        """Start the run: record the environment and call every tracker's ``start_run`` (once)."""
        if not self._started:
            self._started = True
            from ml_toolbox.persistence import environment

            self.environment = environment()
            self._call("start_run", self)

    def log_metrics(self, metrics, step=None):
        """Send metrics to every tracker.

        Parameters
        ----------
        metrics : dict of str to float
            The values, by metric name.
        step : int or None, default=None
            The step (an epoch), or None for final values.
        """
        if metrics:
            methods = self._hooks[2].get("log_metrics") if self._hooks is not None else None
            if methods is None:
                methods = self._methods("log_metrics")
            for key, method in methods:
                try:
                    method(self, metrics, step)
                except Exception as exc:  # noqa: BLE001 - a tracker never fails the pipeline
                    self._failed(key, "log_metrics", exc)

    def emit(self, metrics):
        """Send one finished pipeline execution of this run to every tracker (the monitor-sink side).

        Parameters
        ----------
        metrics : ~ml_toolbox.monitor.PipelineMetrics
            The execution, with its stage records.
        """
        self._call("emit", metrics, self)

    def set_progress(self, fraction, text=None):
        """Record how far the run is (``ml-toolbox runs active`` shows it).

        Parameters
        ----------
        fraction : float
            Fraction done, in [0, 1].
        text : str, optional
            A short description (``"epoch 3/10"``).
        """
        self.progress = None if fraction is None else float(min(max(fraction, 0.0), 1.0))
        self.progress_text = text
        self._call("progress", self)

    def link_version(self, store, name, version):
        """Record that a store version was saved from this run.

        Parameters
        ----------
        store : PipelinePersistence, str or path-like
            The model store (or its location).
        name : str
            The name the version is stored under.
        version : int
            The version number.
        """
        entry = {"store": str(store), "name": name, "version": int(version), "time": time.time()}
        self.versions.append(entry)
        self._call("link_version", self, entry)

    def cancel(self):
        """Ask the run to stop at the next stage or epoch boundary."""
        self._cancel.set()

    @property
    def cancel_requested(self):
        """Whether :meth:`cancel` was called (a bool)."""
        return self._cancel.is_set()

    def finish(self, error=None, metrics=None):
        """End the run: status, final metrics, resources used; call every tracker's ``end_run``.

        Parameters
        ----------
        error : BaseException, optional
            The error that ended the run (``"failed"``, or ``"cancelled"`` for :class:`RunCancelled`);
            None for a success.
        metrics : dict, optional
            The final metrics.
        """
        hashing, self._hashing = self._hashing, None
        if hashing is not None:
            hashing.result()  # (the work never raises: content_hash returns None when it cannot)
        self.end_time = time.time()
        self.cpu_time = _cpu_seconds() - self._cpu0
        self.peak_memory = _peak_memory()
        if metrics:
            from ml_toolbox.persistence import json_safe

            self.metrics = {str(k): json_safe(v) for k, v in metrics.items()}
        if error is None:
            self.status = "success"
            self.progress = 1.0
        else:
            self.status = "cancelled" if isinstance(error, RunCancelled) else "failed"
            self.error = _error_text(error)
        self._call("end_run", self)

    @property
    def duration(self):
        """Seconds since the start, or from start to end once the run ended (a float)."""
        end = self.end_time if self.end_time is not None else time.time()
        return end - self.start_time

    def __repr__(self):
        return f"<ActiveRun {self.id[:12]} {self.name!r} {self.kind} status={self.status!r}>"


def _first_argument(method):
    return lambda metrics, run=None: method(metrics)


class _RunRecorder(PipelineMonitor):
    """The plug-in a tracked run hands the execution loop: a monitor whose sink is the run.

    Its ``before_stage`` honours a cancellation between stages (and so between the mini-batches
    of epochs); it records which stage raised.
    """

    observer = False  # before_stage may stop the run

    def __init__(self, run):
        super().__init__(history_size=1, capture_warnings=False, sink_errors="warn")
        self.run = run
        self.sinks.append(run)

    def __reduce__(self):
        # a pipeline pickled while its run is in progress carries no run: a disabled recorder
        return (_detached_recorder, ())

    def before_stage(self, ctx):
        if self.run._cancel.is_set():
            raise RunCancelled(f"run {self.run.id[:12]} of {self.run.name!r} was cancelled "
                               f"(before stage {ctx.stage_name!r} of {ctx.pipeline_name!r})")

    def after_stage(self, ctx, status="success", error=None):
        super().after_stage(ctx, status, error)
        if self.run.progress is None:  # epoch training says more (set_progress per epoch)
            self.run.progress_text = f"{ctx.pipeline_name}.{ctx.stage_name} ({ctx.mode}) done"

    def on_stage_error(self, ctx, error):
        if self.run.error_stage is None and not isinstance(error, RunCancelled):
            self.run.error_stage = f"{ctx.pipeline_name}.{ctx.stage_name}"
        super().on_stage_error(ctx, error)


def _detached_recorder():
    recorder = PipelineMonitor(enable_tracking=False)
    return recorder


def params_of(pipeline):
    from ml_toolbox.persistence import _params_of

    try:
        return _params_of(pipeline)
    except Exception as exc:  # noqa: BLE001 - parameters that cannot be read: say so
        return {"<error>": _error_text(exc)}


@contextlib.contextmanager
def track(pipeline, kind, X=None, y=None, *, trackers=None, tags=None):
    """Record what runs inside the ``with`` block as one run of ``pipeline``.

    ``UnifiedMLPipeline(tracking=...)`` does this itself around ``fit``, ``execute`` and
    ``partial_fit``; use it by hand to record any other work (your own loop) as a run.

    Parameters
    ----------
    pipeline : estimator
        Its ``name`` and parameters are recorded; its ``tracking`` parameter gives the trackers
        unless ``trackers`` is given.
    kind : str
        What runs: ``"fit"``, ``"execute"``, ``"partial_fit"``...
    X, y : data, optional
        Fingerprinted (:func:`fingerprint`).
    trackers : list, optional
        The trackers (a :class:`RunStore`, an :class:`MLflowTracker`...); default: the pipeline's
        ``tracking``.
    tags : dict, optional
        Free labels recorded with the run.

    Yields
    ------
    ActiveRun
        The run; it ends ``"success"`` when the block does, ``"failed"`` (the error re-raised)
        otherwise.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ml_toolbox.runs import RunStore, track
    >>> store = RunStore(tempfile.mkdtemp())
    >>> model = LogisticRegression()
    >>> with track(model, "fit", trackers=[store]) as run:
    ...     _ = model.fit([[0.0], [1.0]], [0, 1])
    ...     run.log_metrics({"loss": 0.1}, step=1)
    >>> store.metric_history(run.id, "loss")
    [(1, 0.1)]
    """
    if trackers is None:
        trackers = as_trackers(getattr(pipeline, "tracking", None),
                               f"{type(pipeline).__name__}.tracking")
    prepared = _PREPARED.get()
    parent = _CURRENT.get()
    name = getattr(pipeline, "name", None) or type(pipeline).__name__
    if prepared is not None:  # a background execution made its run ahead (its id is known)
        _PREPARED.set(None)
        run = prepared
        run.start_time, run._cpu0 = time.time(), _cpu_seconds()
        run.trackers = trackers
        run.kind = kind
        run.params = params_of(pipeline)
        run.tags.update(tags or {})
        run._hooks = None
    else:
        run = ActiveRun(trackers, name=name, kind=kind, params=params_of(pipeline), tags=tags,
                        parent_id=None if parent is None else parent.id)
    hashing = None if X is None else _fingerprint_run(run, X, y)
    token = _CURRENT.set(run)
    recorder = _RunRecorder(run)
    holder = getattr(pipeline, "__dict__", {})
    previous = holder.get("_run_recorder")
    holder["_run_recorder"] = recorder
    try:
        run.start()
        if hashing is not None:
            run._hashing = _hash_worker().submit(hashing)
        yield run
    except BaseException as error:
        run.finish(error)
        raise
    else:
        run.finish(None, getattr(pipeline, "__dict__", {}).get("metrics_"))
    finally:
        if previous is None:
            holder.pop("_run_recorder", None)
        else:
            holder["_run_recorder"] = previous
        _CURRENT.reset(token)


def log_epoch(metrics, epoch, epochs=None):
    """The training loop's hook: an epoch's tracked metrics go to the current run, if any."""
    run = _CURRENT.get()
    if run is None:
        return
    if metrics:
        run.log_metrics(metrics, step=epoch)
    if epochs and epoch is not None:
        run.set_progress((epoch + 1) / epochs, f"epoch {epoch + 1}/{epochs}")


@contextlib.contextmanager
def tracked_fit(pipeline, kind, X, y):
    """:func:`track` for a pipeline's own fit: sets ``pipeline.run_id_`` when the fit succeeds
    (a failed fit leaves the pipeline as it was, ``run_id_`` included)."""
    with track(pipeline, kind, X, y) as run:
        yield run
    pipeline.run_id_ = run.id


def link_saved_version(pipeline, run_id, store, name, version):
    """A version saved from a tracked pipeline: the run records it (each tracker is told)."""
    location = getattr(store, "path", store)
    entry = {"store": str(location), "name": name, "version": int(version), "time": time.time()}
    for tracker in as_trackers(pipeline.tracking):
        method = getattr(tracker, "link_version", None)
        if method is None:
            continue
        carrier = _Linked(run_id, pipeline)
        try:
            method(carrier, entry)
        except Exception as exc:  # noqa: BLE001 - the save itself succeeded: warn, never fail
            warnings.warn(f"Tracker {tracker!r} could not record that {name!r} version {version} "
                          f"comes from run {run_id[:12]}: {_error_text(exc)}", RuntimeWarning,
                          stacklevel=3)


class _Linked:
    """What a tracker's ``link_version`` reads of a finished run: its id and name."""

    def __init__(self, run_id, pipeline):
        self.id = run_id
        self.name = getattr(pipeline, "name", None)
        self.status = "success"
