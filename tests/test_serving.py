"""ml_toolbox.serving in process: the router (swaps, verification, canary, shadow), the KPIs, the
rollout policy acting on a real store, and the HTTP app (through Starlette's test client).

The reliability tests with a real uvicorn server are in test_serving_server.py.
"""

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from _serving_models import Raising, Timed
from ml_toolbox import PipelinePersistence, UnifiedMLPipeline
from ml_toolbox.serving import KPIBoard, RolloutPolicy, Router, Rule, create_app, evidence_of, parse_payload
from ml_toolbox.serving.http import PayloadError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx
    from starlette.testclient import TestClient

RNG = np.random.default_rng(0)
X = pd.DataFrame(RNG.normal(size=(120, 4)), columns=["age", "income", "tenure", "spend"])
Y = (X["age"] + X["income"] > 0).astype(int)


def _pipe(C=1.0, features=None):
    features = features or [("impute", SimpleImputer()), ("scale", StandardScaler())]
    return UnifiedMLPipeline(features=features, model=LogisticRegression(C=C)).fit(X, Y)


@pytest.fixture
def store(tmp_path):
    store = PipelinePersistence(tmp_path / "models")
    _pipe(1.0).save(store, name="churn", metrics={"accuracy": 0.9})
    _pipe(0.01).save(store, name="churn", metrics={"accuracy": 0.8})
    store.promote("churn", 1, "production")
    return store


def _row(i=0):
    return X.iloc[[i]]


def _split(frame):
    return {"dataframe_split": {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}}


# ------------------------------------------------------------------------------------- router
def test_router_serves_the_alias_and_follows_it(store):
    router = Router(store, "churn", poll_interval=60)
    with router:
        assert router.predict(_row()).version == 1
        store.promote("churn", 2, "production")  # moved by someone else
        assert router.predict(_row()).version == 1  # not seen yet
        assert router.refresh() == {"champion": 2, "challenger": None}
        answer = router.predict(_row())
    assert answer.version == 2 and answer.alias == "production"
    assert [(s["from"], s["to"]) for s in router.swaps] == [(None, 1), (1, 2)]
    expected = store.load("churn", 2).predict(_row())
    assert np.array_equal(answer.predictions, expected)


def test_a_version_that_fails_to_verify_is_never_served(store):
    store.save(_pipe(0.5), "churn")
    router = Router(store, "churn", poll_interval=60).start()
    try:
        artifact = next((store.path / "churn" / "v000002").glob("artifact.*"))
        artifact.write_bytes(artifact.read_bytes()[:-3] + b"xyz")  # same size, other bytes
        store.promote("churn", 2, "production")
        assert router.refresh()["champion"] == 1  # the old one keeps serving
        assert router.predict(_row()).version == 1
        assert len(router.failures) == 1 and router.failures[0]["version"] == 2
        assert "IntegrityError" in router.failures[0]["error"]
        router.refresh()
        assert len(router.failures) == 1  # reported once, not retried while the alias stays
        store.promote("churn", 3, "production")
        assert router.refresh()["champion"] == 3
    finally:
        router.stop()


def test_not_ready_without_the_alias(tmp_path):
    store = PipelinePersistence(tmp_path)
    _pipe().save(store, name="churn")
    router = Router(store, "churn", poll_interval=60).start()
    try:
        assert not router.ready
        with pytest.raises(RuntimeError, match="No verified version of 'churn' is loaded yet for alias 'production'"):
            router.predict(_row())
    finally:
        router.stop()


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "blue"}, "mode must be one of ('canary', 'shadow'); got 'blue'"),
    ({"share": 1.5}, "share must be a number between 0 and 1; got 1.5"),
    ({"challenger": "production"}, "the challenger alias must differ from the champion alias 'production'"),
    ({"policy": RolloutPolicy(["agreement>=0.9"])}, "a policy judges a challenger; give challenger=ALIAS too"),
    ({"poll_interval": 0}, "poll_interval must be a positive number of seconds; got 0"),
])
def test_router_refuses_bad_parameters(store, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Router(store, "churn", **kwargs)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=30, unique=True),
       share=st.floats(0.0, 1.0))
