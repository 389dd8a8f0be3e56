"""``BasePipeline`` and the execution loop: the only code that runs stages and calls plug-ins."""

from __future__ import annotations

import contextvars
import copy
import difflib
import threading
import time

import numpy as np
from pandas import DataFrame as _DataFrame
from sklearn import config_context, get_config
from sklearn.base import BaseEstimator, clone
from sklearn.pipeline import Pipeline as SkPipeline
from sklearn.pipeline import _VisualBlock  # (where it lives moved in 1.7; the pipeline has it)
from sklearn.utils import Bunch, get_tags

from ._schema import InputSchema
from ._warnings_recorder import LEAN as _LEAN_RECORDING
from ._warnings_recorder import WarningRecorder, close_recording, open_recording
from .context import RunContext, StageContext, _AtOnceStageContext, _run_ids, data_summary
from .exceptions import StageDefinitionError, annotate, describe_owner
from .plugins import PipelinePlugin
from .retry import as_policy
from ._describe import (NO_MONITOR_HINT, HTMLReprMixin, description, is_fitted, last_run,
                        monitor_history, plugins_fact, schema_fact, stage_row)
from .stage import PipelineStage

__all__ = ["BasePipeline", "StageTimeoutError", "close_match_hint", "stage_timeout_call"]

_NO_PARAMS: dict[str, object] = {}  # shared and never written: "no parameters"
_NO_BEFORE_STAGE = PipelinePlugin.before_stage


def close_match_hint(name, candidates):
    """Suggest the closest of ``candidates`` to a misspelt ``name``, for an error message.

    Parameters
    ----------
    name : object
        The name given (compared as a string).
    candidates : iterable
        The valid names.

    Returns
    -------
    str
        ``" Did you mean 'scale'?"`` when ``name`` is close to one of them, else ``""``.

    Examples
    --------
    >>> close_match_hint("scael", ["scale", "model"]), close_match_hint("x", ["scale"])
    (" Did you mean 'scale'?", '')
    """
    match = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=1)
    return f" Did you mean {match[0]!r}?" if match else ""


def composite_input_tags(tags, parts):
    """Set a composite's ``input_tags`` (sparse, allow_nan) from its parts, in order.

    Sparse input is accepted when every part accepts it; missing values when an imputer comes
    before any part that refuses them.
    """
    estimators = []
    for part in parts:
        part = part.estimator if isinstance(part, PipelineStage) else part
        if hasattr(part, "fit"):
            estimators.append(part)
    try:
        all_tags = [get_tags(est) for est in estimators]
    except (TypeError, ValueError, AttributeError):
        return tags
    tags.input_tags.sparse = bool(all_tags) and all(t.input_tags.sparse for t in all_tags)
    allow_nan = True
    for est, est_tags in zip(estimators, all_tags):
        if type(est).__module__.startswith("sklearn.impute") or hasattr(est, "numeric_strategy"):
            break
        if not est_tags.input_tags.allow_nan:
            allow_nan = False
            break
    tags.input_tags.allow_nan = allow_nan
    return tags


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


def visual_block(names, stages):
    """The HTML-diagram block scikit-learn's Pipeline draws for these steps (the estimators the
    ``stages`` wrap, fitted ones once fitted): its own code, so the diagrams are the same."""
    estimators = [s.__dict__.get("estimator_", s.estimator) if isinstance(s, PipelineStage) else s
                  for s in stages]
    if not estimators:
        return _VisualBlock("serial", [], names=[], name_details=[], dash_wrapped=False)
    return SkPipeline(list(zip(names, estimators)))._sk_visual_block_()


def _policy_for(stage, pipeline_policy):
    own = stage.retry
    if own is None:
        return pipeline_policy
    if own is False:
        return None
    return as_policy(own)


