"""ml_toolbox: scikit-learn pipelines you can see into, retry, debug, version and serve.

The public names, grouped. Each is imported on first use, so ``import ml_toolbox`` stays light and
optional extras (matplotlib, dask, mlflow, skops) load only when a feature needs them.

Pipelines
    Pipeline, make_pipeline (drop-ins for scikit-learn's), PipelineStage, FeaturePipeline, TrainingPipeline, InferencePipeline, UnifiedMLPipeline, MLToolbox
Plug-ins
    PipelineMonitor, PipelineMetrics, PipelineDebugger, RetryHandler, RetryConfig, RetryStrategy,
    PipelinePlugin, StageContext, RunContext
Persistence
    PipelinePersistence
Runs (see ml_toolbox.runs: also submit, track, RunFuture...)
    RunStore, RunRecord, Tracker, MLflowTracker, TensorBoardTracker
Serving
    Router, RolloutPolicy, create_app (the HTTP app; the ``serve`` extra)
Training lifecycle
    Callback, EarlyStopping, ModelCheckpoint, History, ProgressBar, Metric

``from ml_toolbox.pipelines import X`` gives the very same objects.
"""

from ml_toolbox import display as _display  # noqa: F401 - registers the pipelines' renderers
from ml_toolbox._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    # pipelines
    "Pipeline": "ml_toolbox.pipeline",
    "make_pipeline": "ml_toolbox.pipeline",
    "PipelineStage": "ml_toolbox.stage",
    "BasePipeline": "ml_toolbox.base",
    "FeaturePipeline": "ml_toolbox.feature",
    "TrainingPipeline": "ml_toolbox.training",
    "InferencePipeline": "ml_toolbox.inference",
    "UnifiedMLPipeline": "ml_toolbox.unified",
    "MLToolbox": "ml_toolbox.toolbox",
    # plug-in protocol
    "PipelinePlugin": "ml_toolbox.plugins",
    "StageContext": "ml_toolbox.context",
    "RunContext": "ml_toolbox.context",
    # plug-ins
    "PipelineMonitor": "ml_toolbox.monitor",
    "PipelineMetrics": "ml_toolbox.monitor",
    "PipelineDebugger": "ml_toolbox.debugger",
    "RetryHandler": "ml_toolbox.retry",
    "RetryConfig": "ml_toolbox.retry",
    "RetryStrategy": "ml_toolbox.retry",
    # persistence
    "PipelinePersistence": "ml_toolbox.store",
    # runs
    "RunStore": "ml_toolbox.runs.store",
    "RunRecord": "ml_toolbox.runs.store",
    "Tracker": "ml_toolbox.runs._tracker",
    "MLflowTracker": "ml_toolbox.runs.trackers",
    "TensorBoardTracker": "ml_toolbox.runs.trackers",
    # serving
    "Router": "ml_toolbox.serving.router",
    "RolloutPolicy": "ml_toolbox.serving.policy",
    "create_app": "ml_toolbox.serving.http",
    # training lifecycle
    "Callback": "ml_toolbox.callbacks",
    "EarlyStopping": "ml_toolbox.callbacks",
    "ModelCheckpoint": "ml_toolbox.callbacks",
    "History": "ml_toolbox.callbacks",
    "ProgressBar": "ml_toolbox.callbacks",
    "Metric": "ml_toolbox.callbacks",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports('ml_toolbox', _EXPORTS, globals())
