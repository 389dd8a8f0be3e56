"""The ``ml-toolbox`` command line follows the conventions of the tools people know (issue 24, item 3).

Global options before or after the command at every level, ``--version`` and ``python -m ml_toolbox``,
typed ``--json`` output, exit 2 with argparse's usage line for every bad value, and tables that never
wrap a row, at 80 columns or 40.
"""

import datetime as dt
import io
import json
import os
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import ml_toolbox
from ml_toolbox import UnifiedMLPipeline
from ml_toolbox.cli import build_parser, main
from ml_toolbox.persistence import PipelinePersistence
from ml_toolbox.runs import RunStore

X, Y = load_iris(return_X_y=True, as_frame=True)

# command -> the rest of a valid command line; nested commands name their levels.
STORE_COMMANDS = {
    ("list",): [], ("show",): ["churn"], ("history",): ["churn"], ("diff",): ["churn", "1", "2"],
    ("promote",): ["churn", "1", "prod"], ("rollback",): ["churn", "prod"], ("delete",): ["churn", "1"],
    ("prune",): ["--keep-last", "1"], ("verify",): [], ("serve",): ["--name", "churn"],
    ("rollout", "status"): ["churn"],
}
RUNS_COMMANDS = {
    ("runs", "list"): [], ("runs", "show"): ["abc"], ("runs", "compare"): ["abc", "def"],
    ("runs", "history"): ["p"], ("runs", "anomalies"): ["p"], ("runs", "report"): ["p"],
    ("runs", "leaderboard"): ["--metric", "m"], ("runs", "active"): [], ("runs", "archive"): [],
    ("runs", "note"): ["abc", "text"], ("runs", "plot"): ["m", "--out", "x.png"],
}
# option -> (its command-line words, the attribute it sets, the value expected)
STORE_OPTIONS = {
    "--store": (["--store", "s1"], "store", "s1"),
    "--signing-key": (["--signing-key", "k1"], "signing_key", "k1"),
    "--no-pickle": (["--no-pickle"], "no_pickle", True),
    "--formats": (["--formats", "skops"], "formats", ("skops",)),
    "--json": (["--json"], "json", True),
}
RUNS_OPTIONS = {
    "--runs": (["--runs", "r1"], "runs_dir", "r1"),
    "--json": (["--json"], "json", True),
}


def _placed(command, rest, words, position):
    """The command line with ``words`` at ``position``: 0 before the command, i after its i-th word."""
    return [*command[:position], *words, *command[position:], *rest]


def _matrix():
    for commands, options in ((STORE_COMMANDS, STORE_OPTIONS), (RUNS_COMMANDS, RUNS_OPTIONS)):
        for command, rest in commands.items():
            for option, spec in options.items():
                for position in range(len(command) + 1):
                    yield pytest.param(command, rest, spec, position,
                                       id=f"{' '.join(command)}-{option}-at{position}")


@pytest.fixture(scope="module")
def parser():
    with pytest.MonkeyPatch.context() as mp:  # the defaults come from the environment when built
        for name in ("ML_TOOLBOX_STORE", "ML_TOOLBOX_RUNS"):
            mp.delenv(name, raising=False)
        return build_parser()


@pytest.mark.parametrize("command, rest, spec, position", list(_matrix()))
def test_every_global_option_works_at_every_position_of_every_command(parser, command, rest, spec, position):
    words, attribute, expected = spec
    args = parser.parse_args(_placed(command, rest, words, position))
    assert getattr(args, attribute) == expected
    # and absent, the main parser's default stands (a sub-command's copy never clobbers it)
    plain = parser.parse_args([*command, *rest])
    assert getattr(plain, attribute) in (None, False)


@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_several_global_options_anywhere_and_the_later_value_wins(parser, data):
    commands, options = data.draw(st.sampled_from([(STORE_COMMANDS, STORE_OPTIONS),
                                                   (RUNS_COMMANDS, RUNS_OPTIONS)]))
    command = data.draw(st.sampled_from(sorted(commands)))
    chosen = data.draw(st.lists(st.sampled_from(sorted(options)), unique=True, min_size=1))
    slots = {i: [] for i in range(len(command) + 1)}
    for option in chosen:
        slots[data.draw(st.integers(0, len(command)), label=option)].extend(options[option][0])
    argv = [*slots[0]]
    for i, word in enumerate(command, 1):
        argv += [word, *slots[i]]
    args = parser.parse_args(argv + commands[command])
    for option in chosen:
        _, attribute, expected = options[option]
        assert getattr(args, attribute) == expected
    if "--store" in chosen:  # given twice, the later one wins
        later = parser.parse_args(["--store", "early", *command, "--store", "late", *commands[command]])
        assert later.store == "late"


