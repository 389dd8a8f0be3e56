"""The context objects the execution loop hands to every plug-in hook.

One :class:`RunContext` describes one execution of one pipeline (a ``fit``, a ``transform``,
a ``predict`` ...); one :class:`StageContext` describes one stage run inside it. Plug-ins read
them and may stash their own data in ``extra``; only the execution loop creates and fills them.

The data summary (``n_rows``, ``n_cols``, ``nbytes``) is computed from shapes and buffer sizes,
never by copying or serialising the data, and only when a plug-in asks for it.
"""

from __future__ import annotations

import itertools
import time
from time import perf_counter

from numpy import array as ndarray_of
from numpy import float64, ndarray
from pandas import DataFrame
from sklearn.base import clone

__all__ = ["RunContext", "StageContext", "data_summary"]

_run_ids = itertools.count(1)


def data_summary(X):
    """Cheap ``(n_rows, n_cols, nbytes)`` of a batch of data, without copying it.

    Works for numpy arrays, pandas DataFrames / Series, scipy sparse matrices and lists;
    ``None`` (no data) gives ``(0, 0, 0)``. Unknown objects give ``None`` for what cannot be told.

    Parameters
    ----------
    X : array-like, DataFrame, Series, sparse matrix, list or None
        The data.

    Returns
    -------
    (int or None, int or None, int or None)
        ``(n_rows, n_cols, nbytes)``.

    Examples
    --------
    >>> import numpy as np
    >>> data_summary(np.zeros((4, 3)))
    (4, 3, 96)
    """
    if X is None:
        return 0, 0, 0
    cls = type(X)
    if cls is ndarray:  # the common case, first (single-row predict path)
        shape = X.shape
        ndim = len(shape)
        return ((shape[0] if ndim else 1), (shape[1] if ndim > 1 else 1), X.nbytes)
    if cls is DataFrame:  # the other common one: read off the blocks (numpy 2-D, extension 1-D)
        blocks = X._mgr.blocks
        if len(blocks) == 1:  # one dtype (a one-row prediction's frame, usually)
            values = blocks[0].values
            shape = values.shape
            if len(shape) == 2:
                return shape[1], shape[0], values.nbytes
        try:
            n_rows, n_cols, nbytes = None, 0, 0
            for block in X._mgr.blocks:
                values = block.values
                shape = values.shape
                if len(shape) == 2:
                    n_cols += shape[0]
                    n_rows = shape[1]
                else:
                    n_cols += 1
                    n_rows = shape[0]
                nbytes += values.nbytes
            if n_rows is not None:
                return n_rows, n_cols, nbytes
        except (AttributeError, TypeError, IndexError):
            pass  # an unusual block, or no column: the general way below
    shape = getattr(X, "shape", None)
    if shape is None:
        try:
            n_rows = len(X)
        except TypeError:
            return None, None, None
        first = X[0] if n_rows else None
        n_cols = len(first) if hasattr(first, "__len__") and not isinstance(first, str) else 1
        return n_rows, n_cols, None
    n_rows = shape[0] if len(shape) else 1
    n_cols = shape[1] if len(shape) > 1 else 1
    nbytes = None
    blocks = getattr(getattr(X, "_mgr", None), "blocks", None)
    if blocks is not None and hasattr(X, "memory_usage"):
        # pandas: the sum of the block buffers is memory_usage(index=False, deep=False).sum()
        # at ~1 us instead of ~400 us (pandas 3 builds a Series per column there); it is looked
        # at first because a DataFrame's missing ``nbytes`` costs ~5 us through __getattr__.
        # This matters on the single-row predict path.
        try:
            nbytes = sum(int(block.values.nbytes) for block in blocks)
        except (AttributeError, TypeError):
            nbytes = None
    if nbytes is None:
        nbytes = getattr(X, "nbytes", None)
    if nbytes is None:
        if hasattr(X, "memory_usage"):  # pandas DataFrame / Series: buffer sizes, no deep scan
            try:
                usage = X.memory_usage(index=False, deep=False)
                nbytes = int(usage.sum()) if hasattr(usage, "sum") else int(usage)
            except (TypeError, ValueError):
                nbytes = None
        elif hasattr(X, "data") and hasattr(X, "indices"):  # scipy sparse (CSR / CSC)
            nbytes = int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes)
    return int(n_rows), int(n_cols), (int(nbytes) if nbytes is not None else None)


