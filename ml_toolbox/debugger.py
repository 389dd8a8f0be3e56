"""See inside a running pipeline: breakpoints, snapshots, execution traces, profiles, post-mortems.

:class:`PipelineDebugger` is a plug-in (:class:`~ml_toolbox.plugins.PipelinePlugin`). Attach it to
any pipeline (``pipe.feature_pipeline.debugger = debugger`` or
``UnifiedMLPipeline(debugger=debugger)``); it sees every stage run through the execution loop's
hooks and nothing else:

- **trace** -- every stage run (and every retried attempt) becomes a :class:`TraceEvent`;
  :meth:`PipelineDebugger.get_execution_trace` returns them as a :class:`Trace` that renders as a
  rich table, as plain text and as HTML in a notebook;
- **breakpoints** -- :meth:`PipelineDebugger.add_breakpoint` fires before a stage, after it or when it
  fails, optionally only when a condition holds, and takes a :class:`Snapshot` (the default), opens
  ``pdb`` or calls your function;
- **snapshots** -- first rows, shape, dtypes, null counts and per-column statistics of what a stage saw
  or produced, held within a memory budget however large the data;
- **profiling** -- a per-stage time breakdown, and on request a ``cProfile`` of chosen stages that
  names their slowest functions;
- **post-mortem** -- the input and the exception of the last failed stage run, kept as a
  :class:`Failure` whose :meth:`~Failure.replay` re-runs that stage alone.
"""

from __future__ import annotations

import cProfile
import difflib
import html
import io
import logging
import numbers
import pstats
import re
import threading
import time
import traceback
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml_toolbox.context import RunContext, StageContext, data_summary
from ml_toolbox.plugins import PipelinePlugin

__all__ = [
    "PipelineDebugger",
    "Breakpoint",
    "Snapshot",
    "TraceEvent",
    "RunRecord",
    "Trace",
    "Failure",
    "StageProfile",
    "FunctionTiming",
    "UnknownStageError",
    "BreakpointConditionError",
    "parse_size",
]

logger = logging.getLogger(__name__)

WHEN = ("before", "after", "error")
ACTIONS = ("snapshot", "pdb")
CAPTURE = (None, "all")

_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)


# ------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------
class UnknownStageError(ValueError):
    """A breakpoint (or a profiled stage) names a stage the pipeline does not have.

    Parameters
    ----------
    message : str
        The error message, naming the stage and the stages that exist.
    stage_name : str
        The name given (also the attribute).
    stage_names : iterable of str
        The stage names that exist (the attribute is a list).
    suggestion : str or None, default=None
        The closest existing name, if one is close (also the attribute).
    """

    def __init__(self, message, *, stage_name, stage_names, suggestion=None):
        super().__init__(message)
        self.stage_name = stage_name
        self.stage_names = list(stage_names)
        self.suggestion = suggestion


class BreakpointConditionError(RuntimeError):
    """The condition of a breakpoint raised; the original exception is ``__cause__``.

    It is the condition that failed, not the stage: the stage's own errors keep their type.

    Parameters
    ----------
    message : str
        The error message.
    breakpoint : Breakpoint
        The breakpoint whose condition raised (also the attribute).
    stage_name, pipeline_name, mode : str
        Where it raised (also the attributes).
    """

    def __init__(self, message, *, breakpoint, stage_name, pipeline_name, mode):
        super().__init__(message)
        self.breakpoint = breakpoint
        self.stage_name = stage_name
        self.pipeline_name = pipeline_name
        self.mode = mode


# ------------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------------
def parse_size(value, name="size"):
    """Return a memory size in bytes from an int (``1_000_000``) or a string (``"512KB"``).

    Units: B, KB, MB, GB, TB (powers of 1000) and KiB, MiB, GiB, TiB (powers of 1024),
    case-insensitive.

    Parameters
    ----------
    value : int or str
        The size.
    name : str, default="size"
        The parameter's name, for error messages.

    Returns
    -------
    int
        The size in bytes.

    Raises
    ------
    TypeError
        ``value`` is neither an int nor a string (``bool`` and ``float`` are refused too).
    ValueError
        The string is not a size, or the size is not positive.

    Examples
    --------
    >>> parse_size("1.5 MB"), parse_size(4096), parse_size("64KiB")
    (1500000, 4096, 65536)
    """
    allowed = (f"{name} must be a positive size: an int number of bytes (e.g. 1_000_000) or a "
               f"string such as '512KB', '10MB' or '1GiB'")
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, str)):
        raise TypeError(f"{allowed}; got {value!r} of type {type(value).__name__}.")
    if isinstance(value, str):
        match = _SIZE_RE.match(value)
        unit = match.group(2).lower() if match else None
        if match is None or unit not in _SIZE_UNITS:
            raise ValueError(f"{allowed}; got {value!r}.")
        size = int(float(match.group(1)) * _SIZE_UNITS[unit])
    else:
        size = int(value)
    if size <= 0:
        raise ValueError(f"{allowed}; got {value!r}.")
    return size


def _fmt_seconds(seconds):
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def _fmt_clock(timestamp):
    """A wall-clock ``time.time()`` as local time to the second: ``13:20:05``."""
    return time.strftime("%H:%M:%S", time.localtime(timestamp))


def _fmt_moment(timestamp):
    """A wall-clock ``time.time()`` as a local date and time to the second, with the time zone."""
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(timestamp)).rstrip()


def _fmt_shape(shape):
    if shape is None:
        return "-"
    return str(tuple(shape))


def _fmt_bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


def _is_data(obj):
    """Data (arrays, frames, sparse matrices, lists) as opposed to a fitted estimator or None."""
    if obj is None or hasattr(obj, "fit"):
        return False
    return hasattr(obj, "shape") or isinstance(obj, (list, tuple))


def _shape_of(obj):
    """The shape of data, cheaply; None for no data (or a fitted estimator)."""
    if type(obj) is np.ndarray:  # the common case, fast
        return obj.shape
    if not _is_data(obj):
        return None
    shape = getattr(obj, "shape", None)
    if shape is not None:
        return tuple(int(s) for s in shape)
    n_rows, n_cols, _ = data_summary(obj)
    return (n_rows, n_cols)


def _merge(names, more):
    names.extend(n for n in more if isinstance(n, str) and n not in names)
    return names


def _own_stage_names(pipeline):
    """Every stage name of one pipeline (fitted or not), best effort; [] when it cannot be told."""
    if pipeline is None:
        return []
    current = getattr(pipeline, "_current", None)  # Feature / Inference pipelines (StepsMixin)
    if callable(current):
        try:
            return list(current()[0])
        except Exception:  # noqa: BLE001 - invalid steps: the pipeline itself will say so
            return []
    fitted = pipeline.__dict__.get("stage_names_") if hasattr(pipeline, "__dict__") else None
    if fitted is not None:
        return list(fitted)
    if callable(getattr(pipeline, "_template", None)) and hasattr(pipeline, "model"):
        from ml_toolbox.training import MODEL_STAGE  # a TrainingPipeline: one model stage

        return [MODEL_STAGE]
    names = []
    try:
        for step in getattr(pipeline, "steps", None) or ():
            if isinstance(step, tuple) and step and isinstance(step[0], str):
                names.append(step[0])
            elif isinstance(getattr(step, "stage_name", None), str):
                names.append(step.stage_name)
            elif isinstance(getattr(step, "name", None), str):
                names.append(step.name)
    except TypeError:
        return []
    return names


def _pipelines_of(obj):
    """``[(pipeline name, stage names)]`` of a pipeline, or of each of a unified pipeline's three."""
    if obj is None:
        return []
    cls = type(obj)
    if all(isinstance(getattr(cls, a, None), property)
           for a in ("feature_pipeline", "training_pipeline", "inference_pipeline")):
        from ml_toolbox.training import MODEL_STAGE

        fp, tp, ip = obj.feature_pipeline, obj.training_pipeline, obj.inference_pipeline
        features = _own_stage_names(fp)
        model = getattr(obj, "model", None)
        model = [] if isinstance(model, str) and model == "passthrough" else [MODEL_STAGE]
        return [(fp.name, features), (tp.name, list(model)), (ip.name, features + model)]
    name = getattr(obj, "name", None)
    return [(name if isinstance(name, str) else cls.__name__, _own_stage_names(obj))]


# ------------------------------------------------------------------------------------------------
# snapshots
# ------------------------------------------------------------------------------------------------
_STAT_COLUMNS = ["dtype", "nulls", "mean", "std", "min", "max"]
_BYTES_PER_STAT_ROW = 200  # a generous guess, used only to size the first try; then measured