def test_the_environment_default_stands_unless_an_option_overrides_it(monkeypatch):
    monkeypatch.setenv("ML_TOOLBOX_STORE", "from-env")
    assert build_parser().parse_args(["list"]).store == "from-env"
    assert build_parser().parse_args(["list", "--store", "given"]).store == "given"


# -- end to end ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("conventions")
    models = PipelinePersistence(root / "models")
    models.save(LogisticRegression(max_iter=300).fit(X, Y), "churn", metrics={"accuracy": 0.8},
                message="a first model with a long message that does not fit a narrow terminal\nat all")
    models.save(make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(X, Y), "churn",
                metrics={"accuracy": 0.9, "log_loss": float("nan")}, tags={"team": "risk"})
    models.save(LogisticRegression(C=0.5, max_iter=300).fit(X, Y), "fraud", metrics={"auc": 0.7})
    models.promote("churn", 2, "production", gates=["accuracy>=0.85"], reason="better")
    models.promote("churn", 1, "staging")
    runs = RunStore(root / "runs")
    ids = [UnifiedMLPipeline(features=[("scale", StandardScaler())],
                             model=SGDClassifier(loss="log_loss", random_state=0), epochs=2, validation=0.25,
                             tracking=runs, random_state=0).fit(X, Y).run_id_ for _ in range(2)]
    return str(models.path), str(root / "runs"), ids


def _cli(*argv, width=200):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), console=Console(file=out, width=width), error_console=Console(file=err, width=width))
    return code, out.getvalue(), err.getvalue()


def test_options_before_and_after_give_the_same_output(stores):
    models, runs, ids = stores
    assert _cli("--store", models, "--json", "list") == _cli("list", "--store", models, "--json")
    assert _cli("--json", "list", "churn", "--store", models) == _cli("list", "--json", "churn", "--store", models)
    assert _cli("--runs", runs, "runs", "--json", "list") == _cli("runs", "list", "--runs", runs, "--json")


