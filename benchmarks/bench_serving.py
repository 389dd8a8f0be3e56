"""Serving over HTTP: ``ml-toolbox serve`` against ``mlflow models serve``, against a bare Starlette
endpoint returning a constant on the same uvicorn server (the HTTP floor), and against a bare Starlette
endpoint calling the same pipeline's ``predict``; canary routing and shadow mode costs.

Every server runs in its own process on 127.0.0.1; a bounded load generator (raw asyncio, HTTP/1.1
keep-alive, so the client costs little) sends single-row JSON requests at concurrency 1 and 16. The
servers are measured in turns, several rounds (the order reversed every other round), so machine noise
hits all alike; the tables show each server's best round, the targets the ratio of two servers in each
round (median and range over the rounds). The server's CPU time per request (Linux: from /proc) is
shown too: on a loaded machine it varies less than requests per second. Every server is run by uvicorn
with its defaults, so they share the HTTP parser (h11, or httptools when installed) and event loop.

``python -m benchmarks serving`` (``make bench BENCH=serving``).
"""

import asyncio
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

ROOT = pathlib.Path(__file__).resolve().parent.parent
N_FEATURES = 8

_CONSTANT_APP = '''
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def predict(request):
    await request.body()
    return JSONResponse({"predictions": [0], "version": 1, "alias": "production", "request_id": "x"})

app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/invocations", predict, methods=["POST"]),
                        Route("/health", lambda r: JSONResponse({}), methods=["GET"])])
'''

# The same endpoint calling the same fitted pipeline's predict, written as a user would: the body parsed
# with json, a DataFrame built from the split, the answer as JSON (no version, checks or KPIs).
_PREDICT_APP = '''
import json
import joblib
import pandas as pd
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

model = joblib.load("model.joblib")

async def predict(request):
    split = json.loads(await request.body())["dataframe_split"]
    X = pd.DataFrame(split["data"], columns=split["columns"])
    return JSONResponse({"predictions": model.predict(X).tolist()})

app = Starlette(routes=[Route("/predict", predict, methods=["POST"]),
                        Route("/health", lambda r: JSONResponse({}), methods=["GET"])])
'''


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(port, path, proc, timeout=180):
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2):
                return True
        except OSError:
            time.sleep(0.2)
    return False


