"""``Pipeline`` and ``make_pipeline``: scikit-learn's own, with the toolbox's plug-ins and fast path.

:class:`Pipeline` *is* a :class:`sklearn.pipeline.Pipeline` (a subclass): the same signature, the
same ``steps`` / ``named_steps`` / ``pipe[i]`` / ``pipe[:-1]`` / ``step__param``, the same metadata
routing, ``transform_input``, ``memory``, ``verbose`` lines, ``set_callbacks``, error messages and
HTML diagram, because those are scikit-learn's code. What the toolbox adds:

- plug-ins (``monitor=``, ``retry=``, ``debugger=``): when one is attached, every step of ``fit``,
  ``fit_transform``, ``fit_predict`` and of the prediction methods runs through the toolbox's one
  execution loop (:meth:`~ml_toolbox.base.BasePipeline._run_with_plugins`), which calls their hooks
  around each step and runs the step through the retry policy;
- the fast inference path (``fast_inference=True``): ``predict``, ``predict_proba``,
  ``predict_log_proba``, ``decision_function`` and ``transform`` on a 2-D array or a DataFrame run
  on :mod:`ml_toolbox.fast`'s plan (scikit-learn's numbers, bit for bit, without its per-call
  checks);
- the versioned store (:meth:`save` / :meth:`load`) and the terminal display (``__rich__``).

With no plug-in attached, fitting is scikit-learn's code, untouched.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
from sklearn import pipeline as _skpipeline
from sklearn.base import _fit_context, clone
from sklearn.utils.validation import check_memory
from sklearn.utils._param_validation import HasMethods
from sklearn.utils._user_interface import _print_elapsed_time
from sklearn.utils.metadata_routing import _raise_for_params, _routing_enabled, process_routing
from sklearn.utils.validation import check_is_fitted

from ._describe import estimator_row, is_fitted
from .base import BasePipeline
from .exceptions import note_step
from .fast import build_plan
from .inference import available_if
from .retry import only_library_code
from .stage import PipelineStage

__all__ = ["Pipeline", "make_pipeline"]

_NO_PARAMS: dict = {}  # shared and never written: "no parameters"



# scikit-learn 1.9's callbacks (set_callbacks): the root task of each fitting method, and the task
# of its last step, named as scikit-learn's Pipeline names them; older versions have none.
_ROOT_TASKS = {"fit": "fit", "fit_transform": "fit-transform", "fit_predict": "fit-predict"}
_FINAL_TASKS = {"fit": "fit-final-estimator", "fit_transform": "fit-transform-final-estimator",
                "fit_predict": "fit-predict-final-estimator"}


class _NoCallbacks:
    """The callback context of a scikit-learn without callbacks: every event does nothing."""

    def subcontext(self, **kwargs):
        return self

    def call_on_fit_task_begin(self, **kwargs):
        pass

    call_on_fit_task_end = call_on_fit_task_begin

    def propagate_callback_context(self, estimator):
        return contextlib.nullcontext()


def _callback_context(pipeline, method):
    init = getattr(pipeline, "_init_callback_context", None)
    if init is None:
        return _NoCallbacks()
    return init(task_name=_ROOT_TASKS[method], max_subtasks=len(pipeline.steps))


def _fit_transform_one(transformer, X, y, weight, message_clsname="", message=None, params=None,
                       *, caller, callback_ctx):
    """scikit-learn's ``_fit_transform_one`` for one step, with its callback events (1.9)."""
    with callback_ctx.propagate_callback_context(transformer):
        callback_ctx.call_on_fit_task_begin(estimator=caller, X=X, y=y)
        Xt, transformer = _skpipeline._fit_transform_one(transformer, X, y, weight,
                                                         message_clsname, message, params)
        callback_ctx.call_on_fit_task_end(estimator=caller, X=Xt, y=y)
    return Xt, transformer


def _final_has(attr):
    """For ``available_if``: the last step has ``attr`` (scikit-learn's rule for its Pipeline)."""

    def check(self):
        getattr(self._final_estimator, attr)
        return True

    return check


