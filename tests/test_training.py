"""Tests of the training lifecycle: the epoch loop (ml_toolbox.lifecycle) and the callbacks."""

import io
import math
import re
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LogisticRegression, SGDClassifier, SGDRegressor
from sklearn.metrics import accuracy_score, get_scorer, hinge_loss, log_loss, mean_squared_error

from ml_toolbox.callbacks import (Callback, EarlyStopping, History, Metric, MetricLog,
                                  ModelCheckpoint, ProgressBar, metric_direction)
from ml_toolbox import PipelineStage, TrainingPipeline, UnifiedMLPipeline
from ml_toolbox.lifecycle import fit_epochs
from ml_toolbox.plugins import PipelinePlugin

# -- stubs ------------------------------------------------------------------------------------------
CALLS = []  # (n_rows, kwargs keys, first row id) of every RecordingSGD.partial_fit


@pytest.fixture(autouse=True)
def _reset_calls(monkeypatch):
    CALLS.clear()
    monkeypatch.delenv("CI", raising=False)


class RecordingSGD(SGDClassifier):
    """An SGDClassifier that records every partial_fit call (rows, keyword names, ids)."""

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        kwargs = {}
        if classes is not None:
            kwargs["classes"] = classes
        if sample_weight is not None:
            kwargs["sample_weight"] = sample_weight
        CALLS.append(SimpleNamespace(n=len(X), kwargs=kwargs, ids=np.asarray(X)[:, 0].copy()))
        return super().partial_fit(X, y, **kwargs)


class ExplodingSGD(SGDClassifier):
    """Raises on the partial_fit call number ``explode_at`` (1-based), counted in CALLS."""

    def __init__(self, explode_at=3, **kw):
        super().__init__(**kw)
        self.explode_at = explode_at

    def partial_fit(self, X, y, classes=None):
        CALLS.append(len(X))
        if len(CALLS) == self.explode_at:
            raise FloatingPointError("gradient exploded")
        return super().partial_fit(X, y, classes=classes)


def pipeline_params(**overrides):
    """The TrainingPipeline parameters fit_epochs reads, on a plain object (fit_epochs alone)."""
    params = dict(name="training_pipeline", epochs=3, batch_size=None, shuffle=True,
                  random_state=0, validation=None, scoring=None, callbacks=None, verbose=0,
                  monitor=None)
    params.update(overrides)
    return _PipelineParams(**params)


# named like the real class, so messages read as they do through TrainingPipeline.fit
_PipelineParams = type("TrainingPipeline", (SimpleNamespace,), {})


def train(model, X, y, fit_params=None, **params):
    """``TrainingPipeline(model, epochs=3, random_state=0, **params).fit(X, y)``."""
    settings = {"epochs": 3, "random_state": 0, **params}
    return TrainingPipeline(model, **settings).fit(X, y, **(fit_params or {}))


class Recorder(Callback):
    """Records every hook call as a tuple."""

    def __init__(self, events=None, stop_at=None):
        self.events = [] if events is None else events
        self.stop_at = stop_at

    def on_run_start(self, run):
        self.events.append(("run_start", id(self)))

    def on_epoch_start(self, epoch, metrics):
        self.events.append(("epoch_start", id(self), epoch, len(metrics)))

    def on_epoch_end(self, epoch, metrics):
        self.events.append(("epoch_end", id(self), epoch, metrics.failed))
        return self.stop_at is not None and epoch >= self.stop_at

    def on_run_end(self, run):
        self.events.append(("run_end", id(self), run.status))


class FakeStore:
    """The save()/list_versions() of PipelinePersistence, in memory."""

    def __init__(self):
        self.saved = []

    def save(self, obj, name, metrics=None, tags=None, message=None):
        self.saved.append(SimpleNamespace(obj=obj, name=name, metrics=metrics, tags=tags,
                                          message=message))
        return len(self.list_versions(name))

    def list_versions(self, name):
        return [i + 1 for i, s in enumerate(s for s in self.saved if s.name == name)]


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=600, n_features=6, n_informative=4, class_sep=2.0,
                               random_state=0)
    return X, y


# -- the loop: batches, classes, shuffling ----------------------------------------------------------
def test_batches_and_classes_go_to_the_first_call_only(data):
    X, y = data
    out = train(RecordingSGD(random_state=0), X, y, epochs=3, batch_size=250)
    assert [c.n for c in CALLS] == [250, 250, 100] * 3
    assert list(CALLS[0].kwargs) == ["classes"]
    np.testing.assert_array_equal(CALLS[0].kwargs["classes"], [0, 1])
    assert all(c.kwargs == {} for c in CALLS[1:])
    assert out.n_epochs_ == 3
    assert list(out.stage_.estimator_.classes_) == [0, 1]


def test_no_shuffle_keeps_row_order_and_batch_size_none_is_one_batch(data):
    X, y = data
    Xi = np.column_stack([np.arange(len(X)), X])
    train(RecordingSGD(random_state=0), Xi, y, epochs=2, batch_size=200, shuffle=False)
    for epoch in range(2):
        ids = np.concatenate([c.ids for c in CALLS[epoch * 3:(epoch + 1) * 3]])
        np.testing.assert_array_equal(ids, np.arange(len(X)))
    CALLS.clear()
    train(RecordingSGD(random_state=0), Xi, y, epochs=2, batch_size=None, shuffle=False)
    assert [c.n for c in CALLS] == [600, 600]


def test_shuffle_is_reproducible_with_random_state(data):
    X, y = data
    first = train(SGDClassifier(random_state=0), X, y, epochs=3, batch_size=64, random_state=7)
    second = train(SGDClassifier(random_state=0), X, y, epochs=3, batch_size=64, random_state=7)
    other = train(SGDClassifier(random_state=0), X, y, epochs=3, batch_size=64, random_state=8)
    assert first.history_.records == second.history_.records
    assert first.history_.records != other.history_.records


