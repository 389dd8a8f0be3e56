"""``UnifiedMLPipeline``: features, training and inference behind one scikit-learn estimator."""

from __future__ import annotations

import contextlib
import copy

import numpy as np
from sklearn.base import BaseEstimator, is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted

from ._describe import (NO_MONITOR_HINT, Batches, HTMLReprMixin, description, estimator_row,
                        is_fit, is_fitted, last_run, monitor_history, plugins_fact, schema_fact,
                        stage_row)
from ._schema import InputSchema, check_y_length, shape_of
from .base import (_copy_model_tags, _param_names, _super_params, composite_input_tags,
                   visual_block)
from .config import dry_run, from_config, to_config
from .exceptions import InputSchemaError, describe_owner, name_parent, note_step
from .feature import FeaturePipeline
from .inference import InferencePipeline, available_if
from .lifecycle import check_epoch_model
from .pipeline import Pipeline
from . import progress
from .stage import PipelineStage
from .toolbox import MLToolbox, task_of
from .training import MODEL_STAGE, TrainingPipeline, split_validation

__all__ = ["UnifiedMLPipeline"]

_PLUGIN_SLOTS = ("monitor", "debugger", "retry_handler", "enable_retry")
_TRAINING_PARAMS = ("model", "scoring", "epochs", "batch_size", "shuffle", "random_state",
                    "callbacks", "verbose")
_MODES = ("train", "fit", "predict", "predict_proba", "transform", "score")
_DEFAULT_TOOLBOX = MLToolbox()


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