def test_canary_is_sticky_by_key(store, keys, share):
    store.promote("churn", 2, "challenger") if store.aliases("churn").get("challenger") != 2 else None
    router = Router(store, "churn", challenger="challenger", share=share, poll_interval=60)
    router.refresh()
    first = [router.route(k) for k in keys]
    assert [router.route(k) for k in keys] == first  # the same key always meets the same version
    assert set(first) <= {("production", 1), ("challenger", 2)}
    if share == 0.0:
        assert all(r == ("production", 1) for r in first)
    if share == 1.0:
        assert all(r == ("challenger", 2) for r in first)


def test_canary_share_by_key_and_at_random(store):
    store.promote("churn", 2, "challenger")
    router = Router(store, "churn", challenger="challenger", share=0.25, poll_interval=60, seed=1)
    router.refresh()
    by_key = [router.route(f"user-{i}")[1] for i in range(4000)]
    at_random = [router.route()[1] for _ in range(4000)]
    for routed in (by_key, at_random):
        assert abs(routed.count(2) / 4000 - 0.25) < 0.03  # 4.4 standard deviations


def test_shadow_answers_with_the_champion_and_measures_agreement(store):
    store.promote("churn", 2, "challenger")
    with Router(store, "churn", challenger="challenger", mode="shadow", poll_interval=60) as router:
        answers = [router.predict(X.iloc[[i]]) for i in range(60)]
        router.drain()
        status = router.status()
    assert {a.version for a in answers} == {1}
    champion, challenger = store.load("churn", 1), store.load("churn", 2)
    expected = float(np.mean(champion.predict(X.iloc[:60]) == challenger.predict(X.iloc[:60])))
    assert status["challenger"]["requests"] == 60 and status["challenger"]["compared"] == 60
    assert status["challenger"]["agreement"] == pytest.approx(expected)
    assert status["champion"]["requests"] == 60


def test_raising_challenger_in_shadow_costs_the_caller_nothing(store):
    Raising().fit(X, Y)
    store.save(Raising().fit(X, Y), "churn")
    store.promote("churn", 3, "challenger")
    policy = RolloutPolicy(rollback=["error_rate<=0.01"], min_requests=30)
    with Router(store, "churn", challenger="challenger", mode="shadow", policy=policy, poll_interval=60) as router:
        answers = [router.predict(X.iloc[[i % 100]]) for i in range(40)]
        verdict = router.evaluate()
    assert {a.version for a in answers} == {1}
    assert verdict.action == "rollback" and verdict.done
    assert store.aliases("churn")["challenger"] == 1  # pointed back at the champion: the shadow stops
    event = store.history("churn", "challenger")[-1]
    evidence = evidence_of(event)
    assert evidence["challenger"]["version"] == 3 and evidence["challenger"]["error_rate"] == 1.0
    assert evidence["policy"]["rollback"] == ["error_rate<=0.01"]
    assert router.serving == {"champion": 1, "challenger": 1}


# -------------------------------------------------------------------------------------- KPIs
@settings(max_examples=30, deadline=None)
@given(labels=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=40),
       metric=st.sampled_from(["accuracy", "balanced_accuracy", "f1"]))
def test_feedback_metrics_equal_scikit_learns(labels, metric):
    board = KPIBoard([metric])
    for i, (pred, _) in enumerate(labels):
        board.record(7, 0.001, True, f"r{i}", np.array([pred]))
    for i, (_, true) in enumerate(labels):
        assert board.feedback(f"r{i}", [true]) == 1
    y_pred, y_true = [p for p, _ in labels], [t for _, t in labels]
    from sklearn import metrics as skm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snap = board.snapshot(7)
        try:
            expected = getattr(skm, f"{metric}_score")(y_true, y_pred)
        except ValueError as exc:  # (f1 of three classes) the KPI is None and says why
            assert snap[metric] is None and snap[f"{metric}_error"] == str(exc)
            return
    assert snap[metric] == pytest.approx(expected)