class BasePipeline(HTMLReprMixin, BaseEstimator):
    """What every ml_toolbox pipeline shares: plug-in slots and the execution loop.

    Subclasses define their own ``__init__`` (scikit-learn reads the parameters from it); they all
    have ``name``, ``monitor``, ``debugger``, ``retry_handler`` and ``enable_retry``.

    The execution loop, :meth:`_run_stages`, runs a list of stages one after the other, each in a
    mode. With no plug-in and no retry policy it runs the stages directly and builds no context
    at all; otherwise, around every stage run, it calls the plug-ins' hooks
    (:class:`~ml_toolbox.plugins.PipelinePlugin`) and runs the stage through the retry policy.
    When a stage raises, its exception propagates unchanged in type and message, with a note
    naming the pipeline, the stage and the mode.

    Examples
    --------
    >>> import numpy as np
    >>> from ml_toolbox import BasePipeline, FeaturePipeline, Pipeline
    >>> issubclass(FeaturePipeline, BasePipeline) and issubclass(Pipeline, BasePipeline)
    True
    >>> def broken(X):
    ...     raise ValueError("bad input")
    >>> fp = FeaturePipeline([("broken", broken)], name="features")
    >>> try:
    ...     fp.fit(np.ones((2, 1)))
    ... except ValueError as error:
    ...     print(error, error.__notes__)
    bad input ["[ml_toolbox] raised by stage 'broken' of pipeline 'features' during fit_transform"]
    """

    # -- plug-ins ---------------------------------------------------------------------------
    def _plugins(self, parent=None):
        """The active plug-ins, own ones first, else those handed down by ``parent``."""
        debugger = self.debugger
        monitor = self.monitor
        progress = None
        if parent is not None:
            if debugger is None:
                debugger = getattr(parent, "debugger", None)
            if monitor is None:
                monitor = getattr(parent, "monitor", None)
            if getattr(parent, "verbose", 0):  # a progress bar while fitting, if someone watches
                progress = parent._stage_progress()
            # a tracked run in progress: ml_toolbox.runs.track puts its recorder there
            recorder = getattr(parent, "__dict__", _NO_PARAMS).get("_run_recorder")
            if recorder is not None:
                return tuple([p for p in (debugger, monitor, progress, recorder)
                              if p is not None and p.enabled])
        if progress is None:
            if debugger is None:  # the usual cases first: no plug-in, or a monitor alone
                return (monitor,) if monitor is not None and monitor.enabled else ()
            if monitor is None:
                return (debugger,) if debugger.enabled else ()
        return tuple([p for p in (debugger, monitor, progress) if p is not None and p.enabled])

    def _retry_policy(self, parent=None):
        """The pipeline-wide retry policy: own ``retry_handler``, else the parent's ``retry``."""
        if not self.enable_retry:
            return None
        policy = self.retry_handler
        if policy is None and parent is not None:
            policy = getattr(parent, "retry", None)
        if policy is None or callable(getattr(policy, "call", None)):
            return policy  # a RetryHandler, or any object with call(attempt, ctx)
        return as_policy(policy)

    @property
    def owner(self):
        """How error messages name this pipeline, e.g. ``"FeaturePipeline 'feature_pipeline'"``."""
        return describe_owner(self)

    # -- the execution loop -----------------------------------------------------------------
    def _run_stages(self, stages, X, y, modes, *, fitting, names, parent=None, params=None,
                    run_mode=None):
        """Run ``stages`` in order, feeding each the previous one's output.

        Parameters
        ----------
        stages : list of PipelineStage
            Templates when ``fitting`` (each run fits a fresh clone), fitted stages otherwise.
        X, y : data
            Input of the first stage; ``y`` goes to every stage (stages use it where their mode
            needs it: fitting and scoring).
        modes : list of str
            One :meth:`PipelineStage.run` mode per stage.
        fitting : bool
            Whether stages are (re)fitted from a clone of the template.
        names : list of str
            The stages' names in this pipeline.
        parent : UnifiedMLPipeline, optional
            Whose plug-ins apply when this pipeline has none of its own.
        params : dict, optional
            Keyword arguments for the last stage's run (``sample_weight``, ``classes``...).
        run_mode : str, optional
            The execution's mode as plug-ins see it (default: the last stage's mode).

        Returns
        -------
        output : object
            The last stage's output.
        ran : list of PipelineStage
            The stages as they ran (the fitted clones when ``fitting``).
        """
        plugins = self._plugins(parent)
        policy = self._retry_policy(parent)
        last = len(stages) - 1
        if not plugins and policy is None and not any(s.retry or s.timeout is not None
                                                      for s in stages):
            # The fast path: no plug-in, no retry, no timeout. Only the stages themselves run.
            i = 0
            try:
                if fitting:
                    ran = []
                    for i, stage in enumerate(stages):
                        stage = clone(stage)
                        X = stage.run(X, y, modes[i], **(params if i == last and params
                                                         else _NO_PARAMS))
                        ran.append(stage)
                    return X, ran
                for i, stage in enumerate(stages):
                    X = stage.run(X, y, modes[i], **(params if i == last and params
                                                     else _NO_PARAMS))
                return X, stages
            except Exception as error:
                annotate(error, self.name, names[i], modes[i], parent)
                raise
        return self._run_with_plugins(stages, X, y, modes, fitting, names, plugins, policy,
                                      params, run_mode or (modes[-1] if modes else "fit"),
                                      parent)

    def _run_with_plugins(self, stages, X, y, modes, fitting, names, plugins, policy, params,
                          run_mode, parent=None, runners=None, timed=None):
        """:meth:`_run_stages` with ``plugins`` (a non-empty tuple) and the retry ``policy``
        looked up; the fast inference plan also gives

        - ``runners``: per-stage replacements ``X -> output`` for the stages' own methods (its
          row kernels, stage by stage); the hooks run around them all the same;
        - ``timed``: ``X -> (outputs, stamps)`` running all the stages at once, or None for an
          input it does not handle (its one-row function); used when every plug-in is an
          observer (:attr:`~ml_toolbox.plugins.PipelinePlugin.observer`), nothing defines
          ``before_stage`` and no retry policy or timeout applies (see :func:`_observed`).
        """
        # Every line here runs for every stage of every execution with a plug-in, single-row
        # predictions included: what is decided once per run is decided before the stage loop.
        if not fitting and policy is None and len(plugins) == 1 \
                and getattr(plugins[0], "_direct", False) and _no_stage_policy(stages):
            # a monitor alone (the usual case): it records the run directly, without contexts
            return _monitored(self, plugins[0], stages, X, y, modes, names, params, run_mode,
                              parent, runners, timed)
        run = RunContext(self, self.name, run_mode, names)
        if parent is not None:  # plug-ins handed down by a UnifiedMLPipeline can see it
            run.extra["parent"] = parent
        # Warnings are recorded once for the whole run, in this context only (thread-safe: see
        # ml_toolbox._warnings_recorder); each stage takes those raised while it ran.
        recorder = None
        before_stage = []  # before_stage is called on the plug-ins that define it (a monitor not)
        observers = True  # whether every plug-in only observes (PipelinePlugin.observer)
        for p in plugins:
            if p.captures_warnings and recorder is None:
                recorder = WarningRecorder()
            if type(p).before_stage is not _NO_BEFORE_STAGE:
                before_stage.append(p)
            if not p.observer:
                observers = False
        caught = () if recorder is None else recorder.caught  # non-empty: a stage warned
        clock = time.perf_counter
        contexts = run.stages
        last = len(stages) - 1
        ran = []
        observed = None
        try:
            for p in plugins:
                p.before_run(run)
            if timed is not None and observers and not before_stage and policy is None \
                    and _no_stage_policy(stages):
                observed = _observed(run, timed, stages, X, y, modes, names, plugins, recorder)
            for i, template in enumerate(stages if observed is None else ()):
                ctx = StageContext(run, template, names[i], i, modes[i], fitting, X, y)
                contexts.append(ctx)
                for p in before_stage:
                    p.before_stage(ctx)
                if caught:  # raised by hooks, not by the stage: shown at the end, not recorded
                    recorder.take()
                try:
                    if fitting or policy is not None or template.retry is not None \
                            or template.timeout is not None:
                        output = self._attempt_stage(ctx, plugins, policy, runners, last, params)
                    else:  # one plain call: no clone, no retry, no timeout
                        ctx.start = clock()
                        if runners is not None:
                            output = runners[i](ctx.X)
                        else:
                            output = ctx.stage.run(ctx.X, ctx.y, ctx.mode, **(
                                params if i == last and params else _NO_PARAMS))
                except BaseException as error:
                    ctx.duration = clock() - ctx.start
                    ctx.status = "failed"
                    ctx.error = error
                    if caught:
                        ctx.warnings = recorder.take()
                    annotate(error, self.name, names[i], modes[i], parent)
                    for p in plugins:
                        p.on_stage_error(ctx, error)
                    raise
                ctx.duration = clock() - ctx.start
                ctx.status = "success"
                ctx.output = output
                if caught:
                    ctx.warnings = recorder.take()
                for p in plugins:
                    p.after_stage(ctx)
                ran.append(ctx.stage)
                X = output
                # The data goes on to the next stage only, as without plug-ins: kept on every
                # context until the run ends, intermediate arrays outlive their use (5% of a
                # 100k-row batch predict, measured). The context keeps everything else.
                ctx.X = ctx.output = None
        except BaseException as error:
            run.duration = clock() - run.start
            run.status = "failed"
            run.error = error
            if recorder is not None:
                recorder.close()
            try:
                for p in plugins:
                    p.on_run_error(run, error)
            finally:
                contexts.clear()
            raise
        run.duration = clock() - run.start
        run.status = "success"
        if recorder is not None:
            recorder.close()
        try:
            for p in plugins:
                p.after_run(run)
        finally:
            # run -> stages -> contexts -> run is a reference cycle holding every stage's input;
            # break it once the hooks are done, so the data is freed now, not at the next GC.
            contexts.clear()
        if observed is not None:
            return observed, stages
        return X, ran

    def _report_refused(self, mode, error, parent=None):
        """Tell the observing plug-ins (a monitor) that an input was refused at the input check
        before any stage ran: a failed run of ``mode`` with no stage and ``error`` as its reason.
        """
        plugins = [p for p in self._plugins(parent) if p.observer]
        if not plugins:
            return
        run = RunContext(self, self.name, mode, ())
        if parent is not None:
            run.extra["parent"] = parent
        for p in plugins:
            p.before_run(run)
        run.duration = time.perf_counter() - run.start
        run.status = "failed"
        run.error = error
        for p in plugins:
            p.on_run_error(run, error)

    def _attempt_stage(self, ctx, plugins, policy, runners, last, params):
        """Run ``ctx``'s stage the general way: a fresh clone when fitting, through the retry
        policy, within the stage's timeout; sets ``ctx.start``. Returns the stage's output."""
        template, i = ctx.template, ctx.index
        stage_policy = policy if template.retry is None else _policy_for(template, policy)
        attempt = _attempt_function(ctx, plugins, params if i == last and params else _NO_PARAMS,
                                    runners[i] if runners is not None else None)
        if template.timeout is not None:
            attempt = _timed(attempt, template.timeout, self.owner, ctx.stage_name)
        ctx.start = time.perf_counter()
        return attempt() if stage_policy is None else stage_policy.call(attempt, ctx)

    # -- common scikit-learn plumbing -------------------------------------------------------
    def __sklearn_is_fitted__(self):
        return "stages_" in self.__dict__

    # -- displays: the description ml_toolbox.display draws (see ml_toolbox._describe) -------
    def _describe_stages(self):
        """``(names, stages)`` the displays list: the fitted stages (none before fit)."""
        if "stages_" in self.__dict__:
            return self.stage_names_, self.stages_
        return [], []

    def _describe_rows(self):
        return [stage_row(n, s) for n, s in zip(*self._describe_stages())]

    def _describe_facts(self):
        """Facts of this kind of pipeline, shown between its input and its plug-ins."""
        return []

    def _describe_(self):
        """The plain description of this pipeline its displays draw."""
        facts = [fact for fact in (schema_fact(self),) if fact]
        facts += self._describe_facts()
        facts.append(plugins_fact(self))
        timings, hint = [], None
        last = last_run(monitor_history(self.monitor, self.name))
        if last is not None:
            timings.append((f"last {last.mode}", [last]))
        elif self.monitor is None:
            hint = NO_MONITOR_HINT
        return description(self.owner, is_fitted(self), self._describe_rows(),
                           metrics=self.__dict__.get("metrics_"), facts=facts, timings=timings,
                           hint=hint)


