"""The embedded run store: every tracked run in one SQLite file (WAL mode), queried in Python and
by ``ml-toolbox runs``.

Writing never fails a pipeline: a store that is locked, read-only, full or corrupt refuses the
run's record with one :class:`RunStoreWarning` naming the problem, and the pipeline's result is
unchanged. Reading a store that cannot be read raises :class:`RunStoreError`. Metrics are buffered
in memory and written in one transaction at the end of the run (and at most once a second while it
runs, for ``runs active``), so logging a metric costs a list append; each metric's values are
written as one row per write (its steps and values as little-endian int64 / float64 arrays), not
one row per value.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import re
import socket
import sqlite3
import threading
import time
import uuid
import warnings

import numpy as np

from ml_toolbox.runs._tracker import Tracker

__all__ = ["RunStore", "RunRecord", "RunStoreError", "RunStoreWarning", "RunNotFoundError",
           "SCHEMA_VERSION"]

logger = logging.getLogger(__name__)

#: Version of the tables' layout (table ``meta``, key ``schema``).
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT, status TEXT NOT NULL,
    start REAL NOT NULL, end REAL, heartbeat REAL, progress REAL, progress_text TEXT,
    error TEXT, error_stage TEXT, params TEXT, data TEXT, metrics TEXT,
    cpu_time REAL, peak_memory INTEGER, environment TEXT, tags TEXT, notes TEXT,
    tracker_errors TEXT, parent_id TEXT, archived REAL, pid INTEGER, host TEXT);
CREATE INDEX IF NOT EXISTS runs_name ON runs (name, start);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, key TEXT NOT NULL, chunk INTEGER NOT NULL, steps BLOB NOT NULL,
    vals BLOB NOT NULL, time REAL);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics (run_id, key, chunk);
CREATE TABLE IF NOT EXISTS stages (
    run_id TEXT NOT NULL, pipeline TEXT, stage TEXT, mode TEXT, idx INTEGER, start REAL,
    duration REAL, status TEXT, rows_in INTEGER, cols_in INTEGER, bytes_in INTEGER,
    retries INTEGER, error TEXT);
CREATE INDEX IF NOT EXISTS stages_run ON stages (run_id);
CREATE TABLE IF NOT EXISTS versions (
    run_id TEXT NOT NULL, store TEXT, name TEXT, version INTEGER, time REAL);
CREATE INDEX IF NOT EXISTS versions_run ON versions (run_id);
"""

_FIT_MODES = frozenset({"fit", "fit_transform", "partial_fit", "partial_fit_transform", "train"})
_FINISHED = ("success", "failed", "cancelled")
_FLUSH_EVERY = 1.0  # seconds between writes of a running run (metrics, progress, heartbeat)


class RunStoreError(OSError):
    """A run store that cannot be read (missing, corrupt, not a run store)."""


class RunStoreWarning(RuntimeWarning):
    """A run's record was refused (the store is locked, read-only, full or corrupt)."""


class RunNotFoundError(KeyError):
    """An unknown run id, metric or filter value; the message lists what exists."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def _problem(exc):
    """The name of what is wrong with a store, from the error SQLite (or the OS) raised."""
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return "locked (another process holds its write lock)"
    if "readonly" in text or "read-only" in text or "read only" in text:
        return "read-only"
    if "full" in text or getattr(exc, "errno", None) == 28:
        return "full (no space left)"
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return "corrupt (not a readable SQLite database)"
    if "unable to open" in text or isinstance(exc, PermissionError):
        return "not writable (cannot open or create the file)"
    return f"unusable ({type(exc).__name__}: {exc})"


def _dumps(value):
    return json.dumps(value, default=repr, allow_nan=True)


def _loads(text, default=None):
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def _parse_since(value):
    """A wall-clock time from ``since``: seconds since the epoch, a datetime, an ISO date, or an
    age such as ``"7d"``, ``"12h"``, ``"30m"``."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, _dt.datetime):
        return value.timestamp()
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day).timestamp()
    if isinstance(value, _dt.timedelta):
        return time.time() - value.total_seconds()
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", value)
        if m:
            seconds = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400,
                                            "w": 604800}[m.group(2)]
            return time.time() - seconds
        try:
            return _dt.datetime.fromisoformat(value).timestamp()
        except ValueError:
            pass
    raise ValueError(f"since={value!r} is not a time: give an age such as '7d', '12h' or '30m', "
                     "an ISO date such as '2026-12-01', a datetime, or seconds since the epoch.")


def _pid_alive(pid):
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, ValueError):
        return True
    return True