@settings(max_examples=25, deadline=None)
@given(n=st.integers(10, 120), batch_size=st.integers(1, 150), epochs=st.integers(1, 3),
       shuffle=st.booleans())
def test_every_epoch_sees_every_row_exactly_once(n, batch_size, epochs, shuffle):
    CALLS.clear()
    rng = np.random.default_rng(0)
    X = np.column_stack([np.arange(n), rng.normal(size=(n, 2))])
    y = np.arange(n) % 2
    out = train(RecordingSGD(random_state=0), X, y, epochs=epochs, batch_size=batch_size,
                shuffle=shuffle, scoring="accuracy")
    per_epoch = -(-n // min(batch_size, n))
    assert len(CALLS) == epochs * per_epoch
    for e in range(epochs):
        ids = np.concatenate([c.ids for c in CALLS[e * per_epoch:(e + 1) * per_epoch]])
        assert sorted(ids.tolist()) == list(range(n))
    assert out.n_epochs_ == epochs == len(out.history_)


def test_sample_weight_is_sliced_with_each_batch(data):
    X, y = data
    weights = np.arange(len(X), dtype=float)
    Xi = np.column_stack([np.arange(len(X)), X])
    train(RecordingSGD(random_state=0), Xi, y, {"sample_weight": weights}, epochs=1,
          batch_size=100)
    for call in CALLS:
        np.testing.assert_array_equal(call.kwargs["sample_weight"], call.ids)


def test_pandas_input(data):
    X, y = data
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    out = train(SGDClassifier(random_state=0), frame, pd.Series(y), epochs=2, batch_size=100,
                validation=0.25, scoring="accuracy")
    assert out.history_.metric_names == ["train_loss", "train_accuracy", "validation_loss",
                                         "validation_accuracy"]


# -- metrics ------------------------------------------------------------------------------------------
def test_epoch_metrics_start_empty_every_epoch(data):
    """Regression test of the seeds' bug: epoch metrics piling up across epochs."""
    X, y = data
    seen_at_start, logs = [], []

    class PerEpochMetric(Callback):
        def on_epoch_start(self, epoch, metrics):
            seen_at_start.append(dict(metrics))

        def on_epoch_end(self, epoch, metrics):
            metrics.track(f"custom_{epoch}", float(epoch))
            metrics.note(f"debug_{epoch}", [epoch])
            logs.append(metrics)

    out = train(SGDClassifier(random_state=0), X, y, epochs=4, batch_size=100,
                callbacks=[PerEpochMetric()], scoring="accuracy")
    assert seen_at_start == [{}, {}, {}, {}]
    for k, record in enumerate(out.history_.records):
        assert set(record) == {"epoch", "train_loss", "train_accuracy", f"custom_{k}"}
        assert record[f"custom_{k}"] == k
        assert set(logs[k]) == {"train_loss", "train_accuracy", f"custom_{k}", f"debug_{k}"}
    with pytest.raises(RuntimeError, match=re.escape(
            "Cannot record metric 'late': epoch 0 has ended and its metrics can no longer change.")):
        logs[0].track("late", 1.0)


def test_loss_and_scores_are_what_sklearn_computes(data):
    X, y = data
    X_val, y_val = X[:150], y[:150]
    out = train(SGDClassifier(loss="log_loss", random_state=0), X[150:], y[150:], epochs=2,
                batch_size=100, validation=(X_val, y_val), scoring=["accuracy", "f1"])
    est = out.stage_.estimator_
    last = out.history_.records[-1]
    assert last["train_loss"] == pytest.approx(log_loss(y[150:], est.predict_proba(X[150:])))
    assert last["validation_loss"] == pytest.approx(log_loss(y_val, est.predict_proba(X_val)))
    assert last["validation_accuracy"] == pytest.approx(accuracy_score(y_val, est.predict(X_val)))
    assert last["validation_f1"] == pytest.approx(get_scorer("f1")(est, X_val, y_val))
    assert out.history_.params["loss"] == "log_loss"


def test_hinge_loss_for_classifiers_without_probabilities(data):
    X, y = data
    out = train(SGDClassifier(loss="hinge", random_state=0), X, y, epochs=2, batch_size=200)
    est = out.stage_.estimator_
    assert out.history_.params["loss"] == "hinge_loss"
    assert out.metrics_["train_loss"] == pytest.approx(hinge_loss(y, est.decision_function(X)))
    # scoring=None: the estimator's own score (accuracy)
    assert out.metrics_["train_score"] == pytest.approx(est.score(X, y))


def test_regressor_loss_is_mean_squared_error():
    X, y = make_regression(n_samples=300, n_features=4, noise=0.5, random_state=0)
    out = train(SGDRegressor(random_state=0), X, y, epochs=3, batch_size=50, validation=0.2,
                scoring="neg_mean_absolute_error")
    est = out.stage_.estimator_
    assert out.history_.params["loss"] == "mean_squared_error"
    assert out.metrics_["train_loss"] <= out.history_["train_loss"][0]
    X_tr = out.history_.params["n_samples"]
    assert X_tr == 240
    assert metric_direction("validation_score", {}) == "max"
    assert out.metrics_["best_validation_loss"] == min(out.history_["validation_loss"])
    assert (out.metrics_["best_validation_neg_mean_absolute_error"]
            == max(out.history_["validation_neg_mean_absolute_error"]))
    assert math.isfinite(mean_squared_error(y, est.predict(X)))


def test_callable_and_dict_scoring(data):
    X, y = data

    def share_of_ones(estimator, X, y):
        return float(np.mean(estimator.predict(X) == 1))

    out = train(SGDClassifier(random_state=0), X, y, epochs=1,
                scoring={"ones": share_of_ones, "acc": "accuracy"})
    assert {"train_ones", "train_acc"} <= set(out.metrics_)
    out = train(SGDClassifier(random_state=0), X, y, epochs=1, scoring=share_of_ones)
    assert 0.0 <= out.metrics_["train_share_of_ones"] <= 1.0


def test_validation_fraction_is_stratified(data):
    X, y = data
    y = (np.arange(len(y)) % 10 == 0).astype(int)  # 10 % positives
    seen = {}

    class Grab(Callback):
        def on_run_start(self, run):
            seen.update(run.params)

    train(SGDClassifier(random_state=0), X, y, epochs=1, validation=0.2, callbacks=[Grab()])
    assert seen["n_samples"] == 480 and seen["n_val_samples"] == 120


def test_tracked_metrics_reach_history_and_run_metrics_untracked_do_not(data):
    X, y = data
    noted = []

    class Custom(Callback):
        def on_epoch_end(self, epoch, metrics):
            metrics[Metric.TEST_LOSS] = 1.0 / (epoch + 1)   # the seeds' dict style = track
            metrics.note("weights_norm", float(epoch * 10))

    class Reader(Callback):  # runs after Custom: sees both kinds
        def on_epoch_end(self, epoch, metrics):
            noted.append((metrics["weights_norm"], metrics[Metric.TEST_LOSS]))

        def on_run_end(self, run):
            run.metrics.track(Metric.TEST_SCORE, 0.75)
            run.metrics.note("scratch", object())

    out = train(SGDClassifier(random_state=0), X, y, epochs=3, callbacks=[Custom(), Reader()])
    assert noted == [(0.0, 1.0), (10.0, 0.5), (20.0, 1 / 3)]
    assert out.history_["test_loss"] == [1.0, 0.5, 1 / 3]
    assert "weights_norm" not in out.history_
    assert out.metrics_["test_loss"] == pytest.approx(1 / 3)
    assert out.metrics_["best_test_loss"] == pytest.approx(1 / 3)
    assert out.metrics_["test_score"] == 0.75
    assert "scratch" not in out.metrics_ and "weights_norm" not in out.metrics_


def test_metric_log_rules():
    log = MetricLog(epoch=2)
    with pytest.raises(TypeError, match=re.escape(
            "Tracked metric 'lr' must be a real number, got 'high' (str); use note() for other "
            "values.")):
        log.track("lr", "high")
    with pytest.raises(TypeError, match=re.escape("A metric name must be a str or a Metric, got 3")):
        log.track(3, 1.0)
    log.track("lr", 0.1)
    log.note("lr", "moved")          # the same name moves to untracked
    assert log.tracked == {} and log.untracked == {"lr": "moved"}
    assert "lr" in log and 5 not in log and len(log) == 1
    assert repr(log) == "MetricLog(epoch=2, tracked={}, untracked={'lr': 'moved'})"


class MetricsMonitor(PipelinePlugin):
    """A plug-in that sees the stage runs, plus a record_metrics(name, metrics, step) sink."""

    def __init__(self):
        self.stage_runs, self.received = [], []

    def after_stage(self, ctx):
        self.stage_runs.append((ctx.pipeline_name, ctx.stage_name, ctx.mode, ctx.n_rows))

    def record_metrics(self, name, metrics, step):
        self.received.append((name, step, dict(metrics)))


def test_every_partial_fit_goes_through_the_execution_loop_and_metrics_reach_the_monitor(data):
    X, y = data
    monitor = MetricsMonitor()

    class RunLevel(Callback):
        def on_run_end(self, run):
            run.metrics.track(Metric.TEST_SCORE, 0.5)

    train(SGDClassifier(random_state=0), X, y, epochs=2, batch_size=250, monitor=monitor,
          scoring="accuracy", callbacks=[RunLevel()])
    assert monitor.stage_runs == [("training_pipeline", "model", "partial_fit", n)
                                  for n in (250, 250, 100) * 2]
    assert [(n, s) for n, s, _ in monitor.received] == [
        ("training_pipeline", 0), ("training_pipeline", 1), ("training_pipeline", None)]
    assert set(monitor.received[0][2]) == {"train_loss", "train_accuracy"}
    assert monitor.received[-1][2] == {"test_score": 0.5}


# -- hooks: order and closing -------------------------------------------------------------------------
def test_hooks_called_in_order(data):
    X, y = data
    events = []
    a, b = Recorder(events), Recorder(events)
    train(SGDClassifier(random_state=0), X, y, epochs=2, callbacks=[a, b])
    A, B = id(a), id(b)
    assert events == [
        ("run_start", A), ("run_start", B),
        ("epoch_start", A, 0, 0), ("epoch_start", B, 0, 0),
        ("epoch_end", A, 0, False), ("epoch_end", B, 0, False),
        ("epoch_start", A, 1, 0), ("epoch_start", B, 1, 0),
        ("epoch_end", A, 1, False), ("epoch_end", B, 1, False),
        ("run_end", A, "success"), ("run_end", B, "success"),
    ]


def test_callback_returning_true_stops_after_that_epoch(data):
    X, y = data
    rec = Recorder(stop_at=1)
    out = train(SGDClassifier(random_state=0), X, y, epochs=10, callbacks=[rec])
    assert out.n_epochs_ == 2 and len(out.history_) == 2
    assert rec.events[-1] == ("run_end", id(rec), "stopped")
    assert out.history_.stop_reason == "Recorder.on_epoch_end returned True at epoch 1"


def test_hooks_are_closed_when_the_model_raises(data):
    X, y = data
    rec = Recorder()
    with pytest.raises(FloatingPointError, match="gradient exploded"):
        train(ExplodingSGD(explode_at=5, random_state=0), X, y, epochs=3, batch_size=200,
              callbacks=[rec])
    R = id(rec)
    assert rec.events == [("run_start", R), ("epoch_start", R, 0, 0), ("epoch_end", R, 0, False),
                          ("epoch_start", R, 1, 0), ("epoch_end", R, 1, True),
                          ("run_end", R, "failed")]


def test_hooks_are_closed_when_a_callback_raises(data):
    X, y = data
    events = []

    class Broken(Callback):
        def on_epoch_end(self, epoch, metrics):
            if epoch == 1:
                raise KeyError("broken callback")

    first, last = Recorder(events), Recorder(events)
    with pytest.raises(KeyError, match="broken callback"):
        train(SGDClassifier(random_state=0), X, y, epochs=4, callbacks=[first, Broken(), last])
    ends = [e for e in events if e[0] in ("epoch_end", "run_end")]
    # the callback after the broken one is still closed, and the run ends as failed
    F, L = id(first), id(last)
    assert ends[-4:] == [("epoch_end", F, 1, False), ("epoch_end", L, 1, False),
                         ("run_end", F, "failed"), ("run_end", L, "failed")]
    assert not any(e[0] == "epoch_start" and e[2] == 2 for e in events)


def test_a_hook_error_while_closing_does_not_hide_the_first_error(data):
    X, y = data

    class BadClose(Callback):
        def on_run_end(self, run):
            raise RuntimeError("close failed")

    with pytest.raises(FloatingPointError) as info:
        train(ExplodingSGD(explode_at=1, random_state=0), X, y, epochs=2, callbacks=[BadClose()])
    assert any("BadClose.on_run_end also raised RuntimeError: close failed" in n
               for n in info.value.__notes__)


# -- bad input ----------------------------------------------------------------------------------------
def test_model_without_partial_fit_fails_before_any_work(data):
    X, y = data
    rec = Recorder()
    msg = ("TrainingPipeline 'training_pipeline': epochs=5 trains the model with partial_fit, but "
           "the model LogisticRegression has no partial_fit method. Use epochs=None to fit it in "
           "one call, or a model that learns incrementally (for example SGDClassifier, "
           "SGDRegressor, MLPClassifier, MultinomialNB).")
    with pytest.raises(TypeError, match=re.escape(msg)):
        train(LogisticRegression(), X, y, epochs=5, callbacks=[rec])
    assert rec.events == []


def test_unified_pipeline_fails_before_fitting_any_feature_stage(data):
    from sklearn.preprocessing import StandardScaler

    X, y = data
    monitor = MetricsMonitor()
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())], model=LogisticRegression(),
                             epochs=3, monitor=monitor)
    with pytest.raises(TypeError, match=re.escape(
            "UnifiedMLPipeline 'unified_pipeline': epochs=3 trains the model with partial_fit, "
            "but the model LogisticRegression has no partial_fit method.")):
        pipe.fit(X, y)
    assert monitor.stage_runs == []
    assert not hasattr(pipe, "input_schema_")


