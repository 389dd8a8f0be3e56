"""Fast inference: run fitted scikit-learn stages without repeating their input checks.

:func:`build_plan` turns a chain of fitted stages (a :class:`sklearn.pipeline.Pipeline`, a list of
``(name, estimator)`` pairs, or ml_toolbox stages) into a :class:`FastPlan`. For every stage the plan
uses a lean numpy kernel computed from the fitted attributes when one covers it (scalers, imputer,
one-hot encoder, column transformer, PCA, linear models); each kernel performs the same floating-point
operations in the same order as scikit-learn, so the results are identical bit for bit. Any other
stage runs its own scikit-learn method inside ``sklearn.config_context(assume_finite=True,
skip_parameter_validation=True)``, after a cheap finiteness check on its input.

Whenever a kernel meets an input it was not written for (NaN where the estimator rejects it, an
unknown category, another dtype or width), the stage runs through scikit-learn's own, fully checked
method instead: the result, or the error, is scikit-learn's.

Examples
--------
>>> from sklearn.datasets import load_iris
>>> from sklearn.impute import SimpleImputer
>>> from sklearn.linear_model import LogisticRegression
>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> X, y = load_iris(return_X_y=True, as_frame=True)
>>> pipe = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(X, y)
>>> plan = build_plan(pipe)
>>> bool((plan.run(X.iloc[:1], "predict_proba") == pipe.predict_proba(X.iloc[:1])).all())
True
>>> [r.path for r in plan.explain("predict_proba")]
['kernel', 'kernel', 'kernel']
"""

import itertools
import threading
import time
from typing import NamedTuple

import numpy as np
import pandas as pd
import sklearn
from joblib import Parallel, delayed
from sklearn.pipeline import Pipeline

from ml_toolbox.exceptions import annotate
from ml_toolbox._schema import same_names
from ml_toolbox._kernels import (Decline, NoKernel, RowKernel, finite_or_decline, make_kernel,
                                 register_kernel, row_finite, row_pass, row_without_inf,
                                 unregister_kernel)

__all__ = ["FastPlan", "StageReport", "PlanExplanation", "build_plan", "register_kernel",
           "unregister_kernel", "METHODS"]

METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function", "transform")


class StageReport(NamedTuple):
    """How one stage runs on the fast path (a row of :meth:`FastPlan.explain`).

    Parameters
    ----------
    stage : str
        The stage's name.
    estimator : str
        Its class name.
    path : {"kernel", "fallback"}
        Whether it runs on a kernel or through its own scikit-learn method.
    reason : str
        Which kernel, or why there is none.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.linear_model import Ridge
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import RobustScaler
    >>> from ml_toolbox.fast import FastPlan
    >>> X, y = load_diabetes(return_X_y=True)
    >>> pipe = make_pipeline(RobustScaler(), Ridge()).fit(X, y)
    >>> plan = FastPlan(pipe.steps, name="diabetes")
    >>> plan.explain()[1]
    StageReport(stage='ridge', estimator='Ridge', path='kernel', reason='numpy kernel for Ridge.predict')
    """

    stage: str
    estimator: str
    path: str
    reason: str


class PlanExplanation(tuple):
    """The per-stage :class:`StageReport` rows of a plan, printable as a table.

    ``calls`` holds the plan's :meth:`FastPlan.path_counts` for the method when it was made (None
    for an explanation made by hand); once a call has been made, ``str()`` ends with them.

    Parameters
    ----------
    iterable : iterable of StageReport
        The rows, in stage order.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.linear_model import Ridge
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import RobustScaler
    >>> from ml_toolbox.fast import FastPlan
    >>> X, y = load_diabetes(return_X_y=True)
    >>> pipe = make_pipeline(RobustScaler(), Ridge()).fit(X, y)
    >>> plan = FastPlan(pipe.steps, name="diabetes")
    >>> _ = plan.run(X[:2])
    >>> print(plan.explain())
    stage         estimator     path    reason
    robustscaler  RobustScaler  kernel  numpy kernel for RobustScaler.transform
    ridge         Ridge         kernel  numpy kernel for Ridge.predict
    calls: 1 on kernels, 0 fell back
    """

    calls = None

    def _call_lines(self):
        calls = self.calls
        if not calls or not (calls["fast"] or calls["fallback"]):
            return []
        lines = [f"calls: {calls['fast']} on kernels, {calls['fallback']} fell back"]
        lines += [f"  {n} x {reason}" for reason, n in
                  sorted(calls["reasons"].items(), key=lambda item: -item[1])]
        return lines

    def __str__(self):
        rows = [("stage", "estimator", "path", "reason")] + [tuple(r) for r in self]
        widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
        return "\n".join(["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
                          for r in rows] + self._call_lines())

    def __rich__(self):
        from rich.table import Table

        caption = "\n".join(self._call_lines()) or None
        table = Table("stage", "estimator", "path", "reason", title="fast inference plan",
                      caption=caption)
        for r in self:
            table.add_row(r.stage, r.estimator, r.path, r.reason)
        return table


def _inner_reports(step, rows):
    for _idx, _cols, inner in step.kernel.parts:
        for sub in inner or ():
            rows.append(sub.report())
            if _has_composite_kernel(sub):
                _inner_reports(sub, rows)


# --------------------------------------------------------------------------------------------------
# one-row DataFrame access without pandas' per-call overhead


def _row_columns(df):
    """Per-column values and dtypes of a one-row DataFrame, read from its blocks."""
    n = df.shape[1]
    values, dtypes = [None] * n, [None] * n
    try:
        blocks = df._mgr.blocks
    except AttributeError:  # pragma: no cover - another pandas layout: the public, slower way
        for i in range(n):
            col = df.iloc[:, i]
            dtypes[i] = col.dtype
            values[i] = col.to_numpy(dtype=object if not isinstance(col.dtype, np.dtype) else None)[0]
        return values, dtypes
    for blk in blocks:
        vals = blk.values
        locs = blk.mgr_locs.as_array
        if isinstance(vals, np.ndarray):
            dt = vals.dtype
            for k, loc in enumerate(locs):
                values[loc] = vals[k, 0]
                dtypes[loc] = dt
        else:  # extension array (pandas string, categorical, nullable ...): one column per block
            dtypes[locs[0]] = vals.dtype
            values[locs[0]] = _first_string(vals) if _is_string(vals.dtype) else _NOT_SUPPORTED
    return values, dtypes


def _first_string(arr):
    """Element 0 of a pandas string array as ``np.asarray`` gives it (str, or the NA marker)."""
    na = arr.dtype.na_value
    if not (isinstance(na, float) and na != na):
        return _NOT_SUPPORTED  # pd.NA-valued "string" dtype: let scikit-learn handle it
    pa_array = getattr(arr, "_pa_array", None)
    if pa_array is not None and pa_array.num_chunks == 1:
        value = pa_array.chunk(0).to_pylist()[0]
        return na if value is None else value
    return arr.to_numpy(dtype=object)[0]


