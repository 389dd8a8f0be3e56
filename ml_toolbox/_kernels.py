"""Lean array kernels for fitted scikit-learn estimators (private; used by :mod:`ml_toolbox.fast`).

Every kernel repeats, from the fitted attributes, the *same* floating-point operations in the *same*
order and on arrays of the same dtype and memory layout as scikit-learn 1.9 does after its input
validation, so its output is identical bit for bit. What it does not repeat is the validation.

A kernel is a callable ``kernel(X) -> array`` on a 2-D numpy array. When it meets an input it was not
written for (a dtype it does not handle, a non-finite value the estimator rejects, an unknown
category, a different number of columns) it raises :class:`Decline`; the plan then runs the
estimator's own method on that input, which gives scikit-learn's result or scikit-learn's error.

:func:`make_kernel` builds the kernel of one fitted estimator for one method, or raises
:class:`NoKernel` with the reason the estimator is not covered (the plan then falls back to the
estimator itself).

Most kernels also carry a single-row form, ``kernel.row`` (a :class:`RowKernel`), used by the plan's
one-row path: it takes the row as a 1-D float64 vector whose values sklearn's ``check_array`` has
already accepted *as far as* ``RowKernel.needs`` says, and skips every other check. The plan places
the finiteness checks between the row kernels (see :func:`ml_toolbox.fast.compile_row`).
"""

import math
import numbers
from typing import Callable, NamedTuple, Optional

import numpy as np
import sklearn
from scipy import special

__all__ = ["Decline", "NoKernel", "RowKernel", "make_kernel", "register_kernel", "unregister_kernel",
           "finite_or_decline", "row_finite", "row_without_inf", "row_pass", "program_function"]

_FLOAT = (np.dtype(np.float64), np.dtype(np.float32))


class Decline(Exception):
    """Raised by a kernel at run time: this input must go through scikit-learn itself."""


class NoKernel(Exception):
    """Raised at build time: no kernel covers this estimator / method; the message says why."""


# --------------------------------------------------------------------------------------------------
# input conversion, as scikit-learn's check_array does it


def as_float(X):
    """``check_array(X, dtype=FLOAT_DTYPES)``: float64/float32 kept, anything numeric to float64."""
    dt = X.dtype
    if dt in _FLOAT:
        return X
    if dt.kind in "iub" or dt.kind == "O":
        try:
            return np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise Decline("not convertible to float") from exc
    raise Decline(f"dtype {dt}")


def as_numeric(X):
    """``check_array(X, dtype="numeric")``: object to float64, numeric kept."""
    dt = X.dtype
    if dt.kind == "O":
        try:
            return np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise Decline("not convertible to float") from exc
    if dt.kind in "iuf" and dt.itemsize >= 4 or dt.kind == "b":
        return X
    raise Decline(f"dtype {dt}")


def finite_or_decline(X, allow_nan):
    """The cheap form of scikit-learn's ``_assert_all_finite``: one sum, details only if it is off."""
    if X.dtype.kind != "f" or X.size == 0:
        return
    s = np.add.reduce(X, axis=None)
    if np.isfinite(s):
        return
    if allow_nan:
        if np.isinf(X).any():
            raise Decline("infinite value")
    elif not np.isfinite(X).all():
        raise Decline("non-finite value")


