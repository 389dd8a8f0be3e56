"""Tests of ml_toolbox.monitor: hooks, statistics, anomalies, export, display, sinks, integration."""

import doctest
import gc
import io
import json
import pickle
import re
import runpy
import sys
import threading
import warnings
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.datasets import make_classification
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import StandardScaler

import ml_toolbox.monitor as monitor_module
from ml_toolbox import (FeaturePipeline, MLToolbox, PipelineMetrics, PipelineMonitor,
                        UnifiedMLPipeline)
from ml_toolbox.context import RunContext, StageContext
from ml_toolbox.monitor import FORMAT, FORMAT_VERSION, Anomaly, MonitorSink
from ml_toolbox.plugins import PipelinePlugin
from ml_toolbox.retry import RetryConfig, RetryHandler

ROOT = Path(__file__).resolve().parents[1]


# -------------------------------------------------------------------------------------------------
# helpers: drive the hooks exactly as the execution loop does, with known durations
# -------------------------------------------------------------------------------------------------


def drive(monitor, pipeline_name="feature_pipeline", mode="transform", durations=(0.01, 0.02),
          X=None, stage_names=None, fail_at=None, error=None, warns=None, attempts=None,
          run_duration=None):
    """One pipeline execution through the monitor's hooks, with ``ctx.duration`` set by hand."""
    X = np.zeros((10, 3)) if X is None else X
    stage_names = stage_names or [f"stage{i}" for i in range(len(durations))]
    run = RunContext(None, pipeline_name, mode, stage_names)
    monitor.before_run(run)
    try:
        for i, (name, duration) in enumerate(zip(stage_names, durations)):
            ctx = StageContext(run, None, name, i, mode, False, X, None)
            run.stages.append(ctx)
            monitor.before_stage(ctx)
            for attempt in range(2, (attempts or {}).get(name, 1) + 1):
                ctx.attempt = attempt
                ctx.last_error = ConnectionError(f"flaky {attempt - 1}")
                monitor.on_stage_retry(ctx, ctx.last_error)
            ctx.duration = duration
            ctx.warnings = list((warns or {}).get(name, ()))
            if i == fail_at:
                ctx.status, ctx.error = "failed", error
                monitor.on_stage_error(ctx, error)
                raise error
            ctx.status, ctx.output = "success", X
            monitor.after_stage(ctx)
    except Exception as exc:
        run.duration = sum(durations[: i + 1]) if run_duration is None else run_duration
        run.status, run.error = "failed", exc
        monitor.on_run_error(run, exc)
        raise
    run.duration = sum(durations) if run_duration is None else run_duration
    run.status = "success"
    monitor.after_run(run)
    return run


class Flaky(BaseEstimator, TransformerMixin):
    """Fails the first ``fails`` fits of the whole process (counted on the class), then scales."""

    calls = 0

    def __init__(self, fails=1):
        self.fails = fails

    def fit(self, X, y=None):
        type(self).calls += 1
        if type(self).calls <= self.fails:
            raise ConnectionError(f"share unavailable (call {type(self).calls})")
        return self

    def transform(self, X):
        return np.asarray(X) * 2.0


class Warns(BaseEstimator, TransformerMixin):
    def fit(self, X, y=None):
        warnings.warn("column 'b' is constant", UserWarning)
        return self

    def transform(self, X):
        return X


class Boom(BaseEstimator, TransformerMixin):
    def fit(self, X, y=None):
        raise ValueError("bad batch: 3 rows have NaN in 'income'")

    def transform(self, X):
        return X


def quick_retry(max_attempts=3):
    """The project's retry handler: ``max_attempts`` in all, immediately, without sleeping."""
    return RetryHandler(RetryConfig(max_retries=max_attempts - 1, strategy="immediate"),
                        sleep=lambda seconds: None)


@pytest.fixture
def data():
    X, y = make_classification(300, 5, random_state=0)
    X = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    X.iloc[::7, 1] = np.nan
    return X, y


# -------------------------------------------------------------------------------------------------
# the hooks and the records
# -------------------------------------------------------------------------------------------------


def test_plugin_contract():
    m = PipelineMonitor()
    assert isinstance(m, PipelinePlugin)
    assert m.enabled and m.enable_tracking and m.captures_warnings
    assert clone(m) is m
    off = PipelineMonitor(enable_tracking=False, capture_warnings=False)
    assert not off.enabled and not off.captures_warnings
    off.enable_tracking = True
    assert off.enabled


def test_hooks_record_one_execution_per_run():
    m = PipelineMonitor()
    X = np.ones((10, 3))
    run = drive(m, durations=(0.25, 0.5), X=X, stage_names=["impute", "scale"])
    [metrics] = m.history()
    assert isinstance(metrics, PipelineMetrics)
    assert (metrics.pipeline_name, metrics.mode, metrics.run_id) == ("feature_pipeline",
                                                                     "transform", run.run_id)
    assert metrics.status == "success" and metrics.error is None
    assert metrics.duration == 0.75 and metrics.start_time == run.start_time
    impute, scale = metrics.stages
    assert (impute.stage_name, impute.index, impute.duration) == ("impute", 0, 0.25)
    assert (impute.rows_in, impute.cols_in, impute.bytes_in) == (10, 3, 240)
    assert (impute.rows_out, impute.cols_out, impute.bytes_out) == (10, 3, 240)
    assert impute.throughput == 40.0 and scale.throughput == 20.0
    assert impute.attempts == 1 and impute.retries == 0 and impute.warnings == ()
    assert metrics.stage("scale") is scale
    assert self_key_absent(run, m)


def self_key_absent(run, monitor):
    return monitor not in run.extra  # the per-run scratch is cleaned up


def test_stage_lookup_error_names_recorded_stages():
    m = PipelineMonitor()
    drive(m, stage_names=["impute", "scale"])
    msg = ("No stage named 'model' in this execution of 'feature_pipeline'. "
           "Stages recorded: ['impute', 'scale']")
    with pytest.raises(KeyError, match=re.escape(msg)):
        m.history()[0].stage("model")


def test_failed_stage_recorded_and_error_unchanged():
    m = PipelineMonitor()
    error = ValueError("bad batch")
    with pytest.raises(ValueError) as info:
        drive(m, durations=(0.1, 0.2, 0.3), fail_at=1, error=error)
    assert info.value is error
    [metrics] = m.history()
    assert metrics.status == "failed" and metrics.error == "ValueError: bad batch"
    assert [s.status for s in metrics.stages] == ["success", "failed"]
    failed = metrics.stages[1]
    assert failed.error == "ValueError: bad batch" and failed.rows_out is None
    stats = m.get_pipeline_statistics("feature_pipeline")
    assert stats["failures"] == 1 and stats["mean_duration"] is None
    assert stats["stages"]["stage1"]["failures"] == 1
    assert stats["stages"]["stage1"]["count"] == 1


def test_retries_and_warnings_are_recorded_as_text():
    m = PipelineMonitor()
    w = warnings.WarningMessage("constant column", UserWarning, "f.py", 1)
    drive(m, stage_names=["load", "scale"], attempts={"load": 3}, warns={"scale": [w]})
    load, scale = m.history()[0].stages
    assert load.attempts == 3 and load.retries == 2
    assert load.retry_errors == ("ConnectionError: flaky 1", "ConnectionError: flaky 2")
    assert scale.warnings == ("UserWarning: constant column",)
    stats = m.get_pipeline_statistics()["feature_pipeline"]["stages"]
    assert stats["load"]["retries"] == 2 and stats["scale"]["warnings"] == 1


