"""Saves hold the model, not the plug-ins; skops trusts ml_toolbox's own types and round-trips
every pipeline kind."""

import os
import pickle
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from ml_toolbox import (FeaturePipeline, InferencePipeline, MLToolbox, PipelineDebugger,
                        PipelineMonitor, PipelinePersistence, RetryHandler, TrainingPipeline,
                        UnifiedMLPipeline)
from ml_toolbox.store import PluginSaveError
from ml_toolbox.store._artifact import for_save
from ml_toolbox.persistence import IntegrityError


class Custom(TransformerMixin, BaseEstimator):
    """A user's own transformer: not ml_toolbox's, so not trusted by a skops load."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X, dtype=float)


class Failing(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        raise ValueError("no")


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


def _with_plugins(X, y):
    debugger = PipelineDebugger()
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())],
                             model=LogisticRegression(max_iter=500), monitor=PipelineMonitor(),
                             debugger=debugger, retry=RetryHandler(), name="churn").fit(X, y)
    for _ in range(20):
        pipe.predict(X)
    debugger.add_breakpoint("scale", condition=lambda ctx: False)
    return pipe


def _artifact_size(store, name, version):
    m = store.manifest(name, version)
    return m["files"][m["artifact"]]["size"]


@pytest.mark.parametrize("format", ["joblib", "skops"])
def test_a_save_leaves_the_plugins_out_and_the_pipeline_unchanged(tmp_path, iris, format):
    X, y = iris
    pipe = _with_plugins(X, y)
    params = pipe.get_params(deep=True)
    monitor, debugger, retry = pipe.monitor, pipe.debugger, pipe.retry
    version = pipe.save(tmp_path, "churn", format=format)
    # the user's pipeline is as it was: plug-ins attached, same parameters, clone works
    assert (pipe.monitor, pipe.debugger, pipe.retry) == (monitor, debugger, retry)
    assert pipe.get_params(deep=True).keys() == params.keys()
    assert clone(pipe).monitor is monitor
    loaded = UnifiedMLPipeline.load(tmp_path, "churn", version)
    for holder in (loaded, loaded.feature_pipeline, loaded.training_pipeline,
                   loaded.inference_pipeline):
        assert getattr(holder, "monitor") is None and getattr(holder, "debugger") is None
    assert loaded.retry is None
    np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))
    # the artifact is the size of the model alone
    bare = UnifiedMLPipeline(features=[("scale", StandardScaler())],
                             model=LogisticRegression(max_iter=500), name="churn").fit(X, y)
    bare_version = bare.save(tmp_path, "bare", format=format)
    store = PipelinePersistence(tmp_path)
    assert _artifact_size(store, "churn", version) <= 1.1 * _artifact_size(store, "bare",
                                                                          bare_version)


def test_a_debugger_holding_the_failed_input_is_not_saved(tmp_path, iris):
    X, y = iris
    debugger = PipelineDebugger()
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler()), ("boom", Failing())],
                             model="passthrough", debugger=debugger)
    big = pd.concat([X] * 200, ignore_index=True)
    with pytest.raises(ValueError):
        pipe.fit(big)
    assert debugger.last_failure is not None
    pipe.set_params(features=[("scale", StandardScaler())]).fit(X)
    version = pipe.save(tmp_path, "p")
    with open(os.path.join(tmp_path, "p", f"v{version:06d}",
                           PipelinePersistence(tmp_path).manifest("p", version)["artifact"]),
              "rb") as f:
        data = f.read()
    assert len(data) < 50_000
    assert pickle.dumps(debugger.last_failure) not in data


def test_keeping_plugins_names_the_one_that_cannot_be_saved(tmp_path, iris):
    X, y = iris
    pipe = _with_plugins(X, y)
    with pytest.raises(PluginSaveError, match=re.escape(
            "Cannot save the debugger plug-in (PipelineDebugger) of UnifiedMLPipeline 'churn' "
            "with plugins='keep' (format='joblib'):")) as info:
        pipe.save(tmp_path, "churn", plugins="keep")
    assert isinstance(info.value, pickle.PicklingError) and info.value.__cause__ is not None
    assert PipelinePersistence(tmp_path).list_versions("churn") == []  # nothing half-saved


def test_the_plugin_save_error_is_exported_and_a_persistence_error():
    import ml_toolbox.persistence
    import ml_toolbox.store

    assert ml_toolbox.store.PluginSaveError is ml_toolbox.persistence.PluginSaveError is PluginSaveError
    assert "PluginSaveError" in ml_toolbox.store.__all__
    assert issubclass(PluginSaveError, (ml_toolbox.store.PersistenceError, pickle.PicklingError, TypeError))
    for base in (ml_toolbox.store.PersistenceError, pickle.PicklingError, TypeError):
        assert issubclass(PluginSaveError, base)


def test_the_artifact_module_imports_first_in_a_fresh_process():
    """``ml_toolbox.store._artifact`` takes its error from the store's errors: no import cycle."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import ml_toolbox.store._artifact as a; print(a.PluginSaveError)"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "PluginSaveError" in done.stdout, done.stderr