def _no_stage_policy(stages):
    """Whether no stage has its own retry policy or a timeout (with observer plug-ins only, the
    stages may then run all at once, the hooks called afterwards)."""
    for stage in stages:
        if stage.retry is not None or stage.timeout is not None:
            return False
    return True


def _observed(run, timed, stages, X, y, modes, names, plugins, recorder):
    """Run the stages through ``timed`` (one call, a clock reading between stages), then call
    every plug-in's ``after_stage`` for each stage in order, with a context filled as the loop
    fills it (:class:`~ml_toolbox.context._AtOnceStageContext`: the data between stages are made
    arrays only if a plug-in reads them). Returns the last output, or None when ``timed``
    declines the input or a warning was raised (it could not be told which stage raised it): the
    caller then runs the stages one by one, which raises it again."""
    if recorder is not None and recorder.caught:
        recorder.take()  # raised by the before_run hooks: shown at the end, not recorded
    done = timed(X)
    if done is None:
        return None
    if recorder is not None and recorder.caught:
        recorder.caught.clear()
        return None
    outputs, stamps = done
    values = [X, *outputs]  # what the contexts read their X and output from
    sizes = [data_summary(X)]
    for row in outputs[:-1]:  # the outputs between stages are rows of float64 values
        sizes.append((1, len(row), 8 * len(row)))
    sizes.append(data_summary(outputs[-1]))
    run._at_once = (names, modes, stamps, sizes)  # what the contexts tell, whole (the monitor)
    contexts = run.stages
    for i, template in enumerate(stages):
        ctx = _AtOnceStageContext(run, template, names[i], i, modes[i], y, stamps[i],
                                  stamps[i + 1] - stamps[i], values, sizes[i], sizes[i + 1])
        contexts.append(ctx)
        for p in plugins:
            p.after_stage(ctx)
        values[i] = None  # as the loop does: the data goes on to the next stage only
    values[-1] = None
    return outputs[-1]


