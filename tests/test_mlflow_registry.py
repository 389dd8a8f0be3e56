"""Store versions exported to a real MLflow registry (local SQLite backend), and aliases synced both ways.

The judge is MLflow itself: its client reads back the runs, registered models, versions and aliases,
and ``mlflow.sklearn.load_model`` loads what was exported.
"""

import hashlib
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from ml_toolbox import UnifiedMLPipeline
from ml_toolbox.persistence import (GateError, IntegrityError, PipelinePersistence, SignatureError,
                                    _NAME_RE)

mlflow = pytest.importorskip("mlflow")

from ml_toolbox.mlflow_registry import (  # noqa: E402  (after the importorskip)
    TAG_DIGEST,
    TAG_NAME,
    TAG_SIGNED,
    TAG_VERSION,
    RegistrySyncError,
    _check_mlflow_alias,
    export_version,
    sync_aliases,
)

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated"),
              pytest.mark.filterwarnings("ignore::FutureWarning")]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """One MLflow tracking + registry database for the module: MLflow makes its tables by running its
    migrations, seconds (tens of seconds on a loaded machine) per database."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    client.create_experiment("ml_toolbox exports", artifact_location=str(root / "artifacts"))
    return client, uri


@pytest.fixture(scope="module")
def data():
    return load_breast_cancer(return_X_y=True, as_frame=True)


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return [UnifiedMLPipeline(features=[("scale", StandardScaler())],
                              model=LogisticRegression(C=c, max_iter=2000)).fit(X, y)
            for c in (1.0, 0.01)]


def versions_of(client, registered):
    return sorted(int(mv.version) for mv in client.search_model_versions(f"name='{registered}'"))


def test_export_round_trip(registry, data, fitted, tmp_path):
    client, uri = registry
    X, _ = data
    store = PipelinePersistence(tmp_path / "store", signing_key="team-key")
    fitted[0].save(store, name="churn", metrics={"accuracy": 0.95, "log_loss": 0.1},
                   tags={"data": "2026-01"}, message="baseline")
    mv = export_version(store, "churn", client=client)
    assert mv.name == "churn" and str(mv.version) == "1"
    artifact = store.path / "churn" / "v000001" / store.manifest("churn", 1)["artifact"]
    expected = hashlib.sha256(artifact.read_bytes()).hexdigest()
    assert mv.tags[TAG_NAME] == "churn" and mv.tags[TAG_VERSION] == "1"
    assert mv.tags[TAG_DIGEST] == f"sha256:{expected}" and mv.tags[TAG_SIGNED] == "true"
    assert mv.tags["data"] == "2026-01" and mv.description == "baseline"

    run = client.get_run(mv.run_id)  # the run carries the version's metrics, params and tags
    assert run.info.status == "FINISHED" and run.info.run_name == "churn v1"
    assert run.data.metrics == {"accuracy": 0.95, "log_loss": 0.1}
    assert run.data.params["model__C"] == "1.0" and run.data.params["model"] == "LogisticRegression"
    assert run.data.tags["data"] == "2026-01" and run.data.tags[TAG_VERSION] == "1"

    model = mlflow.sklearn.load_model(mv.source)  # MLflow's own loader
    np.testing.assert_array_equal(model.predict(X), store.load("churn").predict(X))
    env = store.manifest("churn", 1)["environment"]  # pinned to the versions it was saved under
    with open(mlflow.pyfunc.get_model_dependencies(mv.source)) as requirements:
        pins = requirements.read().split()
    assert f"scikit-learn=={env['scikit-learn']}" in pins and f"ml_toolbox=={env['ml_toolbox']}" in pins

    again = export_version(store, "churn", 1, client=client)  # the same version: nothing new
    assert str(again.version) == "1" and versions_of(client, "churn") == [1]


def test_export_loads_through_models_uri(registry, data, fitted, tmp_path, monkeypatch):
    client, uri = registry
    X, _ = data
    store = PipelinePersistence(tmp_path / "store")
    fitted[1].save(store, name="fraud", metrics={"accuracy": 0.93})
    store.promote("fraud", 1, "production")
    assert sync_aliases(store, "fraud", direction="to_mlflow", registered_model="fraud-model",
                        client=client) == {"production": (1, "1")}
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    try:
        model = mlflow.sklearn.load_model("models:/fraud-model@production")
    finally:
        mlflow.set_tracking_uri(None)
    np.testing.assert_array_equal(model.predict(X), fitted[1].predict(X))
    assert client.get_model_version("fraud-model", "1").tags[TAG_SIGNED] == "false"


def test_export_refuses_what_the_store_refuses(registry, fitted, tmp_path):
    client, _ = registry
    store = PipelinePersistence(tmp_path / "store")
    fitted[0].save(store, name="tampered")
    artifact = store.path / "tampered" / "v000001" / store.manifest("tampered", 1)["artifact"]
    artifact.write_bytes(artifact.read_bytes()[:-1] + b"\x00")
    runs_before = len(client.search_runs([client.get_experiment_by_name("ml_toolbox exports")
                                          .experiment_id]))
    with pytest.raises(IntegrityError, match="failed its xxh3_128 check"):
        export_version(store, "tampered", client=client)
    fitted[0].save(store, name="unsigned")  # saved without a key, exported by a store that has one
    with pytest.raises(SignatureError, match="is not signed"):
        export_version(PipelinePersistence(store.path, signing_key="k"), "unsigned", client=client)
    store.save_config("features", {"columns": ["age"]})
    with pytest.raises(RegistrySyncError, match="it holds a config, and only fitted estimators"):
        export_version(store, "features", client=client)
    store.save({"not": "an estimator"}, "plain")
    with pytest.raises(RegistrySyncError, match="its dict has no predict method"):
        export_version(store, "plain", client=client)
    # nothing reached MLflow: no run, no registered model
    assert len(client.search_runs([client.get_experiment_by_name("ml_toolbox exports")
                                   .experiment_id])) == runs_before
    assert [m.name for m in client.search_registered_models()
            if m.name in ("tampered", "unsigned", "features", "plain")] == []


def test_aliases_round_trip_both_ways_through_the_store_gates(registry, fitted, tmp_path):
    client, _ = registry
    store = PipelinePersistence(tmp_path / "store")
    for i, accuracy in enumerate((0.95, 0.90, 0.97)):
        fitted[i % 2].save(store, name="sync", metrics={"accuracy": accuracy})
    store.promote("sync", 1, "production")
    store.promote("sync", 2, "staging")

    # store -> MLflow: versions exported as needed, aliases pointed at them
    assert sync_aliases(store, "sync", direction="to_mlflow", client=client) == {
        "production": (1, "1"), "staging": (2, "2")}
    assert client.get_model_version_by_alias("sync", "production").tags[TAG_VERSION] == "1"
    assert client.get_model_version_by_alias("sync", "staging").tags[TAG_VERSION] == "2"

    # MLflow -> store: a worse version is refused by the store's gates; nothing moves
    client.set_registered_model_alias("sync", "production", "2")
    history = store.history("sync")
    with pytest.raises(GateError, match=re.escape(
            "'production': gate accuracy>=current failed: version 2 has accuracy=0.9, version 1 "
            "(currently 'production') has 0.95") + ".*No alias was moved"):
        sync_aliases(store, "sync", direction="from_mlflow", gates=["accuracy>=current"],
                     client=client)
    assert store.aliases("sync") == {"production": 1, "staging": 2} and store.history("sync") == history

    # a better version: exported, aliased in MLflow, then synced into the store through promote
    mv3 = export_version(store, "sync", 3, client=client)
    client.set_registered_model_alias("sync", "production", str(mv3.version))
    assert sync_aliases(store, "sync", direction="from_mlflow", aliases=["production"],
                        gates=["accuracy>=current"], reason="MLflow review", client=client) == {
        "production": 3}
    assert store.aliases("sync") == {"production": 3, "staging": 2}
    last = store.history("sync")[-1]
    assert (last["action"], last["from"], last["to"]) == ("promote", 1, 3)
    assert last["reason"] == "MLflow review; synced from MLflow registered model 'sync' version 3"
    assert last["gates"] == ["accuracy>=current"]
    # in step already: nothing recorded
    assert sync_aliases(store, "sync", direction="from_mlflow", client=client) == {
        "production": 3, "staging": 2}
    assert store.history("sync")[-1] == last


def test_from_mlflow_refuses_versions_the_store_did_not_export(registry, fitted, tmp_path):
    client, _ = registry
    store = PipelinePersistence(tmp_path / "store")
    fitted[0].save(store, name="foreign", metrics={"accuracy": 0.9})
    fitted[1].save(store, name="foreign", metrics={"accuracy": 0.9})
    mv = export_version(store, "foreign", 1, client=client)
    # a version registered by hand from the same artifacts, without the store's tags
    by_hand = client.create_model_version("foreign", source=mv.source, run_id=mv.run_id)
    client.set_registered_model_alias("foreign", "production", str(by_hand.version))
    before = (store.aliases("foreign"), store.history("foreign"))
    with pytest.raises(RegistrySyncError, match=r"version 2 \(alias 'production'\) was not exported "
                                                r"from the store's 'foreign'.*Nothing was changed"):
        sync_aliases(store, "foreign", direction="from_mlflow", client=client)
    # a version that claims to be store version 2 but whose digest is not the store's
    liar = client.create_model_version("foreign", source=mv.source, run_id=mv.run_id, tags={
        TAG_NAME: "foreign", TAG_VERSION: "2", TAG_DIGEST: mv.tags[TAG_DIGEST]})
    client.set_registered_model_alias("foreign", "production", str(liar.version))
    with pytest.raises(RegistrySyncError, match="its digest 'sha256:.*' is not the store's"):
        sync_aliases(store, "foreign", direction="from_mlflow", client=client)
    with pytest.raises(RegistrySyncError, match="has no alias 'staging'. Its aliases: production"):
        sync_aliases(store, "foreign", direction="from_mlflow", aliases=["staging"], client=client)
    with pytest.raises(RegistrySyncError, match="MLflow has no registered model 'nobody'"):
        sync_aliases(store, "foreign", direction="from_mlflow", registered_model="nobody",
                     client=client)
    assert (store.aliases("foreign"), store.history("foreign")) == before


def test_bad_requests_are_refused_before_anything_changes(registry, fitted, tmp_path):
    client, _ = registry
    store = PipelinePersistence(tmp_path / "store")
    fitted[0].save(store, name="odd")
    store.promote("odd", 1, "prod.eu")
    with pytest.raises(RegistrySyncError, match=r"alias 'prod.eu' cannot be an MLflow alias"):
        sync_aliases(store, "odd", direction="to_mlflow", client=client)
    assert [m.name for m in client.search_registered_models() if m.name == "odd"] == []
    with pytest.raises(ValueError, match="direction must be 'to_mlflow' or 'from_mlflow'; got 'up'"):
        sync_aliases(store, "odd", direction="up", client=client)
    with pytest.raises(TypeError, match="gates= and reason= apply to direction='from_mlflow' only"):
        sync_aliases(store, "odd", direction="to_mlflow", gates={"accuracy": 0.9}, client=client)
    with pytest.raises(TypeError, match="either client= or tracking_uri="):
        export_version(store, "odd", client=client, tracking_uri="sqlite:///x.db")
    with pytest.raises(RegistrySyncError, match="Invalid registered model name \"it's\""):
        export_version(store, "odd", registered_model="it's", client=client)


@settings(max_examples=200, deadline=None)
@given(st.from_regex(_NAME_RE, fullmatch=True))
def test_alias_check_agrees_with_mlflow(alias):
    """For every alias the store accepts, ours refuses exactly what MLflow's validators refuse."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import (_validate_model_alias_name,
                                         _validate_model_alias_name_reserved)

    try:
        _validate_model_alias_name(alias)
        _validate_model_alias_name_reserved(alias)
        mlflow_ok = True
    except MlflowException:
        mlflow_ok = False
    try:
        _check_mlflow_alias(alias)
        ours = True
    except RegistrySyncError:
        ours = False
    assert ours == mlflow_ok, alias