def test_unknown_scoring_lists_close_matches(data):
    X, y = data
    rec = Recorder()
    with pytest.raises(ValueError, match=re.escape(
            "TrainingPipeline 'training_pipeline': scoring 'acurracy' is not a scikit-learn scorer "
            "name. Did you mean 'accuracy'?")):
        train(SGDClassifier(), X, y, scoring="acurracy", callbacks=[rec])
    assert rec.events == []
    # fit_epochs alone (no TrainingPipeline to resolve scorers) says the same, with more matches
    with pytest.raises(ValueError, match=re.escape(
            "TrainingPipeline 'training_pipeline': scoring='balanced_acuracy' is not a scorer "
            "scikit-learn knows. Did you mean: 'balanced_accuracy', 'accuracy'?")):
        fit_epochs(pipeline_params(scoring="balanced_acuracy"), PipelineStage(SGDClassifier()),
                   X, y)
    with pytest.raises(ValueError, match=re.escape(
            "scoring='zzzz' is not a scorer scikit-learn knows. See "
            "sklearn.metrics.get_scorer_names() for the valid names.")):
        fit_epochs(pipeline_params(scoring=["accuracy", "zzzz"]), PipelineStage(SGDClassifier()),
                   X, y)


@pytest.mark.parametrize("params, error, msg", [
    ({"validation": 1.5}, ValueError,
     "validation as a fraction must be between 0 and 1 (exclusive), got 1.5."),
    ({"validation": "20%"}, ValueError,
     "validation must be None, a fraction in (0, 1) or a pair (X_val, y_val); got '20%' (str)."),
    ({"scoring": 42}, TypeError, "scoring must be None, a scorer name, a callable"),
    ({"scoring": []}, ValueError, "scoring is an empty list"),
])
def test_bad_parameters_of_fit_epochs_alone(data, params, error, msg):
    X, y = data
    with pytest.raises(error, match=re.escape(msg)):
        fit_epochs(pipeline_params(**params), PipelineStage(SGDClassifier()), X, y)