_NOT_SUPPORTED = object()


def _is_string(dtype):
    return isinstance(dtype, pd.StringDtype)


def _single_block(df):
    """The (1, n) numeric array view of a one-row frame held in one numpy block in column order."""
    try:
        blocks = df._mgr.blocks
        if len(blocks) != 1:
            return None
        values = blocks[0].values
        if not isinstance(values, np.ndarray) or values.dtype.kind not in "iuf":
            return None
        locs = blocks[0].mgr_locs.as_slice
        if locs.start not in (0, None) or locs.step not in (1, None) or locs.stop != values.shape[0]:
            return None
    except (AttributeError, TypeError, ValueError):  # pragma: no cover - another pandas layout
        return None
    return values.T


class _Row:
    """A one-row DataFrame seen as scikit-learn's ``check_array`` would see a selection of it."""

    __slots__ = ("values", "dtypes")

    def __init__(self, df):
        self.values, self.dtypes = _row_columns(df)

    def select(self, idx):
        values, dtypes = self.values, self.dtypes
        dts = [dtypes[i] for i in idx]
        vals = [values[i] for i in idx]
        if any(v is _NOT_SUPPORTED for v in vals):
            raise Decline("pandas extension dtype")
        if all(isinstance(d, np.dtype) and d.kind in "iuf" for d in dts) or all(
            isinstance(d, np.dtype) and d.kind == "b" for d in dts
        ):
            dt = np.result_type(*dts) if dts else np.float64
            return np.array([vals], dtype=dt)
        if all(isinstance(d, np.dtype) and d.kind in "iufbO" or _is_string(d) for d in dts):
            out = np.empty((1, len(vals)), dtype=object)
            for j, v in enumerate(vals):
                out[0, j] = v
            return out
        raise Decline("dtype")


# --------------------------------------------------------------------------------------------------
# stages


def _allows_nan(est):
    try:
        return bool(est.__sklearn_tags__().input_tags.allow_nan)
    except Exception:  # noqa: BLE001 - an estimator without tags: assume it rejects NaN
        return False


class _Step:
    """One stage of a plan for one method: a kernel, or the estimator's own method."""

    def __init__(self, name, est, method, plan_name, mode=None, tally=None, densified=False):
        self.name = name
        self.est = est
        self.method = method
        self.mode = mode or method
        self.plan_name = plan_name
        self.tally = tally
        self.allow_nan = _allows_nan(est)
        self.kernel = None
        try:
            self.kernel = _stage_kernel(est, method, plan_name, name, tally, densified)
            self.reason = getattr(self.kernel, "reason", None) or _kernel_reason(est, method)
        except NoKernel as exc:
            self.reason = str(exc)

    def __call__(self, X):
        kernel = self.kernel
        if kernel is not None:
            if X.__class__ is np.ndarray or X.__class__ is _Row:
                try:
                    return kernel(X)
                except Decline as exc:
                    self.declined(str(exc))
                except Exception as exc:  # noqa: BLE001 - the fast path's own error: never the user's
                    self.declined(f"kernel error ({type(exc).__name__})")
            else:
                self.declined(f"input of type {type(X).__name__}")
            return self.checked(X)
        return self.light(X)

    def declined(self, reason):
        """Note that this call's input went through scikit-learn's checked method, and why."""
        if self.tally is not None:
            self.tally.declined(self.name, reason)

    def light(self, X):
        """The estimator's method in scikit-learn's lightweight config, after a finiteness check."""
        if not isinstance(X, np.ndarray):
            return self.checked(X)
        try:
            finite_or_decline(X, self.allow_nan)
        except Decline:
            return self.checked(X)
        try:
            with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
                return getattr(self.est, self.method)(X)
        except Exception as exc:
            self._note(exc)
            raise

    def checked(self, X):
        """The estimator's method with all of scikit-learn's checks: its result or its error."""
        if isinstance(X, _Row):  # pragma: no cover - the plan never hands a _Row to a fallback
            raise TypeError("internal: row accessor reached a fallback")
        try:
            return getattr(self.est, self.method)(X)
        except Exception as exc:
            self._note(exc)
            raise

    def _note(self, exc):
        # the same note the execution loop adds on the normal path (top-level stage name)
        annotate(exc, self.plan_name, self.name.split("/")[0], self.mode)

    def report(self):
        return StageReport(self.name, type(self.est).__name__,
                           "kernel" if self.kernel is not None else "fallback", self.reason)


class _Tally:
    """How the calls of a plan went, per method: on kernels throughout, or not, and why.

    A stage that declines during a call notes its reason (:meth:`declined`, kept per thread
    until the call ends); :meth:`count` then files the call as ``fast`` (no reason: every stage
    ran its kernel) or ``fallback`` with the reasons: the stages without a kernel (known when the
    plan was built) and those that declined this input. Thread-safe.
    """

    __slots__ = ("lock", "local", "fast", "fallback", "reasons", "hits", "counters")

    def __init__(self):
        self.lock = threading.Lock()
        self.local = threading.local()
        self.fast = {}
        self.fallback = {}
        self.reasons = {}
        # one-row calls that took the row function whole: counted without a lock (the next() of
        # an itertools.count is atomic), ``hits[method]()`` being that count's __next__
        self.hits = {}
        self.counters = {}

    def hit(self, method):
        """The counter of ``method``'s whole-row calls (made on first use)."""
        with self.lock:
            if method not in self.hits:
                self.counters[method] = counter = itertools.count()
                self.hits[method] = counter.__next__
            return self.hits[method]

    def declined(self, stage, reason):
        pending = self.local.__dict__.setdefault("pending", [])
        pending.append(f"stage {stage!r}: {reason}")

    def begin(self):
        """A call observed by plug-ins starts on this thread (see :meth:`FastPlan.current_path`)."""
        local = self.local.__dict__
        local.pop("pending", None)
        local["active"] = True

    def current(self, static):
        """The path of this thread's call so far: None outside an observed call, ``"kernel"``,
        or ``"fallback: <reasons>"``."""
        local = self.local.__dict__
        if not local.get("active"):
            return None
        reasons = (*static, *dict.fromkeys(local.get("pending") or ()))
        return "fallback: " + "; ".join(reasons) if reasons else "kernel"

    def discard(self):
        """Forget the reasons noted by this thread (a call that is not counted)."""
        self.local.__dict__.pop("pending", None)

    def count(self, method, static=()):
        local = self.local.__dict__
        local.pop("active", None)
        pending = local.pop("pending", None)
        with self.lock:
            if not (static or pending):
                self.fast[method] = self.fast.get(method, 0) + 1
                return
            self.fallback[method] = self.fallback.get(method, 0) + 1
            by_reason = self.reasons.setdefault(method, {})
            for reason in (*static, *(dict.fromkeys(pending) if pending else ())):
                by_reason[reason] = by_reason.get(reason, 0) + 1

    def counts(self, method):
        with self.lock:
            counter = self.counters.get(method)
            hits = int(repr(counter)[len("count("):-1]) if counter is not None else 0
            return {"fast": self.fast.get(method, 0) + hits,
                    "fallback": self.fallback.get(method, 0),
                    "reasons": dict(self.reasons.get(method, {}))}

    def reset(self):
        with self.lock:
            self.fast.clear()
            self.fallback.clear()
            self.reasons.clear()
            for method in list(self.hits):
                self.counters[method] = counter = itertools.count()
                self.hits[method] = counter.__next__


