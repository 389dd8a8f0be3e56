"""``AutoPreprocessor``: the toolbox's default feature stage for tabular data."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from ._schema import _check_shape

__all__ = ["AutoPreprocessor"]


class AutoPreprocessor(TransformerMixin, BaseEstimator):
    """Impute and scale numeric columns, impute and one-hot encode the others.

    Columns are sorted into numeric and categorical by dtype at fit time (a numpy array of
    numbers is all numeric, one of objects all categorical). The work is done by a scikit-learn
    :class:`~sklearn.compose.ColumnTransformer`, kept in ``column_transformer_``.

    Parameters
    ----------
    numeric_strategy : str, default="median"
        :class:`~sklearn.impute.SimpleImputer` strategy for numeric columns.
    scale : bool, default=True
        Standardise numeric columns.
    categorical_strategy : str, default="most_frequent"
        Imputer strategy for categorical columns.
    max_categories : int, default=None
        Passed to :class:`~sklearn.preprocessing.OneHotEncoder` (rare categories grouped).

    Attributes
    ----------
    column_transformer_ : ColumnTransformer
    numeric_columns_, categorical_columns_ : list
        Column names (DataFrame) or positions (array).
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"age": [20.0, None, 40.0], "city": ["a", "b", "a"]})
    >>> AutoPreprocessor().fit(X).get_feature_names_out().tolist()
    ['numeric__age', 'categorical__city_a', 'categorical__city_b']
    """

    def __init__(self, numeric_strategy="median", scale=True,
                 categorical_strategy="most_frequent", max_categories=None):
        self.numeric_strategy = numeric_strategy
        self.scale = scale
        self.categorical_strategy = categorical_strategy
        self.max_categories = max_categories

    def _split_columns(self, X):
        if hasattr(X, "tocsr") or hasattr(X, "sparse"):
            raise TypeError("AutoPreprocessor: sparse input is not supported. Sparse data was "
                            "passed for X, but dense data is required. Use '.toarray()' to "
                            "convert to a dense numpy array.")
        if hasattr(X, "dtypes") and hasattr(X, "columns"):
            numeric = [c for c, d in zip(X.columns, X.dtypes) if getattr(d, "kind", "O") in "biuf"]
            categorical = [c for c in X.columns if c not in set(numeric)]
            return numeric, categorical
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"AutoPreprocessor: expected 2D input, got shape {X.shape}.")
        positions = list(range(X.shape[1]))
        return (positions, []) if X.dtype.kind in "biuf" else ([], positions)

    def _build(self, numeric, categorical):
        numeric_steps = [("impute", SimpleImputer(strategy=self.numeric_strategy))]
        if self.scale:
            numeric_steps.append(("scale", StandardScaler()))
        parts = []
        if numeric:
            parts.append(("numeric", Pipeline(numeric_steps), numeric))
        if categorical:
            parts.append(("categorical", Pipeline([
                ("impute", SimpleImputer(strategy=self.categorical_strategy)),
                ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False,
                                         max_categories=self.max_categories)),
            ]), categorical))
        return ColumnTransformer(parts, remainder="drop")

    def fit(self, X, y=None):
        """Sort the columns and fit the column transformer. Returns self."""
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X, y=None):
        """Fit, and return the transformed ``X``."""
        _check_shape(X, "AutoPreprocessor")
        numeric, categorical = self._split_columns(X)
        ct = self._build(numeric, categorical)
        Xt = ct.fit_transform(X if hasattr(X, "columns") else np.asarray(X), y)
        self.column_transformer_ = ct
        self.numeric_columns_ = numeric
        self.categorical_columns_ = categorical
        self.n_features_in_ = ct.n_features_in_
        if hasattr(ct, "feature_names_in_"):
            self.feature_names_in_ = ct.feature_names_in_
        return Xt

    def transform(self, X):
        """Impute, scale and encode ``X`` as learnt in ``fit``."""
        check_is_fitted(self)
        _check_shape(X, "AutoPreprocessor")
        return self.column_transformer_.transform(X if hasattr(X, "columns") else np.asarray(X))

    def get_feature_names_out(self, input_features=None):
        """Output feature names (``numeric__age``, ``categorical__city_a``...)."""
        check_is_fitted(self)
        return self.column_transformer_.get_feature_names_out(input_features)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        return tags
