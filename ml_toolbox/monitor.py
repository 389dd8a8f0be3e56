"""Stage-level monitoring of pipelines: durations, data sizes, throughput, errors, warnings, retries.

:class:`PipelineMonitor` is a plug-in (:class:`~ml_toolbox.plugins.PipelinePlugin`). Attach it to any
pipeline (``pipe.feature_pipeline.monitor = monitor``, or ``UnifiedMLPipeline(monitor=monitor)``,
which hands it to its three pipelines) and it records one :class:`PipelineMetrics` per pipeline
execution -- a ``fit``, a ``transform``, a ``predict`` -- holding one :class:`StageRecord` per stage
run. From that bounded history it answers statistics (P50 / P95 / P99 per stage), finds anomalous
stage runs (median / MAD rule), exports to JSON and back, draws durations over time, and forwards
each finished execution to sinks (:class:`MLflowSink`, or any object with ``emit(metrics)``).

The monitor measures nothing itself: the execution loop times every stage run (``ctx.duration``)
and the sizes come from :attr:`~ml_toolbox.context.StageContext.input_summary` (shapes and buffer
sizes; data is never copied or serialised). It keeps no reference to the data, the estimators or
the exceptions it sees -- only numbers and strings -- so it can run for months inside a service.

matplotlib (``plot``) and mlflow (``MLflowSink``) are optional and imported only when used.
"""

from __future__ import annotations

import collections
import datetime as _dt
import json
import logging
import math
import operator
import os
import re
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional, Protocol, runtime_checkable

import numpy as np

from ml_toolbox import _html
from ml_toolbox.context import _AtOnceStageContext, data_summary
from ml_toolbox.plugins import PipelinePlugin

__all__ = ["PipelineMonitor", "PipelineMetrics", "StageRecord", "Anomaly", "MonitorSink",
           "MLflowSink", "FORMAT", "FORMAT_VERSION"]

logger = logging.getLogger(__name__)

#: Marker written in every JSON export (key ``"format"``).
FORMAT = "ml_toolbox.monitor"
#: Version of the JSON layout this module writes and reads (key ``"version"``).
FORMAT_VERSION = 1

_MAD_TO_SIGMA = 1.4826  # MAD * 1.4826 estimates the standard deviation of normal data


def _error_text(error):
    """``"TypeName: message"`` of an exception, without keeping the exception (nor its frames)."""
    if error is None:
        return None
    message = str(error)
    name = type(error).__name__
    return f"{name}: {message}" if message else name


def _warning_text(w):
    category = getattr(w, "category", None)
    name = category.__name__ if isinstance(category, type) else "Warning"
    return f"{name}: {getattr(w, 'message', w)}"


def _fmt_seconds(seconds):
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    if seconds >= 100:
        return f"{seconds:.0f}s"
    if seconds >= 1:
        return f"{seconds:.2f}s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g}ms"
    return f"{seconds * 1e6:.3g}µs"


def _fmt_rate(rate):
    if rate is None:
        return "-"
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if rate >= limit:
            return f"{rate / limit:.1f}{suffix}"
    return f"{rate:.0f}"


def _fmt_bytes(n):
    if n is None:
        return "-"
    for limit, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= limit:
            return f"{n / limit:.3g}{suffix}"
    return f"{n:.0f}B"


# -------------------------------------------------------------------------------------------------
# records
# -------------------------------------------------------------------------------------------------


class StageRecord(NamedTuple):
    """One stage run: how long it took, what went in and out, and how it ended (immutable).

    Built by the monitor from a :class:`~ml_toolbox.context.StageContext`; read it through
    :attr:`PipelineMetrics.stages`. A named tuple: cheap to make on the hot path, and a record of
    the past does not change.

    Parameters
    ----------
    stage_name : str
        The stage's name in its pipeline.
    index : int
        Position of the stage in its execution (0-based).
    mode : str
        What the stage did: ``"fit_transform"``, ``"transform"``, ``"predict"``, ``"fit"``, ...
    start_time : float
        Wall-clock start (seconds since the epoch).
    duration : float
        Seconds, all attempts and the waits between them included.
    status : {"success", "failed"}, default="success"
        How the stage run ended.
    rows_in, cols_in, bytes_in : int or None, default=None
        Size of the input (None when it cannot be told cheaply).
    rows_out, cols_out, bytes_out : int or None, default=None
        Size of the output (0 for a fitted model; None for a failed run).
    attempts : int, default=1
        Attempts made (1 without retry). ``retries`` is ``attempts - 1``.
    error : str or None, default=None
        ``"TypeName: message"`` of the error that failed the run.
    retry_errors : tuple of str, default=()
        The errors that made the retry policy try again, in order.
    warnings : tuple of str, default=()
        ``"Category: message"`` of each warning the stage raised.

    Examples
    --------
    >>> from ml_toolbox.monitor import StageRecord
    >>> r = StageRecord("scale", 0, "transform", 0.0, 0.002, rows_in=500, attempts=2)
    >>> r.throughput, r.retries
    (250000.0, 1)
    """

    stage_name: str
    # The stage's position: a field named like tuple.index, kept for the API (mypy sees the clash).
    index: int  # type: ignore[assignment]
    mode: str
    start_time: float
    duration: float
    status: str = "success"
    rows_in: Optional[int] = None
    cols_in: Optional[int] = None
    bytes_in: Optional[int] = None
    rows_out: Optional[int] = None
    cols_out: Optional[int] = None
    bytes_out: Optional[int] = None
    attempts: int = 1
    error: Optional[str] = None
    retry_errors: tuple = ()
    warnings: tuple = ()

    @property
    def retries(self):
        """Attempts after the first one."""
        return self.attempts - 1

    @property
    def throughput(self):
        """Input rows per second (None when the rows or the duration are unknown or zero)."""
        if not self.rows_in or not self.duration:
            return None
        return self.rows_in / self.duration

    @property
    def failed(self):
        """Whether the stage run failed (a bool)."""
        return self.status != "success"

    def to_dict(self):
        """Return the record as plain JSON-ready values.

        Returns
        -------
        dict
            One key per field (see docs/monitoring.md for the layout); tuples become lists.
        """
        out = self._asdict()
        out["retry_errors"] = list(self.retry_errors)
        out["warnings"] = list(self.warnings)
        return out

    @classmethod
    def from_dict(cls, data):
        """Build a record from the output of :meth:`to_dict`.

        Parameters
        ----------
        data : mapping
            The fields of a record, as :meth:`to_dict` writes them.

        Returns
        -------
        StageRecord
            The record.
        """
        data = dict(data)
        data["retry_errors"] = tuple(data.get("retry_errors", ()))
        data["warnings"] = tuple(data.get("warnings", ()))
        return cls(**data)

    def __repr__(self):
        rows = "?" if self.rows_in is None else self.rows_in
        extra = f", error={self.error!r}" if self.error else ""
        return (f"StageRecord({self.stage_name!r}, mode={self.mode!r}, "
                f"duration={_fmt_seconds(self.duration)}, rows_in={rows}, "
                f"status={self.status!r}{extra})")


_new_record = tuple.__new__
_new_object = object.__new__
_ndarray = np.ndarray
_UNKNOWN = (None, None, None)
_by_index = operator.itemgetter(1)


def _started(run):
    """The running :class:`PipelineMetrics` of ``run`` (made with plain stores: one per run)."""
    metrics = _new_object(PipelineMetrics)
    metrics.pipeline_name = run.pipeline_name
    metrics.mode = run.mode
    metrics.run_id = run.run_id
    metrics.start_time = run.start_time
    metrics.duration = metrics.error = metrics._last_output = metrics.fast_path = None
    metrics.status = "running"
    metrics._stages = []
    metrics._at_once = None
    return metrics


def _records_at_once(start_time, start, names, modes, stamps, sizes):
    """The records of stages that ran at once (one-row predictions with observers only, see
    :func:`ml_toolbox.base._observed`): stage ``i`` ran from ``stamps[i]`` to ``stamps[i + 1]``
    (the run started at ``start``, ``start_time`` on the wall clock) on data of ``sizes[i]`` to
    ``sizes[i + 1]``; each succeeded, on its first attempt (a warning would have sent the stages
    one by one)."""
    records = []
    for i, name in enumerate(names):
        began = stamps[i]
        rows_in, cols_in, bytes_in = sizes[i]
        rows_out, cols_out, bytes_out = sizes[i + 1]
        records.append(_new_record(StageRecord, (
            name, i, modes[i], start_time + (began - start), stamps[i + 1] - began, "success",
            rows_in, cols_in, bytes_in, rows_out, cols_out, bytes_out, 1, None, (), ())))
    return records


