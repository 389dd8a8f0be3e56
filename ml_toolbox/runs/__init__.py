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

import importlib

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


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ml_toolbox.runs' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