def _kernel_reason(est, method):
    return f"numpy kernel for {type(est).__name__}.{method}"


def _stage_kernel(est, method, plan_name, name, tally, densified=False):
    """The kernel of one stage (composites looked inside), or :class:`NoKernel` with the reason.

    Estimators are dispatched by exact type: the composites here, then the kernel factories of
    :mod:`ml_toolbox._kernels` (:func:`register_kernel` adds one for another type).
    """
    from sklearn.pipeline import FeatureUnion

    from ml_toolbox.preprocessing import AutoPreprocessor

    cls = type(est)
    if cls is AutoPreprocessor:  # the toolbox's default: its fitted ColumnTransformer's kernel
        if method != "transform":
            raise NoKernel(f"method {method!r}")
        # its categorical parts take None and pd.NA as missing (NaN), as AutoPreprocessor.transform
        return _column_transformer_kernel(est.column_transformer_, plan_name, name, tally,
                                          owner=est,
                                          none_missing=("categorical", "high_cardinality"))
    if _is_column_transformer(est):
        if method != "transform":
            raise NoKernel(f"method {method!r}")
        return _column_transformer_kernel(est, plan_name, name, tally)
    if cls is FeatureUnion:
        if method != "transform":
            raise NoKernel(f"method {method!r}")
        return _feature_union_kernel(est, plan_name, name, tally)
    if isinstance(est, Pipeline):
        raise NoKernel("nested Pipeline outside a ColumnTransformer")
    if not _output_config_default(est):
        raise NoKernel("set_output(transform=...) is not 'default'")
    return make_kernel(est, method, densified=densified)


def _is_column_transformer(est):
    from sklearn.compose import ColumnTransformer

    return type(est) is ColumnTransformer


def _has_composite_kernel(step):
    return step.kernel is not None and hasattr(step.kernel, "parts")


def _output_config_default(est):
    config = getattr(est, "_sklearn_output_config", None) or {}
    return config.get("transform", "default") == "default" and sklearn.get_config()["transform_output"] == "default"


def _is_identity(trans):
    """A FunctionTransformer that hands its input on unchanged (scikit-learn's passthrough)."""
    from sklearn.preprocessing import FunctionTransformer

    return (type(trans) is FunctionTransformer and trans.func is None and not trans.validate
            and _output_config_default(trans))


def _inner_steps(label, trans, plan_name, stage_name, tally, densified=False):
    """The kernels of a composite's part (an estimator or a Pipeline of them), every one required:
    a stage without a kernel would be handed arrays where scikit-learn hands it DataFrames."""
    inner = list(trans.steps) if isinstance(trans, Pipeline) else [(label, trans)]
    inner = [(n, e) for n, e in inner if e is not None and not (isinstance(e, str) and e == "passthrough")]
    inner = [(n, e) for n, e in inner if not _is_identity(e)]
    steps = []
    for k, (n, e) in enumerate(inner):
        path = f"{stage_name}/{label}" if n == label else f"{stage_name}/{label}/{n}"
        if not _output_config_default(e):
            raise NoKernel(f"{path}: set_output(transform=...) is not 'default'")
        # the last one's sparse output is made dense by the composite (dense output): same values
        step = _Step(path, e, "transform", plan_name, tally=tally,
                     densified=densified and k == len(inner) - 1)
        if step.kernel is None:
            raise NoKernel(f"{path}: {step.reason}")
        steps.append(step)
    return steps or None


def _column_transformer_kernel(ct, plan_name, stage_name, tally=None, owner=None,
                               none_missing=()):
    """The kernel of a fitted ColumnTransformer whose every part has a kernel (dense output).

    It selects each part's columns as ``ColumnTransformer.transform`` does, runs the part's kernels
    and stacks the outputs with ``np.hstack``, as ``ColumnTransformer._hstack`` does for dense
    output. A Decline anywhere declines the whole ColumnTransformer: it then runs as scikit-learn's.
    The parts named in ``none_missing`` first see ``None`` and ``pd.NA`` in object columns
    replaced by NaN (AutoPreprocessor's categorical parts, see ``_categorical_missing_as_nan``).
    """
    from sklearn.compose._column_transformer import _is_empty_column_selection
    from sklearn.utils import _safe_indexing

    from ml_toolbox.preprocessing import _none_as_nan

    if ct.sparse_output_:
        raise NoKernel("sparse output")
    if ct.transformer_weights:
        raise NoKernel("transformer_weights")
    if not _output_config_default(ct) or (owner is not None and not _output_config_default(owner)):
        raise NoKernel("set_output(transform=...) is not 'default'")
    names_in = getattr(ct, "feature_names_in_", None)
    n_in = ct.n_features_in_
    parts, nan_parts = [], []
    for name, trans, columns in ct.transformers_:
        if isinstance(trans, str) and trans == "drop":
            continue
        if _is_empty_column_selection(columns):
            continue
        idx = list(ct._transformer_to_input_indices[name])
        nan_parts.append(name in none_missing)
        if isinstance(trans, str) and trans == "passthrough":
            parts.append((idx, columns, None))
            continue
        parts.append((idx, columns, _inner_steps(name, trans, plan_name, stage_name, tally,
                                                 densified=True)))

    compiled = {}  # the row functions of the dtypes met (one, for a model serving one source)

    def kernel(X):
        if X.__class__ is _Row:
            if len(X.values) != n_in:
                raise Decline("width")
            # keyed by the dtype objects' ids (hashing a pandas dtype costs more than the row);
            # the entry holds the dtypes, so no id is reused while it is cached
            key = tuple(map(id, X.dtypes))
            entry = compiled.get(key)
            if entry is None:
                entry = (_compile_ct_row(parts, X.dtypes, nan_parts) or False, list(X.dtypes))
                if len(compiled) < 8:
                    compiled[key] = entry
            if entry[0]:
                return entry[0](X.values)
            one = True
        else:
            if X.__class__ is not np.ndarray or X.ndim != 2 or X.shape[1] != n_in or names_in is not None:
                raise Decline("input")
            one = X.shape[0] == 1
        outs = []
        for (idx, columns, steps), none_as_nan in zip(parts, nan_parts):
            if X.__class__ is _Row:
                sub = X.select(idx)
            elif one:
                sub = X[:, idx]
            else:
                sub = _safe_indexing(X, columns, axis=1)
            if sub.ndim == 1:
                raise Decline("1-D column selection")
            if none_as_nan and sub.dtype.kind == "O":
                sub = _none_as_nan(sub)
            if steps is not None:
                for step in steps:  # a Decline here sends the whole ColumnTransformer to sklearn
                    sub = step.kernel(sub)
            outs.append(sub)
        if not outs:
            n = 1 if X.__class__ is _Row else X.shape[0]
            return np.zeros((n, 0))
        return np.hstack(outs)

    kernel.parts = parts
    kernel.takes_row = True
    return kernel