def _can_transform(self):
    final = self._final_estimator
    return final == "passthrough" or hasattr(final, "transform")


def _stage_view(name, estimator):
    """A :class:`PipelineStage` showing ``estimator`` (fitted or not) to the plug-ins' hooks."""
    view = PipelineStage(estimator, name=name)
    view.__dict__["estimator_"] = estimator
    return view


# The methods that feed the last step's output of ``transform`` to its own method, and whether they
# take parameters without metadata routing (passed to the last step), as scikit-learn's Pipeline.
_FINAL_PARAMS = {"predict": True, "predict_proba": True, "predict_log_proba": True,
                 "decision_function": False, "score_samples": False, "score": False}


def _step_mode(method, position, last):
    """The method a step runs during the pipeline's ``method`` (what the error note names)."""
    if method == "inverse_transform" or method == "transform":
        return method
    if method in ("fit", "fit_transform", "fit_predict"):
        return method if position == last else "fit_transform"
    return method if position == last else "transform"


def _raising_step(error, steps):
    """The position of the step in whose code ``error`` was raised, or None: the outermost frame
    of its traceback that runs a method of one of ``steps`` (identity; so a step that is a
    pipeline itself is the step, not its inner one)."""
    positions = {id(est): i for i, (_, est) in enumerate(steps)}
    tb = error.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if owner is not None:
            position = positions.get(id(owner))
            if position is not None and steps[position][1] is owner:
                return position
        tb = tb.tb_next
    return None


