"""``UnifiedMLPipeline``: features, training and inference behind one scikit-learn estimator."""

from __future__ import annotations

import contextlib
import copy

import numpy as np
from sklearn.base import BaseEstimator, is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.utils import Bunch, get_tags
from sklearn.utils.validation import check_is_fitted

from ._schema import InputSchema, check_y_length, shape_of
from .base import composite_input_tags, visual_block
from .exceptions import describe_owner
from .feature import FeaturePipeline
from .inference import InferencePipeline, available_if
from .stage import PipelineStage
from .toolbox import MLToolbox
from .training import MODEL_STAGE, TrainingPipeline, split_validation

__all__ = ["UnifiedMLPipeline"]

_PLUGIN_SLOTS = ("monitor", "debugger", "retry_handler", "enable_retry")
_TRAINING_PARAMS = ("model", "scoring", "epochs", "batch_size", "shuffle", "random_state",
                    "callbacks", "verbose")
_MODES = ("train", "fit", "predict", "predict_proba", "transform", "score")
_DEFAULT_TOOLBOX = MLToolbox()


def _copy_model_tags(tags, model):
    """Give a composite the estimator type and target tags of its model."""
    if isinstance(model, str) or not hasattr(model, "fit"):
        return tags
    try:
        model_tags = get_tags(model)
    except (TypeError, ValueError, AttributeError):
        return tags
    tags.estimator_type = model_tags.estimator_type
    tags.target_tags = copy.deepcopy(model_tags.target_tags)
    tags.classifier_tags = copy.deepcopy(model_tags.classifier_tags)
    tags.regressor_tags = copy.deepcopy(model_tags.regressor_tags)
    return tags


def _model_has(attr):
    """For ``available_if``: the (fitted, else given) model has ``attr``."""

    def check(self):
        d = self.__dict__
        if "input_schema_" in d:
            tp = d.get("_training_pipeline")
            if tp is not None:
                model = tp.__dict__.get("model_")
                if model is not None:  # fitted: the fitted model says (read directly: every call)
                    getattr(model, attr)
                    return True
        model = self.model
        if isinstance(model, PipelineStage):
            model = model.estimator
        if isinstance(model, str) and model == "passthrough":
            raise AttributeError(f"{describe_owner(self)} has no model (model='passthrough'), "
                                 f"so no {attr}.")
        if model is not None:
            getattr(model, attr)
        return True

    return check