def test_unsizable_input_counts_as_unknown_not_an_error():
    m = PipelineMonitor()
    drive(m, X={"a": [1, 2]}, durations=(0.1,))  # a dict: data_summary cannot size it
    record = m.history()[0].stages[0]
    assert record.rows_in in (None, 1, 2) and record.status == "success"


def test_sizes_agree_with_pandas_and_numpy():
    frame = pd.DataFrame({"f": np.arange(5.0), "i": np.arange(5), "s": list("abcde"),
                          "c": pd.Categorical(list("aabbc")),
                          "n": pd.array([1, None, 3, 4, 5], dtype="Int64"),
                          "d": pd.date_range("2020", periods=5, tz="UTC")})
    m = PipelineMonitor()
    for X in (frame, frame["f"], np.zeros((4, 3)), np.zeros(7)):
        drive(m, X=X, durations=(0.1,))
    sizes = [(s.rows_in, s.cols_in, s.bytes_in) for r in m.history() for s in r.stages]
    assert sizes == [(5, 6, int(frame.memory_usage(index=False, deep=False).sum())),
                     (5, 1, frame["f"].memory_usage(index=False)), (4, 3, 96), (7, 1, 56)]


@pytest.mark.parametrize("frame", [
    pd.DataFrame(np.zeros((4, 3))).iloc[[1]],          # one row of a one-block frame
    pd.DataFrame({"a": [1.0, 2.0], "s": ["x", "y"]}),  # several blocks, an extension one
    pd.DataFrame(np.zeros((0, 3))),                     # no row
    pd.DataFrame(index=range(5)),                       # no column: rows from the index
], ids=["one-row", "mixed", "no-row", "no-column"])
def test_frame_sizes_read_off_the_blocks_agree_with_pandas(frame):
    from ml_toolbox.context import data_summary

    assert data_summary(frame) == (*frame.shape,
                                   int(frame.memory_usage(index=False, deep=False).sum()))


def test_monitor_attached_mid_run_starts_recording():
    m = PipelineMonitor()
    run = RunContext(None, "p", "predict", ["a"])
    ctx = StageContext(run, None, "a", 0, "predict", False, np.zeros((2, 2)), None)
    ctx.duration, ctx.output = 0.1, np.zeros(2)
    m.after_stage(ctx)
    run.duration = 0.1
    m.after_run(run)
    assert [s.stage_name for s in m.history("p")[0].stages] == ["a"]


# -------------------------------------------------------------------------------------------------
# statistics
# -------------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=1e-6, max_value=1e3, allow_nan=False), min_size=1,
                max_size=60))
def test_percentiles_match_numpy(durations):
    m = PipelineMonitor()
    for d in durations:
        drive(m, durations=(d,), stage_names=["scale"], run_duration=2 * d)
    stage = m.get_pipeline_statistics("feature_pipeline")["stages"]["scale"]
    raw = np.array(durations)
    p50, p95, p99 = np.percentile(raw, [50, 95, 99])
    assert stage["count"] == len(durations) and stage["failures"] == 0
    assert (stage["p50_duration"], stage["p95_duration"], stage["p99_duration"]) == (p50, p95, p99)
    assert stage["max_duration"] == raw.max()
    assert stage["mean_duration"] == pytest.approx(raw.mean())
    pipe = m.get_pipeline_statistics("feature_pipeline")
    assert pipe["p95_duration"] == np.percentile(2 * raw, 95)


def test_statistics_shape_and_modes():
    m = PipelineMonitor()
    drive(m, mode="fit", durations=(1.0, 2.0))
    drive(m, mode="transform", durations=(0.1, 0.2))
    drive(m, "inference_pipeline", "predict", durations=(0.01,))
    stats = m.get_pipeline_statistics()
    assert list(stats) == ["feature_pipeline", "inference_pipeline"]
    fp = stats["feature_pipeline"]
    assert fp["executions"] == 2 and fp["modes"] == {"fit": 1, "transform": 1}
    assert set(fp["stages"]["stage0"]) == {
        "count", "failures", "mean_duration", "p50_duration", "p95_duration", "p99_duration",
        "max_duration", "total_duration", "mean_throughput", "mean_rows_in", "mean_bytes_in",
        "mean_bytes_out", "retries", "warnings", "modes"}
    only_fit = m.get_pipeline_statistics("feature_pipeline", mode="fit")
    assert only_fit["executions"] == 1 and only_fit["stages"]["stage0"]["max_duration"] == 1.0
    assert list(m.get_pipeline_statistics(mode="predict")) == ["inference_pipeline"]


def test_empty_monitor_and_unknown_names():
    m = PipelineMonitor()
    assert m.get_pipeline_statistics() == {}
    assert m.history() == [] and m.anomalies() == [] and len(m) == 0
    msg = "No pipeline named 'feature_pipeline' in this monitor. Known pipelines: [] (nothing recorded yet)"
    with pytest.raises(KeyError, match=re.escape(msg)):
        m.get_pipeline_statistics("feature_pipeline")
    drive(m, "training_pipeline", "fit")
    drive(m, "feature_pipeline", "fit")
    msg = ("No pipeline named 'inference' in this monitor. "
           "Known pipelines: ['training_pipeline', 'feature_pipeline']")
    for call in (m.get_pipeline_statistics, m.history, m.anomalies):
        with pytest.raises(KeyError, match=re.escape(msg)):
            call("inference")
    msg = "No 'predict' execution of pipeline 'feature_pipeline' in this monitor. Recorded modes: ['fit']"
    with pytest.raises(KeyError, match=re.escape(msg)):
        m.get_pipeline_statistics("feature_pipeline", mode="predict")
    msg = "No stage named 'nope' in the monitored history. Recorded stages: ['stage0', 'stage1']"
    with pytest.raises(KeyError, match=re.escape(msg)):
        m.anomalies(stage="nope")


def test_history_is_bounded_per_pipeline():
    m = PipelineMonitor(history_size=5)
    for i in range(20):
        drive(m, durations=(float(i + 1),))
    drive(m, "inference_pipeline", "predict")
    runs = m.history("feature_pipeline")
    assert len(runs) == 5 and [r.duration for r in runs] == [16.0, 17.0, 18.0, 19.0, 20.0]
    assert len(m) == 6
    stats = m.get_pipeline_statistics("feature_pipeline")
    assert stats["executions"] == 5 and stats["executions_total"] == 20
    assert [r.duration for r in m.history("feature_pipeline", last=2)] == [19.0, 20.0]
    assert m.history(last=0) == []
    m.reset()
    assert len(m) == 0 and m.get_pipeline_statistics() == {}


def test_history_filters():
    m = PipelineMonitor()
    drive(m, mode="fit")
    with pytest.raises(ValueError):
        drive(m, mode="transform", fail_at=0, error=ValueError("x"))
    assert [r.mode for r in m.history(status="failed")] == ["transform"]
    assert [r.status for r in m.history(mode="fit")] == ["success"]


# -------------------------------------------------------------------------------------------------
# anomalies
# -------------------------------------------------------------------------------------------------


