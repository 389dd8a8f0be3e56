"""Anomalies compare comparable runs only (same stage, mode and size bucket), need a minimum
absolute excess, and inputs refused at the input check count as failed runs with their reason."""

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from ml_toolbox import PipelineMonitor, UnifiedMLPipeline
from ml_toolbox.exceptions import InputSchemaError
from ml_toolbox.monitor import PipelineMetrics, StageRecord, rows_bucket


def _record(monitor, duration, rows, i, stage="scale", mode="transform"):
    record = StageRecord(stage, 0, mode, 1000.0 + i, duration, rows_in=rows)
    monitor.record(PipelineMetrics("feature_pipeline", mode, run_id=i, start_time=1000.0 + i,
                                   duration=duration, status="success", stages=[record]))


@settings(max_examples=40, deadline=None)
@given(st.floats(5e-6, 5e-4), st.floats(1.5, 20.0), st.integers(5, 40), st.integers(0, 2**16))
def test_microsecond_jitter_is_never_an_anomaly(median, factor, n_runs, seed):
    """Runs faster than the minimum excess can be many times their median: not anomalies."""
    rng = np.random.default_rng(seed)
    monitor = PipelineMonitor()
    for i in range(n_runs):
        _record(monitor, median * (1 + rng.normal(0, 0.01)), 1, i)
    if median * factor - median >= 1e-3:
        return
    _record(monitor, median * factor, 1, n_runs)
    assert monitor.anomalies() == []
    # the same history with the excess rule off does flag it (the rule is what spares it)
    if factor >= 2.5:
        assert len(monitor.anomalies(min_excess=0)) == 1


@settings(max_examples=30, deadline=None)
@given(st.floats(1e-5, 1e-3), st.sampled_from([100, 1_000, 100_000]), st.integers(6, 30),
       st.integers(0, 2**16))
def test_a_full_batch_among_single_rows_is_not_compared_with_them(one_row, batch_rows, n_runs,
                                                                   seed):
    rng = np.random.default_rng(seed)
    monitor = PipelineMonitor()
    for i in range(n_runs):
        _record(monitor, one_row * (1 + rng.normal(0, 0.01)), 1, i)
    # a batch call, hundreds of times slower than the one-row calls: its own bucket
    _record(monitor, one_row * batch_rows * 5 + 0.01, batch_rows, n_runs)
    assert monitor.anomalies() == []


@settings(max_examples=30, deadline=None)
@given(st.floats(2e-3, 0.05), st.floats(3.0, 20.0), st.integers(1, 10_000))
def test_a_real_slowdown_within_its_bucket_is_flagged(median, factor, rows):
    monitor = PipelineMonitor()
    for i in range(20):
        _record(monitor, median * (1 + 0.001 * (i % 3)), rows, i)
    _record(monitor, median * factor, rows, 20)
    [a] = monitor.anomalies()
    assert a.rows == rows_bucket(rows) and a.n_runs == 21
    assert f"on {rows_bucket(rows)}," in a.reason and "runs of that size" in a.reason


@pytest.mark.parametrize("rows, bucket", [(None, "unknown rows"), (0, "0 rows"), (1, "1 row"),
                                          (2, "2-10 rows"), (10, "2-10 rows"),
                                          (11, "11-100 rows"), (1000, "101-1000 rows"),
                                          (1001, "1001-10000 rows")])
def test_rows_buckets(rows, bucket):
    assert rows_bucket(rows) == bucket


def test_min_excess_is_a_setting_checked_and_exported():
    with pytest.raises(ValueError, match=re.escape(
            "anomaly_min_excess must be a number >= 0 (seconds); got -1")):
        PipelineMonitor(anomaly_min_excess=-1)
    monitor = PipelineMonitor(anomaly_min_excess=0.5)
    assert monitor.to_dict()["settings"]["anomaly_min_excess"] == 0.5
    assert PipelineMonitor.from_json(monitor.to_json()).anomaly_min_excess == 0.5


# -- refused inputs are failed runs -----------------------------------------------------------
@pytest.mark.parametrize("method", ["predict", "predict_proba", "score"])
@pytest.mark.parametrize("bad, reason", [
    (lambda X: X.drop(columns="b"), "missing column(s) ['b']"),
    (lambda X: X.assign(id=1), "unexpected column(s) ['id']"),
    (lambda X: X.astype({"a": str}), "column 'a' had dtype float64 at fit time"),
    (lambda X: X.iloc[:0], "X has no rows"),
])
def test_a_refused_input_is_a_failed_run_with_its_reason(method, bad, reason):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(30, 2)), columns=["a", "b"])
    y = (X["a"] > 0).astype(int)
    monitor = PipelineMonitor()
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())], model=LogisticRegression(),
                             monitor=monitor, name="churn").fit(X, y)
    args = (bad(X), y.iloc[:len(bad(X))]) if method == "score" else (bad(X),)
    with pytest.raises(InputSchemaError):
        getattr(pipe, method)(*args)
    [failed] = monitor.history(status="failed")
    assert failed.pipeline_name == "inference_pipeline" and failed.mode == method
    assert failed.error.startswith("InputSchemaError: UnifiedMLPipeline 'churn'")
    assert reason in failed.error
    assert failed.stages == []
    stats = monitor.get_pipeline_statistics("inference_pipeline")
    assert stats["failures"] == 1
    # on the inference pipeline itself, too (with its own monitor)
    monitor.reset()
    pipe.inference_pipeline.monitor = monitor
    with pytest.raises(InputSchemaError):
        getattr(pipe.inference_pipeline, method)(*args)
    [failed] = monitor.history(status="failed")
    assert reason in failed.error