@pytest.mark.parametrize("format", ["joblib", "skops"])
def test_keeping_plugins_that_can_be_saved(tmp_path, iris, format):
    X, y = iris
    monitor = PipelineMonitor()
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())],
                             model=LogisticRegression(max_iter=500), monitor=monitor).fit(X, y)
    pipe.predict(X.iloc[:1])  # stages run at once: their raw timings are saved as records
    loaded = UnifiedMLPipeline.load(tmp_path, "p", pipe.save(tmp_path, "p", plugins="keep",
                                                             format=format))
    assert isinstance(loaded.monitor, PipelineMonitor)
    assert loaded.monitor.history() == monitor.history()
    assert loaded.monitor.get_pipeline_statistics() == monitor.get_pipeline_statistics()


def test_a_wrong_plugins_value_is_refused(tmp_path, iris):
    X, y = iris
    with pytest.raises(ValueError, match=re.escape("plugins must be one of ['drop', 'keep']; got "
                                                   "'all'.")):
        UnifiedMLPipeline(model=LogisticRegression()).fit(X, y).save(tmp_path, "p",
                                                                   plugins="all")


def _kinds(X, y):
    return {
        "unified (toolbox defaults)": UnifiedMLPipeline(MLToolbox(), monitor=PipelineMonitor()),
        "unified": UnifiedMLPipeline(features=[("scale", StandardScaler())],
                                     model=LogisticRegression(max_iter=500),
                                     monitor=PipelineMonitor()),
        "unified (features only)": UnifiedMLPipeline(features=[("scale", StandardScaler())],
                                                     model="passthrough"),
        "feature": FeaturePipeline([("scale", StandardScaler())], monitor=PipelineMonitor()),
        "training": TrainingPipeline(model=LogisticRegression(max_iter=500),
                                     monitor=PipelineMonitor()),
        "inference": InferencePipeline(FeaturePipeline([("scale", StandardScaler())]),
                                       TrainingPipeline(model=LogisticRegression(max_iter=500)),
                                       monitor=PipelineMonitor()),
    }


@pytest.mark.parametrize("kind", list(_kinds(None, None)))
def test_every_pipeline_kind_round_trips_through_skops(tmp_path, iris, kind):
    X, y = iris
    pipe = _kinds(X, y)[kind].fit(X, y)
    for _ in range(3):
        (pipe.predict if hasattr(pipe, "predict") else pipe.transform)(X)
    version = PipelinePersistence(tmp_path).save(pipe, "p", format="skops")
    loaded = PipelinePersistence(tmp_path).load("p", version)  # no trusted=: ours are trusted
    assert type(loaded) is type(pipe)
    if hasattr(pipe, "predict"):
        np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))
    else:
        np.testing.assert_allclose(loaded.transform(X), pipe.transform(X))


def test_skops_still_refuses_types_that_are_not_ml_toolboxs(tmp_path, iris):
    X, y = iris
    pipe = UnifiedMLPipeline(features=[("custom", Custom())],
                             model=LogisticRegression(max_iter=500)).fit(X, y)
    store = PipelinePersistence(tmp_path)
    version = store.save(pipe, "p", format="skops")
    name = f"{Custom.__module__}.Custom"
    with pytest.raises(IntegrityError, match=re.escape(
            f"holds types that are not trusted: [{name!r}]")):
        store.load("p", version)
    loaded = store.load("p", version, trusted=[name])
    np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))


def test_for_save_leaves_other_objects_alone():
    model = LogisticRegression()
    assert for_save(model) is model
    assert for_save({"a": 1}) == {"a": 1}