def test_anomaly_flags_injected_slow_run_only():
    rng = np.random.default_rng(0)
    m = PipelineMonitor()
    normal = rng.normal(0.010, 0.0005, size=40)
    slow_at = 25
    for i, d in enumerate(normal):
        drive(m, durations=(0.050 if i == slow_at else d, 0.002), stage_names=["scale", "other"])
    found = m.anomalies()
    assert len(found) == 1
    [a] = found
    assert isinstance(a, Anomaly)
    assert (a.pipeline_name, a.stage_name, a.mode, a.duration) == ("feature_pipeline", "scale",
                                                                   "transform", 0.050)
    assert a.run_id == m.history()[slow_at].run_id and a.n_runs == 40
    assert a.score > 3.5 and a.median == pytest.approx(np.median(
        np.r_[normal[:slow_at], 0.05, normal[slow_at + 1:]]))
    assert re.fullmatch(r"stage 'scale' of 'feature_pipeline' took 50ms in 'transform' on 2-10 "
                        r"rows, \d+\.\dx slower than its median [\d.]+ms over 40 runs of that "
                        r"size \(robust z-score \+[\d.]+, threshold 3\.5\)", a.reason), a.reason
    assert str(a) == a.reason


def test_anomaly_options():
    m = PipelineMonitor(anomaly_threshold=3.5)
    for d in [1.0, 1.0, 1.0, 1.0, 1.2, 1.0, 0.3]:
        drive(m, durations=(d,))
    # identical history: the MAD is floored at 1 % of the median, 1.2 s is 20 sigmas but only
    # 1.2x the median, under the default min_ratio 1.5; 0.3 s is 3.3x faster
    [fast] = m.anomalies()
    assert fast.duration == 0.3 and "3.3x faster than its median 1.00s" in fast.reason
    assert [a.duration for a in m.anomalies(min_ratio=1.0)] == [1.2, 0.3]
    assert m.anomalies(threshold=1e6) == []
    assert m.anomalies(min_runs=8) == []
    assert m.anomalies("feature_pipeline", stage="stage0", mode="transform") == m.anomalies()
    assert m.anomalies(mode="fit") == []


def test_anomalies_compare_within_a_mode():
    m = PipelineMonitor()
    for _ in range(10):
        drive(m, mode="fit", durations=(1.0,))
        drive(m, mode="transform", durations=(0.001,))
    assert m.anomalies() == []


# -------------------------------------------------------------------------------------------------
# export / import
# -------------------------------------------------------------------------------------------------


def test_json_round_trip(tmp_path):
    m = PipelineMonitor(history_size=50, anomaly_threshold=4.0)
    w = warnings.WarningMessage("careful", RuntimeWarning, "f.py", 1)
    drive(m, mode="fit", durations=(1.0, 2.0), warns={"stage1": [w]}, attempts={"stage0": 2})
    with pytest.raises(KeyError):
        drive(m, "inference_pipeline", "predict", durations=(0.5,), fail_at=0,
              error=KeyError("col"))
    text = m.to_json(indent=2)
    data = json.loads(text)
    assert data["format"] == FORMAT == "ml_toolbox.monitor" and data["version"] == FORMAT_VERSION
    assert data["settings"]["anomaly_threshold"] == 4.0
    assert set(data["executions"][0]) == {"pipeline_name", "mode", "run_id", "start_time",
                                          "duration", "status", "error", "stages"}
    back = PipelineMonitor.from_json(text)
    assert back.history() == m.history()
    assert back.get_pipeline_statistics() == {
        k: {**v, "executions_total": v["executions"]} for k, v in m.get_pipeline_statistics().items()}
    assert back.anomaly_threshold == 4.0 and back.history_size == 50
    path = m.export(tmp_path / "monitor.json")
    assert PipelineMonitor.load(path).history() == m.history()
    assert [p.name for p in tmp_path.iterdir()] == ["monitor.json"]  # no temporary left behind


def test_from_json_grows_history_to_hold_the_file():
    m = PipelineMonitor(history_size=30)
    for _ in range(30):
        drive(m)
    data = json.loads(m.to_json())
    data["settings"]["history_size"] = 10
    back = PipelineMonitor.from_json(json.dumps(data))
    assert len(back) == 30 and back.history_size == 30


BAD_JSON = [
    ("{not json", "JSON text is not valid JSON (Expecting property name enclosed in double quotes: "
                  "line 1 column 2 (char 1)); expected a PipelineMonitor export"),
    ('[1, 2]', 'JSON text is not a PipelineMonitor export: it has no "format" marker '
               "(expected \"format\": 'ml_toolbox.monitor')"),
    ('{"runs": []}', 'JSON text is not a PipelineMonitor export: it has no "format" marker '
                     "(expected \"format\": 'ml_toolbox.monitor')"),
    ('{"format": "mlflow.run", "version": 1}', 'JSON text is not a PipelineMonitor export: '
                                               "\"format\" is 'mlflow.run', expected "
                                               "'ml_toolbox.monitor'"),
    ('{"format": "ml_toolbox.monitor", "version": 99, "executions": []}',
     "JSON text was written in monitor format version 99, newer than this ml_toolbox reads "
     "(version 1); upgrade ml_toolbox"),
    ('{"format": "ml_toolbox.monitor", "version": "1", "executions": []}',
     "JSON text has an invalid format version '1'; expected an integer (this ml_toolbox reads "
     "version 1)"),
    ('{"format": "ml_toolbox.monitor", "version": 1}',
     'JSON text is malformed: "executions" is missing, expected a list'),
    ('{"format": "ml_toolbox.monitor", "version": 1, "settings": {"history_size": -4}, '
     '"executions": []}',
     "JSON text has invalid settings: history_size must be a positive integer; got -4 (int)"),
    ('{"format": "ml_toolbox.monitor", "version": 1, "executions": [3]}',
     "JSON text is malformed: execution #0 is a int, expected an object"),
    ('{"format": "ml_toolbox.monitor", "version": 1, "executions": [{"pipeline_name": "p"}]}',
     "JSON text is malformed: execution #0 has no 'mode' field"),
    ('{"format": "ml_toolbox.monitor", "version": 1, "executions": [{"pipeline_name": "p", '
     '"mode": "fit", "start_time": 0, "duration": "slow", "status": "success", "error": null, '
     '"stages": []}]}',
     "JSON text is malformed: execution #0 field 'duration' is 'slow', expected int or float or "
     "null"),
    ('{"format": "ml_toolbox.monitor", "version": 1, "executions": [{"pipeline_name": "p", '
     '"mode": "fit", "start_time": 0, "duration": 1, "status": "success", "error": null, '
     '"stages": [{"stage_name": "a", "index": 0, "mode": "fit", "start_time": 0, "status": "x"}]}]}',
     "JSON text is malformed: execution #0 ('p', 'fit') stage #0 has no 'duration' field"),
]


