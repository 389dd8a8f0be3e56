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
        """A run starts."""

    def log_metrics(self, run, metrics, step=None):
        """``metrics`` (``{name: float}``) were measured at ``step`` (an epoch, or None: final)."""

    def emit(self, metrics, run=None):
        """One finished pipeline execution (:class:`~ml_toolbox.monitor.PipelineMetrics`)."""

    def progress(self, run):
        """The run's progress changed (``run.progress``, ``run.progress_text``)."""

    def end_run(self, run):
        """A run ended (``run.status`` is ``"success"``, ``"failed"`` or ``"cancelled"``)."""

    def link_version(self, run, version):
        """A store version (a dict: store, name, version) was saved from ``run``."""

    def close(self):
        """Release what the tracker holds (files, connections)."""

    def __sklearn_clone__(self):
        # scikit-learn's clone() calls this: trackers are shared by the clones, like plug-ins.
        return self