class RunContext:
    """One execution of one pipeline, as plug-ins see it.

    The execution loop makes one per pipeline run and hands it to the plug-ins' ``before_run``,
    ``after_run`` and ``on_run_error`` hooks; plug-ins read it and never build one.

    Parameters
    ----------
    pipeline : BasePipeline
        The pipeline object that runs.
    pipeline_name : str
        Its name.
    mode : str
        What the execution does (``"fit"``, ``"predict"``...).
    stage_names : iterable of str
        The stages this execution will run, in order.

    Attributes
    ----------
    pipeline : BasePipeline
        The pipeline object that runs.
    pipeline_name : str
        Its name (``"feature_pipeline"``, ``"training_pipeline"``, ...).
    mode : str
        What the execution does: ``"fit"``, ``"transform"``, ``"predict"``,
        ``"predict_proba"``, ``"decision_function"``, ``"score"``, ``"partial_fit"``...
    run_id : int
        Process-wide increasing id of this execution.
    stage_names : list of str
        The stages this execution will run, in order.
    start_time : float
        Wall-clock start (``time.time()``).
    start : float
        Monotonic start (``time.perf_counter()``).
    duration : float or None
        Seconds, once ended.
    status : str
        ``"running"``, ``"success"`` or ``"failed"``.
    error : BaseException or None
        The error that ended the execution, if any.
    stages : list of StageContext
        The stage runs of this execution so far (emptied once the ``after_run`` /
        ``on_run_error`` hooks are done). A finished stage's data (``X``, ``output``) is
        released as soon as its ``after_stage`` hooks have run, so that a pipeline with plug-ins
        holds no more data at a time than one without: a plug-in that needs the data later keeps
        what it needs in ``after_stage``.
    extra : dict
        Free room for plug-ins.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ml_toolbox import FeaturePipeline, PipelinePlugin
    >>> class RunLog(PipelinePlugin):
    ...     def after_run(self, run):
    ...         print(run.pipeline_name, run.mode, run.stage_names, run.status)
    >>> fp = FeaturePipeline([("scale", StandardScaler())], monitor=RunLog())
    >>> _ = fp.fit(np.array([[1.0], [3.0]]))
    feature_pipeline fit ['scale'] success
    """

    # Defaults that most executions keep live on the class: an execution (one per single-row
    # predict) stores only what differs.
    duration = None
    status = "running"
    error = None
    # (stage names, modes, clock readings, data sizes) when the stages ran at once, in one call
    # (ml_toolbox.base._observed): what the stage contexts tell, for a whole-run reader (the monitor)
    _at_once = None

    def __init__(self, pipeline, pipeline_name, mode, stage_names):
        self.pipeline = pipeline
        self.pipeline_name = pipeline_name
        self.mode = mode
        self.run_id = next(_run_ids)
        self.stage_names = list(stage_names)
        self.start_time = time.time()
        self.start = perf_counter()
        self.stages = []
        self.extra = {}

    def __repr__(self):
        took = "" if self.duration is None else f", duration={self.duration:.6f}s"
        return (f"<RunContext #{self.run_id} {self.pipeline_name!r} mode={self.mode!r} "
                f"status={self.status!r}{took}>")