@pytest.mark.parametrize("text, message", BAD_JSON)
def test_corrupt_or_foreign_json_raises_valueerror(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        PipelineMonitor.from_json(text)


def test_load_names_the_file(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"name": "an unrelated file"}')
    msg = f"{str(path)!r} is not a PipelineMonitor export: it has no \"format\" marker"
    with pytest.raises(ValueError, match=re.escape(msg)):
        PipelineMonitor.load(path)
    binary = tmp_path / "model.pkl"
    binary.write_bytes(pickle.dumps(np.arange(3)))
    with pytest.raises(ValueError, match=re.escape(f"{str(binary)!r} is not")):
        PipelineMonitor.load(binary)


# -------------------------------------------------------------------------------------------------
# display
# -------------------------------------------------------------------------------------------------


def test_rich_and_html_display():
    m = PipelineMonitor()
    empty = io.StringIO()
    Console(file=empty, width=100).print(m)
    assert "nothing recorded yet" in empty.getvalue()
    assert "nothing recorded yet" in m._repr_html_()
    drive(m, durations=(0.002, 0.5), stage_names=["impute", "scale<b>"])
    with pytest.raises(ValueError):
        drive(m, durations=(0.002,), stage_names=["impute"], fail_at=0, error=ValueError("x"))
    out = io.StringIO()
    Console(file=out, width=100).print(m)
    text = out.getvalue()
    assert "PipelineMonitor: 2 executions of 1 pipeline (history_size=1000)" in text
    assert "feature_pipeline · transform · 2 executions" in text
    row = next(line for line in text.splitlines() if line.strip().startswith("scale"))
    assert row.split()[:4] == ["scale<b>", "1", "0", "500ms"]
    html = m._repr_html_()
    assert "scale&lt;b&gt;" in html and "<td class=\"num\">500ms</td>" in html and "scale<b>" not in html
    Console(file=io.StringIO()).print(m.history()[0])  # a PipelineMetrics renders too
    assert repr(m) == ("PipelineMonitor(executions=2, pipelines=['feature_pipeline'], "
                       "history_size=1000, enabled=True)")


def test_plot_draws_a_line_per_stage_and_mode(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = PipelineMonitor()
    for i in range(8):
        drive(m, mode="fit", durations=(0.01 * (5 if i == 6 else 1), 0.02))
        drive(m, "inference_pipeline", "predict", durations=(0.001 * (1 + i / 100),))
    with pytest.raises(ValueError):
        drive(m, mode="fit", durations=(0.01,), fail_at=0, error=ValueError("x"))
    fig = m.plot()
    try:
        axes = fig.axes
        assert [a.get_title() for a in axes] == ["feature_pipeline", "inference_pipeline"]
        labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
        assert labels == ["stage0 (fit)", "stage1 (fit)", "failed run", "anomaly (circled)"]
        assert axes[0].get_yscale() == "log"  # 10 ms to 50 ms
        assert axes[1].get_yscale() == "linear"  # 1.00 to 1.07 ms: a narrow range stays linear
        [circle] = [ln for ln in axes[0].lines if ln.get_label() == "anomaly (circled)"]
        assert list(circle.get_ydata()) == [50.0]
        fig.savefig(tmp_path / "plot.png")
        assert (tmp_path / "plot.png").stat().st_size > 1000
    finally:
        plt.close(fig)
    fig, ax = plt.subplots()
    try:
        assert m.plot("inference_pipeline", ax=ax, logy=False) is fig
        assert ax.get_yscale() == "linear"
    finally:
        plt.close(fig)


def test_plot_without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    monkeypatch.setitem(sys.modules, "matplotlib.dates", None)
    msg = ("PipelineMonitor.plot() needs matplotlib, which is not installed. Install the 'plot' "
           "extra: pip install 'ml_toolbox[plot]'")
    with pytest.raises(ImportError, match=re.escape(msg)):
        PipelineMonitor().plot()


# -------------------------------------------------------------------------------------------------
# bad settings, sinks, pickling, threads
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, message", [
    ({"history_size": 0}, ValueError, "history_size must be a positive integer; got 0 (int)"),
    ({"history_size": 2.5}, ValueError, "history_size must be a positive integer; got 2.5 (float)"),
    ({"anomaly_threshold": -1}, ValueError, "anomaly_threshold must be a positive number; got -1"),
    ({"anomaly_min_ratio": 0.5}, ValueError, "anomaly_min_ratio must be a number >= 1; got 0.5"),
    ({"anomaly_min_runs": 2}, ValueError, "anomaly_min_runs must be an integer >= 3; got 2"),
    ({"sink_errors": "ignore"}, ValueError, "sink_errors must be 'warn' or 'raise'; got 'ignore'"),
    ({"sinks": [42]}, TypeError, "A monitor sink needs an emit(metrics) method or must be "
                                 "callable; got 42 (int)"),
])
def test_bad_settings(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        PipelineMonitor(**kwargs)


def test_sinks_receive_each_finished_execution():
    seen = []

    class Collect:
        def emit(self, metrics):
            seen.append(("object", metrics.mode, metrics.status))

    assert isinstance(Collect(), MonitorSink)
    m = PipelineMonitor(sinks=[Collect(), lambda metrics: seen.append(("function", metrics.mode,
                                                                       metrics.status))])
    drive(m, mode="fit")
    with pytest.raises(RuntimeError):
        drive(m, mode="predict", fail_at=0, error=RuntimeError("x"))
    assert seen == [("object", "fit", "success"), ("function", "fit", "success"),
                    ("object", "predict", "failed"), ("function", "predict", "failed")]


def test_failing_sink_warns_or_raises():
    def broken(metrics):
        raise OSError("disk full")

    m = PipelineMonitor(sinks=[broken])
    with pytest.warns(RuntimeWarning, match=re.escape(
            "failed on 'feature_pipeline' (fit): OSError: disk full")):
        drive(m, mode="fit")
    assert len(m) == 1  # recorded all the same
    strict = PipelineMonitor(sinks=[broken], sink_errors="raise")
    with pytest.raises(OSError, match="disk full"):
        drive(strict, mode="fit")
    # a failed execution: the user's error propagates, the sink's only warns
    error = ValueError("the user's own error")
    with pytest.warns(RuntimeWarning, match="disk full"), pytest.raises(ValueError) as info:
        drive(strict, mode="fit", fail_at=0, error=error)
    assert info.value is error


def test_pickle_drops_and_recreates_the_lock():
    m = PipelineMonitor(history_size=3)
    for _ in range(4):
        drive(m)
    back = pickle.loads(pickle.dumps(m))
    assert back.history() == m.history() and back is not m
    assert back._lock is not m._lock and back._history["feature_pipeline"].maxlen == 3
    drive(back)
    assert len(back) == 3 and back.get_pipeline_statistics("feature_pipeline")[
        "executions_total"] == 5


def test_threads_recording_into_one_monitor():
    m = PipelineMonitor(history_size=10_000)
    n_threads, per_thread = 8, 200

    def work(k):
        for _ in range(per_thread):
            drive(m, f"pipe{k % 2}", durations=(0.001, 0.002))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = m.get_pipeline_statistics()
    assert stats["pipe0"]["executions"] + stats["pipe1"]["executions"] == n_threads * per_thread
    assert all(len(r.stages) == 2 for r in m.history())


def test_doctests():
    result = doctest.testmod(monitor_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# -------------------------------------------------------------------------------------------------
# mlflow
# -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    """One local MLflow tracking database (sqlite) for the module: creating one takes seconds."""
    mlflow = pytest.importorskip("mlflow")
    root = tmp_path_factory.mktemp("mlflow")
    return mlflow, f"sqlite:///{root / 'mlflow.db'}", root


MLFLOW_NOISE = "ignore:The ``noload`` loader strategy is deprecated"


@pytest.mark.filterwarnings(MLFLOW_NOISE)
def test_mlflow_sink_logs_to_a_local_tracking_store(mlflow_store):
    mlflow, uri, root = mlflow_store
    from ml_toolbox.monitor import MLflowSink

    sink = MLflowSink(tracking_uri=uri, experiment_name="monitor-test",
                      artifact_location=str(root / "artifacts"), modes=("fit", "predict"))
    m = PipelineMonitor(sinks=[sink])
    for d in (0.5, 0.25):
        drive(m, mode="fit", durations=(d, 1.0), stage_names=["impute", "scale step"])
    drive(m, mode="transform")  # filtered out by modes
    sink = pickle.loads(pickle.dumps(sink))  # picklable, keeps logging into its run
    m.sinks = [sink]
    drive(m, mode="fit", durations=(0.125, 1.0), stage_names=["impute", "scale step"])
    m.close()
    client = mlflow.tracking.MlflowClient(uri)
    experiment = client.get_experiment_by_name("monitor-test")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "pipeline-monitor"
    history = client.get_metric_history(run.info.run_id, "feature_pipeline/fit/impute/duration_s")
    assert [(h.step, h.value) for h in sorted(history, key=lambda h: h.step)] == [
        (0, 0.5), (1, 0.25), (2, 0.125)]
    keys = set(run.data.metrics)
    assert {"feature_pipeline/fit/duration_s", "feature_pipeline/fit/failed",
            "feature_pipeline/fit/scale step/rows_in"} <= keys
    assert not any("/transform/" in k for k in keys)


@pytest.mark.filterwarnings(MLFLOW_NOISE)
def test_mlflow_sink_logs_into_the_active_run(mlflow_store, monkeypatch):
    mlflow, uri, root = mlflow_store
    from ml_toolbox.monitor import MLflowSink

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    try:
        experiment_id = mlflow.create_experiment("mine", artifact_location=str(root / "a"))
        m = PipelineMonitor(sinks=[MLflowSink()])
        with mlflow.start_run(experiment_id=experiment_id) as active:
            drive(m, mode="fit", durations=(0.5,))
        m.close()
        run = mlflow.tracking.MlflowClient(uri).get_run(active.info.run_id)
        assert run.data.metrics["feature_pipeline/fit/stage0/duration_s"] == 0.5
        assert client_runs(mlflow, uri, experiment_id) == 1  # no run of its own was created
    finally:
        mlflow.set_tracking_uri(None)


def client_runs(mlflow, uri, experiment_id):
    return len(mlflow.tracking.MlflowClient(uri).search_runs([experiment_id]))


# -------------------------------------------------------------------------------------------------
# integration through the real pipelines
# -------------------------------------------------------------------------------------------------


def test_unified_pipeline_fit_transform_predict(data):
    X, y = data
    m = PipelineMonitor()
    pipe = UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("scale", StandardScaler())],
                             model=LogisticRegression(), monitor=m)
    pipe.fit(X, y)
    pipe.transform(X)
    pipe.predict(X.iloc[:10])
    pipe.predict_proba(X.iloc[[0]])
    seen = [(r.pipeline_name, r.mode) for r in m.history()]
    assert seen == [("feature_pipeline", "fit"), ("training_pipeline", "fit"),
                    ("feature_pipeline", "transform"), ("inference_pipeline", "predict"),
                    ("inference_pipeline", "predict_proba")]
    fit = m.history("feature_pipeline", mode="fit")[0]
    assert [s.stage_name for s in fit.stages] == ["impute", "scale"]
    assert [s.mode for s in fit.stages] == ["fit_transform", "fit_transform"]
    impute = fit.stage("impute")
    assert (impute.rows_in, impute.cols_in, impute.bytes_in) == (300, 5, 300 * 5 * 8)
    assert (impute.rows_out, impute.cols_out) == (300, 5)
    model = m.history("training_pipeline")[0].stage("model")
    assert (model.rows_in, model.rows_out, model.bytes_out) == (300, 0, 0)
    predict = m.history("inference_pipeline", mode="predict")[0]
    assert [s.stage_name for s in predict.stages] == ["impute", "scale", "model"]
    assert predict.stage("model").rows_out == 10 and predict.stage("model").mode == "predict"
    for r in m.history():
        assert r.duration > 0 and all(s.duration > 0 for s in r.stages)
        assert r.duration >= sum(s.duration for s in r.stages)