def test_latency_percentiles_are_the_monitors(monkeypatch):
    board = KPIBoard()
    values = RNG.exponential(0.002, size=500)
    for v in values:
        board.record(1, float(v), True)
    snap = board.snapshot(1)
    assert snap["p50_ms"] == pytest.approx(np.percentile(values, 50) * 1000)
    assert snap["p99_ms"] == pytest.approx(np.percentile(values, 99) * 1000)


def test_feedback_errors():
    board = KPIBoard()
    board.record(1, 0.001, True, "a", np.array([1, 0]))
    with pytest.raises(KeyError):
        board.feedback("nope", [1])
    with pytest.raises(ValueError, match=re.escape("1 label(s) given, but the request had 2 row(s)")):
        board.feedback("a", [1])
    with pytest.raises(ValueError, match="Unknown metric 'nonsense'"):
        KPIBoard(["nonsense"])


# ------------------------------------------------------------------------------------ policy
@settings(max_examples=100, deadline=None)
@given(kpi=st.sampled_from(["p95_ms", "error_rate", "agreement", "accuracy"]),
       op=st.sampled_from([">=", "<=", ">", "<"]),
       shift=st.sampled_from(["", "+0.5", "-0.25", "*1.2"]),
       value=st.floats(0, 10, allow_nan=False), champion=st.floats(0, 10, allow_nan=False))
def test_relative_rules_compare_with_the_champion(kpi, op, shift, value, champion):
    rule = Rule.parse(f"{kpi}{op}champion{shift}")
    bound = eval(f"{champion!r}{shift}") if shift else champion  # noqa: S307 - our own numbers
    expected = eval(f"{value!r} {op} {bound!r}")  # noqa: S307
    passed, _ = rule.check({kpi: value}, {kpi: champion})
    assert passed == expected
    assert str(Rule.parse(str(rule))) == str(rule)


@pytest.mark.parametrize("spec, message", [
    ("p95", "Cannot parse the rollout rule 'p95'"),
    ("p95_ms<=boss*2", "Cannot parse the rollout rule 'p95_ms<=boss*2'"),
    (3, "A rollout rule is a string"),
])
def test_bad_rules(spec, message):
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        Rule.parse(spec)


@settings(max_examples=60, deadline=None)
@given(requests=st.integers(0, 300), minimum=st.integers(0, 300), error_rate=st.floats(0, 1))
def test_no_decision_below_the_minimum(requests, minimum, error_rate):
    policy = RolloutPolicy(promote=["error_rate<=1"], rollback=["error_rate<=0.5"], min_requests=minimum)
    verdict = policy.decide({"requests": 1000}, {"requests": requests, "error_rate": error_rate})
    if requests < minimum:
        assert verdict.action == "wait"
    else:
        assert verdict.action == ("rollback" if error_rate > 0.5 else "promote")


def _served(router, n, start=0):
    for i in range(start, start + n):
        router.predict(X.iloc[[i % 120]], key=f"k{i}")
    router.drain()


def test_policy_promotes_through_the_store_with_evidence(store):
    store.promote("churn", 2, "challenger")
    policy = RolloutPolicy(promote=["agreement>=0.5", "error_rate<=0.01"], min_requests=20)
    with Router(store, "churn", challenger="challenger", share=0.5, policy=policy, poll_interval=60) as router:
        _served(router, 10)
        assert router.evaluate().action == "wait"
        assert store.aliases("churn")["production"] == 1
        _served(router, 60, 10)
        verdict = router.evaluate()
    assert verdict.action == "promote" and verdict.done
    assert store.aliases("churn")["production"] == 2
    event = store.history("churn", "production")[-1]
    assert event["action"] == "promote" and event["to"] == 2 and event["reason"].startswith("rollout promote")
    assert evidence_of(event)["challenger"]["requests"] >= 20