class UnifiedMLPipeline(HTMLReprMixin, BaseEstimator):
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
        Records every stage run of the three pipelines (time, rows, bytes, errors, retries).
    retry : RetryHandler, default=None
        How a failing stage run is re-attempted.
    debugger : PipelineDebugger, default=None
        Breakpoints, traces, snapshots and post-mortems of stage runs.
    scoring : str, callable, list or dict, default=None
        Metrics reported in ``metrics_`` (see :class:`TrainingPipeline`).
    validation : float or (X_val, y_val), default=None
        Held-out data for ``validation_*`` metrics: a fraction split off the training data before
        anything is fitted, or explicit raw data.
    epochs : int, default=None
        Train the model over this many epochs of mini-batch ``partial_fit`` calls (see the
        training guide); None fits it once with ``fit``.
    batch_size : int, default=None
        Rows per ``partial_fit`` call in an epoch; None uses the whole training set.
    shuffle : bool, default=True
        Shuffle the rows before each epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffling and the ``validation`` split.
    callbacks : list of Callback, default=None
        Called at the start and end of the run and of each epoch (e.g. :class:`EarlyStopping`).
    fast_inference : bool, default=True
        Serve predictions through the fast inference path where it applies.
    extra_columns : {"error", "ignore"}, default="error"
        What a DataFrame given after fit may do with columns not seen at fit time (an ID column
        in a serving frame): be refused, or be dropped. Missing, duplicated or retyped columns
        are refused either way.
    name : str, default="unified_pipeline"
        Name used by plug-ins, runs and error messages.
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
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of str
        Only for DataFrame input.
    metrics_ : dict
        The training metrics (empty unless ``scoring`` / ``validation`` or ``execute``).
    task_ : {"classification", "regression"} or None
        The kind of model: as the toolbox chose it from the target (see
        :func:`ml_toolbox.toolbox.infer_task`), or what the model given is.
    task_reason_ : str or None
        Why: e.g. ``"whole numbers with 214 distinct values in 442 rows (more than 20):
        regression"``.
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
                 extra_columns="error", name="unified_pipeline", verbose=0, tracking=None):
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
        self.extra_columns = extra_columns
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
        if not progress.is_watching(self.verbose):
            return None
        plugin = self.__dict__.get("_progress_plugin")
        if plugin is None:
            plugin = self.__dict__["_progress_plugin"] = progress.StageProgress()
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

    # -- the whole chain, as scikit-learn's Pipeline shows it --------------------------------
    @property
    def steps(self):
        """``[(name, estimator), ...]``: the feature stages, then ``("model", model)``.

        The fitted estimators once fitted, else the estimators given (a model still to be chosen
        by the toolbox, ``model=None``, is not listed until fit). Read-only: the parameters are
        ``features`` and ``model``.
        """
        fitted = "input_schema_" in self.__dict__
        fp = self.feature_pipeline
        if fitted and "stages_" in fp.__dict__:
            names, stages = fp.stage_names_, fp.stages_
        else:
            names, stages = fp._templates()
        out = [(name, stage.__dict__.get("estimator_", stage.estimator) if fitted
                else stage.estimator) for name, stage in zip(names, stages)]
        tp = self.__dict__.get("_training_pipeline")
        if fitted and tp is not None and "stage_" in tp.__dict__:
            out.append((MODEL_STAGE, tp.model_))
        elif not fitted and self.model is not None and not isinstance(self.model, str):
            model = self.model
            out.append((MODEL_STAGE, model.estimator if isinstance(model, PipelineStage)
                        else model))
        return out

    @property
    def named_steps(self):
        """A :class:`~sklearn.utils.Bunch` of :attr:`steps` by name (``pipe.named_steps.model``)."""
        return Bunch(**dict(self.steps))

    def __len__(self):
        """The number of steps (feature stages and the model)."""
        return len(self.steps)

    def __bool__(self):
        return True  # a pipeline is an object, never "empty" in a condition

    def __getitem__(self, ind):
        """A step's estimator by position or name, or a slice of the chain as a
        :class:`ml_toolbox.Pipeline` sharing the (fitted) estimators, as scikit-learn slices.

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from sklearn.linear_model import LogisticRegression
        >>> from sklearn.preprocessing import StandardScaler
        >>> from ml_toolbox import UnifiedMLPipeline
        >>> X, y = load_iris(return_X_y=True)
        >>> pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())],
        ...                          model=LogisticRegression()).fit(X, y)
        >>> [name for name, _ in pipe.steps], type(pipe[-1]).__name__, len(pipe)
        (['scale', 'model'], 'LogisticRegression', 2)
        >>> bool((pipe[:-1].transform(X) == pipe.transform(X)).all())
        True
        """
        steps = self.steps
        if isinstance(ind, slice):
            if ind.step not in (1, None):
                raise ValueError("Pipeline slicing only supports a step of 1")
            return Pipeline(steps[ind], monitor=self.monitor, retry=self.retry,
                            debugger=self.debugger, fast_inference=self.fast_inference,
                            name=self.name)
        if isinstance(ind, str):
            names = [name for name, _ in steps]
            if ind not in names:
                raise KeyError(f"{self.owner} has no step {ind!r}. Steps: {names}.")
            return steps[names.index(ind)][1]
        return steps[ind][1]

    # -- parameters -------------------------------------------------------------------------
    def get_params(self, deep=True):
        """Get the parameters; with ``deep``, feature stages as ``features__<stage>__<param>``.

        Parameters
        ----------
        deep : bool, default=True
            Include the feature stages' and the model's parameters.

        Returns
        -------
        dict
            Parameter names mapped to their values.
        """
        out = _super_params(self, UnifiedMLPipeline, deep)
        if deep and isinstance(self.features, (list, tuple)):
            view = FeaturePipeline(steps=self.features)
            own = set(_param_names(FeaturePipeline))
            for key, value in view.get_params(deep=True).items():
                if key not in own:
                    out[f"features__{key}"] = value
        return out

    def set_params(self, **params):
        """Set parameters, including ``features__<stage>__<param>`` and ``model__<param>``.

        Parameters
        ----------
        **params : dict
            Constructor parameters and nested ``features__...`` / ``model__...`` keys.

        Returns
        -------
        UnifiedMLPipeline
            This pipeline.
        """
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
            task = task_of(model, self._toolbox(), y, self.model is None)
            if task is not None:
                tp_state["task_"], tp_state["task_reason_"] = task.task, task.reason
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
        state = tp_state or {}
        self.task_, self.task_reason_ = state.get("task_"), state.get("task_reason_")

    def fit(self, X, y=None, **fit_params):
        """Fit the feature stages, then the model on their output.

        A failed fit leaves a previously fitted pipeline exactly as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Raw training input; its columns, dtypes and width become ``input_schema_``.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), default=None
            Targets (None for a features-only pipeline or an unsupervised model).
        **fit_params : dict
            Passed to the model's ``fit`` (e.g. ``sample_weight``).

        Returns
        -------
        UnifiedMLPipeline
            This pipeline, fitted.
        """
        try:
            with self._tracked("fit", X, y):
                schema, fp_state, tp_state, _ = self._fit_states(X, y, fit_params, False)
                self._commit(schema, fp_state, tp_state)
        except Exception as error:
            self._note_error(error, "fit")
            raise
        return self

    def fit_transform(self, X, y=None, **fit_params):
        """Fit, and return the features of ``X`` computed while fitting.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Raw training input; its columns, dtypes and width become ``input_schema_``.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), default=None
            Targets (None for a features-only pipeline or an unsupervised model).
        **fit_params : dict
            Passed to the model's ``fit`` (e.g. ``sample_weight``).

        Returns
        -------
        ndarray, sparse matrix or DataFrame of shape (n_samples, n_features_out)
            The feature stages' output on ``X``.
        """
        try:
            with self._tracked("fit", X, y):
                schema, fp_state, tp_state, Xt = self._fit_states(X, y, fit_params, False)
                self._commit(schema, fp_state, tp_state)
        except Exception as error:
            self._note_error(error, "fit_transform")
            raise
        return Xt

    @available_if(_model_has("partial_fit"))
    def partial_fit(self, X, y=None, classes=None, **params):
        """Update the pipeline with one batch.

        Feature stages that have ``partial_fit`` are updated with the batch; the others must
        already be fitted (by an earlier ``fit``) and only transform it. Then the model's
        ``partial_fit`` runs (``classes`` is passed on, as classifiers need on the first call).
        Nothing changes unless the whole update succeeds.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            One batch of raw input.
        y : array-like of shape (n_samples,), default=None
            The batch's targets.
        classes : array-like of shape (n_classes,), default=None
            Every class label, for a classifier's first call.
        **params : dict
            Passed to the model's ``partial_fit`` (e.g. ``sample_weight``).

        Returns
        -------
        UnifiedMLPipeline
            This pipeline, updated.
        """
        try:
            with self._tracked("partial_fit", X, y):
                return self._partial_fit(X, y, classes, **params)
        except Exception as error:
            self._note_error(error, "partial_fit")
            raise

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
        from .runs._active import tracked_fit  # opt-in (tracking=): the run store on first use

        return tracked_fit(self, kind, X, y)

    # -- using ------------------------------------------------------------------------------
    def _require_fitted(self):
        if "input_schema_" not in self.__dict__:
            raise NotFittedError(
                f"This {self.owner} is not fitted yet. Call 'fit' with appropriate arguments "
                "before using this estimator.")

    def __sklearn_is_fitted__(self):
        return "input_schema_" in self.__dict__

    # -- displays: the description ml_toolbox.display draws (see ml_toolbox._describe) -------
    def _describe_(self):
        """The plain description of this pipeline its displays draw: the feature stages and the
        model, the training metrics, facts, and the last fit's and last prediction's timings."""
        fp, tp, ip = self.feature_pipeline, self.training_pipeline, self.inference_pipeline
        fitted = is_fitted(self)
        if "stages_" in fp.__dict__ and fitted:
            names, stages = fp.stage_names_, fp.stages_
        else:
            try:
                names, stages = fp._templates()
            except (TypeError, ValueError):
                names, stages = [], []
        rows = [stage_row(n, s) for n, s in zip(names, stages)]
        model = tp.__dict__.get("stage_") if fitted else None
        if model is None and self.model is not None and not isinstance(self.model, str):
            model = self.model
        if model is not None:
            rows.append(stage_row(MODEL_STAGE, model))
        elif self.model is None and not fitted:
            rows.append(estimator_row(MODEL_STAGE, None))
            rows[-1]["estimator"] = "chosen at fit by the toolbox"
        facts = []
        task = self.__dict__.get("task_") if fitted and self.model is None else None
        if task is not None:  # the toolbox chose the model: say which kind, and why
            facts.append(("task", f"{task} ({self.__dict__.get('task_reason_')})"))
        fact = schema_fact(self)
        if fact:
            facts.append(fact)
        if fitted:
            fact = ip._fast_fact(self)
            if fact:
                facts.append(fact)
        facts.append(plugins_fact(self, fp, tp, ip))
        plain = description(self.owner, fitted, rows, metrics=self.__dict__.get("metrics_"),
                            facts=facts)
        monitors = [m for m in (fp.monitor, tp.monitor, ip.monitor, self.monitor) if m is not None]
        if not monitors:
            plain["hint"] = NO_MONITOR_HINT
            return plain
        feature_fit = last_run(monitor_history(fp.monitor or self.monitor, fp.name), is_fit)
        model_runs = monitor_history(tp.monitor or self.monitor, tp.name)
        model_fit = last_run(model_runs, is_fit)
        if model_fit is not None and model_fit.mode == "partial_fit" and feature_fit is not None:
            # epoch training: one execution per batch; the fit is every batch since the features'
            batches = [r for r in model_runs if r.mode == "partial_fit"
                       and getattr(r, "start_time", 0) >= getattr(feature_fit, "start_time", 0)]
            model_fit = Batches.of(batches) or model_fit
        fit_runs = [r for r in (feature_fit, model_fit) if r is not None]
        if fit_runs:
            plain["timings"].append(("last fit", fit_runs))
        served = last_run(monitor_history(ip.monitor or self.monitor, ip.name))
        if served is not None:
            plain["timings"].append((f"last {served.mode}", [served]))
        return plain

    def _serve(self, X, method, y=None, params=None):
        """The inference path: one input check, then the inference pipeline's stages."""
        d = self.__dict__
        if "input_schema_" not in d:
            self._require_fitted()
        ip = d.get("_inference_pipeline")
        if ip is None or ip.fast is not self.fast_inference:
            ip = self.inference_pipeline
        published = ip._published()  # one read: a concurrent refit swaps it whole
        try:
            X = published[3].check(X, self)
        except InputSchemaError as error:  # a failed run, with its reason, for a monitor
            ip._report_refused(method, error, self)
            raise
        try:
            return ip._run(X, method, self, y, params, published)
        except Exception as error:  # a stage's note names this pipeline, the user's
            name_parent(error, self)
            self._note_error(error, method)
            raise

    def _note_error(self, error, method):
        """Make the note an inner pipeline added to a stage's ``error`` name the stage's position
        in the whole chain (:attr:`steps`) and the ``method`` called; on the error path only."""
        annotated = getattr(error, "_ml_toolbox_annotated", None)
        if type(annotated) is not tuple or getattr(error, "_ml_toolbox_placed", False):
            return
        try:
            inner, stage, mode = annotated
            holders = [self.__dict__.get(a) for a in ("_feature_pipeline", "_training_pipeline",
                                                      "_inference_pipeline")]
            if inner not in [h.name for h in holders if h is not None]:
                return  # not the note of one of this pipeline's own stages
            names = [name for name, _ in self.steps]
            if stage == MODEL_STAGE and MODEL_STAGE not in names:
                names.append(MODEL_STAGE)  # a model chosen at fit, which failed
            if stage not in names:
                return
            note_step(error, inner, stage, mode, names.index(stage), len(names), method, self)
        except Exception:  # noqa: BLE001 - the stage's error is what the caller must see
            pass

    @available_if(_model_has("predict"))
    def predict(self, X):
        """Predict ``X``, checked against the fit-time schema first.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Raw input, checked against ``input_schema_`` first.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predictions.

        Raises
        ------
        InputSchemaError
            ``X`` has other columns, dtypes or width than at fit time.
        """
        return self._serve(X, "predict")

    @available_if(_model_has("predict_proba"))
    def predict_proba(self, X):
        """Return the class probabilities for ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Raw input, checked against ``input_schema_`` first.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Probabilities, columns in the order of ``classes_``.

        Raises
        ------
        InputSchemaError
            ``X`` has other columns, dtypes or width than at fit time.
        """
        return self._serve(X, "predict_proba")

    @available_if(_model_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """Return the class log-probabilities for ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Raw input, checked against ``input_schema_`` first.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Log-probabilities, columns in the order of ``classes_``.

        Raises
        ------
        InputSchemaError
            ``X`` has other columns, dtypes or width than at fit time.
        """
        return self._serve(X, "predict_log_proba")

    @available_if(_model_has("decision_function"))
    def decision_function(self, X):
        """Return the model's decision function for ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Raw input, checked against ``input_schema_`` first.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_classes)
            Confidence scores (one column for binary problems).

        Raises
        ------
        InputSchemaError
            ``X`` has other columns, dtypes or width than at fit time.
        """
        return self._serve(X, "decision_function")

    @available_if(_model_has("score"))
    def score(self, X, y=None, sample_weight=None):
        """Score the model on the features of ``X`` (accuracy, R², ... as the model defines).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Raw input, checked against ``input_schema_`` first.
        y : array-like of shape (n_samples,), default=None
            True targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights, passed on only when given.

        Returns
        -------
        float
            The model's ``score``.

        Raises
        ------
        InputSchemaError
            ``X`` has other columns, dtypes or width than at fit time.
        """
        params = {"sample_weight": sample_weight} if sample_weight is not None else None
        return self._serve(X, "score", y=y, params=params)

    def transform(self, X):
        """Compute the features of ``X``: the fitted feature stages' output.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Raw input, checked against ``input_schema_`` first.

        Returns
        -------
        ndarray, sparse matrix or DataFrame of shape (n_samples, n_features_out)
            The last feature stage's output.

        Raises
        ------
        InputSchemaError
            ``X`` has other columns, dtypes or width than at fit time.
        """
        self._require_fitted()
        X = self.input_schema_.check(X, self)
        try:
            return self.feature_pipeline._transform(X, parent=self)
        except Exception as error:
            self._note_error(error, "transform")
            raise

    def get_feature_names_out(self, input_features=None):
        """Return the names of the features the feature stages produce.

        Parameters
        ----------
        input_features : array-like of str, default=None
            Names of the input features; None uses ``feature_names_in_`` (DataFrame input).

        Returns
        -------
        ndarray of str
            The names of the output features.
        """
        check_is_fitted(self)
        return self.feature_pipeline.get_feature_names_out(input_features)

    def set_output(self, *, transform=None):
        """Set the output container of the feature stages ("default", "pandas", "polars").

        Parameters
        ----------
        transform : {"default", "pandas", "polars"}, default=None
            The container; None leaves the configuration as it is.

        Returns
        -------
        UnifiedMLPipeline
            This pipeline.
        """
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
        X : array-like of shape (n_samples, n_features) or DataFrame
            Raw input.
        y : array-like of shape (n_samples,), default=None
            Targets, for ``"train"`` and ``"score"``.
        mode : {"train", "predict", "predict_proba", "transform", "score"}, default="train"
            What to do; ``"fit"`` is the same as ``"train"``.

        Returns
        -------
        sklearn.utils.Bunch
            ``"train"`` returns ``model`` (the fitted model), ``metrics`` (training metrics, and
            validation metrics when ``validation`` is set), ``pipeline`` and ``task``
            (``"classification"`` or ``"regression"``, see ``task_``); ``"predict"`` returns
            ``predictions``; ``"predict_proba"`` ``probabilities``; ``"transform"``
            ``features``; ``"score"`` ``score``.

        Raises
        ------
        ValueError
            An unknown ``mode``, with the list of known ones.

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
            return Bunch(model=model, metrics=dict(self.metrics_), pipeline=self,
                         task=self.task_)
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
        """Build a pipeline from a config: a dict or the path of a JSON file, validated first.

        Every problem (unknown component or parameter, wrong type, bad graph...) is reported
        at once in a :class:`~ml_toolbox.config.ConfigError`, before anything is fitted.
        See :mod:`ml_toolbox.config` for the format.

        Parameters
        ----------
        config : dict, str or path-like
            The config, or the path of a JSON file holding it.
        toolbox : MLToolbox, default=None
            Where component names are looked up (registered components first); None uses a
            default toolbox.

        Returns
        -------
        UnifiedMLPipeline
            The pipeline, not fitted.

        Raises
        ------
        ConfigError
            Every problem found in the config, listed at once.

        Examples
        --------
        >>> pipe = UnifiedMLPipeline.from_config({
        ...     "features": [{"name": "scale", "component": "StandardScaler"}],
        ...     "model": {"component": "Ridge", "params": {"alpha": 2.0}}})
        >>> pipe.to_config()["model"]
        {'component': 'Ridge', 'params': {'alpha': 2.0}}
        """
        return from_config(config, toolbox=toolbox)

    def to_config(self, path=None):
        """Describe this pipeline as a config (a JSON-able dict); also written to ``path``.

        ``UnifiedMLPipeline.from_config(p.to_config())`` has the same parameters as ``p``.

        Parameters
        ----------
        path : str or path-like, default=None
            A JSON file to write the config to; None writes nothing.

        Returns
        -------
        dict
            The config, in the format :meth:`from_config` reads.
        """
        config = to_config(self)
        if path is not None:
            import json

            with open(path, "w", encoding="utf-8") as f:
                json.dump(config, f, indent=2)
        return config

    def validate(self, X_sample, y_sample=None, *, n_rows=200):
        """Dry run: fit a copy on ``n_rows`` rows and predict them.

        The rows are a seeded sample (the pipeline's ``random_state``, 0 when None), stratified
        by ``y_sample`` when it holds class labels, so a frame sorted by its target still gives
        every class.

        Catches shape and type errors in seconds, before a long fit; this pipeline is not
        changed.

        Parameters
        ----------
        X_sample : array-like of shape (n_samples, n_features) or DataFrame
            Raw input like the real training data.
        y_sample : array-like of shape (n_samples,), default=None
            Its targets.
        n_rows : int, default=200
            How many rows to fit and predict (all of them when there are fewer).

        Returns
        -------
        sklearn.utils.Bunch
            ``n_rows``, ``duration`` (seconds), ``features_shape``, ``output_shape`` and
            ``stages`` (what each stage did).

        Raises
        ------
        DryRunError
            A stage failed; the message names it.
        ValueError
            ``n_rows`` is not a positive int.
        """
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
        """Save this pipeline as a new version in a versioned store.

        The plug-ins attached (monitor, debugger, retry handler) are left out of the artifact
        unless ``plugins="keep"``: attach them again after loading.

        Parameters
        ----------
        store : PipelinePersistence, str or path-like
            The store, or its location (a directory or an fsspec URL).
        name : str
            The pipeline's name in the store.
        metrics : dict of str to float, default=None
            Metrics recorded with the version.
        tags : dict of str to str, default=None
            Free-form tags recorded with the version.
        message : str, default=None
            A note recorded with the version.
        **options : dict
            Passed to :meth:`PipelinePersistence.save` (``format="skops"``, ``compress``,
            ``parent``, ``plugins``).

        Returns
        -------
        int
            The new version number.
        """
        from .persistence import PipelinePersistence  # opt-in: the store loads on first use

        store = PipelinePersistence.from_location(store)
        run_id = self.__dict__.get("run_id_")
        if run_id is not None and "run_id" not in options:
            options["run_id"] = run_id
        version = store.save(self, name, metrics=metrics, tags=tags, message=message, **options)
        if run_id is not None and self.tracking is not None:
            from .runs._active import link_saved_version  # opt-in, as above

            link_saved_version(self, run_id, store, name, version)
        return version

    @classmethod
    def load(cls, store, name, version=None, **options):
        """Load a saved pipeline: the latest version, a version number, or an alias name.

        Parameters
        ----------
        store : PipelinePersistence, str or path-like
            The store, or its location (a directory or an fsspec URL).
        name : str
            The pipeline's name in the store.
        version : int or str, default=None
            A version number or an alias; None loads the latest version.
        **options : dict
            Passed to :meth:`PipelinePersistence.load` (``mmap_mode``, ``trusted``, ``verify``).

        Returns
        -------
        UnifiedMLPipeline
            The saved pipeline, fitted as it was saved.

        Raises
        ------
        TypeError
            The saved object is not a pipeline of this class.
        """
        from .persistence import PipelinePersistence  # opt-in: the store loads on first use

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