class _Server:
    def __init__(self, label, argv, path, health, env=None, cwd=None):
        self.label, self.path = label, path
        self.port = _free_port()
        argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.proc = subprocess.Popen(argv, env=dict(os.environ, **(env or {})), cwd=cwd,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.ok = _wait_ready(self.port, health, self.proc)
        if not self.ok:
            self.error = self.proc.stderr.read().decode()[-400:] if self.proc.poll() is not None else "timed out"
            self.stop()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def _client(port, request, n, latencies):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    perf = time.perf_counter
    try:
        for _ in range(n):
            start = perf()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            if status != 200:
                raise RuntimeError(f"HTTP {status}")
            latencies.append(perf() - start)
    finally:
        writer.close()


def cpu_seconds(pid):
    """CPU time (user + system, every thread) used so far by process ``pid`` and the processes it started
    (``mlflow models serve`` runs its server in a child); None off Linux."""
    total, todo = 0.0, [pid]
    try:
        while todo:
            p = todo.pop()
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
    except OSError:
        return None
    return total


def load(port, path, body, concurrency, n_requests, headers=()):
    """Send ``n_requests`` POSTs of ``body`` over ``concurrency`` keep-alive connections.
    Returns (requests per second, P50 seconds, P99 seconds)."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
    request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra}"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    latencies = []
    per = n_requests // concurrency

    async def run():
        await asyncio.gather(*(_client(port, request, per, latencies) for _ in range(concurrency)))

    start = time.perf_counter()
    asyncio.run(run())
    elapsed = time.perf_counter() - start
    p50, p99 = np.percentile(latencies, [50, 99])
    return len(latencies) / elapsed, float(p50), float(p99)


def _pipeline():
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from ml_toolbox import UnifiedMLPipeline

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(2000, N_FEATURES)), columns=[f"f{i}" for i in range(N_FEATURES)])
    y = (X["f0"] + X["f1"] > 0).astype(int)
    features = [("impute", SimpleImputer()), ("scale", StandardScaler())]
    ours = UnifiedMLPipeline(features=features, model=LogisticRegression()).fit(X, y)
    return X, y, ours


def _mlflow_model(workdir, X, y):
    try:
        import mlflow.sklearn
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as exc:
        return None, f"mlflow is not installed ({exc}); install the bench extra"
    sk = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(X, y)
    path = os.path.join(workdir, "mlflow_model")
    mlflow.sklearn.save_model(sk, path, serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE)
    return path, None


def _in_process(console, store, calls=20_000):
    """Canary routing cost per request, in process (no HTTP): calls interleaved, medians."""
    from benchmarks._timing import interleaved_median
    from ml_toolbox.serving import Router

    canary = Router(store, "churn", challenger="challenger", share=0.1, poll_interval=60).start()
    plain = Router(store, "churn", poll_interval=60).start()
    columns = store.load("churn", 1).input_schema_.columns
    row = pd.DataFrame([np.zeros(N_FEATURES)], columns=list(columns))
    keys = iter([f"user-{i}" for i in range(calls * 4)])
    routes = interleaved_median({
        "key": lambda: canary.route(next(keys)),
        "random": lambda: canary.route(),
        "none": lambda: plain.route(),
    }, calls=calls)
    predicts = interleaved_median({
        "canary": lambda: canary.predict(row, key=next(keys)),
        "plain": lambda: plain.predict(row),
    }, calls=calls // 4)
    canary.stop()
    plain.stop()
    table = Table(title="Canary routing, in process, median of interleaved calls (target: < 5 us per request)")
    table.add_column("measurement")
    table.add_column("us per request", justify="right")
    table.add_row("Router.route() without a challenger (the baseline)", f"{routes['none'] * 1e6:.2f}")
    table.add_row("Router.route(key): sticky canary draw (CRC-32 + murmur3 finaliser)", f"{routes['key'] * 1e6:.2f}")
    table.add_row("Router.route(): random canary draw", f"{routes['random'] * 1e6:.2f}")
    table.add_row("added by the sticky draw", f"{(routes['key'] - routes['none']) * 1e6:.2f}")
    table.add_row("Router.predict, 10% canary by key (both versions the same pipeline)", f"{predicts['canary'] * 1e6:.2f}")
    table.add_row("Router.predict, no challenger", f"{predicts['plain'] * 1e6:.2f}")
    table.add_row("added by canary routing to predict", f"{(predicts['canary'] - predicts['plain']) * 1e6:.2f}")
    console.print(table)


def main(n_requests=3000, rounds=5, console=None):
    console = console or Console()
    from ml_toolbox import PipelinePersistence

    workdir = tempfile.mkdtemp(prefix="bench_serving_")
    try:
        X, y, ours = _pipeline()
        store = PipelinePersistence(os.path.join(workdir, "store"))
        ours.save(store, name="churn")
        ours.save(store, name="churn")
        store.promote("churn", 1, "production")
        store.promote("churn", 2, "challenger")
        _in_process(console, store)

        for module, text in (("constant_app", _CONSTANT_APP), ("predict_app", _PREDICT_APP)):
            with open(os.path.join(workdir, f"{module}.py"), "w") as f:
                f.write(text)
        import joblib

        joblib.dump(store.load("churn", 1), os.path.join(workdir, "model.joblib"))
        uvicorn_args = ["--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"]
        cli = [sys.executable, "-m", "ml_toolbox.cli", "--store", store.path.as_posix(), "serve", "--name", "churn",
               "--host", "127.0.0.1", "--port", "{port}"]
        specs = [
            ("ml-toolbox serve", cli, "/predict", "/health", None),
            ("ml-toolbox serve, shadow", cli + ["--shadow", "challenger"], "/predict", "/health", None),
            ("bare Starlette constant", [sys.executable, "-m", "uvicorn", "constant_app:app", *uvicorn_args],
             "/predict", "/health", workdir),
            ("bare Starlette predict", [sys.executable, "-m", "uvicorn", "predict_app:app", *uvicorn_args],
             "/predict", "/health", workdir),
        ]
        mlflow_path, why = _mlflow_model(workdir, X, y)
        mlflow_bin = shutil.which("mlflow") or os.path.join(os.path.dirname(sys.executable), "mlflow")
        if mlflow_path is not None:
            specs.append(("mlflow models serve", [mlflow_bin, "models", "serve", "-m", mlflow_path, "--env-manager",
                                                  "local", "--host", "127.0.0.1", "-p", "{port}"],
                          "/invocations", "/ping", None))
        servers, notes = [], []
        for label, argv, path, health, cwd in specs:
            env = {"MLFLOW_TRACKING_URI": f"file:{workdir}/mlruns",  # mlflow runs `uvicorn` from PATH
                   "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
            server = _Server(label, argv, path, health, env=env, cwd=cwd)
            if server.ok:
                servers.append(server)
            else:
                notes.append(f"{label} could not be started here: {server.error.strip()}")
        if why:
            notes.append(why)
        row = X.iloc[[0]]
        body = json.dumps({"dataframe_split": {"columns": list(row.columns), "data": row.to_numpy().tolist()}}).encode()
        results, rounds_of = {}, {}
        try:
            for server in servers:  # warm up (first requests build the fast plan, import lazily...)
                load(server.port, server.path, body, 1, 500)
            for concurrency in (1, 16):
                runs = {server.label: [] for server in servers}
                for round_ in range(rounds):
                    # in turns, the order reversed every other round: no server always follows the same one
                    for server in (servers if round_ % 2 == 0 else servers[::-1]):
                        # mlflow is ~10x slower: a tenth of the requests keeps its runs as long as the others'
                        n = max(200, n_requests // 10) if server.label.startswith("mlflow") else n_requests
                        before = cpu_seconds(server.proc.pid)
                        rps, p50, p99 = load(server.port, server.path, body, concurrency, n)
                        after = cpu_seconds(server.proc.pid)
                        cpu = None if before is None else (after - before) / n
                        runs[server.label].append((rps, p50, p99, cpu))
                rounds_of[concurrency] = runs
                results[concurrency] = {label: max(values) for label, values in runs.items()}  # best round
        finally:
            for server in servers:
                server.stop()

        table = Table(title=f"Single-row JSON requests, {n_requests} per run (mlflow: a tenth), best of {rounds} "
                            f"rounds (impute, scale, logistic regression on {N_FEATURES} features)")
        for col in ("server", "concurrency", "requests/s", "P50 ms", "P99 ms", "rps vs ml-toolbox",
                    "server CPU us/request"):
            table.add_column(col, justify="left" if col == "server" else "right")
        for concurrency, best in results.items():
            base = best.get("ml-toolbox serve", (float("nan"),))[0]
            for label, (rps, p50, p99, _) in best.items():
                cpus = [r[3] for r in rounds_of[concurrency][label] if r[3] is not None]
                cpu = f"{np.median(cpus) * 1e6:,.0f}" if cpus else "n/a"
                table.add_row(label, str(concurrency), f"{rps:,.0f}", f"{p50 * 1e3:.3f}", f"{p99 * 1e3:.3f}",
                              f"{rps / base:.2f}x", cpu)
        console.print(table)

        def per_round(concurrency, label, reference, index=0):
            """The ratio of two servers' figures in each round (run next to each other), as 'median (min-max)'."""
            ours_, ref = rounds_of[concurrency].get(label), rounds_of[concurrency].get(reference)
            if not ours_ or not ref:
                return None, ""
            ratios = [a[index] / b[index] for a, b in zip(ours_, ref) if a[index] and b[index]]
            if not ratios:
                return None, ""
            med = float(np.median(ratios))
            return med, f"{med:.2f}x ({min(ratios):.2f}x - {max(ratios):.2f}x)"

        targets = Table(title="Targets (ratios per round, median and range over the rounds)")
        for col in ("target", "concurrency", "measured", "met"):
            targets.add_column(col)
        for concurrency, best in results.items():
            ours_ = best.get("ml-toolbox serve")
            if ours_ is None:
                continue
            ratio, text = per_round(concurrency, "ml-toolbox serve", "bare Starlette constant")
            if ratio is not None:
                targets.add_row(">= 0.8x the constant endpoint's rps", str(concurrency), text,
                                "yes" if ratio >= 0.8 else "no")
                cpu, cpu_text = per_round(concurrency, "bare Starlette constant", "ml-toolbox serve", index=3)
                if cpu is not None:
                    targets.add_row("  the same, as server CPU per request (constant's / ours)", str(concurrency),
                                    cpu_text, "yes" if cpu >= 0.8 else "no")
            ratio, text = per_round(concurrency, "ml-toolbox serve", "bare Starlette predict")
            if ratio is not None:
                targets.add_row(">= 0.8x the rps of a bare endpoint calling predict", str(concurrency), text,
                                "yes" if ratio >= 0.8 else "no")
            mlf = best.get("mlflow models serve")
            if mlf:
                ratio, p99 = ours_[0] / mlf[0], ours_[2] / mlf[2]
                targets.add_row(">= 5x mlflow's rps (best rounds)", str(concurrency), f"{ratio:.1f}x",
                                "yes" if ratio >= 5 else "no")
                targets.add_row("<= 1/5 of mlflow's P99 (best rounds)", str(concurrency), f"{p99:.2f}x",
                                "yes" if p99 <= 0.2 else "no")
            if concurrency == 1:
                added, text = per_round(concurrency, "ml-toolbox serve, shadow", "ml-toolbox serve", index=1)
                if added is not None:
                    targets.add_row("shadow adds < 10% to caller P50", str(concurrency), text,
                                    "yes" if added < 1.10 else "no")
        console.print(targets)
        for note in notes:
            console.print(f"[yellow]note:[/] {note}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