@pytest.mark.parametrize("params, error, msg", [
    ({"epochs": 0}, ValueError, "epochs must be an integer >= 1, got 0."),
    ({"epochs": 2.5}, ValueError, "epochs must be an integer >= 1, got 2.5."),
    ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1 or None, got 0."),
    ({"callbacks": [EarlyStopping(), "History"]}, TypeError,
     "callbacks[1] is 'History' (str), not a ml_toolbox.callbacks.Callback."),
])
def test_bad_parameters(data, params, error, msg):
    X, y = data
    with pytest.raises(error, match=re.escape("TrainingPipeline 'training_pipeline': " + msg)):
        train(SGDClassifier(), X, y, **params)


def test_y_is_required(data):
    X, _ = data
    with pytest.raises(ValueError, match=re.escape("epoch training needs y (the targets)")):
        train(SGDClassifier(), X, None)


# -- EarlyStopping -----------------------------------------------------------------------------------
def test_early_stopping_restores_the_best_epoch(data):
    X, y = data
    X_val, y_val = X[:200], y[:200]
    stop = EarlyStopping(monitor=Metric.VAL_SCORE, patience=2)
    # a large constant learning rate makes the score jump around
    model = SGDClassifier(learning_rate="constant", eta0=5.0, random_state=0)
    out = train(model, X[200:], y[200:], epochs=30, batch_size=50, validation=(X_val, y_val),
                callbacks=[stop])
    history = out.history_
    best_epoch, best = history.best("validation_score")
    assert (stop.best_epoch_, stop.best_) == (best_epoch, best)
    assert stop.stopped_epoch_ == history.epochs[-1] and out.n_epochs_ < 30
    assert stop.restored_
    # the fitted model is the best epoch's: its score equals the best recorded
    assert out.stage_.estimator_.score(X_val, y_val) == best
    assert out.metrics_["validation_score"] == best == out.metrics_["best_validation_score"]
    assert "no improvement for 2 epochs" in history.stop_reason


