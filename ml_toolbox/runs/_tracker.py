"""The tracker protocol: what every tracker (the run store, MLflow, TensorBoard, a user's own) hears.

One protocol, shared with the monitor's sinks: a tracker *is* a monitor sink (it has
``emit(metrics)``), so ``PipelineMonitor(sinks=[RunStore("runs/")])`` works as well as
``UnifiedMLPipeline(tracking=RunStore("runs/"))``. Within a tracked run the execution loop's
records of each pipeline execution reach the trackers through the same ``emit`` (with the run).
"""

from __future__ import annotations

__all__ = ["Tracker"]


class Tracker:
    """Base class of trackers: every hook is a no-op; override the ones you need.

    The hooks, in the order one run calls them::

        start_run(run)                  the run begins: run.params, run.data, run.tags are set
        log_metrics(run, metrics, step) per epoch (step = epoch) or per step, any number of times
        emit(metrics, run)              one finished pipeline execution (a PipelineMetrics)
        progress(run)                   now and then, for long runs (run.progress in [0, 1])
        end_run(run)                    the run ended: run.status, run.error, run.metrics, ...
        link_version(run, version)      a store version was saved from the run

    ``run`` is a :class:`~ml_toolbox.runs.ActiveRun`. A tracker that raises never fails the
    pipeline: its error is recorded on the run (``run.tracker_errors``) and shown once, as a
    ``RuntimeWarning``. ``emit(metrics)`` without a run is the monitor-sink call: the execution is
    not part of a tracked run.

    Examples
    --------
    >>> from ml_toolbox.runs import Tracker
    >>> class Printer(Tracker):
    ...     def __init__(self):
    ...         self.lines = []
    ...     def log_metrics(self, run, metrics, step=None):
    ...         self.lines.append((step, sorted(metrics)))
    """

    def start_run(self, run):
        """Called when a run starts.

        Parameters
        ----------
        run : ~ml_toolbox.runs.ActiveRun
            The run; its ``params``, ``data`` and ``tags`` are set.
        """

    def log_metrics(self, run, metrics, step=None):
        """Called when metrics were measured.

        Parameters
        ----------
        run : ~ml_toolbox.runs.ActiveRun
            The run.
        metrics : dict of str to float
            The values, by metric name.
        step : int or None, default=None
            The step (an epoch), or None for final values.
        """

    def emit(self, metrics, run=None):
        """Called with one finished pipeline execution.

        Parameters
        ----------
        metrics : ~ml_toolbox.monitor.PipelineMetrics
            The execution, with its stage records.
        run : ~ml_toolbox.runs.ActiveRun or None, default=None
            The run it belongs to; None when the tracker is used as a monitor sink (the execution is not
            part of a tracked run).
        """

    def progress(self, run):
        """Called when the run's progress changed.

        Parameters
        ----------
        run : ~ml_toolbox.runs.ActiveRun
            The run; ``run.progress`` (in [0, 1]) and ``run.progress_text`` are set.
        """

    def end_run(self, run):
        """Called when a run ended.

        Parameters
        ----------
        run : ~ml_toolbox.runs.ActiveRun
            The run; ``run.status`` is ``"success"``, ``"failed"`` or ``"cancelled"``, and ``run.error``
            and ``run.metrics`` are set.
        """

    def link_version(self, run, version):
        """Called when a store version was saved from a run.

        Parameters
        ----------
        run : ~ml_toolbox.runs.ActiveRun
            The run.
        version : dict
            The version: ``store``, ``name`` and ``version``.
        """

    def close(self):
        """Release what the tracker holds (files, connections)."""

    def __sklearn_clone__(self):
        # scikit-learn's clone() calls this: trackers are shared by the clones, like plug-ins.
        return self
