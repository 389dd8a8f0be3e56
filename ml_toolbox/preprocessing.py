"""``AutoPreprocessor``: the toolbox's default feature stage for tabular data."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler, TargetEncoder
from sklearn.utils.validation import check_is_fitted

from ._schema import _check_shape

__all__ = ["AutoPreprocessor", "DatetimeFeatures"]

_DATE_PARTS = ("year", "month", "day", "dayofweek", "hour")
_ATTRIBUTES = {"year": "year", "month": "month", "day": "day", "dayofweek": "day_of_week",
               "hour": "hour"}  # Series.dt's names (Monday is 0)


class DatetimeFeatures(TransformerMixin, BaseEstimator):
    """Numeric features of datetime columns: year, month, day, day of week, and hour when present.

    Naive and timezone-aware columns alike: the parts are read in the column's own time zone
    (as ``Series.dt`` gives them). A missing value (``NaT``) gives NaN in every part.

    Parameters
    ----------
    parts : tuple of str, default=("year", "month", "day", "dayofweek", "hour")
        The parts to make, among those. ``"hour"`` is made for a column only when some value seen
        in ``fit`` has a time of day other than midnight.

    Attributes
    ----------
    parts_ : list of list of str
        Per input column, the parts made.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        When fitted on a DataFrame.

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"when": pd.to_datetime(["2024-03-01 10:00", None])})
    >>> parts = DatetimeFeatures().fit(X)
    >>> parts.get_feature_names_out().tolist()
    ['when_year', 'when_month', 'when_day', 'when_dayofweek', 'when_hour']
    >>> parts.transform(X).tolist()
    [[2024.0, 3.0, 1.0, 4.0, 10.0], [nan, nan, nan, nan, nan]]
    """

    def __init__(self, parts=_DATE_PARTS):
        self.parts = parts

    @staticmethod
    def _columns(X):
        if isinstance(X, pd.DataFrame):
            return [pd.to_datetime(X.iloc[:, i]) for i in range(X.shape[1])]
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"DatetimeFeatures: expected 2D input, got shape {X.shape}.")
        return [pd.Series(pd.to_datetime(X[:, i])) for i in range(X.shape[1])]

    def fit(self, X, y=None):
        """Record, per column, the parts to make.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Datetime columns (naive or timezone-aware).
        y : None
            Ignored.

        Returns
        -------
        DatetimeFeatures
            This transformer.

        Raises
        ------
        ValueError
            ``parts`` names a part that is not one of the allowed ones.
        """
        unknown = sorted(set(self.parts) - set(_DATE_PARTS))
        if unknown:
            raise ValueError(f"DatetimeFeatures: unknown parts {unknown}; allowed: {list(_DATE_PARTS)}")
        columns = self._columns(X)
        self.parts_ = []
        for col in columns:
            times = col.dropna()
            has_time = bool(((times.dt.hour != 0) | (times.dt.minute != 0)
                             | (times.dt.second != 0)).any())
            self.parts_.append([p for p in self.parts if p != "hour" or has_time])
        self.n_features_in_ = len(columns)
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        else:
            self.__dict__.pop("feature_names_in_", None)
        return self

    def transform(self, X):
        """Compute the parts of each column, as float64 (NaN for a missing value).

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Datetime columns, as in ``fit``.

        Returns
        -------
        ndarray of shape (n_samples, n_features_out)
            One column per part made, in the order of :meth:`get_feature_names_out`.
        """
        check_is_fitted(self)
        columns = self._columns(X)
        if len(columns) != self.n_features_in_:
            raise ValueError(f"X has {len(columns)} features, but DatetimeFeatures is expecting "
                             f"{self.n_features_in_} features as input.")
        out = [getattr(col.dt, _ATTRIBUTES[part]).to_numpy(dtype=np.float64, na_value=np.nan)
               for col, parts in zip(columns, self.parts_) for part in parts]
        if not out:
            return np.zeros((len(X), 0))
        return np.column_stack(out)

    def get_feature_names_out(self, input_features=None):
        """Name the output features: ``<column>_<part>`` per part made.

        Parameters
        ----------
        input_features : array-like of str, default=None
            Input column names; None uses ``feature_names_in_`` (DataFrame input), else
            ``x0``, ``x1``...

        Returns
        -------
        ndarray of str
            The output feature names.
        """
        check_is_fitted(self)
        if input_features is None:
            input_features = getattr(self, "feature_names_in_",
                                     [f"x{i}" for i in range(self.n_features_in_)])
        return np.asarray([f"{c}_{p}" for c, parts in zip(input_features, self.parts_)
                           for p in parts], dtype=object)


def _none_as_nan(values):
    """``values`` (an object ndarray) with every ``None`` and ``pd.NA`` replaced by NaN: a copy when
    one is found, ``values`` itself otherwise. What AutoPreprocessor calls missing in a categorical
    column, besides what scikit-learn's imputer already does (a value unequal to itself: NaN, NaT).
    """
    na = pd.NA
    mask = pd.isna(values)  # None, NaN, pd.NA, NaT...: of which only None and pd.NA are replaced
    if not mask.any():
        return values
    found = mask.nonzero()
    which = np.fromiter((v is None or v is na for v in values[found].tolist()), dtype=bool,
                        count=len(found[0]))
    if not which.any():
        return values
    out = np.array(values, dtype=object, copy=True, order="K")
    out[tuple(i[which] for i in found)] = np.nan
    return out


def _categorical_missing_as_nan(X, columns):
    """``X`` with ``None`` and ``pd.NA`` replaced by NaN in the categorical ``columns`` (names of a
    DataFrame, or positions in an array of objects), so that the imputer fitted with
    ``missing_values=np.nan`` sees them as missing on every pandas version. A column with such a
    value becomes an object column in a shallow copy; ``X`` itself is never changed."""
    if hasattr(X, "columns"):
        replaced = {}
        for c in columns:
            col = X[c]
            if isinstance(col.dtype, pd.CategoricalDtype):
                continue  # its missing values reach scikit-learn as NaN already
            values = col.to_numpy(dtype=object)
            fixed = _none_as_nan(values)
            if fixed is not values:
                replaced[c] = pd.Series(fixed, index=col.index, name=col.name, dtype=object)
        if not replaced:
            return X
        X = X.copy(deep=False)
        for c, col in replaced.items():
            X[c] = col
        return X
    X = np.asarray(X)
    if X.dtype.kind != "O" or not columns:
        return X
    return _none_as_nan(X)  # an object array: all its columns are categorical


def _target_encoder(target_type):
    """A TargetEncoder whose cross-fitting is seeded (a ``cv`` splitter from scikit-learn 1.9,
    where ``random_state`` is deprecated; ``random_state=0`` before)."""
    import inspect

    if inspect.signature(TargetEncoder).parameters["random_state"].default == "deprecated":
        from sklearn.model_selection import KFold

        return TargetEncoder(target_type=target_type, cv=KFold(5, shuffle=True, random_state=0))
    return TargetEncoder(target_type=target_type, random_state=0)  # pragma: no cover - sklearn < 1.9


class AutoPreprocessor(TransformerMixin, BaseEstimator):
    """Impute and scale numeric columns, expand datetime columns, encode the others.

    Columns are sorted by dtype at fit time (a numpy array of numbers is all numeric, one of
    objects all categorical):

    - numeric (int, float, bool): imputed (``numeric_strategy``) and standardised (``scale``);
    - datetime, naive or timezone-aware: year, month, day, day of week, and hour when some value
      has a time of day (:class:`DatetimeFeatures`), then imputed and scaled as numeric columns;
    - the others (strings, objects, categories): imputed (``categorical_strategy``) and one-hot
      encoded, unless they have more than ``high_cardinality_threshold`` distinct values at fit
      (a name or ID column): those are encoded as ``high_cardinality`` says instead of becoming
      hundreds of one-hot columns.

    In those other columns ``None``, ``pd.NA`` and NaN are all missing (imputed, never a category of
    their own), whatever the pandas version and dtype: ``fit`` and ``transform`` hand the column
    transformer NaN for each. A :class:`~sklearn.impute.SimpleImputer` of your own keeps
    scikit-learn's rule (``None`` is a value unless ``missing_values=None``).

    The work is done by a scikit-learn :class:`~sklearn.compose.ColumnTransformer`, kept in
    ``column_transformer_``. The fast inference path runs it on kernels (see the inference guide)
    unless it has datetime columns, ordinal-encoded columns or a multiclass target encoding: it
    then runs scikit-learn's own methods (same results).

    Parameters
    ----------
    numeric_strategy : str, default="median"
        :class:`~sklearn.impute.SimpleImputer` strategy for numeric and datetime features.
    scale : bool, default=True
        Standardise numeric and datetime features.
    categorical_strategy : str, default="most_frequent"
        Imputer strategy for categorical columns.
    max_categories : int, default=None
        Passed to :class:`~sklearn.preprocessing.OneHotEncoder` (rare categories grouped).
    high_cardinality_threshold : int, default=50
        A categorical column with more distinct values than this (in ``fit``, missing values not
        counted) is a high-cardinality column.
    high_cardinality : {"target", "ordinal", "drop"}, default="target"
        What becomes of a high-cardinality column: ``"target"``, a
        :class:`~sklearn.preprocessing.TargetEncoder` (cross-fitted in ``fit_transform``; without
        ``y`` in fit, ``"ordinal"`` is used); ``"ordinal"``, an
        :class:`~sklearn.preprocessing.OrdinalEncoder` (unknown values encoded -1); ``"drop"``,
        dropped with a ``UserWarning`` naming the column.
    target_type : {"auto", "continuous", "binary", "multiclass"}, default="auto"
        Passed to the ``TargetEncoder``: what the target is (the toolbox passes the task it chose).

    Attributes
    ----------
    column_transformer_ : ColumnTransformer
    numeric_columns_, categorical_columns_, datetime_columns_ : list
        Column names (DataFrame) or positions (array).
    high_cardinality_columns_ : dict
        ``{column: number of distinct values}`` of the high-cardinality columns (dropped or
        encoded as ``high_cardinality`` says; not in ``categorical_columns_``).
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"age": [20.0, None, 40.0], "city": ["a", "b", "a"]})
    >>> AutoPreprocessor().fit(X).get_feature_names_out().tolist()
    ['numeric__age', 'categorical__city_a', 'categorical__city_b']
    >>> X["when"] = pd.to_datetime(["2024-01-01", "2024-06-30", None])
    >>> AutoPreprocessor().fit(X).get_feature_names_out().tolist()[-4:]
    ['datetime__when_year', 'datetime__when_month', 'datetime__when_day', 'datetime__when_dayofweek']
    >>> X = pd.DataFrame({"city": pd.Series(["a", None, "b", pd.NA, "a"], dtype=object)})
    >>> AutoPreprocessor().fit(X).get_feature_names_out().tolist()
    ['categorical__city_a', 'categorical__city_b']
    """

    def __init__(self, numeric_strategy="median", scale=True,
                 categorical_strategy="most_frequent", max_categories=None,
                 high_cardinality_threshold=50, high_cardinality="target", target_type="auto"):
        self.numeric_strategy = numeric_strategy
        self.scale = scale
        self.categorical_strategy = categorical_strategy
        self.max_categories = max_categories
        self.high_cardinality_threshold = high_cardinality_threshold
        self.high_cardinality = high_cardinality
        self.target_type = target_type

    def _split_columns(self, X):
        """``(numeric, categorical, datetime)`` columns of ``X``, by dtype."""
        if hasattr(X, "tocsr") or hasattr(X, "sparse"):
            raise TypeError("AutoPreprocessor: sparse input is not supported. Sparse data was "
                            "passed for X, but dense data is required. Use '.toarray()' to "
                            "convert to a dense numpy array.")
        if hasattr(X, "dtypes") and hasattr(X, "columns"):
            numeric, categorical, datetime = [], [], []
            for c, d in zip(X.columns, X.dtypes):
                if isinstance(d, np.dtype) and d.kind in "biuf":
                    numeric.append(c)
                elif pd.api.types.is_datetime64_any_dtype(d):
                    datetime.append(c)
                else:
                    categorical.append(c)
            return numeric, categorical, datetime
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"AutoPreprocessor: expected 2D input, got shape {X.shape}.")
        positions = list(range(X.shape[1]))
        if X.dtype.kind in "biuf":
            return positions, [], []
        if X.dtype.kind == "M":
            return [], [], positions
        return [], positions, []

    def _check_params(self):
        if self.high_cardinality not in ("target", "ordinal", "drop"):
            raise ValueError(f"AutoPreprocessor: high_cardinality must be 'target', 'ordinal' or "
                             f"'drop', got {self.high_cardinality!r}")
        t = self.high_cardinality_threshold
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 1:
            raise ValueError(f"AutoPreprocessor: high_cardinality_threshold must be a positive "
                             f"int, got {t!r}")

    def _high_cardinality(self, X, categorical):
        """``{column: distinct values}`` of the categorical columns above the threshold."""
        found = {}
        for c in categorical:
            col = X[c] if hasattr(X, "columns") else pd.Series(np.asarray(X)[:, c])
            n = col.nunique(dropna=True)
            if n > self.high_cardinality_threshold:
                found[c] = int(n)
        return found

    def _numeric_steps(self):
        steps = [("impute", SimpleImputer(strategy=self.numeric_strategy))]
        if self.scale:
            steps.append(("scale", StandardScaler()))
        return steps

    def _build(self, numeric, categorical, datetime=(), high=(), how="drop"):
        parts = []
        if numeric:
            parts.append(("numeric", Pipeline(self._numeric_steps()), numeric))
        if categorical:
            parts.append(("categorical", Pipeline([
                ("impute", SimpleImputer(strategy=self.categorical_strategy)),
                ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False,
                                         max_categories=self.max_categories)),
            ]), categorical))
        if datetime:
            parts.append(("datetime", Pipeline([("parts", DatetimeFeatures()),
                                                *self._numeric_steps()]), list(datetime)))
        if high and how != "drop":
            encoder = (_target_encoder(self.target_type) if how == "target" else
                       OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1))
            parts.append(("high_cardinality", Pipeline([
                ("impute", SimpleImputer(strategy=self.categorical_strategy)),
                ("encode", encoder)]), list(high)))
        return ColumnTransformer(parts, remainder="drop")

    def fit(self, X, y=None):
        """Sort the columns by dtype and fit the column transformer.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Mixed columns: numbers, strings or categories, datetimes.
        y : array-like of shape (n_samples,), default=None
            Targets, for the target encoding of high-cardinality columns.

        Returns
        -------
        AutoPreprocessor
            This transformer; the fitted column transformer is ``column_transformer_``.
        """
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X, y=None):
        """Fit, and return the transformed ``X``.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Mixed columns: numbers, strings or categories, datetimes.
        y : array-like of shape (n_samples,), default=None
            Targets, for the target encoding of high-cardinality columns.

        Returns
        -------
        ndarray or sparse matrix of shape (n_samples, n_features_out)
            The imputed, scaled and encoded features.
        """
        self._check_params()
        _check_shape(X, "AutoPreprocessor")
        numeric, categorical, datetime = self._split_columns(X)
        high = self._high_cardinality(X, categorical)
        categorical = [c for c in categorical if c not in high]
        how = self.high_cardinality
        if how == "target" and y is None:
            how = "ordinal"  # nothing to encode with
        if how == "drop":
            for c, n in high.items():
                warnings.warn(
                    f"AutoPreprocessor: column {c!r} has {n} distinct values (more than "
                    f"high_cardinality_threshold={self.high_cardinality_threshold}): dropped. "
                    f"Set high_cardinality='target' or 'ordinal' to encode it instead.",
                    UserWarning, stacklevel=2)
        ct = self._build(numeric, categorical, datetime, high, how)
        Xt = ct.fit_transform(_categorical_missing_as_nan(X, [*categorical, *high]), y)
        self.column_transformer_ = ct
        self.numeric_columns_ = numeric
        self.categorical_columns_ = categorical
        self.datetime_columns_ = datetime
        self.high_cardinality_columns_ = high
        self.n_features_in_ = ct.n_features_in_
        if hasattr(ct, "feature_names_in_"):
            self.feature_names_in_ = ct.feature_names_in_
        return Xt

    def transform(self, X):
        """Impute, scale and encode ``X`` as learnt in ``fit``.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Mixed columns: numbers, strings or categories, datetimes.

        Returns
        -------
        ndarray or sparse matrix of shape (n_samples, n_features_out)
            The features, columns as :meth:`get_feature_names_out` names them.
        """
        check_is_fitted(self)
        _check_shape(X, "AutoPreprocessor")
        columns = [*self.categorical_columns_, *self.high_cardinality_columns_]
        return self.column_transformer_.transform(_categorical_missing_as_nan(X, columns))

    def get_feature_names_out(self, input_features=None):
        """Name the output features (``numeric__age``, ``categorical__city_a``...).

        Parameters
        ----------
        input_features : array-like of str, default=None
            Input column names; None uses ``feature_names_in_`` (DataFrame input), else
            ``x0``, ``x1``...

        Returns
        -------
        ndarray of str
            The output feature names.
        """
        check_is_fitted(self)
        return self.column_transformer_.get_feature_names_out(input_features)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        return tags