class PipelineMetrics:
    """One execution of one pipeline, with one :class:`StageRecord` per stage run.

    Parameters
    ----------
    pipeline_name : str
        Name of the pipeline that ran.
    mode : str
        ``"fit"``, ``"transform"``, ``"predict"``, ``"predict_proba"``, ``"score"``, ...
    run_id : int, optional
        The execution loop's id of the execution (increasing within one process).
    start_time : float, optional
        Wall-clock start (seconds since the epoch); default: now.
    duration : float or None, default=None
        Seconds (None while it runs).
    status : {"running", "success", "failed"}, default="running"
        How the execution ended, or ``"running"``.
    error : str or None, default=None
        ``"TypeName: message"`` of the error that ended it.
    stages : iterable of StageRecord, default=()
        The stage runs, in order.
    fast_path : str or None, default=None
        For an inference pipeline's prediction on the fast plan: ``"kernel"`` (every stage ran its
        kernel) or ``"fallback: stage 'x': reason; ..."`` (see :meth:`ml_toolbox.fast.FastPlan.path_counts`);
        None otherwise.

    Examples
    --------
    >>> from ml_toolbox.monitor import PipelineMetrics, StageRecord
    >>> m = PipelineMetrics("feature_pipeline", "fit", run_id=1, start_time=0.0, duration=0.5,
    ...                     status="success",
    ...                     stages=[StageRecord("scale", 0, "fit_transform", 0.0, 0.5, rows_in=100)])
    >>> m.stage("scale").throughput
    200.0
    """

    __slots__ = ("pipeline_name", "mode", "run_id", "start_time", "duration", "status", "error",
                 "_stages", "_at_once", "_last_output", "fast_path")

    def __init__(self, pipeline_name, mode, *, run_id=None, start_time=None, duration=None,
                 status="running", error=None, stages=(), fast_path=None):
        self.fast_path = fast_path
        self.pipeline_name = pipeline_name
        self.mode = mode
        self.run_id = run_id
        self.start_time = time.time() if start_time is None else start_time
        self.duration = duration
        self.status = status
        self.error = error
        self._stages = list(stages)
        self._at_once = None  # the raw timings and sizes of stages that ran at once, until read
        self._last_output = None  # (object, summary) of the last stage output, while running

    @property
    def stages(self):
        """The stage runs, in order (a list of StageRecord)."""
        at_once = self._at_once
        if at_once is not None:  # made when first read (see PipelineMonitor.after_run)
            self._stages = _records_at_once(*at_once)
            self._at_once = None
        return self._stages

    @stages.setter
    def stages(self, records):
        self._stages = records
        self._at_once = None

    @property
    def failed(self):
        """Whether the execution failed (a bool)."""
        return self.status == "failed"

    @property
    def n_stages(self):
        """Number of stage runs recorded (an int)."""
        return len(self.stages)

    def stage(self, name):
        """Return the record of one stage (the last one if the stage ran twice).

        Parameters
        ----------
        name : str
            The stage's name.

        Returns
        -------
        StageRecord
            Its record in this execution.

        Raises
        ------
        KeyError
            When no stage of that name ran; the message lists the stages recorded.
        """
        for record in reversed(self.stages):
            if record.stage_name == name:
                return record
        known = [r.stage_name for r in self.stages]
        raise KeyError(f"No stage named {name!r} in this execution of {self.pipeline_name!r}. "
                       f"Stages recorded: {known}")

    def to_dict(self):
        """Return the execution as plain JSON-ready values.

        Returns
        -------
        dict
            The execution's fields, its stages as :meth:`StageRecord.to_dict` dictionaries (see
            docs/monitoring.md for the layout).
        """
        out = {"pipeline_name": self.pipeline_name, "mode": self.mode, "run_id": self.run_id,
               "start_time": self.start_time, "duration": self.duration, "status": self.status,
               "error": self.error, "stages": [s.to_dict() for s in self.stages]}
        if self.fast_path is not None:
            out["fast_path"] = self.fast_path
        return out

    @classmethod
    def from_dict(cls, data):
        """Build an execution from the output of :meth:`to_dict`.

        Parameters
        ----------
        data : mapping
            The fields of an execution, as :meth:`to_dict` writes them.

        Returns
        -------
        PipelineMetrics
            The execution, with its stage records.
        """
        data = dict(data)
        stages = [StageRecord.from_dict(s) for s in data.pop("stages")]
        return cls(data.pop("pipeline_name"), data.pop("mode"), stages=stages, **data)

    # pickling and skops: the plain values of to_dict (slots and the raw timings of stages that
    # ran at once are not a state skops can write)
    def __getstate__(self):
        return self.to_dict()

    def __setstate__(self, state):
        state = dict(state)
        self.__init__(state.pop("pipeline_name"), state.pop("mode"),
                      stages=[StageRecord.from_dict(s) for s in state.pop("stages")], **state)

    def __eq__(self, other):
        if not isinstance(other, PipelineMetrics):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # equal by value and mutable: unhashable

    def __repr__(self):
        return (f"PipelineMetrics({self.pipeline_name!r}, mode={self.mode!r}, run_id={self.run_id}, "
                f"duration={_fmt_seconds(self.duration)}, status={self.status!r}, "
                f"stages={[s.stage_name for s in self.stages]})")

    def __rich__(self):
        from rich.table import Table

        table = Table(title=f"{self.pipeline_name} · {self.mode} · #{self.run_id} · "
                            f"{_fmt_seconds(self.duration)} · {self.status}")
        for col in ("Stage", "Mode", "Duration", "Rows in", "Rows out", "Bytes in", "Rows/s",
                    "Status"):
            table.add_column(col, justify="left" if col in ("Stage", "Mode", "Status") else "right")
        for s in self.stages:
            status = s.status if not s.error else f"{s.status}: {s.error}"
            table.add_row(s.stage_name, s.mode, _fmt_seconds(s.duration),
                          "-" if s.rows_in is None else str(s.rows_in),
                          "-" if s.rows_out is None else str(s.rows_out),
                          _fmt_bytes(s.bytes_in), _fmt_rate(s.throughput), status)
        return table


@dataclass(frozen=True)
class Anomaly:
    """A stage run far outside its stage's own history.

    Made by :meth:`PipelineMonitor.anomalies`.

    Parameters
    ----------
    pipeline_name, stage_name, mode : str
        Where it happened. The history compared against is that of the same stage in the same
        mode, on inputs of the same size bucket (``rows``).
    run_id : int
        The execution it belongs to.
    start_time, duration : float
        When it ran and how long it took.
    median, mad : float
        Median duration and median absolute deviation of the comparison group.
    score : float
        Robust z-score: ``(duration - median) / (1.4826 * MAD)`` (the MAD floored, see
        :meth:`PipelineMonitor.anomalies`).
    n_runs : int
        Size of the comparison group.
    reason : str
        A sentence saying why it was flagged.
    rows : str
        The size bucket compared within: ``"1 row"``, ``"2-10 rows"``, ``"11-100 rows"``, ...
        (``"unknown rows"`` when the input size was not known).

    Examples
    --------
    >>> from ml_toolbox.monitor import Anomaly
    >>> a = Anomaly("feature_pipeline", "scale", "transform", 7, 0.0, 0.9, 0.01, 0.002, 30.3, 20,
    ...             "took 0.9 s, 90x its median", rows="11-100 rows")
    >>> str(a)
    'took 0.9 s, 90x its median'
    """

    pipeline_name: str
    stage_name: str
    mode: str
    run_id: object
    start_time: float
    duration: float
    median: float
    mad: float
    score: float
    n_runs: int
    reason: str
    rows: str = "unknown rows"

    def __str__(self):
        return self.reason


# -------------------------------------------------------------------------------------------------
# sinks
# -------------------------------------------------------------------------------------------------


@runtime_checkable
# typing.Protocol gives the class the signature (*args, **kwargs), which numpydoc takes for
# undocumented parameters; a protocol is never constructed (a __signature__ breaks isinstance).
class MonitorSink(Protocol):  # numpydoc ignore=PR01
    """Anything that takes finished executions: an object with ``emit(metrics)``.

    The monitor calls ``emit`` with each :class:`PipelineMetrics` as the execution ends (in the
    thread that ran it), and ``close()`` -- when the sink has one -- from
    :meth:`PipelineMonitor.close`. A plain function ``f(metrics)`` works as a sink too.

    Examples
    --------
    >>> class Collect:
    ...     def __init__(self):
    ...         self.seen = []
    ...     def emit(self, metrics):
    ...         self.seen.append((metrics.pipeline_name, metrics.mode, metrics.duration))
    >>> isinstance(Collect(), MonitorSink)
    True
    """

    def emit(self, metrics: PipelineMetrics) -> None:
        """Take one finished execution.

        Parameters
        ----------
        metrics : PipelineMetrics
            The execution, with its stage records.
        """


