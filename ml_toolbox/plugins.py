"""The plug-in protocol: the hooks the execution loop calls around every stage run.

A plug-in (the monitor, the debugger, a user's own) subclasses :class:`PipelinePlugin` and
overrides only the hooks it needs; the others do nothing. Hooks come in triples, as in Kedro and
pluggy: ``before_*``, ``after_*`` and ``on_*_error`` (same arguments plus the error), for a whole
pipeline execution (``*_run``, with a :class:`~ml_toolbox.context.RunContext`) and for each stage
run (``*_stage``, with a :class:`~ml_toolbox.context.StageContext`). ``on_stage_retry`` is called
at the start of every attempt after the first.

The execution loop (:meth:`ml_toolbox.base.BasePipeline._run_stages`) is the only caller. Plug-ins
know nothing of each other, and stages know nothing of plug-ins. A stage's data (``ctx.X``,
``ctx.output``) is there for its own hooks; the loop lets go of it once ``after_stage`` has run, so a
plug-in that wants data later keeps (or copies) it then.

Retry is not a hook but a policy: an object with ``call(attempt, ctx)`` that runs
``attempt()`` once or more (see :mod:`ml_toolbox.retry`).

A plug-in is shared, not copied: ``clone`` of a pipeline that holds one (as ``GridSearchCV`` does)
keeps the very same plug-in object, so its reports land where the user looks.
"""

from __future__ import annotations

__all__ = ["PipelinePlugin"]


class PipelinePlugin:
    """Base class of plug-ins: every hook is a no-op.

    Attributes
    ----------
    enabled : bool
        When False the loop skips the plug-in altogether (and, with no other plug-in, runs its
        zero-overhead path).
    captures_warnings : bool
        When True the loop records the warnings each stage raises into ``ctx.warnings``
        (and still shows them to the user).
    observer : bool
        True for a plug-in that only records what happened: it defines no ``before_stage``, and
        its stage hooks neither change a run nor stop it. On the single-row fast inference path,
        when every plug-in attached is an observer, the loop runs the stages one after the other
        with nothing between them but a clock reading, then calls ``after_stage`` for each, in
        order, with the same contexts (data, timings, warnings) as otherwise; their ``X`` and
        ``output`` are made, as scikit-learn's steps return them, when first read. The monitor
        is one.

    Examples
    --------
    >>> from ml_toolbox.plugins import PipelinePlugin
    >>> class StageNames(PipelinePlugin):
    ...     def __init__(self):
    ...         self.seen = []
    ...     def after_stage(self, ctx):
    ...         self.seen.append((ctx.stage_name, ctx.mode))
    """

    enabled = True
    captures_warnings = False
    observer = False

    # -- one pipeline execution ------------------------------------------------------------
    def before_run(self, run):
        """Called when a pipeline execution starts.

        Parameters
        ----------
        run : ~ml_toolbox.context.RunContext
            The execution: pipeline name, mode (``fit``, ``transform``, ``predict``...), run id and
            start time.
        """

    def after_run(self, run):
        """Called when a pipeline execution ended well.

        Parameters
        ----------
        run : ~ml_toolbox.context.RunContext
            The execution: pipeline name, mode (``fit``, ``transform``, ``predict``...), run id and
            start time.
        """

    def on_run_error(self, run, error):
        """Called when a pipeline execution ended with an error.

        Parameters
        ----------
        run : ~ml_toolbox.context.RunContext
            The execution: pipeline name, mode (``fit``, ``transform``, ``predict``...), run id and
            start time.
        error : BaseException
            The exception raised by the execution; it propagates to the caller after every plug-in has seen it.
        """

    # -- one stage run ---------------------------------------------------------------------
    def before_stage(self, ctx):
        """Called when a stage run starts, before its first attempt.

        Parameters
        ----------
        ctx : ~ml_toolbox.context.StageContext
            The stage run: stage name and index, mode, attempt number, input ``X`` and, after a
            success, ``output``.
        """

    def after_stage(self, ctx):
        """Called when a stage run ended well; ``ctx.output`` holds its result.

        Parameters
        ----------
        ctx : ~ml_toolbox.context.StageContext
            The stage run: stage name and index, mode, attempt number, input ``X`` and, after a
            success, ``output``.
        """

    def on_stage_error(self, ctx, error):
        """Called when a stage run failed for good, all attempts used.

        Parameters
        ----------
        ctx : ~ml_toolbox.context.StageContext
            The stage run: stage name and index, mode, attempt number, input ``X`` and, after a
            success, ``output``.
        error : BaseException
            The exception raised by the last attempt; it then propagates.
        """

    def on_stage_retry(self, ctx, error):
        """Called when attempt ``ctx.attempt`` (2 or more) starts.

        Parameters
        ----------
        ctx : ~ml_toolbox.context.StageContext
            The stage run: stage name and index, mode, attempt number, input ``X`` and, after a
            success, ``output``.
        error : BaseException
            The exception raised by the previous attempt.
        """

    # -- sharing ---------------------------------------------------------------------------
    def __sklearn_clone__(self):
        # scikit-learn's clone() calls this: plug-ins are shared by the clones, not copied.
        return self