def _output_size(out, stage):
    """``(n_rows, n_cols, nbytes)`` of a stage's output, as
    :attr:`~ml_toolbox.context.StageContext.output_summary` tells it (unknown: Nones)."""
    try:
        if out.__class__ is np.ndarray and out.ndim == 2:
            shape = out.shape
            return shape[0], shape[1], out.nbytes
        if out is None or out is stage or (out.__class__ is not np.ndarray
                                           and hasattr(out, "fit")):
            return 0, 0, 0
        return data_summary(out)
    except Exception:  # noqa: BLE001 - an object that cannot be sized: unknown, not a crash
        return None, None, None


def _input_size(X):
    try:
        return data_summary(X)
    except Exception:  # noqa: BLE001 - as _output_size
        return None, None, None


def _monitored(pipe, monitor, stages, X, y, modes, names, params, run_mode, parent, runners,
               timed):
    """:meth:`BasePipeline._run_with_plugins` for one plug-in, a
    :class:`~ml_toolbox.monitor.PipelineMonitor` (``_direct``: its hooks are the class's own),
    with no retry policy and no timeout, outside fitting: the stages run as the loop runs them
    and the monitor records the run directly (``_record_direct``), the same records its hooks
    would make, without a context per run and per stage. Returns ``(output, stages)``.

    With ``timed`` (the fast plan's one-row function) the stages run at once; if it declines the
    input or a warning is raised, they run one by one (which raises the warning again).
    """
    recorder = WarningRecorder() if monitor.captures_warnings else None
    clock = time.perf_counter
    run_id = next(_run_ids)
    start_time = time.time()
    start = clock()
    at_once = None
    records = []
    running = None  # the index of the stage running, while it runs
    try:
        if timed is not None:
            done = timed(X)
            if done is not None and (recorder is None or not recorder.caught):
                outputs, stamps = done
                sizes = [_input_size(X)]
                for row in outputs[:-1]:  # the outputs between stages are rows of floats
                    sizes.append((1, len(row), 8 * len(row)))
                X = outputs[-1]
                sizes.append(_output_size(X, None))
                at_once = (names, modes, stamps, sizes)
            elif recorder is not None:
                recorder.caught.clear()  # the stages run one by one below: raised again there
        if at_once is None:
            last = len(stages) - 1
            size_in = None
            for i, stage in enumerate(stages):
                if size_in is None:
                    size_in = _input_size(X)
                running = i
                began = clock()
                if runners is not None:
                    out = runners[i](X)
                else:
                    out = stage.run(X, y, modes[i], **(params if i == last and params
                                                       else _NO_PARAMS))
                took = clock() - began
                running = None
                size_out = _output_size(out, stage)
                records.append((names[i], i, modes[i], began, took, "success", size_in,
                                size_out, None, recorder.take()
                                if recorder is not None and recorder.caught else ()))
                size_in = size_out
                X = out
    except BaseException as error:
        ended = clock()
        if running is not None:  # that stage failed
            records.append((names[running], running, modes[running], began, ended - began,
                            "failed", size_in, (None, None, None), error, recorder.take()
                            if recorder is not None and recorder.caught else ()))
            annotate(error, pipe.name, names[running], modes[running], parent)
        if recorder is not None:
            recorder.close()
        monitor._record_direct(pipe, run_mode, run_id, start_time, start, ended - start, None,
                               records, error)
        raise
    duration = clock() - start
    if recorder is not None:
        recorder.close()
    monitor._record_direct(pipe, run_mode, run_id, start_time, start, duration, at_once,
                           records, None)
    return X, stages


#: What :func:`_monitored_row` returns when it leaves the call to the execution loop.
_NOT_RECORDED = object()


