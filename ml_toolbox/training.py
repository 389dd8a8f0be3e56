"""``TrainingPipeline``: features and y in, a fitted model and its metrics out."""

from __future__ import annotations

from sklearn.base import clone, is_classifier
from sklearn.metrics import check_scoring, get_scorer_names
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ._schema import InputSchema, check_y_length, shape_of
from ._split import _split_params, _take, split_validation
from .base import BasePipeline, _copy_model_tags, close_match_hint
from .lifecycle import check_epoch_model, fit_epochs
from .stage import PipelineStage

__all__ = ["TrainingPipeline", "MODEL_STAGE"]

MODEL_STAGE = "model"


def _model_has(attr):
    def check(self):
        stage = self.__dict__.get("stage_")
        model = stage.estimator_ if stage is not None else self.model
        if model is None:
            return True  # unknown until fit
        if isinstance(model, PipelineStage):
            model = model.estimator
        getattr(model, attr)
        return True

    return check


class TrainingPipeline(BasePipeline):
    """The model stage: ``(features, y) -> fitted model`` and its metrics.

    Parameters
    ----------
    model : estimator or PipelineStage, default=None
        The model. Required by ``fit`` (a :class:`UnifiedMLPipeline` chooses one from its
        toolbox when you give none).
    name : str, default="training_pipeline"
        Name used by plug-ins and error messages.
    scoring : str, callable, list or dict, default=None
        What ``metrics_`` reports: scikit-learn scorer names (``"accuracy"``, ``"r2"``...),
        scorer callables ``f(estimator, X, y)``, or several of them. None uses the model's own
        ``score``. Metrics are computed only when ``scoring`` or ``validation`` is given (or by
        :meth:`UnifiedMLPipeline.execute`), so a plain ``fit`` costs what the model costs.
    validation : float or (X_val, y_val), default=None
        Held-out data for ``validation_*`` metrics: a fraction of the training data split off
        before fitting (stratified for classifiers, with ``random_state``), or explicit data.
    epochs : int, default=None
        Train over this many epochs of mini-batch ``partial_fit`` calls (see
        :mod:`ml_toolbox.lifecycle`); None fits the model once with ``fit``.
    batch_size : int, default=None
        Rows per ``partial_fit`` call in an epoch; None uses the whole training set.
    shuffle : bool, default=True
        Shuffle the rows before each epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffling and the ``validation`` split.
    callbacks : list of Callback, default=None
        Called at the start and end of the run and of each epoch (e.g. :class:`EarlyStopping`).
    verbose : int, default=0
        With 1, an epoch run draws a progress bar when a person is watching; 0 is silent.
    monitor : PipelineMonitor, default=None
        Records every stage run (time, rows, bytes, errors, warnings, retries).
    debugger : PipelineDebugger, default=None
        Breakpoints, traces, snapshots and post-mortems of stage runs.
    retry_handler : RetryHandler, default=None
        How a failing stage run is re-attempted.
    enable_retry : bool, default=True
        Whether ``retry_handler`` (or the one handed down by a UnifiedMLPipeline) applies.

    Attributes
    ----------
    stage_ : PipelineStage
        The fitted model stage (named ``"model"``).
    model_ : estimator
        The fitted model itself.
    metrics_ : dict
        ``train_<score>`` and ``validation_<score>`` values (empty when none were asked for).
    n_features_in_ : int
        Number of features seen during ``fit``.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ml_toolbox import TrainingPipeline
    >>> X, y = load_iris(return_X_y=True)
    >>> tp = TrainingPipeline(LogisticRegression(max_iter=1000), scoring="accuracy").fit(X, y)
    >>> sorted(tp.metrics_)
    ['train_accuracy']
    """

    def __init__(self, model=None, *, name="training_pipeline", scoring=None, validation=None,
                 epochs=None, batch_size=None, shuffle=True, random_state=None, callbacks=None,
                 verbose=0, monitor=None, debugger=None, retry_handler=None, enable_retry=True):
        self.model = model
        self.name = name
        self.scoring = scoring
        self.validation = validation
        self.epochs = epochs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.random_state = random_state
        self.callbacks = callbacks
        self.verbose = verbose
        self.monitor = monitor
        self.debugger = debugger
        self.retry_handler = retry_handler
        self.enable_retry = enable_retry

    # -- definition -------------------------------------------------------------------------
    def _template(self, model=None):
        model = self.model if model is None else model
        if model is None:
            raise ValueError(f"{self.owner}: no model to train; pass model=<a scikit-learn "
                             "estimator>.")
        if isinstance(model, PipelineStage):
            return model
        if not hasattr(model, "fit"):
            raise TypeError(f"{self.owner}: model must be a scikit-learn estimator (an object "
                            f"with a fit method), got {type(model).__name__}: {model!r}.")
        return PipelineStage(model, name=MODEL_STAGE)

    def scorers(self, estimator):
        """Build the scorers ``scoring`` asks for, validated.

        Parameters
        ----------
        estimator : estimator
            The model the scorers will score (None ``scoring`` uses its own ``score``).

        Returns
        -------
        dict of str to callable
            ``{name: scorer}``; a scorer is called as ``scorer(estimator, X, y)``.

        Raises
        ------
        TypeError
            ``scoring`` is not a name, a callable, a list or a dict of them.
        ValueError
            A name scikit-learn does not know (the message lists close matches).
        """
        scoring = self.scoring
        if scoring is None:
            return {"score": check_scoring(estimator)}
        if isinstance(scoring, str) or callable(scoring):
            items = {(scoring if isinstance(scoring, str)
                      else getattr(scoring, "__name__", "score")): scoring}
        elif isinstance(scoring, dict):
            items = dict(scoring)
        elif isinstance(scoring, (list, tuple, set)):
            items = {(s if isinstance(s, str) else getattr(s, "__name__", f"score{i}")): s
                     for i, s in enumerate(scoring)}
        else:
            raise TypeError(f"{self.owner}: scoring must be a scorer name, a callable, a list or a "
                            f"dict of them, got {type(scoring).__name__}: {scoring!r}.")
        out = {}
        for key, value in items.items():
            if isinstance(value, str) and value not in get_scorer_names():
                raise ValueError(
                    f"{self.owner}: scoring {value!r} is not a scikit-learn scorer name."
                    f"{close_match_hint(value, get_scorer_names())} See "
                    "sklearn.metrics.get_scorer_names() for the valid names.")
            out[key] = check_scoring(estimator, scoring=value)
        return out

    def compute_metrics(self, fitted_model, X, y, X_val=None, y_val=None, scorers=None):
        """Score a fitted model on the training data and, when given, the validation data.

        Parameters
        ----------
        fitted_model : estimator
            The fitted model.
        X : array-like of shape (n_samples, n_features)
            Training features.
        y : array-like of shape (n_samples,)
            Training targets.
        X_val : array-like of shape (n_val_samples, n_features), default=None
            Validation features; None scores the training data only.
        y_val : array-like of shape (n_val_samples,), default=None
            Validation targets.
        scorers : dict of str to callable, default=None
            As :meth:`scorers` returns them; None builds them from ``scoring``.

        Returns
        -------
        dict of str to float
            ``{"train_<name>": ..., "validation_<name>": ...}``.
        """
        scorers = self.scorers(fitted_model) if scorers is None else scorers
        metrics = {}
        for prefix, (Xs, ys) in (("train", (X, y)), ("validation", (X_val, y_val))):
            if Xs is None or ys is None:
                continue
            for key, scorer in scorers.items():
                metrics[f"{prefix}_{key}"] = float(scorer(fitted_model, Xs, ys))
        return metrics

    # -- fitting ----------------------------------------------------------------------------
    def _fit_state(self, X, y, parent=None, model=None, compute_metrics=False,
                   validation_data=None, **fit_params):
        """Fit a clone of the model stage; return the fitted state without changing ``self``.

        ``validation_data`` (already in feature space) overrides the ``validation`` parameter;
        the UnifiedMLPipeline uses it after running its own features.
        """
        template = self._template(model)
        if self.epochs is not None:
            check_epoch_model(self, template.estimator, self.epochs)
        want_metrics = compute_metrics or self.scoring is not None or self.validation is not None
        scorers = self.scorers(template.estimator) if want_metrics else None
        if validation_data is not None:
            X_tr, y_tr, (X_val, y_val) = X, y, validation_data
        else:
            X_tr, y_tr, fit_params, X_val, y_val = split_validation(
                self.owner, self.validation, X, y, fit_params, is_classifier(template.estimator),
                self.random_state)
        if self.epochs is not None:
            return fit_epochs(self, clone(template), X_tr, y_tr, parent=parent,
                              validation_data=(X_val, y_val) if X_val is not None else None,
                              **fit_params)
        _, ran = self._run_stages([template], X_tr, y_tr, ["fit"], fitting=True,
                                  names=[MODEL_STAGE], parent=parent, params=fit_params,
                                  run_mode="fit")
        stage = ran[0]
        metrics = {}
        if want_metrics:
            metrics = self.compute_metrics(stage.estimator_, X_tr, y_tr, X_val, y_val, scorers)
        return {"stage_": stage, "metrics_": metrics}

    def _commit(self, state, schema=None):
        self.__dict__.pop("feature_names_in_", None)
        self.__dict__.update(state)
        stage = state["stage_"]
        self.model_ = stage.estimator_
        if schema is not None:
            self.input_schema_ = schema
        if hasattr(stage, "n_features_in_"):
            self.n_features_in_ = stage.n_features_in_
        if hasattr(stage, "feature_names_in_"):
            self.feature_names_in_ = stage.feature_names_in_

    def fit(self, X, y=None, **fit_params):
        """Fit the model (a clone of it) on ``X``, ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Features.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), default=None
            Targets.
        **fit_params : dict
            Passed to the model's ``fit`` (or each ``partial_fit`` with ``epochs``), e.g.
            ``sample_weight``.

        Returns
        -------
        TrainingPipeline
            This pipeline; the fitted model is ``model_``, the metrics ``metrics_``.
        """
        schema = InputSchema.from_data(X, self.owner)
        check_y_length(shape_of(X), y, self.owner)
        state = self._fit_state(X, y, **fit_params)
        self._commit(state, schema)
        return self

    def _describe_stages(self):
        """The model stage (fitted, or the one ``model`` defines), for the displays."""
        stage = self.__dict__.get("stage_")
        if stage is None:
            try:
                stage = self._template()
            except (TypeError, ValueError):
                return [], []
        return [MODEL_STAGE], [stage]

    def __sklearn_is_fitted__(self):
        return "stage_" in self.__dict__

    # -- using ------------------------------------------------------------------------------
    def _predict(self, X, method, parent=None, y=None, params=None):
        out, _ = self._run_stages([self.stage_], X, y, [method], fitting=False,
                                  names=[MODEL_STAGE], parent=parent, params=params)
        return out

    def _checked(self, X):
        check_is_fitted(self)
        schema = self.__dict__.get("input_schema_")
        return schema.check(X, self.owner) if schema is not None else X

    @available_if(_model_has("predict"))
    def predict(self, X):
        """Predict with the fitted model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Features, checked against what the model saw at fit time.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predictions.
        """
        return self._predict(self._checked(X), "predict")

    @available_if(_model_has("predict_proba"))
    def predict_proba(self, X):
        """Return the class probabilities of the fitted model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Features, checked against what the model saw at fit time.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Probabilities, columns in the order of ``classes_``.
        """
        return self._predict(self._checked(X), "predict_proba")

    @available_if(_model_has("decision_function"))
    def decision_function(self, X):
        """Return the decision function of the fitted model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Features, checked against what the model saw at fit time.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_classes)
            Confidence scores (one column for binary problems).
        """
        return self._predict(self._checked(X), "decision_function")

    @available_if(_model_has("score"))
    def score(self, X, y=None, sample_weight=None):
        """Score the fitted model on ``X``, ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Features, checked against what the model saw at fit time.
        y : array-like of shape (n_samples,), default=None
            True targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights, passed on only when given.

        Returns
        -------
        float
            The model's ``score`` (accuracy for a classifier, R² for a regressor).
        """
        params = {"sample_weight": sample_weight} if sample_weight is not None else None
        return self._predict(self._checked(X), "score", y=y, params=params)

    @property
    def classes_(self):
        """Class labels of the fitted classifier."""
        check_is_fitted(self)
        return self.model_.classes_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        model = self.model.estimator if isinstance(self.model, PipelineStage) else self.model
        if model is not None:
            _copy_model_tags(tags, model)
        return tags

