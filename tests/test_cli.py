"""Tests of the ``ml-toolbox`` command line (ml_toolbox.cli), through ``main([...])`` and the console script."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from ml_toolbox.cli import main
from ml_toolbox.persistence import PipelinePersistence

X, Y = make_classification(n_samples=40, n_features=4, random_state=0)


@pytest.fixture
def store(tmp_path):
    store = PipelinePersistence(tmp_path / "models")
    model = LogisticRegression().fit(X, Y)
    store.save(model, "churn", metrics={"accuracy": 0.80}, message="baseline")
    store.save(LogisticRegression(C=0.5).fit(X, Y), "churn", metrics={"accuracy": 0.90}, tags={"team": "risk"})
    store.save(model, "churn", metrics={"accuracy": 0.85})
    store.save(model, "fraud", metrics={"auc": 0.7})
    return store


def run(capsys, *argv):
    os.environ.setdefault("COLUMNS", "200")
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_names_and_versions(store, capsys):
    store.promote("churn", 2, "production")
    code, out, err = run(capsys, "--store", str(store.path), "list")
    assert code == 0 and err == ""
    assert "churn" in out and "fraud" in out and "production->2" in out
    code, out, _ = run(capsys, "--store", str(store.path), "list", "churn")
    assert code == 0
    assert "churn: 3 version(s)" in out and "accuracy=0.9" in out and "baseline" in out and "production" in out
    code, out, _ = run(capsys, "--store", str(store.path), "--json", "list", "churn")
    rows = json.loads(out)
    assert [r["version"] for r in rows] == [1, 2, 3] and rows[1]["aliases"] == ["production"]


def test_show_by_number_and_alias(store, capsys):
    store.promote("churn", 2, "production")
    code, out, _ = run(capsys, "--store", str(store.path), "show", "churn", "production")
    assert code == 0
    assert "churn version 2" in out and "metrics.accuracy" in out and "params.C" in out and "blake3" in out
    code, out, _ = run(capsys, "--store", str(store.path), "--json", "show", "churn", "1")
    assert json.loads(out)["message"] == "baseline"


def test_diff(store, capsys):
    code, out, _ = run(capsys, "--store", str(store.path), "--json", "diff", "churn", "1", "2")
    assert code == 0
    changes = json.loads(out)
    assert changes["params"] == {"C": [1.0, 0.5]}
    assert changes["metrics"] == {"accuracy": [0.8, 0.9]}
    code, out, _ = run(capsys, "--store", str(store.path), "diff", "churn", "1", "2")
    assert code == 0 and "churn: version 1 -> 2" in out and "accuracy" in out


def test_promote_gates_and_exit_codes(store, capsys):
    code, out, _ = run(capsys, "--store", str(store.path), "promote", "churn", "2", "production",
                       "--gate", "accuracy>=0.85", "--reason", "better")
    assert code == 0 and "production -> churn version 2" in out
    code, out, err = run(capsys, "--store", str(store.path), "promote", "churn", "3", "production",
                         "--gate", "accuracy>=current")
    assert code == 1
    assert "gate accuracy>=current failed: version 3 has accuracy=0.85, version 2" in err
    assert store.aliases("churn") == {"production": 2}
    code, _, err = run(capsys, "--store", str(store.path), "promote", "churn", "3", "production", "--gate", "f1>=0.5")
    assert code == 1 and "has no metric 'f1'" in err


def test_rollback_and_history(store, capsys):
    store.promote("churn", 1, "production")
    store.promote("churn", 2, "production")
    code, out, _ = run(capsys, "--store", str(store.path), "rollback", "churn", "production", "--reason", "bug")
    assert code == 0 and "production of churn: version 2 -> 1" in out
    assert store.aliases("churn") == {"production": 1}
    code, _, err = run(capsys, "--store", str(store.path), "rollback", "churn", "production")
    assert code == 1 and "nothing to roll back to" in err
    code, out, _ = run(capsys, "--store", str(store.path), "--json", "history", "churn")
    events = json.loads(out)
    assert [(e["action"], e["to"]) for e in events] == [("promote", 1), ("promote", 2), ("rollback", 1)]
    assert events[-1]["reason"] == "bug"


def test_delete_and_prune(store, capsys):
    store.promote("churn", 1, "production")
    code, _, err = run(capsys, "--store", str(store.path), "delete", "churn", "1")
    assert code == 1 and "alias 'production' points at it" in err
    code, out, _ = run(capsys, "--store", str(store.path), "delete", "churn", "2")
    assert code == 0 and "deleted churn version 2" in out
    code, out, _ = run(capsys, "--store", str(store.path), "--json", "prune", "--keep-last", "0", "--dry-run")
    assert code == 0 and json.loads(out) == [{"name": "churn", "version": 3}, {"name": "fraud", "version": 1}]
    assert store.list_versions("churn") == [1, 3]
    code, out, _ = run(capsys, "--store", str(store.path), "prune", "churn", "--keep-last", "0")
    assert code == 0 and "deleted 1 version(s)" in out
    assert store.list_versions("churn") == [1]
    code, _, err = run(capsys, "--store", str(store.path), "prune")
    assert code == 1 and "prune needs keep_last=..., older_than=..., or both." in err


def test_verify_reports_tampering_with_exit_1(store, capsys):
    code, out, _ = run(capsys, "--store", str(store.path), "verify")
    assert code == 0 and "4 sound, 0 failed" in out
    artifact = store.path / "churn" / "v000002" / "artifact.joblib"
    artifact.write_bytes(artifact.read_bytes()[:-5])
    code, out, _ = run(capsys, "--store", str(store.path), "verify")
    assert code == 1 and "3 sound, 1 failed" in out and "truncated" in out
    code, out, _ = run(capsys, "--store", str(store.path), "--json", "verify", "churn", "1")
    assert code == 0 and json.loads(out) == [{"name": "churn", "version": 1, "ok": True, "problem": None}]
    code, _, _ = run(capsys, "--store", str(store.path), "--signing-key", "k", "verify", "fraud")
    assert code == 1  # unsigned versions fail verification once a key is required


def test_bad_usage_exits_2(store, capsys):
    code, _, err = run(capsys, "--store", str(store.path), "frobnicate")
    assert code == 2 and "invalid choice: 'frobnicate'" in err
    code, _, err = run(capsys, "--store", str(store.path), "promote", "churn")
    assert code == 2 and "the following arguments are required" in err
    code, _, err = run(capsys, "list")
    assert code == 2 and "no store given" in err
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "promote" in out


def test_missing_store_and_unknown_names_exit_1(store, tmp_path, capsys):
    code, _, err = run(capsys, "--store", str(tmp_path / "nowhere"), "list")
    assert code == 1 and "is missing" in err
    (tmp_path / "plain").mkdir()
    code, _, err = run(capsys, "--store", str(tmp_path / "plain"), "list")
    assert code == 1 and "is not an ml_toolbox store" in err
    assert not (tmp_path / "plain" / "ml_toolbox_store.json").exists()  # the CLI never creates a store
    code, _, err = run(capsys, "--store", str(store.path), "show", "churn", "9")
    assert code == 1 and "'churn' has no version 9. Versions: 1, 2, 3" in err
    code, _, err = run(capsys, "--store", str(store.path), "list", "nope")
    assert code == 1 and "Names: 'churn', 'fraud'" in err


def test_installed_console_script(store):
    script = shutil.which("ml-toolbox", path=os.path.dirname(sys.executable)) or shutil.which("ml-toolbox")
    if script is None:
        pytest.skip("the ml-toolbox console script is not installed (pip install -e .)")
    proc = subprocess.run([script, "--store", str(store.path), "--json", "list"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert [r["name"] for r in json.loads(proc.stdout)] == ["churn", "fraud"]
    proc = subprocess.run([script, "--store", str(store.path), "promote", "churn", "1", "prod", "--gate", "accuracy>=0.99"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "gate accuracy>=0.99 failed" in proc.stderr
    proc = subprocess.run([script, "--bogus"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