class StageContext:
    """One stage run, as plug-ins see it.

    The execution loop makes one per stage run and hands it to the plug-ins' stage hooks
    (``before_stage``, ``after_stage``, ``on_stage_error``, ``on_stage_retry``).

    Parameters
    ----------
    run : RunContext
        The execution this stage run belongs to.
    template : PipelineStage
        The stage as the pipeline holds it.
    stage_name : str
        The stage's name in its pipeline.
    index : int
        Position of the stage in this execution (0-based).
    mode : str
        What the stage does in this run (``"fit"``, ``"transform"``...).
    fitting : bool
        Whether the stage is being (re)fitted.
    X : array-like or DataFrame
        The stage's input.
    y : array-like or None
        The targets, where the mode uses them.

    Attributes
    ----------
    run : RunContext
        The execution this stage run belongs to.
    pipeline_name : str
        Name of the pipeline running the stage.
    stage : PipelineStage
        The stage object that runs. In a fitting mode this is the fresh clone being fitted
        (a new one for every attempt); otherwise the fitted stage.
    template : PipelineStage
        The stage as the pipeline holds it (for fitting modes, what each attempt clones).
    stage_name : str
        The stage's name in its pipeline.
    index : int
        Position of the stage in this execution (0-based).
    mode : str
        What the stage does in this run: ``"fit"``, ``"fit_transform"``, ``"transform"``,
        ``"predict"``, ``"predict_proba"``, ``"decision_function"``, ``"score"``, ``"partial_fit"``.
    fitting : bool
        True when the stage is being (re)fitted, so each attempt starts from a clone.
    X, y : data
        The stage's input. ``y`` is None where the mode does not use it.
    attempt : int
        1 for the first attempt; a retry policy increments it.
    last_error : BaseException or None
        The error of the previous attempt, during a retry.
    start_time, start : float
        Wall-clock and monotonic start of the stage run (all attempts together).
    duration : float or None
        Seconds, once ended (all attempts together, sleeps between them included).
    status : str
        ``"running"``, ``"success"`` or ``"failed"``.
    output : object
        What the stage returned (``after_stage`` only; ``X`` and ``output`` are set to None once
        the ``after_stage`` hooks have run).
    error : BaseException or None
        The error (``on_stage_error`` only).
    warnings : sequence of warnings.WarningMessage
        Warnings the stage raised, in order (recorded only when a plug-in sets
        ``captures_warnings = True``; an empty tuple when there are none).
    extra : dict
        Free room for plug-ins.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ml_toolbox import FeaturePipeline, PipelinePlugin
    >>> class StageLog(PipelinePlugin):
    ...     def after_stage(self, ctx):
    ...         print(ctx.pipeline_name, ctx.stage_name, ctx.mode, ctx.status, ctx.n_rows)
    >>> fp = FeaturePipeline([("scale", StandardScaler())], monitor=StageLog())
    >>> _ = fp.fit(np.array([[1.0], [3.0]]))
    feature_pipeline scale fit_transform success 2
    """

    # Defaults on the class: a stage run (three per single-row predict of a three-stage
    # pipeline) stores only its own values, and the execution loop sets the rest as they come.
    attempt = 1
    last_error = None
    duration = None
    status = "running"
    output = None
    error = None
    warnings = ()
    _extra = None  # made on first use (``extra``): most stage runs never need it
    _summary_in = None
    _summary_out = None

    def __init__(self, run, template, stage_name, index, mode, fitting, X, y):
        self.run = run
        self.stage = self.template = template
        self.stage_name = stage_name
        self.index = index
        self.mode = mode
        self.fitting = fitting
        self.X = X
        self.y = y
        self.start = perf_counter()

    @property
    def pipeline_name(self):
        """Name of the pipeline running the stage (the run's)."""
        return self.run.pipeline_name

    @property
    def extra(self):
        """Free room for plug-ins (a dict)."""
        extra = self._extra
        if extra is None:
            extra = self._extra = {}
        return extra

    @property
    def start_time(self):
        """Wall-clock start (``time.time()`` scale), from the run's clock and ``start``."""
        run = self.run
        return run.start_time + (self.start - run.start)

    @property
    def input_summary(self):
        """``(n_rows, n_cols, nbytes)`` of the input, computed once, without copying."""
        if self._summary_in is None:
            self._summary_in = data_summary(self.X)
        return self._summary_in

    @property
    def output_summary(self):
        """``(n_rows, n_cols, nbytes)`` of the output (a fitted model counts as no data)."""
        if self._summary_out is None:
            out = self.output
            if type(out) is ndarray or type(out) is DataFrame:  # data (and no __getattr__ trip)
                self._summary_out = data_summary(out)
            elif out is None or out is self.stage or hasattr(out, "fit"):
                self._summary_out = (0, 0, 0)
            else:
                self._summary_out = data_summary(out)
        return self._summary_out

    @property
    def n_rows(self):
        """Rows of the input."""
        return self.input_summary[0]

    @property
    def n_cols(self):
        """Columns of the input."""
        return self.input_summary[1]

    @property
    def nbytes(self):
        """Bytes of the input's buffers (None when it cannot be told cheaply)."""
        return self.input_summary[2]

    def rerun(self, X=None, y=None):
        """Run this stage alone again, as this stage run did, on ``X`` (default: the same input).

        In a fitting mode a fresh clone of the template is fitted, so nothing the failed run
        half-changed is reused; otherwise the (fitted) stage runs again. The pipeline and its
        plug-ins are not involved.

        Parameters
        ----------
        X : array-like or DataFrame, default=None
            The input; None reuses this stage run's ``X`` (None once ``after_stage`` has run).
        y : array-like, default=None
            The targets; None reuses this stage run's ``y``.

        Returns
        -------
        object
            What the stage returns in this mode (the stage itself for ``"fit"``, an array for
            ``"transform"`` or ``"predict"``...).
        """
        X = self.X if X is None else X
        y = self.y if y is None else y
        stage = clone(self.template) if self.fitting else self.template
        return stage.run(X, y, mode=self.mode)

    def __repr__(self):
        return (f"<StageContext {self.pipeline_name}/{self.stage_name} mode={self.mode!r} "
                f"attempt={self.attempt} status={self.status!r}>")


