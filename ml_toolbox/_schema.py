"""The input schema a pipeline records at fit time, and the one check made at its entry."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api.types import pandas_dtype

from .exceptions import InputSchemaError

_DataFrame = pd.DataFrame

__all__ = ["InputSchema", "check_y_length", "shape_of", "same_names"]


def _dtype_family(dtype):
    kind = getattr(dtype, "kind", "O")
    if kind in "biuf":
        return "numeric"
    if kind == "c":
        return "complex"
    if kind in "mM":
        return "datetime"
    return "object"


def _family_of(dtype):
    if isinstance(dtype, str):  # a schema read back from JSON
        try:
            dtype = pandas_dtype(dtype)
        except TypeError:
            return "object"
    return _dtype_family(dtype)


def _as_dtype(dtype):
    if isinstance(dtype, str):
        try:
            return pandas_dtype(dtype)
        except TypeError:
            return dtype
    return dtype


def _dtypes_of(X):
    """The column dtypes of a DataFrame, cheaply (``X.dtypes`` builds a Series: ~50 us)."""
    mgr = getattr(X, "_mgr", None)
    get = getattr(mgr, "get_dtypes", None)
    if get is not None:
        try:
            return get()
        except (TypeError, AttributeError):
            pass
    return X.dtypes.to_numpy()


def same_names(columns, names, refs):
    """Whether the column Index ``columns`` holds exactly ``names`` (a list), in that order.

    pandas 3 keeps string column names in an Arrow array, and ``Index.tolist()`` costs several
    microseconds there; comparing with an Arrow copy of ``names`` costs one. The copies are made
    once per Arrow type and kept in the dict ``refs`` (type -> copy, or False when ``names`` cannot
    be held in that type); each is tried as it is (Arrow's ``equals`` compares the types too), so a
    frame whose names are the fitted ones costs no look-up of its type. Any other Index is compared
    as a list.
    """
    pa_array = getattr(getattr(columns, "_data", None), "_pa_array", None)  # (Index._values: a call)
    if pa_array is not None:
        for ref in refs.values():
            if ref is not False and pa_array.equals(ref):
                return True
        if len(pa_array) == len(names) and pa_array.type not in refs:
            import pyarrow as pa

            try:
                ref = pa.chunked_array([pa.array(names, type=pa_array.type)])
            except (pa.ArrowException, TypeError, ValueError):  # names that are not strings
                ref = False
            refs[pa_array.type] = ref
            if ref is not False and pa_array.equals(ref):
                return True
    return columns.tolist() == names


def _name(owner):
    """The owner's name for messages: a str as given, else the pipeline's ``owner``."""
    return owner if isinstance(owner, str) else owner.owner


def shape_of(X):
    """Shape of X without copying it (lists are inspected through numpy)."""
    shape = getattr(X, "shape", None)
    if shape is None:
        shape = np.asarray(X).shape
    return tuple(shape)


def _check_shape(X, owner, what="X"):
    shape = shape_of(X)
    if len(shape) != 2:
        if len(shape) == 1:
            raise InputSchemaError(
                f"{owner}: expected 2D {what} (rows x features), got 1D {what} of shape {shape} "
                "instead. Expected 2D array, got 1D array instead. Reshape your data either using "
                "array.reshape(-1, 1) if your data has a single feature or array.reshape(1, -1) if "
                "it contains a single sample.")
        raise InputSchemaError(
            f"{owner}: expected 2D {what} (rows x features), got shape {shape}. "
            f"Found array with dim {len(shape)}. Expected <= 2.")
    if shape[0] == 0:
        raise InputSchemaError(
            f"{owner}: {what} has no rows. Found array with 0 sample(s) (shape={shape}) while a "
            "minimum of 1 is required.")
    if shape[1] == 0:
        raise InputSchemaError(
            f"{owner}: {what} has no columns. Found array with 0 feature(s) (shape={shape}) while "
            "a minimum of 1 is required.")
    return shape


def check_y_length(X_shape, y, owner):
    """Refuse a ``y`` whose number of rows differs from X's."""
    if y is None:
        return
    n_y = shape_of(y)
    n_y = n_y[0] if n_y else 1
    if n_y != X_shape[0]:
        raise ValueError(
            f"{owner}: y has {n_y} rows but X has {X_shape[0]}; they must have the same number of "
            f"rows. Found input variables with inconsistent numbers of samples: "
            f"[{X_shape[0]}, {n_y}]")


#: What a pipeline's ``extra_columns`` may say: refuse columns not seen at fit time, or drop them.
EXTRA_COLUMNS = ("error", "ignore")


class InputSchema:
    """What a pipeline saw at fit time: kind of container, width, column names and dtypes.

    ``check`` is the single input check of a fitted pipeline: it accepts the same columns in
    another order (and reorders them), and refuses missing or unexpected columns, a column whose
    dtype family changed (numbers arriving as strings), the wrong number of features, 1D and
    empty input -- each with a message naming the pipeline and the columns.

    Parameters
    ----------
    n_features : int
    columns : tuple of str or None
        Column names (DataFrame input), None for arrays.
    dtypes : tuple of str or None
        The dtypes of those columns, as strings.
    """

    __slots__ = ("n_features", "columns", "dtypes", "_families", "_columns_list", "_dtype_objs",
                 "_seen_columns", "_one_dtype", "_arrow_names")

    def __init__(self, n_features, columns=None, dtypes=None):
        self.n_features = int(n_features)
        self.columns = None if columns is None else tuple(columns)
        self.dtypes = None if dtypes is None else tuple(str(d) for d in dtypes)
        self._families = None if dtypes is None else tuple(_family_of(d) for d in dtypes)
        self._columns_list = None if columns is None else list(self.columns)
        self._dtype_objs = None if dtypes is None else [_as_dtype(d) for d in dtypes]
        self._seen_columns = None  # the last Index object found equal (pandas Index is immutable)
        self._arrow_names = {}
        # every column of one numpy dtype: a frame held in one block of it has the right dtypes
        objs = self._dtype_objs
        self._one_dtype = objs[0] if objs and isinstance(objs[0], np.dtype) and all(
            d == objs[0] for d in objs) else None

    @classmethod
    def from_data(cls, X, owner):
        """Record the schema of fit-time data (refusing 1D, empty or column-less input)."""
        shape = _check_shape(X, owner)
        columns = getattr(X, "columns", None)
        if columns is not None and hasattr(type(X), "dtypes"):
            names = [str(c) for c in columns]
            if len(set(names)) != len(names):
                dup = sorted({c for c in names if names.count(c) > 1})
                raise InputSchemaError(f"{owner}: X has duplicated column names {dup}; column "
                                       "names must be unique.")
            return cls(shape[1], list(columns), list(X.dtypes))
        return cls(shape[1])

    def check(self, X, owner):
        """Check fitted-pipeline input; return X (reordered to the fit-time column order).

        ``owner`` names the pipeline in the messages: a str, or the pipeline itself (its
        ``owner`` is then read only when there is something to say).
        """
        exact = X.__class__ is _DataFrame
        if self.columns is not None and (exact or (
                getattr(X, "columns", None) is not None and hasattr(type(X), "dtypes"))):
            mgr = X._mgr if exact else None
            columns = mgr.axes[0] if exact else X.columns  # (a DataFrame's columns, read directly)
            if columns is not self._seen_columns:
                if not same_names(columns, self._columns_list, self._arrow_names):
                    X = self._align(X, columns, owner)
                    mgr = X._mgr if exact else None
                else:
                    self._seen_columns = columns
            one = self._one_dtype
            if one is not None and exact:
                # a frame held in one numpy block of the (single) fit-time dtype, with rows: its
                # dtypes are right (the usual one-row frame; read here, not through a call)
                blocks = mgr.blocks
                if len(blocks) == 1:
                    values = blocks[0].values
                    if values.__class__ is np.ndarray and values.dtype == one:
                        shape = values.shape
                        if shape[0] == self.n_features and shape[1]:
                            return X
            if not len(X.index):
                _check_shape(X, _name(owner))
            if self._families is not None:
                self._check_dtypes(X, owner)
            return X
        owner = _name(owner)
        shape = _check_shape(X, owner)
        if shape[1] != self.n_features:
            raise InputSchemaError(
                f"{owner}: X has {shape[1]} features, but {owner.split(' ')[0]} is expecting "
                f"{self.n_features} features as input.")
        return X

    def _align(self, X, columns, owner):
        """X with the fit-time columns in the fit-time order, or an error naming what differs.

        Extra columns are refused unless ``owner`` (the pipeline) has ``extra_columns="ignore"``;
        duplicated names are always refused (which of the two would be the feature?).
        """
        policy = "error" if isinstance(owner, str) else getattr(owner, "extra_columns", "error")
        owner = _name(owner)
        if policy not in EXTRA_COLUMNS:
            raise ValueError(f"{owner}: extra_columns must be one of {list(EXTRA_COLUMNS)}; got "
                             f"{policy!r}.")
        given = list(columns)
        if len(set(given)) != len(given):
            dup = sorted({str(c) for c in given if given.count(c) > 1})
            raise InputSchemaError(f"{owner}: X has duplicated column names {dup}; column names "
                                   "must be unique (as at fit time).")
        known = set(self.columns)
        missing = [c for c in self.columns if c not in set(given)]
        extra = [c for c in given if c not in known]
        if missing or (extra and policy == "error"):
            parts = []
            if missing:
                parts.append(f"missing column(s) {missing}")
            if extra:
                parts.append(f"unexpected column(s) {extra}")
            hint = " To drop columns not seen at fit time, pass extra_columns='ignore' to the " \
                "pipeline." if extra and not missing else ""
            raise InputSchemaError(
                f"{owner}: X does not have the columns seen at fit time: {' and '.join(parts)}. "
                f"Expected the columns {list(self.columns)}.{hint}")
        return X[self._columns_list]  # same columns, another order (or extra ones): select

    def _check_dtypes(self, X, owner):
        given = _dtypes_of(X)
        if given.tolist() == self._dtype_objs:
            return  # the common case: exactly the fit-time dtypes (list == compares identity first)
        owner = _name(owner)
        for name, dtype, family, want in zip(self.columns, given, self._families, self.dtypes):
            if family != "object" and _dtype_family(dtype) != family:
                raise InputSchemaError(
                    f"{owner}: column {name!r} had dtype {want} at fit time but has dtype "
                    f"{dtype} now; expected a {family} column.")

    def to_dict(self):
        """JSON-safe description (used by the versioned store's manifest)."""
        return {"n_features": self.n_features,
                "columns": None if self.columns is None else [str(c) for c in self.columns],
                "dtypes": None if self.dtypes is None else list(self.dtypes)}

    @classmethod
    def from_dict(cls, data):
        """Inverse of :meth:`to_dict`."""
        return cls(data["n_features"], data.get("columns"), data.get("dtypes"))

    def __getstate__(self):
        return self.to_dict()

    def __setstate__(self, state):
        self.__init__(state["n_features"], state.get("columns"), state.get("dtypes"))

    def __eq__(self, other):
        return isinstance(other, InputSchema) and self.to_dict() == other.to_dict()

    def __repr__(self):
        if self.columns is None:
            return f"InputSchema(n_features={self.n_features})"
        return f"InputSchema(columns={list(self.columns)}, dtypes={list(self.dtypes)})"

