"""Debugging a pipeline: breakpoints, snapshots, the execution trace, profiles and a post-mortem.

Run it with ``python examples/debugging.py`` once the package is installed (``make test`` does it).
The guide is docs/debugging.md.
"""

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from ml_toolbox import FeaturePipeline, MLToolbox, PipelineDebugger, UnifiedMLPipeline


def log_features(X):
    """A stage that only accepts non-negative values (it fails on standardised data)."""
    if (np.asarray(X) < 0).any():
        raise ValueError("log_features got negative values; put it before the scaler")
    return np.log1p(X)


def main():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.copy()
    X.iloc[::25, 3] = np.nan  # a few missing values, so the snapshots have something to show

    # 1. The seed's usage pattern 4, as written.
    toolbox = MLToolbox()
    pipeline = UnifiedMLPipeline(toolbox)
    debugger = PipelineDebugger(enable_debugging=True)
    pipeline.feature_pipeline.debugger = debugger
    debugger.add_breakpoint('preprocessing')

    # Execute with debugging
    result = pipeline.execute(X, y, mode='train')

    # Get trace
    trace = debugger.get_execution_trace()
    visualization = debugger.visualize_trace()
    print(visualization)
    snapshot = debugger.snapshots[("preprocessing", "before")]
    print(f"\n{snapshot!r}")
    print(snapshot.stats.head(5).to_string())
    print(f"\nmodel: {type(result['model']).__name__}, {len(trace)} stage run(s) traced")

    # 2. One debugger for the whole pipeline: conditional breakpoints, capture="all", profiling.
    debugger = PipelineDebugger(capture="all", profile=["model"], rich_output=False)
    pipe = UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("scale", StandardScaler())],
                             model=LogisticRegression(max_iter=1000), debugger=debugger)
    big_batches = []
    debugger.add_breakpoint("scale", condition=lambda ctx: ctx.n_rows > 100,
                            action=lambda ctx: big_batches.append((ctx.mode, ctx.n_rows)))
    pipe.fit(X, y)
    pipe.predict(X.iloc[:10])  # a small batch: the condition does not hold
    print(f"\nbreakpoint on 'scale' fired for {big_batches}")
    after_scale = debugger.snapshots[("scale", "after")]
    print(f"after 'scale' while fitting: means within "
          f"{after_scale.stats['mean'].abs().max():.1e} of 0, stds "
          f"{after_scale.stats['std'].min():.3f}..{after_scale.stats['std'].max():.3f}")
    print()
    print(debugger.visualize_trace())
    print()
    print(debugger.time_breakdown().to_string(index=False))
    print()
    print(debugger.profiles["model", "fit"].report(5))

    # 3. Post-mortem: the failing stage's input is kept; replay it alone, then check a fix.
    debugger = PipelineDebugger()
    features = FeaturePipeline([("scale", StandardScaler()), ("log", log_features)],
                               debugger=debugger)
    try:
        features.fit(X.fillna(0))
    except ValueError as error:
        print(f"\nfit failed: {error}")
    failure = debugger.last_failure
    print(failure)
    try:
        failure.replay()
    except ValueError as error:
        print(f"replay reproduces it: {error}")
    fixed = failure.replay(X=failure.X - failure.X.min())  # shift to non-negative values
    print(f"with the input shifted to >= 0 the stage works: output shape {fixed.shape}")


if __name__ == "__main__":
    main()