def _monitored_row(pipe, monitor, timed, X, names, modes, run_mode, plan, parent, stages):
    """The one-row prediction with a monitor alone: :func:`_monitored` with the fast plan's
    ``timed`` function, for the inference pipeline to call before it sets up the loop.

    The same run as :func:`_monitored` makes, with nothing per stage: the warnings are recorded
    with the lean recorder, the sizes between stages are the rows' widths, the plan's path is its
    static one (a row that ran ``timed`` whole ran every kernel), the call is counted as the
    plan counts one-row calls, and the monitor gets the raw record
    (:meth:`~ml_toolbox.monitor.PipelineMonitor._record_row`). Returns the output, or
    ``_NOT_RECORDED`` (nothing recorded, counted or shown) when the loop must run the call:
    a retry policy or a stage's own policy or timeout applies, ``timed`` declines the input, or a
    stage warned (the loop runs the stages one by one, which raises the warning again).
    """
    if not _LEAN_RECORDING or X.__class__ is not _DataFrame:  # ``timed`` takes DataFrames only
        return _NOT_RECORDED
    for stage in stages:
        if stage.retry is not None or stage.timeout is not None:
            return _NOT_RECORDED
    if pipe.enable_retry and (pipe.retry_handler is not None or getattr(parent, "retry", None)
                              is not None) and pipe._retry_policy(parent) is not None:
        return _NOT_RECORDED
    caught = None
    if monitor.captures_warnings:
        caught, token = open_recording()
    run_id = next(_run_ids)
    start_time = time.time()
    start = time.perf_counter()
    try:
        done = timed(X)
    except BaseException as error:
        duration = time.perf_counter() - start
        if caught is not None:
            close_recording(caught, token)
        _count_row(plan, run_mode)
        monitor._record_direct(pipe, run_mode, run_id, start_time, start, duration, None, (),
                               error)
        raise
    if done is None or caught:  # declined, or a stage warned: the loop runs it (a new run)
        if caught is not None:
            caught.clear()  # raised again when the stages run one by one
            close_recording(caught, token)
        return _NOT_RECORDED
    outputs, stamps = done
    out = outputs[-1]
    duration = time.perf_counter() - start
    if caught is not None:
        close_recording(caught, token)
    sizes = [data_summary(X)]
    for row in outputs[:-1]:  # the outputs between stages are rows of float64 values
        width = len(row)
        sizes.append((1, width, 8 * width))
    sizes.append(data_summary(out) if out.__class__ is np.ndarray else _output_size(out, None))
    _count_row(plan, run_mode)
    static = plan._static.get(run_mode)
    monitor._record_row(pipe.name, run_mode, run_id, start_time, duration,
                        (start_time, start, names, modes, stamps, sizes),
                        "fallback: " + "; ".join(static) if static else "kernel")
    return out


def _count_row(plan, method):
    """Count a one-row call that ran the plan's kernels whole (as the plan's row path does)."""
    tally = plan._tally
    hit = tally.hits.get(method)
    (hit or tally.hit(method))()


def _attempt_function(ctx, plugins, kwargs, runner=None):
    def attempt():
        if ctx.attempt > 1:
            for p in plugins:
                p.on_stage_retry(ctx, ctx.last_error)
        if ctx.fitting:
            ctx.stage = clone(ctx.template)
        elif runner is not None:  # the fast inference plan's function for this stage
            return runner(ctx.X)
        return ctx.stage.run(ctx.X, ctx.y, ctx.mode, **kwargs)

    return attempt


def _timed(attempt, timeout, owner, name):
    """``attempt`` given at most ``timeout`` seconds (:func:`stage_timeout_call`)."""
    return lambda: stage_timeout_call(attempt, timeout, owner, name)


# -- per-stage timeouts (the loop runs a stage within its ``timeout``; orchestration too) ---------
class StageTimeoutError(TimeoutError):
    """A stage ran longer than its ``timeout`` (or than the pipeline's remaining ``timeout``).

    Parameters
    ----------
    message : str
        The error message, naming the pipeline and the stage.
    stage_name : str, default=None
        The stage that ran too long.
    limit : float, default=None
        The limit, in seconds, that was exceeded.

    Attributes
    ----------
    stage_name : str
        The stage that ran too long.
    limit : float
        The limit, in seconds, that was exceeded.
    """

    def __init__(self, message, stage_name=None, limit=None):
        super().__init__(message)
        self.stage_name = stage_name
        self.limit = limit

    def __reduce__(self):
        return type(self), (str(self), self.stage_name, self.limit)


