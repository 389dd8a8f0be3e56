"""Orchestration: a graph of feature stages, run in parallel (optionally on Dask), cached,
described as config, validated and dry-run before the real fit.

Run: ``python examples/orchestration.py`` (add ``--dask`` to run the stages on a local Dask
cluster; needs ``pip install "ml_toolbox[dask]"``).
"""

import sys
import tempfile

import numpy as np
from joblib import parallel_config
from rich.console import Console
from sklearn.datasets import make_classification

from ml_toolbox import UnifiedMLPipeline
from ml_toolbox.config import ConfigError
from ml_toolbox.plugins import PipelinePlugin


class CacheReport(PipelinePlugin):
    """Remembers, per stage, whether it was fitted or loaded from the cache."""

    def __init__(self):
        self.last = {}

    def after_stage(self, ctx):
        self.last[ctx.stage_name] = ctx.extra.get("cache")

CONFIG = {
    "name": "orchestration_demo",
    "features": [
        {"name": "impute", "component": "SimpleImputer", "params": {"strategy": "median"}},
        {"name": "pca", "component": "PCA", "params": {"n_components": 5, "random_state": 0},
         "depends_on": ["impute"], "timeout": 60},
        {"name": "kbest", "component": "SelectKBest", "params": {"k": 4},
         "depends_on": ["impute"]},
        {"name": "minmax", "component": "MinMaxScaler", "depends_on": ["pca", "kbest"]},
    ],
    "feature_options": {"n_jobs": 2, "failure_strategy": "continue", "timeout": 600},
    "model": {"component": "LogisticRegression", "params": {"max_iter": 500}},
}


def main(argv=None, console=None):
    argv = sys.argv[1:] if argv is None else argv
    console = console or Console()
    X, y = make_classification(n_samples=2000, n_features=20, random_state=0)
    X[::50, 3] = np.nan

    # 1. A config with a typo is refused before anything is fitted, every problem at once.
    broken = {**CONFIG, "model": {"component": "LogisticRegresion", "params": {"C": -1}}}
    try:
        UnifiedMLPipeline.from_config(broken)
    except ConfigError as error:
        console.print(f"[yellow]refused:[/yellow] {error}")

    # 2. Build, dry-run on 200 rows, then fit for real (with a cache and a monitor).
    with tempfile.TemporaryDirectory() as cache:
        config = {**CONFIG, "feature_options": {**CONFIG["feature_options"], "memory": cache}}
        pipe = UnifiedMLPipeline.from_config(config)
        dry = pipe.validate(X, y)
        console.print(f"dry run: {dry.n_rows} rows, features {dry.features_shape}, "
                      f"{dry.duration:.2f} s")
        report = CacheReport()
        pipe.feature_pipeline.monitor = report  # any plug-in goes in a plug-in slot
        if "--dask" in argv:
            from distributed import Client, LocalCluster

            with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                              dashboard_address=None) as cluster, Client(cluster), \
                    parallel_config(backend="dask"):
                pipe.fit(X, y)
            console.print("fitted on a Dask cluster")
        else:
            pipe.fit(X, y)
        console.print(f"accuracy: {pipe.score(X, y):.3f}; features: "
                      f"{list(pipe.get_feature_names_out()[:3])} ...")
        console.print(f"first fit: {report.last}")
        pipe.fit(X, y)  # the second fit loads the fitted stages from the cache
        console.print(f"second fit: {report.last}")
        same = UnifiedMLPipeline.from_config(pipe.to_config()).to_config() == pipe.to_config()
        console.print(f"config round trip: {same}")
    return pipe


if __name__ == "__main__":
    main()