def test_monitored_predictions_use_the_fast_path_and_match(data):
    X, y = data
    plain = UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("scale", StandardScaler())],
                              model=LogisticRegression()).fit(X, y)
    m = PipelineMonitor()
    watched = clone(plain).set_params(monitor=m).fit(X, y)
    for rows in (X.iloc[[0]], X.iloc[:7], X):
        np.testing.assert_array_equal(watched.predict_proba(rows), plain.predict_proba(rows))
    runs = m.history("inference_pipeline", mode="predict_proba")
    assert [[s.rows_in for s in r.stages] for r in runs] == [[1, 1, 1], [7, 7, 7], [300] * 3]
    assert [s.stage_name for s in runs[0].stages] == ["impute", "scale", "model"]
    assert [s.cols_out for s in runs[0].stages] == [5, 5, 2]
    stages = watched.inference_pipeline.stages_
    assert all(type(s).__name__ == "PipelineStage" for s in stages)  # nothing swapped in place


class StageByStage(PipelineMonitor):
    observer = False  # the loop then calls its hooks between the stages


class AtOnce(PipelineMonitor):
    def after_stage(self, ctx, status="success", error=None):  # the loop's contexts, at once
        super().after_stage(ctx, status, error)


class SeesData(PipelinePlugin):
    observer = True

    def __init__(self):
        self.seen, self.contexts = [], []

    def after_stage(self, ctx):
        self.seen.append((ctx.stage_name, ctx.X, ctx.output))
        self.contexts.append(ctx)


def _without_times(metrics):
    return [s._replace(start_time=0.0, duration=0.0) for s in metrics.stages]