def check_timeout(timeout, where):
    """Check that ``timeout`` is None or a positive number of seconds.

    Parameters
    ----------
    timeout : float or None
        The value given.
    where : str
        What the error message names (the pipeline, the stage).

    Returns
    -------
    float or None
        ``timeout`` as a float, or None.

    Raises
    ------
    TypeError
        ``timeout`` is not a number (a bool is refused too).
    ValueError
        ``timeout`` is zero, negative or NaN.

    Examples
    --------
    >>> check_timeout(2, "stage 'fit'"), check_timeout(None, "stage 'fit'")
    (2.0, None)
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}: timeout must be None or a positive number of seconds, got "
                        f"{type(timeout).__name__}: {timeout!r}.")
    if not timeout > 0 or timeout != timeout:
        raise ValueError(f"{where}: timeout must be None or a positive number of seconds, got "
                         f"{timeout!r}.")
    return float(timeout)


class _TimedOut(Exception):
    pass


def call_with_timeout(fn, timeout):
    """Call ``fn()``, waiting at most ``timeout`` seconds for it.

    The call runs in a helper thread (carrying scikit-learn's configuration) and the caller
    waits up to the limit. Python cannot stop a running thread: an overrun call finishes in the
    background and its result is thrown away.

    Parameters
    ----------
    fn : callable
        Called with no argument.
    timeout : float or None
        Seconds to wait; None calls ``fn`` in this thread, without a limit.

    Returns
    -------
    object
        What ``fn()`` returns; what it raises propagates.

    Raises
    ------
    _TimedOut
        The limit passed (:func:`stage_timeout_call` turns it into a StageTimeoutError).

    Examples
    --------
    >>> call_with_timeout(lambda: 6 * 7, 5.0)
    42
    """
    if timeout is None:
        return fn()
    box = {}
    config = get_config()

    def target():
        try:
            with config_context(**config):
                box["value"] = fn()
        except BaseException as error:  # handed to the caller
            box["error"] = error

    # in a copy of the caller's context: warnings raised there reach the caller's recorder
    thread = threading.Thread(target=contextvars.copy_context().run, args=(target,),
                              name="ml_toolbox-stage", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise _TimedOut
    if "error" in box:
        raise box["error"]
    return box["value"]


def stage_timeout_call(fn, timeout, owner, name):
    """Call ``fn()`` with the stage's ``timeout``.

    Parameters
    ----------
    fn : callable
        The stage run, called with no argument.
    timeout : float or None
        The stage's limit in seconds (checked by :func:`check_timeout`); None for none.
    owner : str
        How the error names the pipeline.
    name : str
        The stage's name.

    Returns
    -------
    object
        What ``fn()`` returns.

    Raises
    ------
    StageTimeoutError
        The stage ran longer than ``timeout``; the message names it.

    Examples
    --------
    >>> import time
    >>> stage_timeout_call(lambda: "done", 5.0, "FeaturePipeline 'f'", "scale")
    'done'
    >>> stage_timeout_call(lambda: time.sleep(1), 0.01, "FeaturePipeline 'f'", "slow")
    Traceback (most recent call last):
    ...
    ml_toolbox.base.StageTimeoutError: FeaturePipeline 'f': stage 'slow' exceeded its timeout of 0.01 s ...
    """
    limit = check_timeout(timeout, f"{owner}: stage {name!r}")
    try:
        return call_with_timeout(fn, limit)
    except _TimedOut:
        raise StageTimeoutError(
            f"{owner}: stage {name!r} exceeded its timeout of {limit:g} s and was stopped "
            "waiting for it (it may still be running in its thread; see docs/orchestration.md, "
            "'Timeouts').", name, limit) from None


_STAGE_OWN = ("name", "kw_args", "retry", "depends_on", "timeout")


_PARAM_NAMES: dict[type, tuple[object, tuple[str, ...]]] = {}  # class -> (its __init__, its names)


def _param_names(cls):
    """``cls._get_param_names()``, computed once per class (scikit-learn's calls
    ``inspect.signature`` every time: most of what ``get_params(deep=True)`` costs)."""
    entry = _PARAM_NAMES.get(cls)
    if entry is None or entry[0] is not cls.__init__:
        entry = _PARAM_NAMES[cls] = (cls.__init__, tuple(cls._get_param_names()))
    return entry[1]


def _base_get_params(obj, deep=True):
    """What scikit-learn's ``BaseEstimator.get_params`` returns for ``obj`` (same keys, values and
    order), with the parameter names cached per class and nested estimators read the same way."""
    out = {}
    for key in _param_names(type(obj)):
        value = getattr(obj, key)
        if deep and hasattr(value, "get_params") and not isinstance(value, type):
            out.update((key + "__" + k, val) for k, val in _fast_params(value).items())
        out[key] = value
    return out


def _fast_params(obj, deep=None):
    """``obj.get_params()`` (or ``get_params(deep=deep)``): through :func:`_base_get_params` when
    ``obj``'s class keeps scikit-learn's own ``get_params``, through :func:`_composition_params`
    when it keeps the one of scikit-learn's ``Pipeline``, ``FeatureUnion`` or ``ColumnTransformer``,
    else its own method."""
    cls = type(obj)
    method = getattr(cls, "get_params", None)
    if method is BaseEstimator.get_params and hasattr(cls, "_get_param_names"):
        return _base_get_params(obj, True if deep is None else deep)
    attr = _COMPOSITIONS.get(cls, _UNKNOWN)
    if attr is _UNKNOWN:
        attr = _composition_attr(cls)
    if attr is not None:
        return _composition_params(obj, attr, True if deep is None else deep)
    return obj.get_params() if deep is None else obj.get_params(deep=deep)


_UNKNOWN = object()
_COMPOSITIONS: dict[type, str | None] = {}  # class -> the attribute its get_params lists steps from, or None


def _composition_attr(cls):
    """The attribute ``cls.get_params`` reads its steps from when it is scikit-learn's own
    ``Pipeline``, ``FeatureUnion`` or ``ColumnTransformer`` method over ``_BaseComposition._get_params``
    and ``BaseEstimator.get_params`` (``"steps"``, ``"transformer_list"``, ``"_transformers"``), else
    None (any class overriding one of them keeps its own method). Cached per class."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion
    from sklearn.utils.metaestimators import _BaseComposition

    attr = {SkPipeline.get_params: "steps", FeatureUnion.get_params: "transformer_list",
            ColumnTransformer.get_params: "_transformers"}.get(getattr(cls, "get_params", None))
    if attr is not None:
        mro = cls.__mro__
        after = mro[mro.index(_BaseComposition) + 1:] if _BaseComposition in mro else ()
        parent = next((klass.__dict__["get_params"] for klass in after if "get_params" in klass.__dict__), None)
        if (getattr(cls, "_get_params", None) is not _BaseComposition._get_params
                or parent is not BaseEstimator.get_params or not hasattr(cls, "_get_param_names")):
            attr = None
    _COMPOSITIONS[cls] = attr
    return attr


