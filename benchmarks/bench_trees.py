"""Tree ensembles on the fast path vs scikit-learn vs ONNX Runtime (median of many calls).

Run: ``python -m benchmarks trees`` (or ``make bench BENCH=trees``). Two models fitted on 20k rows of
20 numeric features: ``HistGradientBoostingClassifier(max_iter=100)`` and
``RandomForestClassifier(n_estimators=100)`` (unlimited depth). For each, one DataFrame row through
``predict_proba``: scikit-learn, the fast plan with the compiled engine (numba, the ``trees`` extra),
the fast plan with the pure numpy engine (``ML_TOOLBOX_TREE_ENGINE=numpy``), and ONNX Runtime on a
float32 array where skl2onnx converts the model, all limited to one thread (scikit-learn's OpenMP
threads only add cost to one row); then a 100k-row numpy batch with default threads. All cases of a table
are timed in turns within one run, so the ratios hold on a loaded machine. "nodes/row" is the number
of nodes (leaves included) one row visits across all trees: the work any engine must do.
"""

import os
import warnings

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from threadpoolctl import threadpool_limits

from benchmarks.bench_inference import _rounds_median_us as _median_us
from ml_toolbox._tree_kernels import TREE_ENGINE_ENV, numba_available
from ml_toolbox.fast import build_plan


def _plan(est, engine):
    """A fast plan of ``est`` alone, its kernels built with the given engine."""
    old = os.environ.get(TREE_ENGINE_ENV)
    os.environ[TREE_ENGINE_ENV] = engine
    try:
        plan = build_plan([("model", est)], methods=["predict_proba"])
    finally:
        if old is None:
            del os.environ[TREE_ENGINE_ENV]
        else:
            os.environ[TREE_ENGINE_ENV] = old
    return plan


def _onnx(est, n_features):
    try:
        import onnxruntime as rt
        from skl2onnx import to_onnx
    except ImportError:
        return None, "not installed"
    try:
        onx = to_onnx(est, np.zeros((1, n_features), dtype=np.float32),
                      options={id(est): {"zipmap": False}})
    except Exception as exc:  # noqa: BLE001 - skl2onnx cannot convert every model
        return None, f"{type(exc).__name__}"
    sess = rt.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return (lambda x: sess.run(None, {name: x})), "ok"


def _data(n, seed):
    X, y = make_classification(n, 20, n_informative=12, random_state=seed)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(20)]), y


def main(n_calls=600, console=None):
    console = console or Console()
    warnings.simplefilter("ignore")
    X, y = _data(20_000, 0)
    Xb, _ = _data(100_000, 1)
    Xb = Xb.to_numpy()
    row = X.iloc[[3]]
    x32 = row.to_numpy(dtype=np.float32)
    compiled = numba_available()
    models = {
        "HistGradientBoostingClassifier(max_iter=100)":
            HistGradientBoostingClassifier(max_iter=100, early_stopping=False, random_state=0),
        "RandomForestClassifier(n_estimators=100)": RandomForestClassifier(100, random_state=0),
    }
    results = []
    for label, est in models.items():
        est.fit(X, y)
        fast = _plan(est, "auto")
        pure = _plan(est, "numpy")
        kernel = fast._steps("predict_proba")[0].kernel
        forest = kernel.forest
        sample = X.to_numpy()[:500]
        sample = sample.astype(np.float32) if "Random" in label else sample
        visited = float(np.mean(forest.nodes_visited(sample)))
        onnx, onnx_state = _onnx(est, X.shape[1])
        cases = {
            "sklearn": lambda est=est: est.predict_proba(row),
            "numpy": lambda pure=pure: pure.run(row, "predict_proba", check_input=False),
        }
        if compiled:
            cases["numba"] = lambda fast=fast: fast.run(row, "predict_proba", check_input=False)
        if onnx:
            cases["onnx"] = lambda onnx=onnx: onnx(x32)
        calls = n_calls if "Hist" in label else n_calls // 4
        with threadpool_limits(1):  # one row: scikit-learn's OpenMP threads only cost (its best)
            t = _median_us(cases, calls)
        # a numpy batch (the plan hands a DataFrame batch's first stage to scikit-learn itself):
        # the model stage's fast step, as the plan runs it on an array
        batch = {"sklearn": lambda est=est: est.predict_proba(Xb),
                 "numpy": lambda pure=pure: pure._steps("predict_proba")[0](Xb)}
        if compiled:
            batch["numba"] = lambda fast=fast: fast._steps("predict_proba")[0](Xb)
        tb = _median_us(batch, 3, rounds=3)
        results.append((label, forest, visited, t, tb, onnx_state))

    table = Table(title="tree ensembles, predict_proba (median microseconds per call; "
                  "batch: milliseconds)")
    for col in ("model", "nodes", "nodes/row", "case", "1 row (us)", "x sklearn", "vs ONNX",
                "100k rows (ms)", "x sklearn"):
        table.add_column(col, justify="left" if col in ("model", "case") else "right")
    for label, forest, visited, t, tb, onnx_state in results:
        first = True
        for case in ("sklearn", "numba", "numpy", "onnx"):
            if case not in t:
                if case == "onnx":
                    table.add_row("", "", "", "ONNX Runtime", f"n/a ({onnx_state})", "", "", "", "")
                continue
            vs_onnx = f"{t[case] / t['onnx']:.2f}x" if "onnx" in t else "n/a"
            batch = f"{tb[case] / 1e3:,.1f}" if case in tb else ""
            batch_ratio = f"{tb['sklearn'] / tb[case]:.2f}" if case in tb else ""
            table.add_row(label if first else "", f"{forest.n_nodes:,}" if first else "",
                          f"{visited:,.0f}" if first else "",
                          {"numba": "fast plan (numba)", "numpy": "fast plan (numpy)",
                           "onnx": "ONNX Runtime", "sklearn": "scikit-learn"}[case],
                          f"{t[case]:,.1f}", f"{t['sklearn'] / t[case]:,.1f}", vs_onnx, batch,
                          batch_ratio)
            first = False
    console.print(table)
    return results


if __name__ == "__main__":
    main()