def test_observers_see_the_same_runs_whether_stages_run_at_once_or_one_by_one(data, monkeypatch):
    """One-row predictions with observers only: the stages run at once, the hooks after them."""
    import ml_toolbox.base as base

    X, y = data
    calls = []
    observed = base._observed
    monkeypatch.setattr(base, "_observed", lambda *a: calls.append(observed(*a)) or calls[-1])
    template = UnifiedMLPipeline(features=[("impute", SimpleImputer()),
                                           ("scale", StandardScaler())],
                                 model=LogisticRegression())
    at_once, one_by_one, sees = AtOnce(), StageByStage(), SeesData()
    direct = PipelineMonitor()  # a monitor alone: recorded without contexts (base._monitored)
    a = clone(template).set_params(monitor=at_once).fit(X, y)
    b = clone(template).set_params(monitor=one_by_one).fit(X, y)
    c = clone(template).set_params(monitor=direct).fit(X, y)
    rows = [X.iloc[[i]] for i in range(8)]
    for row in rows:
        expected = b.predict_proba(row)
        np.testing.assert_array_equal(a.predict_proba(row), expected)
        np.testing.assert_array_equal(c.predict_proba(row), expected)
    assert len(calls) == 8 and all(c is not None for c in calls)  # a ran them all at once
    ra = at_once.history("inference_pipeline", mode="predict_proba")
    rb = one_by_one.history("inference_pipeline", mode="predict_proba")
    rc = direct.history("inference_pipeline", mode="predict_proba")
    assert [_without_times(r) for r in ra] == [_without_times(r) for r in rb]
    assert [_without_times(r) for r in rc] == [_without_times(r) for r in rb]
    assert [r.fast_path for r in rc] == [r.fast_path for r in rb] == ["kernel"] * 8
    assert [(r.status, r.mode, r.pipeline_name) for r in rc] == \
        [(r.status, r.mode, r.pipeline_name) for r in rb]
    assert all(s.duration > 0 for r in rc for s in r.stages)
    assert all(s.duration > 0 for r in ra for s in r.stages)
    first = ra[0].stages
    # one after the other (epoch seconds: a double resolves about 2e-7 s there, hence the margin)
    assert first[0].start_time + first[0].duration <= first[1].start_time + 1e-6
    # the contexts hold the data as scikit-learn's steps make it, (1, n) between stages
    a.inference_pipeline.monitor = sees
    a.predict_proba(rows[1])
    (n0, x0, o0), (n1, x1, o1), (n2, x2, o2) = sees.seen
    assert [n0, n1, n2] == ["impute", "scale", "model"]
    assert x0 is rows[1] and x1 is o0 and x2 is o1
    stages = a.inference_pipeline.stages_
    np.testing.assert_array_equal(o0, stages[0].estimator_.transform(rows[1]))
    np.testing.assert_array_equal(o1, stages[1].estimator_.transform(o0))
    np.testing.assert_array_equal(o2, stages[2].estimator_.predict_proba(o1))
    assert o0.shape == (1, 5) and o1.shape == (1, 5) and o2.shape == (1, 2)
    # and, as on the stage-by-stage path, a context kept after the run holds no data
    assert all(c.X is None and c.output is None for c in sees.contexts)
    assert [c.input_summary for c in sees.contexts] == [(1, 5, 40), (1, 5, 40), (1, 5, 40)]
    assert sees.contexts[-1].output_summary == (1, 2, 16)


def test_records_of_stages_run_at_once_survive_pickling_and_json_before_being_read(data):
    # their records are made when first read: a copy made before (pickle, JSON) has them all
    X, y = data
    m = PipelineMonitor()
    pipe = UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("scale", StandardScaler())],
                             model=LogisticRegression(), monitor=m).fit(X, y)
    for i in range(3):
        pipe.predict(X.iloc[[i]])
    copy = pickle.loads(pickle.dumps(m))
    back = PipelineMonitor.from_json(m.to_json())
    runs = m.history("inference_pipeline")
    assert [r.stages for r in copy.history("inference_pipeline")] == [r.stages for r in runs]
    assert back.history("inference_pipeline") == runs
    assert [[(s.stage_name, s.rows_in, s.cols_out, s.status) for s in r.stages] for r in runs] == \
        [[("impute", 1, 5, "success"), ("scale", 1, 5, "success"), ("model", 1, 1, "success")]] * 3


class RaisesAfterStage(PipelinePlugin):
    observer = True

    def after_stage(self, ctx):
        if ctx.index == 1:
            raise RuntimeError("observer broke")


def test_an_observer_raising_after_stages_run_at_once_fails_the_run_and_the_monitor_records_it(data):
    X, y = data
    m = PipelineMonitor()
    pipe = UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("scale", StandardScaler())],
                             model=LogisticRegression(), monitor=m).fit(X, y)
    pipe.inference_pipeline.debugger = RaisesAfterStage()  # its hooks run before the monitor's
    with pytest.raises(RuntimeError, match="observer broke"):
        pipe.predict(X.iloc[[0]])
    [r] = m.history("inference_pipeline")
    # the three stages ran (at once) before the hooks: each is recorded as it ran
    assert r.status == "failed" and "observer broke" in r.error
    assert [(s.stage_name, s.status, s.rows_out) for s in r.stages] == [
        ("impute", "success", 1), ("scale", "success", 1), ("model", "success", 1)]


def test_observers_get_the_failing_stage_from_the_stage_by_stage_path(data):
    X, y = data
    m = PipelineMonitor()
    pipe = UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("scale", StandardScaler())],
                             model=LogisticRegression(), monitor=m).fit(X, y)
    row = X.iloc[[0]].copy()
    row.iloc[0, 0] = np.inf  # the imputer refuses infinity, as scikit-learn's does
    with pytest.raises(ValueError, match="infinity"):
        pipe.predict(row)
    [r] = m.history("inference_pipeline")
    assert r.status == "failed" and [(s.stage_name, s.status) for s in r.stages] == [
        ("impute", "failed")]


class WarnsInHooks(PipelinePlugin):
    captures_warnings = True

    def before_run(self, run):
        warnings.warn("from before_run", UserWarning)

    def before_stage(self, ctx):
        warnings.warn(f"from before_stage of {ctx.stage_name}", UserWarning)

    def after_stage(self, ctx):
        warnings.warn(f"from after_stage of {ctx.stage_name}", UserWarning)


def test_warnings_raised_by_hooks_are_shown_but_not_recorded_as_the_stages(data):
    X, _ = data
    m = PipelineMonitor()
    pipe = FeaturePipeline([("warns", Warns()), ("scale", StandardScaler())], monitor=m)
    pipe.debugger = WarnsInHooks()  # any second plug-in: its hooks run around the monitor's
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        pipe.fit(X)
    [r] = m.history()
    assert r.stage("warns").warnings == ("UserWarning: column 'b' is constant",)
    assert r.stage("scale").warnings == ()
    assert sorted(str(w.message) for w in shown) == sorted([
        "from before_run", "from before_stage of warns", "column 'b' is constant",
        "from after_stage of warns", "from before_stage of scale", "from after_stage of scale"])


def test_a_warning_on_the_at_once_path_sends_the_stages_one_by_one():
    from ml_toolbox._warnings_recorder import WarningRecorder
    from ml_toolbox.base import _observed

    def timed(X):
        warnings.warn("raised while the stages ran at once", UserWarning)
        return [X], [0.0, 1.0]

    run = RunContext(None, "p", "predict", ["a"])
    recorder = WarningRecorder()
    try:
        assert _observed(run, timed, [None], np.zeros((1, 2)), None, ["predict"], ["a"], (),
                         recorder) is None
        assert recorder.caught == [] and run.stages == []
    finally:
        with warnings.catch_warnings(record=True) as shown:
            warnings.simplefilter("always")
            recorder.close()
    assert shown == []  # dropped: the stage-by-stage run raises it again


def test_monitor_keeps_no_reference_to_the_data(data):
    X, y = data
    m = PipelineMonitor()
    pipe = FeaturePipeline([("impute", SimpleImputer()), ("scale", StandardScaler())], monitor=m)
    X = X.copy()
    ref = weakref.ref(X)
    pipe.fit(X)
    out = pipe.transform(X)
    out_ref = weakref.ref(out)
    del X, out
    gc.collect()
    assert ref() is None and out_ref() is None
    assert len(m) == 2


def test_seed_usage_pattern_1(data):
    X, y = data
    toolbox = MLToolbox()
    pipeline = UnifiedMLPipeline(toolbox)
    pipeline.feature_pipeline.monitor = PipelineMonitor()
    pipeline.training_pipeline.monitor = PipelineMonitor()
    result = pipeline.execute(X, y, mode="train")
    stats = pipeline.feature_pipeline.monitor.get_pipeline_statistics()
    assert result["model"] is not None
    assert list(stats) == ["feature_pipeline"]
    assert stats["feature_pipeline"]["stages"]["preprocessing"]["count"] == 1
    training = pipeline.training_pipeline.monitor.get_pipeline_statistics("training_pipeline")
    assert training["stages"]["model"]["mean_rows_in"] == 300


