"""``PipelineStage``: one named step of a pipeline, wrapping an estimator or a plain function."""

from __future__ import annotations

import copy

from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import get_tags
from sklearn.utils._set_output import _safe_set_output
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ._describe import (HTMLReprMixin, description, estimator_row, format_seconds, is_fitted)
from .exceptions import StageDefinitionError

__all__ = ["PipelineStage", "default_stage_name", "HTMLReprMixin"]

_INFERENCE_MODES = frozenset({"transform", "predict", "predict_proba", "predict_log_proba",
                              "decision_function"})
_METHODS = ("transform", "predict", "predict_proba", "predict_log_proba", "decision_function",
            "score", "inverse_transform")


def default_stage_name(estimator):
    """Name a stage when no name is given: the lower-cased class or function name.

    Parameters
    ----------
    estimator : estimator, callable, "passthrough" or None
        What the stage wraps.

    Returns
    -------
    str
        The name: ``"passthrough"`` for None, ``"function"`` for a lambda.

    Examples
    --------
    >>> from sklearn.preprocessing import StandardScaler
    >>> default_stage_name(StandardScaler())
    'standardscaler'
    >>> import numpy as np
    >>> default_stage_name(np.log1p)
    'log1p'
    """
    if estimator is None or (isinstance(estimator, str) and estimator == "passthrough"):
        return "passthrough"
    if hasattr(estimator, "fit"):
        return type(estimator).__name__.lower()
    name = getattr(estimator, "__name__", None) or type(estimator).__name__
    return "function" if name == "<lambda>" else name.lower()


def _wrapped_has(attr):
    """For ``available_if``: the (fitted, else template) wrapped estimator has ``attr``."""

    def check(self):
        est = self.__dict__.get("estimator_")
        if est is None:
            est = self.estimator
            if est is None or isinstance(est, str) or not hasattr(est, "fit"):
                est = FunctionTransformer()
        getattr(est, attr)  # raise AttributeError with the estimator's own message
        return True

    return check