class RowKernel(NamedTuple):
    """The single-row form of a kernel (private protocol between the kernels and the plan).

    fn : callable
        ``fn(x)`` on a 1-D float64 row vector: a new 1-D float64 vector (a transformer) or the
        method's output (the last stage). It never writes into ``x``; raises :class:`Decline`.
    needs : {"noinf", "finite"}
        What sklearn's input check of this stage demands of ``x``: ``"noinf"`` (NaN allowed, as
        ``ensure_all_finite="allow-nan"``) or ``"finite"``.
    sticky : bool
        Every non-finite value of ``x`` leaves a non-finite value in the output (elementwise ``+ - * /``
        do: NaN and +-inf stay NaN or +-inf whatever the other operand; ``clip`` and matrix
        products are not counted as such). Checks owed by earlier stages may then be made later.
    keeps_refused : bool
        The values this stage's check refuses stay non-finite in its output (true of sticky
        stages, and of the imputer: it refuses +-inf and leaves them), so its own check may be
        made later, on a later stage's input (default: ``sticky``).
    out : {"finite", None}
        What is known of the output when ``x`` met ``needs``: ``"finite"`` (the imputer fills NaN with
        finite statistics) or nothing (arithmetic can overflow).
    width : int
        The number of values in the output (for a transformer).
    floats : bool
        The stage's check converts integer and boolean input to float64 (``dtype=FLOAT_DTYPES``).
    program : tuple of (str, ndarray), optional
        An elementwise stage as the operations scikit-learn applies, in order: ``("sub", a)``,
        ``("div", a)``, ``("mul", a)``, ``("add", a)`` (``x op a`` per feature) and ``("fill", a)``
        (NaN replaced by ``a``). ``fn`` is then made from it (:func:`program_function`), and the plan
        may run consecutive programs in one pass over the row's Python floats (:func:`row_pass`).
    """

    fn: Optional[Callable]
    needs: str
    sticky: bool = False
    out: Optional[str] = None
    width: int = -1
    floats: bool = False
    keeps_refused: Optional[bool] = None
    program: Optional[tuple] = None

    @property
    def defers(self):
        return self.sticky if self.keeps_refused is None else self.keeps_refused


def _row_sum(x):
    # A float sum is non-finite when any term is (NaN and +-inf absorb every finite term), or when
    # it overflows: a finite sum proves every value finite. For short rows Python's sum of the list
    # is faster than a numpy reduction.
    return sum(x.tolist()) if x.shape[0] <= 64 else float(np.add.reduce(x))


def row_finite(x):
    """Check of a 1-D float64 row: every value finite (``ensure_all_finite=True``)."""
    if not math.isfinite(_row_sum(x)) and not np.isfinite(x).all():
        raise Decline("non-finite value")
    return x


def row_without_inf(x):
    """Check of a 1-D float64 row: no infinite value (``ensure_all_finite="allow-nan"``)."""
    if not math.isfinite(_row_sum(x)) and np.isinf(x).any():
        raise Decline("infinite value")
    return x


_UFUNCS = {"sub": np.subtract, "div": np.true_divide, "mul": np.multiply, "add": np.add}


def program_function(program):
    """The numpy form of an elementwise program on a 1-D row (a new array; ``x`` is not written)."""
    program = tuple(program)

    def fn(x):
        z, own = x, False
        for op, a in program:
            if op == "fill":
                mask = np.isnan(z)
                if mask.any():
                    z = np.where(mask, a, z)
                    own = True
            elif own:
                _UFUNCS[op](z, a, out=z)
            else:
                z, own = _UFUNCS[op](z, a), True
        return z if own else z.copy()

    return fn


# The same programs on the row's Python floats: + - * / on floats are the IEEE-754 double
# operations numpy performs elementwise (correctly rounded, no fused multiply-add), so every value
# is the same bit for bit; NaN tests as ``t != t``.
_EXPRESSIONS = {"sub": "({} - {})", "div": "({} / {})", "mul": "({} * {})", "add": "({} + {})",
                "fill": "({1} if (t := {0}) != t else t)"}


def _list_finite(vs):  # the row pass calls this when the sum of the values is not finite
    if not all(math.isfinite(v) for v in vs):
        raise Decline("non-finite value")


def _list_without_inf(vs):
    if any(math.isinf(v) for v in vs):
        raise Decline("infinite value")


def _list_comprehension(group):
    """``[expression for v, a0, ... in zip(vs, a0, ...)]`` of a row pass's operations."""
    expr, names = "v", ", ".join(name for _, name in group)
    for op, name in group:
        expr = _EXPRESSIONS[op].format(expr, name)
    return f"[{expr} for v, {names} in zip(vs, {names})]"


