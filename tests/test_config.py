"""Config round trip, validation before any fit, component discovery and dry run (ml_toolbox.config)."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_breast_cancer
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from ml_toolbox import FeaturePipeline, MLToolbox, PipelineStage, UnifiedMLPipeline
from ml_toolbox.config import ConfigError, DryRunError, from_config, to_config, validate_config

X, Y = load_breast_cancer(return_X_y=True, as_frame=True)

CONFIG = {
    "name": "churn",
    "features": [
        {"name": "impute", "component": "SimpleImputer", "params": {"strategy": "median"}},
        {"name": "pca", "component": "PCA", "params": {"n_components": 3},
         "depends_on": ["impute"], "timeout": 60},
        {"name": "kbest", "component": "SelectKBest", "params": {"k": 2},
         "depends_on": ["impute"]},
        {"name": "minmax", "component": "MinMaxScaler", "params": {"feature_range": [-1, 1]},
         "depends_on": ["pca", "kbest"]},
    ],
    "feature_options": {"failure_strategy": "continue", "timeout": 600},
    "model": {"component": "LogisticRegression", "params": {"C": 0.5, "max_iter": 500}},
    "options": {"random_state": 0, "scoring": "accuracy"},
}


class Doubler(TransformerMixin, BaseEstimator):
    def __init__(self, factor=2.0):
        self.factor = factor

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X) * self.factor


def problems(config, toolbox=None):
    with pytest.raises(ConfigError) as info:
        validate_config(config, toolbox)
    return info.value.problems


# -- round trip ----------------------------------------------------------------------------------
def test_config_round_trips_through_a_pipeline_and_json(tmp_path):
    pipe = UnifiedMLPipeline.from_config(CONFIG)
    assert pipe.to_config() == CONFIG
    path = tmp_path / "pipe.json"
    pipe.to_config(path)
    again = UnifiedMLPipeline.from_config(path)
    assert again.to_config() == CONFIG
    assert json.loads(path.read_text()) == CONFIG
    fp = again.features
    assert isinstance(fp, FeaturePipeline) and fp.failure_strategy == "continue"
    assert fp["minmax"].estimator.feature_range == (-1, 1)  # JSON list -> the tuple it was


def test_pipeline_built_in_code_round_trips():
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler(with_mean=False)),
                                       PipelineStage(PCA(2), "pca", timeout=5.0)],
                             model=LogisticRegression(C=2.0), validation=0.25, random_state=0,
                             name="p")
    config = pipe.to_config()
    assert config == {
        "name": "p",
        "features": [{"name": "scale", "component": "StandardScaler",
                      "params": {"with_mean": False}},
                     {"name": "pca", "component": "PCA", "params": {"n_components": 2},
                      "timeout": 5.0}],
        "model": {"component": "LogisticRegression", "params": {"C": 2.0}},
        "options": {"validation": 0.25, "random_state": 0}}
    rebuilt = UnifiedMLPipeline.from_config(config)
    a, b = pipe.get_params(), rebuilt.get_params()
    assert a["features__scale__with_mean"] is b["features__scale__with_mean"] is False
    assert repr(a["model"]) == repr(b["model"])
    np.testing.assert_array_equal(pipe.fit(X, Y).predict_proba(X),
                                  rebuilt.fit(X, Y).predict_proba(X))


def test_defaults_and_nested_estimators_round_trip():
    config = {"name": "unified_pipeline", "features": None,
              "model": {"component": "BaggingClassifier",
                        "params": {"estimator": {"component": "LogisticRegression",
                                                 "params": {"C": 0.1}},
                                   "n_estimators": 3}}}
    pipe = UnifiedMLPipeline.from_config(config)
    assert pipe.model.estimator.C == 0.1
    assert pipe.to_config() == config


def test_registered_components_round_trip_with_their_toolbox():
    toolbox = MLToolbox()
    toolbox.register("doubler", Doubler)
    config = {"name": "d", "features": [{"name": "x2", "component": "doubler",
                                         "params": {"factor": 3.0}}], "model": "passthrough"}
    pipe = UnifiedMLPipeline.from_config(config, toolbox=toolbox)
    assert pipe.to_config() == config
    np.testing.assert_array_equal(pipe.fit(X).transform(X), X.to_numpy() * 3.0)
    msg = ("features[0]: test_config.Doubler is not a known component; register it "
           "(toolbox.register(name, cls)) and pass that toolbox to to_config / from_config")
    with pytest.raises(ConfigError, match=re.escape(msg)):
        to_config(UnifiedMLPipeline(features=[("x2", Doubler())]), toolbox=MLToolbox())


@pytest.mark.parametrize("kwargs, named", [
    ({"extra_columns": "bogus"}, "options.extra_columns: extra_columns must be one of"),
    ({"validation": 1.5}, "options.validation: validation must be a fraction in (0, 1), got 1.5"),
    ({"features": FeaturePipeline(steps=[("s", StandardScaler())], n_jobs="many")}, "feature_options.n_jobs"),
])
def test_to_config_refuses_an_option_that_would_not_read_back(tmp_path, kwargs, named):
    """What to_config writes, from_config reads: a bad option value is named when written, and no
    file is written."""
    pipe = UnifiedMLPipeline(**{"features": [("s", StandardScaler())], **kwargs})
    path = tmp_path / "c.json"
    with pytest.raises(ConfigError, match=re.escape(named)) as info:
        pipe.to_config(path)
    assert str(info.value).startswith("to_config: 1 problem(s)")
    assert not path.exists()


def test_function_stage_cannot_be_written():
    with pytest.raises(ConfigError, match=re.escape("features[0] ('log1p'): a function")):
        to_config(UnifiedMLPipeline(features=[np.log1p]))


# -- the toolbox knows every scikit-learn estimator -----------------------------------------------
def test_toolbox_knows_scikit_learn_estimators_by_name():
    toolbox = MLToolbox()
    assert toolbox.create("PCA", n_components=2).n_components == 2
    names = toolbox.available_components()
    assert {"StandardScaler", "HistGradientBoostingClassifier", "AutoPreprocessor"} <= set(names)
    assert toolbox.name_of(MinMaxScaler()) == "MinMaxScaler"
    msg = "MLToolbox has no component 'StandardScalar'. Did you mean 'StandardScaler'?"
    with pytest.raises(KeyError, match=re.escape(msg)):
        toolbox.create("StandardScalar")


def test_registered_component_wins_over_scikit_learn():
    toolbox = MLToolbox()
    toolbox.register("PCA", Doubler)
    assert isinstance(toolbox.create("PCA"), Doubler)


# -- refusals, each naming the field -------------------------------------------------------------
@pytest.mark.parametrize("config, expected", [
    ([1, 2], "a config must be a mapping (a dict or a JSON object), got list: [1, 2]"),
    ("not json {", None),
])
def test_config_that_is_not_a_mapping_is_refused(config, expected, tmp_path):
    if expected is None:
        path = tmp_path / "bad.json"
        path.write_text(config)
        with pytest.raises(ConfigError, match=re.escape(f"{path}: not valid JSON")):
            UnifiedMLPipeline.from_config(path)
        return
    assert problems(config) == [expected]
    with pytest.raises(TypeError):  # ConfigError is a TypeError as well as a ValueError
        UnifiedMLPipeline.from_config(config)


def test_stage_entry_without_component_is_refused():
    assert problems({"features": [{"name": "scale", "params": {}}]}) == [
        "features[0]: a stage entry needs 'component' (the name of an estimator), got keys "
        "['name', 'params']"]


def test_unknown_component_and_parameter_get_close_matches():
    found = problems({"features": [{"component": "StandardScalar"},
                                   {"component": "PCA", "params": {"n_componets": 2}}]})
    assert found[0] == ("features[0].component: unknown component 'StandardScalar'. Did you mean "
                        "'StandardScaler'? Registered components: []; any scikit-learn "
                        "estimator class name is also valid.")
    assert found[1].startswith("features[1].params.n_componets: PCA has no parameter "
                               "'n_componets'. Did you mean 'n_components'? Valid parameters: "
                               "['copy', 'iterated_power', 'n_components',")


def test_parameter_of_the_wrong_type_is_refused_by_scikit_learn_constraints():
    assert problems({"model": {"component": "LogisticRegression", "params": {"C": "big"}}}) == [
        "model.params.C: The 'C' parameter of LogisticRegression must be a float in the range "
        "(0.0, inf]. Got 'big' instead."]


@pytest.mark.parametrize("options, expected", [
    ({"n_jobs": 0}, "feature_options.n_jobs: n_jobs must be None or a non-zero int (-1: all "
                    "cores), got 0."),
    ({"timeout": -5}, "feature_options.timeout: timeout must be None or a positive number of "
                      "seconds, got -5."),
    ({"failure_strategy": "keep_going"}, "feature_options.failure_strategy: failure_strategy "
                                         "must be one of ['fail_fast', 'continue'], got "
                                         "'keep_going'."),
    ({"n_job": 2}, "feature_options.n_job: unknown option. Did you mean 'n_jobs'? Valid "
                   "options: ['n_jobs', 'memory', 'memory_limit', 'failure_strategy', "
                   "'timeout']"),
])
def test_bad_feature_options_are_refused(options, expected):
    config = {"features": [{"name": "s", "component": "StandardScaler"}],
              "feature_options": options}
    assert problems(config) == [expected]


def test_bad_graph_and_stage_fields_are_refused():
    assert problems({"features": [{"name": "a", "component": "PCA", "depends_on": ["a"]}]}) == [
        "features: stage 'a' depends on itself (depends_on=['a'])."]
    assert problems({"features": [
        {"name": "a", "component": "PCA", "depends_on": ["b"]},
        {"name": "b", "component": "PCA", "depends_on": ["a"]}]}) == [
        "features: the stages form a cycle: 'a' -> 'b' -> 'a'; a graph pipeline must be "
        "acyclic."]
    assert problems({"features": [{"name": "a", "component": "PCA", "depends_on": ["z"]}]}) == [
        "features: stage 'a' depends on 'z', which is not a stage of this pipeline. Stages: "
        "['a']."]
    assert problems({"features": [{"name": "a", "component": "PCA", "timeout": -1}]}) == [
        "features[0].timeout: timeout must be None or a positive number of seconds, got -1."]
    assert problems({"features": [{"name": "a", "component": "PCA", "depends_on": "b"}]}) == [
        "features[0].depends_on: expected a list of stage names, got str: 'b'"]


def test_every_problem_is_reported_at_once():
    found = problems({"featurs": [], "model": {"component": "Ridge", "params": {"alpha": "x"}},
                      "options": {"shuffle": "yes"}})
    assert [p.split(":")[0] for p in found] == ["featurs", "model.params.alpha",
                                                "options.shuffle"]
    assert found[0] == ("featurs: unknown key. Did you mean 'features'? Valid keys: ['name', "
                        "'features', 'feature_options', 'model', 'options']")
    assert found[2] == "options.shuffle: expected bool, got str: 'yes'."


# Constructor parameters a config cannot hold: objects attached in code (the page says so), the
# pipeline's name and its two parts, which have keys of their own.
IN_CODE = {"toolbox", "monitor", "retry", "debugger", "callbacks", "tracking"}
OWN_KEYS = {"name", "features", "model"}
# A value other than the default for each option, as a config holds it.
NON_DEFAULT = {"scoring": "accuracy", "validation": 0.3, "epochs": 3, "batch_size": 64,
               "shuffle": False, "random_state": 7, "fast_inference": False,
               "extra_columns": "ignore", "verbose": 1}


def test_every_constructor_parameter_is_a_config_key_or_attached_in_code():
    from ml_toolbox.config import OPTIONS
    params = set(UnifiedMLPipeline().get_params(deep=False))
    assert params == set(OPTIONS) | IN_CODE | OWN_KEYS
    assert set(NON_DEFAULT) == set(OPTIONS)


@pytest.mark.parametrize("key", sorted(NON_DEFAULT))
def test_every_option_round_trips(key):
    """No parameter set in code is lost on the way through to_config (extra_columns was)."""
    pipe = UnifiedMLPipeline(model=LogisticRegression(), **{key: NON_DEFAULT[key]})
    config = pipe.to_config()
    assert config["options"] == {key: NON_DEFAULT[key]}
    assert getattr(UnifiedMLPipeline.from_config(config), key) == NON_DEFAULT[key]


def test_bad_extra_columns_is_refused_before_any_fit():
    assert problems({"options": {"extra_columns": "drop"}}) == [
        "options.extra_columns: extra_columns must be one of ['error', 'ignore'], got 'drop'."]
    assert problems({"options": {"extra_columns": 1}}) == [
        "options.extra_columns: expected str, got int: 1."]


# -- dry run -------------------------------------------------------------------------------------
def test_validate_dry_run_reports_shapes_and_leaves_the_pipeline_unfitted():
    pipe = UnifiedMLPipeline.from_config(CONFIG)
    report = pipe.validate(X, Y, n_rows=120)
    assert report.n_rows == 120
    assert report.features_shape == (120, 5)
    assert report.output_shape == (120,)
    assert report.stages == ["impute", "pca", "kbest", "minmax"]
    assert "input_schema_" not in pipe.__dict__


def test_validate_catches_a_shape_error_naming_the_stage():
    pipe = UnifiedMLPipeline(features=[("pca", PCA(n_components=50))],
                             model=LogisticRegression())
    with pytest.raises(DryRunError) as info:
        pipe.validate(X, Y, n_rows=40)
    message = str(info.value)
    assert message.startswith("dry run of UnifiedMLPipeline 'unified_pipeline' on 40 rows "
                              "failed during fit: ValueError: n_components=50 must be between")
    assert "stage 'pca'" in message
    assert isinstance(info.value.__cause__, ValueError)


def test_validate_catches_a_type_error_fast():
    frame = X.assign(city=["paris"] * len(X))
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())], model=LogisticRegression())
    with pytest.raises(DryRunError, match="failed during fit: ValueError: could not convert"):
        pipe.validate(frame, Y, n_rows=10)
    with pytest.raises(ValueError, match=re.escape("n_rows must be a positive int, got 0.")):
        pipe.validate(frame, Y, n_rows=0)


def test_from_config_validates_before_anything_is_fitted():
    with pytest.raises(ConfigError):
        from_config({"features": [{"component": "PCA", "params": {"n_components": "x"}}]})
    pipe = from_config({"features": [{"name": "scale", "component": "StandardScaler"}],
                        "model": {"component": "LogisticRegression"}})
    assert pipe.fit(X, Y).score(X, Y) > 0.9
    assert isinstance(pipe.transform(pd.DataFrame(X)), np.ndarray)


def test_orchestration_example_runs():
    import importlib.util
    import io
    import pathlib

    from rich.console import Console

    path = pathlib.Path(__file__).parent.parent / "examples" / "orchestration.py"
    spec = importlib.util.spec_from_file_location("orchestration_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = io.StringIO()
    pipe = module.main([], console=Console(file=out, width=200))
    text = out.getvalue()
    assert "Did you mean 'LogisticRegression'?" in text
    assert "'pca': 'hit'" in text and "config round trip: True" in text
    assert pipe.score(*__import__("sklearn.datasets", fromlist=["x"]).make_classification(
        n_samples=2000, n_features=20, random_state=0)) > 0.9