def test_policy_never_promotes_past_failing_gates(store):
    store.promote("churn", 2, "challenger")  # accuracy 0.8 < production's 0.9
    policy = RolloutPolicy(promote=["error_rate<=0.01"], min_requests=5, gates=["accuracy>=current"])
    with Router(store, "churn", challenger="challenger", share=1.0, policy=policy, poll_interval=60) as router:
        _served(router, 10)
        verdict = router.evaluate()
    assert verdict.action == "promote" and not verdict.done and "GateError" in verdict.error
    assert store.aliases("churn")["production"] == 1
    assert router.decisions[-1]["error"] == verdict.error


def test_dry_run_reports_and_never_acts(store):
    store.promote("churn", 2, "challenger")
    before = store.history("churn")
    policy = RolloutPolicy(promote=["error_rate<=0.01"], min_requests=5, dry_run=True)
    with Router(store, "churn", challenger="challenger", share=1.0, policy=policy, poll_interval=60) as router:
        _served(router, 10)
        verdict = router.evaluate()
    assert verdict.action == "promote" and not verdict.done
    assert store.history("churn") == before


# ------------------------------------------------------------------------------------- HTTP
@settings(max_examples=40, deadline=None)
@given(data=st.lists(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=3, max_size=3),
                     min_size=1, max_size=70))  # (past the 64 cached row indexes too)
def test_the_mlflow_formats_give_the_same_frame(data):
    columns = ["a", "b", "c"]
    frame = pd.DataFrame(np.array(data, dtype=float), columns=columns)
    records = [dict(zip(columns, row)) for row in data]
    for payload in ({"dataframe_split": {"columns": columns, "data": data}}, {"dataframe_records": records},
                    {"instances": records}, {"instances": data}, {"inputs": data},
                    {"inputs": {c: [row[i] for row in data] for i, c in enumerate(columns)}}):
        got = parse_payload(json.loads(json.dumps(payload)), columns)
        pd.testing.assert_frame_equal(got.astype(float), frame)
        got._mgr._verify_integrity()  # the one-block frame skips pandas' check: it must hold anyway
        pd.testing.assert_frame_equal(got.iloc[::-1].reset_index(drop=True).iloc[::-1].reset_index(drop=True), got)


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                     max_leaves=12)


@settings(max_examples=80, deadline=None)
@given(value=_JSON)
def test_request_bodies_decode_as_the_standard_library_does(value):
    from ml_toolbox.serving.http import _loads

    text = json.dumps(value)  # NaN, Infinity and big integers included: json accepts them, orjson not
    expected, got = json.loads(text), _loads(text.encode())
    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=60) | st.lists(st.sampled_from([b"1", b"0", b"9", b"-", b".", b"e", b" ", b"\xd9"]),
                                              max_size=60).map(b"".join))
def test_the_digit_run_check_finds_19_digits_in_a_row(body):
    from ml_toolbox.serving.http import _long_digit_run

    assert _long_digit_run(body) == (re.search(rb"[0-9]{19}", body) is not None)
    assert _long_digit_run(body.decode("latin-1"))  # a str: json's to read


_CELL = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=3)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.lists(_CELL, min_size=0, max_size=3) | _CELL, min_size=0, max_size=4),
       columns=st.none() | st.lists(st.sampled_from(["a", "b", "c"]), min_size=0, max_size=3))