class PipelineStage(HTMLReprMixin, BaseEstimator):
    """One named step of a pipeline: a scikit-learn estimator, or a plain function.

    A stage is an estimator itself (``fit``, ``transform``, ``predict`` ... pass through to what it
    wraps, when it has them). Fitting never touches the wrapped ``estimator`` parameter: it fits a
    clone, kept in ``estimator_``. A stage knows nothing of monitors, retries or debuggers; the
    pipeline's execution loop runs it through :meth:`run`.

    Parameters
    ----------
    estimator : estimator, callable, "passthrough" or None, default=None
        What the stage does. A plain function ``f(X) -> X'`` (or ``f(X, **kw_args)``) is wrapped
        in a :class:`~sklearn.preprocessing.FunctionTransformer`, as scikit-learn does.
        ``None`` or ``"passthrough"`` is the identity.
    name : str, default=None
        The stage's name in its pipeline; by default the lower-cased class or function name.
    kw_args : dict, default=None
        Keyword arguments for a function stage.
    retry : RetryConfig, RetryHandler, False or None, default=None
        The stage's own retry policy; ``False`` opts the stage out of retries (a stage with side
        effects); ``None`` uses the pipeline's.
    depends_on : list of str, default=None
        Names of the stages whose output this stage takes (graph pipelines, see orchestration).
    timeout : float, default=None
        Seconds the stage may run (see orchestration).

    Attributes
    ----------
    estimator_ : estimator
        The fitted clone of ``estimator`` (or the fitted ``FunctionTransformer``).
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of str
        Names of the features seen during ``fit`` (DataFrame input with string column names).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ml_toolbox import PipelineStage
    >>> stage = PipelineStage(StandardScaler(), name="scale")
    >>> stage.run(np.array([[1.0], [3.0]]), mode="fit_transform")
    array([[-1.],
           [ 1.]])
    >>> PipelineStage(np.log1p).fit_transform(np.array([[0.0]]))
    array([[0.]])
    """

    def __init__(self, estimator=None, name=None, *, kw_args=None, retry=None, depends_on=None,
                 timeout=None):
        self.estimator = estimator
        self.name = name
        self.kw_args = kw_args
        self.retry = retry
        self.depends_on = depends_on
        self.timeout = timeout

    # -- definition ---------------------------------------------------------------------
    @property
    def stage_name(self):
        """The name of the stage: ``name`` if given, else derived from what it wraps."""
        return self.name if self.name is not None else default_stage_name(self.estimator)

    def _make_estimator(self):
        est = self.estimator
        if est is None or (isinstance(est, str) and est == "passthrough"):
            new = FunctionTransformer(feature_names_out="one-to-one")
        elif hasattr(est, "fit"):
            new = clone(est)
        elif callable(est):
            new = FunctionTransformer(est, kw_args=self.kw_args)
        else:
            raise StageDefinitionError(
                f"PipelineStage {self.stage_name!r}: expected a scikit-learn estimator (an object "
                f"with a fit method), a callable or 'passthrough', got {type(est).__name__}: "
                f"{est!r}.")
        output = getattr(self, "_sklearn_output_config", None)
        if output and output.get("transform") is not None:
            _safe_set_output(new, transform=output["transform"])
        return new

    def _record_input(self, X, est):
        n = getattr(est, "n_features_in_", None)
        if n is None:
            shape = getattr(X, "shape", None)
            n = shape[1] if shape is not None and len(shape) > 1 else None
        if n is not None:
            self.n_features_in_ = int(n)
        names = getattr(est, "feature_names_in_", None)
        if names is not None:
            self.feature_names_in_ = names
        elif "feature_names_in_" in self.__dict__:
            del self.feature_names_in_

    # -- scikit-learn API ---------------------------------------------------------------
    def fit(self, X, y=None, **params):
        """Fit a clone of the wrapped estimator on ``X`` (and ``y``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Input of the wrapped estimator.
        y : array-like of shape (n_samples,), default=None
            Targets, for a supervised estimator.
        **params : dict
            Passed to the wrapped estimator's fitting method (e.g. ``sample_weight``).

        Returns
        -------
        PipelineStage
            This stage; the fitted clone is ``estimator_``.
        """
        est = self._make_estimator()
        est.fit(X, y, **params)
        self.estimator_ = est
        self._record_input(X, est)
        return self

    @available_if(_wrapped_has("transform"))
    def fit_transform(self, X, y=None, **params):
        """Fit a clone of the wrapped estimator and return its transform of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Input of the wrapped estimator.
        y : array-like of shape (n_samples,), default=None
            Targets, for a supervised estimator.
        **params : dict
            Passed to the wrapped estimator's fitting method (e.g. ``sample_weight``).

        Returns
        -------
        ndarray, sparse matrix or DataFrame of shape (n_samples, n_features_out)
            The wrapped estimator's transform of ``X``.
        """
        est = self._make_estimator()
        if hasattr(est, "fit_transform"):
            Xt = est.fit_transform(X, y, **params)
        else:
            Xt = est.fit(X, y, **params).transform(X)
        self.estimator_ = est
        self._record_input(X, est)
        return Xt

    @available_if(_wrapped_has("partial_fit"))
    def partial_fit(self, X, y=None, **params):
        """Update the wrapped estimator with one batch (the first call starts from a clone).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            One batch.
        y : array-like of shape (n_samples,), default=None
            Targets of the batch, for a supervised estimator.
        **params : dict
            Passed to the wrapped estimator's ``partial_fit`` (e.g. ``classes`` on the first call).

        Returns
        -------
        PipelineStage
            This stage.

        Raises
        ------
        AttributeError
            The wrapped estimator has no ``partial_fit``.
        """
        est = self.__dict__.get("estimator_")
        if est is None:
            est = self._make_estimator()
        if not hasattr(est, "partial_fit"):
            raise AttributeError(
                f"PipelineStage {self.stage_name!r}: {type(est).__name__} has no partial_fit.")
        est.partial_fit(X, y, **params)
        self.estimator_ = est
        self._record_input(X, est)
        return self

    @available_if(_wrapped_has("transform"))
    def transform(self, X):
        """Transform ``X`` with the fitted estimator.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Input of the wrapped estimator.

        Returns
        -------
        ndarray, sparse matrix or DataFrame of shape (n_samples, n_features_out)
            The wrapped estimator's transform.
        """
        check_is_fitted(self)
        return self.estimator_.transform(X)

    @available_if(_wrapped_has("inverse_transform"))
    def inverse_transform(self, X):
        """Inverse-transform ``X`` with the fitted estimator.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Data in the transformed space.

        Returns
        -------
        ndarray of shape (n_samples, n_features_in)
            ``X`` mapped back to the original space.
        """
        check_is_fitted(self)
        return self.estimator_.inverse_transform(X)

    @available_if(_wrapped_has("predict"))
    def predict(self, X, **params):
        """Predict with the fitted estimator.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Input of the wrapped estimator.
        **params : dict
            Passed to the wrapped estimator's ``predict``.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predictions.
        """
        check_is_fitted(self)
        return self.estimator_.predict(X, **params)

    @available_if(_wrapped_has("predict_proba"))
    def predict_proba(self, X):
        """Return the class probabilities of the fitted estimator.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Input of the wrapped estimator.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Probabilities, columns in the order of ``classes_``.
        """
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)

    @available_if(_wrapped_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """Return the class log-probabilities of the fitted estimator.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Input of the wrapped estimator.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Log-probabilities, columns in the order of ``classes_``.
        """
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(X)

    @available_if(_wrapped_has("decision_function"))
    def decision_function(self, X):
        """Return the decision function of the fitted estimator.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Input of the wrapped estimator.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_classes)
            Confidence scores (one column for binary problems).
        """
        check_is_fitted(self)
        return self.estimator_.decision_function(X)

    @available_if(_wrapped_has("score"))
    def score(self, X, y=None, sample_weight=None):
        """Score the fitted estimator on ``X``, ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Input of the wrapped estimator.
        y : array-like of shape (n_samples,), default=None
            True targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights, passed on only when given.

        Returns
        -------
        float
            The wrapped estimator's ``score`` (accuracy for a classifier, R² for a regressor).
        """
        check_is_fitted(self)
        if sample_weight is not None:
            return self.estimator_.score(X, y, sample_weight=sample_weight)
        return self.estimator_.score(X, y)

    @available_if(_wrapped_has("get_feature_names_out"))
    def get_feature_names_out(self, input_features=None):
        """Return the output feature names of the fitted estimator.

        Parameters
        ----------
        input_features : array-like of str, default=None
            Input feature names, as scikit-learn's ``get_feature_names_out`` takes them.

        Returns
        -------
        ndarray of str
            The names of the output features.
        """
        check_is_fitted(self)
        return self.estimator_.get_feature_names_out(input_features)

    @property
    def classes_(self):
        """Class labels of the fitted classifier."""
        return self.estimator_.classes_

    def set_output(self, *, transform=None):
        """Set the output container of ``transform`` ("default", "pandas", "polars").

        Passed on to the wrapped estimator, as :meth:`sklearn.pipeline.Pipeline.set_output` does.

        Parameters
        ----------
        transform : {"default", "pandas", "polars"}, default=None
            The container; None leaves the configuration as it is.

        Returns
        -------
        PipelineStage
            This stage.
        """
        if transform is None:
            return self
        self._sklearn_output_config = {"transform": transform}
        if hasattr(self.estimator, "fit"):
            _safe_set_output(self.estimator, transform=transform)
        if "estimator_" in self.__dict__:
            _safe_set_output(self.estimator_, transform=transform)
        return self

    def __sklearn_is_fitted__(self):
        return "estimator_" in self.__dict__

    # -- displays: the description ml_toolbox.display draws (see ml_toolbox._describe) -------
    def _describe_row_(self, name):
        """This stage as one row of a display: what it wraps, fitted, features in and out."""
        fitted = is_fitted(self)
        n_out = None
        if fitted and hasattr(self, "get_feature_names_out"):
            try:
                n_out = len(self.get_feature_names_out())
            except Exception:  # noqa: BLE001 - cannot name its output without input names
                n_out = None
        return estimator_row(name, self.__dict__.get("estimator_", self.estimator), fitted,
                             self.__dict__.get("n_features_in_"), n_out)

    def _describe_(self):
        """The plain description of this stage its displays draw."""
        facts = []
        if self.retry is not None:
            facts.append(("retry", "off for this stage" if self.retry is False
                          else type(self.retry).__name__))
        if self.timeout is not None:
            facts.append(("timeout", format_seconds(self.timeout)))
        if self.depends_on:
            facts.append(("depends on", ", ".join(map(str, self.depends_on))))
        return description(f"PipelineStage {self.stage_name!r}", is_fitted(self),
                           [self._describe_row_(self.stage_name)], facts=facts)

    def __sklearn_tags__(self):
        est = self.estimator
        inner = est if hasattr(est, "fit") else FunctionTransformer()
        try:
            tags = copy.deepcopy(get_tags(inner))
        except (TypeError, ValueError, AttributeError):
            return super().__sklearn_tags__()
        return tags

    # -- the template method the execution loop calls ------------------------------------
    def run(self, X, y=None, mode="fit", **params):
        """Run the stage in one mode; the execution loop's only way into a stage.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Input of the wrapped estimator.
        y : array-like of shape (n_samples,), default=None
            Targets, for the fitting modes and ``"score"``.
        mode : str, default="fit"
            One of ``"fit"``, ``"fit_transform"``, ``"partial_fit"``,
            ``"partial_fit_transform"``, ``"transform"``, ``"predict"``, ``"predict_proba"``,
            ``"predict_log_proba"``, ``"decision_function"``, ``"score"``,
            ``"inverse_transform"``.
        **params : dict
            Passed to the fitting method (e.g. ``sample_weight``, ``classes``).

        Returns
        -------
        PipelineStage, ndarray, DataFrame or float
            ``"fit"`` and ``"partial_fit"`` return the stage itself; ``"score"`` a float;
            ``"partial_fit_transform"`` updates the stage with the batch and returns its
            transform; the others return the wrapped estimator's output.

        Raises
        ------
        NotFittedError
            An inference mode on a stage that is not fitted.
        ValueError
            An unknown ``mode``, with the list of known ones.
        """
        est = self.__dict__.get("estimator_")
        if est is not None and mode in _INFERENCE_MODES:  # the hot path: a fitted stage serving
            return getattr(est, mode)(X, **params) if params else getattr(est, mode)(X)
        if mode == "fit_transform":
            return self.fit_transform(X, y, **params)
        if mode == "fit":
            return self.fit(X, y, **params)
        if mode == "partial_fit":
            return self.partial_fit(X, y, **params)
        if mode == "partial_fit_transform":
            return self.partial_fit(X, y, **params).estimator_.transform(X)
        try:
            est = self.__dict__["estimator_"]
        except KeyError:
            raise NotFittedError(
                f"This PipelineStage {self.stage_name!r} is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator.") from None
        if mode == "score":
            return est.score(X, y, **params)
        if mode not in _METHODS:
            raise ValueError(f"PipelineStage {self.stage_name!r}: unknown mode {mode!r}; expected "
                             f"one of {['fit', 'fit_transform', 'partial_fit', *_METHODS]}.")
        return getattr(est, mode)(X, **params)
