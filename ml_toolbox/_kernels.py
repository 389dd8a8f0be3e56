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
"""

import numbers

import numpy as np
from scipy import special

__all__ = ["Decline", "NoKernel", "make_kernel", "finite_or_decline"]

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

    return kernel


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

    return kernel


def _one_hot_encoder(est):
    if est.sparse_output:
        raise NoKernel("sparse_output=True (the kernel writes dense arrays)")
    if est.drop is not None:
        raise NoKernel(f"drop={est.drop!r}")
    if getattr(est, "_infrequent_enabled", False):
        raise NoKernel("infrequent categories are grouped")
    if est.handle_unknown not in ("error", "ignore"):
        raise NoKernel(f"handle_unknown={est.handle_unknown!r}")
    ignore = est.handle_unknown == "ignore"
    lookups, nan_index, offsets = [], [], []
    offset = 0
    for cats in est.categories_:
        table, nan_at = {}, None
        for j, c in enumerate(cats.tolist()):
            if _is_nan_marker(c):
                nan_at = offset + j
            else:
                table[c] = offset + j
        lookups.append(table)
        nan_index.append(nan_at)
        offsets.append(offset)
        offset += len(cats)
    n_out = offset
    n = est.n_features_in_
    out_dtype = est.dtype
    n_feat = len(lookups)

    def kernel(X):
        _check_width(X, n)
        if X.dtype.kind not in "iufOUb":
            raise Decline(f"dtype {X.dtype}")
        if X.dtype.kind == "f" and np.isinf(X).any():
            raise Decline("infinite value")
        n_rows = X.shape[0]
        out = np.zeros((n_rows, n_out), dtype=out_dtype)
        rows = X.tolist()
        for i, row in enumerate(rows):
            out_row = out[i]
            for k in range(n_feat):
                v = row[k]
                try:
                    j = lookups[k].get(v)
                except TypeError as exc:  # unhashable
                    raise Decline("unhashable value") from exc
                if j is None:
                    if v is not None and not isinstance(v, str) and v != v and nan_index[k] is not None:
                        j = nan_index[k]
                    elif ignore:
                        continue
                    else:
                        raise Decline("unknown category")
                out_row[j] = 1
        return out

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

    return kernel


# --------------------------------------------------------------------------------------------------
# linear models


def _linear_scores(est, *, classifier):
    coef = est.coef_
    intercept = est.intercept_
    n = est.n_features_in_
    coef_T = coef.T if coef.ndim == 2 else coef

    def scores(X):
        X = as_numeric(X)
        _check_width(X, n)
        finite_or_decline(X, allow_nan=False)
        return X @ coef_T + intercept

    def decision(X):
        s = scores(X)
        if classifier and s.ndim > 1 and s.shape[1] == 1:
            return np.reshape(s, (-1,))
        return s

    return decision


def _classifier(est, method, *, proba_kind):
    decision = _linear_scores(est, classifier=True)
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
            if classes.size <= 2:
                proba = _proba_lr(decision)
            else:
                proba = _softmax(decision)
        elif proba_kind == "lr":
            proba = _proba_lr(decision)
        else:
            raise NoKernel(f"{method} for this loss")
        if method == "predict_proba":
            return proba
        return lambda X: np.log(proba(X))
    raise NoKernel(f"method {method!r}")


def _proba_lr(decision):
    def proba(X):
        prob = decision(X)
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

    return proba


def _softmax(decision):
    def proba(X):
        Z = decision(X)
        max_prob = np.reshape(np.max(Z, axis=1), (-1, 1))
        Z -= max_prob
        np.exp(Z, out=Z)
        sum_prob = np.reshape(np.sum(Z, axis=1), (-1, 1))
        Z /= sum_prob
        return Z

    return proba


def _regressor(est, method, *, ravel):
    if method != "predict":
        raise NoKernel(f"method {method!r}")
    coef, intercept, n = est.coef_, est.intercept_, est.n_features_in_
    coef_op = coef.T if (coef.ndim == 2 and ravel) else coef
    two_d = coef.ndim == 2

    def predict(X):
        X = as_numeric(X)
        _check_width(X, n)
        finite_or_decline(X, allow_nan=False)
        if ravel:  # SGDRegressor: safe_sparse_dot(X, coef_.T) + intercept_, raveled
            return (X @ coef_op + intercept).ravel()
        if two_d:  # LinearModel._decision_function
            return X @ coef.T + intercept
        return X @ coef + intercept

    return predict


# --------------------------------------------------------------------------------------------------
# dispatch


def _check_dense_fit(est):
    coef = getattr(est, "coef_", None)
    if coef is not None and not isinstance(coef, np.ndarray):
        raise NoKernel("sparse coef_ (sparsified model)")


def make_kernel(est, method):
    """Return ``kernel(X)`` for fitted ``est`` and ``method``, or raise :class:`NoKernel`."""
    from sklearn import decomposition, impute, linear_model, preprocessing

    cls = type(est)
    transformers = {
        preprocessing.StandardScaler: _standard_scaler,
        preprocessing.MinMaxScaler: _minmax_scaler,
        preprocessing.MaxAbsScaler: _maxabs_scaler,
        preprocessing.RobustScaler: _robust_scaler,
        impute.SimpleImputer: _simple_imputer,
        preprocessing.OneHotEncoder: _one_hot_encoder,
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
    raise NoKernel(f"no kernel for {cls.__name__}")