def test_early_stopping_without_restore_keeps_the_last_epoch(data):
    X, y = data
    X_val, y_val = X[:200], y[:200]
    stop = EarlyStopping(monitor="validation_loss", patience=1, restore_best=False)
    model = SGDClassifier(learning_rate="constant", eta0=5.0, random_state=0)
    out = train(model, X[200:], y[200:], epochs=30, batch_size=50, validation=(X_val, y_val),
                callbacks=[stop])
    est = out.stage_.estimator_
    assert not stop.restored_
    assert out.metrics_["validation_loss"] == out.history_["validation_loss"][-1]
    assert out.metrics_["validation_loss"] == pytest.approx(log_loss(y_val, est.predict_proba(X_val))
                                                        if hasattr(est, "predict_proba") else
                                                        hinge_loss(y_val, est.decision_function(X_val)))


def test_early_stopping_on_a_metric_never_produced_fails_after_the_first_epoch(data):
    X, y = data
    rec = Recorder()
    msg = ("EarlyStopping(monitor='val_acc'): monitored metric 'val_acc' was not produced in "
           "epoch 0. Metrics produced: ['train_loss', 'train_score']. validation_* metrics need a "
           "validation set: TrainingPipeline(validation=0.2 or (X_val, y_val)).")
    with pytest.raises(ValueError, match=re.escape(msg)):
        train(SGDClassifier(), X, y, epochs=5, callbacks=[EarlyStopping(monitor="val_acc"), rec])
    assert [e[:3] for e in rec.events if e[0] == "epoch_end"] == [("epoch_end", id(rec), 0)]
    assert rec.events[-1] == ("run_end", id(rec), "failed")


@pytest.mark.parametrize("kwargs, msg", [
    ({"mode": "best"}, "mode must be 'min', 'max' or 'auto', got 'best'."),
    ({"patience": -1}, "patience must be an integer >= 0, got -1."),
    ({"min_delta": -0.1}, "min_delta must be a number >= 0, got -0.1."),
])
def test_early_stopping_bad_parameters(data, kwargs, msg):
    X, y = data
    with pytest.raises(ValueError, match=re.escape(f"EarlyStopping(monitor='validation_loss'): {msg}")):
        train(SGDClassifier(), X, y, callbacks=[EarlyStopping(**kwargs)])


def test_metric_direction():
    assert metric_direction(Metric.VAL_LOSS) == "min"
    assert metric_direction("validation_neg_log_loss") == "max"
    assert metric_direction("train_accuracy") == "max"
    assert metric_direction("custom", {"custom": "min"}) == "min"


# -- ModelCheckpoint ---------------------------------------------------------------------------------
def test_checkpoint_every_n_epochs(data):
    X, y = data
    store = FakeStore()
    ckpt = ModelCheckpoint(store, name="churn", every=2, tags={"team": "risk"})
    train(SGDClassifier(random_state=0), X, y, epochs=5, batch_size=100, callbacks=[ckpt])
    assert ckpt.saved_ == [(1, 1), (3, 2)]
    assert store.list_versions("churn") == [1, 2]
    first = store.saved[0]
    assert isinstance(first.obj, SGDClassifier) and hasattr(first.obj, "coef_")
    assert first.tags == {"epoch": 1, "checkpoint": True, "team": "risk"}
    assert set(first.metrics) == {"train_loss", "train_score"}
    assert first.message.startswith("epoch 1: train_loss=")


def test_checkpoint_only_on_improvement(data):
    X, y = data
    store = FakeStore()
    ckpt = ModelCheckpoint(store, save_best_only=True, monitor="validation_score")
    model = SGDClassifier(learning_rate="constant", eta0=5.0, random_state=0)
    out = train(model, X, y, epochs=8, batch_size=50, validation=0.3, callbacks=[ckpt])
    scores = out.history_["validation_score"]
    improving = [e for e in range(len(scores)) if scores[e] > max(scores[:e], default=-1)]
    assert [e for e, _ in ckpt.saved_] == improving
    assert {s.name for s in store.saved} == {"training_pipeline"}  # default: the pipeline's name
    # the saved model at each improvement is that epoch's model
    last_epoch, _ = ckpt.saved_[-1]
    assert store.saved[-1].metrics["validation_score"] == scores[last_epoch]


def test_checkpoint_bad_store_and_every(data):
    X, y = data
    with pytest.raises(TypeError, match=re.escape(
            "ModelCheckpoint: store must be a PipelinePersistence (or an object with save()) or "
            "a path, got 42 (int).")):
        train(SGDClassifier(), X, y, callbacks=[ModelCheckpoint(42)])
    with pytest.raises(ValueError, match=re.escape(
            "ModelCheckpoint(name='m'): every must be an integer >= 1, got 0.")):
        train(SGDClassifier(), X, y, callbacks=[ModelCheckpoint(FakeStore(), "m", every=0)])


# -- History -----------------------------------------------------------------------------------------
def test_history_access(data):
    X, y = data
    mine = History()
    out = train(SGDClassifier(random_state=0), X, y, epochs=3, validation=0.2,
                scoring="accuracy", callbacks=[mine])
    history = out.history_
    assert mine.records == history.records and mine is not history
    assert history[Metric.VAL_LOSS] == history["validation_loss"]
    assert len(history["validation_loss"]) == 3
    frame = history.to_frame()
    assert list(frame.index) == [0, 1, 2]
    assert list(frame.columns) == ["train_loss", "train_accuracy", "validation_loss",
                                   "validation_accuracy"]
    assert history.history["train_accuracy"] == history["train_accuracy"]
    assert history.params["epochs"] == 3 and history.params["validation"] is True
    with pytest.raises(KeyError, match=re.escape("No metric 'validation_f1' in this history.")):
        history["validation_f1"]
    text = io.StringIO()
    Console(file=text, width=120).print(history)
    assert "History (3 epochs)" in text.getvalue() and "validation_accuracy" in text.getvalue()