def test_version_and_python_dash_m(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"ml-toolbox {ml_toolbox.__version__}"
    done = subprocess.run([sys.executable, "-m", "ml_toolbox", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"ml-toolbox {ml_toolbox.__version__}"
    done = subprocess.run([sys.executable, "-m", "ml_toolbox", "frobnicate"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("usage: ml-toolbox")


# -- JSON: typed fields --------------------------------------------------------------------------
def _is_iso(text):
    return isinstance(text, str) and dt.datetime.fromisoformat(text).tzinfo is not None


NUMBER = (int, float)


def _check(value, schema, where):
    """``value`` has the types of ``schema`` (a type, a tuple of types, a dict or a one-item list)."""
    if schema == "iso":
        assert _is_iso(value), f"{where}: {value!r} is not an ISO 8601 time"
    elif isinstance(schema, dict):
        assert isinstance(value, dict), f"{where}: {value!r} is not an object"
        for key, sub in schema.items():
            assert key in value, f"{where}: no {key!r}"
            _check(value[key], sub, f"{where}.{key}")
    elif isinstance(schema, list):
        assert isinstance(value, list), f"{where}: {value!r} is not a list"
        for i, item in enumerate(value):
            _check(item, schema[0], f"{where}[{i}]")
    else:
        assert isinstance(value, schema) and not (schema == NUMBER and isinstance(value, bool)), \
            f"{where}: {value!r} is not {schema}"


OPTIONAL_STR = (str, type(None))
STORE_JSON = {  # the documented types of every store command's --json output (docs/cli.md)
    ("list",): [{"name": str, "versions": int, "latest": int, "kind": str, "class": OPTIONAL_STR,
                 "created": "iso", "aliases": dict}],
    ("list", "churn"): [{"version": int, "created": "iso", "size": int, "kind": str, "format": str,
                         "metrics": dict, "aliases": [str], "message": OPTIONAL_STR}],
    ("show", "churn", "production"): {"version": int, "created": "iso", "kind": str, "object_type": str,
                                      "metrics": dict, "files": dict, "params": dict},
    ("history", "churn"): [{"when": "iso", "alias": str, "action": str, "to": int, "gates": [str]}],
    ("diff", "churn", "1", "2"): {"metrics": {"accuracy": [NUMBER]}},
    ("verify",): [{"name": str, "version": int, "ok": bool, "problem": OPTIONAL_STR}],
    ("prune", "--keep-last", "0", "--dry-run"): [{"name": str, "version": int}],
    ("rollout", "status", "churn"): {"aliases": dict, "decisions": list},
}


@pytest.mark.parametrize("command", list(STORE_JSON), ids=" ".join)
def test_every_store_json_output_parses_with_the_documented_types(stores, command):
    models, _, _ = stores
    code, out, err = _cli("--store", models, "--json", *command)
    assert code == 0, err
    data = json.loads(out)
    _check(data, STORE_JSON[command], " ".join(command))
    if command == ("list",):
        rows = {r["name"]: r for r in data}
        assert rows["churn"]["aliases"] == {"production": 2, "staging": 1}  # an object, not "production->2"
        assert (rows["fraud"]["kind"], rows["fraud"]["class"]) == ("estimator", "LogisticRegression")
        assert rows["churn"]["kind"] == "pipeline"  # its latest version is a scikit-learn Pipeline
    if command == ("list", "churn"):
        assert [r["kind"] for r in data] == ["estimator", "pipeline"]
        assert data[1]["metrics"] == {"accuracy": 0.9, "log_loss": None}  # NaN is null: valid JSON


def test_store_actions_print_json_too(stores, tmp_path):
    import shutil

    copy = shutil.copytree(stores[0], tmp_path / "models")
    code, out, _ = _cli("--store", str(copy), "promote", "churn", "1", "production", "--json")
    assert code == 0 and json.loads(out) == {"name": "churn", "alias": "production", "version": 1, "gates": []}
    code, out, _ = _cli("--store", str(copy), "rollback", "churn", "production", "--json")
    assert code == 0 and json.loads(out) == {"name": "churn", "alias": "production", "from": 1, "to": 2}
    code, out, _ = _cli("--store", str(copy), "delete", "fraud", "1", "--json")
    assert code == 0 and json.loads(out) == {"name": "fraud", "deleted": 1}


RUN = {"id": str, "name": str, "status": str, "start": "iso", "end": "iso", "params": dict, "metrics": dict,
       "progress": NUMBER, "tags": dict, "archived": bool}
RUNS_JSON = {
    ("list",): [RUN], ("history", "unified_pipeline"): [RUN], ("compare", "A", "B"): {"runs": [RUN]},
    ("show", "A"): RUN, ("leaderboard", "--metric", "validation_score"): [{"rank": int, "id": str,
                                                                          "validation_score": NUMBER}],
    ("report", "unified_pipeline"): {"runs": int, "success_rate": NUMBER,
                                     "stages": [{"stage": str, "runs": int, "p50": NUMBER}]},
    ("note", "A", "kept"): [{"time": "iso", "text": str}], ("active",): [RUN],
    ("archive", "--dry-run"): {"archived": [str], "dry_run": bool}, ("anomalies", "unified_pipeline"): list,
}


@pytest.mark.parametrize("command", list(RUNS_JSON), ids=" ".join)
def test_every_runs_json_output_parses_with_the_documented_types(stores, command):
    _, runs, ids = stores
    argv = [{"A": ids[0], "B": ids[1]}.get(word, word) for word in command]
    code, out, err = _cli("runs", "--runs", runs, *argv, "--json")
    assert code == 0, err
    _check(json.loads(out), RUNS_JSON[command], " ".join(command))


# -- usage errors exit 2 ---------------------------------------------------------------------------
BAD_VALUES = [
    (["prune", "--older-than", "3x"], "--older-than", "'3x' is not an age"),
    (["prune", "--keep-last", "-1"], "--keep-last", "is not an integer >= 0"),
    (["prune", "--keep-last", "two"], "--keep-last", "is not an integer >= 0"),
    (["promote", "churn", "1", "p", "--gate", "accuracy>>1"], "--gate", "is not a gate expression"),
    (["list", "--formats", "pickle"], "--formats", "is not a list of artifact formats"),
    (["--formats", ",", "list"], "--formats", "is not a list of artifact formats"),
    (["serve", "--name", "churn", "--percent", "101"], "--percent", "between 0 and 100"),
    (["serve", "--name", "churn", "--percent", "nan"], "--percent", "between 0 and 100"),
    (["serve", "--name", "churn", "--port", "70000"], "--port", "is not a port number"),
    (["serve", "--name", "churn", "--workers", "0"], "--workers", "is not an integer >= 1"),
    (["serve", "--name", "churn", "--max-body", "0"], "--max-body", "is not an integer >= 1"),
    (["serve", "--name", "churn", "--min-requests", "-5"], "--min-requests", "is not an integer >= 0"),
    (["serve", "--name", "churn", "--poll-interval", "0"], "--poll-interval", "is not a number > 0"),
    (["serve", "--name", "churn", "--canary", "c", "--promote-rule", "p95"], "--promote-rule",
     "is not a rollout rule"),
    (["serve", "--name", "churn", "--gate", "x"], "--gate", "is not a gate expression"),
    (["runs", "list", "--since", "yesterday"], "--since", "is not a time"),
    (["runs", "list", "--limit", "0"], "--limit", "is not an integer >= 1"),
    (["runs", "list", "--status", "done"], "--status", "is not one of running, success"),
    (["runs", "history", "p", "--since", "3q"], "--since", "is not a time"),
    (["runs", "anomalies", "p", "--days", "-1"], "--days", "is not a number > 0"),
    (["runs", "anomalies", "p", "--threshold", "inf"], "--threshold", "is not a number > 0"),
    (["runs", "report", "p", "--days", "x"], "--days", "is not a number > 0"),
    (["runs", "leaderboard", "--metric", "m", "--top", "0"], "--top", "is not an integer >= 1"),
    (["runs", "leaderboard", "--metric", "m", "--direction", "up"], "--direction", "invalid choice"),
    (["runs", "archive", "--older-than", "soon"], "--older-than", "is not a time"),
    (["runs", "archive", "--status", "running"], "--status", "is not one of success"),
    (["list", "--bogus"], "--bogus", "unrecognized arguments"),
    (["frobnicate"], "", "invalid choice"),
    (["diff", "churn"], "", "the following arguments are required"),
]


@pytest.mark.parametrize("argv, option, message", BAD_VALUES, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_every_bad_value_is_a_usage_error_exit_2(stores, argv, option, message):
    models, runs, _ = stores
    code, out, err = _cli("--store", models, "--runs", runs, *argv)
    assert code == 2, err
    assert err.startswith("usage: ml-toolbox"), err
    assert message in err.replace("\n", " ") and option in err
    assert out == ""


def test_store_and_run_errors_keep_exit_1(stores):
    models, runs, _ = stores
    assert _cli("--store", models, "show", "churn", "9")[0] == 1
    assert _cli("--store", models, "promote", "churn", "1", "production", "--gate", "accuracy>=0.99")[0] == 1
    assert _cli("runs", "--runs", runs, "show", "nope")[0] == 1


def test_no_store_or_run_store_is_a_usage_error(monkeypatch):
    monkeypatch.delenv("ML_TOOLBOX_STORE", raising=False)
    monkeypatch.delenv("ML_TOOLBOX_RUNS", raising=False)
    for argv, message in ((["list"], "no store given"), (["runs", "list"], "no run store given")):
        code, _, err = _cli(*argv)
        assert code == 2 and err.startswith("usage: ml-toolbox") and message in err


# -- tables fit the terminal ---------------------------------------------------------------------------
TABLE_COMMANDS = [["list"], ["list", "churn"], ["show", "churn", "production"], ["history", "churn"],
                  ["diff", "churn", "1", "2"], ["verify"], ["prune", "--keep-last", "0", "--dry-run"]]
RUNS_TABLE_COMMANDS = [["list"], ["show", "A"], ["compare", "A", "B"], ["history", "unified_pipeline"],
                       ["report", "unified_pipeline"], ["leaderboard", "--metric", "validation_score"],
                       ["note", "A", "kept"]]


def _rows(text):
    return [line for line in text.splitlines() if line.startswith("│")]


@pytest.mark.parametrize("columns", [80, 40])
def test_tables_fit_the_terminal_without_wrapping_a_row(stores, monkeypatch, columns):
    """At 80 or 40 columns, every line fits and each row is one line: as many row lines as at 300."""
    models, runs, ids = stores
    lines = [(["--store", models, *c]) for c in TABLE_COMMANDS]
    lines += [["runs", "--runs", runs, *[{"A": ids[0], "B": ids[1]}.get(w, w) for w in c]]
              for c in RUNS_TABLE_COMMANDS]
    for argv in lines:
        if argv[-1] == "kept":  # a note is added once per call: compare with the same call
            continue
        monkeypatch.setenv("COLUMNS", str(columns))
        code, narrow, err = _cli(*argv, width=columns)
        assert code == 0, err
        assert max(len(line) for line in narrow.splitlines()) <= columns, (argv, narrow)
        wide = _cli(*argv, width=300)[1]
        assert len(_rows(narrow)) == len(_rows(wide)) > 0, (argv, narrow)


def test_the_console_width_comes_from_columns(stores, monkeypatch, capsys):
    """``main`` without a console: rich reads $COLUMNS, as the shell's tools do."""
    monkeypatch.setenv("COLUMNS", "40")
    assert main(["--store", stores[0], "list", "churn"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 40
    assert len(_rows(out)) == 2 and re.search(r"…", out)