def _compile_ct_row(parts, dtypes, nan_parts=None):
    """A ColumnTransformer's one-row function on the row's values (a list, as :class:`_Row` reads
    them), or None when a part is not of the two kinds it knows:

    - numeric: float64 columns (integer and boolean ones too when the first stage converts to
      float) through elementwise stages (imputer, scalers): one pass over the row's Python floats
      with the checks scikit-learn makes (:func:`compile_row`);
    - categorical: object or string columns through an imputer fitted on objects (NaN filled)
      then a one-hot encoder: the positions of the ones.

    The parts' outputs are float64, written into one (1, n) array in the order of ``np.hstack``.
    Anything the kernels would decline raises :class:`Decline` here too. A categorical part marked
    in ``nan_parts`` takes ``None`` and ``pd.NA`` as missing (filled as NaN is).
    """
    writers, offset = [], 0
    if nan_parts is None:
        nan_parts = [False] * len(parts)
    for (idx, _columns, steps), none_as_nan in zip(parts, nan_parts):
        dts = [dtypes[i] for i in idx]
        writer = None
        if steps is None:
            if all(d == _F64 for d in dts):
                writer = _copy_writer(idx, offset)
                width = len(idx)
        elif all(getattr(st.kernel, "row", None) is not None
                 and st.kernel.row.program is not None for st in steps):
            rows = [st.kernel.row for st in steps]
            kinds = [d.kind if isinstance(d, np.dtype) else "?" for d in dts]
            numeric = all(k in "biu" or d == _F64 for k, d in zip(kinds, dts))
            if numeric and ("f" in kinds or rows[0].floats) and len(idx) <= _SHORT_ROW:
                fns = compile_row(rows, len(idx))
                if len(fns) == 1 and hasattr(fns[0], "on_list"):
                    writer = _program_writer(idx, offset, fns[0].on_list)
                    width = rows[-1].width
        else:
            writer, width = _categorical_writer(idx, offset, steps, dts, none_as_nan)
        if writer is None:
            return None
        writers.append(writer)
        offset += width
    total = offset
    zeros = np.zeros

    def run(values):
        out = zeros(total)
        for write in writers:
            write(values, out)
        return out.reshape(1, -1)

    return run


def _copy_writer(idx, offset):
    def write(values, out):
        for k, i in enumerate(idx):
            out[offset + k] = values[i]

    return write


def _program_writer(idx, offset, on_list):
    def write(values, out):
        vs = on_list([float(values[i]) for i in idx])
        out[offset:offset + len(vs)] = vs

    return write


def _categorical_writer(idx, offset, steps, dts, none_as_nan=False):
    """``(write, width)`` of an [object imputer,] one-hot part, or ``(None, 0)``; ``none_as_nan``:
    ``None`` and ``pd.NA`` are read as NaN first."""
    if not all(isinstance(d, np.dtype) and d.kind == "O" or _is_string(d) for d in dts):
        return None, 0
    kernels = [st.kernel for st in steps]
    fills = None
    if len(kernels) == 2 and hasattr(kernels[0], "object_fill"):
        fills = kernels[0].object_fill
        kernels = kernels[1:]
    if len(kernels) != 1 or not hasattr(kernels[0], "ones") or kernels[0].out_dtype != _F64:
        return None, 0
    ones = kernels[0].ones
    na, nan = pd.NA, np.nan
    # a pd.NA-valued string column is read as _NOT_SUPPORTED (see _first_string): never looked up
    may_be_unread = any(_is_string(d) for d in dts)

    def write(values, out):
        row = [values[i] for i in idx]
        if may_be_unread and any(v is _NOT_SUPPORTED for v in row):
            raise Decline("pandas extension dtype")
        if none_as_nan:
            row = [nan if v is None or v is na else v for v in row]
        if fills is not None:  # SimpleImputer on objects: X != X marks the missing values
            for k, v in enumerate(row):
                missing = v != v
                if missing.__class__ is not bool:
                    if not isinstance(missing, np.bool_):
                        raise Decline("elementwise comparison")
                    missing = bool(missing)
                if missing:
                    row[k] = fills[k]
        for j in ones(row):
            out[offset + j] = 1.0

    return write, kernels[0].n_out


def _feature_union_kernel(fu, plan_name, stage_name, tally=None):
    """The kernel of a fitted FeatureUnion of parts with kernels: ``np.hstack`` of their outputs."""
    if fu.transformer_weights:
        raise NoKernel("transformer_weights")
    if not _output_config_default(fu):
        raise NoKernel("set_output(transform=...) is not 'default'")
    if hasattr(fu, "feature_names_in_"):
        raise NoKernel("fitted on a DataFrame (its parts receive DataFrames)")
    n_in = fu.n_features_in_
    parts = []
    for name, trans in fu.transformer_list:
        if isinstance(trans, str) and trans == "drop":
            continue
        if isinstance(trans, str) and trans == "passthrough":
            parts.append((None, None, None))
            continue
        parts.append((None, None, _inner_steps(name, trans, plan_name, stage_name, tally)))

    def kernel(X):
        if X.__class__ is not np.ndarray or X.ndim != 2 or X.shape[1] != n_in:
            raise Decline("input")
        outs = []
        for _, _, steps in parts:
            sub = X
            for step in steps or ():
                sub = step.kernel(sub)
            outs.append(sub)
        if not outs:
            return np.zeros((X.shape[0], 0))
        return np.hstack(outs)

    kernel.parts = parts
    return kernel


# --------------------------------------------------------------------------------------------------
# the one-row path: one flat function per method


_UNHANDLED = object()
_F64 = np.dtype(np.float64)


def _deferrable(rows, i):
    """Whether stage ``i``'s check may wait for the "finite" check of a later stage's input.

    It may when the values stage ``i`` refuses stay non-finite in its output and the stages after
    it are sticky up to one that needs a finite input: such a value reaches that check as NaN or
    +-inf, the check declines, and the row goes through scikit-learn, which raises at stage ``i``
    as it always does.
    """
    if not rows[i].defers:
        return False
    for rk in rows[i + 1:]:
        if rk.needs == "finite":
            return True
        if not rk.sticky:
            return False
    return False


_SHORT_ROW = 64  # up to this many values, elementwise stages run on the row's Python floats