def _composition_params(obj, attr, deep):
    """What scikit-learn's ``_BaseComposition._get_params(attr, deep)`` returns (same keys, values and
    order), each estimator's parameters read through :func:`_fast_params`."""
    out = _base_get_params(obj, deep)
    if not deep:
        return out
    estimators = getattr(obj, attr)
    try:
        out.update(estimators)
    except (TypeError, ValueError):  # not a list of (name, estimator) pairs: as scikit-learn does
        return out
    for name, estimator in estimators:
        if hasattr(estimator, "get_params"):
            for key, value in _fast_params(estimator, deep=True).items():
                out[f"{name}__{key}"] = value
    return out


def _super_params(obj, cls, deep):
    """``super(cls, obj).get_params(deep=deep)``, through :func:`_base_get_params` when that is
    scikit-learn's own."""
    parent = super(cls, obj).get_params
    if getattr(parent, "__func__", None) is BaseEstimator.get_params:
        return _base_get_params(obj, deep)
    return parent(deep=deep)


def _step_params(obj):
    """A step's parameters as its pipeline lists them under ``<step>__``: one path whatever the
    step's type, so a :class:`PipelineStage` shows the estimator it wraps as a ``(name,
    estimator)`` pair would (``pca__n_components``, not ``pca__estimator__n_components``), then
    its own ``retry``, ``timeout``... where no parameter of the estimator has the name."""
    if not isinstance(obj, PipelineStage):
        return _fast_params(obj, deep=True)
    est = obj.estimator
    params = _fast_params(est, deep=True) if hasattr(est, "get_params") and \
        not isinstance(est, type) else {}
    own = obj.get_params(deep=False)
    for key in _STAGE_OWN:
        params.setdefault(key, own[key])
    return params


def _set_step_params(obj, params):
    """:meth:`set_params` of one step with the names :func:`_step_params` lists (a
    PipelineStage's ``estimator__...`` names are taken too)."""
    if not isinstance(obj, PipelineStage):
        obj.set_params(**params)
        return
    est = obj.estimator
    est_names = set(est.get_params(deep=True)) if hasattr(est, "get_params") and \
        not isinstance(est, type) else set()
    own, inner = {}, {}
    for key, value in params.items():
        head = key.split("__", 1)[0]
        if key in est_names or (head in est_names and head not in _STAGE_OWN):
            inner[key] = value
        else:
            own[key] = value
    if inner:
        est.set_params(**inner)
    if own:
        obj.set_params(**own)


