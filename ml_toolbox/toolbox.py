"""``MLToolbox``: named components and the defaults a UnifiedMLPipeline is built from."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.utils import Bunch
from sklearn.utils.multiclass import type_of_target

from .base import close_match_hint
from .preprocessing import AutoPreprocessor

__all__ = ["MLToolbox", "infer_task", "sklearn_estimators"]

TASKS = ("classification", "regression")
#: Most distinct values a target of whole numbers may have and still be class labels.
MAX_CLASSES = 20
#: ... and at most this fraction of its rows (a label is seen twice on average, at least).
MAX_CLASS_FRACTION = 0.5


@functools.cache
def sklearn_estimators():
    """``{class name: class}`` of every public scikit-learn estimator (scikit-learn's discovery).

    Computed once per process, on first use (it imports every scikit-learn module).
    """
    from sklearn.utils.discovery import all_estimators

    return dict(all_estimators())


def _check_task(task, where):
    if task is not None and task not in TASKS:
        raise ValueError(f"{where}: task must be one of {list(TASKS)} or None (chosen from the "
                         f"target); got {task!r}.")


def _missing_rows(y):
    """Positions of the missing values (None, NaN, pd.NA, NaT) of a 1-D or 2-D target."""
    if isinstance(y, (pd.Series, pd.DataFrame)):
        missing = y.isna().to_numpy()
    else:
        arr = np.asarray(y, dtype=object) if not hasattr(y, "dtype") else np.asarray(y)
        missing = pd.isna(arr) if arr.dtype.kind in "fcOUSmM" else np.zeros(arr.shape, bool)
    if missing.ndim > 1:
        missing = missing.any(axis=tuple(range(1, missing.ndim)))
    return np.flatnonzero(missing)


def check_target(y, where):
    """Refuse a target with missing values, naming how many rows and where they are."""
    rows = _missing_rows(y)
    if rows.size:
        shown = ", ".join(str(int(r)) for r in rows[:10]) + (", ..." if rows.size > 10 else "")
        n = int(np.asarray(shape_of_target(y))[0])
        raise ValueError(
            f"{where}: y has {rows.size} missing value(s) out of {n} rows, at row position(s) "
            f"[{shown}]; every row needs a label or a value to learn from. Drop those rows "
            "(e.g. mask = y.notna(); X, y = X[mask], y[mask]) or fill them in.")


def shape_of_target(y):
    shape = getattr(y, "shape", None)
    return tuple(shape) if shape is not None else np.asarray(y, dtype=object).shape


def infer_task(y, task=None):
    """Decide whether ``y`` is a classification or a regression target, and say why.

    The rule, in order (``task`` given: it wins, and nothing is inferred):

    1. Missing values in ``y`` are refused (a ``ValueError`` naming how many rows and where).
    2. Labels that are not numbers -- strings, objects, booleans, a pandas ``category`` -- are
       classes: ``"classification"``.
    3. Numbers with a fractional part anywhere (scikit-learn's ``type_of_target`` says
       ``"continuous"``) are ``"regression"``.
    4. Whole numbers (integers, or floats such as ``151.0``) are class labels when there are
       two distinct values, or at most :data:`MAX_CLASSES` (20) distinct values that are also at
       most :data:`MAX_CLASS_FRACTION` (half) of the rows; otherwise they are counts or
       measurements: ``"regression"`` (scikit-learn's diabetes target: 214 distinct whole
       numbers in 442 rows).

    A 2-D target is judged on all its values at once.

    Parameters
    ----------
    y : array-like
        The target.
    task : {"classification", "regression"} or None, default=None
        Force the answer.

    Returns
    -------
    Bunch
        ``task`` (``"classification"`` or ``"regression"``) and ``reason`` (a sentence).

    Examples
    --------
    >>> from ml_toolbox.toolbox import infer_task
    >>> infer_task([0, 1, 1, 0]).task
    'classification'
    >>> infer_task([151.0, 75.0, 141.0, 206.0, 135.0, 97.0]).reason
    'whole numbers with 6 distinct values in 6 rows (more than half the rows): regression'
    >>> infer_task(["a", "b", None]).task
    Traceback (most recent call last):
    ...
    ValueError: infer_task: y has 1 missing value(s) out of 3 rows, at row position(s) [2]; ...
    """
    _check_task(task, "infer_task")
    if task is not None:
        return Bunch(task=task, reason=f"task={task!r} was given")
    check_target(y, "infer_task")
    if isinstance(getattr(y, "dtype", None), pd.CategoricalDtype) or (
            isinstance(y, pd.DataFrame) and any(isinstance(d, pd.CategoricalDtype)
                                                for d in y.dtypes)):
        return Bunch(task="classification", reason="a categorical target: classification")
    values = np.asarray(y) if hasattr(y, "dtype") or hasattr(y, "dtypes") else \
        np.asarray(y, dtype=object)
    if values.dtype == object:  # a list, or an object column: numbers only if every value is one
        flat = values.ravel()
        if flat.size and all(isinstance(v, (int, float, np.integer, np.floating))
                             and not isinstance(v, (bool, np.bool_)) for v in flat):
            values = flat.astype(float).reshape(values.shape)
    if values.dtype.kind not in "iuf":  # strings, objects, booleans
        return Bunch(task="classification",
                     reason=f"labels that are not numbers ({values.dtype}): classification")
    kind = type_of_target(values)
    if kind.startswith("continuous"):
        return Bunch(task="regression",
                     reason="numbers with a fractional part: regression")
    n_rows = values.shape[0]
    n_distinct = len(np.unique(values))
    where = f"{n_distinct} distinct values in {n_rows} rows"
    if n_distinct <= 2:
        return Bunch(task="classification", reason=f"whole numbers with {where}: classification")
    if n_distinct > MAX_CLASSES:
        return Bunch(task="regression", reason=f"whole numbers with {where} (more than "
                     f"{MAX_CLASSES}): regression")
    if n_distinct > MAX_CLASS_FRACTION * n_rows:
        return Bunch(task="regression", reason=f"whole numbers with {where} (more than half "
                     "the rows): regression")
    return Bunch(task="classification", reason=f"whole numbers with {where}: classification")


def task_of(model, toolbox, y, chosen):
    """``Bunch(task, reason)`` for a pipeline's model: the toolbox's choice (``chosen``: the
    toolbox picked the model), else what the user's model is (None for neither a classifier
    nor a regressor)."""
    if chosen:
        return toolbox.choose_task(y)
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(model):
        return Bunch(task="classification", reason="the model given is a classifier")
    if is_regressor(model):
        return Bunch(task="regression", reason="the model given is a regressor")
    return None


def _builtin_components():
    return {"AutoPreprocessor": AutoPreprocessor}


class MLToolbox:
    """Named components and sensible defaults.

    ``UnifiedMLPipeline(toolbox)`` takes its feature stages and its model from here when you give
    none: one feature stage named ``"preprocessing"`` (an :class:`AutoPreprocessor`: impute and
    scale numeric columns, impute and one-hot encode the others) and a model chosen by the kind
    of target (:class:`~sklearn.linear_model.LogisticRegression` for class labels,
    :class:`~sklearn.linear_model.Ridge` for numbers; see :func:`infer_task` for the rule).

    Parameters
    ----------
    components : dict, default=None
        ``{name: factory}``: your own components; a factory is a class or a function returning a
        new estimator.
    task : {"classification", "regression"} or None, default=None
        The kind of model :meth:`default_model` chooses; None decides from the target by the
        documented rule of :func:`infer_task` (dtype, whole numbers or not, distinct values
        relative to rows). The pipeline's ``task_`` and ``execute``'s result say which was
        chosen and why.

    Examples
    --------
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ml_toolbox import MLToolbox
    >>> toolbox = MLToolbox()
    >>> toolbox.register("scaler", StandardScaler)
    <class 'sklearn.preprocessing._data.StandardScaler'>
    >>> toolbox.create("scaler", with_mean=False)
    StandardScaler(with_mean=False)
    >>> type(toolbox.default_model([0, 1, 1])).__name__
    'LogisticRegression'
    >>> type(MLToolbox(task="regression").default_model([0, 1, 1])).__name__
    'Ridge'
    """

    def __init__(self, components=None, *, task=None):
        self.components = dict(components or {})
        self.task = task

    def register(self, name, factory, *, overwrite=False):
        """Register ``factory`` under ``name``.

        Parameters
        ----------
        name : str
            The component name configs and :meth:`create` use.
        factory : class or callable
            Called with the component's parameters to build it.
        overwrite : bool, default=False
            Replace a component already registered under ``name``.

        Returns
        -------
        class or callable
            ``factory`` itself, so ``register`` can be used as a decorator.

        Raises
        ------
        ValueError
            An empty name, or a name already registered without ``overwrite``.
        TypeError
            ``factory`` is not callable.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"MLToolbox.register: name must be a non-empty string, got {name!r}.")
        if not callable(factory):
            raise TypeError(f"MLToolbox.register: factory for {name!r} must be a class or a "
                            f"callable, got {type(factory).__name__}: {factory!r}.")
        if name in self.components and not overwrite:
            raise ValueError(f"MLToolbox.register: a component named {name!r} is already "
                             "registered; pass overwrite=True to replace it.")
        self.components[name] = factory
        return factory

    def resolve(self, name):
        """Find the factory of the component ``name``.

        A registered one first, then ml_toolbox's own (``"AutoPreprocessor"``), then any
        scikit-learn estimator by its class name (``"PCA"``).

        Parameters
        ----------
        name : str
            The component name.

        Returns
        -------
        class or callable
            The factory.

        Raises
        ------
        KeyError
            For an unknown name, with the closest known name and the registered ones.
        """
        factory = self.components.get(name)
        if factory is None:
            factory = _builtin_components().get(name)
        if factory is None and isinstance(name, str):
            factory = sklearn_estimators().get(name)
        if factory is None:
            known = self.available_components()
            raise KeyError(
                f"MLToolbox has no component {name!r}.{close_match_hint(name, known)} Registered "
                f"components: {sorted(self.components)}; every scikit-learn estimator is known "
                "by its class name (see MLToolbox().available_components()).")
        return factory

    def create(self, name, **params):
        """Create a new instance of the component ``name`` (see :meth:`resolve`).

        Parameters
        ----------
        name : str
            The component name.
        **params : dict
            Passed to the factory.

        Returns
        -------
        object
            The new component (an estimator, for every built-in name).
        """
        return self.resolve(name)(**params)

    def available_components(self):
        """List every name :meth:`create` accepts: registered, ml_toolbox's, scikit-learn's.

        Returns
        -------
        list of str
            The names, sorted.
        """
        return sorted({*self.components, *_builtin_components(), *sklearn_estimators()})

    def name_of(self, estimator):
        """Find the component name under which ``estimator``'s class is known.

        Parameters
        ----------
        estimator : object
            An instance of a component.

        Returns
        -------
        str or None
            The name (registered names first), or None for a class the toolbox does not know.
        """
        cls = type(estimator)
        for name, factory in self.components.items():
            if factory is cls:
                return name
        for name, factory in _builtin_components().items():
            if factory is cls:
                return name
        if sklearn_estimators().get(cls.__name__) is cls:
            return cls.__name__
        return None

    def default_features(self):
        """Build the default feature stages.

        Returns
        -------
        list of (str, estimator)
            ``[("preprocessing", AutoPreprocessor())]``.
        """
        return [("preprocessing", AutoPreprocessor())]

    def choose_task(self, y):
        """Choose the task: the toolbox's ``task`` when set, else :func:`infer_task`'s rule on ``y``.

        Missing values in ``y`` are refused either way.

        Parameters
        ----------
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The training target.

        Returns
        -------
        sklearn.utils.Bunch
            ``task`` (``"classification"`` or ``"regression"``) and ``reason`` (why, in words).

        Raises
        ------
        ValueError
            ``y`` is None, has missing values, or the toolbox's ``task`` is not a known one.
        """
        _check_task(self.task, "MLToolbox")
        if y is None:
            raise ValueError("MLToolbox.default_model: no target y was given, so no model can be "
                             "chosen; pass y, or model=<an estimator>.")
        check_target(y, "MLToolbox")
        return infer_task(y, self.task)

    def default_model(self, y):
        """A model suited to the target ``y``: a classifier for labels, a regressor for numbers.

        :meth:`choose_task` decides (the rule is :func:`infer_task`'s, or the toolbox's
        ``task``): :class:`~sklearn.linear_model.LogisticRegression` for classification
        (wrapped in :class:`~sklearn.multioutput.MultiOutputClassifier` for a 2-D target),
        :class:`~sklearn.linear_model.Ridge` for regression.

        Parameters
        ----------
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The training target.

        Returns
        -------
        estimator
            A new, unfitted model.
        """
        task = self.choose_task(y).task
        if task == "regression":
            return Ridge()
        model = LogisticRegression(max_iter=1000)
        if len(shape_of_target(y)) > 1 and shape_of_target(y)[1] > 1:
            from sklearn.multioutput import MultiOutputClassifier

            return MultiOutputClassifier(model)
        return model

    def __sklearn_clone__(self):
        return self  # a registry is shared by the pipelines cloned from one another

    def __repr__(self):
        task = "" if self.task is None else f", task={self.task!r}"
        return f"MLToolbox(components={sorted(self.components)}{task})"