class _CallableSink:
    __slots__ = ("func",)

    def __init__(self, func):
        self.func = func

    def emit(self, metrics):
        self.func(metrics)

    def __getstate__(self):
        return {"func": self.func}

    def __setstate__(self, state):
        self.func = state["func"]

    def __repr__(self):
        return f"<sink {getattr(self.func, '__qualname__', self.func)!r}>"


_METRIC_KEY_RE = re.compile(r"[^\w\-. /]")


class MLflowSink:
    """Forward each finished execution to MLflow as metrics.

    Each execution logs, at the next step of the target run, ``<pipeline>/<mode>/duration_s`` and
    ``<pipeline>/<mode>/failed`` and, per stage, ``<pipeline>/<mode>/<stage>/duration_s``,
    ``rows_in``, ``bytes_in``, ``rows_per_s`` and ``retries``.

    The target run is ``run_id`` when given; else, when ``tracking_uri`` is None, the active MLflow
    run if there is one (``with mlflow.start_run(): pipe.fit(...)``); else a run the sink creates
    (named ``run_name`` in experiment ``experiment_name``) and ends in :meth:`close`.

    Parameters
    ----------
    tracking_uri : str, optional
        Where to log, e.g. ``"sqlite:///mlflow.db"`` or ``"http://mlflow:5000"``. Default: MLflow's
        own setting (``MLFLOW_TRACKING_URI`` / ``mlflow.set_tracking_uri``).
    experiment_name : str, default="ml_toolbox"
        Experiment of the run the sink creates (created if missing).
    run_id : str, optional
        Log into this existing run.
    run_name : str, default="pipeline-monitor"
        Name of the run the sink creates.
    modes : iterable of str, optional
        Forward only executions of these modes (e.g. ``("fit",)`` to leave out a busy predict path).
    artifact_location : str, optional
        Artifact location of an experiment the sink creates.

    Raises
    ------
    ImportError
        On first use, when mlflow is not installed (``pip install 'ml_toolbox[mlflow]'``).

    Examples
    --------
    >>> from ml_toolbox.monitor import MLflowSink, PipelineMonitor
    >>> sink = MLflowSink(tracking_uri="sqlite:///mlflow.db", modes=("fit",))  # doctest: +SKIP
    >>> monitor = PipelineMonitor(sinks=[sink])                                 # doctest: +SKIP
    """

    def __init__(self, tracking_uri=None, experiment_name="ml_toolbox", run_id=None,
                 run_name="pipeline-monitor", *, modes=None, artifact_location=None):
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_id = run_id
        self.run_name = run_name
        self.modes = None if modes is None else frozenset(modes)
        self.artifact_location = artifact_location
        self._init_state()

    def _init_state(self):
        self._lock = threading.Lock()
        self._client = None
        self._own_run_id = None
        self._steps = collections.Counter()

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_lock", None)
        state.pop("_client", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._client = None

    @staticmethod
    def _mlflow():
        try:
            import mlflow
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "MLflowSink needs mlflow, which is not installed. Install the 'mlflow' extra: "
                "pip install 'ml_toolbox[mlflow]'") from exc
        return mlflow

    def _target_run(self, mlflow):
        if self.run_id is not None:
            return self.run_id
        if self.tracking_uri is None:
            active = mlflow.active_run()
            if active is not None:
                return active.info.run_id
        if self._own_run_id is None:
            experiment = self._client.get_experiment_by_name(self.experiment_name)
            if experiment is None:
                experiment_id = self._client.create_experiment(
                    self.experiment_name, artifact_location=self.artifact_location)
            else:
                experiment_id = experiment.experiment_id
            run = self._client.create_run(experiment_id, run_name=self.run_name,
                                          tags={"ml_toolbox.monitor": "true"})
            self._own_run_id = run.info.run_id
        return self._own_run_id

    @staticmethod
    def _key(*parts):
        return "/".join(_METRIC_KEY_RE.sub("_", str(p)) for p in parts)

    def emit(self, metrics):
        """Log one finished execution.

        Parameters
        ----------
        metrics : PipelineMetrics
            The execution; skipped when its mode is not in ``modes``.
        """
        if self.modes is not None and metrics.mode not in self.modes:
            return
        mlflow = self._mlflow()
        from mlflow.entities import Metric

        with self._lock:
            if self._client is None:
                self._client = mlflow.tracking.MlflowClient(self.tracking_uri)
            run_id = self._target_run(mlflow)
            prefix = (metrics.pipeline_name, metrics.mode)
            step = self._steps[(run_id, prefix)]
            self._steps[(run_id, prefix)] += 1
            stamp = int(metrics.start_time * 1000)
            values = {self._key(*prefix, "failed"): float(metrics.failed)}
            if metrics.duration is not None:
                values[self._key(*prefix, "duration_s")] = metrics.duration
            for s in metrics.stages:
                for field, value in (("duration_s", s.duration), ("rows_in", s.rows_in),
                                     ("bytes_in", s.bytes_in), ("rows_per_s", s.throughput),
                                     ("retries", s.retries)):
                    if value is not None:
                        values[self._key(*prefix, s.stage_name, field)] = float(value)
            batch = [Metric(key, value, stamp, step) for key, value in values.items()]
            self._client.log_batch(run_id, metrics=batch)

    def close(self):
        """End the run the sink created (a run it did not create is left alone)."""
        with self._lock:
            if self._own_run_id is not None and self._client is not None:
                self._client.set_terminated(self._own_run_id, "FINISHED")
            self._own_run_id = None

    def __repr__(self):
        return (f"MLflowSink(tracking_uri={self.tracking_uri!r}, "
                f"experiment_name={self.experiment_name!r})")


# -------------------------------------------------------------------------------------------------
# the monitor
# -------------------------------------------------------------------------------------------------

_STAT_KEYS = ("count", "failures", "mean_duration", "p50_duration", "p95_duration", "p99_duration",
              "max_duration", "total_duration")


def _duration_stats(durations, failures):
    """count / failures / mean / P50 / P95 / P99 / max / total of the durations of successful runs."""
    n = len(durations)
    if n == 0:
        return {"count": failures, "failures": failures, "mean_duration": None,
                "p50_duration": None, "p95_duration": None, "p99_duration": None,
                "max_duration": None, "total_duration": 0.0}
    arr = np.asarray(durations, dtype=float)
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {"count": n + failures, "failures": failures, "mean_duration": float(arr.mean()),
            "p50_duration": float(p50), "p95_duration": float(p95), "p99_duration": float(p99),
            "max_duration": float(arr.max()), "total_duration": float(arr.sum())}


def rows_bucket(rows):
    """The size bucket anomalies compare within: ``"1 row"``, ``"2-10 rows"``, ``"11-100
    rows"``, ``"101-1000 rows"``, ... (decades), ``"unknown rows"`` for None.

    >>> rows_bucket(1), rows_bucket(7), rows_bucket(100), rows_bucket(100_000)
    ('1 row', '2-10 rows', '11-100 rows', '10001-100000 rows')
    """
    if rows is None:
        return "unknown rows"
    if rows <= 1:
        return f"{rows} row" if rows == 1 else f"{rows} rows"
    top = 10
    while top < rows:
        top *= 10
    return f"{top // 10 + 1}-{top} rows"


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