def row_pass(items):
    """One pass over a short row's Python floats: programs' operations and checks, in order.

    ``items`` are ``(op, a)`` of programs and ``("check", row_finite | row_without_inf)``. The
    operations between two checks become one list comprehension, so each value goes through all of
    them at once (``[((a0 if (t := v) != t else t) - a1) / a2 for v, a0, a1, a2 in zip(...)]`` for
    an imputer then a standard scaler; a row whose sum is not NaN has no NaN to fill, and takes
    ``[(v - a1) / a2 ...]``). The source is made from the fixed templates above; the
    fitted values are arguments, never text. Returns ``fn(x) -> ndarray``; ``fn.on_list`` is the same
    pass from a list of floats to a list of floats (stages run one after the other hand each other
    lists: see :func:`ml_toolbox.fast._timed_row_function`).
    """
    list_checks = {row_finite: "_list_finite", row_without_inf: "_list_without_inf"}
    lines, args, group = [], [], []  # group: (op, argument name) since the last check

    def flush():
        if not group:
            return
        if group[0][0] == "fill":  # a row without NaN (most rows) skips it: it changes nothing
            lines.append("        if (s := sum(vs)) != s:  # a NaN (or +inf and -inf)")
            lines.append(f"            vs = {_list_comprehension(group)}")
            if len(group) > 1:
                lines.append("        else:")
                lines.append(f"            vs = {_list_comprehension(group[1:])}")
        else:
            lines.append(f"        vs = {_list_comprehension(group)}")
        group.clear()

    for op, a in items:
        if op == "check":
            flush()
            lines.append("        if not isfinite(sum(vs)):  # else every value is finite")
            lines.append(f"            {list_checks[a]}(vs)")
            continue
        name = f"a{len(args)}"
        args.append(a.tolist())
        group.append((op, name))
    flush()
    params = ", ".join(f"a{i}" for i in range(len(args)))
    source = "\n".join([f"def make({params}):", "    def fn(x):", "        vs = x.tolist()", *lines,
                        "        return array(vs, float64)",
                        "    def on_list(vs):", *lines, "        return vs",
                        "    fn.on_list = on_list", "    return fn"])
    namespace = {"array": np.array, "float64": np.dtype(np.float64), "isfinite": math.isfinite,
                 "_list_finite": _list_finite, "_list_without_inf": _list_without_inf}
    exec(compile(source, "<ml_toolbox row pass>", "exec"), namespace)  # noqa: S102 - see above
    fn = namespace["make"](*args)
    fn.source = source
    return fn


def _f64(a):
    return np.asarray(a).astype(np.float64)


def _check_width(X, n):
    if X.ndim != 2 or X.shape[1] != n:
        raise Decline("number of features")


# --------------------------------------------------------------------------------------------------
# preprocessing


def _standard_scaler(est):
    mean = est.mean_ if est.with_mean else None
    scale = est.scale_ if est.with_std else None
    n = est.n_features_in_
    cache = {}

    def cast(a, dt):
        key = (id(a), dt)
        out = cache.get(key)
        if out is None:
            out = cache[key] = a.astype(dt)  # xp.astype(self.mean_, X.dtype)
        return out

    def kernel(X):
        X = as_float(X)
        _check_width(X, n)
        finite_or_decline(X, allow_nan=True)
        dt = X.dtype
        if mean is not None:
            X = X - cast(mean, dt)
            if scale is not None:
                X /= cast(scale, dt)
        elif scale is not None:
            X = X / cast(scale, dt)
        else:
            X = X.copy(order="K")
        return X

    program = ([("sub", _f64(mean))] if mean is not None else []) + \
        ([("div", _f64(scale))] if scale is not None else [])
    kernel.row = _program_row(program, n)
    return kernel


def _program_row(program, n):
    """The RowKernel of an elementwise scaler (sticky: ``+ - * /`` keep NaN and inf non-finite)."""
    return RowKernel(program_function(program), "noinf", sticky=True, width=n, floats=True,
                     program=tuple(program))