class _Table:
    """Uniform, bounded access to the rows and columns of tabular data without copying it all."""

    def __init__(self, data):
        self.data = data
        self.kind = type(data).__name__
        self.frame = None
        self.array = None
        self.sparse = False
        if isinstance(data, pd.Series):
            data = data.to_frame(name=data.name if data.name is not None else 0)
        if isinstance(data, pd.DataFrame):
            self.frame = data
            self.n_rows, self.n_cols = data.shape
            self.columns = list(data.columns)
            self.dtypes = [data.dtypes.iloc[i] for i in range(self.n_cols)]
            return
        if hasattr(data, "tocsr") and hasattr(data, "shape"):  # scipy sparse
            self.array = data.tocsr() if not hasattr(data, "indptr") else data
            self.sparse = True
        elif isinstance(data, np.ndarray):
            array = data
            if array.ndim == 0:
                array = array.reshape(1, 1)
            elif array.ndim == 1:
                array = array.reshape(-1, 1)
            elif array.ndim > 2:
                array = array.reshape(array.shape[0], -1)
            self.array = array
        else:  # a list of rows or of values: only bounded slices are ever converted
            self.array = None
            self.rows = data
        if self.array is not None:
            self.n_rows, self.n_cols = self.array.shape
            self.dtypes = [self.array.dtype] * self.n_cols
        else:
            self.n_rows = len(data)
            first = np.asarray(data[:1], dtype=object) if self.n_rows else np.empty((0, 1))
            self.n_cols = first.shape[1] if first.ndim > 1 else 1
            sample = pd.DataFrame(np.asarray(data[:100]).reshape(min(self.n_rows, 100), -1))
            self.dtypes = list(sample.dtypes) if len(sample.columns) == self.n_cols else [
                np.dtype(object)] * self.n_cols
        self.columns = list(range(self.n_cols))

    def block(self, start, stop, n_cols):
        """Rows ``start:stop`` of the first ``n_cols`` columns, as a (small) DataFrame."""
        if self.frame is not None:
            if n_cols == self.n_cols:
                return self.frame.iloc[start:stop]
            return self.frame.iloc[start:stop, :n_cols]
        if self.array is not None:
            part = self.array[start:stop, :n_cols]
            if self.sparse:
                part = part.toarray()
            return pd.DataFrame(part, columns=self.columns[:n_cols])
        part = np.asarray(self.rows[start:stop]).reshape(max(0, min(stop, self.n_rows) - start), -1)
        return pd.DataFrame(part[:, :n_cols], columns=self.columns[:n_cols])


def _numeric(dtype):
    return (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)) and not (
        pd.api.types.is_complex_dtype(dtype))