def test_failing_stage_through_a_pipeline(data):
    X, _ = data
    m = PipelineMonitor()
    pipe = FeaturePipeline([("impute", SimpleImputer()), ("boom", Boom())], monitor=m)
    with pytest.raises(ValueError, match=re.escape("bad batch: 3 rows have NaN in 'income'")) as info:
        pipe.fit(X)
    assert type(info.value) is ValueError
    [r] = m.history()
    assert r.status == "failed" and r.error == "ValueError: bad batch: 3 rows have NaN in 'income'"
    assert [(s.stage_name, s.status) for s in r.stages] == [("impute", "success"),
                                                            ("boom", "failed")]


def test_warnings_recorded_and_still_shown(data):
    X, _ = data
    m = PipelineMonitor()
    pipe = FeaturePipeline([("impute", SimpleImputer()), ("warns", Warns())], monitor=m)
    with pytest.warns(UserWarning, match="column 'b' is constant"):
        pipe.fit(X)
    assert m.history()[0].stage("warns").warnings == ("UserWarning: column 'b' is constant",)
    quiet = PipelineMonitor(capture_warnings=False)
    pipe.monitor = quiet
    with pytest.warns(UserWarning):
        pipe.fit(X)
    assert quiet.history()[0].stage("warns").warnings == ()


class WarnsThenFails(BaseEstimator, TransformerMixin):
    def fit(self, X, y=None):
        warnings.warn("second stage warns", RuntimeWarning)
        raise ValueError("and then fails")

    def transform(self, X):
        return X


def test_each_stage_gets_its_own_warnings_even_when_one_fails(data):
    X, _ = data
    m = PipelineMonitor()
    pipe = FeaturePipeline([("warns", Warns()), ("fails", WarnsThenFails())], monitor=m)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="and then fails"):
            pipe.fit(X)
    [r] = m.history()
    assert r.stage("warns").warnings == ("UserWarning: column 'b' is constant",)
    assert r.stage("fails").warnings == ("RuntimeWarning: second stage warns",)
    # both still reach the user, in order, once each
    assert [str(w.message) for w in shown] == ["column 'b' is constant", "second stage warns"]


def test_retry_attempts_through_a_pipeline(data):
    X, _ = data
    Flaky.calls = 0
    m = PipelineMonitor()
    pipe = FeaturePipeline([("load", Flaky(fails=2)), ("scale", StandardScaler())], monitor=m,
                           retry_handler=quick_retry(3))
    pipe.fit(X)
    load = m.history()[0].stage("load")
    assert load.attempts == 3 and load.retries == 2 and load.status == "success"
    assert load.retry_errors == ("ConnectionError: share unavailable (call 1)",
                                 "ConnectionError: share unavailable (call 2)")
    assert m.get_pipeline_statistics("feature_pipeline")["stages"]["load"]["retries"] == 2


def test_graph_pipeline_with_parallel_stages(data):
    from sklearn.decomposition import PCA
    from sklearn.feature_selection import SelectKBest
    from sklearn.preprocessing import MinMaxScaler

    from ml_toolbox import PipelineStage

    X, y = data
    m = PipelineMonitor()
    pipe = FeaturePipeline([
        PipelineStage(SimpleImputer(), "impute"),
        PipelineStage(PCA(2, random_state=0), "pca", depends_on=["impute"]),
        PipelineStage(SelectKBest(k=3), "kbest", depends_on=["impute"]),
        PipelineStage(MinMaxScaler(), "minmax", depends_on=["pca", "kbest"]),
    ], n_jobs=2, monitor=m)
    pipe.fit(X, y)
    [run] = m.history()
    assert [s.stage_name for s in run.stages] == ["impute", "pca", "kbest", "minmax"]
    assert [s.index for s in run.stages] == [0, 1, 2, 3]
    sizes = {s.stage_name: (s.rows_in, s.cols_in, s.cols_out) for s in run.stages}
    assert sizes == {"impute": (300, 5, 5), "pca": (300, 5, 2), "kbest": (300, 5, 3),
                     "minmax": (300, 5, 5)}


def test_retry_handler_attempts_are_recorded(data):
    from ml_toolbox import RetryConfig, RetryHandler

    X, _ = data
    Flaky.calls = 0
    slept = []
    m = PipelineMonitor()
    handler = RetryHandler(RetryConfig(max_retries=3, base_delay=0.5), sleep=slept.append)
    pipe = FeaturePipeline([("load", Flaky(fails=1)), ("scale", StandardScaler())], monitor=m,
                           retry_handler=handler)
    pipe.fit(X)
    load = m.history()[0].stage("load")
    assert (load.attempts, load.retries, slept) == (2, 1, [0.5])
    assert load.retry_errors == ("ConnectionError: share unavailable (call 1)",)
    assert m.history()[0].stage("scale").attempts == 1


def test_disabled_monitor_is_skipped(data):
    X, _ = data
    m = PipelineMonitor(enable_tracking=False)
    FeaturePipeline([("scale", StandardScaler())], monitor=m).fit(X.fillna(0))
    assert len(m) == 0


def test_grid_search_reports_into_the_users_monitor(data):
    X, y = data
    m = PipelineMonitor()
    pipe = UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("scale", StandardScaler())],
                             model=LogisticRegression(), monitor=m)
    search = GridSearchCV(pipe, {"features__scale__with_mean": [True, False]}, cv=3, n_jobs=1)
    search.fit(X, y)
    assert search.best_estimator_.monitor is m
    modes = m.get_pipeline_statistics("feature_pipeline")["modes"]
    # 2 candidates x 3 folds + the refit, each fitting the features once
    assert modes["fit"] == 2 * 3 + 1
    assert m.get_pipeline_statistics("training_pipeline")["executions"] == 7
    assert m.get_pipeline_statistics("inference_pipeline")["modes"] == {"score": 6}


def test_threads_running_pipelines_concurrently(data):
    X, y = data
    m = PipelineMonitor()
    pipe = UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("scale", StandardScaler())],
                             model=LogisticRegression(), monitor=m).fit(X, y)
    errors = []

    def work():
        try:
            for _ in range(25):
                pipe.predict(X.iloc[:50])
            clone(pipe).fit(X, y)
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stats = m.get_pipeline_statistics()
    assert stats["inference_pipeline"]["modes"] == {"predict": 100}
    assert stats["feature_pipeline"]["executions"] == 5
    assert stats["inference_pipeline"]["stages"]["model"]["count"] == 100
    assert all(s.rows_in == 50 for r in m.history("inference_pipeline") for s in r.stages)