def _minmax_scaler(est):
    scale, min_, n = est.scale_, est.min_, est.n_features_in_
    lo, hi = est.feature_range

    def kernel(X):
        X = as_float(X)
        _check_width(X, n)
        finite_or_decline(X, allow_nan=True)
        X = X.copy(order="K")
        X *= scale
        X += min_
        if est.clip:
            dt = X.dtype
            np.clip(X, np.asarray(lo, dtype=dt), np.asarray(hi, dtype=dt), out=X)
        return X

    if est.clip:
        lo64, hi64 = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)

        def row(x):
            z = x * scale
            z += min_
            np.clip(z, lo64, hi64, out=z)
            return z

        kernel.row = RowKernel(row, "noinf", width=n, floats=True)  # clip: not sticky
    else:
        kernel.row = _program_row([("mul", scale), ("add", min_)], n)
    return kernel


def _maxabs_scaler(est):
    scale, n = est.scale_, est.n_features_in_

    def kernel(X):
        X = as_float(X)
        _check_width(X, n)
        finite_or_decline(X, allow_nan=True)
        X = X.copy(order="K")
        X /= scale
        if est.clip:
            dt = X.dtype
            np.clip(X, np.asarray(-1.0, dtype=dt), np.asarray(1.0, dtype=dt), out=X)
        return X

    if est.clip:
        lo64, hi64 = np.asarray(-1.0), np.asarray(1.0)

        def row(x):
            z = x / scale
            np.clip(z, lo64, hi64, out=z)
            return z

        kernel.row = RowKernel(row, "noinf", width=n, floats=True)  # clip: not sticky
    else:
        kernel.row = _program_row([("div", scale)], n)
    return kernel


def _robust_scaler(est):
    center = est.center_ if est.with_centering else None
    scale = est.scale_ if est.with_scaling else None
    n = est.n_features_in_

    def kernel(X):
        X = as_float(X)
        _check_width(X, n)
        finite_or_decline(X, allow_nan=True)
        X = X.copy(order="K")
        if center is not None:
            X -= center
        if scale is not None:
            X /= scale
        return X

    program = ([("sub", _f64(center))] if center is not None else []) + \
        ([("div", _f64(scale))] if scale is not None else [])
    kernel.row = _program_row(program, n)
    return kernel