class RunRecord:
    """One stored run (read from a :class:`RunStore`): plain attributes, ``to_dict()``, displays.

    Made by the store's queries (:meth:`RunStore.get`, :meth:`RunStore.runs`...), not by hand.

    Parameters
    ----------
    row : sequence
        The run's row of the ``runs`` table, in the order of ``RunRecord._FIELDS``.
    versions : iterable of dict, default=()
        The store versions saved from the run.
    stale_after : float, default=3600.0
        A running run whose heartbeat is older than this many seconds (or whose process is gone,
        on this host) shows as ``"stale"``.
    now : float, optional
        The current time (seconds since the epoch); default: now.

    Attributes
    ----------
    id, name, kind, status : str
        ``status`` is ``"running"``, ``"success"``, ``"failed"``, ``"cancelled"`` or ``"stale"``
        (running, but its process is gone or its heartbeat stopped).
    start, end, duration : float or None
    params, data, metrics, tags, environment : dict
    notes : list of dict
        ``{"time": ..., "text": ...}``, oldest first.
    error, error_stage : str or None
    progress : float or None
    cpu_time : float or None
        CPU seconds of the process during the run.
    peak_memory : int or None
        The process's peak resident memory (bytes) at the end of the run.
    versions : list of dict
        Store versions saved from the run (``store``, ``name``, ``version``).
    archived : bool
        Whether the run was archived.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ml_toolbox.runs import RunStore, track
    >>> store = RunStore(tempfile.mkdtemp())
    >>> model = LogisticRegression()
    >>> with track(model, "fit", trackers=[store]) as run:
    ...     _ = model.fit([[0.0], [1.0]], [0, 1])
    >>> record = store.get(run.id[:8])
    >>> record.status, record.kind, record.params["C"]
    ('success', 'fit', 1.0)
    """

    _FIELDS = ("id", "name", "kind", "status", "start", "end", "heartbeat", "progress",
               "progress_text", "error", "error_stage", "params", "data", "metrics", "cpu_time",
               "peak_memory", "environment", "tags", "notes", "tracker_errors", "parent_id",
               "archived", "pid", "host")

    def __init__(self, row, versions=(), stale_after=3600.0, now=None):
        for field, value in zip(self._FIELDS, row):
            setattr(self, field, value)
        for field in ("params", "data", "metrics", "environment", "tags", "tracker_errors"):
            setattr(self, field, _loads(getattr(self, field), {}) or {})
        self.notes = _loads(self.notes, []) or []
        self.archived = self.archived is not None
        self.versions = list(versions)
        if self.status == "running":
            now = time.time() if now is None else now
            gone = self.host == socket.gethostname() and not _pid_alive(self.pid)
            if gone or (self.heartbeat or self.start) < now - stale_after:
                self.status = "stale"

    @property
    def duration(self):
        """Seconds from start to end (so far, for a running run; None for a run that never ended)."""
        if self.end is None:
            return None if self.status != "running" else time.time() - self.start
        return self.end - self.start

    def to_dict(self):
        """Return the run as JSON-ready values.

        Returns
        -------
        dict
            Every stored field, ``duration`` and ``versions``.
        """
        out = {f: getattr(self, f) for f in self._FIELDS}
        out["duration"] = self.duration
        out["versions"] = self.versions
        return out

    def __repr__(self):
        return f"<RunRecord {self.id[:12]} {self.name!r} {self.kind} {self.status}>"

    def __rich__(self):
        from ml_toolbox.runs.views import run_table

        return run_table(self)

    def _repr_html_(self):
        from ml_toolbox.runs.views import to_html

        return to_html(self.__rich__())