class UnifiedMLPipeline(BaseEstimator):
    """Feature, training and inference pipelines behind one scikit-learn estimator.

    Use it the scikit-learn way -- ``fit`` / ``predict`` / ``transform`` / ``score``, inside
    ``GridSearchCV`` or ``cross_val_score`` -- or the seed's way, ``execute(X, y, mode=...)``.
    Plug-ins (a monitor, a retry handler, a debugger) given here are handed to its three
    pipelines; each of those can also carry its own (``pipe.feature_pipeline.monitor = ...``).
    The same stages give the same numbers as :class:`sklearn.pipeline.Pipeline`, bit for bit.

    Parameters
    ----------
    toolbox : MLToolbox, default=None
        Where defaults come from when ``features`` or ``model`` is None.
    features : list, FeaturePipeline, "passthrough" or None, default=None
        The feature stages: ``(name, estimator)`` pairs, PipelineStage objects, estimators or
        functions; None takes the toolbox's (one stage named ``"preprocessing"``).
    model : estimator, "passthrough" or None, default=None
        The model; None lets the toolbox choose by the kind of target at fit time;
        ``"passthrough"`` makes a features-only pipeline.
    monitor : PipelineMonitor, default=None
    retry : RetryHandler, default=None
    debugger : PipelineDebugger, default=None
    scoring : str, callable, list or dict, default=None
        Metrics reported in ``metrics_`` (see :class:`TrainingPipeline`).
    validation : float or (X_val, y_val), default=None
        Held-out data for ``validation_*`` metrics: a fraction split off the training data before
        anything is fitted, or explicit raw data.
    epochs, batch_size, shuffle, random_state, callbacks
        Epoch training over ``partial_fit`` (see the training guide); ``random_state`` also seeds
        the validation split.
    fast_inference : bool, default=True
        Serve predictions through the fast inference path where it applies.
    name : str, default="unified_pipeline"
    verbose : int, default=0
        With 1, fitting draws a progress bar (a step per stage; epochs get their own bar) when a
        person is watching -- a terminal or a notebook, not CI; 0 is silent.
    tracking : tracker, str or list, default=None
        Record every ``fit``, ``execute`` and ``partial_fit`` as a run: a
        :class:`~ml_toolbox.runs.RunStore` (or its directory), an ``MLflowTracker``, a
        ``TensorBoardTracker``, or a list of them (see the runs guide). A failing tracker never
        fails the fit.

    Attributes
    ----------
    input_schema_ : InputSchema
        Columns, dtypes and width seen at fit time; every later input is checked against it.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only for DataFrame input.
    metrics_ : dict
        The training metrics (empty unless ``scoring`` / ``validation`` or ``execute``).
    run_id_ : str
        Only with ``tracking``: the id of the run of the last successful fit.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.impute import SimpleImputer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ml_toolbox import UnifiedMLPipeline
    >>> X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    >>> pipe = UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("scale", StandardScaler())],
    ...                          model=LogisticRegression())
    >>> round(pipe.fit(X, y).score(X, y), 3)
    0.988
    >>> pipe.set_params(features__scale__with_mean=False).get_params()["features__scale__with_mean"]
    False
    """

    def __init__(self, toolbox=None, *, features=None, model=None, monitor=None, retry=None,
                 debugger=None, scoring=None, validation=None, epochs=None, batch_size=None,
                 shuffle=True, random_state=None, callbacks=None, fast_inference=True,
                 name="unified_pipeline", verbose=0, tracking=None):
        self.toolbox = toolbox
        self.features = features
        self.model = model
        self.monitor = monitor
        self.retry = retry
        self.debugger = debugger
        self.scoring = scoring
        self.validation = validation
        self.epochs = epochs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.random_state = random_state
        self.callbacks = callbacks
        self.fast_inference = fast_inference
        self.name = name
        self.verbose = verbose
        self.tracking = tracking

    @property
    def owner(self):
        """How error messages name this pipeline."""
        return describe_owner(self)

    # -- the three pipelines ----------------------------------------------------------------
    def _toolbox(self):
        return self.toolbox if self.toolbox is not None else _DEFAULT_TOOLBOX

    def _feature_steps(self):
        features = self.features
        if features is None:
            cached = self.__dict__.get("_default_features")
            if cached is None or cached[0] is not self._toolbox():
                cached = (self._toolbox(), self._toolbox().default_features())
                self.__dict__["_default_features"] = cached
            return cached[1]
        if isinstance(features, str) and features == "passthrough":
            return []
        if isinstance(features, (list, tuple)):
            return features
        return [features]  # a single estimator, function or PipelineStage

    def _holder(self, attr, factory):
        obj = self.__dict__.get(attr)
        if obj is None:
            obj = self.__dict__[attr] = factory()
        return obj

    @property
    def feature_pipeline(self):
        """The :class:`FeaturePipeline` (attach plug-ins to it; fitted along with this pipeline)."""
        if isinstance(self.features, FeaturePipeline):
            return self.features
        fp = self._holder("_feature_pipeline", FeaturePipeline)
        steps = self._feature_steps()
        if fp.steps is not steps:
            fp.steps = steps
        return fp

    @property
    def training_pipeline(self):
        """The :class:`TrainingPipeline` (attach plug-ins to it; fitted along with this pipeline)."""
        tp = self._holder("_training_pipeline", TrainingPipeline)
        for param in _TRAINING_PARAMS:
            value = getattr(self, param)
            if param == "model" and isinstance(value, str):
                value = None
            if getattr(tp, param) is not value:
                setattr(tp, param, value)
        return tp

    @property
    def inference_pipeline(self):
        """The :class:`InferencePipeline` that serves ``predict`` (built by ``fit``)."""
        ip = self._holder("_inference_pipeline", InferencePipeline)
        if ip.fast is not self.fast_inference:
            ip.fast = self.fast_inference
        return ip

    def _stage_progress(self):
        """The progress plug-in for ``verbose`` fits, when a person is watching (else None)."""
        from .progress import StageProgress, is_watching

        if not is_watching(self.verbose):
            return None
        plugin = self.__dict__.get("_progress_plugin")
        if plugin is None:
            plugin = self.__dict__["_progress_plugin"] = StageProgress()
        return plugin

    def __sklearn_clone__(self):
        new = super().__sklearn_clone__()
        # Plug-ins attached to the inner pipelines follow the clone (GridSearchCV reports into
        # the user's monitor, not into hidden copies).
        for attr in ("_feature_pipeline", "_training_pipeline", "_inference_pipeline"):
            old = self.__dict__.get(attr)
            if old is not None and any(getattr(old, s) is not None for s in _PLUGIN_SLOTS[:3]):
                holder = getattr(new, attr[1:])
                for slot in _PLUGIN_SLOTS:
                    setattr(holder, slot, getattr(old, slot))
        return new

    # -- parameters -------------------------------------------------------------------------
    def get_params(self, deep=True):
        """Parameters; with ``deep``, feature stages as ``features__<stage>__<param>``."""
        out = super().get_params(deep=deep)
        if deep and isinstance(self.features, (list, tuple)):
            view = FeaturePipeline(steps=self.features)
            own = set(FeaturePipeline._get_param_names())
            for key, value in view.get_params(deep=True).items():
                if key not in own:
                    out[f"features__{key}"] = value
        return out

    def set_params(self, **params):
        """Set parameters, including ``features__<stage>__<param>`` and ``model__<param>``."""
        if "features" in params:
            self.features = params.pop("features")
        nested = {key[len("features__"):]: params.pop(key) for key in list(params)
                  if key.startswith("features__")}
        if nested:
            if isinstance(self.features, (list, tuple)):
                view = FeaturePipeline(steps=list(self.features), name=f"{self.name}.features")
                view.set_params(**nested)
                self.features = view.steps
            else:
                params.update({f"features__{k}": v for k, v in nested.items()})
        if self.model is None and any(key.startswith("model__") for key in params):
            raise ValueError(
                f"{self.owner}: cannot set {sorted(k for k in params if k.startswith('model__'))}"
                ": model is None (the toolbox chooses the model at fit time); pass "
                "model=<an estimator> first.")
        if params:
            super().set_params(**params)
        return self

    # -- fitting ----------------------------------------------------------------------------
    def _resolve_model(self, y):
        model = self.model
        if isinstance(model, str) and model == "passthrough":
            return None
        if model is None:
            return self._toolbox().default_model(y)
        return model

    def _fit_states(self, X, y, fit_params, compute_metrics):
        """Fit everything into new state objects; ``self`` is untouched until ``_commit``."""
        owner = self.owner
        schema = InputSchema.from_data(X, owner)
        check_y_length(shape_of(X), y, owner)
        fp, tp = self.feature_pipeline, self.training_pipeline
        model = self._resolve_model(y)
        if self.epochs is not None and model is not None:
            from .lifecycle import check_epoch_model  # before any work: no feature stage fitted

            check_epoch_model(self, model, self.epochs)
        X_val = y_val = None
        validation = self.validation
        if validation is not None and model is not None:
            if isinstance(validation, (tuple, list)) and len(validation) == 2:
                validation = (schema.check(validation[0], owner), validation[1])
            X, y, fit_params, X_val, y_val = split_validation(
                owner, validation, X, y, fit_params, is_classifier(model), self.random_state)
        fp_state, Xt = fp._fit_state(X, y, parent=self)
        tp_state = None
        if model is not None:
            validation_data = None
            if X_val is not None:
                Xt_val = fp._transform(X_val, parent=self, stages=fp_state["stages_"],
                                       names=fp_state["stage_names_"])
                validation_data = (Xt_val, y_val)
            tp_state = tp._fit_state(Xt, y, parent=self, model=model,
                                     compute_metrics=compute_metrics or X_val is not None,
                                     validation_data=validation_data, **fit_params)
        return schema, fp_state, tp_state, Xt

    def _commit(self, schema, fp_state, tp_state):
        fp, tp, ip = self.feature_pipeline, self.training_pipeline, self.inference_pipeline
        fp._commit(fp_state, schema)
        if tp_state is not None:
            tp._commit(tp_state)
        ip._commit(InferencePipeline._state_from(fp._inference_state(fp_state), tp_state, schema))
        self.__dict__.pop("feature_names_in_", None)
        self.input_schema_ = schema
        self.n_features_in_ = schema.n_features
        if schema.columns is not None:
            self.feature_names_in_ = np.asarray(schema.columns, dtype=object)
        self.metrics_ = dict(tp_state.get("metrics_", {})) if tp_state is not None else {}

    def fit(self, X, y=None, **fit_params):
        """Fit the feature stages, then the model on their output. Returns self.

        ``fit_params`` (e.g. ``sample_weight``) go to the model's ``fit``. A failed fit leaves
        a previously fitted pipeline exactly as it was.
        """
        with self._tracked("fit", X, y):
            schema, fp_state, tp_state, _ = self._fit_states(X, y, fit_params, False)
            self._commit(schema, fp_state, tp_state)
        return self

    def fit_transform(self, X, y=None, **fit_params):
        """Fit, and return the features of ``X`` computed while fitting."""
        with self._tracked("fit", X, y):
            schema, fp_state, tp_state, Xt = self._fit_states(X, y, fit_params, False)
            self._commit(schema, fp_state, tp_state)
        return Xt

    @available_if(_model_has("partial_fit"))
    def partial_fit(self, X, y=None, classes=None, **params):
        """Update the pipeline with one batch.

        Feature stages that have ``partial_fit`` are updated with the batch; the others must
        already be fitted (by an earlier ``fit``) and only transform it. Then the model's
        ``partial_fit`` runs (``classes`` is passed on, as classifiers need on the first call).
        Nothing changes unless the whole update succeeds.
        """
        with self._tracked("partial_fit", X, y):
            return self._partial_fit(X, y, classes, **params)

    def _partial_fit(self, X, y, classes, **params):
        owner = self.owner
        fitted = "input_schema_" in self.__dict__
        if fitted:
            schema = self.input_schema_
            X = schema.check(X, owner)
        else:
            schema = InputSchema.from_data(X, owner)
        check_y_length(shape_of(X), y, owner)
        fp, tp = self.feature_pipeline, self.training_pipeline
        if fitted:
            names = list(fp.stage_names_)
            stages = [copy.deepcopy(s) if hasattr(s.estimator_, "partial_fit") else s
                      for s in fp.stages_]
        else:
            names, templates = fp._templates()
            stages = [copy.deepcopy(t) for t in templates]
        if any(s.depends_on is not None for s in stages):
            raise ValueError(f"{owner}: partial_fit does not support graph feature pipelines "
                             "(stages with depends_on); use fit.")
        modes = []
        for name, stage in zip(names, stages):
            est = stage.__dict__.get("estimator_")
            if hasattr(est if est is not None else stage.estimator, "partial_fit"):
                modes.append("partial_fit_transform")
            elif est is not None:
                modes.append("transform")
            else:
                raise ValueError(
                    f"{owner}: stage {name!r} ({type(stage.estimator).__name__}) has no "
                    "partial_fit and is not fitted yet; fit the pipeline once with fit(), or use "
                    "feature stages that support partial_fit.")
        Xt = X
        if stages:
            Xt, stages = fp._run_stages(stages, X, y, modes, fitting=False, names=names,
                                        parent=self, run_mode="partial_fit")
        if fitted and "stage_" in tp.__dict__:
            model_stage = copy.deepcopy(tp.stage_)
        else:
            model = self._resolve_model(y)
            model_stage = copy.deepcopy(tp._template(model))
        if not hasattr(model_stage.estimator, "partial_fit"):
            raise ValueError(f"{owner}: the model {type(model_stage.estimator).__name__} has no "
                             "partial_fit, so the pipeline cannot be updated batch by batch.")
        model_params = dict(params)
        if classes is not None:
            model_params["classes"] = classes
        tp._run_stages([model_stage], Xt, y, ["partial_fit"], fitting=False,
                       names=[MODEL_STAGE], parent=self, params=model_params,
                       run_mode="partial_fit")
        self._commit(schema, {"stages_": stages, "stage_names_": names},
                     {"stage_": model_stage, "metrics_": {}})
        return self

    def _tracked(self, kind, X, y):
        """The run around a fit when ``tracking`` is set (see :mod:`ml_toolbox.runs`), else
        nothing; sets ``run_id_`` once the fit succeeded."""
        if self.tracking is None:
            return contextlib.nullcontext()
        from .runs._active import tracked_fit

        return tracked_fit(self, kind, X, y)

    # -- using ------------------------------------------------------------------------------
    def _require_fitted(self):
        if "input_schema_" not in self.__dict__:
            raise NotFittedError(
                f"This {self.owner} is not fitted yet. Call 'fit' with appropriate arguments "
                "before using this estimator.")

    def __sklearn_is_fitted__(self):
        return "input_schema_" in self.__dict__

    # -- displays (ml_toolbox.display) --------------------------------------------------------
    def _html_repr(self):
        """The notebook display: scikit-learn's diagram, then fitted state and last-run timings."""
        from .display import pipeline_html

        return pipeline_html(self)

    def __rich__(self):
        """The terminal display (rich): fitted state, features, metrics and last-run timings."""
        from .display import pipeline_rich

        return pipeline_rich(self)

    def _serve(self, X, method, y=None, params=None):
        """The inference path: one input check, then the inference pipeline's stages."""
        d = self.__dict__
        schema = d.get("input_schema_")
        if schema is None:
            self._require_fitted()
        X = schema.check(X, self)
        ip = d.get("_inference_pipeline")
        if ip is None or ip.fast is not self.fast_inference:
            ip = self.inference_pipeline
        return ip._run(X, method, self, y, params, True)

    @available_if(_model_has("predict"))
    def predict(self, X):
        """Predictions for ``X`` (checked against the fit-time schema first)."""
        return self._serve(X, "predict")

    @available_if(_model_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities for ``X``."""
        return self._serve(X, "predict_proba")

    @available_if(_model_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """Class log-probabilities for ``X``."""
        return self._serve(X, "predict_log_proba")

    @available_if(_model_has("decision_function"))
    def decision_function(self, X):
        """Decision function for ``X``."""
        return self._serve(X, "decision_function")

    @available_if(_model_has("score"))
    def score(self, X, y=None, sample_weight=None):
        """The model's score on the features of ``X`` (accuracy, R^2... as the model defines)."""
        params = {"sample_weight": sample_weight} if sample_weight is not None else None
        return self._serve(X, "score", y=y, params=params)

    def transform(self, X):
        """The features of ``X``: the fitted feature stages' output."""
        self._require_fitted()
        X = self.input_schema_.check(X, self.owner)
        return self.feature_pipeline._transform(X, parent=self)

    def get_feature_names_out(self, input_features=None):
        """Names of the features the feature stages produce."""
        check_is_fitted(self)
        return self.feature_pipeline.get_feature_names_out(input_features)

    def set_output(self, *, transform=None):
        """Set the output container of the feature stages ("default", "pandas", "polars")."""
        self.feature_pipeline.set_output(transform=transform)
        return self

    @property
    def classes_(self):
        """Class labels of the fitted model."""
        self._require_fitted()
        return self.training_pipeline.model_.classes_

    # -- the seed's way ---------------------------------------------------------------------
    def execute(self, X, y=None, mode="train"):
        """Run the pipeline in one mode and return a :class:`~sklearn.utils.Bunch` of results.

        Parameters
        ----------
        X, y : data
        mode : {"train", "predict", "predict_proba", "transform", "score"}, default="train"
            ``"train"`` (or ``"fit"``) fits and returns ``model`` (the fitted model), ``metrics``
            (training metrics, and validation metrics when ``validation`` is set) and
            ``pipeline``; ``"predict"`` returns ``predictions``; ``"predict_proba"``
            ``probabilities``; ``"transform"`` ``features``; ``"score"`` ``score``.

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from ml_toolbox import MLToolbox, UnifiedMLPipeline
        >>> X, y = load_iris(return_X_y=True, as_frame=True)
        >>> result = UnifiedMLPipeline(MLToolbox()).execute(X, y, mode="train")
        >>> type(result["model"]).__name__, sorted(result["metrics"])
        ('LogisticRegression', ['train_score'])
        """
        if mode in ("train", "fit"):
            with self._tracked("execute", X, y):
                schema, fp_state, tp_state, _ = self._fit_states(X, y, {}, True)
                self._commit(schema, fp_state, tp_state)
            model = self.training_pipeline.model_ if tp_state is not None else None
            return Bunch(model=model, metrics=dict(self.metrics_), pipeline=self)
        if mode == "predict":
            return Bunch(predictions=self.predict(X))
        if mode == "predict_proba":
            return Bunch(probabilities=self.predict_proba(X))
        if mode == "transform":
            return Bunch(features=self.transform(X))
        if mode == "score":
            return Bunch(score=self.score(X, y))
        raise ValueError(f"{self.owner}: unknown mode {mode!r}; expected one of {list(_MODES)}.")

    # -- config and dry run (see ml_toolbox.config) -----------------------------------------
    @classmethod
    def from_config(cls, config, toolbox=None):
        """A pipeline from a config: a dict or the path of a JSON file, validated first.

        Every problem (unknown component or parameter, wrong type, bad graph...) is reported
        at once in a :class:`~ml_toolbox.config.ConfigError`, before anything is fitted.
        See :mod:`ml_toolbox.config` for the format.

        Examples
        --------
        >>> pipe = UnifiedMLPipeline.from_config({
        ...     "features": [{"name": "scale", "component": "StandardScaler"}],
        ...     "model": {"component": "Ridge", "params": {"alpha": 2.0}}})
        >>> pipe.to_config()["model"]
        {'component': 'Ridge', 'params': {'alpha': 2.0}}
        """
        from .config import from_config

        return from_config(config, toolbox=toolbox)

    def to_config(self, path=None):
        """This pipeline's config (a JSON-able dict); also written to ``path`` when given.

        ``UnifiedMLPipeline.from_config(p.to_config())`` has the same parameters as ``p``.
        """
        from .config import to_config

        config = to_config(self)
        if path is not None:
            import json

            with open(path, "w", encoding="utf-8") as f:
                json.dump(config, f, indent=2)
        return config

    def validate(self, X_sample, y_sample=None, *, n_rows=200):
        """Dry run: fit a copy on the first ``n_rows`` rows and predict them.

        Catches shape and type errors in seconds, before a long fit; this pipeline is not
        changed. Returns a :class:`~sklearn.utils.Bunch` (``n_rows``, ``duration``,
        ``features_shape``, ``output_shape``, ``stages``); raises
        :class:`~ml_toolbox.config.DryRunError` naming the stage that failed.
        """
        from .config import dry_run

        return dry_run(self, X_sample, y_sample, n_rows=n_rows)

    # -- persistence ------------------------------------------------------------------------
    @property
    def state(self):
        """What the versioned store keeps of this pipeline (the seed's ``pipeline.state``).

        A dict: ``pipeline`` (this object), ``params`` (``get_params(deep=False)``), ``fitted``,
        ``schema`` (the input schema as a dict, or None) and ``metrics``.
        """
        fitted = "input_schema_" in self.__dict__
        return {"pipeline": self, "params": self.get_params(deep=False), "fitted": fitted,
                "schema": self.input_schema_.to_dict() if fitted else None,
                "metrics": dict(self.__dict__.get("metrics_", {}))}

    def save(self, store, name, *, metrics=None, tags=None, message=None, **options):
        """Save this pipeline as a new version in a versioned store; returns the version number.

        ``store`` is a :class:`PipelinePersistence` or a directory path; ``options`` go to
        :meth:`PipelinePersistence.save` (``format="skops"``, ``compress``, ``parent``).
        """
        from .persistence import PipelinePersistence

        store = PipelinePersistence.from_location(store)
        run_id = self.__dict__.get("run_id_")
        if run_id is not None and "run_id" not in options:
            options["run_id"] = run_id
        version = store.save(self, name, metrics=metrics, tags=tags, message=message, **options)
        if run_id is not None and self.tracking is not None:
            from .runs._active import link_saved_version

            link_saved_version(self, run_id, store, name, version)
        return version

    @classmethod
    def load(cls, store, name, version=None, **options):
        """Load a saved pipeline: the latest version, a version number, or an alias name.

        ``options`` go to :meth:`PipelinePersistence.load` (``mmap_mode``, ``trusted``,
        ``verify``).
        """
        from .persistence import PipelinePersistence

        obj = PipelinePersistence.from_location(store).load(name, version=version, **options)
        if not isinstance(obj, cls):
            raise TypeError(f"{name!r} version {version!r} in the store is a "
                            f"{type(obj).__name__}, not a {cls.__name__}.")
        return obj

    def _sk_visual_block_(self):
        """The notebook diagram: feature stages, then the model."""
        names, stages = self.feature_pipeline._current()
        names, stages = list(names), list(stages)
        model = self.model
        tp = self.__dict__.get("_training_pipeline")
        if tp is not None and "stage_" in tp.__dict__ and "input_schema_" in self.__dict__:
            model = tp.model_
        if model is not None and not isinstance(model, str):
            names.append(MODEL_STAGE)
            stages.append(model)
        return visual_block(names, stages)

    # -- scikit-learn tags ------------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        model = self.model.estimator if isinstance(self.model, PipelineStage) else self.model
        if model is not None and not isinstance(model, str):
            _copy_model_tags(tags, model)
        # transform() (the features) is always there, so it is a transformer too.
        from sklearn.utils._tags import TransformerTags

        tags.transformer_tags = TransformerTags()
        steps = self._feature_steps() if not isinstance(self.features, FeaturePipeline) \
            else (self.features.steps or [])
        parts = [s[1] if isinstance(s, tuple) else s for s in steps]
        if model is not None and not isinstance(model, str):
            parts.append(model)
        composite_input_tags(tags, parts)
        return tags