def test_history_plot(data, tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    X, y = data
    out = train(SGDClassifier(random_state=0), X, y, epochs=3, validation=0.2)
    figure = out.history_.plot(title="SGD")
    assert [ax.get_ylabel() for ax in figure.axes] == ["loss", "score"]
    assert [line.get_label() for line in figure.axes[0].get_lines()] == ["train_loss", "validation_loss"]
    figure.savefig(tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 0
    with pytest.raises(KeyError, match="No metric 'nope'"):
        out.history_.plot(["nope"])
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert out.history_.plot([Metric.VAL_SCORE], ax=ax) is fig
    assert [line.get_label() for line in ax.get_lines()] == ["validation_score"]
    plt.close("all")
    with pytest.raises(ValueError, match=re.escape(
            "History.plot(): nothing to plot, no metric was recorded.")):
        History().plot()


def test_history_plot_without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=re.escape(
            "History.plot() needs matplotlib, which is not installed. Install it with: "
            "pip install 'ml_toolbox[plot]'")):
        History().plot()


# -- ProgressBar -------------------------------------------------------------------------------------
def test_progress_bar_renders_when_watched(data):
    X, y = data
    buffer = io.StringIO()
    bar = ProgressBar(console=Console(file=buffer, force_terminal=True, width=140))
    train(SGDClassifier(random_state=0), X, y, epochs=3, scoring="accuracy", callbacks=[bar])
    text = buffer.getvalue()
    assert bar.shown_
    assert "training_pipeline epoch" in text and "3/3" in text and "train_accuracy=" in text


def _last_frame(text):
    """The progress display's last drawn frame, from a terminal console's output."""
    return text.split("\r\x1b[2K")[-1].replace("\x1b[?25h", "").rstrip("\n")


SCORERS = ["accuracy", "balanced_accuracy", "f1", "precision", "recall", "roc_auc"]


@settings(max_examples=8, deadline=None)
@given(width=st.integers(80, 200), n_scorers=st.integers(1, len(SCORERS)))
def test_progress_bar_keeps_bar_count_and_time_and_shortens_the_metrics(data, width, n_scorers):
    """At 80 columns (or any width) the frame is one line; the bar, the epoch count and the
    elapsed time are always there; the metrics give way, cut with an ellipsis."""
    X, y = data
    console = Console(file=io.StringIO(), force_terminal=True, width=width, color_system=None)
    train(SGDClassifier(random_state=0), X, y, epochs=3, scoring=SCORERS[:n_scorers],
          validation=0.25, callbacks=[ProgressBar(console=console)])
    frame = _last_frame(console.file.getvalue())
    assert "\n" not in frame and len(frame) <= width
    assert re.fullmatch(r"training_pipeline epoch ━+ 3/3 (\S.*\S) +\d:\d\d:\d\d", frame), frame
    metrics = re.fullmatch(r".* 3/3 (.*?) +\d:\d\d:\d\d", frame)[1].strip()
    items = metrics.split("  ")
    dropped = re.search(r" ?… \+(\d+)$", items[-1])
    if dropped:  # whole metrics give way, and the frame says how many
        items[-1] = items[-1][:dropped.start()]
        items = [i for i in items if i]
    names = [i.split("=")[0] for i in items]
    assert all(re.fullmatch(r"[a-z0-9_]+=-?\d[\d.e+-]*", i) for i in items), metrics
    everything = [f"{part}_{m}" for part in ("train", "validation")
                  for m in ["loss"] + SCORERS[:n_scorers]]
    assert set(names) <= set(everything) and names == [n for n in names if n in everything]
    assert len(names) + (int(dropped[1]) if dropped else 0) == len(everything)
    if width == 80:
        assert dropped


@pytest.mark.parametrize("console_kwargs, env, disable", [
    ({"force_terminal": False}, None, None),    # output to a file / pipe
    ({"force_terminal": True}, "true", None),   # CI
    ({"force_terminal": True}, None, True),     # explicitly off
])
def test_progress_bar_is_silent_when_nobody_watches(data, monkeypatch, console_kwargs, env,
                                                    disable):
    X, y = data
    if env:
        monkeypatch.setenv("CI", env)
    buffer = io.StringIO()
    bar = ProgressBar(console=Console(file=buffer, **console_kwargs), disable=disable)
    train(SGDClassifier(random_state=0), X, y, epochs=2, callbacks=[bar])
    assert not bar.shown_ and buffer.getvalue() == ""


def test_verbose_adds_a_progress_bar_only_when_asked(data, monkeypatch):
    X, y = data
    seen = []
    monkeypatch.setattr(ProgressBar, "on_run_start",
                        lambda self, run: (seen.append(self), setattr(self, "_progress", None)))
    train(SGDClassifier(random_state=0), X, y, epochs=1, verbose=0)
    assert seen == []
    train(SGDClassifier(random_state=0), X, y, epochs=1, verbose=1)
    assert len(seen) == 1


# -- Metric ------------------------------------------------------------------------------------------
def test_metric_names():
    assert Metric.TRAIN_LOSS == "train_loss" and f"{Metric.VAL_SCORE}" == "validation_score"
    assert Metric.VALIDATION_LOSS is Metric.VAL_LOSS
    assert {m.value for m in Metric} == {"train_loss", "train_score", "validation_loss", "validation_score",
                                         "test_loss", "test_score"}
    assert {"validation_loss": 1}[Metric.VAL_LOSS] == 1


# -- through the real pipelines ----------------------------------------------------------------------
def test_training_pipeline_with_epochs_is_a_fitted_estimator(data):
    X, y = data
    tp = TrainingPipeline(SGDClassifier(random_state=0), epochs=4, batch_size=100, random_state=0,
                          validation=0.25, scoring="accuracy")
    assert tp.fit(X, y) is tp
    assert tp.n_epochs_ == 4 and len(tp.history_) == 4
    assert tp.model_ is tp.stage_.estimator_ and hasattr(tp.model_, "coef_")
    np.testing.assert_array_equal(tp.predict(X), tp.model_.predict(X))
    assert tp.metrics_["validation_accuracy"] == tp.history_["validation_accuracy"][-1]
    # clone gives an unfitted copy with its own callbacks; the same data give the same model
    twin = clone(tp).fit(X, y)
    np.testing.assert_array_equal(twin.model_.coef_, tp.model_.coef_)


def test_a_failed_fit_leaves_the_fitted_pipeline_as_it_was(data):
    X, y = data
    tp = TrainingPipeline(ExplodingSGD(explode_at=10**6, random_state=0), epochs=2,
                          batch_size=200, random_state=0).fit(X, y)
    before = (tp.model_, tp.history_, dict(tp.metrics_))
    CALLS.clear()
    tp.set_params(model=ExplodingSGD(explode_at=4, random_state=0))
    with pytest.raises(FloatingPointError):
        tp.fit(X, y)
    assert (tp.model_, tp.history_, tp.metrics_) == before


def test_cross_val_score_with_epochs(data):
    from sklearn.model_selection import cross_val_score

    X, y = data
    scores = cross_val_score(TrainingPipeline(SGDClassifier(random_state=0), epochs=3,
                                              batch_size=100, random_state=0,
                                              callbacks=[EarlyStopping("train_loss", patience=1)]),
                             X, y, cv=3)
    assert scores.shape == (3,) and (scores > 0.5).all()


def test_unified_pipeline_with_epochs(data):
    from sklearn.preprocessing import StandardScaler

    X, y = data
    stop = EarlyStopping(monitor=Metric.VAL_LOSS, patience=2)
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())],
                             model=SGDClassifier(random_state=0), epochs=15, batch_size=64,
                             validation=0.25, random_state=0, callbacks=[stop])
    pipe.fit(X, y)
    tp = pipe.training_pipeline
    assert tp.n_epochs_ == len(tp.history_) <= 15
    assert tp.history_.params["n_samples"] == 450 and tp.history_.params["n_val_samples"] == 150
    assert pipe.metrics_["best_validation_loss"] == stop.best_
    # the served model is the best epoch's: the same split gives the same loss
    from sklearn.model_selection import train_test_split

    _, X_val, _, y_val = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    assert hinge_loss(y_val, pipe.decision_function(X_val)) == pytest.approx(stop.best_)

    result = pipe.execute(X, y, mode="train")
    assert result["model"] is pipe.training_pipeline.model_
    assert {"train_loss", "train_score", "validation_loss", "validation_score"} <= set(
        result["metrics"])