class Pipeline(_skpipeline.Pipeline, BasePipeline):
    """A drop-in for scikit-learn's :class:`~sklearn.pipeline.Pipeline`, with plug-ins and fast path.

    A drop-in: everything scikit-learn's Pipeline does, this one does the same way (it is a
    subclass; scikit-learn's own ``sklearn/tests/test_pipeline.py`` is run against it in CI). The
    keyword parameters after ``verbose`` are the toolbox's.

    Parameters
    ----------
    steps : list of (str, estimator) tuples
        The steps, transformers then a final estimator (any estimator, ``"passthrough"`` or None).
    transform_input : list of str, default=None
        Metadata to transform through the steps before the step that requests it (needs metadata
        routing enabled), as in scikit-learn.
    memory : str or object with the joblib.Memory interface, default=None
        Caches the fitted transformers (scikit-learn's ``memory``).
    verbose : bool, default=False
        Print scikit-learn's ``[Pipeline] ... (step i of n) Processing name, total=...`` lines.
    monitor : PipelineMonitor, default=None
        Records every step run (time, rows, bytes, errors, warnings, retries).
    retry : RetryHandler or RetryConfig, default=None
        How a failing step run is re-attempted.
    debugger : PipelineDebugger, default=None
        Breakpoints, traces, snapshots and post-mortems of step runs.
    fast_inference : bool, default=True
        Serve ``predict`` and friends on a 2-D array or a DataFrame through the fast path
        (:mod:`ml_toolbox.fast`); False runs scikit-learn's methods.
    name : str, default="pipeline"
        How monitors, debuggers and error notes name this pipeline.

    Attributes
    ----------
    named_steps : :class:`~sklearn.utils.Bunch`
        The steps by name.
    classes_ : ndarray of shape (n_classes,)
        The class labels (when the last step is a classifier).
    n_features_in_ : int
        Number of features seen by the first step during ``fit``.
    feature_names_in_ : ndarray of str
        Names of the features seen by the first step during ``fit`` (DataFrame input).

    See Also
    --------
    make_pipeline : Build a Pipeline, naming the steps after their classes.
    UnifiedMLPipeline : Features, model and the seed's ``execute`` behind one estimator.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ml_toolbox import Pipeline, PipelineMonitor
    >>> X, y = load_iris(return_X_y=True, as_frame=True)
    >>> monitor = PipelineMonitor()
    >>> pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())],
    ...                 monitor=monitor, name="iris")
    >>> round(pipe.fit(X, y).score(X, y), 3)
    0.973
    >>> pipe[:-1].named_steps, pipe["clf"].classes_.tolist()
    ({'scale': StandardScaler()}, [0, 1, 2])
    >>> sorted(monitor.get_pipeline_statistics("iris")["stages"])
    ['clf', 'scale']
    """

    _parameter_constraints: dict = {
        **_skpipeline.Pipeline._parameter_constraints,
        "monitor": [None, HasMethods(["after_stage"])],
        "debugger": [None, HasMethods(["after_stage"])],
        "fast_inference": ["boolean"],
        "name": [str],
    }

    def __init__(self, steps, *, transform_input=None, memory=None, verbose=False, monitor=None,
                 retry=None, debugger=None, fast_inference=True, name="pipeline"):
        self.steps = steps
        self.transform_input = transform_input
        self.memory = memory
        self.verbose = verbose
        self.monitor = monitor
        self.retry = retry
        self.debugger = debugger
        self.fast_inference = fast_inference
        self.name = name

    # What the execution loop (BasePipeline) reads: the retry policy is ``retry``.
    enable_retry = True

    @property
    def retry_handler(self):
        """The ``retry`` parameter, under the name the execution loop reads."""
        return self.retry

    def __getitem__(self, ind):
        """A step (by position or name), or a sub-pipeline (a slice) keeping the plug-ins."""
        sub = super().__getitem__(ind)
        if isinstance(ind, slice):
            sub.set_params(monitor=self.monitor, retry=self.retry, debugger=self.debugger,
                           fast_inference=self.fast_inference, name=self.name)
        return sub

    def _stage_progress(self):
        return None  # verbose=True prints scikit-learn's lines, not a progress bar

    def _active(self):
        """``(plugins, policy)``: what is attached, or ``((), None)`` (scikit-learn's code runs)."""
        if self.monitor is None and self.debugger is None and self.retry is None:
            return (), None
        return self._plugins(), self._retry_policy()

    # -- fitting ----------------------------------------------------------------------------
    def _validate_steps(self):
        try:
            super()._validate_steps()
        except TypeError as error:
            for position, (name, est) in enumerate(self.steps):
                if isinstance(error.args[0], str) and f"'{est}' (type {type(est)})" in error.args[0]:
                    error.add_note(f"[ml_toolbox] {self.owner}: step {name!r} at position "
                                   f"{position} is a {type(est).__name__}.")
                    break
            raise

    def fit(self, X, y=None, **params):
        """Fit the steps one after the other, then the last one.

        scikit-learn's :meth:`~sklearn.pipeline.Pipeline.fit`; with a plug-in attached, each step
        runs through the toolbox's execution loop (hooks, retry) with the same routed parameters.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Training data for the first step.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), default=None
            Targets, passed to every step's ``fit``.
        **params : dict
            Fit parameters routed to the steps (``step__param`` without metadata routing).

        Returns
        -------
        Pipeline
            This pipeline, fitted.
        """
        try:
            plugins, policy = self._active()
            if not plugins and policy is None:
                super().fit(X, y, **params)
            else:
                self._fit_with_plugins("fit", X, y, params, plugins, policy)
        except Exception as error:
            self._note_error(error, "fit")
            raise
        self._refresh_plan()
        return self

    @available_if(_skpipeline.Pipeline._can_fit_transform)
    def fit_transform(self, X, y=None, **params):
        """Fit the steps and return the last step's transform of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Training data for the first step.
        y : array-like of shape (n_samples,), default=None
            Targets, passed to every step's ``fit``.
        **params : dict
            Fit parameters routed to the steps.

        Returns
        -------
        ndarray or DataFrame of shape (n_samples, n_features_out)
            ``X`` transformed by every step (a DataFrame under ``set_output(transform="pandas")``).
        """
        try:
            plugins, policy = self._active()
            if not plugins and policy is None:
                out = super().fit_transform(X, y, **params)
            else:
                out = self._fit_with_plugins("fit_transform", X, y, params, plugins, policy)
        except Exception as error:
            self._note_error(error, "fit_transform")
            raise
        self._refresh_plan()
        return out

    @available_if(_final_has("fit_predict"))
    def fit_predict(self, X, y=None, **params):
        """Fit the transformers, then return the last step's ``fit_predict`` on their output.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Training data for the first step.
        y : array-like of shape (n_samples,), default=None
            Targets, passed to every step's ``fit``.
        **params : dict
            Fit parameters routed to the steps.

        Returns
        -------
        ndarray of shape (n_samples,)
            The last step's ``fit_predict`` (e.g. cluster labels).
        """
        try:
            plugins, policy = self._active()
            if not plugins and policy is None:
                out = super().fit_predict(X, y, **params)
            else:
                out = self._fit_with_plugins("fit_predict", X, y, params, plugins, policy)
        except Exception as error:
            self._note_error(error, "fit_predict")
            raise
        self._refresh_plan()
        return out

    @_fit_context(prefer_skip_nested_validation=False)  # as scikit-learn's fit methods
    def _fit_with_plugins(self, method, X, y, params, plugins, policy):
        """``method`` (``"fit"``, ``"fit_transform"``, ``"fit_predict"``), step by step through
        the execution loop: the same routing, caching, verbose lines and callback events
        (scikit-learn 1.9's ``set_callbacks``) as scikit-learn's."""
        callbacks = _callback_context(self, method)
        callbacks.call_on_fit_task_begin(estimator=self, X=X, y=y)
        if not _routing_enabled() and self.transform_input is not None:
            raise ValueError(
                "The `transform_input` parameter can only be set if metadata "
                "routing is enabled. You can enable metadata routing using "
                "`sklearn.set_config(enable_metadata_routing=True)`.")
        routed = self._check_method_params(method=method, props=params)
        self.steps = list(self.steps)
        self._validate_steps()
        memory = check_memory(self.memory)
        fit_transform_one = memory.cache(_fit_transform_one, ignore=["caller", "callback_ctx"])
        last = len(self.steps) - 1
        names, views, runners, modes = [], [], [], []
        seen = [X]  # what the last task's end event shows as X (scikit-learn's choice per method)
        tasks = {}

        def task(idx, task_name):  # one callback task per step, whatever the retries
            sub = tasks.get(idx)
            if sub is None:
                sub = tasks[idx] = callbacks.subcontext(task_name=task_name)
            return sub

        def transformer_runner(idx, name, transformer):
            def run(Xs):
                sub = task(idx, f"fit-transform-{name}")
                if transformer is None or transformer == "passthrough":
                    with _print_elapsed_time("Pipeline", self._log_message(idx)):
                        sub.call_on_fit_task_begin(estimator=self, X=Xs, y=y)
                        sub.call_on_fit_task_end(estimator=self, X=Xs, y=y)
                        return Xs
                fitting = transformer if getattr(memory, "location", None) is None \
                    else clone(transformer)
                step_params = self._get_metadata_for_step(
                    step_idx=idx, step_params=routed[name], all_params=params)
                Xt, fitted = fit_transform_one(fitting, Xs, y, None, message_clsname="Pipeline",
                                               message=self._log_message(idx), params=step_params,
                                               caller=self, callback_ctx=sub)
                self.steps[idx] = (name, fitted)
                views[idx].__dict__["estimator_"] = fitted
                return Xt

            return run

        def final_runner(name, final):
            def run(Xt):
                sub = task(last, _FINAL_TASKS[method])
                with _print_elapsed_time("Pipeline", self._log_message(last)):
                    seen[0] = Xt
                    if final is None or final == "passthrough":
                        sub.call_on_fit_task_begin(estimator=self, X=Xt, y=y)
                        sub.call_on_fit_task_end(estimator=self, X=Xt, y=y)
                        return Xt
                    with sub.propagate_callback_context(final):
                        sub.call_on_fit_task_begin(estimator=self, X=Xt, y=y)
                        step_params = self._get_metadata_for_step(
                            step_idx=last, step_params=routed[name], all_params=params)
                        if method == "fit":
                            out = final.fit(Xt, y, **step_params["fit"])
                        elif method == "fit_predict":
                            out = final.fit_predict(Xt, y, **step_params.get("fit_predict", {}))
                        elif hasattr(final, "fit_transform"):
                            out = final.fit_transform(Xt, y, **step_params["fit_transform"])
                        else:
                            out = final.fit(Xt, y, **step_params["fit"]).transform(
                                Xt, **step_params["transform"])
                        seen[0] = out if method == "fit_transform" else Xt
                        sub.call_on_fit_task_end(estimator=self, X=seen[0], y=y)
                    return out

            return run

        for idx, (name, est) in enumerate(self.steps):
            names.append(name)
            views.append(_stage_view(name, est))
            if idx < last:
                runners.append(transformer_runner(idx, name, est))
                modes.append("fit_transform")
            else:
                runners.append(final_runner(name, est))
                modes.append(method)
        out, _ = self._run_with_plugins(views, X, y, modes, False, names, plugins, policy, None,
                                        method, None, runners)
        callbacks.call_on_fit_task_end(estimator=self, X=seen[0], y=y)
        return out

    # -- using ------------------------------------------------------------------------------
    def _refresh_plan(self):
        """Build the fast plan of the steps just fitted (so predicting leaves ``__dict__`` as it
        is, as scikit-learn's checks demand); kernels compile on first use."""
        self.__dict__.pop("_fast", None)
        if self.fast_inference:
            self._plan()

    def _plan(self):
        """The fast plan of the fitted steps (built on first use, rebuilt when a step changed),
        or None: not fitted (scikit-learn's method raises or warns), no step, passthrough steps
        (scikit-learn's ``transform`` runs)."""
        steps = self.steps
        cached = self.__dict__.get("_fast")
        if cached is not None and cached[0] is steps and len(cached[1]) == len(steps):
            for a, b in zip(cached[1], steps):
                if a is not b:
                    break
            else:
                return cached[2]
        if not isinstance(steps, list) or not steps or any(
                not isinstance(s, tuple) or len(s) != 2 or s[1] is None or
                isinstance(s[1], str) or isinstance(s[1], _skpipeline.Pipeline) for s in steps):
            return None
        try:
            if not self.__sklearn_is_fitted__():
                return None
        except Exception:  # noqa: BLE001 - scikit-learn's own method says what is wrong
            return None
        plan = build_plan(list(steps), name=self.name)
        self.__dict__["_fast"] = (steps, tuple(steps), plan)
        return plan

    def _serve(self, X, method, params):
        """``method`` on ``X``: the fast plan, through the loop when plug-ins are attached; for
        what the plan does not serve (parameters given, other inputs, passthrough steps), the
        steps' own methods through the loop when plug-ins are attached (:meth:`_through_loop`),
        else :data:`NotImplemented`: scikit-learn's own method runs.

        Metadata routing changes nothing when no parameter is given (every step gets none), so
        it is not looked up: this is the path of every one-row prediction.
        """
        if params or not self.fast_inference:
            return self._through_loop(method, X, None, params)
        kind = type(X)
        if not (kind is pd.DataFrame or (kind is np.ndarray and X.ndim == 2)):
            if not (isinstance(X, pd.DataFrame) or (isinstance(X, np.ndarray) and X.ndim == 2)):
                return self._through_loop(method, X, None, params)
        plan = self._plan()
        if plan is None:
            return self._through_loop(method, X, None, params)
        if self.monitor is None and self.debugger is None and self.retry is None:
            if method == "transform":  # (the one-row function flattens a transform's output)
                return plan._run(plan._steps(method), X, True)
            return plan._run_whole(X, method, True)
        plugins, policy = self._active()
        if not plugins and policy is None:  # (attached, but disabled)
            return plan._run(plan._steps(method), X, True)
        steps = plan.stages
        names = [n for n, _ in steps]
        views = [_stage_view(n, e) for n, e in steps]
        modes = ["transform"] * (len(steps) - 1) + [method]
        runners = timed = None
        # The plan's functions, unless a retry policy must see user code run (a stage that can
        # fail transiently is retried by running its own method), or a transform (the row
        # functions flatten its output).
        if method != "transform" and (policy is None or all(only_library_code(v) for v in views)):
            runners = plan.stage_functions(method, len(steps))
            timed = plan.timed_row(method, len(steps))
        if runners is None:
            runners = [getattr(e, m) for (_, e), m in zip(steps, modes)]
        out, _ = self._run_with_plugins(views, X, None, modes, False, names, plugins, policy,
                                        None, method, None, runners, timed)
        return out

    def _note_error(self, error, method):
        """Give ``error``, raised while running ``method``, the note naming this pipeline, the
        step that raised it (name and position) and ``method``; nothing when no step raised it
        (scikit-learn's own checks of the pipeline). Runs on the error path only."""
        try:
            steps = self.steps
            position = _raising_step(error, steps)
            if position is None:
                annotated = getattr(error, "_ml_toolbox_annotated", None)
                names = [name for name, _ in steps]
                if type(annotated) is tuple and annotated[0] == self.name \
                        and annotated[1] in names:  # the loop's or the fast plan's note
                    position = names.index(annotated[1])
                else:  # a clone of the step fitted for memory=: scikit-learn's loop variable
                    tb = error.__traceback__
                    while tb is not None and position is None:
                        frame = tb.tb_frame
                        if frame.f_code.co_name == "_fit" and frame.f_locals.get("self") is self:
                            position = frame.f_locals.get("step_idx")
                        tb = tb.tb_next
            if position is None:
                return
            last = len(steps) - 1
            note_step(error, self.name, steps[position][0], _step_mode(method, position, last),
                      position, last + 1, method)
        except Exception:  # noqa: BLE001 - the step's error is what the caller must see
            pass

    def _through_loop(self, method, X, y, params, sample_weight=None):
        """``method`` with a plug-in attached, when the fast plan does not serve it: each step's
        own method, with the parameters scikit-learn's Pipeline routes to it, through the
        execution loop (hooks, retry); :data:`NotImplemented` when no plug-in is attached
        (scikit-learn's method runs)."""
        plugins, policy = self._active()
        if not plugins and policy is None:
            return NotImplemented
        check_is_fitted(self)
        routing = _routing_enabled()
        if method in ("transform", "inverse_transform", "decision_function"):
            _raise_for_params(params, self, method)
        if routing and method != "score_samples":
            routed = process_routing(self, method, **params) if method != "score" else \
                process_routing(self, method, sample_weight=sample_weight, **params)
        else:
            routed = None
        steps = self.steps
        last = len(steps) - 1
        if method in ("transform", "inverse_transform"):
            chain = [(i, n, e) for i, n, e in self._iter()]
            if method == "inverse_transform":
                chain.reverse()
            modes = [method] * len(chain)
        else:
            chain = [*self._iter(with_final=False), (last, *steps[-1])]
            modes = ["transform"] * (len(chain) - 1) + [method]
        runners = []
        for (i, name, est), mode in zip(chain, modes):
            if routed is not None:
                kwargs = routed[name][mode]
            elif i == last and _FINAL_PARAMS.get(method):
                kwargs = params
            elif i == last and method == "score" and sample_weight is not None:
                kwargs = {"sample_weight": sample_weight}
            else:
                kwargs = {}
            call = getattr(est, mode)
            if mode == "score":
                runners.append(lambda Xs, call=call, kw=kwargs: call(Xs, y, **kw))
            else:
                runners.append(lambda Xs, call=call, kw=kwargs: call(Xs, **kw))
        names = [n for _, n, _ in chain]
        views = [_stage_view(n, e) for _, n, e in chain]
        out, _ = self._run_with_plugins(views, X, y, modes, False, names, plugins, policy, None,
                                        method, None, runners)
        return out

    @available_if(_final_has("predict"))
    def predict(self, X, **params):
        """Transform ``X`` through the steps and return the last step's ``predict``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Data for the first step.
        **params : dict
            Parameters routed to the steps, as scikit-learn's Pipeline routes them.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predictions.
        """
        try:
            out = self._serve(X, "predict", params)
            return super().predict(X, **params) if out is NotImplemented else out
        except Exception as error:
            self._note_error(error, "predict")
            raise

    @available_if(_final_has("predict_proba"))
    def predict_proba(self, X, **params):
        """Transform ``X`` through the steps and return the last step's ``predict_proba``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Data for the first step.
        **params : dict
            Parameters routed to the steps, as scikit-learn's Pipeline routes them.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Class probabilities, columns in the order of ``classes_``.
        """
        try:
            out = self._serve(X, "predict_proba", params)
            return super().predict_proba(X, **params) if out is NotImplemented else out
        except Exception as error:
            self._note_error(error, "predict_proba")
            raise

    @available_if(_final_has("predict_log_proba"))
    def predict_log_proba(self, X, **params):
        """Transform ``X`` through the steps and return the last step's ``predict_log_proba``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Data for the first step.
        **params : dict
            Parameters routed to the steps, as scikit-learn's Pipeline routes them.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Log of the class probabilities, columns in the order of ``classes_``.
        """
        try:
            out = self._serve(X, "predict_log_proba", params)
            return super().predict_log_proba(X, **params) if out is NotImplemented else out
        except Exception as error:
            self._note_error(error, "predict_log_proba")
            raise

    @available_if(_final_has("decision_function"))
    def decision_function(self, X, **params):
        """Transform ``X`` through the steps and return the last step's ``decision_function``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Data for the first step.
        **params : dict
            Parameters routed to the steps, as scikit-learn's Pipeline routes them.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_classes)
            Confidence scores (one column for binary problems).
        """
        try:
            out = self._serve(X, "decision_function", params)
            return super().decision_function(X, **params) if out is NotImplemented else out
        except Exception as error:
            self._note_error(error, "decision_function")
            raise

    @available_if(_can_transform)
    def transform(self, X, **params):
        """Run every step's ``transform`` in turn.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Data for the first step.
        **params : dict
            Parameters routed to the steps' ``transform``.

        Returns
        -------
        ndarray or DataFrame of shape (n_samples, n_features_out)
            ``X`` transformed by every step.
        """
        try:
            out = self._serve(X, "transform", params)
            return super().transform(X, **params) if out is NotImplemented else out
        except Exception as error:
            self._note_error(error, "transform")
            raise

    @available_if(_skpipeline.Pipeline._can_inverse_transform)
    def inverse_transform(self, X, **params):
        """Run every step's ``inverse_transform``, last step first.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_out)
            Data in the space of the last step's output.
        **params : dict
            Parameters routed to the steps' ``inverse_transform`` (metadata routing).

        Returns
        -------
        ndarray of shape (n_samples, n_features)
            ``X`` in the space of the pipeline's input.
        """
        try:
            out = self._through_loop("inverse_transform", X, None, params)
            return super().inverse_transform(X, **params) if out is NotImplemented else out
        except Exception as error:
            self._note_error(error, "inverse_transform")
            raise

    @available_if(_final_has("score_samples"))
    def score_samples(self, X):
        """Transform ``X`` through the steps and return the last step's ``score_samples``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Data for the first step.

        Returns
        -------
        ndarray of shape (n_samples,)
            The last step's ``score_samples``.
        """
        try:
            out = self._through_loop("score_samples", X, None, _NO_PARAMS)
            return super().score_samples(X) if out is NotImplemented else out
        except Exception as error:
            self._note_error(error, "score_samples")
            raise

    @available_if(_final_has("score"))
    def score(self, X, y=None, sample_weight=None, **params):
        """Transform ``X`` through the steps and return the last step's ``score``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Data for the first step.
        y : array-like of shape (n_samples,), default=None
            True targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Passed to the last step's ``score`` when given.
        **params : dict
            Parameters routed to the steps (metadata routing).

        Returns
        -------
        float
            The last step's ``score``.
        """
        try:
            out = self._through_loop("score", X, y, params, sample_weight)
            if out is NotImplemented:
                return super().score(X, y, sample_weight=sample_weight, **params)
            return out
        except Exception as error:
            self._note_error(error, "score")
            raise

    # -- displays and persistence -----------------------------------------------------------
    def _html_repr(self):
        """The notebook display: scikit-learn's own diagram of the steps."""
        return _skpipeline.Pipeline._html_repr(self)

    def _describe_rows(self):
        """The steps as the terminal display lists them (fitted once the pipeline is)."""
        fitted = is_fitted(self)
        return [estimator_row(name, est, fitted, getattr(est, "n_features_in_", None))
                for name, est in self.steps]

    def save(self, store, name, *, metrics=None, tags=None, message=None, **options):
        """Save this pipeline as a new version in a versioned store.

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
            Passed to :meth:`PipelinePersistence.save` (e.g. ``format``, ``parent``).

        Returns
        -------
        int
            The new version number.
        """
        from .persistence import PipelinePersistence  # opt-in: the store loads on first use

        return PipelinePersistence.from_location(store).save(self, name, metrics=metrics,
                                                             tags=tags, message=message,
                                                             **options)

    @classmethod
    def load(cls, store, name, version=None, **options):
        """Load a saved Pipeline: the latest version, a version number, or an alias name.

        Parameters
        ----------
        store : PipelinePersistence, str or path-like
            The store, or its location (a directory or an fsspec URL).
        name : str
            The pipeline's name in the store.
        version : int or str, default=None
            A version number or an alias; None loads the latest version.
        **options : dict
            Passed to :meth:`PipelinePersistence.load` (e.g. ``trusted``, ``verify``).

        Returns
        -------
        Pipeline
            The saved pipeline, fitted as it was saved.

        Raises
        ------
        TypeError
            The saved object is not a Pipeline of this class.
        """
        from .persistence import PipelinePersistence  # opt-in: the store loads on first use

        obj = PipelinePersistence.from_location(store).load(name, version=version, **options)
        if not isinstance(obj, cls):
            raise TypeError(f"{name!r} version {version!r} in the store is a "
                            f"{type(obj).__name__}, not a {cls.__name__}.")
        return obj


