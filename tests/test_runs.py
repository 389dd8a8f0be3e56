"""Runs: the SQLite run store, trackers (MLflow, TensorBoard, a failing one), the runs CLI,
background executions, promotion with lineage, and a store that is locked / read-only / full /
corrupt or written by four processes at once."""

import io
import json
import multiprocessing
import os
import pickle
import sqlite3
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from rich.console import Console
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from ml_toolbox import FeaturePipeline, PipelineMonitor, PipelinePersistence, UnifiedMLPipeline
from ml_toolbox.cli import main
from ml_toolbox.persistence import GateError
from ml_toolbox.runs import (
    RunCancelled,
    RunNotFoundError,
    RunStore,
    RunStoreError,
    RunStoreWarning,
    Tracker,
    current_run,
    fingerprint,
    submit,
    track,
)

X, Y = load_iris(return_X_y=True, as_frame=True)


def _pipe(store, **kw):
    kw.setdefault("features", [("scale", StandardScaler())])
    kw.setdefault("model", LogisticRegression(max_iter=300))
    return UnifiedMLPipeline(tracking=store, random_state=0, **kw)


def _sgd(store, epochs=4, **kw):
    return _pipe(store, model=SGDClassifier(loss="log_loss", random_state=0), epochs=epochs,
                 validation=0.25, **kw)


def _cli(*argv):
    buf, err = io.StringIO(), io.StringIO()
    code = main(list(argv), console=Console(file=buf, width=200),
                error_console=Console(file=err, width=200))
    return code, buf.getvalue(), err.getvalue()


def _boom(X):
    raise ValueError("boom in the stage")


# -- recording ---------------------------------------------------------------------------------
def test_fit_records_a_run_with_params_data_metrics_stages(tmp_path):
    store = RunStore(tmp_path)
    pipe = _pipe(store, validation=0.25, model=LogisticRegression(C=0.5, max_iter=300)).fit(X, Y)
    run = store.get(pipe.run_id_)
    assert (run.status, run.kind, run.name) == ("success", "fit", "unified_pipeline")
    assert run.params["model__C"] == 0.5 and run.params["model"] == "LogisticRegression"
    assert run.data["shape"] == [150, 4] and run.data["columns"] == list(X.columns)
    assert run.data["hash"] == fingerprint(X, Y)["hash"]
    assert run.metrics == pytest.approx(pipe.metrics_) and "validation_score" in run.metrics
    assert {(s["pipeline"], s["stage"]) for s in store.stages(run.id)} >= {
        ("feature_pipeline", "scale"), ("training_pipeline", "model")}
    assert run.environment["scikit-learn"] and run.cpu_time >= 0 and run.peak_memory > 0
    assert run.end >= run.start and os.path.isfile(tmp_path / "runs.db")
    mode = sqlite3.connect(tmp_path / "runs.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_same_data_same_fingerprint_other_data_other_fingerprint():
    assert fingerprint(X, Y)["hash"] == fingerprint(X.copy(), Y.copy())["hash"]
    changed = X.copy()
    changed.iloc[3, 2] += 1e-9
    assert fingerprint(changed, Y)["hash"] != fingerprint(X, Y)["hash"]
    assert fingerprint(X.to_numpy())["dtypes"] == "float64"


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(st.sampled_from([np.float64, np.int32, np.float32]),
                  hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
                  elements=st.integers(-1000, 1000)), st.data())
def test_fingerprint_is_layout_independent_and_sees_every_value(arr, data):
    frame = pd.DataFrame(arr)
    same = fingerprint(np.asfortranarray(arr))["hash"]
    assert fingerprint(arr)["hash"] == same
    assert fingerprint(frame)["hash"] == fingerprint(pd.DataFrame(arr.copy(order="F")))["hash"]
    i = data.draw(st.integers(0, arr.shape[0] - 1))
    j = data.draw(st.integers(0, arr.shape[1] - 1))
    changed = arr.copy()
    changed[i, j] = changed[i, j] + 1 if changed[i, j] == changed[i, j] else 0
    assert fingerprint(changed)["hash"] != same


@settings(max_examples=6, deadline=None)
@given(epochs=st.sampled_from([None, 2]), validation=st.sampled_from([None, 0.25]),
       scoring=st.sampled_from([None, "accuracy", ["accuracy", "f1_macro"]]))
def test_every_configuration_records_its_metrics_and_parameters(tmp_path_factory, epochs,
                                                                 validation, scoring):
    store = RunStore(tmp_path_factory.mktemp("runs"))
    pipe = _pipe(store, model=SGDClassifier(loss="log_loss", random_state=0), epochs=epochs,
                 validation=validation, scoring=scoring).fit(X, Y)
    run = store.get(pipe.run_id_)
    assert run.status == "success" and run.params["epochs"] == epochs
    assert run.metrics == pytest.approx(pipe.metrics_)
    assert set(store.metric_names(run.id)) == set(pipe.metrics_)
    if epochs:
        assert [s for s, _ in store.metric_history(run.id, "train_loss")] == [0, 1, None]


