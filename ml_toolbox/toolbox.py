"""``MLToolbox``: named components and the defaults a UnifiedMLPipeline is built from."""

from __future__ import annotations

import functools

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.utils.multiclass import type_of_target

from .base import close_match_hint
from .preprocessing import AutoPreprocessor

__all__ = ["MLToolbox", "sklearn_estimators"]


@functools.cache
def sklearn_estimators():
    """``{class name: class}`` of every public scikit-learn estimator (scikit-learn's discovery).

    Computed once per process, on first use (it imports every scikit-learn module).
    """
    from sklearn.utils.discovery import all_estimators

    return dict(all_estimators())


def _builtin_components():
    return {"AutoPreprocessor": AutoPreprocessor}


class MLToolbox:
    """Named components and sensible defaults.

    ``UnifiedMLPipeline(toolbox)`` takes its feature stages and its model from here when you give
    none: one feature stage named ``"preprocessing"`` (an :class:`AutoPreprocessor`: impute and
    scale numeric columns, impute and one-hot encode the others) and a model chosen by the kind
    of target (:class:`~sklearn.linear_model.LogisticRegression` for class labels,
    :class:`~sklearn.linear_model.Ridge` for numbers).

    Parameters
    ----------
    components : dict, default=None
        ``{name: factory}``: your own components; a factory is a class or a function returning a
        new estimator.

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
    """

    def __init__(self, components=None):
        self.components = dict(components or {})

    def register(self, name, factory, *, overwrite=False):
        """Register ``factory`` under ``name``; returns the factory (usable as a decorator)."""
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
        """The factory of the component ``name``: a registered one first, then ml_toolbox's own
        (``"AutoPreprocessor"``), then any scikit-learn estimator by its class name (``"PCA"``).

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
        """A new instance of the component ``name`` (see :meth:`resolve`), with ``params``."""
        return self.resolve(name)(**params)

    def available_components(self):
        """Every name :meth:`create` accepts, sorted: registered, ml_toolbox's, scikit-learn's."""
        return sorted({*self.components, *_builtin_components(), *sklearn_estimators()})

    def name_of(self, estimator):
        """The component name under which ``estimator``'s class is known, or None."""
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
        """The default feature stages: ``[("preprocessing", AutoPreprocessor())]``."""
        return [("preprocessing", AutoPreprocessor())]

    def default_model(self, y):
        """A model suited to the target ``y``: a classifier for labels, a regressor for numbers.

        Two distinct values, or several integer or string labels, make a classification target;
        floating-point values (with more than two distinct values) a regression target.
        """
        if y is None:
            raise ValueError("MLToolbox.default_model: no target y was given, so no model can be "
                             "chosen; pass y, or model=<an estimator>.")
        kind = type_of_target(y)
        floating = getattr(np.asarray(y), "dtype", None) is not None and \
            np.asarray(y).dtype.kind == "f"
        if kind == "binary" or (kind == "multiclass" and not floating):
            return LogisticRegression(max_iter=1000)
        if kind in ("continuous", "continuous-multioutput", "multiclass-multioutput"):
            return Ridge()
        raise ValueError(f"MLToolbox.default_model: cannot choose a model for a target of type "
                         f"{kind!r}; pass model=<an estimator>.")

    def __sklearn_clone__(self):
        return self  # a registry is shared by the pipelines cloned from one another

    def __repr__(self):
        return f"MLToolbox(components={sorted(self.components)})"