class PipelineMonitor(PipelinePlugin):
    """Record every stage run of the pipelines it is attached to, and report on them.

    Parameters
    ----------
    enable_tracking : bool, default=True
        When False the execution loop skips the monitor altogether (zero cost). Same as setting
        ``monitor.enabled``.
    history_size : int, default=1000
        Executions kept *per pipeline name*; older ones drop off, so memory stays flat however long
        it runs. Statistics, anomalies, plots and exports describe this window.
    capture_warnings : bool, default=True
        Record the warnings each stage raises (they are still shown to the user).
    anomaly_threshold : float, default=3.5
        Robust z-score above which a stage run counts as anomalous (see :meth:`anomalies`).
    anomaly_min_runs : int, default=5
        Runs a stage needs in one mode before any of them can be judged anomalous.
    anomaly_min_ratio : float, default=2.0
        An anomalous run must also be at least this many times slower (or faster) than the median,
        so that tight, noise-free histories do not flag tiny differences. 1 disables it.
    anomaly_min_excess : float, default=0.001
        ... and at least this many seconds away from the median (1 ms by default), so that the
        jitter of microsecond runs (a one-row predict) is never an anomaly. 0 disables it.
    sinks : list, optional
        Objects with ``emit(metrics)`` (e.g. :class:`MLflowSink`) or plain functions, called with
        each finished :class:`PipelineMetrics`.
    sink_errors : {"warn", "raise"}, default="warn"
        What a failing sink does: a ``RuntimeWarning`` (the pipeline's result is kept), or raise
        from the successful execution. A failed execution always only warns, so that the user's own
        exception is the one that propagates.

    Attributes
    ----------
    enabled : bool
        Whether the loop calls the monitor.
    captures_warnings : bool
        Whether the loop records warnings for it.

    See Also
    --------
    PipelineMetrics : One recorded execution.
    MLflowSink : Forward executions to MLflow.

    Examples
    --------
    >>> import numpy as np
    >>> from ml_toolbox import FeaturePipeline, PipelineMonitor
    >>> from sklearn.preprocessing import StandardScaler
    >>> monitor = PipelineMonitor()
    >>> pipe = FeaturePipeline([("scale", StandardScaler())], monitor=monitor)
    >>> X = np.arange(20.0).reshape(10, 2)
    >>> _ = pipe.fit(X)
    >>> _ = pipe.transform(X)
    >>> stats = monitor.get_pipeline_statistics("feature_pipeline")
    >>> stats["executions"], stats["stages"]["scale"]["count"]
    (2, 2)
    >>> monitor.history()[-1].stage("scale").rows_in
    10
    """

    observer = True  # records what happened; its hooks change nothing
    # Whether the execution loop may record a run for this monitor alone directly, without
    # contexts (ml_toolbox.base._monitored): not for a subclass that overrides a hook.
    _direct = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._direct = cls.observer is True and all(getattr(cls, hook) is getattr(PipelineMonitor, hook) for hook in (
            "before_run", "before_stage", "after_stage", "on_stage_error", "on_stage_retry",
            "on_run_error", "after_run", "_record_direct", "_record_row"))

    def __init__(self, enable_tracking=True, *, history_size=1000, capture_warnings=True,
                 anomaly_threshold=3.5, anomaly_min_runs=5, anomaly_min_ratio=2.0,
                 anomaly_min_excess=1e-3, sinks=None, sink_errors="warn"):
        if not isinstance(history_size, (int, np.integer)) or isinstance(history_size, bool) \
                or history_size < 1:
            raise ValueError(f"history_size must be a positive integer; got {history_size!r} "
                             f"({type(history_size).__name__})")
        _check_positive("anomaly_threshold", anomaly_threshold)
        _check_positive("anomaly_min_ratio", anomaly_min_ratio, minimum=1.0)
        _check_non_negative("anomaly_min_excess", anomaly_min_excess)
        if not isinstance(anomaly_min_runs, (int, np.integer)) or anomaly_min_runs < 3:
            raise ValueError(f"anomaly_min_runs must be an integer >= 3; got {anomaly_min_runs!r}")
        if sink_errors not in ("warn", "raise"):
            raise ValueError(f"sink_errors must be 'warn' or 'raise'; got {sink_errors!r}")
        self.enabled = bool(enable_tracking)
        self.captures_warnings = bool(capture_warnings)
        self.history_size = int(history_size)
        self.anomaly_threshold = float(anomaly_threshold)
        self.anomaly_min_runs = int(anomaly_min_runs)
        self.anomaly_min_ratio = float(anomaly_min_ratio)
        self.anomaly_min_excess = float(anomaly_min_excess)
        self.sink_errors = sink_errors
        self.sinks = []
        for sink in sinks or ():
            self.add_sink(sink)
        self._lock = threading.Lock()
        self._history = {}   # pipeline name -> deque of PipelineMetrics (oldest first)
        self._totals = {}  # executions ever recorded, per pipeline name

    # -- settings -------------------------------------------------------------------------------
    @property
    def enable_tracking(self):
        """Alias of :attr:`enabled` (the constructor's name for it)."""
        return self.enabled

    @enable_tracking.setter
    def enable_tracking(self, value):
        self.enabled = bool(value)

    def add_sink(self, sink):
        """Forward every finished execution to a sink.

        Parameters
        ----------
        sink : MonitorSink or callable
            An object with ``emit(metrics)`` or a function ``f(metrics)``.

        Returns
        -------
        MonitorSink or callable
            ``sink`` itself (so it can be kept: ``s = monitor.add_sink(MLflowSink())``).

        Raises
        ------
        TypeError
            When ``sink`` has no ``emit`` method and is not callable.
        """
        if isinstance(sink, MonitorSink):
            self.sinks.append(sink)
        elif callable(sink):
            self.sinks.append(_CallableSink(sink))
        else:
            raise TypeError(f"A monitor sink needs an emit(metrics) method or must be callable; "
                            f"got {sink!r} ({type(sink).__name__})")
        return sink

    def close(self):
        """Close the sinks that can be closed (e.g. end the MLflow run an MLflowSink created)."""
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if close is not None:
                close()

    # -- pickling: the lock cannot travel -------------------------------------------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"]
        state["_history"] = {name: list(d) for name, d in self._history.items()}
        return state

    def __setstate__(self, state):
        history = state.pop("_history")
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._history = {name: collections.deque(items, maxlen=self.history_size)
                         for name, items in history.items()}

    # -- hooks (called by the execution loop) ---------------------------------------------------
    def _metrics_of(self, run):
        metrics = run.extra.get(self)
        if metrics is None:  # attached in the middle of an execution: start recording now
            metrics = run.extra[self] = _started(run)
        return metrics

    def before_run(self, run):
        """Start recording an execution (a hook of the execution loop).

        Parameters
        ----------
        run : ~ml_toolbox.context.RunContext
            The execution.
        """
        run.extra[self] = _started(run)

    def after_stage(self, ctx, status="success", error=None):
        """Record a finished stage run (a hook of the execution loop).

        Parameters
        ----------
        ctx : ~ml_toolbox.context.StageContext
            The stage run.
        status : {"success", "failed"}, default="success"
            How it ended.
        error : BaseException or None, default=None
            The error of its last attempt.
        """
        # The hot path of monitoring (single-row predict): attribute reads and one tuple, no
        # further call when the data are 2-D numpy arrays (``status``/``error``: on_stage_error's).
        if ctx.__class__ is _AtOnceStageContext:
            return  # stages that ran at once, sized by the loop: recorded together in after_run
        run = ctx.run
        metrics = run.extra.get(self)
        if metrics is None:
            metrics = self._metrics_of(run)
        try:
            # sizes known already (the loop sizes the stages it runs at once) are not asked again
            summary_in = ctx._summary_in
            if summary_in is None:
                last = metrics._last_output
                if last is not None and last[0] is ctx.X:
                    summary_in = last[1]  # the previous stage's output, sized already
                else:
                    summary_in = ctx.input_summary
            if status != "success":
                summary_out = _UNKNOWN
            elif (summary_out := ctx._summary_out) is None:
                out = ctx.output
                # an array (the usual output) is sized here; the context's property also tells a
                # fitted model (no data) from data
                if type(out) is _ndarray and out.ndim == 2:
                    shape = out.shape
                    summary_out = (shape[0], shape[1], out.nbytes)
                else:
                    summary_out = ctx.output_summary
                # kept until the next stage's record (it is that stage's input, alive anyway);
                # dropped when the execution ends
                metrics._last_output = (out, summary_out)
        except Exception:  # noqa: BLE001 - an object the context cannot size: unknown, not a crash
            logger.debug("cannot size the data of stage %r", ctx.stage_name, exc_info=True)
            summary_in, summary_out = _UNKNOWN, _UNKNOWN
        duration = ctx.duration
        if duration is None:
            duration = time.perf_counter() - ctx.start
        extra = ctx._extra  # not ctx.extra: that would make a dict for nothing
        caught = ctx.warnings
        metrics._stages.append(_new_record(StageRecord, (
            ctx.stage_name, ctx.index, ctx.mode, run.start_time + (ctx.start - run.start),
            duration, status, *summary_in, *summary_out, ctx.attempt,
            None if error is None else _error_text(error),
            tuple(extra.get(self, ())) if extra else (),
            tuple([_warning_text(w) for w in caught]) if caught else ())))

    def on_stage_error(self, ctx, error):
        """Record a stage run that failed for good (a hook of the execution loop).

        Parameters
        ----------
        ctx : ~ml_toolbox.context.StageContext
            The stage run.
        error : BaseException
            The error of its last attempt.
        """
        self.after_stage(ctx, "failed", error)

    def on_stage_retry(self, ctx, error):
        """Note the error that made the retry policy try a stage again (a hook).

        Parameters
        ----------
        ctx : ~ml_toolbox.context.StageContext
            The stage run.
        error : BaseException
            The error of the previous attempt.
        """
        ctx.extra.setdefault(self, []).append(_error_text(error))

    def on_run_error(self, run, error):
        """Record a failed execution (a hook of the execution loop).

        Parameters
        ----------
        run : ~ml_toolbox.context.RunContext
            The execution.
        error : BaseException
            The error that ended it.
        """
        self.after_run(run, "failed", error)

    def after_run(self, run, status="success", error=None):
        """Record a finished execution and hand it to the sinks (a hook of the execution loop).

        Parameters
        ----------
        run : ~ml_toolbox.context.RunContext
            The execution.
        status : {"success", "failed"}, default="success"
            How it ended.
        error : BaseException or None, default=None
            The error that ended it.
        """
        metrics = run.extra.pop(self, None)
        if metrics is None:
            metrics = self._metrics_of(run)
            run.extra.pop(self, None)
        metrics._last_output = None
        duration = run.duration
        metrics.duration = duration if duration is not None else time.perf_counter() - run.start
        metrics.status = status
        if error is not None:
            metrics.error = _error_text(error)
        plan = getattr(run.pipeline, "fast_plan_", None)  # an inference pipeline's fast plan
        if plan is not None:
            metrics.fast_path = plan.current_path(run.mode)
        at_once = run._at_once
        if at_once is not None:  # the stages ran at once: their records are made when first read
            metrics._at_once = (run.start_time, run.start, *at_once)
        elif len(metrics._stages) > 1:
            metrics._stages.sort(key=_by_index)  # in order even when stages ran in parallel
        self._append(metrics)
        if self.sinks:
            self._emit(metrics, may_raise=error is None)

    def _record_direct(self, pipeline, mode, run_id, start_time, start, duration, at_once,
                       stages, error):
        """Record one execution the execution loop ran for this monitor alone, without contexts
        (:func:`ml_toolbox.base._monitored`: what the hooks would have recorded, made directly).

        ``at_once`` is ``(names, modes, stamps, sizes)`` when the stages ran in one call (the
        records are then made when first read); otherwise ``stages`` lists, per stage run,
        ``(name, index, mode, began, duration, status, size_in, size_out, error, warnings)``
        with ``began`` on the ``start`` clock and ``warnings`` the recorded messages. ``error``
        is the exception that ended the run, or None.
        """
        metrics = _new_object(PipelineMetrics)
        metrics.pipeline_name = pipeline.name
        metrics.mode = mode
        metrics.run_id = run_id
        metrics.start_time = start_time
        metrics.duration = duration
        metrics._last_output = None
        if error is None:
            metrics.status = "success"
            metrics.error = None
        else:
            metrics.status = "failed"
            metrics.error = _error_text(error)
        plan = getattr(pipeline, "fast_plan_", None)  # an inference pipeline's fast plan
        metrics.fast_path = None if plan is None else plan.current_path(mode)
        if at_once is not None:
            metrics._at_once = (start_time, start, *at_once)
            metrics._stages = []
        else:
            metrics._at_once = None
            metrics._stages = [_new_record(StageRecord, (
                name, i, stage_mode, start_time + (began - start), took, status, *size_in,
                *size_out, 1, None if failure is None else _error_text(failure), (),
                tuple([_warning_text(w) for w in warned]) if warned else ()))
                for name, i, stage_mode, began, took, status, size_in, size_out, failure, warned
                in stages]
        self._append(metrics)
        if self.sinks:
            self._emit(metrics, may_raise=error is None)

    def _record_row(self, name, mode, run_id, start_time, duration, at_once, fast_path):
        """Record one successful one-row execution whose stages ran at once
        (:func:`ml_toolbox.base._monitored_row`): ``at_once`` is ``(start_time, start, names,
        modes, stamps, sizes)``, the raw timings and sizes its stage records are made from when
        first read; what :meth:`_record_direct` records for such a run, in fewer steps."""
        metrics = _new_object(PipelineMetrics)
        metrics.pipeline_name = name
        metrics.mode = mode
        metrics.run_id = run_id
        metrics.start_time = start_time
        metrics.duration = duration
        metrics.status = "success"
        metrics.error = metrics._last_output = None
        metrics.fast_path = fast_path
        metrics._at_once = at_once
        metrics._stages = []
        self._append(metrics)
        if self.sinks:
            self._emit(metrics, may_raise=True)

    def record(self, metrics):
        """Add a finished execution to the history (the hooks do this; also usable by hand).

        The sinks are not called.

        Parameters
        ----------
        metrics : PipelineMetrics
            The execution.

        Raises
        ------
        TypeError
            When ``metrics`` is not a :class:`PipelineMetrics`.
        """
        if not isinstance(metrics, PipelineMetrics):
            raise TypeError(f"record() takes a PipelineMetrics; got {type(metrics).__name__}")
        self._append(metrics)

    def _append(self, metrics):
        name = metrics.pipeline_name
        with self._lock:
            history = self._history.get(name)
            if history is None:
                history = self._history[name] = collections.deque(maxlen=self.history_size)
            history.append(metrics)
            self._totals[name] = self._totals.get(name, 0) + 1

    def _emit(self, metrics, may_raise):
        for sink in self.sinks:
            try:
                sink.emit(metrics)
            except Exception as exc:
                if may_raise and self.sink_errors == "raise":
                    raise
                message = (f"Monitor sink {sink!r} failed on {metrics.pipeline_name!r} "
                           f"({metrics.mode}): {_error_text(exc)}")
                logger.warning(message, exc_info=True)
                warnings.warn(message, RuntimeWarning, stacklevel=2)

    # -- reading --------------------------------------------------------------------------------
    def _snapshot(self):
        with self._lock:
            return {name: list(d) for name, d in self._history.items()}, dict(self._totals)

    @property
    def pipeline_names(self):
        """Names of the pipelines recorded, in the order first seen."""
        with self._lock:
            return list(self._history)

    def __len__(self):
        with self._lock:
            return sum(len(d) for d in self._history.values())

    def _select(self, snapshot, name):
        if name is None:
            return snapshot
        if name not in snapshot:
            known = list(snapshot)
            hint = "" if known else " (nothing recorded yet)"
            raise KeyError(f"No pipeline named {name!r} in this monitor. "
                           f"Known pipelines: {known}{hint}")
        return {name: snapshot[name]}

    def history(self, name=None, *, mode=None, status=None, last=None):
        """Recorded executions, oldest first.

        Parameters
        ----------
        name : str, optional
            Only this pipeline (``KeyError`` naming the known ones when it has none recorded).
        mode : str, optional
            Only executions of this mode (``"fit"``, ``"predict"``, ...).
        status : {"success", "failed"}, optional
            Only executions that ended this way.
        last : int, optional
            Only the ``last`` most recent of those.

        Returns
        -------
        list of PipelineMetrics
            The executions selected, oldest first.
        """
        snapshot, _ = self._snapshot()
        runs = [m for items in self._select(snapshot, name).values() for m in items
                if (mode is None or m.mode == mode) and (status is None or m.status == status)]
        runs.sort(key=lambda m: (m.start_time, m.run_id if isinstance(m.run_id, int) else 0))
        if last is not None:
            runs = runs[-last:] if last > 0 else []
        return runs

    def get_pipeline_statistics(self, name=None, *, mode=None):
        """Per-pipeline and per-stage statistics of the recorded history.

        Durations are those of successful runs; failed runs are counted in ``count`` and
        ``failures``. Percentiles are ``numpy.percentile`` (linear) on the raw durations.

        Parameters
        ----------
        name : str, optional
            One pipeline's statistics; by default a dict of all of them (``{}`` when the monitor has
            recorded nothing).
        mode : str, optional
            Only executions of this mode (``"fit"``, ``"transform"``, ``"predict"``, ...).

        Returns
        -------
        dict
            For one pipeline: ``executions``, ``executions_total`` (ever recorded, beyond the
            history window), ``failures``, ``modes`` (executions per mode), ``mean_duration``,
            ``p50_duration``, ``p95_duration``, ``p99_duration``, ``max_duration``,
            ``total_duration`` (seconds, whole executions), and ``stages``: per stage name,
            ``count``, ``failures``, the same duration keys, ``mean_throughput`` (input rows per
            second), ``mean_rows_in``, ``mean_bytes_in``, ``mean_bytes_out``, ``retries``,
            ``warnings`` and ``modes`` (runs per stage mode). An inference pipeline's predictions
            on the fast plan add ``fast_path``: ``{"fast": n, "fallback": m, "reasons": {reason:
            k}}``, the executions that ran every stage on its kernel, those that did not, and why.

        Raises
        ------
        KeyError
            ``name`` was given but no execution of it (in ``mode``) is recorded; the message lists
            the known pipelines.
        """
        snapshot, totals = self._snapshot()
        selected = self._select(snapshot, name)
        result = {}
        for pipe_name, items in selected.items():
            if mode is not None:
                items = [m for m in items if m.mode == mode]
                if not items:
                    if name is not None:
                        modes = sorted({m.mode for m in snapshot[pipe_name]})
                        raise KeyError(f"No {mode!r} execution of pipeline {pipe_name!r} in this "
                                       f"monitor. Recorded modes: {modes}")
                    continue
            result[pipe_name] = self._pipeline_stats(items, totals.get(pipe_name, len(items)))
        return result[name] if name is not None else result

    @staticmethod
    def _pipeline_stats(items, total):
        ok = [m.duration for m in items if not m.failed and m.duration is not None]
        failures = sum(m.failed for m in items)
        stats = _duration_stats(ok, failures)
        del stats["count"]
        out = {"executions": len(items), "executions_total": total,
               "modes": dict(collections.Counter(m.mode for m in items))}
        out.update(stats)
        paths = [m.fast_path for m in items if m.fast_path is not None]
        if paths:  # predictions on the fast plan: on kernels, or which stage fell back and why
            reasons = collections.Counter(r for p in paths if p != "kernel"
                                          for r in p[len("fallback: "):].split("; "))
            out["fast_path"] = {"fast": paths.count("kernel"),
                                "fallback": len(paths) - paths.count("kernel"),
                                "reasons": dict(reasons)}
        groups = {}
        for m in items:
            for s in m.stages:
                groups.setdefault(s.stage_name, []).append(s)
        stages = {}
        for stage_name, records in groups.items():
            ok = [s.duration for s in records if not s.failed]
            st = _duration_stats(ok, sum(s.failed for s in records))
            st["mean_throughput"] = _mean([s.throughput for s in records if not s.failed])
            st["mean_rows_in"] = _mean([s.rows_in for s in records])
            st["mean_bytes_in"] = _mean([s.bytes_in for s in records])
            st["mean_bytes_out"] = _mean([s.bytes_out for s in records if not s.failed])
            st["retries"] = sum(s.retries for s in records)
            st["warnings"] = sum(len(s.warnings) for s in records)
            st["modes"] = dict(collections.Counter(s.mode for s in records))
            stages[stage_name] = st
        out["stages"] = stages
        return out

    def _groups(self, name=None, mode=None, by_rows=False):
        """(pipeline, stage, stage mode) -> [(execution, record)], in recorded order; with
        ``by_rows``, the rows bucket (see :func:`rows_bucket`) ends the key."""
        snapshot, _ = self._snapshot()
        groups = {}
        for pipe_name, items in self._select(snapshot, name).items():
            for m in items:
                if mode is not None and m.mode != mode:
                    continue
                for s in m.stages:
                    key = (pipe_name, s.stage_name, s.mode)
                    if by_rows:
                        key += (rows_bucket(s.rows_in),)
                    groups.setdefault(key, []).append((m, s))
        return groups

    def anomalies(self, name=None, *, stage=None, mode=None, threshold=None, min_runs=None,
                  min_ratio=None, min_excess=None):
        """Stage runs far outside the history of comparable runs.

        Runs are compared only with comparable runs: the same stage, in the same mode, on an
        input of the same size bucket (1 row; 2-10 rows; 11-100; 101-1000; ... -- a full-batch
        call is never judged against one-row calls). For each such group with at least
        ``min_runs`` successful runs, a run is anomalous when all three hold:

        - its robust z-score ``(duration - median) / (1.4826 * MAD)`` exceeds ``threshold`` in
          absolute value (Iglewicz and Hoaglin's modified z-score; the MAD is floored at 1 % of
          the median, so a history of identical durations still has a scale);
        - it is at least ``min_ratio`` times slower (or faster) than the median;
        - it is at least ``min_excess`` seconds away from the median (1 ms by default), so the
          jitter of microsecond runs is never an anomaly.

        Parameters
        ----------
        name : str, optional
            Only this pipeline.
        stage : str, optional
            Only this stage (``KeyError`` naming the recorded stages when unknown).
        mode : str, optional
            Only executions of this mode (the pipeline's mode: ``"fit"``, ``"predict"``, ...).
        threshold, min_runs, min_ratio, min_excess : optional
            Override the monitor's ``anomaly_threshold``, ``anomaly_min_runs``,
            ``anomaly_min_ratio`` and ``anomaly_min_excess``.

        Returns
        -------
        list of Anomaly
            Oldest first; ``anomaly.reason`` says why.
        """
        threshold = self.anomaly_threshold if threshold is None else float(threshold)
        min_runs = self.anomaly_min_runs if min_runs is None else int(min_runs)
        min_ratio = self.anomaly_min_ratio if min_ratio is None else float(min_ratio)
        min_excess = self.anomaly_min_excess if min_excess is None else float(min_excess)
        groups = self._groups(name, mode, by_rows=True)
        if stage is not None:
            known = sorted({key[1] for key in groups})
            if stage not in known:
                raise KeyError(f"No stage named {stage!r} in the monitored history. "
                               f"Recorded stages: {known}")
        found = []
        for (pipe_name, stage_name, stage_mode, bucket), pairs in groups.items():
            if stage is not None and stage_name != stage:
                continue
            pairs = [(m, s) for m, s in pairs if not s.failed]
            if len(pairs) < min_runs:
                continue
            durations = np.array([s.duration for _, s in pairs], dtype=float)
            median = float(np.median(durations))
            mad = float(np.median(np.abs(durations - median)))
            scale = max(_MAD_TO_SIGMA * mad, 0.01 * median, 1e-12)
            scores = (durations - median) / scale
            for (m, s), d, score in zip(pairs, durations, scores):
                if abs(score) <= threshold:
                    continue
                ratio = d / median if median > 0 else math.inf
                if 1 / min_ratio < ratio < min_ratio or abs(d - median) < min_excess:
                    continue
                if score > 0:
                    how = f"{ratio:.1f}x slower than" if math.isfinite(ratio) else "slower than"
                else:
                    how = f"{1 / ratio:.1f}x faster than" if ratio > 0 else "far faster than"
                reason = (f"stage {stage_name!r} of {pipe_name!r} took {_fmt_seconds(d)} in "
                          f"{stage_mode!r} on {bucket}, {how} its median {_fmt_seconds(median)} "
                          f"over {len(pairs)} runs of that size (robust z-score {score:+.1f}, "
                          f"threshold {threshold:g})")
                found.append(Anomaly(pipe_name, stage_name, stage_mode, m.run_id, s.start_time,
                                     float(d), median, mad, float(score), len(pairs), reason,
                                     bucket))
        found.sort(key=lambda a: a.start_time)
        return found

    def to_frame(self, name=None):
        """Return one row per stage run, for your own analysis.

        Parameters
        ----------
        name : str, optional
            Only this pipeline.

        Returns
        -------
        pandas.DataFrame
            Columns ``pipeline_name``, ``pipeline_mode``, ``run_id``, the fields of
            :class:`StageRecord` (``start_time`` as a timestamp) and ``throughput``.
        """
        import pandas as pd

        rows = []
        for m in self.history(name):
            for s in m.stages:
                row = {"pipeline_name": m.pipeline_name, "pipeline_mode": m.mode,
                       "run_id": m.run_id}
                row.update(s.to_dict())
                row["start_time"] = pd.Timestamp(s.start_time, unit="s")
                row["throughput"] = s.throughput
                rows.append(row)
        columns = ["pipeline_name", "pipeline_mode", "run_id", *StageRecord._fields, "throughput"]
        return pd.DataFrame(rows, columns=columns)

    def reset(self):
        """Forget the whole history."""
        with self._lock:
            self._history.clear()
            self._totals.clear()

    # -- export / import ------------------------------------------------------------------------
    def to_dict(self):
        """Return the monitor's settings and history as plain JSON-ready values.

        Returns
        -------
        dict
            ``format``, ``version``, ``created``, ``settings`` and ``executions`` (layout in
            docs/monitoring.md).
        """
        return {"format": FORMAT, "version": FORMAT_VERSION,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "settings": {"history_size": self.history_size,
                             "anomaly_threshold": self.anomaly_threshold,
                             "anomaly_min_runs": self.anomaly_min_runs,
                             "anomaly_min_ratio": self.anomaly_min_ratio,
                             "anomaly_min_excess": self.anomaly_min_excess},
                "executions": [m.to_dict() for m in self.history()]}

    def to_json(self, indent=None):
        """Return the history as JSON text; :meth:`from_json` reads it.

        Parameters
        ----------
        indent : int or None, default=None
            Indentation of the JSON text (None: one line).

        Returns
        -------
        str
            :meth:`to_dict` as JSON (layout in docs/monitoring.md).
        """
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def export(self, path, indent=None):
        """Write :meth:`to_json` to a file atomically (a complete file or none).

        :meth:`load` reads it back.

        Parameters
        ----------
        path : str or path-like
            The file to write (replaced if it exists).
        indent : int or None, default=None
            Indentation of the JSON text.

        Returns
        -------
        pathlib.Path
            The path written.
        """
        path = Path(path)
        text = self.to_json(indent=indent)
        fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return path

    @classmethod
    def from_json(cls, text, *, source="JSON text", **kwargs):
        """Build a monitor holding the history of a :meth:`to_json` text.

        Settings come from the text unless given in ``kwargs`` (e.g. ``sinks=``); the history size
        grows to hold every execution of the text.

        Parameters
        ----------
        text : str or bytes
            The JSON text.
        source : str, default="JSON text"
            What the text is, for error messages (:meth:`load` passes the file name).
        **kwargs
            Constructor parameters of :class:`PipelineMonitor` that override the text's settings.

        Returns
        -------
        PipelineMonitor
            A new monitor with the executions recorded.

        Raises
        ------
        ValueError
            The text is not JSON, not a monitor export (``"format"`` marker), of a newer format
            version, or malformed; the message says what and where.
        """
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{source} is not valid JSON ({exc}); expected a PipelineMonitor "
                             f"export") from exc
        executions, settings = _validate_export(data, source)
        options = {k: v for k, v in settings.items()
                   if k in ("history_size", "anomaly_threshold", "anomaly_min_runs",
                            "anomaly_min_ratio", "anomaly_min_excess") and k not in kwargs}
        try:
            cls(**options)  # the file's own settings, checked on their own
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source} has invalid settings: {exc}") from exc
        options.update(kwargs)
        per_pipe = collections.Counter(e["pipeline_name"] for e in executions)
        options["history_size"] = max([options.get("history_size", 1000), *per_pipe.values()])
        monitor = cls(**options)
        for entry in executions:
            monitor.record(PipelineMetrics.from_dict(entry))
        return monitor

    @classmethod
    def load(cls, path, **kwargs):
        """Read a file written by :meth:`export` (see :meth:`from_json`).

        Parameters
        ----------
        path : str or path-like
            The file.
        **kwargs
            Constructor parameters of :class:`PipelineMonitor` that override the file's settings.

        Returns
        -------
        PipelineMonitor
            A new monitor with the file's executions recorded.

        Raises
        ------
        ValueError
            The file is not UTF-8 text or not a valid monitor export.
        OSError
            The file cannot be read.
        """
        path = Path(path)
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{str(path)!r} is not a text file ({exc}); expected a "
                             f"PipelineMonitor export") from exc
        return cls.from_json(text, source=repr(str(path)), **kwargs)

    # -- display --------------------------------------------------------------------------------
    def _sections(self, snapshot=None, only=None):
        """Display sections: ``(pipeline, execution mode, n executions, [(stage, stats), ...])``.

        ``only``, a set of ``(pipeline, mode)``, limits the work to those sections.
        """
        if snapshot is None:
            snapshot, _ = self._snapshot()
        sections = []
        for pipe_name, items in snapshot.items():
            by_mode = {}
            for m in items:
                by_mode.setdefault(m.mode, []).append(m)
            for mode, runs in by_mode.items():
                if only is not None and (pipe_name, mode) not in only:
                    continue
                groups = {}
                for m in runs:
                    for s in m.stages:
                        groups.setdefault(s.stage_name, []).append(s)
                rows = []
                for stage_name, records in groups.items():
                    ok = [s.duration for s in records if not s.failed]
                    st = _duration_stats(ok, sum(s.failed for s in records))
                    st["throughput"] = _mean([s.throughput for s in records if not s.failed])
                    st["bytes_in"] = _mean([s.bytes_in for s in records])
                    rows.append((stage_name, st))
                sections.append((pipe_name, mode, len(runs), rows))
        return sections

    _COLUMNS = ("Stage", "Runs", "Failed", "Mean", "P50", "P95", "P99", "Max", "Rows/s",
                "Bytes in")

    @staticmethod
    def _cells(stage_name, st):
        return (stage_name, str(st["count"]), str(st["failures"]),
                *(_fmt_seconds(st[k]) for k in ("mean_duration", "p50_duration", "p95_duration",
                                                "p99_duration", "max_duration")),
                _fmt_rate(st["throughput"]), _fmt_bytes(st["bytes_in"]))

    @staticmethod
    def _section_title(pipe_name, mode, n):
        return f"{pipe_name} · {mode} · {n} execution{'s' * (n != 1)}"

    def _title(self):
        n = len(self)
        pipes = len(self.pipeline_names)
        return (f"PipelineMonitor: {n} execution{'s' * (n != 1)} of {pipes} "
                f"pipeline{'s' * (pipes != 1)} (history_size={self.history_size}"
                f"{'' if self.enabled else ', disabled'})")

    def __rich__(self):
        from rich import box
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        parts = [Text(self._title(), style="bold")]
        for pipe_name, mode, n, rows in self._sections():
            table = Table(title=self._section_title(pipe_name, mode, n), title_justify="left",
                          title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
                          padding=0)
            width = max(len(stage_name) for stage_name, _ in rows) if rows else 5
            for col in self._COLUMNS:
                if col == "Stage":
                    table.add_column(col, min_width=min(width, 24), overflow="fold")
                else:
                    table.add_column(col, justify="right", no_wrap=True)
            for stage_name, st in rows:
                table.add_row(*self._cells(stage_name, st),
                              style="red" if st["failures"] else None)
            parts.append(table)
        if len(parts) == 1:
            parts.append(Text("nothing recorded yet", style="dim"))
        return Group(*parts)

    #: How many stage rows the notebook's HTML shows: those of the most recently run pipelines.
    html_rows = 100

    def _repr_html_(self):
        """The notebook's table: the stage rows of the most recently run pipelines, bounded.

        Each pipeline and execution mode is a group (its heading says when it last ran, local time to
        the second); groups come oldest first, and only the latest :attr:`html_rows` stage rows are
        shown, after a line counting the others, so 100,000 recorded runs stay a small page.

        Returns
        -------
        str
            The HTML, with its scoped CSS (see :mod:`ml_toolbox._html`).
        """
        snapshot, _ = self._snapshot()
        last, stages = {}, {}  # (pipeline, mode) -> its latest start; -> its stage names
        for pipe_name, items in snapshot.items():
            for m in items:
                key = (pipe_name, m.mode)
                last[key] = max(last.get(key, m.start_time), m.start_time)
                stages.setdefault(key, set()).update(s.stage_name for s in m.stages)
        limit = max(0, int(self.html_rows))
        latest, budget = set(), limit  # the groups of the latest `limit` stage rows: only those get stats
        for key in sorted(last, key=last.__getitem__, reverse=True):
            if budget <= 0:
                break
            latest.add(key)
            budget -= len(stages[key])
        sections = sorted(self._sections(snapshot, only=latest), key=lambda sec: last[(sec[0], sec[1])])
        rows, classes = [], []
        for pipe_name, mode, n, stage_rows in sections:
            heading = f"{self._section_title(pipe_name, mode, n)} · last {_html.local_time(last[(pipe_name, mode)])}"
            rows.append(["\0" + heading])
            classes.append(None)
            for stage_name, st in stage_rows:
                rows.append(list(self._cells(stage_name, st)))
                classes.append("failed" if st["failures"] else None)
        limit = max(0, int(self.html_rows))
        shown, count, pending, i = [], 0, False, len(rows) - 1  # the latest `limit` stage rows
        while i >= 0:
            if len(rows[i]) == 1:  # a group's heading: shown with its rows
                if pending:
                    shown.append(i)
                pending = False
            elif count < limit:
                shown.append(i)
                count, pending = count + 1, True
            else:
                break
            i -= 1
        if pending:  # stopped inside a group: its heading still shows
            shown.append(max(j for j in range(i + 1) if len(rows[j]) == 1))
        shown.reverse()
        hidden = sum(len(names) for names in stages.values()) - sum(len(rows[i]) != 1 for i in shown)
        return _html.table(self._title(), self._COLUMNS, [rows[i] for i in shown],
                           numeric=range(1, len(self._COLUMNS)), css=[classes[i] for i in shown],
                           total=len(shown) + hidden, hidden="stage rows of earlier pipelines",
                           note=" (monitor.to_frame() has every run)",
                           empty="nothing recorded yet")

    def __repr__(self):
        return (f"PipelineMonitor(executions={len(self)}, pipelines={self.pipeline_names}, "
                f"history_size={self.history_size}, enabled={self.enabled})")

    def plot(self, name=None, *, mode=None, ax=None, logy=True, show_anomalies=True):
        """Draw stage durations over time (matplotlib; the ``plot`` extra).

        One panel per pipeline (or everything on ``ax``), one line per stage and stage mode, failed
        runs as red crosses and anomalies (see :meth:`anomalies`) circled.

        Parameters
        ----------
        name : str, optional
            Only this pipeline.
        mode : str, optional
            Only executions of this mode.
        ax : matplotlib Axes, optional
            Draw on it instead of a new figure.
        logy : bool, default=True
            Logarithmic duration axis (fit and predict often differ by orders of magnitude).
        show_anomalies : bool, default=True
            Circle the anomalous runs.

        Returns
        -------
        matplotlib.figure.Figure
            The figure drawn on (that of ``ax`` when given).

        Raises
        ------
        ImportError
            matplotlib is not installed.
        """
        try:
            import matplotlib.dates as mdates
            import matplotlib.pyplot as plt
            import matplotlib.ticker as mticker
        except ImportError as exc:
            raise ImportError(
                "PipelineMonitor.plot() needs matplotlib, which is not installed. Install the "
                "'plot' extra: pip install 'ml_toolbox[plot]'") from exc
        groups = self._groups(name, mode)
        pipes = list(dict.fromkeys(key[0] for key in groups)) or ["(nothing recorded)"]
        if ax is None:
            fig, axes = plt.subplots(len(pipes), 1, figsize=(9, 2.6 * len(pipes) + 0.6),
                                     squeeze=False, layout="constrained")
            axes = {p: a for p, a in zip(pipes, axes[:, 0])}
        else:
            fig = ax.figure
            axes = {p: ax for p in pipes}
        flagged = set()
        if show_anomalies and groups:
            flagged = {(a.pipeline_name, a.stage_name, a.mode, a.start_time)
                       for a in self.anomalies(name, mode=mode)}
        to_time = _dt.datetime.fromtimestamp
        spans = {}  # pipeline -> [min, max] duration drawn, to choose the scale
        marks = {}  # pipeline -> whether failed runs / anomalies were drawn
        for (pipe_name, stage_name, stage_mode), pairs in groups.items():
            a = axes[pipe_name]
            ok = [s for _, s in pairs if not s.failed]
            bad = [s for _, s in pairs if s.failed]
            drawn = [s.duration * 1e3 for s in ok + bad if s.duration > 0]
            if drawn:
                lo, hi = spans.get(pipe_name, (math.inf, 0.0))
                spans[pipe_name] = (min(lo, *drawn), max(hi, *drawn))
            line, = a.plot([to_time(s.start_time) for s in ok], [s.duration * 1e3 for s in ok],
                           marker="o", markersize=3, linewidth=1,
                           label=f"{stage_name} ({stage_mode})")
            seen = marks.setdefault(pipe_name, set())
            if bad:
                a.plot([to_time(s.start_time) for s in bad], [s.duration * 1e3 for s in bad],
                       linestyle="none", marker="x", color="red", markersize=7,
                       label="_failed" if "failed" in seen else "failed run")
                seen.add("failed")
            hits = [s for s in ok if (pipe_name, stage_name, stage_mode, s.start_time) in flagged]
            if hits:
                a.plot([to_time(s.start_time) for s in hits], [s.duration * 1e3 for s in hits],
                       linestyle="none", marker="o", markersize=11, markerfacecolor="none",
                       markeredgecolor=line.get_color(), markeredgewidth=1.5,
                       label="_anomaly" if "anomaly" in seen else "anomaly (circled)")
                seen.add("anomaly")
        plain = mticker.FuncFormatter(lambda v, _: f"{v:g}")
        for pipe_name, a in axes.items():
            if ax is None or pipe_name == pipes[0]:
                a.set_title(pipe_name if ax is None else ", ".join(pipes))
                a.set_ylabel("duration (ms)")
                lo, hi = spans.get(pipe_name, (1.0, 1.0))
                if logy and groups and hi > 3 * lo:  # a narrow range reads better linear
                    a.set_yscale("log")
                    a.yaxis.set_major_formatter(plain)
                    a.yaxis.set_minor_locator(mticker.LogLocator(base=10, subs=(2, 5)))
                    a.yaxis.set_minor_formatter(plain)
                a.grid(True, alpha=0.3)
                if groups:
                    handles, labels = a.get_legend_handles_labels()
                    order = sorted(range(len(labels)), key=lambda i: labels[i] in _MARK_LABELS)
                    a.legend([handles[i] for i in order], [labels[i] for i in order],
                             fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
                locator = mdates.AutoDateLocator()
                a.xaxis.set_major_locator(locator)
                a.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        return fig


_MARK_LABELS = ("failed run", "anomaly (circled)")


def _check_non_negative(name, value):
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value) and value >= 0
    if not ok:
        raise ValueError(f"{name} must be a number >= 0 (seconds); got {value!r}")