class StepsMixin:
    """A pipeline whose ``steps`` parameter is a list of stages, as in ``sklearn.pipeline.Pipeline``.

    Gives nested parameters (``scale__with_mean``), ``pipe["scale"]``, ``pipe[0]``, ``pipe[:2]``,
    ``len(pipe)``, ``named_steps`` / ``named_stages``, and validated stage names.
    """

    def _templates(self):
        """``(names, stages)`` of the ``steps`` parameter, validated, as PipelineStage templates."""
        steps = self.steps
        if steps is None or (isinstance(steps, str) and steps == "passthrough"):
            return [], []
        if not isinstance(steps, (list, tuple)):
            raise StageDefinitionError(
                f"{self.owner}: steps must be a list of (name, estimator) pairs, PipelineStage "
                f"objects or estimators, got {type(steps).__name__}: {steps!r}.")
        names, stages, explicit = [], [], []
        for position, item in enumerate(steps):
            if isinstance(item, PipelineStage):
                name, stage, given = item.stage_name, item, item.name is not None
            elif (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
                name, est = item
                given = True
                if isinstance(est, PipelineStage):
                    stage = est
                elif est is None or (isinstance(est, str) and est == "passthrough"):
                    continue
                else:
                    stage = PipelineStage(est, name=name)
            elif item is None or (isinstance(item, str) and item == "passthrough"):
                continue
            else:
                stage, given = PipelineStage(item), False
                name = stage.stage_name
            est = stage.estimator
            if not (est is None or (isinstance(est, str) and est == "passthrough")
                    or hasattr(est, "fit") or callable(est)):
                raise StageDefinitionError(
                    f"{self.owner}: stage {name!r} (position {position}) is not a scikit-learn "
                    f"estimator (an object with a fit method) nor a callable: got "
                    f"{type(est).__name__}: {est!r}.")
            if "__" in name:
                raise ValueError(f"{self.owner}: stage name {name!r} must not contain '__' "
                                 "(it separates nested parameter names).")
            names.append(name)
            stages.append(stage)
            explicit.append(given)
        seen = {}
        for i, name in enumerate(names):
            if name in seen and explicit[i] and explicit[seen[name]]:
                raise ValueError(
                    f"{self.owner}: two stages are named {name!r} (positions {seen[name]} and "
                    f"{i}); stage names must be unique.")
            seen.setdefault(name, i)
        if len(seen) != len(names):  # auto-named duplicates get a suffix, as make_pipeline does
            totals = {name: names.count(name) for name in names}
            counts = {}
            for i, name in enumerate(list(names)):
                if totals[name] > 1 and not explicit[i]:
                    counts[name] = counts.get(name, 0) + 1
                    names[i] = f"{name}-{counts[name]}"
        return names, stages

    def _given_objects(self):
        """``[(name, object as the user gave it), ...]`` for parameter access."""
        steps = self.steps if isinstance(self.steps, (list, tuple)) else []
        names, _ = self._templates()
        given = [item[1] if isinstance(item, tuple) else item for item in steps
                 if not (item is None or (isinstance(item, str) and item == "passthrough")
                         or (isinstance(item, tuple) and (item[1] is None or (
                             isinstance(item[1], str) and item[1] == "passthrough"))))]
        return list(zip(names, given))

    def get_params(self, deep=True):
        """Get the parameters, with every stage under its name and its own as ``name__param``.

        Parameters
        ----------
        deep : bool, default=True
            Include the stages and their parameters; False returns the constructor's only.

        Returns
        -------
        dict
            Parameter names mapped to their values.
        """
        out = _super_params(self, StepsMixin, deep)
        if not deep:
            return out
        try:
            items = self._given_objects()
        except (TypeError, ValueError):
            return out
        for name, obj in items:
            out[name] = obj
            if hasattr(obj, "get_params") and not isinstance(obj, type):
                for key, value in _step_params(obj).items():
                    out[f"{name}__{key}"] = value
        return out

    def set_params(self, **params):
        """Set parameters; ``name`` replaces a stage, ``name__param`` sets one of its parameters.

        Parameters
        ----------
        **params : dict
            Pipeline parameters, stage names (the new stage) and ``name__param`` keys.

        Returns
        -------
        self
            This pipeline.

        Raises
        ------
        ValueError
            For a name that is neither a parameter of the pipeline nor one of its stages,
            listing both.
        """
        if not params:
            return self
        if "steps" in params:
            self.steps = params.pop("steps")
        own_names = self._get_param_names()
        if all(key in own_names for key in params):  # no stage involved: no steps validation
            return super().set_params(**params)
        items = dict(self._given_objects())
        nested, own = {}, {}
        for key, value in params.items():
            head, sep, rest = key.partition("__")
            if head in items and not sep:
                self._replace_step(head, value)
                items = dict(self._given_objects())
            elif head in items:
                nested.setdefault(head, {})[rest] = value
            elif head in own_names:
                own[key] = value
            else:
                raise ValueError(
                    f"Invalid parameter {head!r} for {self.owner}: it is neither a parameter nor "
                    f"a stage name.{close_match_hint(head, [*items, *own_names])} Stages: "
                    f"{list(items)}. Parameters: {own_names}.")
        if own:
            super().set_params(**own)
        for head, sub in nested.items():
            _set_step_params(items[head], sub)
        return self

    def _replace_step(self, name, value):
        new_steps = []
        names, _ = self._templates()
        kept = [item for item in self.steps
                if not (item is None or (isinstance(item, str) and item == "passthrough")
                        or (isinstance(item, tuple) and (item[1] is None or (
                            isinstance(item[1], str) and item[1] == "passthrough"))))]
        for item_name, item in zip(names, kept):
            if item_name == name:
                if isinstance(item, tuple) or not isinstance(value, PipelineStage):
                    item = (name, value)
                else:
                    item = value
            new_steps.append(item)
        self.steps = new_steps

    # -- indexing like sklearn.pipeline.Pipeline ------------------------------------------
    def _current(self):
        """``(names, stages)``: the fitted stages when fitted, else the templates."""
        if "stages_" in self.__dict__:
            return self.stage_names_, self.stages_
        return self._templates()

    @property
    def named_stages(self):
        """A :class:`~sklearn.utils.Bunch` of the stages by name (the fitted ones once fitted)."""
        names, stages = self._current()
        return Bunch(**dict(zip(names, stages)))

    named_steps = named_stages

    def __len__(self):
        return len(self._current()[0])

    def __getitem__(self, key):
        names, stages = self._current()
        if isinstance(key, slice):
            if key.step not in (None, 1):
                raise ValueError(f"{self.owner}: slicing supports a step of 1 only, got "
                                 f"{key.step}.")
            return self._sliced(key)
        if isinstance(key, str):
            if key not in names:
                raise KeyError(f"{self.owner} has no stage {key!r}.{close_match_hint(key, names)}"
                               f" Stages: {names}.")
            return stages[names.index(key)]
        return stages[key]

    def _sliced(self, key):
        kept = [item for item in (self.steps or [])
                if not (item is None or (isinstance(item, str) and item == "passthrough"))]
        new = clone(self, safe=False)
        new.steps = kept[key]
        if "stages_" in self.__dict__:
            new.stages_ = self.stages_[key]
            new.stage_names_ = self.stage_names_[key]
            if key.start in (None, 0) and "input_schema_" in self.__dict__:
                new.input_schema_ = self.input_schema_
            elif new.stages_ and hasattr(new.stages_[0], "n_features_in_"):
                first = new.stages_[0]
                names = getattr(first, "feature_names_in_", None)
                new.input_schema_ = InputSchema(first.n_features_in_, names)
            if new.stages_:
                first = new.stages_[0]
                if hasattr(first, "n_features_in_"):
                    new.n_features_in_ = first.n_features_in_
                if hasattr(first, "feature_names_in_"):
                    new.feature_names_in_ = first.feature_names_in_
        return new

    def _sk_visual_block_(self):
        """The notebook diagram: the stages in series, as scikit-learn draws a Pipeline."""
        return visual_block(*self._current())

    def _check_stage_name(self, name):
        names = self._current()[0]
        if name not in names:
            raise ValueError(f"{self.owner} has no stage {name!r}.{close_match_hint(name, names)}"
                             f" Stages: {names}.")
        return names.index(name)
