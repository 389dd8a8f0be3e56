"""``InferencePipeline``: the fitted feature stages and the model, behind one input check."""

from __future__ import annotations

from types import MethodType

import numpy as np
from sklearn.base import clone
from sklearn.utils import metaestimators
from sklearn.utils.validation import check_is_fitted

from ._schema import InputSchema, check_y_length, shape_of
from .base import _NOT_RECORDED, BasePipeline, _monitored_row
from .exceptions import InputSchemaError
from .fast import build_plan
from .feature import FeaturePipeline
from .retry import only_library_code
from .training import MODEL_STAGE

__all__ = ["InferencePipeline"]

_FAST_METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function")

try:
    from sklearn.utils._available_if import _AvailableIfDescriptor
except ImportError:  # pragma: no cover - another scikit-learn layout: its available_if as is
    _AvailableIfDescriptor = None


if _AvailableIfDescriptor is not None:
    class _AvailableIf(_AvailableIfDescriptor):
        """scikit-learn's ``available_if`` descriptor, without its per-access message.

        scikit-learn's ``__get__`` formats the AttributeError message on every access, raised or
        not (about a tenth of a one-row prediction's time). This one calls ``check`` and binds the
        method when it passes; when it does not, scikit-learn's own ``__get__`` runs (and checks
        again), so the AttributeError, its message and its cause are scikit-learn's, and
        ``hasattr`` is False alike. Access on the class (docstrings, monkeypatching) is
        scikit-learn's too.
        """

        def __get__(self, obj, owner=None):
            if obj is not None:
                try:
                    if self.check(obj):
                        return MethodType(self.fn, obj)
                except Exception:  # noqa: BLE001 - scikit-learn's __get__ raises it, below
                    pass
            return super().__get__(obj, owner)


def available_if(check):
    """:func:`sklearn.utils.metaestimators.available_if`, with a cheaper access on instances.

    Same semantics, same errors (see ``_AvailableIf``); used for the serving methods of
    :class:`InferencePipeline` and :class:`UnifiedMLPipeline`, accessed on every prediction.
    """
    if _AvailableIfDescriptor is None:  # pragma: no cover
        return metaestimators.available_if(check)
    return lambda fn: _AvailableIf(fn, check, attribute_name=fn.__name__)


def _final_has(attr):
    def check(self):
        d = self.__dict__
        if "stages_" in d:  # fitted: the fitted model says (read directly: every call)
            if not d["has_model_"]:
                raise AttributeError(f"{self.owner} has no model stage, so no {attr}.")
            getattr(d["stages_"][-1].estimator_, attr)
            return True
        tp = self.training_pipeline
        if tp is not None and getattr(tp, "model", None) is not None:
            getattr(tp._template().estimator, attr)
        return True

    return check


def _publication(state):
    """The tuple :meth:`InferencePipeline._published` returns, made of a fitted state."""
    return (state["stages_"], state["stage_names_"], state["has_model_"], state["input_schema_"],
            state.get("fast_plan_"))


