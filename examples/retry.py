"""Retry: a feature stage that reads from a flaky source recovers instead of failing the run.

The seed's usage pattern 3, as written, on a pipeline whose first stage fetches an extra feature
from a "remote feature store" that drops the connection now and then. The first two requests
fail; the retry handler waits (1 s, then 2 s: exponential backoff) and runs a clean attempt, and
the training completes. The statistics show what happened.

Run it with ``python examples/retry.py`` (about 3 seconds: the retries really wait).
"""

import logging

import numpy as np
from rich.console import Console
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from ml_toolbox.pipelines import RetryConfig, RetryHandler, UnifiedMLPipeline


class FlakyFeatureStore:
    """Stands in for a remote service: the first ``failures`` requests time out or drop."""

    def __init__(self, failures=2):
        self.failures = failures
        self.requests = 0

    def __sklearn_clone__(self):  # a connection is shared by the stage's clones, not copied
        return self

    def lookup(self, X):
        self.requests += 1
        if self.requests <= self.failures:
            error = ConnectionResetError if self.requests % 2 else TimeoutError
            raise error(f"feature store: request {self.requests} failed")
        return np.log1p(np.abs(X[:, :1]))  # the "remote" feature


class RemoteFeatures(BaseEstimator, TransformerMixin):
    """Appends a feature fetched from the store to the input."""

    def __init__(self, store=None):
        self.store = store

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        X = np.asarray(X, dtype=float)
        return np.hstack([X, self.store.lookup(X)])


def main():
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    X, y = load_breast_cancer(return_X_y=True)
    store = FlakyFeatureStore(failures=2)
    pipeline = UnifiedMLPipeline(
        features=[("remote", RemoteFeatures(store)), ("scale", StandardScaler())],
        model=LogisticRegression(max_iter=1000),
    )

    # --- the seed's pattern 3, as written -----------------------------------------------
    retry_handler = RetryHandler(RetryConfig(max_retries=3))
    pipeline.feature_pipeline.retry_handler = retry_handler
    pipeline.feature_pipeline.enable_retry = True

    # Execute with automatic retry
    result = pipeline.execute(X, y, mode='train')
    # -------------------------------------------------------------------------------------

    console = Console()
    console.print(f"trained {type(result['model']).__name__}; metrics {result['metrics']}; "
                  f"the store saw {store.requests} requests")
    console.print(retry_handler)  # a table of per-stage statistics
    stats = retry_handler.get_statistics("remote")
    console.print(f"stage 'remote': {stats['attempts']} attempts, {stats['retries']} retries, "
                  f"{stats['successes_after_retry']} success after retry, "
                  f"{stats['total_sleep']:.0f} s slept")
    return result, retry_handler


if __name__ == "__main__":
    main()