def compile_row(rows, n_in):
    """The checks and row kernels of one method, in order: a list of ``x -> x`` functions.

    Stage ``k``'s input must meet ``rows[k].needs`` as scikit-learn would check it. A check is
    placed before a stage unless what is known of its input already meets the need (an imputer's
    output is finite) or the check can be deferred (:func:`_deferrable`). Consecutive elementwise
    stages (and the checks between them) of a row of at most 64 values run in one pass over its
    Python floats (:func:`ml_toolbox._kernels.row_pass`).

    Parameters
    ----------
    rows : list of ml_toolbox._kernels.RowKernel
    n_in : int
        The number of values in the row.

    Returns
    -------
    list of callable
    """
    return _functions(_placed_checks(rows, n_in))


def _placed_checks(rows, n_in):
    """:func:`compile_row`'s checks and row kernels in order, as ``(item, width)``: ``item`` a check
    function or a RowKernel, ``width`` the number of values in the row there."""
    items, known, width = [], None, n_in
    for i, rk in enumerate(rows):
        met = True
        if rk.needs == "finite" and known != "finite":
            items.append((row_finite, width))
        elif rk.needs == "noinf" and known is None:
            if _deferrable(rows, i):
                met = False  # checked later: nothing is known of the output
            else:
                items.append((row_without_inf, width))
        items.append((rk, width))
        known = rk.out if met else None
        width = rk.width
    return items


def _functions(items):
    """The ``x -> x`` functions of :func:`_placed_checks`' items (see :func:`compile_row`)."""
    ops, run = [], []
    for item, width in items + [(None, 0)]:
        if not isinstance(item, RowKernel) or item.program is not None:
            if item is not None:
                run.append((item, width))
                continue
        ops.extend(_elementwise(run))
        run = []
        if item is not None:
            ops.append(item.fn)
    return ops


def _elementwise(run):
    """Functions for consecutive checks and elementwise stages: one Python pass for short rows."""
    if not any(isinstance(item, RowKernel) for item, _ in run) or run[0][1] > _SHORT_ROW:
        return [item.fn if isinstance(item, RowKernel) else item for item, _ in run]
    flat = []
    for item, _ in run:
        if isinstance(item, RowKernel):
            flat.extend(item.program)
        else:
            flat.append(("check", item))
    return [row_pass(flat)]


def _row_kernels(steps):
    """``(rows, names, n_in, floats)``: the steps' row kernels, the fitted column names (a list),
    the row's width and whether the first stage converts integer input to float64; or None when
    the steps have no row path."""
    rows = [getattr(step.kernel, "row", None) for step in steps]
    first = steps[0].est
    names = getattr(first, "feature_names_in_", None)
    if any(r is None for r in rows) or names is None or _is_column_transformer(first):
        return None
    width = len(names)
    for step, rk in zip(steps, rows):  # the widths must chain, as the stage checks demand
        if getattr(step.est, "n_features_in_", None) != width:
            return None
        width = rk.width
    names = names.tolist()
    return rows, names, len(names), rows[0].floats


def _read_row(X, n_in, floats):
    """The one-row DataFrame ``X`` as the 1-D float64 vector ``check_array`` would make of it,
    read from its blocks; ``_UNHANDLED`` for any other layout or dtype."""
    blocks = X._mgr.blocks
    if len(blocks) == 1:
        blk = blocks[0]
        v = blk.values
        if v.__class__ is not np.ndarray or v.shape != (n_in, 1):
            return _UNHANDLED
        loc = blk.mgr_locs.indexer
        if loc.__class__ is not slice or loc.start != 0 or loc.step != 1:
            return _UNHANDLED  # columns in another order inside the block
        x = v[:, 0]
        if v.dtype != _F64:
            if not floats or v.dtype.kind not in "iub":
                return _UNHANDLED
            x = x.astype(_F64)
        return x
    x = _gather(blocks, n_in, floats)
    return _UNHANDLED if x is None else x


def _row_function(plan, steps):
    """``run(X, check_input)`` for one-row DataFrames, or None when the plan has no row path.

    The row is read from the DataFrame's blocks as the 1-D float64 vector scikit-learn's
    ``check_array`` would make of it, then goes through :func:`compile_row`'s functions. Anything
    else (another dtype, more rows, a check that fails) returns ``_UNHANDLED``: the caller then takes
    the stage-by-stage path, which gives scikit-learn's result or error.
    """
    found = _row_kernels(steps)
    if found is None:
        return _column_row_function(plan, steps)
    rows, names_list, n_in, floats = found
    ops = compile_row(rows, n_in)

    arrow_names = {}

    def run(X, check_input):
        if check_input and not _names_ok(plan, X, names_list, arrow_names):
            return _UNHANDLED
        x = _read_row(X, n_in, floats)
        if x is _UNHANDLED:
            return x
        return _through(ops, x)

    return run


def _through(ops, x):
    """``x`` through the row functions ``ops``, or ``_UNHANDLED`` when one declines."""
    try:
        for op in ops:
            x = op(x)
    except Decline:
        return _UNHANDLED
    return x


def _names_ok(plan, X, names_list, arrow_names):
    """Whether the frame's columns are the fitted ones (the last Index found so is remembered:
    an Index is immutable, the same object has the same names)."""
    if X.columns is plan._columns_ok:
        return True
    if not same_names(X.columns, names_list, arrow_names):
        return False
    plan._columns_ok = X.columns
    return True


def _column_row_function(plan, steps):
    """:func:`_row_function` for a plan whose first stage is a ColumnTransformer-like kernel
    (it reads the row's columns of any dtype, see :func:`_compile_ct_row`) and whose other stages
    have row kernels: the first stage's (1, n) output goes on as a row vector. None otherwise."""
    first = steps[0]
    names = getattr(first.est, "feature_names_in_", None)
    rows = [getattr(step.kernel, "row", None) for step in steps[1:]]
    if not getattr(first.kernel, "takes_row", False) or names is None or any(r is None for r in rows):
        return None
    names_list, n_in, kernel = names.tolist(), len(names), first.kernel
    arrow_names = {}
    compiled = {}

    def run(X, check_input):
        if X.shape != (1, n_in):
            return _UNHANDLED
        if check_input and not _names_ok(plan, X, names_list, arrow_names):
            return _UNHANDLED
        try:
            x = kernel(_Row(X))[0]
        except Decline:
            return _UNHANDLED
        ops = compiled.get(x.shape[0])
        if ops is None:
            ops = compiled[x.shape[0]] = compile_row(rows, x.shape[0]) if rows else []
        return _through(ops, x)

    return run


