"""Fast inference vs scikit-learn vs plain numpy vs ONNX Runtime (median of many calls).

Run: ``python -m benchmarks.bench_inference`` (or ``make bench``). ONNX Runtime is measured only when
skl2onnx and onnxruntime are installed (the ``bench`` extra); otherwise its column reads "n/a".

The single-row cases are timed in rounds: every case makes the same number of calls, in blocks
taken in turns, so a change of load on the machine falls on all of them alike. "Fresh frame" cases
get another one-row DataFrame than the previous call's (see ``_Fresh``), as a server building one per
request does; the other cases call with the same row object each time, scikit-learn included.
"""

import statistics
import time
import warnings

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

from ml_toolbox import UnifiedMLPipeline
from ml_toolbox.fast import build_plan


def _rounds_median_us(cases, n, rounds=10, clock=time.perf_counter):
    """Median microseconds per call of each case: ``n`` calls each, in ``rounds`` blocks in turns."""
    times = {name: [] for name in cases}
    for fn in cases.values():
        fn()
    per = max(1, n // rounds)
    for _ in range(rounds):
        for name, fn in cases.items():
            for _ in range(per):
                t0 = clock()
                fn()
                times[name].append(clock() - t0)
    return {name: statistics.median(values) * 1e6 for name, values in times.items()}


class _Fresh:
    """Another one-row frame than the last call's (same values, its own column Index) on each call.

    Two frames built outside the timing take turns: every call meets a frame whose columns were
    not the previous call's (no reuse of a checked Index), while the frame is warm in the CPU
    cache, as one a server has just built for the request.
    """

    def __init__(self, row):
        self.frames = [pd.DataFrame(row.to_numpy().copy(), columns=list(row.columns)) for _ in range(2)]
        self.i = 0

    def __call__(self):
        self.i ^= 1
        return self.frames[self.i]


def _data(n_rows=2000, n_features=8, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n_rows, n_features)), columns=[f"f{i}" for i in range(n_features)])
    X = X.mask(rng.random(X.shape) < 0.05)
    y = (X["f0"].fillna(0) + X["f1"].fillna(0) > 0).astype(int).to_numpy()
    return X, y


def _onnx(pipe, n_features):
    try:
        import onnxruntime as rt
        from skl2onnx import to_onnx
    except ImportError:
        return None
    onx = to_onnx(pipe, np.zeros((1, n_features), dtype=np.float32), options={"zipmap": False})
    sess = rt.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})