class InferencePipeline(BasePipeline):
    """What a trained pipeline is served through: input check, feature stages, model.

    Every input is checked once, at the entry, against the schema recorded at fit time (columns
    and their order, dtype families, number of features); then the fitted feature stages and the
    model run in one pass of the execution loop (pipeline name ``"inference_pipeline"``).

    A :class:`UnifiedMLPipeline` builds its inference pipeline when it is fitted; on its own,
    ``InferencePipeline(feature_pipeline, training_pipeline).fit(X, y)`` fits clones of both.

    Parameters
    ----------
    feature_pipeline : FeaturePipeline, default=None
        The feature stages; None means none (the model sees ``X`` as it is).
    training_pipeline : TrainingPipeline, default=None
        None makes a features-only pipeline (``transform`` but no ``predict``).
    name : str, default="inference_pipeline"
        Name used by plug-ins and error messages.
    fast : bool, default=True
        Use the fast inference path where it applies (see the inference guide).
    batch_size : int, default=None
        Predict large inputs in chunks of this many rows.
    n_jobs : int, default=None
        Chunks predicted in parallel with joblib.
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
    stages_ : list of PipelineStage
        The fitted feature stages, then the model stage (named ``"model"``).
    stage_names_ : list of str
        The stages' names, in order.
    has_model_ : bool
        Whether there is a model stage (False for a features-only pipeline).
    input_schema_ : InputSchema
        Columns, dtypes and width seen at fit time.
    n_features_in_ : int
        Number of features seen during ``fit``.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ml_toolbox import FeaturePipeline, InferencePipeline, TrainingPipeline
    >>> X, y = load_iris(return_X_y=True, as_frame=True)
    >>> ip = InferencePipeline(FeaturePipeline([("scale", StandardScaler())]),
    ...                        TrainingPipeline(LogisticRegression())).fit(X, y)
    >>> ip.stage_names_, ip.predict(X.iloc[:3])
    (['scale', 'model'], array([0, 0, 0]))
    >>> ip.predict(X.iloc[:, :3])
    Traceback (most recent call last):
    ...
    ml_toolbox.exceptions.InputSchemaError: InferencePipeline 'inference_pipeline': X does not have the columns seen at fit time: missing column(s) ['petal width (cm)']. ...
    """

    def __init__(self, feature_pipeline=None, training_pipeline=None, *,
                 name="inference_pipeline", fast=True, batch_size=None, n_jobs=None,
                 monitor=None, debugger=None, retry_handler=None, enable_retry=True):
        self.feature_pipeline = feature_pipeline
        self.training_pipeline = training_pipeline
        self.name = name
        self.fast = fast
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.monitor = monitor
        self.debugger = debugger
        self.retry_handler = retry_handler
        self.enable_retry = enable_retry

    # -- building ---------------------------------------------------------------------------
    @staticmethod
    def _state_from(fp_state, tp_state, schema):
        """The fitted state made of a fitted feature state and a fitted training state."""
        stages = list(fp_state["stages_"])
        names = list(fp_state["stage_names_"])
        if tp_state is not None:
            stages.append(tp_state["stage_"])
            names.append(MODEL_STAGE)
        state = {"stages_": stages, "stage_names_": names, "has_model_": tp_state is not None,
                 "input_schema_": schema, "n_features_in_": schema.n_features}
        if schema.columns is not None:
            state["feature_names_in_"] = np.asarray(schema.columns, dtype=object)
        return state

    def _commit(self, state):
        # -- fast inference path: the plan is built from the fitted stages here --------------
        # (owned by ml_toolbox.fast; kernels compile lazily, and are never pickled)
        state = dict(state)
        state["fast_plan_"] = build_plan(
            [(n, s.estimator_) for n, s in zip(state["stage_names_"], state["stages_"])],
            name=self.name)
        self.__dict__.pop("feature_names_in_", None)
        self.__dict__.update(state)
        # What every use reads, published in one store after everything is built: a predict
        # running while another thread refits answers with the old model or the new one, never
        # with a mix of the two (see _published).
        self.__dict__["_published_"] = _publication(state)

    def _published(self):
        """``(stages, names, has_model, schema, plan)``: the fitted state as one object, read
        once per use (a refit in another thread swaps it whole)."""
        published = self.__dict__.get("_published_")
        if published is None:  # fitted state set another way (an older artifact, by hand)
            if "stages_" not in self.__dict__:
                check_is_fitted(self)
            published = _publication(self.__dict__)
        return published

    def _fast_plan_for(self, method, parent, published=None):
        """The fast plan when it applies to this call (fast=True, a model, no stage timeout,
        retry only around library code). Plug-ins do not turn it off: with plug-ins attached
        the execution loop runs the plan stage by stage, calling their hooks around each.

        Everything is read on every call (a fitted stage's ``timeout`` or ``retry`` may be set
        later, plug-ins attached after fit), in as few reads as it can: this is on the path of
        every one-row prediction.
        """
        if not self.fast or method not in _FAST_METHODS:
            return None
        if published is None:
            published = self._published()
        stages, _, has_model, _, plan = published
        if plan is None or not has_model:
            return None
        retry = False
        for stage in stages:
            if stage.timeout:
                return None
            if stage.retry:
                retry = True
        if not retry and self.enable_retry and (
                self.retry_handler is not None or getattr(parent, "retry", None) is not None):
            retry = self._retry_policy(parent) is not None  # (a wrong value raises its TypeError)
        if retry:
            # Retry matters only for stages that can fail transiently (I/O in user code);
            # stages that run only scikit-learn's own code stay on the fast plan.
            if not all(only_library_code(s) for s in stages):
                return None
        return plan

    def fit(self, X, y=None, **fit_params):
        """Fit clones of the feature and training pipelines on ``X``, ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Raw input; its columns, dtypes and width become ``input_schema_``.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), default=None
            Targets.
        **fit_params : dict
            Passed to the model's ``fit`` (e.g. ``sample_weight``).

        Returns
        -------
        InferencePipeline
            This pipeline; the fitted stages are ``stages_``.
        """
        schema = InputSchema.from_data(X, self.owner)
        check_y_length(shape_of(X), y, self.owner)
        fp = clone(self.feature_pipeline) if self.feature_pipeline is not None \
            else FeaturePipeline()
        fp_state, Xt = fp._fit_state(X, y)
        tp_state = None
        if self.training_pipeline is not None:
            tp_state = clone(self.training_pipeline)._fit_state(Xt, y, **fit_params)
        self._commit(self._state_from(fp._inference_state(fp_state), tp_state, schema))
        return self

    # -- displays ----------------------------------------------------------------------------
    def _describe_facts(self):
        fact = self._fast_fact()
        return [fact] if fact else []

    def _fast_fact(self, parent=None):
        """The displays' ``("fast inference", ...)`` fact: whether and how the fast plan serves
        calls (``parent``: the UnifiedMLPipeline whose plug-ins apply), or None before fit."""
        plan = self.__dict__.get("fast_plan_")
        if plan is None or not getattr(self, "has_model_", False):
            return None
        if not self.fast:
            switch = "fast_inference" if parent is not None else "fast"
            return ("fast inference", f"off ({switch}=False)")
        try:
            applies = self._fast_plan_for("predict", parent) is not None
        except Exception:  # noqa: BLE001 - a display never raises
            applies = False
        if not applies:
            return ("fast inference", "not used: a stage has a timeout, or a retry policy covers "
                                      "a stage running your own code")
        try:
            report = plan.explain("predict")
        except Exception:  # noqa: BLE001
            return ("fast inference", "on")
        kernels = sum(1 for r in report if r.path == "kernel")
        text = f"on: {kernels} of {len(report)} stage(s) on numpy kernels"
        if kernels < len(report):
            text += ", the others through their own methods"
        if self._plugins(parent):
            text += " (stage by stage, so the plug-ins see every stage)"
        return ("fast inference", text)

    # -- using ------------------------------------------------------------------------------
    def _run(self, X, method, parent=None, y=None, params=None, checked=False):
        """Check ``X`` once (unless ``checked``), then run every stage (the model in ``method``).

        ``checked`` may be the :meth:`_published` state ``X`` was checked against (the caller
        read it): the run then uses that very state.

        The one entry of every use, :class:`UnifiedMLPipeline`'s included (``parent`` is then that
        pipeline, whose plug-ins apply when this one has none). On the fast plan with no plug-in
        and no ``batch_size``, a one-row DataFrame goes straight to the plan's row function.
        """
        published = checked if type(checked) is tuple else self._published()
        stages, names, has_model, schema, _ = published
        if checked is False:
            try:
                X = schema.check(X, self)
            except InputSchemaError as error:  # a failed run, with its reason, for a monitor
                self._report_refused(method, error, parent)
                raise
        plan = self._fast_plan_for(method, parent, published)
        runners = plugins = timed = None
        if plan is not None:
            plugins = self._plugins(parent)
            if not plugins:
                batch_size = self.batch_size
                if batch_size is None:
                    return plan._run_whole(X, method, False)
                return plan.run(X, method, batch_size=batch_size, n_jobs=self.n_jobs,
                                check_input=False, verbose=getattr(parent, "verbose", 0))
            n_stages = len(stages)
            timed = plan.timed_row(method, n_stages)
        if method == "transform":
            if has_model:
                stages = stages[:-1]
            if not stages:
                return X
            modes = ["transform"] * len(stages)
        else:
            if not has_model:
                raise AttributeError(f"{self.owner} has no model stage, so no {method}.")
            modes = ["transform"] * (len(stages) - 1) + [method]
        names = names[:len(stages)]
        if plugins:  # the fast plan with plug-ins attached: straight to the loop's plug-in path
            if timed is not None and len(plugins) == 1 and getattr(plugins[0], "_direct", False):
                # a monitor alone on a one-row call: recorded without setting up the loop
                out = _monitored_row(self, plugins[0], timed, X, names, modes, method, plan,
                                     parent, stages)
                if out is not _NOT_RECORDED:
                    return out
            runners = plan.stage_functions(method, n_stages)
            plan._begin()
            try:
                out, _ = self._run_with_plugins(stages, X, y, modes, False, names, plugins,
                                                self._retry_policy(parent), params, method,
                                                parent, runners, timed)
            finally:
                plan._count(method)  # on kernels throughout, or which stage fell back and why
            return out
        out, _ = self._run_stages(stages, X, y, modes, fitting=False, names=names, parent=parent,
                                  params=params, run_mode=method)
        return out

    @available_if(_final_has("predict"))
    def predict(self, X):
        """Predict ``X``: the features, then the model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Raw input, checked against ``input_schema_`` before the feature stages run.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predictions.

        Raises
        ------
        InputSchemaError
            ``X`` has other columns, dtypes or width than at fit time.
        """
        return self._run(X, "predict")

    @available_if(_final_has("predict_proba"))
    def predict_proba(self, X):
        """Return the class probabilities for ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Raw input, checked against ``input_schema_`` before the feature stages run.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Probabilities, columns in the order of ``classes_``.

        Raises
        ------
        InputSchemaError
            ``X`` has other columns, dtypes or width than at fit time.
        """
        return self._run(X, "predict_proba")

    @available_if(_final_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """Return the class log-probabilities for ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Raw input, checked against ``input_schema_`` before the feature stages run.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Log-probabilities, columns in the order of ``classes_``.

        Raises
        ------
        InputSchemaError
            ``X`` has other columns, dtypes or width than at fit time.
        """
        return self._run(X, "predict_log_proba")

    @available_if(_final_has("decision_function"))
    def decision_function(self, X):
        """Return the model's decision function for ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Raw input, checked against ``input_schema_`` before the feature stages run.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_classes)
            Confidence scores (one column for binary problems).

        Raises
        ------
        InputSchemaError
            ``X`` has other columns, dtypes or width than at fit time.
        """
        return self._run(X, "decision_function")

    @available_if(_final_has("score"))
    def score(self, X, y=None, sample_weight=None):
        """Score the model on the features of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Raw input, checked against ``input_schema_`` before the feature stages run.
        y : array-like of shape (n_samples,), default=None
            True targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights, passed on only when given.

        Returns
        -------
        float
            The model's ``score`` (accuracy for a classifier, R² for a regressor).

        Raises
        ------
        InputSchemaError
            ``X`` has other columns, dtypes or width than at fit time.
        """
        params = {"sample_weight": sample_weight} if sample_weight is not None else None
        return self._run(X, "score", y=y, params=params)

    def transform(self, X):
        """Compute the features of ``X`` (the feature stages only).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Raw input, checked against ``input_schema_`` before the feature stages run.

        Returns
        -------
        ndarray, sparse matrix or DataFrame of shape (n_samples, n_features_out)
            The last feature stage's output.

        Raises
        ------
        InputSchemaError
            ``X`` has other columns, dtypes or width than at fit time.
        """
        return self._run(X, "transform")

    @property
    def classes_(self):
        """Class labels of the fitted model."""
        check_is_fitted(self)
        return self.stages_[-1].estimator_.classes_