def test_unified_pipeline_partial_fit(data):
    from sklearn.preprocessing import MinMaxScaler, StandardScaler
    from sklearn.feature_selection import VarianceThreshold

    X, y = data
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())],
                             model=SGDClassifier(random_state=0))
    classes = np.unique(y)
    for start in range(0, len(X), 200):
        pipe.partial_fit(X[start:start + 200], y[start:start + 200], classes=classes)
    scaler = pipe.feature_pipeline.stages_[0].estimator_
    assert scaler.n_samples_seen_ == len(X)
    assert pipe.score(X, y) > 0.7

    stuck = UnifiedMLPipeline(features=[("select", VarianceThreshold()),
                                        ("scale", MinMaxScaler())],
                              model=SGDClassifier(random_state=0))
    with pytest.raises(ValueError, match=re.escape(
            "stage 'select' (VarianceThreshold) has no partial_fit and is not fitted yet")):
        stuck.partial_fit(X, y, classes=classes)


# -- the store and the example -----------------------------------------------------------------------
def test_checkpoints_appear_as_versions_in_the_real_store(data, tmp_path):
    from ml_toolbox import PipelinePersistence

    X, y = data
    store = PipelinePersistence(tmp_path / "models")
    ckpt = ModelCheckpoint(str(tmp_path / "models"), name="sgd", every=2)
    train(SGDClassifier(random_state=0), X, y, epochs=4, batch_size=100, callbacks=[ckpt])
    assert store.list_versions("sgd") == [v for _, v in ckpt.saved_] == [1, 2]
    model = store.load("sgd", 2)
    assert isinstance(model, SGDClassifier) and hasattr(model, "coef_")
    manifest = store.manifest("sgd", 2)
    assert manifest["kind"] == "model" and manifest["tags"]["epoch"] == 3


