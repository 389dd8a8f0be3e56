"""A canary rollout end to end: a real HTTP server on 127.0.0.1 serves ``production``, a challenger
gets 30% of the traffic (sticky by customer id), true labels come back as feedback, and the rollout
policy promotes the challenger through the store, recording its KPI evidence in the alias history.

Needs the ``serve`` extra (Starlette, uvicorn, prometheus-client). Runs in a temporary directory:
``python examples/serving_canary.py``.
"""

import json
import socket
import tempfile
import threading
import time
import urllib.request

import uvicorn
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from ml_toolbox import PipelinePersistence, RolloutPolicy, Router, UnifiedMLPipeline, create_app
from ml_toolbox.serving import evidence_of


def post(url, path, payload, key=None):
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["X-Request-Key"] = key
    request = urllib.request.Request(url + path, data=json.dumps(payload).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def main():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_train, X_live, y_train, y_live = train_test_split(X, y, random_state=0, stratify=y)
    store = PipelinePersistence(tempfile.mkdtemp())

    def pipeline(C):
        return UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("scale", StandardScaler())],
                                 model=LogisticRegression(C=C, max_iter=1000)).fit(X_train, y_train)

    pipeline(0.01).save(store, name="churn", metrics={"accuracy": 0.95}, message="baseline")
    pipeline(1.0).save(store, name="churn", metrics={"accuracy": 0.96}, message="less regularised")
    store.promote("churn", 1, "production", reason="first release")
    store.promote("churn", 2, "challenger", reason="canary candidate")

    policy = RolloutPolicy(promote=["agreement>=0.9", "accuracy>=champion-0.05", "error_rate<=0.01"],
                           rollback=["error_rate<=0.05"], min_requests=30, gates=["accuracy>=current"])
    router = Router(store, "churn", challenger="challenger", mode="canary", share=0.3, policy=policy,
                    policy_interval=0.5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(router), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    url = f"http://127.0.0.1:{port}"
    print(f"serving 'churn' on {url}: {post(url, '/predict', {'instances': X_live.iloc[:1].to_dict('records')})}")

    served = {1: 0, 2: 0}
    for i in range(len(X_live)):
        row = X_live.iloc[[i]]
        body = {"dataframe_split": {"columns": list(row.columns), "data": row.to_numpy().tolist()}}
        answer = post(url, "/predict", body, key=f"customer-{i}")
        served[answer["version"]] = served.get(answer["version"], 0) + 1
        post(url, "/feedback", {"request_id": answer["request_id"], "y_true": [int(y_live.iloc[i])]})
        if store.aliases("churn")["production"] == 2:
            break
    deadline = time.monotonic() + 10
    while store.aliases("churn")["production"] != 2 and time.monotonic() < deadline:
        time.sleep(0.1)  # the policy runs every half second

    server.should_exit = True
    thread.join()

    print(f"requests answered per version: {served}")
    print(f"aliases now: {store.aliases('churn')}")
    for event in store.history("churn"):
        print(f"{event['alias']}: {event['from']} -> {event['to']} ({event['reason'].split(' evidence=')[0]})")
        evidence = evidence_of(event)
        for role in ("champion", "challenger") if evidence else ():
            kpis = evidence[role]
            print(f"    {role:>10} version {kpis['version']}: {kpis['requests']} requests, accuracy "
                  f"{kpis['accuracy']:.3f} on {kpis['feedback']} labels, agreement {kpis['agreement']}, "
                  f"p95 {kpis['p95_ms']:.3f} ms")


if __name__ == "__main__":
    main()
