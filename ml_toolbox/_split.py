"""Splitting training data: per-sample fit parameters, validation sets.

Shared by :class:`~ml_toolbox.TrainingPipeline` and the epoch loop (:mod:`ml_toolbox.lifecycle`),
which the training pipeline runs.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import _num_samples, check_consistent_length

__all__ = ["split_validation"]


def _take(X, idx):
    if isinstance(X, np.ndarray):
        return X[idx]
    return _safe_indexing(X, idx)


def _safe_len(value):
    try:
        return _num_samples(value)
    except TypeError:
        return None


def _split_params(params, n_samples):
    """Fit params that are per sample (arrays of length n_samples) are sliced with each batch."""
    per_sample, constant = {}, {}
    for key, value in params.items():
        if (value is not None and not isinstance(value, (str, bytes, dict))
                and hasattr(value, "__len__") and _safe_len(value) == n_samples):
            per_sample[key] = value
        else:
            constant[key] = value
    return per_sample, constant


def split_validation(owner, validation, X, y, per_sample, classifier, random_state):
    """``(X_train, y_train, per_sample_train, X_val, y_val)`` (val parts None without validation).

    ``validation`` is a fraction (split off with ``train_test_split``, stratified for a
    classifier) or a pair ``(X_val, y_val)``. ``per_sample`` fit params (``sample_weight``...)
    are cut along with the training rows.
    """
    if validation is None:
        return X, y, per_sample, None, None
    if isinstance(validation, numbers.Real) and not isinstance(validation, bool):
        if not 0.0 < float(validation) < 1.0:
            raise ValueError(f"{owner}: validation as a fraction must be between 0 and 1 "
                             f"(exclusive), got {validation!r}.")
        indices = np.arange(_num_samples(X))
        try:
            train_idx, val_idx = train_test_split(
                indices, test_size=float(validation), random_state=random_state, shuffle=True,
                stratify=np.asarray(y) if classifier else None)
        except ValueError as exc:
            exc.add_note(f"{owner}: while splitting validation={validation!r} off the training "
                         "data (stratified by class for a classifier).")
            raise
        return (_take(X, train_idx), _take(y, train_idx),
                {k: _take(v, train_idx) for k, v in per_sample.items()},
                _take(X, val_idx), _take(y, val_idx))
    if isinstance(validation, (tuple, list)) and len(validation) == 2:
        X_val, y_val = validation
        check_consistent_length(X_val, y_val)
        return X, y, per_sample, X_val, y_val
    raise ValueError(f"{owner}: validation must be None, a fraction in (0, 1) or a pair "
                     f"(X_val, y_val); got {validation!r} ({type(validation).__name__}).")