def _example():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "training_lifecycle.py"
    spec = importlib.util.spec_from_file_location("training_lifecycle_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_runs_the_seed_pattern(tmp_path):
    from threadpoolctl import threadpool_limits

    from ml_toolbox import PipelinePersistence

    store = PipelinePersistence(tmp_path / "store")
    out = io.StringIO()
    with threadpool_limits(limits=1):
        result = _example().main(store=store, console=Console(file=out, width=150))
    stop, history, metrics = result["early_stopping"], result["history"], result["metrics"]
    text = out.getvalue()
    # epoch loop, epoch metrics (standard + tracked custom, never the untracked one)
    assert history.metric_names == ["train_loss", "train_accuracy", "validation_loss",
                                    "validation_accuracy", "weight_norm"]
    assert "samples_seen" not in history and "samples_seen" not in metrics
    # early stop, restoring the best epoch
    assert stop.stopped_epoch_ is not None and stop.restored_
    assert metrics["validation_loss"] == metrics["best_validation_loss"] == stop.best_
    # run metrics from on_run_end, computed on the restored model
    assert {"test_loss", "test_score"} <= set(metrics)
    # checkpoints as versions in the store, the last one the best epoch
    assert result["versions"] == list(range(1, len(result["checkpoint"].saved_) + 1))
    best = store.load("mlp_model", result["versions"][-1])
    assert store.manifest("mlp_model", result["versions"][-1])["tags"]["epoch"] == stop.best_epoch_
    np.testing.assert_array_equal(best.predict(np.zeros((1, 40))),
                                  result["pipeline"].predict(np.zeros((1, 40))))
    assert result["checkpoint"].saved_[-1][0] == stop.best_epoch_
    assert "model restored to it: True" in text and "checkpoints in the store" in text


def test_patience_counts_epochs_without_improvement():
    stop = EarlyStopping(monitor="validation_loss", patience=2)
    run = SimpleNamespace(stage=None, directions={}, stop=lambda reason: None, model_epoch=0,
                          status="success")
    stop.on_run_start(run)
    decisions = []
    for epoch, loss in enumerate([1.0, 0.9, 0.95, 0.91, 0.8, 0.85, 0.85]):
        log = MetricLog(epoch)
        log.track("validation_loss", loss)
        decisions.append(stop.on_epoch_end(epoch, log))
    assert decisions == [False, False, False, True, False, False, True]


def test_the_training_guide_runs(tmp_path, monkeypatch, capsys):
    """Every ```python block of docs/training.md runs, in order, as a reader would paste them."""
    from pathlib import Path

    from threadpoolctl import threadpool_limits

    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    guide = Path(__file__).resolve().parents[1] / "docs" / "training.md"
    blocks = re.findall(r"```python\n(.*?)```", guide.read_text(), re.S)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    with threadpool_limits(limits=1):
        for i, block in enumerate(blocks):
            exec(compile(block, f"docs/training.md block {i}", "exec"), namespace)
    assert len(blocks) >= 4
    stop = namespace["stop"]
    assert (tmp_path / "learning_curves.png").stat().st_size > 0
    assert stop.restored_ and namespace["unified"].training_pipeline.n_epochs_ >= 1
    first_output = capsys.readouterr().out.splitlines()[0]
    assert first_output.split()[2] == "True"


def test_a_fitted_pipeline_pickles_without_the_run(data):
    import pickle

    X, y = data
    stop, ckpt, mine = EarlyStopping("train_loss", patience=1), ModelCheckpoint(FakeStore()), History()
    tp = train(SGDClassifier(random_state=0), X, y, epochs=4, batch_size=100,
               callbacks=[stop, ckpt, mine])
    # nothing keeps the finished run (its stage, the store, the pipeline) alive
    assert stop._run is None and ckpt._run is None and ckpt._store is None
    logs = []

    class Keep(Callback):
        def on_epoch_end(self, epoch, metrics):
            logs.append(metrics)

    train(SGDClassifier(random_state=0), X, y, epochs=1, callbacks=[Keep()])
    assert logs[0].run is None
    copy = pickle.loads(pickle.dumps(tp))
    assert copy.history_.records == tp.history_.records and copy.metrics_ == tp.metrics_
    np.testing.assert_array_equal(copy.predict(X), tp.predict(X))
    assert len(pickle.dumps(tp.history_)) < 2_000


def test_epochs_are_logged(data, caplog):
    import logging

    X, y = data
    with caplog.at_level(logging.INFO, logger="ml_toolbox.lifecycle"):
        train(SGDClassifier(random_state=0), X, y, epochs=2, callbacks=[Recorder(stop_at=0)])
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("TrainingPipeline 'training_pipeline' epoch 1/2 (")
    assert "train_loss=" in messages[0]
    assert messages[1] == ("TrainingPipeline 'training_pipeline': stopped after epoch 0: "
                           "Recorder.on_epoch_end returned True at epoch 0")


class FlakySGD(SGDClassifier):
    """partial_fit call number 3 (counted in CALLS) fails once with a ConnectionError."""

    def partial_fit(self, X, y, classes=None):
        CALLS.append(len(X))
        if len(CALLS) == 3:
            raise ConnectionError("feature store hiccup")
        return super().partial_fit(X, y, classes=classes)


def test_a_retry_handler_reruns_a_failed_batch(data):
    from ml_toolbox import RetryConfig, RetryHandler

    X, y = data
    slept = []
    handler = RetryHandler(RetryConfig(max_retries=2, base_delay=0.5), sleep=slept.append)
    tp = train(FlakySGD(random_state=0), X, y, epochs=2, batch_size=200, retry_handler=handler)
    assert len(CALLS) == 2 * 3 + 1 and slept == [0.5]
    assert tp.n_epochs_ == 2 and len(tp.history_) == 2


def test_a_notebook_counts_as_someone_watching(monkeypatch):
    from ml_toolbox.progress import is_watching  # what ProgressBar asks

    monkeypatch.delenv("CI", raising=False)
    assert is_watching(1, console=Console(file=io.StringIO(), force_jupyter=True))
    assert not is_watching(1, console=Console(file=io.StringIO(), force_terminal=False,
                                              force_jupyter=False))
    monkeypatch.setenv("CI", "1")
    assert not is_watching(1, console=Console(file=io.StringIO(), force_jupyter=True))
    monkeypatch.setenv("CI", "false")
    assert is_watching(1, console=Console(file=io.StringIO(), force_terminal=True))


def test_the_real_monitor_sees_every_batch(data):
    from sklearn.preprocessing import StandardScaler

    from ml_toolbox import PipelineMonitor

    X, y = data
    monitor = PipelineMonitor()
    UnifiedMLPipeline(features=[("scale", StandardScaler())], model=SGDClassifier(random_state=0),
                      epochs=3, batch_size=200, random_state=0, monitor=monitor).fit(X, y)
    stats = monitor.get_pipeline_statistics("training_pipeline")
    assert stats["modes"] == {"partial_fit": 9} and stats["failures"] == 0
    assert stats["stages"]["model"]["mean_rows_in"] == 200.0
    assert monitor.get_pipeline_statistics("feature_pipeline")["executions"] == 1