class RunStore(Tracker):
    """The embedded run store: one SQLite file (``runs.db``) in a directory, WAL mode.

    Attach it as a tracker (``UnifiedMLPipeline(..., tracking=RunStore("runs/"))``) or as a
    monitor sink (``PipelineMonitor(sinks=[RunStore("runs/")])``: each fit the monitor sees becomes
    a run, and predictions are recorded in aggregate, one run per pipeline and process). Then
    read it: :meth:`runs`, :meth:`get`, :meth:`compare`, :meth:`leaderboard`, :meth:`report`,
    :meth:`anomalies`, :meth:`active`, :meth:`archive`, :meth:`note`, :meth:`plot`, or the shell's
    ``ml-toolbox runs``.

    Parameters
    ----------
    path : str or path-like, optional
        A directory (the file is ``<path>/runs.db``, made on the first write) or a ``.db`` file.
        Default: ``$ML_TOOLBOX_RUNS``.
    timeout : float, default=5.0
        Seconds a write waits for another process's lock before the record is refused.
    stale_after : float, default=3600.0
        A running run whose heartbeat is older than this (or whose process is gone, on this host)
        shows as ``"stale"``.
    predictions : {"aggregate", "each", "none"}, default="aggregate"
        As a monitor sink: what prediction executions become (one aggregate run per pipeline and
        process, updated every few seconds; a run each; nothing).

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ml_toolbox import UnifiedMLPipeline
    >>> from ml_toolbox.runs import RunStore
    >>> X, y = load_iris(return_X_y=True)
    >>> store = RunStore(tempfile.mkdtemp())
    >>> pipe = UnifiedMLPipeline(model=LogisticRegression(max_iter=500), validation=0.25,
    ...                          random_state=0, tracking=store).fit(X, y)
    >>> run = store.get(pipe.run_id_)
    >>> run.status, run.params["model__max_iter"], "validation_score" in run.metrics
    ('success', 500, True)
    """

    def __init__(self, path=None, *, timeout=5.0, stale_after=3600.0, predictions="aggregate"):
        self.path = path
        self.timeout = timeout
        self.stale_after = stale_after
        self.predictions = predictions
        self._init_state()

    def _init_state(self):
        self._lock = threading.RLock()
        self._conn = None
        self._conn_pid = None
        self._buffers = {}  # run id -> {"metrics": [...], "stages": [...], "last": time}
        self._refused = set()  # run ids whose record was refused (warned once each)
        self._aggregates = {}  # (pipeline, mode) -> aggregate prediction run state
        self._on_connect = None  # a test hook: called with each new connection

    def __getstate__(self):
        return {"path": self.path, "timeout": self.timeout, "stale_after": self.stale_after,
                "predictions": self.predictions}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init_state()

    def __repr__(self):
        return f"RunStore({str(self.path) if self.path is not None else None!r})"

    # -- where ------------------------------------------------------------------------------
    @property
    def file(self):
        """The SQLite file's path."""
        path = self.path
        if path is None:
            path = os.environ.get("ML_TOOLBOX_RUNS")
            if not path:
                raise RunStoreError("No run store given: pass RunStore(path) or set "
                                    "$ML_TOOLBOX_RUNS to a directory.")
        path = os.fspath(path)
        if path.endswith((".db", ".sqlite", ".sqlite3")):
            return path
        return os.path.join(path, "runs.db")

    def _connect(self, create):
        pid = os.getpid()
        if self._conn is not None and self._conn_pid == pid:
            return self._conn
        if self._conn_pid != pid:  # a fork: the parent's connection is not ours to use
            self._conn = None
        file = self.file
        if not create and not os.path.exists(file):
            raise RunStoreError(f"No run store at {file!r} (nothing recorded there yet).")
        if create:
            os.makedirs(os.path.dirname(os.path.abspath(file)), exist_ok=True)
        conn = sqlite3.connect(file, timeout=float(self.timeout), isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(float(self.timeout) * 1000)}")
            if self._on_connect is not None:
                self._on_connect(conn)
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if create and mode != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            if create:
                have = conn.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                    "AND name='runs'").fetchone()
                if have is None:
                    conn.execute("BEGIN IMMEDIATE")
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)",
                                 (str(SCHEMA_VERSION),))
                    conn.execute("COMMIT")
            else:
                have = conn.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                    "AND name='runs'").fetchone()
                if have is None:
                    raise RunStoreError(f"{file!r} is an SQLite file but not a run store "
                                        "(no runs table).")
        except BaseException:
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            finally:
                conn.close()
            raise
        self._conn, self._conn_pid = conn, pid
        return conn

    def _drop_connection(self):
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    # -- writing (never raises) ---------------------------------------------------------------
    def _write(self, run_id, what, statements):
        """Run ``statements`` (``[(sql, params or [params...]), ...]``) in one transaction.
        Returns True when written; else warns once for this run and returns False."""
        if run_id in self._refused:
            return False
        with self._lock:
            try:
                _transaction(self._connect(create=True), statements)
                return True
            except (sqlite3.Error, OSError, RunStoreError) as exc:
                self._drop_connection()
                self._refused.add(run_id)
                self._buffers.pop(run_id, None)
                try:
                    where = self.file
                except RunStoreError:
                    where = str(self.path)
                message = (f"Run store {where!r} is {_problem(exc)}: the record of run "
                           f"{str(run_id)[:12]} was refused while writing its {what}. The "
                           f"pipeline's result is unaffected.")
                logger.warning(message, exc_info=True)
                warnings.warn(message, RunStoreWarning, stacklevel=4)
                return False

    @staticmethod
    def _new_buffer():
        return {"series": {}, "stages": [], "last": time.monotonic(), "chunk": 0}

    def start_run(self, run):
        """Record that a run starts (a tracker hook).

        Parameters
        ----------
        run : ~ml_toolbox.runs.ActiveRun
            The run; its ``params``, ``data`` and ``tags`` are set.
        """
        self._buffers[run.id] = self._new_buffer()
        now = time.time()
        self._write(run.id, "start", [(
            "INSERT OR REPLACE INTO runs (id, name, kind, status, start, heartbeat, progress, "
            "params, data, environment, tags, notes, parent_id, pid, host) "
            "VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, '[]', ?, ?, ?)",
            (run.id, run.name, run.kind, run.start_time, now, run.progress, _dumps(run.params),
             _dumps(run.data), _dumps(run.environment), _dumps(run.tags), run.parent_id, run.pid,
             run.host))])

    def log_metrics(self, run, metrics, step=None):
        """Record metrics measured in a run (a tracker hook).

        Parameters
        ----------
        run : ~ml_toolbox.runs.ActiveRun
            The run.
        metrics : dict of str to float
            The values, by metric name.
        step : int or None, default=None
            The step (an epoch), or None for final values.
        """
        buffer = self._buffers.get(run.id)
        if buffer is None:
            return
        series = buffer["series"]
        for key, value in metrics.items():
            if type(value) is not float:
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    continue
            pair = series.get(key)
            if pair is None:
                pair = series[str(key)] = ([], [])
            pair[0].append(step)
            pair[1].append(value)
        if time.monotonic() - buffer["last"] >= _FLUSH_EVERY:
            self._flush(run)

    def emit(self, metrics, run=None):
        """Record one finished pipeline execution.

        Parameters
        ----------
        metrics : ~ml_toolbox.monitor.PipelineMetrics
            The execution, with its stage records.
        run : ~ml_toolbox.runs.ActiveRun or None, default=None
            The run it belongs to; None when the tracker is used as a monitor sink (the execution is not
            part of a tracked run).
        """
        if run is not None:
            buffer = self._buffers.get(run.id)
            if buffer is not None:
                buffer["stages"].extend(_stage_rows(run.id, metrics))
            return
        if metrics.mode in _FIT_MODES or self.predictions == "each":
            self._record_execution(metrics)
        elif self.predictions == "aggregate":
            self._aggregate(metrics)

    def progress(self, run):
        """Record a run's progress and heartbeat (a tracker hook).

        Parameters
        ----------
        run : ~ml_toolbox.runs.ActiveRun
            The run; ``run.progress`` (in [0, 1]) and ``run.progress_text`` are set.
        """
        buffer = self._buffers.get(run.id)
        if buffer is not None and time.monotonic() - buffer["last"] >= _FLUSH_EVERY:
            self._flush(run)

    @staticmethod
    def _series_rows(run_id, buffer, now):
        """The buffered metric values as rows (one per metric), emptying the buffer."""
        chunk = buffer["chunk"]
        buffer["chunk"] += 1
        rows = [(run_id, key, chunk, *_pack(steps, values), now)
                for key, (steps, values) in buffer["series"].items()]
        buffer["series"] = {}
        return rows

    def _flush(self, run):
        buffer = self._buffers.get(run.id)
        if buffer is None:
            return
        now = time.time()
        rows, stages = self._series_rows(run.id, buffer, now), buffer["stages"]
        buffer["stages"], buffer["last"] = [], time.monotonic()
        statements = [("UPDATE runs SET heartbeat=?, progress=?, progress_text=? WHERE id=?",
                       (now, run.progress, run.progress_text, run.id))]
        if rows:
            statements.append(("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?)", rows))
        if stages:
            statements.append(("INSERT INTO stages VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", stages))
        self._write(run.id, "progress", statements)

    def end_run(self, run):
        """Record how a run ended (a tracker hook).

        Parameters
        ----------
        run : ~ml_toolbox.runs.ActiveRun
            The run; ``run.status`` is ``"success"``, ``"failed"`` or ``"cancelled"``, and ``run.error``
            and ``run.metrics`` are set.
        """
        buffer = self._buffers.pop(run.id, None) or self._new_buffer()
        series = buffer["series"]
        for key, value in run.metrics.items():  # final values: step None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                pair = series.setdefault(key, ([], []))
                pair[0].append(None)
                pair[1].append(float(value))
        statements = [(
            "UPDATE runs SET status=?, end=?, heartbeat=?, progress=?, progress_text=?, error=?, "
            "error_stage=?, metrics=?, cpu_time=?, peak_memory=?, tracker_errors=?, params=?, "
            "tags=?, data=? WHERE id=?",
            (run.status, run.end_time, run.end_time, run.progress, run.progress_text, run.error,
             run.error_stage, _dumps(run.metrics), run.cpu_time, run.peak_memory,
             _dumps(run.tracker_errors), _dumps(run.params), _dumps(run.tags),
             _dumps(run.data), run.id))]
        rows = self._series_rows(run.id, buffer, run.end_time)
        if rows:
            statements.append(("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?)", rows))
        if buffer["stages"]:
            statements.append(("INSERT INTO stages VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                               buffer["stages"]))
        self._write(run.id, "end", statements)

    def link_version(self, run, version):
        """Record a store version saved from a run (a tracker hook).

        Parameters
        ----------
        run : ~ml_toolbox.runs.ActiveRun
            The run.
        version : dict
            The version: ``store``, ``name`` and ``version``.
        """
        self._write(run.id, "version link", [(
            "INSERT INTO versions VALUES (?, ?, ?, ?, ?)",
            (run.id, version["store"], version["name"], version["version"], version["time"]))])

    def _record_execution(self, metrics):
        """A monitor-sink execution as a run of its own."""
        run_id = uuid.uuid4().hex
        end = metrics.start_time + (metrics.duration or 0.0)
        from ml_toolbox.persistence import environment

        self._write(run_id, "execution", [
            ("INSERT INTO runs (id, name, kind, status, start, end, heartbeat, progress, error, "
             "params, data, metrics, environment, tags, notes, pid, host) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, 1.0, ?, '{}', '{}', '{}', ?, ?, '[]', ?, ?)",
             (run_id, metrics.pipeline_name, metrics.mode, metrics.status, metrics.start_time,
              end, end, metrics.error, _dumps(environment()), _dumps({"source": "monitor"}),
              os.getpid(), socket.gethostname())),
            ("INSERT INTO stages VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
             _stage_rows(run_id, metrics))])

    def _aggregate(self, metrics):
        key = (metrics.pipeline_name, metrics.mode)
        with self._lock:
            agg = self._aggregates.get(key)
            if agg is None:
                agg = self._aggregates[key] = {
                    "id": uuid.uuid4().hex, "start": metrics.start_time, "calls": 0, "rows": 0,
                    "failures": 0, "seconds": 0.0, "last": 0.0, "stages": {}}
            agg["calls"] += 1
            agg["failures"] += metrics.failed
            agg["seconds"] += metrics.duration or 0.0
            stages = metrics.stages
            if stages and stages[0].rows_in:
                agg["rows"] += stages[0].rows_in
            for s in stages:
                total = agg["stages"].setdefault(s.stage_name, [0, 0.0])
                total[0] += 1
                total[1] += s.duration or 0.0
            now = time.time()
            if now - agg["last"] < 5.0:
                return
            agg["last"] = now
        self._write_aggregate(key, agg, now)

    def _write_aggregate(self, key, agg, now):
        name, mode = key
        summary = {"calls": agg["calls"], "rows": agg["rows"], "failures": agg["failures"],
                   "seconds": agg["seconds"],
                   "mean_call_s": agg["seconds"] / agg["calls"] if agg["calls"] else None,
                   **{f"stage.{s}.mean_s": t / n for s, (n, t) in agg["stages"].items() if n}}
        self._write(agg["id"], "prediction aggregate", [(
            "INSERT INTO runs (id, name, kind, status, start, end, heartbeat, progress, params, "
            "data, metrics, environment, tags, notes, pid, host) VALUES "
            "(?, ?, ?, 'success', ?, ?, ?, 1.0, '{}', '{}', ?, '{}', ?, '[]', ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET end=excluded.end, heartbeat=excluded.heartbeat, "
            "metrics=excluded.metrics",
            (agg["id"], name, f"{mode} (aggregate)", agg["start"], now, now, _dumps(summary),
             _dumps({"source": "monitor", "aggregate": True}), os.getpid(),
             socket.gethostname()))])

    def close(self):
        """Write the prediction aggregates still in memory, and close the connection."""
        with self._lock:
            aggregates = list(self._aggregates.items())
        for key, agg in aggregates:
            self._write_aggregate(key, agg, time.time())
        with self._lock:
            self._drop_connection()

    # -- reading ----------------------------------------------------------------------------
    def _read(self, sql, params=()):
        with self._lock:
            try:
                conn = self._connect(create=False)
                return conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                self._drop_connection()
                raise RunStoreError(f"Run store {self.file!r} cannot be read: it is "
                                    f"{_problem(exc)}.") from exc

    def _record(self, row):
        versions = [{"store": s, "name": n, "version": v, "time": t} for s, n, v, t in self._read(
            "SELECT store, name, version, time FROM versions WHERE run_id=? ORDER BY time",
            (row[0],))]
        return RunRecord(row, versions, self.stale_after)

    def _cols(self):
        return ", ".join(RunRecord._FIELDS)

    def resolve(self, run_id):
        """Return the full id of the run ``run_id`` names.

        Parameters
        ----------
        run_id : str
            A run id, or a unique prefix of one.

        Returns
        -------
        str
            The full id.

        Raises
        ------
        RunNotFoundError
            Listing the most recent runs (or the ids the prefix matches, when several do).
        """
        text = str(run_id).strip().lower()
        if not re.fullmatch(r"[0-9a-f]{1,32}", text):
            raise RunNotFoundError(self._unknown_run(run_id, "is not a run id (hex digits)"))
        rows = self._read("SELECT id FROM runs WHERE id LIKE ? ORDER BY start DESC LIMIT 11",
                          (text + "%",))
        if len(rows) == 1:
            return rows[0][0]
        if not rows:
            raise RunNotFoundError(self._unknown_run(run_id, "matches no run"))
        ids = ", ".join(r[0][:12] for r in rows[:10])
        raise RunNotFoundError(f"Run id {run_id!r} is ambiguous: it starts {len(rows)}"
                               f"{'+' if len(rows) > 10 else ''} runs ({ids}). Give more digits.")

    def _unknown_run(self, run_id, why):
        recent = self._read("SELECT id, name, status FROM runs ORDER BY start DESC LIMIT 10")
        if not recent:
            return f"Run {run_id!r} {why}: the store {self.file!r} has no runs yet."
        listed = "; ".join(f"{i[:12]} ({n}, {s})" for i, n, s in recent)
        return f"Run {run_id!r} {why}. Most recent runs: {listed}."

    def get(self, run_id):
        """Return the record of one run.

        Parameters
        ----------
        run_id : str
            A run id, or a unique prefix of one.

        Returns
        -------
        RunRecord
            The run.

        Raises
        ------
        RunNotFoundError
            When no run, or several, match ``run_id``.
        """
        full = self.resolve(run_id)
        row = self._read(f"SELECT {self._cols()} FROM runs WHERE id=?", (full,))[0]
        return self._record(row)

    def names(self):
        """Return the pipeline names with runs.

        Returns
        -------
        list of str
            The names, alphabetically.
        """
        return [r[0] for r in self._read("SELECT DISTINCT name FROM runs ORDER BY name")]

    def runs(self, name=None, *, status=None, since=None, tag=None, kind=None, archived=False,
             limit=None):
        """Stored runs, most recent first.

        Parameters
        ----------
        name : str, optional
            Only this pipeline (an unknown name is an error listing the known ones).
        status : str or list of str, optional
            ``"running"``, ``"success"``, ``"failed"``, ``"cancelled"`` or ``"stale"``.
        since : str, float, datetime, optional
            Started at or after: an age (``"7d"``, ``"12h"``), an ISO date, a datetime.
        tag : str or dict, optional
            ``"key=value"`` or ``"key"`` (the tag is set), or a dict of those.
        kind : str, optional
            ``"fit"``, ``"execute"``, ``"partial_fit"``...
        archived : bool or None, default=False
            False: live runs only; True: archived only; None: both.
        limit : int, optional
            At most this many runs (the most recent).

        Returns
        -------
        list of RunRecord
            The runs selected, most recent first.

        Raises
        ------
        RunNotFoundError
            For an unknown name, status or tag key, listing what exists.
        ValueError
            For a ``since`` that is not a time.
        """
        from ml_toolbox.runs._active import STATUSES

        where, params = [], []
        if name is not None:
            known = self.names()
            if name not in known:
                from ml_toolbox.base import close_match_hint

                raise RunNotFoundError(f"No runs of a pipeline named {name!r}."
                                       f"{close_match_hint(name, known)} Pipelines with runs: "
                                       f"{known or 'none yet'}.")
            where.append("name=?")
            params.append(name)
        statuses = None
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            bad = [s for s in statuses if s not in STATUSES]
            if bad:
                raise RunNotFoundError(f"Unknown status {bad[0]!r}; a run's status is one of "
                                       f"{list(STATUSES)}.")
        cutoff = _parse_since(since)
        if cutoff is not None:
            where.append("start>=?")
            params.append(cutoff)
        if kind is not None:
            where.append("kind=?")
            params.append(kind)
        if archived is True:
            where.append("archived IS NOT NULL")
        elif archived is False:
            where.append("archived IS NULL")
        sql = f"SELECT {self._cols()} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY start DESC"
        records = [self._record(r) for r in self._read(sql, params)]
        if statuses is not None:
            records = [r for r in records if r.status in statuses]
        if tag is not None:
            wanted = _parse_tags(tag)
            known_keys = sorted({k for r in records for k in r.tags})
            missing = [k for k in wanted if k not in known_keys]
            if missing:
                raise RunNotFoundError(f"No run has the tag {missing[0]!r}. Tags in use: "
                                       f"{known_keys or 'none'}.")
            records = [r for r in records if all(
                k in r.tags and (v is None or str(r.tags[k]) == v) for k, v in wanted.items())]
        if limit is not None:
            records = records[:int(limit)]
        return records

    def show(self, name=None, **filters):
        """Return a display of the runs: a table in a notebook, rich in a terminal.

        Parameters
        ----------
        name : str, optional
            Only this pipeline.
        **filters
            As for :meth:`runs`; the most recent 50 unless ``limit=`` is given.

        Returns
        -------
        ml_toolbox.runs.views.RunTable
            The display object (``__rich__`` and ``_repr_html_``).
        """
        from ml_toolbox.runs.views import runs_table

        filters.setdefault("limit", 50)
        runs = self.runs(name, **filters)
        return runs_table(runs, f"{len(runs)} runs in {self.file}")

    def __rich__(self):
        return self.show().__rich__()

    def _repr_html_(self):
        return self.show()._repr_html_()

    def history(self, name, *, since=None, limit=None):
        """Return the runs of one pipeline, oldest first (archived ones included).

        Parameters
        ----------
        name : str
            The pipeline's name.
        since : str, float or datetime, optional
            Only runs started at or after this (as for :meth:`runs`).
        limit : int, optional
            At most this many runs (the most recent).

        Returns
        -------
        list of RunRecord
            The runs, oldest first.
        """
        return list(reversed(self.runs(name, since=since, limit=limit, archived=None)))

    def metric_names(self, run_id=None):
        """Return the metric names recorded.

        Parameters
        ----------
        run_id : str, optional
            Only those of this run (an id or a unique prefix); default: of any run.

        Returns
        -------
        list of str
            The names.
        """
        if run_id is None:
            rows = self._read("SELECT DISTINCT key FROM metrics ORDER BY key")
        else:
            rows = self._read("SELECT DISTINCT key FROM metrics WHERE run_id=? ORDER BY key",
                              (self.resolve(run_id),))
        return [r[0] for r in rows]

    def metric_history(self, run_id, metric):
        """Return the values of one metric in one run, by step.

        Parameters
        ----------
        run_id : str
            A run id, or a unique prefix of one.
        metric : str
            The metric's name.

        Returns
        -------
        list of tuple
            ``[(step, value), ...]``, by step (final values: step None).

        Raises
        ------
        RunNotFoundError
            For a metric the run does not have, listing those it has.
        """
        full = self.resolve(run_id)
        rows = self._read("SELECT steps, vals FROM metrics WHERE run_id=? AND key=? "
                          "ORDER BY chunk", (full, metric))
        if not rows:
            raise RunNotFoundError(f"Run {full[:12]} has no metric {metric!r}. Its metrics: "
                                   f"{self.metric_names(full) or 'none'}.")
        points = [p for steps, values in rows for p in _unpack(steps, values)]
        stepped = sorted((p for p in points if p[0] is not None), key=lambda p: p[0])
        return stepped + [p for p in points if p[0] is None]

    def stages(self, run_id):
        """Return the stage runs recorded in one run.

        Parameters
        ----------
        run_id : str
            A run id, or a unique prefix of one.

        Returns
        -------
        list of dict
            One per stage run: ``pipeline``, ``stage``, ``index``, ``mode``, ``start``, ``duration``,
            ``status``, ``rows_in``...
        """
        full = self.resolve(run_id)
        keys = ("pipeline", "stage", "mode", "index", "start", "duration", "status", "rows_in",
                "cols_in", "bytes_in", "retries", "error")
        return [dict(zip(keys, r[1:])) for r in self._read(
            "SELECT * FROM stages WHERE run_id=? ORDER BY start, idx", (full,))]

    def note(self, run_id, text):
        """Add a free-text note to a run (``ml-toolbox runs note ID "..."``).

        Parameters
        ----------
        run_id : str
            A run id, or a unique prefix of one.
        text : str
            The note (not empty).

        Returns
        -------
        list of dict
            The run's notes, each with ``time`` and ``text``.

        Raises
        ------
        ValueError
            When ``text`` is empty or not a string.
        RunNotFoundError
            When no run matches ``run_id``.
        """
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"A note must be a non-empty string; got {text!r}.")
        full = self.resolve(run_id)
        notes = _loads(self._read("SELECT notes FROM runs WHERE id=?", (full,))[0][0], []) or []
        notes.append({"time": time.time(), "text": text})
        self._write_or_raise("note", [("UPDATE runs SET notes=? WHERE id=?",
                                       (_dumps(notes), full))])
        return notes

    def tag(self, run_id, **tags):
        """Set tags on a stored run.

        Parameters
        ----------
        run_id : str
            A run id, or a unique prefix of one.
        **tags
            The tags to set, ``key=value``.

        Returns
        -------
        dict
            All the run's tags.
        """
        full = self.resolve(run_id)
        current = _loads(self._read("SELECT tags FROM runs WHERE id=?", (full,))[0][0], {}) or {}
        current.update({str(k): v for k, v in tags.items()})
        self._write_or_raise("tags", [("UPDATE runs SET tags=? WHERE id=?",
                                       (_dumps(current), full))])
        return current

    def _write_or_raise(self, what, statements):
        """A write the user asked for by hand (note, archive): errors raise, they do not warn."""
        with self._lock:
            try:
                _transaction(self._connect(create=False), statements)
            except sqlite3.Error as exc:
                self._drop_connection()
                raise RunStoreError(f"Run store {self.file!r} refused the {what}: it is "
                                    f"{_problem(exc)}.") from exc

    def active(self):
        """Return the runs in progress (not stale), most recent first.

        Returns
        -------
        list of RunRecord
            The runs, with their progress.
        """
        return self.runs(status="running", archived=None)

    def archive(self, older_than="30d", *, status=None, dry_run=False):
        """Archive finished runs (and stale ones) that ended before ``older_than`` ago.

        Archived runs stay queryable (``runs(archived=True)``, ``get``); they leave the default
        listings. Stale runs are archived with status ``"stale"``.

        Parameters
        ----------
        older_than : str, float or timedelta, default="30d"
            An age (``"7d"``, ``"12h"``, ``0`` for all).
        status : str or list of str, optional
            Only runs with these statuses (default: success, failed, cancelled, stale).
        dry_run : bool, default=False
            Only report what would be archived.

        Returns
        -------
        list of str
            The ids archived (or that would be).
        """
        if isinstance(older_than, (int, float)) and not isinstance(older_than, bool):
            cutoff = time.time() - float(older_than) * 86400
        else:
            cutoff = _parse_since(older_than)
        statuses = ["success", "failed", "cancelled", "stale"] if status is None else (
            [status] if isinstance(status, str) else list(status))
        from ml_toolbox.runs._active import STATUSES

        bad = [s for s in statuses if s not in STATUSES or s == "running"]
        if bad:
            raise RunNotFoundError(f"Cannot archive by status {bad[0]!r}; give some of "
                                   f"{[s for s in STATUSES if s != 'running']}.")
        chosen = [r for r in self.runs(archived=False) if r.status in statuses
                  and ((r.end if r.end is not None else (r.heartbeat or r.start)) <= cutoff)]
        ids = [r.id for r in chosen]
        if ids and not dry_run:
            now = time.time()
            self._write_or_raise("archive", [
                ("UPDATE runs SET archived=?, status=CASE WHEN status='running' THEN 'stale' "
                 "ELSE status END WHERE id=?", [(now, i) for i in ids])])
        return ids

    def leaderboard(self, metric, *, name=None, kind=None, top=10, direction=None, since=None,
                    archived=False):
        """Finished runs ranked by a final metric (best first).

        ``direction`` is ``"max"`` or ``"min"``; by default ``"min"`` for names with ``loss`` or
        ``error`` in them, else ``"max"``.

        Parameters
        ----------
        metric : str
            The final metric to rank on.
        name : str, optional
            Only the runs of this pipeline.
        kind : str, optional
            Only runs of this kind (``"fit"``, ``"execute"``...).
        top : int, default=10
            How many runs to keep.
        direction : {"max", "min"}, optional
            Whether larger or smaller is better.
        since : str, float or datetime, optional
            Only runs started at or after this (as for :meth:`runs`).
        archived : bool or None, default=False
            False: live runs only; True: archived only; None: both.

        Returns
        -------
        list of RunRecord
            The ranked runs, best first.

        Raises
        ------
        RunNotFoundError
            For a metric no run has, listing the metrics that exist.
        """
        runs = [r for r in self.runs(name, kind=kind, since=since, archived=archived)
                if r.status == "success"]
        scored = []
        for r in runs:
            value = r.metrics.get(metric)
            if isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and not math.isnan(value):
                scored.append((value, r))
        if not scored:
            known = sorted({k for r in runs for k, v in r.metrics.items()
                            if isinstance(v, (int, float))})
            raise RunNotFoundError(f"No finished run has the metric {metric!r}. Metrics of the "
                                   f"finished runs: {known or 'none'}.")
        if direction is None:
            direction = "min" if any(w in metric for w in ("loss", "error")) else "max"
        if direction not in ("min", "max"):
            raise ValueError(f"direction must be 'min' or 'max'; got {direction!r}.")
        scored.sort(key=lambda p: p[0], reverse=direction == "max")
        return [r for _, r in scored[:top]] if top else [r for _, r in scored]

    def compare(self, *run_ids, only_differences=False):
        """Return the parameters and metrics of several runs side by side.

        Cells that differ are highlighted.

        Parameters
        ----------
        *run_ids : str
            The runs (ids or unique prefixes).
        only_differences : bool, default=False
            Show only the rows whose values differ.

        Returns
        -------
        ml_toolbox.runs.RunComparison
            The comparison (a display object, and ``to_dict()``).
        """
        from ml_toolbox.runs.views import RunComparison

        if len(run_ids) == 1 and isinstance(run_ids[0], (list, tuple)):
            run_ids = tuple(run_ids[0])
        if len(run_ids) < 2:
            raise ValueError(f"compare needs at least two runs; got {len(run_ids)}.")
        return RunComparison([self.get(i) for i in run_ids], only_differences=only_differences)

    def report(self, name, *, days=7):
        """Return P50/P95/P99 stage durations, success rate, throughput and trend over the last days.

        Parameters
        ----------
        name : str
            The pipeline's name.
        days : float, default=7
            How many days back.

        Returns
        -------
        ml_toolbox.runs.RunReport
            The report (a display object, and ``to_dict()``).
        """
        from ml_toolbox.runs.views import RunReport

        runs = self.runs(name, since=time.time() - float(days) * 86400, archived=None)
        stages = {}
        for r in runs:
            for s in self.stages(r.id):
                stages.setdefault((s["pipeline"], s["stage"], s["mode"]), []).append(
                    (s["start"], s["duration"], s["status"], s["rows_in"]))
        return RunReport(name, days, runs, stages)

    def anomalies(self, name, *, days=None, **options):
        """Apply the monitor's anomaly rules (median / MAD per stage and mode) to the stored history.

        ``options`` go to :meth:`~ml_toolbox.PipelineMonitor.anomalies` (``threshold``,
        ``min_runs``, ``stage``, ``mode``).

        Parameters
        ----------
        name : str
            The pipeline's name.
        days : float, optional
            Only the runs of the last ``days`` days (default: all).
        **options
            Options of :meth:`ml_toolbox.PipelineMonitor.anomalies`.

        Returns
        -------
        list of ~ml_toolbox.monitor.Anomaly
            The stage runs flagged (empty when nothing was recorded).
        """
        from ml_toolbox.monitor import PipelineMetrics, PipelineMonitor, StageRecord

        runs = self.runs(name, since=None if days is None else time.time() - days * 86400,
                         archived=None)
        monitor = PipelineMonitor(history_size=max(len(runs) * 4, 1))
        for r in reversed(runs):
            by_pipeline = {}
            for s in self.stages(r.id):
                by_pipeline.setdefault((s["pipeline"], s["mode"]), []).append(StageRecord(
                    s["stage"], s["index"] or 0, s["mode"], s["start"], s["duration"],
                    s["status"], s["rows_in"], s["cols_in"], s["bytes_in"]))
            for (pipeline, _), records in by_pipeline.items():
                monitor.record(PipelineMetrics(pipeline, r.kind, run_id=r.id[:12],
                                               start_time=r.start, duration=r.duration,
                                               status=r.status if r.status != "stale"
                                               else "failed", stages=records))
        if not monitor.pipeline_names:
            return []
        return monitor.anomalies(**options)

    def plot(self, metric, runs=None, *, name=None, ax=None):
        """Draw ``metric`` per step (epoch) for several runs (matplotlib; the ``plot`` extra).

        Parameters
        ----------
        metric : str
            The metric's name.
        runs : list of str, optional
            Run ids (default: the last 10 runs of ``name``, or of the store, with the metric).
        name : str, optional
            The pipeline whose runs are drawn by default.
        ax : matplotlib Axes, optional
            Draw on it instead of a new figure.

        Returns
        -------
        matplotlib.axes.Axes
            The axes drawn on.
        """
        from ml_toolbox.runs.views import plot_metric

        return plot_metric(self, metric, runs, name=name, ax=ax)

    def promote(self, candidates, store, name, *, metric, alias="production", gates=None,
                direction=None, reason=None, **save_options):
        """Save the best of ``candidates`` to a model store and promote it through its gates.

        ``candidates`` are fitted pipelines tracked by this store (each has ``run_id_``); the
        winner is the one whose run ranks first on ``metric`` (as :meth:`leaderboard` ranks).
        The version's manifest records the run id, the run records the version, and the run's
        final metrics go to the manifest (where the gates read them).

        Parameters
        ----------
        candidates : list of pipeline
            Fitted pipelines tracked by this store.
        store : PipelinePersistence, str or path-like
            The model store (or its location).
        name : str
            The name to save the winner under.
        metric : str
            The final metric the runs are ranked on.
        alias : str, default="production"
            The alias to promote the winner to.
        gates : mapping or list, optional
            Quality gates, as :meth:`ml_toolbox.PipelinePersistence.promote` takes them.
        direction : {"max", "min"}, optional
            How to rank (default as in :meth:`leaderboard`).
        reason : str, optional
            Recorded in the alias history.
        **save_options
            Options of :meth:`ml_toolbox.PipelinePersistence.save`.

        Returns
        -------
        Bunch
            ``run_id``, ``version``, ``alias``, ``pipeline``.

        Raises
        ------
        GateError
            When a gate fails (the version stays saved, the alias unchanged).
        """
        from sklearn.utils import Bunch

        from ml_toolbox.persistence import PipelinePersistence

        by_run = {}
        for i, pipe in enumerate(candidates):
            run_id = getattr(pipe, "run_id_", None)
            if run_id is None:
                raise ValueError(f"candidates[{i}] ({type(pipe).__name__}) has no run_id_: fit it "
                                 "with tracking=<this run store> first.")
            by_run[self.resolve(run_id)] = pipe
        ranked = [r for r in self.leaderboard(metric, top=None, direction=direction,
                                              archived=None) if r.id in by_run]
        if not ranked:
            raise RunNotFoundError(f"None of the {len(by_run)} candidates' runs has the metric "
                                   f"{metric!r} and succeeded.")
        winner = ranked[0]
        pipe = by_run[winner.id]
        target = PipelinePersistence.from_location(store)
        numbers = {k: v for k, v in winner.metrics.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        version = target.save(pipe, name, metrics=numbers, run_id=winner.id,
                              message=save_options.pop("message", None)
                              or f"from run {winner.id[:12]}", **save_options)
        self.record_version(winner.id, target, name, version)
        target.promote(name, version, alias, gates=gates,
                       reason=reason or f"leaderboard winner on {metric} (run {winner.id[:12]})")
        return Bunch(run_id=winner.id, version=version, alias=alias, pipeline=pipe)

    def record_version(self, run_id, store, name, version):
        """Record (by hand) that a store version was saved from a run: the run <-> version link.

        Parameters
        ----------
        run_id : str
            A run id, or a unique prefix of one.
        store : PipelinePersistence, str or path-like
            The model store (or its location).
        name : str
            The name the version is stored under.
        version : int
            The version number.
        """
        full = self.resolve(run_id)
        location = getattr(store, "path", store)
        self._write_or_raise("version link", [("INSERT INTO versions VALUES (?, ?, ?, ?, ?)", (
            full, str(location), name, int(version), time.time()))])


def _transaction(conn, statements):
    """Run ``[(sql, params or [params, ...]), ...]`` in one write transaction, all or nothing."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql, params in statements:
            if isinstance(params, list):
                conn.executemany(sql, params)
            else:
                conn.execute(sql, params)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


_NO_STEP = np.iinfo(np.int64).min  # how a final value's step (None) is written


def _pack(steps, values):
    """``(steps, values)`` of one metric as two little-endian arrays (int64 / float64 bytes)."""
    steps = np.array([_NO_STEP if s is None else s for s in steps], dtype="<i8")
    return steps.tobytes(), np.asarray(values, dtype="<f8").tobytes()


def _unpack(steps, values):
    steps = np.frombuffer(steps, dtype="<i8").tolist()
    return [(None if s == _NO_STEP else s, v)
            for s, v in zip(steps, np.frombuffer(values, dtype="<f8").tolist())]


def _parse_tags(tag):
    if isinstance(tag, dict):
        return {str(k): (None if v is None else str(v)) for k, v in tag.items()}
    items = [tag] if isinstance(tag, str) else list(tag)
    out = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        out[key.strip()] = value.strip() if sep else None
    return out


def _stage_rows(run_id, metrics):
    rows = []
    for s in metrics.stages:
        rows.append((run_id, metrics.pipeline_name, s.stage_name, s.mode, s.index, s.start_time,
                     s.duration, s.status, s.rows_in, s.cols_in, s.bytes_in, s.retries,
                     s.error))
    return rows