def make_pipeline(*steps, memory=None, transform_input=None, verbose=False, **toolbox_params):
    """Build a :class:`Pipeline`, naming each step after its class, as scikit-learn does.

    Parameters
    ----------
    *steps : estimators
        The steps, transformers then a final estimator.
    memory : str or object with the joblib.Memory interface, default=None
        Caches the fitted transformers, as for :class:`Pipeline`.
    transform_input : list of str, default=None
        Metadata transformed through the steps, as for :class:`Pipeline`.
    verbose : bool, default=False
        Print a line per step fitted, as for :class:`Pipeline`.
    **toolbox_params : dict
        The toolbox's keyword parameters of :class:`Pipeline` (``monitor``, ``retry``,
        ``debugger``, ``fast_inference``, ``name``).

    Returns
    -------
    Pipeline
        The pipeline, not fitted; step names are the lower-cased class names.

    Examples
    --------
    >>> from sklearn.naive_bayes import GaussianNB
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ml_toolbox import make_pipeline
    >>> make_pipeline(StandardScaler(), GaussianNB(priors=None))
    Pipeline(steps=[('standardscaler', StandardScaler()), ('gaussiannb', GaussianNB())])
    """
    return Pipeline(_skpipeline._name_estimators(steps), transform_input=transform_input,
                    memory=memory, verbose=verbose, **toolbox_params)