def test_example_runs(capsys):
    runpy.run_path(str(ROOT / "examples" / "monitoring.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "feature_pipeline" in out and "P95" in out


def test_docs_page_examples_run(tmp_path, monkeypatch):
    """The worked example, the seed's pattern and the export snippet of docs/monitoring.md run."""
    text = (ROOT / "docs" / "monitoring.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    monkeypatch.chdir(tmp_path)
    ns = {}
    exec(blocks[0], ns)  # worked example (defines X, y)
    exec(blocks[1], ns)  # usage pattern 1
    ns["monitor"] = ns["pipeline"].feature_pipeline.monitor
    exec(blocks[2], ns)  # export / load
    assert ns["same"].history() == ns["monitor"].history()
    assert (tmp_path / "monitor.json").exists()


class WarnsAtTransform(BaseEstimator, TransformerMixin):
    def __init__(self, fail=False):
        self.fail = fail

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        warnings.warn(f"transform saw {len(X)} rows", UserWarning)
        if self.fail and len(X) == 3:
            raise ValueError("refuses batches of three rows")
        return np.asarray(X) * 2.0


@pytest.mark.parametrize("rows", [1, 3])
@pytest.mark.parametrize("capture", [True, False])
def test_a_monitor_alone_records_as_its_hooks_would(data, rows, capture):
    """A lone PipelineMonitor is recorded directly (ml_toolbox.base._monitored), without
    contexts; its records are those of the hook-by-hook loop: sizes, warnings, failures."""
    X, _ = data
    steps = [("scale", StandardScaler()), ("warns", WarnsAtTransform()),
             ("fails", WarnsAtTransform(fail=True))]
    direct, hooks = PipelineMonitor(capture_warnings=capture), \
        StageByStage(capture_warnings=capture)
    assert direct._direct and not hooks._direct
    a = FeaturePipeline(steps, monitor=direct).fit(X)
    b = FeaturePipeline(steps, monitor=hooks).fit(X)
    direct.reset(), hooks.reset()
    outcomes = []
    for pipe in (a, b):
        with warnings.catch_warnings(record=True) as shown:
            warnings.simplefilter("always")
            try:
                outcomes.append(pipe.transform(X.iloc[:rows]))
            except ValueError as error:
                outcomes.append(("raised", str(error), error.__notes__))
        outcomes.append(sorted(str(w.message) for w in shown))  # still shown to the user
    assert repr(outcomes[0]) == repr(outcomes[2]) and outcomes[1] == outcomes[3]
    [ra], [rb] = direct.history(), hooks.history()
    assert _without_times(ra) == _without_times(rb)
    assert (ra.status, ra.error, ra.mode, ra.fast_path) == (rb.status, rb.error, rb.mode,
                                                              rb.fast_path)
    assert ra.status == ("failed" if rows > 1 else "success")
    assert [s.warnings for s in ra.stages][1:] == \
        [(f"UserWarning: transform saw {rows} rows",) if capture else ()] * (len(ra.stages) - 1)
    assert all(r.start_time <= s.start_time for r in (ra,) for s in ra.stages)


def test_a_monitor_subclass_with_its_own_hooks_is_called_through_them(data):
    X, y = data

    class Counting(PipelineMonitor):
        def after_stage(self, ctx, status="success", error=None):
            self.seen = getattr(self, "seen", 0) + 1
            super().after_stage(ctx, status, error)

    m = Counting()
    assert not m._direct
    pipe = UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("scale", StandardScaler())],
                             model=LogisticRegression(), monitor=m).fit(X, y)
    m.seen = 0
    pipe.predict(X.iloc[[0]])
    assert m.seen == 3 and len(m.history("inference_pipeline")) == 1


_ROW_METHODS = ["predict", "predict_proba", "predict_log_proba", "decision_function"]


@settings(max_examples=30, deadline=None)
@given(method=st.sampled_from(_ROW_METHODS), capture=st.booleans(), sink=st.booleans(),
       kind=st.sampled_from(["finite", "nan", "inf", "ints", "two rows"]),
       values=st.lists(st.floats(-1e3, 1e3), min_size=5, max_size=5))
def test_the_one_row_direct_path_records_as_the_hooks_would(method, capture, sink, kind, values):
    """A monitor alone on a one-row prediction is recorded by ml_toolbox.base._monitored_row
    (no loop set up); across methods, warning capture, sinks and rows the kernels take or
    decline, the records, the sinks' calls, the answers and the plan's path counts are those of
    the hook-by-hook loop."""
    X, y = make_classification(120, 5, random_state=1)
    X = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    row = pd.DataFrame([values], columns=X.columns)
    if kind == "nan":
        row.iloc[0, 2] = np.nan
    elif kind == "inf":
        row.iloc[0, 1] = np.inf
    elif kind == "ints":
        X, row = X.round().astype(np.int64), row.round().astype(np.int64)
    elif kind == "two rows":
        row = pd.concat([row, row])
    template = UnifiedMLPipeline(features=[("impute", SimpleImputer()),
                                           ("scale", StandardScaler())],
                                 model=LogisticRegression())
    seen = ([], [])
    direct = PipelineMonitor(capture_warnings=capture, sinks=[seen[0].append] if sink else None)
    hooks = StageByStage(capture_warnings=capture, sinks=[seen[1].append] if sink else None)
    assert direct._direct and not hooks._direct
    a = clone(template).set_params(monitor=direct).fit(X, y)
    b = clone(template).set_params(monitor=hooks).fit(X, y)
    direct.reset(), hooks.reset(), seen[0].clear(), seen[1].clear()
    outcomes = []
    for pipe in (a, b):
        try:
            outcomes.append(getattr(pipe, method)(row))
        except ValueError as error:
            outcomes.append(("raised", type(error), str(error)))
    assert repr(outcomes[0]) == repr(outcomes[1])
    ra, rb = direct.history(), hooks.history()
    assert len(ra) == len(rb) == 1
    assert _without_times(ra[0]) == _without_times(rb[0])
    assert (ra[0].status, ra[0].error, ra[0].mode, ra[0].fast_path, ra[0].pipeline_name) == \
        (rb[0].status, rb[0].error, rb[0].mode, rb[0].fast_path, rb[0].pipeline_name)
    assert len(seen[0]) == len(seen[1]) == (1 if sink else 0)
    assert [m.to_dict()["stages"] for m in seen[0]] == [m.to_dict()["stages"] for m in ra][:len(
        seen[0])]
    plans = a.inference_pipeline.fast_plan_, b.inference_pipeline.fast_plan_
    assert plans[0].path_counts(method) == plans[1].path_counts(method)
    assert ra[0].start_time <= ra[0].stages[0].start_time if ra[0].stages else True


def test_the_one_row_direct_path_is_taken_and_leaves_the_warnings_state_as_it_was(data,
                                                                                  monkeypatch):
    import ml_toolbox.base as base

    X, y = data
    calls = []
    row_path = base._monitored_row
    monkeypatch.setattr("ml_toolbox.inference._monitored_row",
                        lambda *a: calls.append(1) or row_path(*a))
    monitor = PipelineMonitor()
    pipe = UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("scale", StandardScaler())],
                             model=LogisticRegression(), monitor=monitor).fit(X, y)
    before = (list(warnings.filters), warnings.showwarning, warnings._showwarnmsg_impl)

    def work():
        for i in range(200):
            pipe.predict(X.iloc[[i % 50]])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 800 and monitor.get_pipeline_statistics(
        "inference_pipeline")["executions_total"] == 800
    assert (list(warnings.filters), warnings.showwarning, warnings._showwarnmsg_impl) == before
    assert all(m.fast_path == "kernel" and m.status == "success"
               for m in monitor.history("inference_pipeline"))
    with pytest.warns(UserWarning, match="still reaches the user"):
        warnings.warn("still reaches the user", UserWarning)