def _column_stats(table, n_cols, budget):
    """Exact per-column null counts, mean, std, min and max, in chunks that respect ``budget``."""
    cols = list(range(n_cols))
    numeric = [c for c in cols if _numeric(table.dtypes[c])]
    nulls = np.zeros(n_cols, dtype=np.int64)
    count = np.zeros(len(numeric))
    mean = np.zeros(len(numeric))
    m2 = np.zeros(len(numeric))
    lo = np.full(len(numeric), np.nan)
    hi = np.full(len(numeric), np.nan)
    # a chunk, its float copy, a null mask and a squared deviation: ~4 x 8 bytes per cell; at
    # least 64K cells a chunk, so a tiny budget does not mean a million tiny chunks
    rows_per_chunk = max(1, budget // max(1, 32 * n_cols), 65536 // max(1, n_cols))
    num_pos = {c: i for i, c in enumerate(numeric)}
    for start in range(0, table.n_rows, rows_per_chunk):
        block = table.block(start, start + rows_per_chunk, n_cols)
        nulls += block.isna().to_numpy().sum(axis=0)
        if not numeric:
            continue
        values = block.iloc[:, numeric].to_numpy(dtype=np.float64, na_value=np.nan)
        present = ~np.isnan(values)
        n_b = present.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_b = np.where(n_b > 0, np.where(present, values, 0.0).sum(axis=0) / np.maximum(n_b, 1),
                              0.0)
            dev = np.where(present, values - mean_b, 0.0)
            m2_b = (dev * dev).sum(axis=0)
            total = count + n_b
            delta = mean_b - mean
            safe = np.maximum(total, 1)
            mean = np.where(total > 0, mean + delta * n_b / safe, mean)
            m2 = m2 + m2_b + delta * delta * count * n_b / safe
        count = total
        lo = np.fmin(lo, np.fmin.reduce(values, axis=0, initial=np.inf, where=present))
        hi = np.fmax(hi, np.fmax.reduce(values, axis=0, initial=-np.inf, where=present))
    out = {name: np.full(n_cols, np.nan) for name in ("mean", "std", "min", "max")}
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(m2 / np.maximum(count - 1, 1))
    for c, i in num_pos.items():
        if count[i] > 0:
            out["mean"][c] = mean[i]
            out["std"][c] = std[i] if count[i] > 1 else np.nan
            out["min"][c] = lo[i]
            out["max"][c] = hi[i]
    stats = pd.DataFrame({
        "dtype": pd.array([str(table.dtypes[c]) for c in cols], dtype=object),
        "nulls": nulls,
        "mean": out["mean"], "std": out["std"], "min": out["min"], "max": out["max"],
    }, index=pd.Index([str(table.columns[c]) for c in cols], dtype=object, name="column"))
    return stats


def _frame_bytes(frame):
    if frame is None:
        return 0
    return int(frame.memory_usage(deep=True, index=True).sum())


@dataclass(eq=False, repr=False)
class Snapshot:
    """What a stage saw (``phase="before"`` / ``"error"``) or produced (``"after"``), within a budget.

    A snapshot holds copies (never views) of at most ``head_rows`` first rows and one row of
    statistics per column; the bytes it holds (``nbytes``, as pandas measures them, strings
    included) never exceed the debugger's ``max_snapshot_bytes``. When the budget cannot hold
    every column or row, the snapshot keeps what fits and says so (``columns_shown``,
    ``head`` rows, ``note``). Statistics are exact: they are computed over all rows, in chunks
    that also fit the budget, so memory stays bounded while time grows with the data. Made by
    :meth:`capture`.

    Parameters
    ----------
    pipeline, stage, phase, mode : str
        Where and when the data was captured (``phase``: ``"before"``, ``"after"`` or ``"error"``).
    attempt, run_id : int, default=1, 0
        The attempt of the stage run, and the pipeline execution's id.
    time : float, default=0.0
        Wall-clock time of the capture.
    kind : str
        Type of the data (``"DataFrame"``, ``"ndarray"``, ``"csr_matrix"``...), or of the estimator
        when a stage produced no data (a fitted model).
    shape : tuple or None, default=None
        The data's shape.
    y_shape : tuple or None, default=None
        The target's shape.
    head : pandas.DataFrame or None
        The first rows (copied), limited to ``columns_shown`` columns.
    stats : pandas.DataFrame or None
        One row per column: ``dtype``, ``nulls``, ``mean``, ``std``, ``min``, ``max``
        (the last four for numeric columns).
    columns_shown : int
        How many of the columns ``head`` and ``stats`` cover (the first ones).
    nbytes : int
        Bytes held by ``head`` and ``stats``.
    budget : int, default=0
        The budget, in bytes.
    note : str, default=""
        What was left out to stay within the budget ("" when nothing was).

    Examples
    --------
    >>> import numpy as np
    >>> snap = Snapshot.capture(np.arange(200.0).reshape(100, 2), budget=2_000, head_rows=3,
    ...                         pipeline="p", stage="scale", phase="before", mode="fit_transform")
    >>> snap.shape, snap.head.shape, list(snap.stats["mean"])
    ((100, 2), (3, 2), [99.0, 100.0])
    """

    pipeline: str
    stage: str
    phase: str
    mode: str
    attempt: int = 1
    run_id: int = 0
    time: float = 0.0
    kind: str = "NoneType"
    shape: tuple | None = None
    y_shape: tuple | None = None
    head: pd.DataFrame | None = None
    stats: pd.DataFrame | None = None
    columns_shown: int = 0
    nbytes: int = 0
    budget: int = 0
    note: str = ""

    @classmethod
    def capture(cls, data, *, budget, head_rows=5, y=None, **meta):
        """Summarise data within a budget (see the class docstring).

        Parameters
        ----------
        data : object
            What the stage saw or produced: a DataFrame, an array, a sparse matrix... or an
            estimator (a fitted model: only its type is kept).
        budget : int
            Bytes the snapshot may hold.
        head_rows : int, default=5
            First rows to keep, within the budget.
        y : array-like, optional
            The target (only its shape is kept).
        **meta
            The other fields: ``pipeline``, ``stage``, ``phase``, ``mode``, ``attempt``...

        Returns
        -------
        Snapshot
            The snapshot.
        """
        snap = cls(budget=budget, y_shape=_shape_of(y), **meta)
        if not _is_data(data):
            snap.kind = type(data).__name__
            if data is not None:
                snap.note = f"no data: the stage returned {type(data).__name__}"
            return snap
        table = _Table(data)
        snap.kind = table.kind
        snap.shape = _shape_of(data)
        n_cols = table.n_cols
        shown = min(n_cols, max(1, budget // _BYTES_PER_STAT_ROW))
        stats = _column_stats(table, shown, budget) if shown else None
        while stats is not None and shown > 0 and _frame_bytes(stats) > budget:
            shown //= 2
            stats = stats.iloc[:shown] if shown else None
        stats_bytes = _frame_bytes(stats)
        rows = min(head_rows, table.n_rows)
        head = None
        while shown and rows > 0:
            head = table.block(0, rows, shown).copy(deep=True)
            if stats_bytes + _frame_bytes(head) <= budget:
                break
            rows //= 2
            head = None
        snap.stats = stats.copy() if stats is not None else None
        snap.head = head
        snap.columns_shown = shown
        snap.nbytes = stats_bytes + _frame_bytes(head)
        notes = []
        if shown < n_cols:
            notes.append(f"statistics and first rows of {shown} of {n_cols} columns")
        if (head.shape[0] if head is not None else 0) < min(head_rows, table.n_rows):
            notes.append(f"{0 if head is None else head.shape[0]} first rows of "
                         f"{min(head_rows, table.n_rows)} asked")
        if notes:
            snap.note = "budget " + _fmt_bytes(budget) + " holds " + "; ".join(notes)
        return snap

    @property
    def dtypes(self):
        """Column dtypes (as strings), a Series indexed by column name."""
        return None if self.stats is None else self.stats["dtype"]

    @property
    def null_counts(self):
        """Nulls per column, a Series indexed by column name."""
        return None if self.stats is None else self.stats["nulls"]

    @property
    def key(self):
        """``(stage, phase)``, the key of this snapshot in ``PipelineDebugger.snapshots``."""
        return (self.stage, self.phase)

    def __repr__(self):
        what = f"{self.kind} {_fmt_shape(self.shape)}" if self.shape is not None else self.kind
        note = f"; {self.note}" if self.note else ""
        return (f"<Snapshot {self.pipeline}/{self.stage} {self.phase} {self.mode} "
                f"attempt {self.attempt}: {what}, {_fmt_bytes(self.nbytes)} held{note}>")

    def __str__(self):
        lines = [repr(self)]
        if self.head is not None:
            lines += ["first rows:", self.head.to_string()]
        if self.stats is not None:
            lines += ["columns:", self.stats.to_string()]
        return "\n".join(lines)

    def _repr_html_(self):
        parts = [f"<p><b>{html.escape(repr(self))}</b></p>"]
        if self.head is not None:
            parts += ["<p>first rows</p>", self.head.to_html()]
        if self.stats is not None:
            parts += ["<p>columns</p>", self.stats.to_html()]
        return "\n".join(parts)


# ------------------------------------------------------------------------------------------------
# breakpoints
# ------------------------------------------------------------------------------------------------
@dataclass(eq=False, repr=False)
class Breakpoint:
    """A place to stop: a stage, a moment (``when``), an optional condition, an action.

    Made by :meth:`PipelineDebugger.add_breakpoint`.

    Parameters
    ----------
    stage : str
        The stage's name.
    when : {"before", "after", "error"}, default="before"
        Before the stage runs, after it succeeded, or when it failed for good.
    condition : callable or None, default=None
        Called with the :class:`~ml_toolbox.context.StageContext`; the breakpoint fires only when
        it returns a true value.
    action : {"snapshot", "pdb"} or callable, default="snapshot"
        What firing does.
    pipeline : str or None, default=None
        Only runs of the pipeline with this name, or any pipeline (None).
    hits : int, default=0
        How many times it fired.
    validated : bool, default=False
        Whether the stage name was checked against the pipeline's stages.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ml_toolbox import FeaturePipeline, PipelineDebugger
    >>> debugger = PipelineDebugger(profile=True)
    >>> bp = debugger.add_breakpoint("scale", when="after")
    >>> pipe = FeaturePipeline([("scale", StandardScaler())], debugger=debugger)
    >>> _ = pipe.fit(np.arange(20.0).reshape(10, 2))
    >>> bp.hits, debugger.snapshot("scale", "after").shape
    (1, (10, 2))
    """

    stage: str
    when: str = "before"
    condition: object = None
    action: object = "snapshot"
    pipeline: str | None = None
    hits: int = 0
    validated: bool = field(default=False, repr=False)

    def __str__(self):
        where = f"{self.pipeline}/{self.stage}" if self.pipeline else self.stage
        action = self.action if isinstance(self.action, str) else getattr(
            self.action, "__name__", type(self.action).__name__)
        cond = "" if self.condition is None else " if " + getattr(
            self.condition, "__name__", type(self.condition).__name__)
        return f"Breakpoint({where!r}, when={self.when!r}{cond}, action={action!r})"

    __repr__ = __str__


# ------------------------------------------------------------------------------------------------
# trace
# ------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class TraceEvent:
    """One stage run, or one attempt of it that failed and was retried.

    Parameters
    ----------
    run_id : int
        The pipeline execution this belongs to (``RunContext.run_id``).
    pipeline, stage : str
        The pipeline's and the stage's names.
    index : int
        Position of the stage in that execution.
    mode : str
        What the stage did (``"fit_transform"``, ``"transform"``, ``"predict"``...).
    run_mode : str
        What the pipeline did (``"fit"``, ``"transform"``...).
    start : float
        Wall-clock start of this attempt (``time.time()``).
    duration : float
        Seconds of this attempt. A retried attempt's time includes the wait before the next one.
    input_shape, output_shape : tuple or None
        ``output_shape`` is None when the stage produced no data (a fitted model) or failed.
    status : {"success", "failed", "retried"}
        ``"retried"``: this attempt failed and another one followed.
    attempt : int
        The attempt number (1, 2...).
    error : str or None, default=None
        ``"TypeName: message"`` of the attempt's error.

    Examples
    --------
    The debugger records them (``debugger.get_execution_trace()``); one by hand:

    >>> event = TraceEvent(run_id=1, pipeline="features", stage="scale", index=0,
    ...                    mode="fit_transform", run_mode="fit", start=0.0, duration=0.002,
    ...                    input_shape=(10, 2), output_shape=(10, 2), status="success", attempt=1)
    >>> event.stage, event.status, event.error
    ('scale', 'success', None)
    """

    run_id: int
    pipeline: str
    stage: str
    index: int
    mode: str
    run_mode: str
    start: float
    duration: float
    input_shape: tuple | None
    output_shape: tuple | None
    status: str
    attempt: int
    error: str | None = None


@dataclass(slots=True)
class RunRecord:
    """One pipeline execution, as the debugger's trace records it.

    Parameters
    ----------
    run_id : int
        The execution's id.
    pipeline : str
        The pipeline's name.
    mode : str
        What it did (``"fit"``, ``"predict"``...).
    start : float
        Wall-clock start (seconds since the epoch).
    duration : float or None, default=None
        Seconds (None while it runs).
    status : str, default="running"
        ``"running"``, ``"success"`` or ``"failed"``.
    error : str or None, default=None
        ``"TypeName: message"`` of the error that ended it.

    Examples
    --------
    The debugger records them (``debugger.get_execution_trace().runs``); one by hand:

    >>> run = RunRecord(run_id=1, pipeline="features", mode="fit", start=0.0)
    >>> run.status, run.duration
    ('running', None)
    """

    run_id: int
    pipeline: str
    mode: str
    start: float
    duration: float | None = None
    status: str = "running"
    error: str | None = None


_TRACE_COLUMNS = ["#", "started", "pipeline", "stage", "mode", "attempt", "input", "output", "time",
                  "status"]
_NUMERIC_COLUMNS = {0, 1, 5, 8}  # right-aligned: #, started, attempt, time
_STATUS_STYLE = {"success": "green", "failed": "bold red", "retried": "yellow", "running": "cyan"}
# The trace's own CSS, so numbers align and statuses show their colour in any notebook front end.
_TRACE_CSS = ("<style>.mlt-trace{font-family:var(--jp-code-font-family,monospace);font-size:12px;"
              "margin:4px 0 8px 0}.mlt-trace table{border-collapse:collapse}"
              ".mlt-trace caption{text-align:left;font-weight:bold;padding-bottom:4px}"
              ".mlt-trace th,.mlt-trace td{padding:2px 8px;text-align:left;white-space:nowrap;"
              "border-bottom:1px solid rgba(128,128,128,.3)}"
              ".mlt-trace th.num,.mlt-trace td.num{text-align:right;"
              "font-variant-numeric:tabular-nums}"
              ".mlt-trace .success{color:#2e7d32}.mlt-trace .failed{color:#c62828}"
              ".mlt-trace .retried{color:#ef6c00}.mlt-trace .hint{opacity:.7;font-style:italic}"
              "</style>")


class Trace(Sequence):
    """The ordered stage runs a debugger saw: a read-only sequence of :class:`TraceEvent`.

    Shows itself as a plain-text table (``str(trace)``), as a rich tree of pipeline runs and their
    stage runs (``rich.print(trace)``, ``__rich__``), either as text (:meth:`render`), and as an
    HTML table in a notebook (``_repr_html_``). Times of day are local, to the second. The HTML
    shows the latest :attr:`html_rows` events and counts the earlier ones, so a long trace stays a
    small page; :meth:`to_frame` gives them all, as a pandas DataFrame with one row per event.

    Parameters
    ----------
    events : iterable of TraceEvent
        The stage runs, in order.
    runs : iterable of RunRecord, default=()
        The pipeline executions they belong to.

    Attributes
    ----------
    html_rows : int, default=100
        How many of the latest events the notebook's HTML table shows.

    Examples
    --------
    >>> trace = Trace([TraceEvent(run_id=1, pipeline="p", stage="scale", index=0,
    ...                           mode="fit_transform", run_mode="fit", start=0.0, duration=0.5,
    ...                           input_shape=(3, 2), output_shape=(3, 2), status="success",
    ...                           attempt=1)] * 150)
    >>> page = trace._repr_html_()
    >>> "50 earlier stage runs not shown" in page, page.count("<tr>")  # the header, the count, 100
    (True, 102)
    """

    html_rows = 100

    def __init__(self, events, runs=()):
        self.events = list(events)
        self.runs = list(runs)

    def __getitem__(self, item):
        if isinstance(item, slice):
            return Trace(self.events[item], self.runs)
        return self.events[item]

    def __len__(self):
        return len(self.events)

    def filter(self, *, pipeline=None, stage=None, status=None, mode=None):
        """Return the events matching every given field, as a new trace.

        Parameters
        ----------
        pipeline : str, optional
            Only this pipeline's.
        stage : str, optional
            Only this stage's.
        status : {"success", "failed", "retried"}, optional
            Only those that ended this way.
        mode : str, optional
            Only those of this stage mode.

        Returns
        -------
        Trace
            The events selected (and every run).
        """
        wanted = {"pipeline": pipeline, "stage": stage, "status": status, "mode": mode}
        events = [e for e in self.events
                  if all(v is None or getattr(e, k) == v for k, v in wanted.items())]
        return Trace(events, self.runs)

    def to_frame(self):
        """Return one row per event, for your own analysis.

        Returns
        -------
        pandas.DataFrame
            Columns as the :class:`TraceEvent` fields.
        """
        names = list(TraceEvent.__dataclass_fields__)
        return pd.DataFrame([[getattr(e, n) for n in names] for e in self.events], columns=names)

    # -- display ---------------------------------------------------------------------------
    def _rows(self, first=1):
        for i, e in enumerate(self.events, first):
            status = e.status if e.error is None else f"{e.status}: {e.error}"
            yield [str(i), _fmt_clock(e.start), e.pipeline, e.stage, e.mode, str(e.attempt),
                   _fmt_shape(e.input_shape), _fmt_shape(e.output_shape), _fmt_seconds(e.duration),
                   status]

    def _title(self):
        runs = len({e.run_id for e in self.events})
        total = sum(e.duration for e in self.events)
        n = len(self.events)
        since = f", from {_fmt_moment(self.events[0].start)}" if self.events else ""
        return (f"Execution trace: {n} stage run{'s' * (n != 1)} in {runs} pipeline "
                f"run{'s' * (runs != 1)}, {_fmt_seconds(total)}{since}")

    def __rich__(self):
        """A rich tree: one branch per pipeline run, one aligned line per stage run (or attempt)."""
        from rich.text import Text
        from rich.tree import Tree

        tree = Tree(Text(self._title(), style="bold"), guide_style="dim")
        rows = list(self._rows())
        if not rows:
            return tree
        # columns: 0 #, 3 stage, 4 mode, 5 attempt, 6 input, 7 output, 8 time
        w = {i: max(len(r[i]) for r in rows) for i in (0, 3, 4, 5, 6, 7, 8)}
        runs = {r.run_id: r for r in self.runs}
        branch, previous = None, None
        for e, r in zip(self.events, rows):
            if e.run_id != previous:
                previous = e.run_id
                record = runs.get(e.run_id)
                started = record.start if record is not None else e.start
                label = (Text(e.pipeline, style="bold") + Text(f"  {e.run_mode}  ")
                         + Text(_fmt_clock(started), style="dim"))
                if record is not None and record.duration is not None:
                    label += Text(f"  {_fmt_seconds(record.duration)}  ")
                    label += Text(record.status, style=_STATUS_STYLE.get(record.status, ""))
                branch = tree.add(label)
            line = Text(f"{r[0]:>{w[0]}}  {r[3]:<{w[3]}}  {r[4]:<{w[4]}}  attempt "
                        f"{r[5]:>{w[5]}}  {r[6]:>{w[6]}} -> {r[7]:<{w[7]}}  {r[8]:>{w[8]}}  ")
            line += Text(r[-1], style=_STATUS_STYLE.get(e.status, ""))
            branch.add(line)
        return tree

    def _plain(self):
        rows = [_TRACE_COLUMNS] + list(self._rows())
        widths = [max(len(r[i]) for r in rows) for i in range(len(_TRACE_COLUMNS) - 1)]
        right = _NUMERIC_COLUMNS

        def line(r):
            cells = [r[i].rjust(w) if i in right else r[i].ljust(w) for i, w in enumerate(widths)]
            return "  ".join(cells + [r[-1]]).rstrip()

        out = [self._title(), line(rows[0]), "  ".join("-" * w for w in widths) + "  ------"]
        previous = None
        for e, r in zip(self.events, rows[1:]):
            if previous is not None and e.run_id != previous:
                out.append("")
            previous = e.run_id
            out.append(line(r))
        return "\n".join(out)

    def render(self, *, use_rich=True, width=120):
        """Return the trace as text.

        Parameters
        ----------
        use_rich : bool, default=True
            A rich tree of runs and their stage runs; False: a plain fixed-width table.
        width : int, default=120
            Width of the text, in characters.

        Returns
        -------
        str
            The rendered trace.
        """
        if not use_rich:
            return self._plain()
        from rich.console import Console

        console = Console(file=io.StringIO(), width=width, record=True, color_system=None,
                          force_terminal=False, force_jupyter=False)
        console.print(self)
        return "\n".join(line.rstrip() for line in console.export_text().splitlines())

    def __str__(self):
        return self._plain()

    def __repr__(self):
        return f"<Trace: {len(self.events)} events>"

    def _repr_html_(self):
        esc = html.escape

        def cell(i, text, tag="td"):
            return f'<{tag} class="num">{esc(text)}</{tag}>' if i in _NUMERIC_COLUMNS else \
                f"<{tag}>{esc(text)}</{tag}>"

        head = "".join(cell(i, c, "th") for i, c in enumerate(_TRACE_COLUMNS))
        shown = max(0, int(self.html_rows))
        earlier = max(0, len(self.events) - shown)
        body = []
        if earlier:
            body.append(f'<tr><td class="hint" colspan="{len(_TRACE_COLUMNS)}">{earlier:,} earlier '
                        f"stage run{'s' * (earlier != 1)} not shown (trace.to_frame() has them all)"
                        "</td></tr>")
        events = self.events[earlier:]
        for e, row in zip(events, Trace(events)._rows(first=earlier + 1)):
            cells = "".join(cell(i, c) for i, c in enumerate(row[:-1]))
            cells += f'<td class="{esc(e.status)}">{esc(row[-1])}</td>'
            body.append(f"<tr>{cells}</tr>")
        return (f'{_TRACE_CSS}<div class="mlt-trace"><table><caption>{esc(self._title())}</caption>'
                f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


# ------------------------------------------------------------------------------------------------
# profiling
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FunctionTiming:
    """One function inside a profiled stage.

    Parameters
    ----------
    function : str
        The function's name.
    file : str
        Its source file.
    line : int
        Its first line.
    calls : int
        How many times it was called.
    tottime : float
        Seconds in the function itself.
    cumtime : float
        Seconds with what it called.

    Examples
    --------
    :meth:`StageProfile.slowest` makes them; one by hand:

    >>> timing = FunctionTiming("fit", "preprocessing.py", 840, calls=1, tottime=0.001,
    ...                         cumtime=0.004)
    >>> timing.cumtime - timing.tottime
    0.003
    """

    function: str
    file: str
    line: int
    calls: int
    tottime: float
    cumtime: float


@dataclass(eq=False)
class StageProfile:
    """The ``cProfile`` of one stage run (``PipelineDebugger(profile=...)``).

    Parameters
    ----------
    pipeline, stage, mode : str
        The pipeline, the stage, and what the stage did.
    duration : float or None
        Seconds of the stage run.
    stats : dict, default={}
        ``pstats.Stats(...).stats``: ``(file, line, function) -> (cc, nc, tt, ct, callers)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from ml_toolbox import FeaturePipeline, PipelineDebugger
    >>> debugger = PipelineDebugger(profile=["minmax"])
    >>> X = np.ones((5, 3))
    >>> _ = FeaturePipeline([("minmax", MinMaxScaler())], debugger=debugger).fit(X)
    >>> profile = debugger.profiles[("minmax", "fit_transform")]
    >>> profile.stage, len(profile.slowest(3))
    ('minmax', 3)
    """

    pipeline: str
    stage: str
    mode: str
    duration: float | None
    stats: dict = field(repr=False, default_factory=dict)

    def slowest(self, n=10, sort="tottime"):
        """Return the functions with the most time.

        Parameters
        ----------
        n : int, default=10
            How many functions.
        sort : {"tottime", "cumtime"}, default="tottime"
            Time in the function itself, or with what it called.

        Returns
        -------
        list of FunctionTiming
            The slowest first.
        """
        if sort not in ("tottime", "cumtime"):
            raise ValueError(f"sort must be 'tottime' or 'cumtime', got {sort!r}.")
        rows = [FunctionTiming(func, file, line, nc, tt, ct)
                for (file, line, func), (cc, nc, tt, ct, _callers) in self.stats.items()]
        rows.sort(key=lambda r: getattr(r, sort), reverse=True)
        return rows[:n]

    def report(self, n=10, sort="tottime"):
        """Return the slowest functions as plain text.

        Parameters
        ----------
        n : int, default=10
            How many functions.
        sort : {"tottime", "cumtime"}, default="tottime"
            Time in the function itself, or with what it called.

        Returns
        -------
        str
            One line per function.
        """
        lines = [f"profile of {self.pipeline}/{self.stage} ({self.mode}), "
                 f"{_fmt_seconds(self.duration)}; slowest functions by {sort}:",
                 f"{'tottime':>10} {'cumtime':>10} {'calls':>8}  function"]
        for r in self.slowest(n, sort):
            where = f"{r.file}:{r.line}" if r.line else r.file
            lines.append(f"{_fmt_seconds(r.tottime):>10} {_fmt_seconds(r.cumtime):>10} "
                         f"{r.calls:>8}  {r.function} ({where})")
        return "\n".join(lines)

    def __str__(self):
        return self.report()


# ------------------------------------------------------------------------------------------------
# post-mortem
# ------------------------------------------------------------------------------------------------
def _copy_data(obj):
    if obj is None:
        return None
    if hasattr(obj, "copy"):
        try:
            return obj.copy(deep=True)
        except TypeError:
            return obj.copy()
    if isinstance(obj, (list, tuple)):
        return type(obj)(obj)
    return obj


def _head_rows(obj, n):
    if obj is None:
        return None
    if hasattr(obj, "iloc"):
        return obj.iloc[:n]
    return obj[:n]


@dataclass(eq=False)
class Failure:
    """The last stage run that failed: its input (within a budget), its error, and a way to replay it.

    Made by the debugger (:attr:`PipelineDebugger.last_failure`), with :meth:`from_context`.

    Parameters
    ----------
    pipeline, stage, mode : str
        The pipeline, the stage, and what the stage did.
    attempt : int
        The attempt that failed for good.
    error : BaseException
        The exception. Like any caught exception, its ``__traceback__`` keeps the frames of the
        failing call alive (``pdb.post_mortem(failure.error.__traceback__)`` works).
    traceback : str, default=""
        The formatted traceback.
    X, y : object, default=None
        Copies of the stage's input, or of its first rows when the whole does not fit
        ``max_failure_bytes`` (then ``truncated`` is True).
    n_rows, n_rows_kept : int or None, default=None
        Rows of the input, and rows kept.
    truncated : bool, default=False
        Whether only the first rows were kept.
    fitting : bool, default=False
        The stage was being fitted: :meth:`replay` fits a fresh clone.
    time : float, default=0.0
        Wall-clock time of the failure.
    budget : int, default=0
        The byte budget of the kept input.
    _template : object, default=None
        Internal: the stage context :meth:`replay` reruns.
    _index : int, default=0
        Internal: the stage's position in its pipeline.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from ml_toolbox import FeaturePipeline, PipelineDebugger
    >>> def check_positive(X):
    ...     if (X < 0).any():
    ...         raise ValueError("negative values")
    ...     return X
    >>> debugger = PipelineDebugger()
    >>> pipe = FeaturePipeline([("check", FunctionTransformer(check_positive))], debugger=debugger)
    >>> pipe.fit(np.array([[1.0], [-1.0]]))
    Traceback (most recent call last):
    ...
    ValueError: negative values...
    >>> failure = debugger.last_failure
    >>> failure.stage, failure.mode, failure.n_rows, failure.truncated
    ('check', 'fit_transform', 2, False)
    >>> failure.replay(np.array([[1.0]]))  # the stage alone, on a corrected input
    array([[1.]])
    """

    pipeline: str
    stage: str
    mode: str
    attempt: int
    error: BaseException
    traceback: str = field(repr=False, default="")
    X: object = field(repr=False, default=None)
    y: object = field(repr=False, default=None)
    n_rows: int | None = None
    n_rows_kept: int | None = None
    truncated: bool = False
    fitting: bool = False
    time: float = 0.0
    budget: int = 0
    _template: object = field(repr=False, default=None)
    _index: int = field(repr=False, default=0)

    @classmethod
    def from_context(cls, ctx, error, budget):
        """Keep a failed stage run: its input within the budget, its error and traceback.

        Parameters
        ----------
        ctx : ~ml_toolbox.context.StageContext
            The stage run that failed.
        error : BaseException
            Its error.
        budget : int
            Bytes the kept input may take; a larger input is cut to its first rows.

        Returns
        -------
        Failure
            The post-mortem.
        """
        X, y = ctx.X, ctx.y
        n_rows, _, x_bytes = data_summary(X)
        _, _, y_bytes = data_summary(y)
        x_bytes = x_bytes if x_bytes is not None else 8 * (n_rows or 0) * max(1, ctx.n_cols or 1)
        total = x_bytes + (y_bytes or 0)
        truncated = bool(n_rows) and total > budget
        if truncated:
            keep = int(budget * n_rows // max(total, 1))
            X, y = _head_rows(X, keep), _head_rows(y, keep)
            logger.warning(
                "post-mortem of %s/%s keeps the first %d of %d rows of its input: the whole (%s) "
                "exceeds max_failure_bytes=%d", ctx.pipeline_name, ctx.stage_name, keep, n_rows,
                _fmt_bytes(total), budget)
        else:
            keep = n_rows
        return cls(
            pipeline=ctx.pipeline_name, stage=ctx.stage_name, mode=ctx.mode, attempt=ctx.attempt,
            error=error,
            traceback="".join(traceback.format_exception(type(error), error, error.__traceback__)),
            X=_copy_data(X), y=_copy_data(y), n_rows=n_rows, n_rows_kept=keep, truncated=truncated,
            fitting=ctx.fitting, time=time.time(), budget=budget, _template=ctx.template,
            _index=ctx.index)

    def replay(self, X=None, y=None):
        """Run the failed stage alone again on the kept input (or on ``X`` / ``y`` if given).

        In a fitting mode a fresh clone of the stage is fitted; otherwise the fitted stage runs.
        No pipeline and no plug-in is involved. It raises what the stage raises -- so a failure
        reproduces, and a fix can be checked in a notebook cell.

        Parameters
        ----------
        X : object, optional
            The input to run on (default: the kept one).
        y : object, optional
            The target (default: the kept one).

        Returns
        -------
        object
            What the stage returns.

        Warns
        -----
        UserWarning
            When replaying on a truncated input, which may not reproduce the failure.
        """
        if X is None and self.truncated:
            warnings.warn(
                f"Replaying {self.pipeline}/{self.stage} on the first {self.n_rows_kept} of "
                f"{self.n_rows} rows it failed on (the input was cut to max_failure_bytes="
                f"{self.budget}); the failure may not reproduce.", UserWarning, stacklevel=2)
        run = RunContext(None, self.pipeline, self.mode, [self.stage])
        ctx = StageContext(run, self._template, self.stage, self._index, self.mode, self.fitting,
                           self.X, self.y)
        return ctx.rerun(X=X, y=y)

    def __str__(self):
        kept = (f"first {self.n_rows_kept} of {self.n_rows} rows kept (input over "
                f"max_failure_bytes={self.budget})" if self.truncated
                else f"input kept ({_fmt_shape(_shape_of(self.X))})")
        return (f"{self.pipeline}/{self.stage} failed in {self.mode} at attempt {self.attempt}: "
                f"{type(self.error).__name__}: {self.error}; {kept}. "
                f"Call .replay() to run the stage again on it.")


# ------------------------------------------------------------------------------------------------
# the debugger
# ------------------------------------------------------------------------------------------------
def pdb_entry(ctx):
    """Default entry point of the ``"pdb"`` action: Python's ``breakpoint()`` in a frame whose locals
    are ``ctx``, ``stage``, ``X``, ``y``, ``output`` and ``error``.

    ``breakpoint()`` honours ``PYTHONBREAKPOINT`` (``0`` turns it off, ``ipdb.set_trace`` swaps in
    ipdb). Continue (``c``) to let the pipeline carry on.
    """
    stage, X, y = ctx.stage, ctx.X, ctx.y  # noqa: F841 - at hand in the debugger
    output, error = ctx.output, ctx.error  # noqa: F841
    breakpoint()  # noqa: T100 - this is the pdb action the user asked for
    return None


_PROFILE_KEY = "debugger.profile"
_ATTEMPT_KEY = "debugger.attempt_start"


class PipelineDebugger(PipelinePlugin):
    """Breakpoints, snapshots, execution traces, profiles and post-mortems for pipelines.

    Attach it like the monitor: ``pipe.feature_pipeline.debugger = debugger`` or
    ``UnifiedMLPipeline(debugger=debugger)``. With no breakpoint it only traces (cheaply).

    Parameters
    ----------
    enable_debugging : bool, default=True
        False turns the debugger off: the pipelines skip it altogether.
    capture : {None, "all"}, default=None
        ``"all"`` snapshots every stage's output during fitting runs
        (key ``(stage, "after")`` in :attr:`snapshots`).
    max_snapshot_bytes : int or str, default=1_000_000
        Memory budget of each snapshot (``"512KB"``, ``"10MB"`` and ``"1GiB"`` work too).
    max_failure_bytes : int or str, default=100_000_000
        Budget of the input kept by the post-mortem; a larger input is cut to its first rows.
    head_rows : int, default=5
        Rows a snapshot keeps (within the budget).
    profile : bool, str or list of str, default=False
        ``True`` profiles every stage with ``cProfile``; a name or a list of names profiles those
        stages. Results in :attr:`profiles`.
    max_events : int, default=10_000
        The trace keeps the latest ``max_events`` events (and as many runs).
    debugger_entry : callable, default=None
        What the ``"pdb"`` action calls with the stage context; None means :func:`pdb_entry`
        (Python's ``breakpoint()``). Inject a function to test or to use another debugger.
    rich_output : bool, default=True
        :meth:`visualize_trace` renders a rich tree (True) or a plain-text table (False).
    clock : callable, default=time.perf_counter
        Monotonic clock for attempt boundaries of retried stages.

    Attributes
    ----------
    breakpoints : list of Breakpoint
    snapshots : dict
        ``(stage_name, phase) -> Snapshot``, phase ``"before"`` (the stage's input),
        ``"after"`` (its output) or ``"error"`` (the input of a failed run). The latest capture
        wins; ``Snapshot.pipeline`` / ``.mode`` say which run it came from.
    last_failure : Failure or None
        The post-mortem of the last stage run that failed.
    profiles : dict
        ``(stage_name, mode) -> StageProfile``: the latest profiled run of each stage in each
        mode (``("model", "fit")``, ``("model", "predict")``...).

    See Also
    --------
    ml_toolbox.PipelineMonitor : Numbers over many runs (durations, rows, errors).

    Examples
    --------
    >>> from ml_toolbox import PipelineDebugger
    >>> debugger = PipelineDebugger(max_snapshot_bytes="256KB")
    >>> bp = debugger.add_breakpoint("scale", when="after")
    >>> print(bp)
    Breakpoint('scale', when='after', action='snapshot')
    >>> debugger.breakpoints == [bp]
    True
    """

    def __init__(self, enable_debugging=True, *, capture=None, max_snapshot_bytes=1_000_000,
                 max_failure_bytes=100_000_000, head_rows=5, profile=False, max_events=10_000,
                 debugger_entry=None, rich_output=True, clock=time.perf_counter):
        if capture not in CAPTURE:
            raise ValueError(f"capture must be None or 'all', got {capture!r}.")
        if isinstance(head_rows, bool) or not isinstance(head_rows, numbers.Integral) or head_rows < 0:
            raise ValueError(f"head_rows must be an int >= 0, got {head_rows!r}.")
        if (isinstance(max_events, bool) or not isinstance(max_events, numbers.Integral)
                or max_events < 1):
            raise ValueError(f"max_events must be an int >= 1, got {max_events!r}.")
        if debugger_entry is not None and not callable(debugger_entry):
            raise TypeError(f"debugger_entry must be callable or None, got {debugger_entry!r}.")
        self.enable_debugging = bool(enable_debugging)
        self.capture = capture
        self.max_snapshot_bytes = parse_size(max_snapshot_bytes, "max_snapshot_bytes")
        self.max_failure_bytes = parse_size(max_failure_bytes, "max_failure_bytes")
        self.head_rows = int(head_rows)
        self.profile = self._check_profile(profile)
        self.max_events = int(max_events)
        self.debugger_entry = debugger_entry
        self.rich_output = bool(rich_output)
        self.clock = clock
        self.breakpoints = []
        self.snapshots = {}
        self.last_failure = None
        self.profiles = {}
        self._events = deque(maxlen=self.max_events)
        self._runs = deque(maxlen=self.max_events)
        self._open_runs = {}
        self._timings = {}
        self._known = {}  # pipeline name -> stage names seen or attached
        self._profile_checked = self.profile in (True, False)
        self._lock = threading.RLock()

    # -- plug-in switches ------------------------------------------------------------------
    @property
    def enabled(self):
        """Whether the pipelines call this debugger (``enable_debugging``)."""
        return self.enable_debugging

    @enabled.setter
    def enabled(self, value):
        self.enable_debugging = bool(value)

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"]
        state["_open_runs"] = {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def __repr__(self):
        state = "on" if self.enable_debugging else "off"
        return (f"PipelineDebugger({state}, {len(self.breakpoints)} breakpoints, "
                f"{len(self._events)} trace events, {len(self.snapshots)} snapshots"
                f"{', last failure in ' + self.last_failure.stage if self.last_failure else ''})")

    @staticmethod
    def _check_profile(profile):
        if isinstance(profile, bool):
            return profile
        if isinstance(profile, str):
            return (profile,)
        if isinstance(profile, (list, tuple, set, frozenset)) and all(
                isinstance(p, str) for p in profile):
            return tuple(profile)
        raise TypeError("profile must be True, False, a stage name or a list of stage names, "
                        f"got {profile!r}.")

    # -- knowing the pipelines -------------------------------------------------------------
    def attach(self, *pipelines):
        """Tell the debugger which pipelines it debugs, so breakpoints are checked when added.

        Attaching is optional: ``pipe.debugger = debugger`` suffices for debugging. A unified
        pipeline brings the stage names of its feature, training and inference pipelines.

        Parameters
        ----------
        *pipelines : pipeline
            The pipelines (any ml_toolbox pipeline, a unified one included).

        Returns
        -------
        PipelineDebugger
            ``self``.

        Raises
        ------
        UnknownStageError
            When a breakpoint already added names a stage none of these pipelines has.
        """
        for pipeline in pipelines:
            for name, names in _pipelines_of(pipeline):
                with self._lock:
                    self._known[name] = _merge(list(self._known.get(name, ())), names)
        self._validate_pending(None)
        return self

    def _universe(self, pipeline=None):
        if pipeline is not None:
            return list(self._known.get(pipeline, ()))
        names = []
        for stage_names in self._known.values():
            names.extend(n for n in stage_names if n not in names)
        return names

    def _check_name(self, name, pipeline, what):
        names = self._universe(pipeline)
        if name in names:
            return
        close = difflib.get_close_matches(name, names, n=1)
        known = [pipeline] if pipeline else list(self._known)
        where = (f"which pipeline {known[0]!r} does not have" if len(known) == 1 else
                 "which none of the pipelines " + ", ".join(repr(p) for p in known) + " has")
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownStageError(
            f"{what} names stage {name!r}, {where}. Stage names: "
            f"{names}.{hint}", stage_name=name, stage_names=names,
            suggestion=close[0] if close else None)

    def _validate_pending(self, run_pipeline):
        """Check the breakpoints (and profiled stages) not checked yet against the known names."""
        with self._lock:
            pending = [bp for bp in self.breakpoints if not bp.validated]
            for bp in pending:
                if bp.pipeline is not None and bp.pipeline not in self._known:
                    continue  # checked when that pipeline first runs (or is attached)
                if not self._known:
                    continue
                self._check_name(bp.stage, bp.pipeline,
                                 f"{bp} (remove it with debugger.remove_breakpoint({bp.stage!r}))")
                bp.validated = True
            if not self._profile_checked and self._known:
                for name in self.profile:
                    self._check_name(name, None, f"profile={list(self.profile)!r}")
                self._profile_checked = True

    # -- breakpoints -----------------------------------------------------------------------
    def add_breakpoint(self, stage, when="before", condition=None, action="snapshot", *,
                       pipeline=None):
        """Stop at ``stage`` ``when`` it starts, ends or fails, if ``condition`` holds, and act.

        Parameters
        ----------
        stage : str
            The stage's name.
        when : {"before", "after", "error"}, default="before"
            Before the stage runs (on its input), after it succeeded (on its output), or when it
            failed for good (on its input, with ``ctx.error``).
        condition : callable, default=None
            ``condition(ctx) -> bool`` on the :class:`~ml_toolbox.context.StageContext` (``ctx.X``,
            ``ctx.y``, ``ctx.mode``, ``ctx.attempt``, ``ctx.output``, ``ctx.error``...). If it raises,
            the run stops with :class:`BreakpointConditionError`.
        action : {"snapshot", "pdb"} or callable, default="snapshot"
            ``"snapshot"`` stores a :class:`Snapshot` in :attr:`snapshots` and carries on;
            ``"pdb"`` opens the debugger (``debugger_entry``) with ``stage``, ``X``, ``y`` and
            ``ctx`` at hand; a callable is called with the context.
        pipeline : str, default=None
            Only in the pipeline of this name (e.g. ``"training_pipeline"``).

        Returns
        -------
        Breakpoint
            The breakpoint added (pass it to :meth:`remove_breakpoint` to remove it).

        Raises
        ------
        UnknownStageError
            ``stage`` is not a stage of the pipelines this debugger knows (see "When stage names
            are checked" in docs/debugging.md): raised here when it knows them, otherwise when
            the next pipeline run starts, before any stage runs.
        ValueError, TypeError
            A bad ``when``, ``condition`` or ``action``.
        """
        if not isinstance(stage, str):
            raise TypeError(f"stage must be a stage name (str), got {stage!r}.")
        if when not in WHEN:
            raise ValueError(f"when must be one of {list(WHEN)}, got {when!r}.")
        if condition is not None and not callable(condition):
            raise TypeError(f"condition must be a callable taking the stage context, or None; "
                            f"got {condition!r}.")
        if not (callable(action) or action in ACTIONS):
            raise ValueError(f"action must be 'snapshot', 'pdb' or a callable taking the stage "
                             f"context, got {action!r}.")
        if pipeline is not None and not isinstance(pipeline, str):
            raise TypeError(f"pipeline must be a pipeline name (str) or None, got {pipeline!r}.")
        bp = Breakpoint(stage=stage, when=when, condition=condition, action=action,
                        pipeline=pipeline)
        with self._lock:
            if self._known and (pipeline is None or pipeline in self._known):
                self._check_name(stage, pipeline, str(bp))
                bp.validated = True
            self.breakpoints.append(bp)
        return bp

    def remove_breakpoint(self, stage, when=None):
        """Remove a breakpoint (the object), or every breakpoint on a stage.

        Parameters
        ----------
        stage : str or Breakpoint
            A stage name (every breakpoint on it goes), or a breakpoint that
            :meth:`add_breakpoint` returned (only that one goes).
        when : {"before", "after", "error"} or None, default=None
            With a stage name: only the breakpoints of this kind.

        Returns
        -------
        int
            The number of breakpoints removed.

        Raises
        ------
        ValueError
            When none match; the message lists the breakpoints.
        """
        with self._lock:
            if isinstance(stage, Breakpoint):
                keep = [bp for bp in self.breakpoints if bp is not stage]
            else:
                keep = [bp for bp in self.breakpoints
                        if not (bp.stage == stage and (when is None or bp.when == when))]
            removed = len(self.breakpoints) - len(keep)
            if not removed:
                what = stage if isinstance(stage, Breakpoint) else (
                    f"stage {stage!r}" + ("" if when is None else f" when={when!r}"))
                raise ValueError(f"No breakpoint on {what}. Breakpoints: "
                                 f"{[str(bp) for bp in self.breakpoints]}.")
            self.breakpoints[:] = keep
        return removed

    def clear_breakpoints(self):
        """Remove every breakpoint."""
        with self._lock:
            self.breakpoints.clear()

    def _fire(self, ctx, when):
        for bp in list(self.breakpoints):
            if bp.when != when or bp.stage != ctx.stage_name:
                continue
            if bp.pipeline is not None and bp.pipeline != ctx.pipeline_name:
                continue
            if bp.condition is not None:
                try:
                    hold = bp.condition(ctx)
                except Exception as exc:  # the condition's error, not the stage's
                    raise BreakpointConditionError(
                        f"The condition of {bp} raised {type(exc).__name__}: {exc} (stage "
                        f"{ctx.stage_name!r} of pipeline {ctx.pipeline_name!r}, mode "
                        f"{ctx.mode!r}, attempt {ctx.attempt}).", breakpoint=bp,
                        stage_name=ctx.stage_name, pipeline_name=ctx.pipeline_name,
                        mode=ctx.mode) from exc
                if not hold:
                    continue
            with self._lock:
                bp.hits += 1
            if bp.action == "snapshot":
                self._snapshot(ctx, when)
            elif bp.action == "pdb":
                (self.debugger_entry or pdb_entry)(ctx)
            else:
                bp.action(ctx)

    # -- snapshots -------------------------------------------------------------------------
    def _snapshot(self, ctx, phase):
        data = ctx.output if phase == "after" else ctx.X
        snap = Snapshot.capture(
            data, budget=self.max_snapshot_bytes, head_rows=self.head_rows, y=ctx.y,
            pipeline=ctx.pipeline_name, stage=ctx.stage_name, phase=phase, mode=ctx.mode,
            attempt=ctx.attempt, run_id=ctx.run.run_id, time=time.time())
        with self._lock:
            self.snapshots[(ctx.stage_name, phase)] = snap
        return snap

    def snapshot(self, stage, phase="before"):
        """Return the latest snapshot of a stage at a phase.

        Parameters
        ----------
        stage : str
            The stage's name.
        phase : {"before", "after", "error"}, default="before"
            Its input, its output, or the input of a failed run.

        Returns
        -------
        Snapshot
            The latest capture.

        Raises
        ------
        KeyError
            When there is none; the message lists the snapshots held.
        """
        try:
            return self.snapshots[(stage, phase)]
        except KeyError:
            raise KeyError(f"No snapshot for ({stage!r}, {phase!r}). Snapshots: "
                           f"{sorted(self.snapshots)}.") from None

    # -- hooks -----------------------------------------------------------------------------
    def before_run(self, run):
        """Learn the run's stage names and open its trace entry (a hook of the execution loop).

        Parameters
        ----------
        run : ~ml_toolbox.context.RunContext
            The execution.
        """
        # the stage names of this pipeline (and of its siblings, when a unified pipeline handed
        # the debugger down), read afresh each run: steps may have changed since the last one
        parent = run.extra.get("parent")
        entries = _pipelines_of(parent) if parent is not None else []
        entries.append((run.pipeline_name,
                        _merge(_own_stage_names(run.pipeline), run.stage_names)))
        with self._lock:
            for name, names in entries:
                self._known[name] = names
        with self._lock:
            self._open_runs[run.run_id] = RunRecord(run.run_id, run.pipeline_name, run.mode,
                                                    run.start_time)
        if self.breakpoints or not self._profile_checked:
            self._validate_pending(run.pipeline)

    def _close_run(self, run, error=None):
        with self._lock:
            record = self._open_runs.pop(run.run_id, None)
            if record is None:
                return
            record.duration = (run.duration if run.duration is not None
                               else time.perf_counter() - run.start)
            record.status = "failed" if error is not None else "success"
            record.error = None if error is None else f"{type(error).__name__}: {error}"
            self._runs.append(record)

    def after_run(self, run):
        """Close the run's trace entry (a hook of the execution loop).

        Parameters
        ----------
        run : ~ml_toolbox.context.RunContext
            The execution.
        """
        self._close_run(run)

    def on_run_error(self, run, error):
        """Close the run's trace entry with its error (a hook of the execution loop).

        Parameters
        ----------
        run : ~ml_toolbox.context.RunContext
            The execution.
        error : BaseException
            The error that ended it.
        """
        self._close_run(run, error)

    def before_stage(self, ctx):
        """Fire the ``"before"`` breakpoints and start profiling (a hook of the execution loop).

        Parameters
        ----------
        ctx : ~ml_toolbox.context.StageContext
            The stage run.
        """
        ctx.extra[_ATTEMPT_KEY] = (self.clock(), time.time())
        if self.breakpoints:
            self._fire(ctx, "before")
        if self.profile is True or (self.profile and ctx.stage_name in self.profile):
            prof = cProfile.Profile()
            try:
                prof.enable()
            except ValueError as exc:  # another profiler is active (Python >= 3.12)
                logger.warning("cannot profile %s/%s: %s", ctx.pipeline_name, ctx.stage_name, exc)
            else:
                ctx.extra[_PROFILE_KEY] = prof
            ctx.extra[_ATTEMPT_KEY] = (self.clock(), time.time())

    def _stop_profile(self, ctx):
        prof = ctx.extra.pop(_PROFILE_KEY, None)
        if prof is None:
            return
        prof.disable()
        stats = pstats.Stats(prof).stats
        with self._lock:
            self.profiles[(ctx.stage_name, ctx.mode)] = StageProfile(ctx.pipeline_name, ctx.stage_name,
                                                         ctx.mode, ctx.duration, dict(stats))

    def _event(self, ctx, status, error=None, end=None):
        started, started_wall = ctx.extra.get(_ATTEMPT_KEY, (None, ctx.start_time))
        if end is None and ctx.attempt == 1 and ctx.duration is not None:
            duration = ctx.duration
        else:
            end = self.clock() if end is None else end
            duration = end - started if started is not None else (ctx.duration or 0.0)
        return TraceEvent(
            run_id=ctx.run.run_id, pipeline=ctx.pipeline_name, stage=ctx.stage_name,
            index=ctx.index, mode=ctx.mode, run_mode=ctx.run.mode, start=started_wall,
            duration=duration, input_shape=_shape_of(ctx.X),
            output_shape=_shape_of(ctx.output) if status == "success" else None, status=status,
            attempt=ctx.attempt if status != "retried" else ctx.attempt - 1,
            error=None if error is None else f"{type(error).__name__}: {error}")

    def _record(self, ctx, event):
        with self._lock:
            self._events.append(event)
            if event.status != "retried":
                key = (ctx.pipeline_name, ctx.stage_name)
                total = ctx.duration if ctx.duration is not None else event.duration
                runs, tot, worst, attempts = self._timings.get(key, (0, 0.0, 0.0, 0))
                self._timings[key] = (runs + 1, tot + total, max(worst, total),
                                      attempts + ctx.attempt)

    def on_stage_retry(self, ctx, error):
        """Trace the attempt that failed and will be retried (a hook of the execution loop).

        Parameters
        ----------
        ctx : ~ml_toolbox.context.StageContext
            The stage run.
        error : BaseException
            The error of the previous attempt.
        """
        now = self.clock()
        self._record(ctx, self._event(ctx, "retried", error, end=now))
        ctx.extra[_ATTEMPT_KEY] = (now, time.time())

    def after_stage(self, ctx):
        """Trace a stage run that succeeded; fire the ``"after"`` breakpoints (a hook).

        Parameters
        ----------
        ctx : ~ml_toolbox.context.StageContext
            The stage run.
        """
        self._stop_profile(ctx)
        self._record(ctx, self._event(ctx, "success"))
        if self.capture == "all" and ctx.fitting:
            self._snapshot(ctx, "after")
        if self.breakpoints:
            self._fire(ctx, "after")

    def on_stage_error(self, ctx, error):
        """Trace a failed stage run, keep its post-mortem, fire the ``"error"`` breakpoints.

        A hook of the execution loop.

        Parameters
        ----------
        ctx : ~ml_toolbox.context.StageContext
            The stage run.
        error : BaseException
            The error of its last attempt.
        """
        self._stop_profile(ctx)
        self._record(ctx, self._event(ctx, "failed", error))
        failure = Failure.from_context(ctx, error, self.max_failure_bytes)
        with self._lock:
            self.last_failure = failure
        if self.breakpoints:
            self._fire(ctx, "error")

    # -- results ---------------------------------------------------------------------------
    def get_execution_trace(self, *, pipeline=None, stage=None, status=None):
        """Return the stage runs seen so far, in order.

        Parameters
        ----------
        pipeline : str, optional
            Only the runs of this pipeline.
        stage : str, optional
            Only the runs of this stage.
        status : {"success", "failed", "retried"}, optional
            Only the runs that ended this way.

        Returns
        -------
        Trace
            The events (stage runs) and runs (pipeline executions) kept, filtered.
        """
        with self._lock:
            trace = Trace(self._events, self._runs)
        if pipeline is None and stage is None and status is None:
            return trace
        return trace.filter(pipeline=pipeline, stage=stage, status=status)

    def visualize_trace(self, *, use_rich=None, width=120, console=None):
        """The execution trace as text: a rich tree, or a plain table when rich output is off.

        Parameters
        ----------
        use_rich : bool, default=None
            None follows the debugger's ``rich_output``.
        width : int, default=120
            Width of the text, in characters.
        console : rich.console.Console, default=None
            Also print the table there (e.g. ``rich.get_console()``).

        Returns
        -------
        str
            The rendered trace.
        """
        trace = self.get_execution_trace()
        use_rich = self.rich_output if use_rich is None else use_rich
        if console is not None:
            console.print(trace if use_rich else trace.render(use_rich=False))
        return trace.render(use_rich=use_rich, width=width)

    def time_breakdown(self):
        """Return the time spent in each stage, slowest first.

        Returns
        -------
        pandas.DataFrame
            One row per (pipeline, stage) with ``runs``, ``attempts``, ``total_s``, ``mean_s``,
            ``max_s`` and ``share`` (of all stage time).
        """
        with self._lock:
            items = list(self._timings.items())
        rows = [(p, s, runs, attempts, tot, tot / runs, worst)
                for (p, s), (runs, tot, worst, attempts) in items]
        frame = pd.DataFrame(rows, columns=["pipeline", "stage", "runs", "attempts", "total_s",
                                            "mean_s", "max_s"])
        grand = frame["total_s"].sum()
        frame["share"] = frame["total_s"] / grand if grand > 0 else 0.0
        return frame.sort_values("total_s", ascending=False, ignore_index=True)

    def reset(self):
        """Forget traces, timings, snapshots, profiles and the last failure (keep breakpoints)."""
        with self._lock:
            self._events.clear()
            self._runs.clear()
            self._open_runs.clear()
            self._timings.clear()
            self.snapshots.clear()
            self.profiles.clear()
            self.last_failure = None