def test_the_usual_request_read_at_once_gives_the_general_paths_frame(rows, columns):
    """``{"dataframe_split": ...}`` alone is read by a short path; with another key (MLflow's "params")
    by the general one: the same frame, or the same refusal."""
    split = {"data": rows} if columns is None else {"data": rows, "columns": columns}

    def read(payload):
        try:
            return parse_payload(payload, ["a", "b"])
        except PayloadError as error:
            return str(error)

    fast, general = read({"dataframe_split": split}), read({"dataframe_split": split, "params": {}})
    if isinstance(general, str):
        assert fast == general
    elif isinstance(general, pd.DataFrame):
        pd.testing.assert_frame_equal(fast, general)
        fast._mgr._verify_integrity()
    else:
        np.testing.assert_array_equal(fast, general)


@settings(max_examples=80, deadline=None)
@given(value=_JSON)
def test_response_bodies_are_strict_json(value):
    from ml_toolbox.serving.http import _dumps

    def strict(v):  # NaN and infinities become null; everything else as json.dumps writes it
        if isinstance(v, float) and not np.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: strict(x) for k, x in v.items()}
        return [strict(x) for x in v] if isinstance(v, list) else v

    body = _dumps(value)
    assert json.loads(body, parse_constant=lambda c: pytest.fail(f"{c} in a response")) == strict(value)


