"""Runs: every fit recorded in an embedded run store, with MLflow and TensorBoard trackers,
history, reports, comparison, background executions and promotion of a winner.

Record
    RunStore (SQLite, one file, WAL mode), MLflowTracker, TensorBoardTracker, Tracker (the
    protocol, shared with the monitor's sinks), track, current_run, ActiveRun
Read
    RunRecord, RunComparison, RunReport (``RunStore.runs / get / compare / report / ...``)
Run in the background
    submit, RunFuture, RunCancelled
Errors
    RunStoreError, RunStoreWarning, RunNotFoundError

Each name is imported on first use: ``import ml_toolbox.runs`` stays light.
"""

from ml_toolbox._lazy import lazy_exports

_EXPORTS = {
    "RunStore": "ml_toolbox.runs.store",
    "RunRecord": "ml_toolbox.runs.store",
    "RunStoreError": "ml_toolbox.runs.store",
    "RunStoreWarning": "ml_toolbox.runs.store",
    "RunNotFoundError": "ml_toolbox.runs.store",
    "Tracker": "ml_toolbox.runs._tracker",
    "ActiveRun": "ml_toolbox.runs._active",
    "RunCancelled": "ml_toolbox.runs._active",
    "track": "ml_toolbox.runs._active",
    "current_run": "ml_toolbox.runs._active",
    "fingerprint": "ml_toolbox.runs._active",
    "MLflowTracker": "ml_toolbox.runs.trackers",
    "TensorBoardTracker": "ml_toolbox.runs.trackers",
    "RunComparison": "ml_toolbox.runs.views",
    "RunReport": "ml_toolbox.runs.views",
    "submit": "ml_toolbox.runs.background",
    "RunFuture": "ml_toolbox.runs.background",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports('ml_toolbox.runs', _EXPORTS, globals())