def _check_positive(name, value, minimum=0.0):
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value) and (value > minimum if minimum == 0.0 else value >= minimum)
    if not ok:
        allowed = "a positive number" if minimum == 0.0 else f"a number >= {minimum:g}"
        raise ValueError(f"{name} must be {allowed}; got {value!r}")


# -- JSON validation --------------------------------------------------------------------------

_NUM = (int, float)
_EXEC_FIELDS = {"pipeline_name": (str,), "mode": (str,), "start_time": _NUM,
                "duration": _NUM + (type(None),), "status": (str,), "error": (str, type(None)),
                "stages": (list,)}
_STAGE_FIELDS = {"stage_name": (str,), "index": (int,), "mode": (str,), "start_time": _NUM,
                 "duration": _NUM, "status": (str,)}
_STAGE_OPTIONAL = {"rows_in": (int, type(None)), "cols_in": (int, type(None)),
                   "bytes_in": (int, type(None)), "rows_out": (int, type(None)),
                   "cols_out": (int, type(None)), "bytes_out": (int, type(None)),
                   "attempts": (int,), "error": (str, type(None)), "retry_errors": (list,),
                   "warnings": (list,)}


def _check_fields(obj, required, optional, where, source):
    if not isinstance(obj, dict):
        raise ValueError(f"{source} is malformed: {where} is a {type(obj).__name__}, expected an "
                         f"object")
    for key, types in required.items():
        if key not in obj:
            raise ValueError(f"{source} is malformed: {where} has no {key!r} field")
    for key, value in obj.items():
        types = required.get(key) or optional.get(key)
        if types is None:
            continue  # unknown fields (from a later minor addition) are ignored
        if isinstance(value, bool) or not isinstance(value, types):
            allowed = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ValueError(f"{source} is malformed: {where} field {key!r} is {value!r}, "
                             f"expected {allowed}")