def _row_stage_functions(plan, steps):
    """Per-stage ``X -> output`` functions running each stage's row kernel on a one-row input.

    What :meth:`FastPlan.stage_functions` gives an execution loop with plug-ins attached: every
    stage on its own (checked as scikit-learn checks that stage's input: no check is deferred to a
    later stage, so an error is raised by the stage that raises it in scikit-learn), its output
    shaped as scikit-learn returns it: ``(1, n)`` between stages. Input of any other shape, or a row
    a check declines, goes through the stage's general fast function (:class:`_Step`).
    """
    general = [lambda X, first=[steps[0]]: plan._run(first, X, False, count=False), *steps[1:]]
    found = _stage_by_stage(steps)
    if found is None:
        return general
    stage_ops, n_in, floats = found
    last = len(steps) - 1
    fns = []
    for i, (step, ops) in enumerate(zip(steps, stage_ops)):
        if len(ops) == 1:  # one function: checks and kernel fused into one pass
            ops = ops[0]
        fns.append(_row_stage(general[i], step, ops, i == 0, i == last, n_in, floats))
    return fns


def _stage_by_stage(steps):
    """``(stage_ops, n_in, floats)``: each stage's own checks and row kernel (:func:`compile_row`
    of that stage alone: nothing deferred to a later stage), or None without a row path."""
    found = _row_kernels(steps)
    if found is None:
        return None
    rows, _, n_in, floats = found
    stage_ops, width = [], n_in
    for rk in rows:
        stage_ops.append(compile_row([rk], width))
        width = rk.width
    return stage_ops, n_in, floats


def _timed_row_function(steps):
    """``run(X) -> (outputs, stamps)`` for a one-row DataFrame, or None when the plan has no row path.

    Each stage runs on its row kernel, one after the other with only a clock reading between them:
    ``stamps[i]``, ``stamps[i + 1]`` (``time.perf_counter``) frame stage ``i``. ``outputs[-1]`` is
    the last stage's output; the stages before it give their output as the row itself, a list of
    floats or a 1-D float64 array (:func:`ml_toolbox.context.row_output` makes it the ``(1, n)``
    array scikit-learn returns, the same bits, when someone asks for it). The checks are placed as
    the one-row path places them (:func:`compile_row`: once, where a refused value is sure to be
    caught); a check due before an elementwise stage's successor is made at the end of that
    stage's pass over the row. ``run`` returns None for any other input or when a check declines (nothing is half-done:
    the kernels write nothing but their outputs; the caller then runs the stages one by one, and
    the stage scikit-learn refuses the row at raises). What the execution loop runs when the
    plug-ins attached only observe (:attr:`ml_toolbox.plugins.PipelinePlugin.observer`).
    """
    found = _row_kernels(steps)
    if found is None:
        return None
    rows, _, n_in, floats = found
    groups, checks = [], []  # per stage: the checks placed before its kernel, then the kernel
    for item, width in _placed_checks(rows, n_in):
        if isinstance(item, RowKernel):
            groups.append(checks + [(item, width)])
            checks = []
        else:
            checks.append((item, width))
    for before, group in zip(groups, groups[1:]):
        rk, width = before[-1]
        if rk.program is not None and width <= _SHORT_ROW:  # that stage is one pass over floats
            while not isinstance(group[0][0], RowKernel):
                before.append(group.pop(0))
    stage_ops = [_functions(group) for group in groups]
    last_ops = stage_ops.pop()
    # an elementwise stage on a short row is one pass over the row's floats: consecutive ones
    # hand each other the list of floats, not an array made and taken apart again
    stages = [(ops[0].on_list, None) if len(ops) == 1 and hasattr(ops[0], "on_list") else
              (None, ops) for ops in stage_ops]
    clock = time.perf_counter
    array = np.array

    def run(X):
        if X.__class__ is not pd.DataFrame:
            return None
        stamps = [clock()]
        x = _read_row(X, n_in, floats)
        if x is _UNHANDLED:
            return None
        outputs = []
        try:
            for on_list, ops in stages:
                if on_list is not None:
                    x = on_list(x if x.__class__ is list else x.tolist())
                else:
                    if x.__class__ is list:
                        x = array(x, _F64)
                    for op in ops:
                        x = op(x)
                outputs.append(x)
                stamps.append(clock())
            if x.__class__ is list:
                x = array(x, _F64)
            for op in last_ops:
                x = op(x)
        except Decline:
            return None
        stamps.append(clock())
        outputs.append(x)
        return outputs, stamps

    return run


def _row_stage(general, step, ops, first, last, n_in, floats):
    """One stage of :func:`_row_stage_functions` (see there)."""
    single = callable(ops)

    def run(X):
        if first:
            if X.__class__ is not pd.DataFrame or X.shape[0] != 1:
                return general(X)
            x = _read_row(X, n_in, floats)
            if x is _UNHANDLED:
                return general(X)
        elif X.__class__ is np.ndarray and X.shape[0] == 1 and X.ndim == 2 and X.dtype == _F64:
            x = X[0]
        else:
            return general(X)
        try:
            if single:
                x = ops(x)
            else:
                for op in ops:
                    x = op(x)
        except Decline as exc:
            step.declined(str(exc))
            return step.checked(X)  # scikit-learn's own method: its result, or its error
        return x if last else x.reshape(1, -1)

    return run


def _gather(blocks, n_in, floats):
    """The row of a several-block frame as ``np.asarray(frame)`` converts it (float64), or None."""
    values = [blk.values for blk in blocks]
    if any(v.__class__ is not np.ndarray or v.shape[1] != 1 for v in values) or \
            sum(v.shape[0] for v in values) != n_in:
        return None  # an extension array, more rows, or another number of columns
    kinds = [v.dtype.kind for v in values]
    if any(k not in "iubf" or k == "f" and v.dtype.itemsize > 8 for k, v in zip(kinds, values)):
        return None
    # the frame's common dtype is float64 when one column is float64 (numpy's result_type); else
    # it is integer (a first stage converting to float64 gives these values) or float32 (declined)
    if not any(v.dtype == _F64 for v in values) and not (floats and "f" not in kinds):
        return None
    x = np.empty(n_in)
    for blk, v in zip(blocks, values):
        x[blk.mgr_locs.indexer] = v[:, 0]
    return x


# --------------------------------------------------------------------------------------------------
# the plan


def _flatten(stages):
    from ml_toolbox.stage import PipelineStage

    if isinstance(stages, Pipeline):
        stages = stages.steps
    out = []
    for i, item in enumerate(stages):
        if isinstance(item, tuple):
            name, est = item
        else:
            est = item
            name = getattr(item, "name", None) or f"stage{i}"
        if isinstance(est, PipelineStage):  # an ml_toolbox stage: its fitted estimator
            est = est.estimator_
        if est is None or (isinstance(est, str) and est == "passthrough"):
            continue
        if isinstance(est, Pipeline):
            out.extend((f"{name}/{n}", e) for n, e in _flatten(est))
        else:
            out.append((name, est))
    return out