def test_large_data_is_hashed_alongside_the_fit_and_recorded(tmp_path):
    from ml_toolbox.runs._active import _HASH_ALONGSIDE, content_hash

    rng = np.random.default_rng(0)
    big = rng.normal(size=(_HASH_ALONGSIDE // 10 + 1, 10))
    target = (big[:, 0] > 0).astype(int)
    store = RunStore(tmp_path)
    pipe = _pipe(store, model=LogisticRegression(max_iter=50)).fit(big, target)
    run = store.get(pipe.run_id_)
    assert run.data["hash"] == content_hash(big, target) == fingerprint(big, target)["hash"]
    assert run.data["shape"] == list(big.shape)


def test_epoch_metrics_are_recorded_per_step_with_progress(tmp_path):
    store = RunStore(tmp_path)
    pipe = _sgd(store, epochs=5).fit(X, Y)
    history = store.metric_history(pipe.run_id_, "validation_loss")
    steps = [s for s, _ in history if s is not None]
    assert steps == [0, 1, 2, 3, 4]
    assert [v for s, v in history if s is not None] == pytest.approx(
        list(pipe.training_pipeline.history_["validation_loss"]))
    assert store.get(pipe.run_id_).progress == 1.0


def test_execute_and_partial_fit_are_runs_too(tmp_path):
    store = RunStore(tmp_path)
    pipe = _pipe(store)
    result = pipe.execute(X, Y, mode="train")
    assert store.get(pipe.run_id_).kind == "execute"
    assert store.get(pipe.run_id_).metrics["train_score"] == result["metrics"]["train_score"]
    sgd = _pipe(store, model=SGDClassifier(random_state=0))
    sgd.partial_fit(X, Y, classes=np.unique(Y))
    assert store.get(sgd.run_id_).kind == "partial_fit"


def test_failed_fit_records_error_and_stage_and_leaves_the_pipeline(tmp_path):
    store = RunStore(tmp_path)
    pipe = _pipe(store, features=[("boom", FunctionTransformer(_boom))])
    with pytest.raises(ValueError, match="boom in the stage"):
        pipe.fit(X, Y)
    assert "run_id_" not in pipe.__dict__
    (run,) = store.runs()
    assert run.status == "failed" and run.error == "ValueError: boom in the stage"
    assert run.error_stage == "feature_pipeline.boom"


def test_predictions_are_not_recorded_per_call(tmp_path):
    store = RunStore(tmp_path)
    pipe = _pipe(store).fit(X, Y)
    plain = _pipe(None).fit(X, Y)
    for i in range(20):
        assert pipe.predict(X.iloc[[i]]) == plain.predict(X.iloc[[i]])
    assert len(store.runs()) == 1


def test_clone_and_pickle_keep_the_tracker(tmp_path):
    store = RunStore(tmp_path)
    pipe = _pipe(store).fit(X, Y)
    assert clone(pipe).tracking is store
    again = pickle.loads(pickle.dumps(pipe))
    assert again.tracking.path == store.path
    again.fit(X, Y)
    assert len(store.runs()) == 2


def test_tracking_accepts_a_directory_and_lists_and_refuses_others(tmp_path):
    pipe = UnifiedMLPipeline(model=LogisticRegression(max_iter=300), tracking=str(tmp_path))
    pipe.fit(X, Y)
    assert RunStore(tmp_path).get(pipe.run_id_).status == "success"
    with pytest.raises(TypeError, match=r"UnifiedMLPipeline.tracking must be a Tracker"):
        UnifiedMLPipeline(model=LogisticRegression(), tracking=42).fit(X, Y)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1,
                max_size=30), st.text(alphabet="abcdefgh_/.", min_size=1, max_size=12))
def test_logged_metrics_come_back_exactly(tmp_path_factory, values, key):
    store = RunStore(tmp_path_factory.mktemp("runs"))
    with track(UnifiedMLPipeline(), "custom", trackers=[store]) as run:
        for step, value in enumerate(values):
            run.log_metrics({key: value}, step=step)
        assert current_run() is run
    assert current_run() is None
    assert store.metric_history(run.id, key) == [(i, v) for i, v in enumerate(values)]


# -- trackers ----------------------------------------------------------------------------------
class _Failing(Tracker):
    def log_metrics(self, run, metrics, step=None):
        raise ConnectionError("tracker server down")


def test_a_failing_tracker_warns_once_and_never_fails_the_pipeline(tmp_path):
    store = RunStore(tmp_path)
    pipe = _sgd([_Failing(), store], epochs=4)
    with pytest.warns(RuntimeWarning, match="tracker server down") as caught:
        pipe.fit(X, Y)
    assert len([w for w in caught if "tracker server down" in str(w.message)]) == 1
    run = store.get(pipe.run_id_)
    assert run.status == "success"
    assert list(run.tracker_errors.values()) == ["ConnectionError: tracker server down"]
    assert pipe.predict(X).shape == (150,)