def main(n_calls=3000, console=None):
    console = console or Console()
    warnings.simplefilter("ignore")
    X, y = _data()
    row = X.iloc[[3]]
    rows = []

    # 1. the three-stage pipeline, one DataFrame row
    sk = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(X, y)
    plan = build_plan(sk)
    unified = UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("scale", StandardScaler())],
                                model=LogisticRegression()).fit(X, y)
    imp, sc, lr = sk.steps[0][1], sk.steps[1][1], sk.steps[2][1]
    stats, mean, scale, coef, icpt = imp.statistics_, sc.mean_, sc.scale_, lr.coef_.T, lr.intercept_

    def floor():
        a = row.to_numpy()
        a = np.where(np.isnan(a), stats, a)
        return ((a - mean) / scale) @ coef + icpt > 0

    onnx = _onnx(sk, X.shape[1])
    x32 = row.to_numpy(dtype=np.float32)
    ip = unified.inference_pipeline
    fresh_sk, fresh_unified = _Fresh(row), _Fresh(row)
    cases = {
        "sk": lambda: sk.predict(row),
        "unified": lambda: unified.predict(row),
        "inference": lambda: ip.predict(row),
        "plan": lambda: plan.run(row, "predict", check_input=False),
        "floor": floor,
        "sk fresh": lambda: sk.predict(fresh_sk()),
        "unified fresh": lambda: unified.predict(fresh_unified()),
    }
    if onnx:
        cases["onnx"] = lambda: onnx(x32)
    t1 = _rounds_median_us(cases, n_calls)
    t_sk, t_plan, t_unified, t_onnx = t1["sk"], t1["plan"], t1["unified"], t1.get("onnx")
    rows.append(("3 stages, 1 row: sklearn Pipeline.predict", t_sk, 1.0))
    rows.append(("3 stages, 1 row: UnifiedMLPipeline.predict (fast)", t_unified, t_sk / t_unified))
    rows.append(("3 stages, 1 row: InferencePipeline.predict (fast)", t1["inference"],
                 t_sk / t1["inference"]))
    rows.append(("3 stages, 1 row: FastPlan.run", t_plan, t_sk / t_plan))
    rows.append(("3 stages, 1 row: plain numpy floor", t1["floor"], t_sk / t1["floor"]))
    rows.append(("3 stages, 1 row: ONNX Runtime (float32 array)", t_onnx,
                 t_sk / t_onnx if t_onnx else None))
    rows.append(("3 stages, fresh frame per call: sklearn", t1["sk fresh"], 1.0))
    rows.append(("3 stages, fresh frame per call: UnifiedMLPipeline", t1["unified fresh"],
                 t1["sk fresh"] / t1["unified fresh"]))

    # 2. 100k-row batch
    Xb, yb = _data(100_000, seed=1)
    tb = _rounds_median_us({
        "sk": lambda: sk.predict_proba(Xb),
        "plan": lambda: plan.run(Xb, "predict_proba"),
        "chunked": lambda: plan.run(Xb, "predict_proba", batch_size=20_000, n_jobs=2),
    }, 7, rounds=7)
    tb_sk, tb_plan, tb_chunk = tb["sk"], tb["plan"], tb["chunked"]
    rows.append(("100k rows: sklearn predict_proba", tb_sk, 1.0))
    rows.append(("100k rows: FastPlan.run", tb_plan, tb_sk / tb_plan))
    rows.append(("100k rows: FastPlan.run batch_size=20k n_jobs=2", tb_chunk, tb_sk / tb_chunk))

    # 3. ten stages: per-stage cost
    ten = make_pipeline(SimpleImputer(), *[cls() for cls in (StandardScaler, MinMaxScaler, MaxAbsScaler,
                                                              RobustScaler)] * 2,
                        LogisticRegression()).fit(X, y)
    plan10 = build_plan(ten)
    t10 = _rounds_median_us({"sk": lambda: ten.predict(row),
                             "plan": lambda: plan10.run(row, "predict", check_input=False)}, n_calls // 3)
    t10_sk, t10 = t10["sk"], t10["plan"]
    rows.append(("10 stages, 1 row: sklearn (per stage)", t10_sk / 10, 1.0))
    rows.append(("10 stages, 1 row: FastPlan (per stage)", t10 / 10, t10_sk / t10))

    # 4. random forest (a tree kernel since issue 23: see bench_trees.py)
    rf = make_pipeline(SimpleImputer(), StandardScaler(),
                       RandomForestClassifier(n_estimators=50, random_state=0)).fit(X, y)
    plan_rf = build_plan(rf)
    trf = _rounds_median_us({"sk": lambda: rf.predict_proba(row),
                             "plan": lambda: plan_rf.run(row, "predict_proba", check_input=False)},
                            n_calls // 20)
    trf_sk, trf = trf["sk"], trf["plan"]
    rows.append(("random forest, 1 row: sklearn", trf_sk, 1.0))
    rows.append(("random forest, 1 row: FastPlan (tree kernel)", trf, trf_sk / trf))

    # 5. the toolbox's default pipeline (AutoPreprocessor + the model it chooses) on a mixed frame
    rows.extend(_toolbox_default(n_calls))

    # 6. a configuration the fast path declines at build time: the cost of declining
    rows.extend(_declined(X, y, row, n_calls))

    table = Table(title="fast inference (median microseconds per call)")
    table.add_column("case")
    table.add_column("us", justify="right")
    table.add_column("x faster than sklearn", justify="right")
    for case, t, ratio in rows:
        table.add_row(case, "n/a" if t is None else f"{t:,.1f}", "n/a" if ratio is None else f"{ratio:,.1f}")
    console.print(table)
    if t_onnx:
        console.print(f"vs ONNX Runtime (>1 means ml_toolbox is faster): UnifiedMLPipeline.predict "
                      f"{t_onnx / t_unified:.2f}x, InferencePipeline.predict {t_onnx / t1['inference']:.2f}x, "
                      f"FastPlan.run {t_onnx / t_plan:.2f}x")
    return rows


def _mixed(n_rows=2000, seed=0):
    """Six numeric columns with NaN, two string columns (one with missing values)."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({f"f{i}": rng.normal(size=n_rows) for i in range(6)})
    X = X.mask(rng.random(X.shape) < 0.05)
    X["city"] = pd.Series(rng.choice(["paris", "lyon", "nice", "lille"], n_rows)).mask(
        pd.Series(rng.random(n_rows) < 0.1))
    X["plan"] = rng.choice(["basic", "pro", "team"], n_rows)
    y = (X["f0"].fillna(0) + (X["plan"] == "pro") > 0.5).astype(int).to_numpy()
    return X, y


def _onnx_column_transformer(pipe, X):
    """ONNX Runtime on the same fitted ColumnTransformer + model (one input per column), or None."""
    try:
        import onnxruntime as rt
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    except ImportError:
        return None
    types = [(c, StringTensorType([None, 1]) if X[c].dtype.kind not in "biuf" else
              FloatTensorType([None, 1])) for c in X.columns]
    try:
        onx = to_onnx(pipe, initial_types=types, options={"zipmap": False})
    except Exception as exc:  # noqa: BLE001 - a converter that cannot: say so in the table
        Console().print(f"skl2onnx cannot convert the toolbox pipeline: {exc}")
        return None
    sess = rt.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    return lambda feeds: sess.run(None, feeds)


def _toolbox_default(n_calls):
    from ml_toolbox import MLToolbox
    from ml_toolbox.preprocessing import AutoPreprocessor

    X, y = _mixed()
    row = X.iloc[[3]]
    unified = UnifiedMLPipeline(MLToolbox()).fit(X, y)
    model = unified.inference_pipeline.stages_[-1].estimator_
    sk = make_pipeline(AutoPreprocessor(), type(model)(**model.get_params())).fit(X, y)
    assert np.array_equal(unified.predict_proba(row), sk.predict_proba(row))
    fresh = _Fresh(row)  # its own columns per call, each column's dtype kept
    fresh.frames = [pd.DataFrame({c: row[c].to_numpy().copy() for c in row.columns},
                                 index=row.index.copy()) for _ in range(2)]
    cases = {"sk": lambda: sk.predict(row), "unified": lambda: unified.predict(row),
             "unified fresh": lambda: unified.predict(fresh())}
    onnx = _onnx_column_transformer(make_pipeline(sk[0].column_transformer_, sk[-1]), X)
    if onnx:
        feeds = {c: (row[[c]].to_numpy(dtype=np.float32) if X[c].dtype.kind in "biuf" else
                     row[[c]].astype(object).fillna("").to_numpy()) for c in X.columns}
        cases["onnx"] = lambda: onnx(feeds)
    t = _rounds_median_us(cases, n_calls // 3)
    out = [("toolbox default, mixed frame, 1 row: sklearn Pipeline", t["sk"], 1.0),
           ("toolbox default, mixed frame, 1 row: UnifiedMLPipeline(MLToolbox())", t["unified"],
            t["sk"] / t["unified"]),
           ("toolbox default, fresh frame per call: UnifiedMLPipeline", t["unified fresh"],
            t["sk"] / t["unified fresh"]),
           ("toolbox default, 1 row: ONNX Runtime (same steps, skl2onnx)", t.get("onnx"),
            t["sk"] / t["onnx"] if "onnx" in t else None)]
    if "onnx" in t:
        Console().print(f"toolbox default vs ONNX Runtime (>1 means ml_toolbox is faster): "
                        f"UnifiedMLPipeline.predict {t['onnx'] / t['unified']:.2f}x")
    return out


def _declined(X, y, row, n_calls):
    """A ColumnTransformer with a FunctionTransformer part: no kernel, the plan runs sklearn."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import FunctionTransformer

    ct = ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), list(X.columns[:6])),
                            ("log", make_pipeline(SimpleImputer(), FunctionTransformer(np.abs)),
                             list(X.columns[6:]))])
    sk = make_pipeline(ct, LogisticRegression()).fit(X, y)
    plan = build_plan(sk)
    assert plan.explain()[0].path == "fallback"
    t = _rounds_median_us({"sk": lambda: sk.predict(row),
                           "plan": lambda: plan.run(row, "predict")}, n_calls // 3)
    return [("declined ColumnTransformer, 1 row: sklearn", t["sk"], 1.0),
            ("declined ColumnTransformer, 1 row: FastPlan.run (declines)", t["plan"],
             t["sk"] / t["plan"])]


if __name__ == "__main__":
    main()