def _is_nan_marker(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value != value


def _simple_imputer(est):
    if not _is_nan_marker(est.missing_values):
        raise NoKernel(f"missing_values={est.missing_values!r} (kernel handles NaN only)")
    if est.add_indicator:
        raise NoKernel("add_indicator=True")
    stats = est.statistics_
    fit_dtype = est._fit_dtype
    fill_dtype = est._fill_dtype
    if not est.keep_empty_features:
        invalid = stats != stats if stats.dtype.kind in "fO" else np.zeros(stats.shape, bool)
        if invalid.any():
            raise NoKernel("features without observed values are dropped with a warning")
    values = stats.astype(fill_dtype, copy=False)
    n = est.n_features_in_
    float_strategy = est.strategy in ("mean", "median")
    object_fit = fit_dtype.kind == "O"
    cache = {}

    def kernel(X):
        if object_fit:
            X = np.array(X, dtype=object, copy=True, order="K")
        else:
            if float_strategy:
                X = as_float(X)
            elif X.dtype.kind not in "iuf":
                raise Decline(f"dtype {X.dtype}")
            X = X.copy(order="K")
        _check_width(X, n)
        dt = X.dtype
        if dt.kind == "O":
            mask = X != X
            if mask.dtype != bool:
                raise Decline("elementwise comparison")
        elif dt.kind == "f":
            s = np.add.reduce(X, axis=None)
            if np.isfinite(s):
                return X
            mask = np.isnan(X)
            if np.isinf(X).any():
                raise Decline("infinite value")
        else:
            return X
        vals = cache.get(dt)
        if vals is None:
            vals = cache[dt] = np.asarray(values).astype(dt)
        np.copyto(X, vals, where=mask)
        return X

    if object_fit:
        kernel.object_fill = values.tolist()  # for a row of Python objects (see fast.py)
        return kernel
    fill = _f64(values)

    # X[mask] = statistics: only NaN replaced (+-inf stay, for the check that refuses them)
    program = (("fill", fill),)
    kernel.row = RowKernel(program_function(program), "noinf",
                           out="finite" if np.isfinite(fill).all() else None, width=n,
                           floats=float_strategy, keeps_refused=True, program=program)
    return kernel


def _check_categories_input(X, n):
    """What an encoder's kernel takes: ``n`` columns of numbers, strings or objects, no infinity."""
    _check_width(X, n)
    if X.dtype.kind not in "iufOUb":
        raise Decline(f"dtype {X.dtype}")
    if X.dtype.kind == "f" and np.isinf(X).any():
        raise Decline("infinite value")


def _category_positions(categories):
    """``(positions, n)``: ``positions(row)`` gives, per feature of a row (a list of values), the
    position of its category among all features' categories laid end to end (None for an unknown
    value), as scikit-learn's encoders find it: NaN (float NaN of any kind) matches a NaN category,
    None matches None. ``n`` is the number of categories in all."""
    lookups, nan_index = [], []
    offset = 0
    for cats in categories:
        table, nan_at = {}, None
        for j, c in enumerate(cats.tolist()):
            if _is_nan_marker(c):
                nan_at = offset + j
            else:
                table[c] = offset + j
        lookups.append(table)
        nan_index.append(nan_at)
        offset += len(cats)
    features = list(zip(lookups, nan_index))

    def positions(row):
        out = []
        for (table, nan_at), v in zip(features, row):
            try:
                j = table.get(v)
            except TypeError as exc:  # unhashable
                raise Decline("unhashable value") from exc
            if j is None and nan_at is not None and v is not None and not isinstance(v, str) \
                    and v != v:
                j = nan_at
            out.append(j)
        return out

    return positions, offset


def _target_encoder(est):
    """``TargetEncoder.transform`` (binary or continuous targets): each value's fitted encoding,
    ``target_mean_`` for an unknown one. The encodings are copied, not computed: exact."""
    if est.target_type_ not in ("binary", "continuous"):
        raise NoKernel(f"target_type_={est.target_type_!r}")
    positions, _ = _category_positions(est.categories_)
    values = [float(v) for enc in est.encodings_ for v in enc.tolist()]
    mean = float(est.target_mean_)
    n = est.n_features_in_

    def kernel(X):
        _check_categories_input(X, n)
        out = [[mean if j is None else values[j] for j in positions(row)] for row in X.tolist()]
        return np.array(out, dtype=np.float64).reshape(X.shape[0], n)

    return kernel


def _one_hot_encoder(est, densified=False):
    """One-hot kernel; ``densified``: the sparse output is made dense by the caller (a
    ColumnTransformer with dense output calls ``toarray()`` on it: the same values and dtype)."""
    if est.sparse_output and not densified:
        raise NoKernel("sparse_output=True (the kernel writes dense arrays)")
    if est.drop is not None:
        raise NoKernel(f"drop={est.drop!r}")
    if getattr(est, "_infrequent_enabled", False):
        raise NoKernel("infrequent categories are grouped")
    if est.handle_unknown not in ("error", "ignore", "infrequent_if_exist"):
        raise NoKernel(f"handle_unknown={est.handle_unknown!r}")
    # without infrequent categories, "infrequent_if_exist" treats unknown categories as "ignore"
    ignore = est.handle_unknown != "error"
    positions, n_out = _category_positions(est.categories_)
    n = est.n_features_in_
    out_dtype = est.dtype

    def ones(row):
        """The output positions set to 1 for one row (a list of its values), in order."""
        hot = []
        for j in positions(row):
            if j is None:
                if not ignore:
                    raise Decline("unknown category")
                continue
            hot.append(j)
        return hot

    def kernel(X):
        _check_categories_input(X, n)
        out = np.zeros((X.shape[0], n_out), dtype=out_dtype)
        for i, row in enumerate(X.tolist()):
            out[i, ones(row)] = 1
        return out

    kernel.ones, kernel.n_out, kernel.out_dtype = ones, n_out, np.dtype(out_dtype)
    return kernel


def _pca(est):
    comps_T = est.components_.T
    mean_proj = np.reshape(est.mean_, (1, -1)) @ est.components_.T
    scale = None
    if est.whiten:
        scale = np.sqrt(est.explained_variance_)
        min_scale = np.finfo(scale.dtype).eps
        scale[scale < min_scale] = min_scale
    n = est.n_features_in_

    def kernel(X):
        X = as_float(X)
        _check_width(X, n)
        finite_or_decline(X, allow_nan=False)
        Xt = X @ comps_T
        Xt -= mean_proj
        if scale is not None:
            Xt /= scale
        return Xt

    def row(x):
        Xt = x.reshape(1, -1) @ comps_T  # (1, n): the matrix product sklearn computes
        Xt -= mean_proj
        if scale is not None:
            Xt /= scale
        return Xt.reshape(-1)

    kernel.row = RowKernel(row, "finite", width=comps_T.shape[1], floats=True)
    return kernel


# --------------------------------------------------------------------------------------------------
# linear models


def _linear_scores(est, *, classifier):
    """``decision(X)`` with sklearn's checks, and ``scores(x)``: the (1, k) scores of a checked row."""
    coef = est.coef_
    intercept = est.intercept_
    n = est.n_features_in_
    coef_T = coef.T if coef.ndim == 2 else coef

    def decision(X):
        X = as_numeric(X)
        _check_width(X, n)
        finite_or_decline(X, allow_nan=False)
        s = X @ coef_T + intercept
        if classifier and s.ndim > 1 and s.shape[1] == 1:
            return np.reshape(s, (-1,))
        return s

    def product(x):
        # (1, n) @ coef.T: for one row numpy's product depends on the stride of the last axis only,
        # which the reshape of the row vector keeps (sklearn multiplies the (1, n) array it gets)
        return x.reshape(1, -1) @ coef_T

    def scores(x):
        s = product(x)
        s += intercept  # X @ coef.T + intercept_: the same additions, in place
        return s

    scores.product = product
    return decision, scores


def _classifier(est, method, *, proba_kind):
    decision, scores = _linear_scores(est, classifier=True)
    kernel = _classifier_method(est, method, proba_kind, decision)
    kernel.row = RowKernel(_classifier_row(est, method, kernel, scores), "finite")
    return kernel


def _classifier_row(est, method, kernel, scores):
    """The row form of a linear classifier's ``method``: ``kernel``'s operations on one row.

    For two classes the single score is finished in Python floats: ``+`` and ``-`` on float64 are
    IEEE operations, the same in Python as in numpy; ``expit`` and ``log`` stay numpy/scipy calls
    on arrays shaped as scikit-learn's.
    """
    classes = est.classes_
    labels = [classes[i:i + 1] for i in range(len(classes))]  # take(classes, [i]), copied per call
    if est.coef_.shape[0] != 1:
        if method == "predict":
            return lambda x: labels[int(np.argmax(scores(x)))].copy()
        if method == "decision_function":
            return scores
        from_scores = kernel.from_scores
        return lambda x: from_scores(scores(x))
    product = scores.product
    b = float(np.ravel(est.intercept_)[0])
    coef_T = est.coef_.T
    if coef_T.dtype == np.float64:
        # For one row, X @ coef.T is numpy's dot of the row and the column of coef.T: the same
        # BLAS call on the same strides as x.dot(column), without the (1, n) reshape and the
        # matmul ufunc's dispatch (tests/test_fast_row.py holds them equal bit for bit).
        column = coef_T[:, 0]

        def score(x):  # X @ coef.T + intercept_, raveled: one value
            return float(x.dot(column)) + b
    else:
        def score(x):
            return product(x).item() + b

    if method == "predict":  # (s > 0).astype(intp) indexes classes_
        return lambda x: labels[score(x) > 0].copy()
    if method == "decision_function":
        return lambda x: np.array([score(x)])
    if kernel.from_scores is not _proba_lr:
        from_scores = kernel.from_scores
        return lambda x: from_scores(np.array([score(x)]))

    def proba(x):  # _predict_proba_lr: expit in place, then stack([1 - prob, prob], axis=1)
        prob = special.expit(np.array([score(x)]))
        p = prob.item()
        return np.array([[1 - p, p]])

    return proba


def _classifier_method(est, method, proba_kind, decision):
    classes = est.classes_
    if method == "decision_function":
        return decision
    if method == "predict":

        def predict(X):
            s = decision(X)
            if len(s.shape) == 1:
                idx = (s > 0).astype(np.intp)
            else:
                idx = np.argmax(s, axis=1)
            return np.take(classes, idx, axis=0)

        return predict
    if method in ("predict_proba", "predict_log_proba"):
        if proba_kind == "softmax_or_lr":
            from_scores = _proba_lr if classes.size <= 2 else _softmax
        elif proba_kind == "lr":
            from_scores = _proba_lr
        else:
            raise NoKernel(f"{method} for this loss")
        if method == "predict_log_proba":
            from_scores = _log_of(from_scores)

        def proba(X):
            return from_scores(decision(X))

        proba.from_scores = from_scores
        return proba
    raise NoKernel(f"method {method!r}")


def _log_of(from_scores):
    return lambda s: np.log(from_scores(s))


def _proba_lr(prob):
    """``_predict_proba_lr`` from the decision function's output (overwritten)."""
    prob = special.expit(prob, out=prob)
    if prob.ndim == 1:
        return np.stack([1 - prob, prob], axis=1)
    prob_sum = prob.sum(axis=1)
    all_zero = prob_sum == 0
    if np.any(all_zero):
        prob[all_zero, :] = 1
        prob_sum[all_zero] = prob.shape[1]
    prob /= np.reshape(prob_sum, (prob.shape[0], -1))
    return prob


def _softmax(Z):
    """``sklearn.utils.extmath.softmax(Z, copy=False)``."""
    max_prob = np.reshape(np.max(Z, axis=1), (-1, 1))
    Z -= max_prob
    np.exp(Z, out=Z)
    sum_prob = np.reshape(np.sum(Z, axis=1), (-1, 1))
    Z /= sum_prob
    return Z


def _regressor(est, method, *, ravel):
    if method != "predict":
        raise NoKernel(f"method {method!r}")
    coef, intercept, n = est.coef_, est.intercept_, est.n_features_in_
    coef_op = coef.T if (coef.ndim == 2 and ravel) else coef
    two_d = coef.ndim == 2

    def scores(X):
        if ravel:  # SGDRegressor: safe_sparse_dot(X, coef_.T) + intercept_, raveled
            return (X @ coef_op + intercept).ravel()
        if two_d:  # LinearModel._decision_function
            return X @ coef.T + intercept
        return X @ coef + intercept

    def predict(X):
        X = as_numeric(X)
        _check_width(X, n)
        finite_or_decline(X, allow_nan=False)
        return scores(X)

    predict.row = RowKernel(lambda x: scores(x.reshape(1, -1)), "finite")  # see _linear_scores
    return predict


# --------------------------------------------------------------------------------------------------
# dispatch


def _check_dense_fit(est):
    coef = getattr(est, "coef_", None)
    if coef is not None and not isinstance(coef, np.ndarray):
        raise NoKernel("sparse coef_ (sparsified model)")


_KERNEL_VERSION_OK = tuple(int(p) for p in sklearn.__version__.split(".")[:2]
                           if p.isdigit()) >= (1, 8)


_FACTORIES: dict[type, Callable] = {}


# PR02 off for these two: numpydoc's validator takes a first parameter named ``cls`` for a
# classmethod's and drops it, then calls the documented ``cls`` unknown.
def register_kernel(cls, factory):  # numpydoc ignore=PR02
    """Register ``factory(est, method) -> kernel`` for fitted estimators of exactly type ``cls``.

    The factory raises :class:`NoKernel` (with the reason) for a configuration or method it does
    not reproduce exactly. A registered factory is tried before the built-in ones.

    Parameters
    ----------
    cls : type
        The estimator class; subclasses are not covered.
    factory : callable
        ``factory(est, method)`` returns a function ``X -> output`` computing ``method`` of the
        fitted ``est`` on a 2-D float array, or raises :class:`NoKernel`.

    Returns
    -------
    callable or None
        The factory it replaces (or None), so a test can put it back with
        :func:`unregister_kernel`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from ml_toolbox.fast import build_plan, register_kernel, unregister_kernel
    >>> def doubling(est, method):
    ...     return lambda X: 2 * X
    >>> previous = register_kernel(FunctionTransformer, doubling)
    >>> plan = build_plan([("double", FunctionTransformer().fit(np.ones((1, 1))))])
    >>> plan.run(np.array([[1.5]]), "transform"), plan.explain("transform")[0].path
    (array([[3.]]), 'kernel')
    >>> unregister_kernel(FunctionTransformer, previous)
    """
    previous = _FACTORIES.get(cls)
    _FACTORIES[cls] = factory
    return previous


def unregister_kernel(cls, previous=None):  # numpydoc ignore=PR02
    """Remove the factory registered for ``cls`` (or put ``previous`` back).

    Parameters
    ----------
    cls : type
        The estimator class given to :func:`register_kernel`.
    previous : callable, default=None
        What :func:`register_kernel` returned; None removes the registration.

    Examples
    --------
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from ml_toolbox.fast import register_kernel, unregister_kernel
    >>> previous = register_kernel(FunctionTransformer, lambda est, method: lambda X: X)
    >>> unregister_kernel(FunctionTransformer, previous)
    """
    if previous is None:
        _FACTORIES.pop(cls, None)
    else:
        _FACTORIES[cls] = previous


def make_kernel(est, method, *, densified=False):
    """Return ``kernel(X)`` for fitted ``est`` and ``method``, or raise :class:`NoKernel`.

    ``densified``: the caller makes a sparse output dense (a ColumnTransformer with dense output).

    A kernel reads fitted attributes, some private to scikit-learn (``SimpleImputer._fill_dtype``);
    when this scikit-learn version lacks one, there is no kernel: the estimator's own method runs.
    Kernels repeat scikit-learn's floating-point operations in its order, which changes between
    versions: they are checked bit for bit against scikit-learn 1.8 and later only, and older
    versions run every estimator's own method.
    """
    if not _KERNEL_VERSION_OK:
        raise NoKernel(f"kernels are checked against scikit-learn >= 1.8; this is "
                       f"{sklearn.__version__}")
    try:
        return _make_kernel(est, method, densified)
    except AttributeError as error:
        raise NoKernel(f"scikit-learn {sklearn.__version__} lacks an attribute the kernel "
                       f"reads ({error})") from None


def _make_kernel(est, method, densified=False):
    from sklearn import decomposition, impute, linear_model, preprocessing

    cls = type(est)
    factory = _FACTORIES.get(cls)
    if factory is not None:
        return factory(est, method)
    if cls is preprocessing.OneHotEncoder:
        if method != "transform":
            raise NoKernel(f"method {method!r}")
        return _one_hot_encoder(est, densified)
    if cls is preprocessing.TargetEncoder:
        if method != "transform":
            raise NoKernel(f"method {method!r}")
        return _target_encoder(est)
    transformers = {
        preprocessing.StandardScaler: _standard_scaler,
        preprocessing.MinMaxScaler: _minmax_scaler,
        preprocessing.MaxAbsScaler: _maxabs_scaler,
        preprocessing.RobustScaler: _robust_scaler,
        impute.SimpleImputer: _simple_imputer,
        decomposition.PCA: _pca,
    }
    if cls in transformers:
        if method != "transform":
            raise NoKernel(f"method {method!r}")
        return transformers[cls](est)
    classifiers = {
        linear_model.LogisticRegression: "softmax_or_lr",
        linear_model.SGDClassifier: None,
    }
    if cls in classifiers:
        _check_dense_fit(est)
        proba_kind = classifiers[cls]
        if cls is linear_model.SGDClassifier and est.loss == "log_loss":
            proba_kind = "lr"
        return _classifier(est, method, proba_kind=proba_kind)
    if cls in (linear_model.LinearRegression, linear_model.Ridge):
        _check_dense_fit(est)
        return _regressor(est, method, ravel=False)
    if cls is linear_model.SGDRegressor:
        _check_dense_fit(est)
        return _regressor(est, method, ravel=True)
    from ml_toolbox._tree_kernels import covers, make_tree_kernel  # trees, forests, boosting

    if covers(est):
        return make_tree_kernel(est, method)
    raise NoKernel(f"no kernel for {cls.__name__}")