def _validate_export(data, source):
    if not isinstance(data, dict) or "format" not in data:
        raise ValueError(f"{source} is not a PipelineMonitor export: it has no \"format\" marker "
                         f"(expected \"format\": {FORMAT!r})")
    if data["format"] != FORMAT:
        raise ValueError(f"{source} is not a PipelineMonitor export: \"format\" is "
                         f"{data['format']!r}, expected {FORMAT!r}")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{source} has an invalid format version {version!r}; expected an "
                         f"integer (this ml_toolbox reads version {FORMAT_VERSION})")
    if version > FORMAT_VERSION:
        raise ValueError(f"{source} was written in monitor format version {version}, newer than "
                         f"this ml_toolbox reads (version {FORMAT_VERSION}); upgrade ml_toolbox")
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        raise ValueError(f"{source} is malformed: \"settings\" is a {type(settings).__name__}, "
                         f"expected an object")
    executions = data.get("executions")
    if not isinstance(executions, list):
        raise ValueError(f"{source} is malformed: \"executions\" is "
                         f"{'missing' if executions is None else type(executions).__name__}, "
                         f"expected a list")
    cleaned = []
    for i, entry in enumerate(executions):
        where = f"execution #{i}"
        _check_fields(entry, _EXEC_FIELDS, {"run_id": (int, str, type(None))}, where, source)
        where = f"execution #{i} ({entry['pipeline_name']!r}, {entry['mode']!r})"
        stages = []
        for j, stage in enumerate(entry["stages"]):
            _check_fields(stage, _STAGE_FIELDS, _STAGE_OPTIONAL, f"{where} stage #{j}", source)
            stages.append({k: v for k, v in stage.items()
                           if k in _STAGE_FIELDS or k in _STAGE_OPTIONAL})
        entry = {k: v for k, v in entry.items() if k in _EXEC_FIELDS or k == "run_id"
                 or k == "fast_path" and isinstance(v, str)}
        entry["stages"] = stages
        cleaned.append(entry)
    return cleaned, settings