def row_output(row):
    """A stage's one-row output as scikit-learn returns it: the ``(1, n)`` float64 array of
    ``row``, a list of floats or a 1-D float64 array (see :func:`ml_toolbox.fast.compile_row`)."""
    if row.__class__ is list:
        return ndarray_of([row], float64)
    return row.reshape(1, -1)


def _at_once_value(values, k):
    """``values[k]`` of an execution whose stages ran at once: ``values[0]`` its input,
    ``values[i + 1]`` stage ``i``'s output. The outputs between stages are kept as the row itself
    and made arrays (:func:`row_output`) the first time a plug-in reads them, once: a stage's
    input stays the previous stage's output object."""
    v = values[k]
    if 0 < k < len(values) - 1 and v is not None and (v.__class__ is list or v.ndim == 1):
        v = values[k] = row_output(v)
    return v


class _AtOnceStageContext(StageContext):
    """A stage run of an execution whose stages ran at once, in one call, for observer plug-ins
    (:attr:`ml_toolbox.plugins.PipelinePlugin.observer`; see :func:`ml_toolbox.base._observed`):
    made once the stage has run, with its timings and data sizes. ``X`` and ``output`` are read
    from the run's data (None once the stage's hooks have run, as for every stage run)."""

    fitting = False
    status = "success"

    def __init__(self, run, template, stage_name, index, mode, y, start, duration, values,
                 summary_in, summary_out):
        self.run = run
        self.stage = self.template = template
        self.stage_name = stage_name
        self.index = index
        self.mode = mode
        self.y = y
        self.start = start
        self.duration = duration
        self._values = values
        self._summary_in = summary_in
        self._summary_out = summary_out

    @property
    def X(self):
        return _at_once_value(self._values, self.index)

    @X.setter
    def X(self, value):
        self._values[self.index] = value

    @property
    def output(self):
        return _at_once_value(self._values, self.index + 1)

    @output.setter
    def output(self, value):
        self._values[self.index + 1] = value
