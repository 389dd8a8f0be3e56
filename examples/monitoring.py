"""Monitoring: see inside a pipeline -- which stage is slow, how much data flows, what failed.

Runs the seed's usage pattern 1 ("Production Pipeline with Monitoring") as written, then prints the
statistics the monitors collected. Run it with ``python examples/monitoring.py``.
"""

from rich.console import Console
from rich.pretty import Pretty
from sklearn.datasets import load_breast_cancer

from ml_toolbox import MLToolbox, PipelineMonitor, UnifiedMLPipeline


def main(console=None):
    console = console or Console()
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)

    # -- usage pattern 1, as the seed writes it ------------------------------------------------
    toolbox = MLToolbox()
    pipeline = UnifiedMLPipeline(toolbox)

    # Enable monitoring
    pipeline.feature_pipeline.monitor = PipelineMonitor()
    pipeline.training_pipeline.monitor = PipelineMonitor()

    # Execute
    result = pipeline.execute(X, y, mode='train')

    # Get metrics
    stats = pipeline.feature_pipeline.monitor.get_pipeline_statistics()
    # -------------------------------------------------------------------------------------------

    console.print("[bold]Feature pipeline statistics[/bold] (seconds, rows, bytes):")
    console.print(Pretty(stats))
    training = pipeline.training_pipeline.monitor.get_pipeline_statistics("training_pipeline")
    model = training["stages"]["model"]
    console.print(f"model {type(result['model']).__name__} fitted on {model['mean_rows_in']:.0f} "
                  f"rows in {model['mean_duration'] * 1e3:.1f} ms")

    # One monitor for the whole pipeline: fit, then a stream of single-row predictions.
    monitor = PipelineMonitor()
    pipeline = UnifiedMLPipeline(toolbox, monitor=monitor)
    pipeline.fit(X, y)
    for i in range(200):
        pipeline.predict(X.iloc[[i]])
    console.print(monitor)  # a rich table: per stage, P50 / P95 / P99 and throughput
    slow = sorted(monitor.anomalies(), key=lambda a: a.score, reverse=True)
    console.print(f"{len(slow)} anomalous stage run(s) out of {len(monitor.to_frame())}; "
                  f"the worst:" + "".join(f"\n  {a.reason}" for a in slow[:3]))
    return monitor


if __name__ == "__main__":
    main()