def test_mlflow_tracker_records_params_epoch_metrics_status_and_version(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    from ml_toolbox.runs import MLflowTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MLflowTracker(uri, experiment_name="runs-test")
    pipe = _sgd([RunStore(tmp_path / "runs"), tracker], epochs=3)
    pipe.fit(X, Y)
    pipe.save(tmp_path / "models", "iris")
    client = mlflow.tracking.MlflowClient(uri)
    got = client.get_run(tracker.mlflow_run_id(pipe.run_id_))
    assert got.info.status == "FINISHED"
    assert got.data.params["model__loss"] == "log_loss"
    assert got.data.tags["ml_toolbox.run_id"] == pipe.run_id_
    assert got.data.tags["ml_toolbox.model_version"].startswith("iris v1")
    steps = [m.step for m in client.get_metric_history(got.info.run_id, "validation_loss")]
    assert sorted(set(steps)) == [0, 1, 2]  # the final value is logged at the last step
    failing = _pipe([tracker], features=[("boom", FunctionTransformer(_boom))])
    with pytest.raises(ValueError):
        failing.fit(X, Y)
    runs = client.search_runs([got.info.experiment_id], "tags.`ml_toolbox.status` = 'failed'")
    assert len(runs) == 1 and runs[0].info.status == "FAILED"
    assert runs[0].data.tags["ml_toolbox.error_stage"] == "feature_pipeline.boom"


def test_tensorboard_event_files_read_back_with_tensorboards_reader(tmp_path):
    pytest.importorskip("tensorboardX")
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    from ml_toolbox.runs import TensorBoardTracker

    tracker = TensorBoardTracker(tmp_path / "tb")
    pipe = _sgd([tracker], epochs=4).fit(X, Y)
    (run_dir,) = os.listdir(tmp_path / "tb")
    assert run_dir.endswith(pipe.run_id_[:12])
    acc = ea.EventAccumulator(str(tmp_path / "tb" / run_dir))
    acc.Reload()
    scalars = acc.Scalars("validation_loss")
    assert [s.step for s in scalars] == [0, 1, 2, 3]
    assert [s.value for s in scalars] == pytest.approx(
        list(pipe.training_pipeline.history_["validation_loss"]), rel=1e-6)
    assert "final/validation_score" in acc.Tags()["scalars"]


def test_the_run_store_is_a_monitor_sink_too(tmp_path):
    store = RunStore(tmp_path)
    monitor = PipelineMonitor(sinks=[store])
    pipe = FeaturePipeline([("scale", StandardScaler())], monitor=monitor).fit(X)
    for _ in range(3):
        pipe.transform(X)
    monitor.close()
    runs = {r.kind: r for r in store.runs()}
    assert runs["fit"].status == "success" and store.stages(runs["fit"].id)[0]["stage"] == "scale"
    assert runs["transform (aggregate)"].metrics["calls"] == 3
    assert runs["transform (aggregate)"].metrics["rows"] == 450


# -- faults ------------------------------------------------------------------------------------
def _fit_with_warnings(store, **kw):
    pipe = _sgd(store, epochs=3, **kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe.fit(X, Y)
    return pipe, [w for w in caught if issubclass(w.category, RunStoreWarning)]


def _reference(**kw):
    return _sgd(None, epochs=3, **kw).fit(X, Y).predict_proba(X)


def test_a_locked_store_refuses_the_record_with_one_warning(tmp_path):
    RunStore(tmp_path).start_run  # noqa: B018 - nothing is made before the first write
    _pipe(RunStore(tmp_path)).fit(X, Y)  # make the file
    holder = sqlite3.connect(tmp_path / "runs.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        pipe, refused = _fit_with_warnings(RunStore(tmp_path, timeout=0.05))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert len(refused) == 1 and "is locked" in str(refused[0].message)
    np.testing.assert_array_equal(pipe.predict_proba(X), _reference())


@pytest.mark.parametrize("pragma, problem", [("PRAGMA query_only = 1", "is read-only"),
                                             ("PRAGMA max_page_count = 1", "is full")])
def test_a_read_only_or_full_store_refuses_the_record_with_one_warning(tmp_path, pragma, problem):
    _pipe(RunStore(tmp_path)).fit(X, Y)
    store = RunStore(tmp_path)
    if "max_page_count" in pragma:
        pages = sqlite3.connect(tmp_path / "runs.db").execute("PRAGMA page_count").fetchone()[0]
        pragma = f"PRAGMA max_page_count = {pages}"
    store._on_connect = lambda conn: conn.execute(pragma)
    # parameters that need pages of their own, so that a full file cannot take the run
    padded = [("pad", FunctionTransformer(inv_kw_args={"pad": "x" * 50_000}))]
    pipe, refused = _fit_with_warnings(store, features=padded)
    assert len(refused) == 1 and problem in str(refused[0].message)
    np.testing.assert_array_equal(pipe.predict_proba(X), _reference(features=padded))
    assert len(RunStore(tmp_path).runs()) == 1  # the earlier run, nothing half-written


def test_a_corrupt_store_refuses_the_record_and_reading_it_says_why(tmp_path):
    (tmp_path / "runs.db").write_bytes(b"this is not an sqlite database at all" * 200)
    pipe, refused = _fit_with_warnings(RunStore(tmp_path))
    assert len(refused) == 1 and "corrupt" in str(refused[0].message)
    np.testing.assert_array_equal(pipe.predict_proba(X), _reference())
    with pytest.raises(RunStoreError, match="corrupt"):
        RunStore(tmp_path).runs()
    code, _, err = _cli("runs", "--runs", str(tmp_path), "list")
    assert code == 1 and "corrupt" in err


def _write_runs(path, worker, n):
    store = RunStore(path, timeout=30)
    for i in range(n):
        with track(UnifiedMLPipeline(name=f"worker{worker}"), "custom", trackers=[store]) as run:
            for step in range(20):
                run.log_metrics({"loss": 1.0 / (step + 1), "worker": worker}, step=step)
    _pipe(store, name=f"worker{worker}").fit(X, Y)


def test_four_processes_writing_at_once_lose_nothing(tmp_path):
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    ctx = multiprocessing.get_context(method)
    procs = [ctx.Process(target=_write_runs, args=(str(tmp_path), w, 15)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(240)
        assert p.exitcode == 0
    store = RunStore(tmp_path)
    runs = store.runs(archived=None)
    assert len(runs) == 4 * 16 and all(r.status == "success" for r in runs)
    for w in range(4):
        mine = store.runs(f"worker{w}", kind="custom")
        assert len(mine) == 15
        assert all(len(store.metric_history(r.id, "loss")) == 20 for r in mine)


# -- reading, and errors that list what exists ----------------------------------------------
def test_unknown_ids_metrics_and_filters_list_what_exists(tmp_path):
    store = RunStore(tmp_path)
    pipe = _pipe(store, validation=0.25).fit(X, Y)
    short = pipe.run_id_[:12]
    with pytest.raises(RunNotFoundError, match=f"Most recent runs: {short}"):
        store.get("0" * 32 if not pipe.run_id_.startswith("0") else "f" * 32)
    with pytest.raises(RunNotFoundError, match="not a run id"):
        store.get("not-an-id")
    with pytest.raises(RunNotFoundError, match=r"Its metrics: \['train_score', 'validation_score'\]"):
        store.metric_history(pipe.run_id_, "accuracy")
    with pytest.raises(RunNotFoundError, match=r"one of \['running', 'success'"):
        store.runs(status="done")
    with pytest.raises(RunNotFoundError, match=r"Did you mean 'unified_pipeline'\?"):
        store.runs("unified_pipelin")
    with pytest.raises(RunNotFoundError, match=r"Tags in use: none"):
        store.runs(tag="team=risk")
    with pytest.raises(RunNotFoundError, match=r"finished runs: \['train_score', 'validation_score'"):
        store.leaderboard("accuracy")
    with pytest.raises(ValueError, match="is not a time"):
        store.runs(since="last tuesday")
    with pytest.raises(RunStoreError, match="No run store at"):
        RunStore(tmp_path / "nowhere").runs()


def test_filters_compare_leaderboard_notes_tags_history(tmp_path):
    store = RunStore(tmp_path)
    fitted = [_pipe(store, model=LogisticRegression(C=c, max_iter=300), validation=0.3,
                    name="iris").fit(X, Y) for c in (0.01, 1.0, 100.0)]
    ids = [p.run_id_ for p in fitted]
    store.tag(ids[0], team="risk")
    assert [r.id for r in store.runs(tag="team=risk")] == [ids[0]]
    assert [r.id for r in store.runs(since="1h", status="success")] == ids[::-1]
    assert store.runs(since="2000-01-01") and not store.runs(kind="execute")
    comparison = store.compare(ids[0], ids[2])
    assert "params.model__C" in comparison.differences
    assert "params.model__max_iter" not in comparison.differences
    html = comparison._repr_html_()
    assert "background:#fff3b0" in html and ids[0][:12] in html
    board = store.leaderboard("validation_score")
    scores = [r.metrics["validation_score"] for r in board]
    assert scores == sorted(scores, reverse=True)
    store.note(ids[1], "the baseline")
    assert [n["text"] for n in store.get(ids[1]).notes] == ["the baseline"]
    assert [r.id for r in store.history("iris")] == ids
    assert ids[0][:12] in store.get(ids[0])._repr_html_()


def test_report_and_anomalies_over_the_stored_history(tmp_path):
    store = RunStore(tmp_path)
    delays = [0.0] * 5 + [0.1] * 4 + [1.0]  # slower lately, and one run far outside the rest

    for delay in delays:
        def slow(X, delay=delay):
            time.sleep(delay)
            return X
        _pipe(store, features=[("slow", FunctionTransformer(slow))], name="nightly").fit(X, Y)
    report = store.report("nightly", days=7)
    assert report.n_runs == 10 and report.success_rate == 1.0
    slow_fit = [s for s in report.stages if s["stage"] == "slow" and s["mode"] == "fit_transform"]
    assert slow_fit[0]["p99"] >= 0.5 and slow_fit[0]["trend"] > 1
    found = store.anomalies("nightly", stage="slow")
    assert found and all(a.stage_name == "slow" for a in found)
    assert max(a.duration for a in found) >= 1.0


def test_archive_keeps_runs_queryable_and_marks_stale_ones(tmp_path):
    store = RunStore(tmp_path)
    done = _pipe(store).fit(X, Y).run_id_
    with sqlite3.connect(tmp_path / "runs.db") as conn:  # a run whose process died mid-way
        conn.execute("INSERT INTO runs (id, name, kind, status, start, heartbeat, pid, host) "
                     "VALUES (?, 'lost', 'fit', 'running', ?, ?, ?, ?)",
                     ("ab" * 16, time.time() - 10, time.time() - 10, 2 ** 22 + 12345,
                      os.uname().nodename))
    assert store.get("abab").status == "stale" and not store.active()
    assert store.archive(older_than="1h") == []
    archived = store.archive(older_than=0, dry_run=True)
    assert sorted(archived) == sorted([done, "ab" * 16]) and len(store.runs()) == 2
    store.archive(older_than=0)
    assert store.runs() == [] and len(store.runs(archived=True)) == 2
    assert store.get(done).archived and store.get("abab").status == "stale"


def test_plot_draws_a_metric_across_runs(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    store = RunStore(tmp_path)
    ids = [_sgd(store, epochs=3).fit(X, Y).run_id_ for _ in range(2)]
    ax = store.plot("train_loss", ids)
    assert len(ax.lines) == 2 and list(ax.lines[0].get_xdata()) == [0, 1, 2]
    with pytest.raises(RunNotFoundError, match="Its metrics"):
        store.plot("nope", ids)


# -- the CLI -----------------------------------------------------------------------------------
def test_runs_cli_every_command_with_json(tmp_path):
    store = RunStore(tmp_path)
    a = _sgd(store, epochs=3).fit(X, Y).run_id_
    b = _sgd(store, epochs=2).fit(X, Y).run_id_
    base = ("runs", "--runs", str(tmp_path))
    code, out, _ = _cli(*base, "list", "--json")
    assert code == 0 and {r["id"] for r in json.loads(out)} == {a, b}
    code, out, _ = _cli(*base, "show", a[:8], "--json")
    shown = json.loads(out)
    assert code == 0 and shown["id"] == a and len(shown["metric_history"]["train_loss"]) == 4
    code, out, _ = _cli("--json", *base, "compare", a, b)
    assert code == 0 and "params.epochs" in json.loads(out)["differences"]
    code, out, _ = _cli(*base, "--json", "leaderboard", "--metric", "validation_score")
    assert code == 0 and [r["rank"] for r in json.loads(out)] == [1, 2]
    for command in (["history", "unified_pipeline"], ["report", "unified_pipeline"],
                    ["anomalies", "unified_pipeline"], ["active"], ["archive", "--dry-run"],
                    ["note", a, "kept"]):
        code, out, err = _cli(*base, *command, "--json")
        assert code == 0, (command, err)
        json.loads(out)
        code, out, err = _cli(*base, *command)
        assert code == 0 and out.strip(), (command, err)
    code, out, _ = _cli(*base, "list", "--status", "success")
    assert a[:12] in out and "┃ id" in out
    code, _, err = _cli(*base, "show", "feed")
    assert code == 1 and "Most recent runs" in err
    code, _, err = _cli(*base, "list", "--status", "finished")
    assert code == 2 and "'finished' is not one of running, success" in err  # a usage error
    code, _, err = _cli("runs", "list")
    assert code == 2 or "ML_TOOLBOX_RUNS" in os.environ
    code, _, _ = _cli(*base, "frobnicate")
    assert code == 2


def test_runs_cli_plot_writes_an_image(tmp_path):
    pytest.importorskip("matplotlib")
    store = RunStore(tmp_path)
    _sgd(store, epochs=2).fit(X, Y)
    code, out, err = _cli("runs", "--runs", str(tmp_path), "plot", "train_loss", "--out",
                          str(tmp_path / "loss.png"))
    assert code == 0, err
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"


# -- background executions ---------------------------------------------------------------------
def test_submit_returns_at_once_and_is_visible_from_another_process(tmp_path):
    gate = threading.Event()

    def wait(X):
        assert gate.wait(60)
        return X

    store = RunStore(tmp_path)
    pipe = _pipe(store, features=[("wait", FunctionTransformer(wait))], name="background")
    future = submit(pipe, X, Y)
    try:
        assert len(future.run_id) == 32 and not future.done()
        deadline = time.time() + 30
        while not store.file or not os.path.exists(store.file) or not store.active():
            assert time.time() < deadline
            time.sleep(0.05)
        env = {**os.environ, "ML_TOOLBOX_RUNS": str(tmp_path)}
        out = subprocess.run([sys.executable, "-m", "ml_toolbox.cli", "runs", "active", "--json"],
                             capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        assert [r["id"] for r in json.loads(out.stdout)] == [future.run_id]
        assert future.status == "running"
    finally:
        gate.set()
    assert future.result(60) is pipe and pipe.run_id_ == future.run_id
    assert future.status == "success" and store.get(future.run_id).status == "success"


def test_cancel_is_honoured_between_stages(tmp_path):
    gate, entered = threading.Event(), threading.Event()

    def wait(X):
        entered.set()
        assert gate.wait(60)
        return X

    store = RunStore(tmp_path)
    pipe = _pipe(store, features=[("wait", FunctionTransformer(wait)),
                                  ("scale", StandardScaler())])
    future = submit(pipe, X, Y)
    assert entered.wait(30)
    assert future.cancel() is True
    gate.set()
    with pytest.raises(RunCancelled):
        future.result(60)
    assert future.cancelled() and future.status == "cancelled"
    assert store.get(future.run_id).status == "cancelled"
    assert "input_schema_" not in pipe.__dict__  # nothing half-fitted


def test_cancel_between_epochs_and_progress(tmp_path):
    store = RunStore(tmp_path)
    pipe = _sgd(store, epochs=400, batch_size=16)
    future = submit(pipe, X, Y)
    deadline = time.time() + 60
    while (future.progress or 0) < 0.01:
        assert time.time() < deadline and not future.done()
        time.sleep(0.01)
    future.cancel()
    with pytest.raises(RunCancelled):
        future.result(60)
    run = store.get(future.run_id)
    assert run.status == "cancelled" and 0 < run.progress < 1
    assert 0 < len(store.metric_history(run.id, "train_loss")) < 400


def test_submit_execute_without_tracking_still_gives_a_handle():
    future = submit(UnifiedMLPipeline(model=LogisticRegression(max_iter=300)), X, Y, mode="train")
    result = future.result(60)
    assert "model" in result and future.status == "success"
    with pytest.raises(ValueError, match="unknown mode 'fly'"):
        submit(UnifiedMLPipeline(), X, Y, mode="fly")


# -- promotion and lineage ---------------------------------------------------------------------
def test_promote_the_leaderboard_winner_through_the_gates_with_lineage(tmp_path):
    runs = RunStore(tmp_path / "runs")
    models = PipelinePersistence(tmp_path / "models")
    candidates = [_pipe(runs, model=LogisticRegression(C=c, max_iter=300), validation=0.3,
                        name="iris").fit(X, Y) for c in (0.001, 1.0)]
    best = max(candidates, key=lambda p: p.metrics_["validation_score"])
    done = runs.promote(candidates, models, "iris", metric="validation_score",
                        gates={"validation_score": 0.5})
    assert done.run_id == best.run_id_ and done.pipeline is best
    assert models.aliases("iris")["production"] == done.version
    assert models.manifest("iris", "production")["run_id"] == best.run_id_
    assert runs.get(best.run_id_).versions[0]["version"] == done.version
    code, out, _ = _cli("--store", str(tmp_path / "models"), "show", "iris", "production")
    assert code == 0 and best.run_id_ in out
    code, out, _ = _cli("runs", "--runs", str(tmp_path / "runs"), "show", best.run_id_)
    assert code == 0 and f"iris v{done.version}" in out
    with pytest.raises(GateError):
        runs.promote(candidates, models, "iris", metric="validation_score", alias="strict",
                     gates={"validation_score": 1.01})
    assert "strict" not in models.aliases("iris")
    with pytest.raises(ValueError, match=r"candidates\[0\].*has no run_id_"):
        runs.promote([UnifiedMLPipeline()], models, "iris", metric="validation_score")


def test_saving_a_tracked_pipeline_links_run_and_version(tmp_path):
    runs = RunStore(tmp_path / "runs")
    pipe = _pipe(runs).fit(X, Y)
    version = pipe.save(tmp_path / "models", "iris")
    manifest = PipelinePersistence(tmp_path / "models").manifest("iris", version)
    assert manifest["run_id"] == pipe.run_id_
    assert runs.get(pipe.run_id_).versions == [
        {"store": str(tmp_path / "models"), "name": "iris", "version": version,
         "time": runs.get(pipe.run_id_).versions[0]["time"]}]


@settings(max_examples=60, deadline=None)
@given(dtype=st.sampled_from(["float64", "float32", "int64", "int8", "bool", "uint16"]),
       rows=st.integers(0, 50), cols=st.integers(1, 6), fortran=st.booleans(), seed=st.integers(0, 2**16))
def test_one_block_frames_hash_as_column_by_column(dtype, rows, cols, fortran, seed):
    import xxhash

    from ml_toolbox.runs._active import _hash_column, content_hash

    values = np.random.default_rng(seed).normal(size=(rows, cols)) * 100
    values = (values > 0) if dtype == "bool" else values.astype(dtype)
    frame = pd.DataFrame(np.asfortranarray(values) if fortran else values, columns=[f"c{i}" for i in range(cols)])
    expected = xxhash.xxh3_64()
    for column in frame.columns:
        _hash_column(expected, frame[column])
    assert content_hash(frame) == expected.hexdigest()
    mixed = frame.assign(extra=np.arange(rows, dtype="int32"))  # two dtypes: column by column, same rule
    expected.update(np.arange(rows, dtype="int32").view(np.uint8) if rows else b"")
    assert content_hash(mixed) == expected.hexdigest()


_FRAME_COLUMNS = {
    "float": lambda n: np.arange(n, dtype=float),
    "int32": lambda n: np.arange(n, dtype=np.int32),
    "bool": lambda n: np.arange(n) % 2 == 0,
    "object": lambda n: np.array([f"s{i}" for i in range(n)], dtype=object),
    "category": lambda n: pd.Categorical(["a", "b"] * (n // 2) + ["a"] * (n % 2)),
    "datetime tz": lambda n: pd.date_range("2026-01-01", periods=n, tz="Europe/Paris"),
    "nullable Int64": lambda n: pd.array(range(n), dtype="Int64"),
    "string": lambda n: pd.array([f"t{i}" for i in range(n)], dtype="string"),
}


@settings(max_examples=40, deadline=None)
@given(kinds=st.lists(st.sampled_from(sorted(_FRAME_COLUMNS)), min_size=1, max_size=6),
       labels=st.sampled_from(["str", "int", "mixed", "duplicate"]),
       n_rows=st.integers(0, 5))
def test_the_fingerprint_names_columns_and_dtypes_as_pandas_does(kinds, labels, n_rows):
    """The fingerprint's columns and dtypes, read from lists with each dtype's name made once,
    are str() of pandas' own labels and dtypes, for any mix of dtypes and column labels."""
    from ml_toolbox.runs._active import fingerprint

    names = {"str": [f"c{i}" for i in range(len(kinds))], "int": list(range(len(kinds))),
             "mixed": [f"c{i}" if i % 2 else i for i in range(len(kinds))],
             "duplicate": ["same"] * len(kinds)}[labels]
    X = pd.concat([pd.Series(_FRAME_COLUMNS[k](n_rows)) for k in kinds], axis=1)
    X.columns = names
    fp = fingerprint(X, content=False)
    assert fp["shape"] == [n_rows, len(kinds)]
    assert fp["columns"] == [str(c) for c in X.columns]
    assert fp["dtypes"] == {str(c): str(t) for c, t in zip(X.columns, X.dtypes)}
    assert json.loads(json.dumps(fp)) == fp


# -- issue 20, performance: the same record, cheaper ------------------------------------------------

def _reference_params(obj, deep=True):
    """get_params as it was: the parameter names from inspect.signature on every call."""
    import ml_toolbox.base as base

    saved = base._param_names, base._fast_params
    base._param_names = lambda cls: tuple(cls._get_param_names())
    base._fast_params = lambda o, deep=None: o.get_params() if deep is None else o.get_params(deep=deep)
    try:
        return obj.get_params(deep=deep)
    finally:
        base._param_names, base._fast_params = saved


def _random_stage(draw):
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    from ml_toolbox.stage import PipelineStage

    kind = draw(st.sampled_from(["scaler", "imputer", "pca", "function", "sk_pipeline", "column",
                                 "stage", "feature_pipeline"]))
    if kind == "scaler":
        return StandardScaler(with_mean=draw(st.booleans()))
    if kind == "imputer":
        return SimpleImputer(strategy=draw(st.sampled_from(["mean", "median"])))
    if kind == "pca":
        return PCA(n_components=draw(st.integers(1, 3)))
    if kind == "function":
        return FunctionTransformer(np.log1p, kw_args=draw(st.sampled_from([None, {}])))
    if kind == "sk_pipeline":
        return Pipeline([("s", StandardScaler()), ("i", SimpleImputer())])
    if kind == "column":
        return ColumnTransformer([("s", StandardScaler(), [0]), ("p", "passthrough", [1])])
    if kind == "stage":
        return PipelineStage(StandardScaler(with_std=draw(st.booleans())), name="wrapped")
    return FeaturePipeline(steps=[("inner", SimpleImputer())])


@st.composite
def _random_pipelines(draw):
    n = draw(st.integers(0, 4))
    steps = [(f"step{i}", _random_stage(draw)) for i in range(n)]
    model = draw(st.sampled_from([LogisticRegression(C=0.5), SGDClassifier(), None]))
    if draw(st.booleans()):
        return FeaturePipeline(steps=steps or [("only", StandardScaler())])
    return UnifiedMLPipeline(features=steps, model=model, name=draw(st.sampled_from([None, "p"])))


@settings(max_examples=60, deadline=None)
@given(_random_pipelines(), st.booleans())
def test_cached_parameter_names_give_exactly_the_same_get_params(pipe, deep):
    """The parameter names cached per class (issue 20): the same keys, values and order as
    get_params with inspect.signature on every call, for every pipeline, nested or not; and the
    run record's flattened parameters the same."""
    from ml_toolbox.base import _fast_params
    from ml_toolbox.runs._active import params_of

    expected = _reference_params(pipe, deep)
    got = pipe.get_params(deep=deep)
    assert list(got.items()) == list(expected.items())
    assert list(_fast_params(pipe, deep).items()) == list(expected.items())
    for _, value in expected.items():  # every nested scikit-learn estimator too
        if hasattr(value, "get_params") and not isinstance(value, type):
            assert list(_fast_params(value).items()) == list(_reference_params(value).items())
    import ml_toolbox.base as base

    cached = params_of(pipe)
    saved = base._param_names
    base._param_names = lambda cls: tuple(cls._get_param_names())
    try:
        assert params_of(pipe) == cached
    finally:
        base._param_names = saved


def test_parameter_names_follow_a_class_whose_constructor_changes():
    from ml_toolbox.base import _param_names

    class Est(StandardScaler):
        def __init__(self, a=1):
            self.a = a

    assert _param_names(Est) == ("a",)

    def init(self, a=1, b=2):
        self.a, self.b = a, b

    Est.__init__ = init
    assert _param_names(Est) == ("a", "b")


_frames = st.one_of(
    hnp.arrays(st.sampled_from([np.float64, np.int32, np.float32]),
               hnp.array_shapes(min_dims=2, max_dims=2, max_side=6)).map(pd.DataFrame),
    st.builds(lambda n, k: pd.DataFrame({"a": np.arange(n, dtype=float), "b": np.arange(n) % k,
                                         "c": [str(i % k) for i in range(n)]}),
              st.integers(0, 8), st.integers(1, 3)),
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=6)),
    hnp.arrays(np.float64, (5, 4)).map(lambda a: a[:, ::2]),  # not contiguous
    hnp.arrays(np.float64, (4, 3)).map(np.asfortranarray),
)


@settings(max_examples=80, deadline=None)
@given(_frames, st.sampled_from(["none", "series", "array", "strings"]))
def test_the_hashing_thread_reads_a_read_only_view_with_the_same_hash(data, target):
    """What the hashing thread reads (issue 20): a read-only view of the same bytes, no copy,
    the hash the same value as of the data itself, whatever the data."""
    from ml_toolbox.runs._active import _frozen, content_hash

    n = len(data)
    y = {"none": None, "series": pd.Series(np.arange(n)), "array": np.arange(n) % 2,
         "strings": np.array([str(i) for i in range(n)], dtype=object)}[target]
    frozen_x, frozen_y = _frozen(data), _frozen(y)
    assert content_hash(frozen_x, frozen_y) == content_hash(data, y)
    for frozen in (frozen_x, frozen_y):
        if isinstance(frozen, np.ndarray) and frozen.dtype != object:
            assert not frozen.flags.writeable
    if isinstance(data, np.ndarray):
        assert np.shares_memory(frozen_x, data) or data.size == 0


def test_large_data_is_hashed_on_one_worker_thread_per_process(tmp_path):
    from ml_toolbox.runs._active import _HASH_ALONGSIDE, _hash_worker, content_hash

    rng = np.random.default_rng(1)
    big = pd.DataFrame(rng.normal(size=(_HASH_ALONGSIDE // 10 + 1, 10)))
    target = (big[0] > 0).astype(int)
    store = RunStore(tmp_path)
    ids = [_pipe(store, model=LogisticRegression(max_iter=20)).fit(big, target).run_id_
           for _ in range(2)]
    hashes = {store.get(i).data["hash"] for i in ids}
    assert len(hashes) == 1 and None not in hashes
    assert hashes == {content_hash(big, target)}
    assert _hash_worker() is _hash_worker()
    big.iloc[0, 0] = 1.5  # the caller's frame is still the caller's to change
    assert big.iloc[0, 0] == 1.5


def _fit_large_in_child(path):
    from ml_toolbox.runs._active import _HASH_ALONGSIDE

    rng = np.random.default_rng(2)
    big = rng.normal(size=(_HASH_ALONGSIDE // 10 + 1, 10))
    _pipe(RunStore(path), model=LogisticRegression(max_iter=20)).fit(big, (big[:, 0] > 0).astype(int))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork start method")
def test_a_forked_child_hashes_on_a_thread_of_its_own(tmp_path):
    """The hashing thread is the process's: a child forked after the parent used it (the parent's
    thread does not exist there) makes its own, and its run records the hash."""
    from ml_toolbox.runs._active import _hash_worker

    _hash_worker().submit(lambda: None).result()  # the parent's thread exists
    proc = multiprocessing.get_context("fork").Process(target=_fit_large_in_child, args=(str(tmp_path),))
    proc.start()
    proc.join(120)
    assert proc.exitcode == 0
    (run,) = RunStore(tmp_path).runs()
    assert run.status == "success" and run.data["hash"]