class FastPlan:
    """Fitted stages compiled for fast inference (build it with :func:`build_plan`).

    The plan keeps references to the fitted estimators only; kernels are computed from their fitted
    attributes on first use of each method and dropped from the pickle (they are rebuilt after load).

    Parameters
    ----------
    stages : list of (name, estimator)
        The fitted stages, in order.
    name : str, default="pipeline"
        Named in the notes of errors raised on the fast path.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.linear_model import Ridge
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import RobustScaler
    >>> from ml_toolbox.fast import FastPlan
    >>> X, y = load_diabetes(return_X_y=True)
    >>> pipe = make_pipeline(RobustScaler(), Ridge()).fit(X, y)
    >>> plan = FastPlan(pipe.steps, name="diabetes")
    >>> plan.run(X[:2]).round(1)
    array([205.2,  68.9])
    >>> plan.path_counts()
    {'fast': 1, 'fallback': 0, 'reasons': {}}
    """

    def __init__(self, stages, *, name="pipeline"):
        self.stages = list(stages)
        self.name = name
        self._compiled = {}
        self._rows = {}
        self._stage_fns = {}
        self._columns_ok = None
        self._static = {}
        self._tally = _Tally()

    # -- pickling: the compiled kernels are derived state, rebuilt lazily
    def __getstate__(self):
        return {"stages": self.stages, "name": self.name}

    def __setstate__(self, state):
        self.stages = state["stages"]
        self.name = state["name"]
        self._compiled = {}
        self._rows = {}
        self._stage_fns = {}
        self._columns_ok = None
        self._static = {}
        self._tally = _Tally()

    def __repr__(self):
        return f"FastPlan(name={self.name!r}, stages={[n for n, _ in self.stages]!r})"

    def _steps(self, method):
        steps = self._compiled.get(method)
        if steps is None:
            if method not in METHODS:
                raise ValueError(f"FastPlan {self.name!r}: unknown method {method!r}; allowed: {list(METHODS)}")
            if not self.stages:
                raise ValueError(f"FastPlan {self.name!r} has no stages")
            last = len(self.stages) - 1
            pandas_between = any(
                hasattr(est, "feature_names_in_") or not _output_config_default(est)
                for i, (_, est) in enumerate(self.stages) if i > 0
            ) or not _output_config_default(self.stages[0][1])
            steps = []
            for i, (name, est) in enumerate(self.stages):
                step = _Step(name, est, method if i == last else "transform", self.name,
                             tally=self._tally)
                if pandas_between:
                    step.kernel = None
                    step.reason = "stages exchange DataFrames (set_output or feature names between stages)"
                steps.append(step)
            self._static[method] = tuple(f"stage {st.name!r}: {st.reason}" for st in steps
                                         if st.kernel is None)
            if not hasattr(self.stages[last][1], method):
                raise AttributeError(
                    f"FastPlan {self.name!r}: the last stage {self.stages[last][0]!r} "
                    f"({type(self.stages[last][1]).__name__}) has no method {method!r}"
                )
            self._compiled[method] = steps
        return steps

    def explain(self, method="predict"):
        """Say, per stage, whether ``method`` runs on a kernel or falls back, and why.

        The explanation also says how the calls so far went.

        Parameters
        ----------
        method : str, default="predict"
            The method of the last stage (``"predict"``, ``"predict_proba"``,
            ``"predict_log_proba"``, ``"decision_function"`` or ``"transform"``).

        Returns
        -------
        PlanExplanation
            A tuple of :class:`StageReport` (stage, estimator, path, reason); ``str()`` is a table
            followed by the call counts. Its ``calls`` attribute is :meth:`path_counts`.
        """
        rows = []
        for step in self._steps(method):
            rows.append(step.report())
            if _has_composite_kernel(step):
                _inner_reports(step, rows)
        explanation = PlanExplanation(rows)
        explanation.calls = self.path_counts(method)
        return explanation

    def path_counts(self, method="predict"):
        """How the calls of ``method`` went: on kernels throughout, or falling back, and why.

        Parameters
        ----------
        method : str, default="predict"
            The method of the last stage (``"predict"``, ``"predict_proba"``,
            ``"predict_log_proba"``, ``"decision_function"`` or ``"transform"``).

        Returns
        -------
        dict
            ``{"fast": n, "fallback": m, "reasons": {reason: k}}``: ``fast`` calls ran every stage on
            its kernel; the other ``m`` had at least one stage run through its own scikit-learn
            method, because it has no kernel (the reason given by :meth:`explain`) or because its
            kernel declined that input (``"stage 'scale': non-finite value"``). A call is one
            prediction, or one chunk of a ``batch_size`` run. Counts start at zero when the plan is
            built or loaded; :meth:`reset_counts` sets them back to zero.
        """
        return self._tally.counts(method)

    def reset_counts(self):
        """Set the call counts of :meth:`path_counts` back to zero."""
        self._tally.reset()

    def current_path(self, method):
        """Say how the call of ``method`` running on this thread has gone so far.

        For a call the execution loop runs with plug-ins attached; what the monitor records per
        execution (``PipelineMetrics.fast_path``).

        Parameters
        ----------
        method : {"predict", "predict_proba", "predict_log_proba", "decision_function", "transform"}
            The method of the last stage.

        Returns
        -------
        str or None
            ``"kernel"`` (every stage on its kernel) or ``"fallback: stage 'x': reason; ..."``;
            None when no such call is running.
        """
        static = self._static.get(method)
        return None if static is None else self._tally.current(static)

    def _begin(self):
        self._tally.begin()

    def _count(self, method):
        """File the call that just ended (its declines were noted by this thread)."""
        static = self._static.get(method)
        if static is None:
            self._steps(method)
            static = self._static[method]
        self._tally.count(method, static)

    def run(self, X, method="predict", *, batch_size=None, n_jobs=None, check_input=True,
            verbose=0):
        """Apply the stages to ``X`` and return the last stage's ``method`` output.

        Parameters
        ----------
        X : ndarray or DataFrame of shape (n_samples, n_features)
            Input of the first stage.
        method : str, default="predict"
            The method of the last stage (``"predict"``, ``"predict_proba"``,
            ``"predict_log_proba"``, ``"decision_function"`` or ``"transform"``); the others
            ``transform``.
        batch_size : int, optional
            Run ``X`` in chunks of this many rows (memory bounded by one chunk). Each chunk gives
            exactly what scikit-learn gives for that chunk.
        n_jobs : int, optional
            Run the chunks in parallel with :class:`joblib.Parallel` (threads by default; any joblib
            backend set with ``joblib.parallel_config`` applies).
        check_input : bool, default=True
            Compare a DataFrame's column names with those seen in fit (a mismatch goes to
            scikit-learn, which raises or warns). The InferencePipeline, which has checked the input
            against its schema already, passes False.
        verbose : int, default=0
            With ``batch_size``, draw a progress bar over the chunks when a person is watching
            (:func:`ml_toolbox.progress.track`; silent in CI and when 0).

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
            What the pipeline's ``method`` returns, the same numbers as scikit-learn's.

        Raises
        ------
        ValueError
            ``batch_size`` is not a positive int or None.
        """
        if batch_size is not None and (
            not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1
        ):
            raise ValueError(
                f"FastPlan {self.name!r}: batch_size must be a positive int or None, got {batch_size!r}"
            )
        if batch_size is not None:
            n = X.shape[0]
            if n > batch_size:  # (more than one row: never the row function's)
                steps = self._steps(method)
                if isinstance(X, pd.DataFrame):
                    chunks = [X.iloc[i : i + batch_size] for i in range(0, n, batch_size)]
                else:
                    chunks = [X[i : i + batch_size] for i in range(0, n, batch_size)]
                if n_jobs is None or n_jobs == 1:
                    if verbose:
                        from .progress import track

                        chunks = track(chunks, f"{self.name} {method}", total=len(chunks),
                                       verbose=verbose)
                    outs = [self._run(steps, c, check_input) for c in chunks]
                else:
                    outs = Parallel(n_jobs=n_jobs, prefer="threads")(
                        delayed(self._run)(steps, c, check_input) for c in chunks
                    )
                return np.concatenate(outs, axis=0)
        return self._run_whole(X, method, check_input)

    def _run_whole(self, X, method, check_input):
        """:meth:`run` on ``X`` in one piece (no ``batch_size``), with positional arguments.

        A one-row DataFrame goes to the plan's flat row function, when the plan has one; anything
        else, or a row it does not take, runs stage by stage. An
        :class:`~ml_toolbox.InferencePipeline` serving a call enters the plan here.
        """
        if isinstance(X, pd.DataFrame):
            row = self._rows.get(method)
            if row is None:
                row = self._row_function(method)
            if row:
                out = row(X, check_input)
                if out is not _UNHANDLED:
                    hit = self._tally.hits.get(method)
                    (hit or self._tally.hit(method))()
                    if method == "transform":  # the row's features, shaped as sklearn's (1, n)
                        return out.reshape(1, -1)
                    return out
        return self._run(self._steps(method), X, check_input)

    def _row_function(self, method):
        """The one-row function of ``method`` (compiled once), or False when there is none."""
        row = self._rows[method] = _row_function(self, self._steps(method)) or False
        return row

    def stage_functions(self, method, n_stages):
        """Give one callable ``X -> output`` per stage for ``method``: the plan, stage by stage.

        An execution loop with plug-ins attached runs these instead of the stages' own methods,
        so hooks see every stage while the stages still run on their kernels (same numbers as
        :meth:`run` without ``batch_size``). A one-row input runs on each stage's row kernel,
        checked as scikit-learn checks that stage's input, each output shaped as scikit-learn's
        (see :func:`_row_stage_functions`).

        Parameters
        ----------
        method : {"predict", "predict_proba", "predict_log_proba", "decision_function", "transform"}
            The method of the last stage.
        n_stages : int
            The number of stages of the pipeline that runs them.

        Returns
        -------
        list of callable or None
            One function per stage; None when the plan's stages do not map one to one onto the
            ``n_stages`` pipeline stages (a nested Pipeline was flattened).
        """
        functions = self._stage_fns.get((method, n_stages))
        if functions is None:  # compiled once per method, like the plan's other functions
            steps = self._steps(method)
            functions = self._stage_fns[method, n_stages] = (
                _row_stage_functions(self, steps) if len(steps) == n_stages else False)
        return functions or None

    def timed_row(self, method, n_stages):
        """Give the stages' one-row function for observing plug-ins (:func:`_timed_row_function`).

        Parameters
        ----------
        method : {"predict", "predict_proba", "predict_log_proba", "decision_function", "transform"}
            The method of the last stage.
        n_stages : int
            The number of stages of the pipeline that runs it.

        Returns
        -------
        callable or None
            The function; None when there is no row path, or the stages do not map one to one
            onto the ``n_stages``.
        """
        key = ("timed", method, n_stages)
        function = self._stage_fns.get(key)
        if function is None:
            steps = self._steps(method)
            function = self._stage_fns[key] = (
                _timed_row_function(steps) if len(steps) == n_stages else False) or False
        return function or None

    def _run(self, steps, X, check_input, count=True):
        """Run ``steps`` on ``X``; the call is counted (:meth:`path_counts`) unless ``count`` is
        False (a stage-by-stage run counted by its caller)."""
        if not count:
            return self._run_steps(steps, X, check_input)
        try:
            return self._run_steps(steps, X, check_input)
        finally:
            self._count(steps[-1].method)

    def _run_steps(self, steps, X, check_input):
        first = steps[0]
        if isinstance(X, pd.DataFrame):
            names = getattr(first.est, "feature_names_in_", None)
            fast = first.kernel is not None and X.shape[0] == 1 and names is not None
            if fast and check_input and X.columns is not self._columns_ok:
                fast = len(names) == X.shape[1] and X.columns.tolist() == names.tolist()
                if fast:
                    self._columns_ok = X.columns  # an Index is immutable: same object, same names
            if fast:
                X = self._first_row(first, X)
            else:
                X = first.checked(X)
        elif X.__class__ is np.ndarray and first.kernel is not None and names_free(first.est):
            X = first(X)
        else:
            X = first.checked(X)
        for step in steps[1:]:
            X = step(X)
        return X

    @staticmethod
    def _first_row(first, X):
        """The first stage's kernel on a one-row DataFrame, or scikit-learn's method if it declines."""
        kernel = first.kernel
        try:
            if getattr(kernel, "takes_row", False):
                return kernel(_Row(X))
            block = _single_block(X)  # the homogeneous numeric one-row frame
            if block is None:
                row = _Row(X)
                block = row.select(range(len(row.values)))
            return kernel(block)
        except Decline as exc:
            first.declined(str(exc))
        except Exception as exc:  # noqa: BLE001 - the fast path's own error: never the user's
            first.declined(f"kernel error ({type(exc).__name__})")
        return first.checked(X)


def names_free(est):
    """Whether ``est`` was fitted without column names (so an array goes to its kernel as is)."""
    return not hasattr(est, "feature_names_in_")


def build_plan(stages, *, name="pipeline", methods=()):
    """Compile fitted stages into a :class:`FastPlan`.

    Parameters
    ----------
    stages : Pipeline, list of (name, estimator), or list of fitted estimators / ml_toolbox stages
        Nested Pipelines are flattened; ``None`` / ``"passthrough"`` steps are skipped.
    name : str, default="pipeline"
        The pipeline's name, used in error notes.
    methods : iterable of str, optional
        Methods to compile now (the others compile on first use).

    Returns
    -------
    FastPlan
        The plan; kernels of the methods not in ``methods`` compile on first use.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.linear_model import Ridge
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import RobustScaler
    >>> X, y = load_diabetes(return_X_y=True)
    >>> pipe = make_pipeline(RobustScaler(), Ridge()).fit(X, y)
    >>> plan = build_plan(pipe, methods=["predict"])
    >>> bool((plan.run(X) == pipe.predict(X)).all())
    True
    """
    plan = FastPlan(_flatten(stages), name=name)
    for method in methods:
        plan._steps(method)
    return plan