def test_malformed_bodies_answer_400_with_the_standard_librarys_message(client):
    r = client.post("/predict", content=b'{"instances": [[1.0,', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "MalformedJSON"
    assert r.json()["message"].startswith("the body is not valid JSON: Expecting value: line 1 column")
    assert client.get("/predict").status_code == 405


@pytest.mark.parametrize("payload, message", [
    ([1, 2], "must be a JSON object with one of the keys"),
    ({"rows": []}, "must hold exactly one of ['dataframe_split', 'dataframe_records', 'instances', 'inputs']"),
    ({"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}, "rows have [2] value(s) but 1 columns are named"),
    ({"dataframe_records": [1]}, "'dataframe_records' must be a list of objects"),
    ({"instances": "x"}, "'instances' must be a list of rows"),
])
def test_bad_payloads(payload, message):
    with pytest.raises(PayloadError, match=re.escape(message)):
        parse_payload(payload)


class Switch:
    """Passes X through until armed, then raises (a stage that breaks in production)."""

    armed = False

    def __call__(self, X):
        if self.armed:
            raise RuntimeError("feature store down")
        return X


@pytest.fixture
def client(store):
    with TestClient(create_app(Router(store, "churn", poll_interval=60), max_body=20_000)) as client:
        yield client


def test_predict_and_predict_proba(client, store):
    reference = store.load("churn", 1)
    body = client.post("/predict", json=_split(X.iloc[:3])).json()
    assert body["predictions"] == reference.predict(X.iloc[:3]).tolist()
    assert body["version"] == 1 and body["alias"] == "production" and body["request_id"]
    proba = client.post("/predict_proba", json={"dataframe_records": X.iloc[:2].to_dict("records")}).json()
    assert np.allclose(proba["predictions"], reference.predict_proba(X.iloc[:2]))
    assert client.post("/invocations", json={"instances": X.iloc[:1].to_numpy().tolist()}).status_code == 200


def test_bad_input_answers_400_413_and_500(client, store):
    r = client.post("/predict", content=b'{"instances": [1,')
    assert r.status_code == 400 and r.json()["error"] == "MalformedJSON"
    r = client.post("/predict", json=_split(X.iloc[:1].drop(columns="income")))
    assert r.status_code == 400 and "missing column(s) ['income']" in r.json()["message"]
    r = client.post("/predict", json={"instances": [[1.0, 2.0]]})
    assert r.status_code == 400 and "Traceback" not in r.text
    r = client.post("/predict", json={"rows": []})
    assert r.status_code == 400 and r.json()["error"] == "BadInput"
    r = client.post("/predict", content=b" " * 30_000, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert client.get("/health").json()["version"] == 1


def test_server_error_names_type_and_stage(store):
    broken = _pipe(features=[("impute", SimpleImputer()), ("lookup", FunctionTransformer(Switch()))])
    version = store.save(broken, "churn")
    store.promote("churn", version, "production")
    Switch.armed = True  # (a class attribute: the fitted stage holds a copy of the function)
    try:
        with TestClient(create_app(Router(store, "churn", poll_interval=60))) as client:
            r = client.post("/predict", json=_split(X.iloc[:1]))
    finally:
        Switch.armed = False
    assert r.status_code == 500, r.text
    assert r.json()["error"] == "RuntimeError" and r.json()["stage"] == "lookup"
    assert "Traceback" not in r.text


def test_offload_auto_takes_a_thread_after_three_slow_predictions_in_a_row(tmp_path):
    """One slow prediction (on a loaded machine: the process paused mid-way) keeps the next on the event
    loop; three in a row send the next ones to a worker thread, until one is fast again."""
    store = PipelinePersistence(tmp_path / "models")
    store.save(Timed().fit(X, Y), "churn")
    store.promote("churn", 1, "production")
    slow, fast = 0.005, 0.0
    delays = [fast, slow, fast, slow, slow, fast, slow, slow, slow, slow, fast, fast]
    on_loop = [True, True, True, True, True, True, True, True, True, False, False, True]
    Timed.threads = []
    try:
        with TestClient(create_app(Router(store, "churn", poll_interval=60))) as client:
            for delay in delays:
                Timed.delay = delay
                assert client.post("/predict", json=_split(X.iloc[:1])).json()["predictions"] == [1]
    finally:
        Timed.delay = 0.0
    worker = "AnyIO worker thread"  # (the name of Starlette's worker threads)
    assert [t != worker for t in Timed.threads] == on_loop
    for offload in (True, False):
        Timed.threads, Timed.delay = [], slow
        try:
            with TestClient(create_app(Router(store, "churn", poll_interval=60), offload=offload)) as client:
                for _ in range(5):
                    client.post("/predict", json=_split(X.iloc[:1]))
        finally:
            Timed.delay = 0.0
        assert [t == worker for t in Timed.threads] == [offload] * 5


def test_feedback_health_metadata_metrics(client):
    answer = client.post("/predict", json=_split(X.iloc[:2])).json()
    assert client.post("/feedback", json={"request_id": answer["request_id"],
                                          "y_true": Y.iloc[:2].tolist()}).json()["versions_scored"] == 1
    assert client.post("/feedback", json={"request_id": "zzz", "y_true": [1]}).status_code == 404
    assert client.post("/feedback", json={"y_true": [1]}).status_code == 400
    assert client.get("/health").json() == {"status": "ready", "alias": "production", "version": 1,
                                            "challenger": None, "in_flight": 0}
    meta = client.get("/metadata").json()
    assert meta["versions"] == [1, 2] and meta["aliases"] == {"production": 1}
    assert meta["columns"] == list(X.columns) and meta["schema"]["columns"] == list(X.columns)
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    requests = [s for s in families["ml_toolbox_requests"].samples if s.name.endswith("_total")]
    assert requests[0].labels == {"name": "churn", "version": "1", "role": "champion"} and requests[0].value == 1
    quality = families["ml_toolbox_feedback_metric"].samples
    assert quality[0].labels["metric"] == "accuracy"


def test_bearer_token_protects_every_endpoint(store):
    with TestClient(create_app(Router(store, "churn", poll_interval=60), token="s3cret")) as client:
        calls = [("post", "/predict"), ("post", "/predict_proba"), ("post", "/feedback"), ("get", "/health"),
                 ("get", "/metadata"), ("get", "/metrics"), ("get", "/rollout")]
        for method, path in calls:
            kwargs = {"json": _split(X.iloc[:1])} if method == "post" else {}
            assert getattr(client, method)(path, **kwargs).status_code == 401, path
            wrong = getattr(client, method)(path, headers={"Authorization": "Bearer nope"}, **kwargs)
            assert wrong.status_code == 401
        ok = client.post("/predict", json=_split(X.iloc[:1]), headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200


# --------------------------------------------------------------------------------------- CLI
def _serve_args(*argv):
    from ml_toolbox.cli import build_parser

    return build_parser().parse_args(["serve", "--name", "churn", *argv])


def test_serve_command_defaults_and_spec(store):
    from ml_toolbox.serving.cli import spec_from_args

    args = _serve_args("--store", str(store.path))
    assert args.host == "127.0.0.1" and args.port == 8000 and args.store == str(store.path)
    spec = spec_from_args(store, args)
    assert spec["alias"] == "production" and spec["challenger"] is None and spec["policy"] is None
    spec = spec_from_args(store, _serve_args("--shadow", "challenger", "--percent", "20", "--rollback-rule",
                                             "error_rate<=0.01", "--min-requests", "7", "--dry-run"))
    assert spec["mode"] == "shadow" and spec["share"] == 0.2
    assert spec["policy"] == {"promote": [], "rollback": ["error_rate<=0.01"], "min_requests": 7, "gates": None,
                              "dry_run": True}


@pytest.mark.parametrize("argv, code, message", [
    (["--promote-rule", "agreement>=0.9"], 1, "rollout rules judge a challenger; give --canary ALIAS or --shadow ALIAS"),
    (["--canary", "c", "--percent", "150"], 2, "argument --percent: '150' is not a percentage between 0 and 100"),
    (["--canary", "production"], 1, "the challenger alias must differ from --alias 'production'"),
    (["--canary", "c", "--rollback-rule", "p95"], 2, "argument --rollback-rule: 'p95' is not a rollout rule"),
    (["--workers", "0"], 2, "argument --workers: '0' is not an integer >= 1"),
    (["--canary", "c", "--rollback-rule", "error_rate<=0.01", "--workers", "2"], 1,
     "a rollout policy needs --workers 1 (each worker would judge its own share of the traffic); got --workers 2"),
])
def test_serve_command_refuses_bad_options(store, capsys, argv, code, message):
    """A bad value is a usage error (exit 2, argparse's usage line); a bad combination is refused (1),
    before the "serving ..." line: nothing is said to start."""
    from ml_toolbox.cli import main

    assert main(["--store", str(store.path), "serve", "--name", "churn", *argv]) == code
    captured = capsys.readouterr()
    assert "serving" not in captured.out
    err = captured.err
    assert message in err.replace("\n", "")
    assert err.startswith("usage: ml-toolbox serve") == (code == 2)


def test_a_policy_needs_one_worker():
    from ml_toolbox.serving import serve

    with pytest.raises(ValueError, match="a rollout policy needs workers=1"):
        serve({"store": "x", "name": "churn", "policy": {"rollback": ["error_rate<=0.01"]}}, workers=2)


def test_a_chunked_body_over_the_limit_answers_413(client):
    def chunks():
        for _ in range(30):
            yield b" " * 1000

    r = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "PayloadTooLarge"


# ----------------------------------------------------------------------------- rollouts as runs
def _rollout_runs(runs):
    return [r for r in runs.runs() if r.kind == "rollout"]


@pytest.mark.parametrize("ending, decision, status", [
    ("policy promote", "promote", "success"),
    ("policy rollback", "rollback", "success"),
    ("alias promote", "promote", "success"),
    ("alias rollback", "rollback", "success"),
    ("alias superseded", "superseded", "success"),
    ("stop", "none", "cancelled"),
])
def test_each_rollout_is_a_run_with_kpis_decision_and_lineage(store, tmp_path, ending, decision, status):
    from ml_toolbox.runs import RunStore

    runs = RunStore(tmp_path / "runs")
    _pipe(0.1).save(store, name="churn", metrics={"accuracy": 0.85})  # version 3
    store.promote("churn", 2, "challenger")
    rules = ({"rollback": ["agreement>=1.01"]} if ending == "policy rollback" else {"promote": ["error_rate<=0.01"]})
    policy = RolloutPolicy(min_requests=10, **rules)
    with Router(store, "churn", challenger="challenger", share=0.5, policy=policy, poll_interval=60,
                tracking=runs) as router:
        assert router.rollouts.run is not None and router.rollouts.run.status == "running"
        _served(router, 4)
        assert router.evaluate().action == "wait"
        _served(router, 40, 4)
        if ending.startswith("policy"):
            verdict = router.evaluate()
            assert verdict.done and verdict.action == decision
        elif ending == "alias promote":
            store.promote("churn", 2, "production")
        elif ending == "alias rollback":
            store.promote("churn", 1, "challenger")
        elif ending == "alias superseded":
            store.promote("churn", 3, "challenger")
        router.refresh()
    [run] = [r for r in _rollout_runs(runs) if r.params["challenger_version"] == 2]
    assert (run.name, run.status, run.tags["decision"]) == ("churn", status, decision)
    assert run.params["mode"] == "canary" and run.params["champion_version"] == 1
    assert [(v["name"], v["version"]) for v in run.versions] == [("churn", 1), ("churn", 2)]
    served = router.kpis.snapshot(1)["requests"] + router.kpis.snapshot(2)["requests"]
    assert run.metrics["champion.requests"] + run.metrics["challenger.requests"] == served == 44
    windows = runs.metric_history(run.id, "challenger.requests")
    assert [step for step, _ in windows][:2] == [0, 1] and windows[-1][1] == run.metrics["challenger.requests"]
    if ending.startswith("policy"):
        event = store.history("churn")[-1]
        assert f"(run {run.id})" in event["reason"] and run.tags["decided_by"] == "policy"
        assert router.decisions[-1]["run_id"] == run.id
    elif ending == "alias superseded":  # the next rollout (1 against 3) is a run of its own, cancelled at stop
        [following] = [r for r in _rollout_runs(runs) if r.params["challenger_version"] == 3]
        assert following.status == "cancelled" and following.tags["decision"] == "none"


def test_rollout_runs_from_the_environment_and_never_without_a_challenger(store, tmp_path, monkeypatch):
    from ml_toolbox.runs import RunStore

    monkeypatch.setenv("ML_TOOLBOX_RUNS", str(tmp_path / "runs"))
    with Router(store, "churn", challenger="challenger", poll_interval=60) as router:
        _served(router, 5)  # the challenger alias is not set: no rollout
        assert router.rollouts.run is None
        store.promote("churn", 2, "challenger")
        router.refresh()
        assert router.rollouts.run is not None
    with Router(store, "churn", challenger="challenger", poll_interval=60, tracking=False) as quiet:
        assert not quiet.rollouts and quiet.rollouts.run is None
    [run] = _rollout_runs(RunStore(tmp_path / "runs"))
    assert run.status == "cancelled" and run.params["challenger_version"] == 2


def test_a_failing_rollout_tracker_never_fails_serving(store):
    from ml_toolbox.runs import Tracker

    class Broken(Tracker):
        def log_metrics(self, run, metrics, step=None):
            raise OSError("disk full")

    store.promote("churn", 2, "challenger")
    with pytest.warns(RuntimeWarning, match="disk full"):
        with Router(store, "churn", challenger="challenger", share=0.5, poll_interval=60,
                    tracking=Broken()) as router:
            _served(router, 10)
            router.rollouts.window()
            answer = router.predict(_row())
    assert answer.version in (1, 2)
    assert "disk full" in next(iter(router.rollouts.finished[-1].tracker_errors.values()))


def test_router_refuses_bad_tracking(store):
    with pytest.raises(TypeError, match=r"Router.tracking must be a Tracker .*got 3 \(int\)"):
        Router(store, "churn", tracking=3)
