"""Tree ensembles on the fast path: every output identical, bit for bit, to scikit-learn's own, or
scikit-learn's error; both engines (numpy, and numba when installed); declines explained.

``ML_TOOLBOX_TREE_EXAMPLES`` sets the number of hypothesis examples per engine (20 by default, for
CI's time budget; run with 500 for a long search).
"""

import contextlib
import os
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn import ensemble, tree
from sklearn.preprocessing import StandardScaler

from ml_toolbox import PipelineMonitor, UnifiedMLPipeline
from ml_toolbox import _tree_kernels
from ml_toolbox._kernels import NoKernel, make_kernel
from ml_toolbox._tree_kernels import TREE_ENGINE_ENV, numba_available
from ml_toolbox.fast import build_plan

HAS_NUMBA = numba_available()
# the numpy engine on small inputs, the numpy engine handing batches to scikit-learn's own loops,
# and the compiled engine
ENGINES = ["numpy", "numpy-batch", pytest.param("numba", marks=pytest.mark.skipif(
    not HAS_NUMBA, reason="numba not installed (the trees extra)"))]
METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function")

MODELS = {
    "DecisionTreeClassifier": lambda p: tree.DecisionTreeClassifier(
        max_depth=p["depth"], class_weight=p["cw"], random_state=p["seed"]),
    "DecisionTreeRegressor": lambda p: tree.DecisionTreeRegressor(max_depth=p["depth"],
                                                                  random_state=p["seed"]),
    "ExtraTreeClassifier": lambda p: tree.ExtraTreeClassifier(random_state=p["seed"]),
    "RandomForestClassifier": lambda p: ensemble.RandomForestClassifier(
        p["n"], max_depth=p["depth"], class_weight=p["cw"], random_state=p["seed"]),
    "RandomForestRegressor": lambda p: ensemble.RandomForestRegressor(
        p["n"], max_depth=p["depth"], random_state=p["seed"]),
    "ExtraTreesClassifier": lambda p: ensemble.ExtraTreesClassifier(
        p["n"], max_depth=p["depth"], class_weight=p["cw"], random_state=p["seed"]),
    "ExtraTreesRegressor": lambda p: ensemble.ExtraTreesRegressor(p["n"], random_state=p["seed"]),
    "GradientBoostingClassifier": lambda p: ensemble.GradientBoostingClassifier(
        n_estimators=p["n"], max_depth=p["depth"] or 3, learning_rate=p["lr"],
        init="zero" if p["zero"] else None, random_state=p["seed"]),
    "GradientBoostingRegressor": lambda p: ensemble.GradientBoostingRegressor(
        n_estimators=p["n"], learning_rate=p["lr"], loss=p["gb_loss"], random_state=p["seed"]),
    "HistGradientBoostingClassifier": lambda p: ensemble.HistGradientBoostingClassifier(
        max_iter=p["n"], max_depth=p["depth"], class_weight=p["cw"], learning_rate=p["lr"],
        categorical_features=[0] if p["cat"] else None, early_stopping=p["early"],
        n_iter_no_change=2, validation_fraction=0.2, min_samples_leaf=3, random_state=p["seed"]),
    "HistGradientBoostingRegressor": lambda p: ensemble.HistGradientBoostingRegressor(
        max_iter=p["n"], categorical_features=[0] if p["cat"] else None, loss=p["hgb_loss"],
        early_stopping=p["early"], n_iter_no_change=2, validation_fraction=0.2,
        min_samples_leaf=3, random_state=p["seed"]),
}


def identical(a, b):
    return isinstance(a, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and \
        np.array_equal(a, b, equal_nan=a.dtype.kind == "f") and \
        (a.dtype.kind != "f" or np.array_equal(np.signbit(a), np.signbit(b)))


def outcome(fn):
    """``("ok", result)`` or ``("error", type, message)`` of ``fn()``, warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ("ok", fn())
        except Exception as exc:  # noqa: BLE001 - compared with scikit-learn's own
            return ("error", type(exc), str(exc))


def same_outcome(got, want):
    if want[0] == "error" or got[0] == "error":
        return got == want
    return identical(got[1], want[1])


@contextlib.contextmanager
def engine(name):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(TREE_ENGINE_ENV, "auto" if name == "numba" else "numpy")
        if name == "numpy-batch":  # every batch goes tree by tree through scikit-learn's loops
            mp.setattr(_tree_kernels, "_BATCH", 2)
            mp.setattr(_tree_kernels, "_ROWS_PER_THREAD", 3)  # and in row blocks on 3 threads
            mp.setattr(_tree_kernels, "_MAX_THREADS", 3)
        yield


def thresholds(est):
    """The split values of a fitted model, as the kernel compares them."""
    if hasattr(est, "_predictors"):
        return np.concatenate([p.nodes["num_threshold"] for it in est._predictors for p in it])
    trees = [est] if hasattr(est, "tree_") else np.ravel(est.estimators_)
    return np.concatenate([t.tree_.threshold[t.tree_.children_left >= 0] for t in trees])


def queries(est, X, rng, n=40):
    """Rows for prediction: training rows, split values exactly (and their float32 neighbours),
    NaN, infinities and values that overflow float32, and unseen categories."""
    thr = thresholds(est)
    rows = X[rng.integers(0, len(X), n)].copy()
    if thr.size:
        picks = rng.choice(thr, size=rows.shape)
        cols = rng.random(rows.shape) < 0.5
        rows[cols] = picks[cols]
        f32 = rng.random(rows.shape) < 0.2  # a split value rounded to float32, and next to it
        rows[f32] = np.nextafter(np.float32(rows[f32]), np.float32(rng.choice([-np.inf, np.inf]))
                                 ).astype(np.float64)
    special = rng.random(rows.shape)
    rows[special < 0.08] = np.nan
    for value, p in ((np.inf, 0.01), (-np.inf, 0.01), (1e39, 0.01), (7.0, 0.03), (-1.0, 0.02)):
        rows[rng.random(rows.shape) < p] = value
    return rows


@st.composite
def configurations(draw):
    name = draw(st.sampled_from(sorted(MODELS)))
    classifier = "Classifier" in name
    p = {
        "depth": draw(st.sampled_from([None, None, 1, 3])),
        "cw": draw(st.sampled_from([None, "balanced"])),
        "seed": draw(st.integers(0, 3)),
        "n": draw(st.integers(1, 8)),
        "lr": draw(st.sampled_from([0.1, 0.3, 1.0])),
        "zero": draw(st.booleans()),
        "cat": "Hist" in name and draw(st.booleans()),
        "early": "Hist" in name and draw(st.booleans()),
        "gb_loss": draw(st.sampled_from(["squared_error", "absolute_error", "huber", "quantile"])),
        "hgb_loss": draw(st.sampled_from(["squared_error", "absolute_error", "poisson"])),
    }
    n_rows = draw(st.integers(30, 90))
    n_features = draw(st.integers(1, 5))
    n_classes = draw(st.sampled_from([2, 3])) if classifier else 0
    nan_share = 0.0 if "GradientBoosting" in name and "Hist" not in name else \
        draw(st.sampled_from([0.0, 0.1]))
    grid = draw(st.sampled_from([4, 16, 1000]))  # few distinct values: many equal to a split
    return name, p, n_rows, n_features, n_classes, nan_share, grid, draw(st.integers(0, 2**16))


def fit(name, p, n_rows, n_features, n_classes, nan_share, grid, seed):
    rng = np.random.default_rng(seed)
    X = np.round(rng.normal(size=(n_rows, n_features)) * grid / 4) / grid * 4
    if p["cat"]:
        X[:, 0] = rng.integers(0, 6, n_rows) * 1.5 - 1.5  # categories -1.5, 0, 1.5, ...
    score = X[:, -1] + 0.5 * rng.normal(size=n_rows)
    X[rng.random(X.shape) < nan_share] = np.nan
    if n_classes:
        y = np.digitize(score, np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1]))
        y = np.array(["a", "b", "c"])[y] if seed % 2 else y
    else:
        y = np.abs(score) + 0.1 if p["hgb_loss"] == "poisson" else score
    est = MODELS[name](p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    return est, X, rng


@pytest.mark.parametrize("engine_name", ENGINES)
@settings(max_examples=int(os.environ.get("ML_TOOLBOX_TREE_EXAMPLES", 20)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(config=configurations())
def test_every_output_identical_to_sklearn(engine_name, config):
    est, X, rng = fit(*config)
    Q = queries(est, X, rng)
    if getattr(est, "_preprocessor", None) is not None:  # unseen and missing categories
        Q[::3, 0] = rng.choice([np.nan, 99.0, -3.0, 0.0, 1.5, 3.0], size=Q[::3].shape[0])
    with engine(engine_name):
        plan = build_plan([("model", est)], name="trees")
        for method in METHODS:
            if not hasattr(est, method):
                continue
            assert plan.explain(method)[0].path == "kernel", plan.explain(method)
            kernel = make_kernel(est, method)
            sk = getattr(est, method)
            for batch in [Q, Q[:1], Q[5:6], Q[::2]]:
                assert same_outcome(outcome(lambda: plan.run(batch, method)),
                                    outcome(lambda: sk(batch))), (method, batch)
            for r in range(0, len(Q), 4):  # each row on its own, and on the row form
                want = outcome(lambda: sk(Q[r:r + 1]))
                assert same_outcome(outcome(lambda: plan.run(Q[r:r + 1], method)), want), \
                    (method, Q[r])
                row = outcome(lambda: kernel.row.fn(Q[r]))
                if want[0] == "ok" and row[0] == "ok":
                    assert identical(row[1], want[1]), (method, Q[r])
            if len(Q) >= 2:  # another dtype goes the same way
                assert same_outcome(outcome(lambda: plan.run(Q.astype(np.float32), method)),
                                    outcome(lambda: sk(Q.astype(np.float32))))


@pytest.mark.parametrize("engine_name", [e for e in ENGINES if e != "numpy-batch"])
def test_one_row_frames_take_the_row_path(engine_name):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 6)), columns=[f"c{i}" for i in range(6)])
    X.iloc[::7, 2] = np.nan
    y = (X["c0"] + X["c1"].fillna(0) > 0).astype(int).to_numpy()
    yr = X["c3"].to_numpy() * 3
    models = [ensemble.RandomForestClassifier(10, random_state=0).fit(X, y),
              ensemble.ExtraTreesRegressor(10, random_state=0).fit(X, yr),
              ensemble.HistGradientBoostingClassifier(max_iter=15).fit(X, y),
              ensemble.GradientBoostingRegressor(n_estimators=10).fit(X.fillna(0), yr)]
    with engine(engine_name):
        for est in models:
            plan = build_plan([("model", est)])
            for method in ("predict", "predict_proba"):
                if not hasattr(est, method):
                    continue
                assert plan._row_function(method), method
                for r in range(0, 300, 50):
                    row = X.iloc[[r]]
                    want = outcome(lambda: getattr(est, method)(row))
                    assert same_outcome(outcome(lambda: plan.run(row, method)), want)
            # NaN where the model refuses it, and an infinity: scikit-learn's error, noted
            bad = X.iloc[[2]].copy()
            bad.iloc[0, 2] = np.nan if isinstance(est, ensemble.GradientBoostingRegressor) else np.inf
            want = outcome(lambda: est.predict(bad))
            if want[0] == "error":
                with pytest.raises(want[1], match=re.escape(want[2])) as got:
                    plan.run(bad, "predict")
                assert any("raised by stage 'model'" in n for n in got.value.__notes__)


def test_pipeline_with_scaler_and_forest_and_explain():
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(200, 4)), columns=list("abcd"))
    y = (X["a"] > 0).astype(int).to_numpy()
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())],
                             model=ensemble.RandomForestClassifier(8, random_state=0)).fit(X, y)
    report = pipe.inference_pipeline.fast_plan_.explain("predict_proba")
    assert [r.path for r in report] == ["kernel", "kernel"]
    assert re.fullmatch(r"(numba|numpy) tree kernel for RandomForestClassifier.predict_proba "
                        r"\(8 trees, \d+ nodes\)", report[-1].reason)
    from sklearn.pipeline import make_pipeline

    sk = make_pipeline(StandardScaler(), ensemble.RandomForestClassifier(8, random_state=0)).fit(X, y)
    for r in range(0, 200, 17):
        assert identical(pipe.predict_proba(X.iloc[[r]]), sk.predict_proba(X.iloc[[r]]))
    assert identical(pipe.predict_proba(X), sk.predict_proba(X))


def test_monitor_sees_the_model_stage():
    rng = np.random.default_rng(2)
    X = pd.DataFrame(rng.normal(size=(150, 3)), columns=list("xyz"))
    y = (X["x"] > 0).astype(int).to_numpy()
    monitor = PipelineMonitor()
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())],
                             model=ensemble.HistGradientBoostingClassifier(max_iter=10),
                             monitor=monitor).fit(X, y)
    sk = ensemble.HistGradientBoostingClassifier(max_iter=10).fit(
        StandardScaler().fit_transform(X), y)
    got = pipe.predict_proba(X.iloc[[4]])
    assert identical(got, sk.predict_proba(StandardScaler().fit(X).transform(X.iloc[[4]])))
    runs = [m for m in monitor.history() if m.mode == "predict_proba"]
    assert runs and runs[-1].stage("model").stage_name == "model"


def test_declines_say_why():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(80, 3))
    y2 = np.stack([X[:, 0] > 0, X[:, 1] > 0], axis=1).astype(int)
    multi = ensemble.RandomForestClassifier(3, random_state=0).fit(X, y2)
    assert build_plan([("m", multi)]).explain("predict")[0].reason == "multi-output model"
    from sklearn.linear_model import LinearRegression

    custom_init = ensemble.GradientBoostingRegressor(n_estimators=3, init=LinearRegression()).fit(
        X, X[:, 0])
    report = build_plan([("m", custom_init)]).explain("predict")[0]
    assert (report.path, report.reason) == (
        "fallback", "init=LinearRegression (its prediction depends on the input)")
    plan = build_plan([("m", custom_init)])
    assert identical(plan.run(X[:3]), custom_init.predict(X[:3]))
    with pytest.raises(NoKernel, match="RandomForestRegressor has no predict_proba"):
        make_kernel(ensemble.RandomForestRegressor(2).fit(X, X[:, 0]), "predict_proba")
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(3).fit(X, y2[:, 0])
    assert build_plan([("m", knn)]).explain()[0].reason == "no kernel for KNeighborsClassifier"


def test_string_categories_decline():
    X = pd.DataFrame({"c": pd.Categorical(list("abcab") * 20), "v": np.arange(100.0)})
    y = np.arange(100) % 2
    est = ensemble.HistGradientBoostingClassifier(max_iter=5, categorical_features="from_dtype")
    est.fit(X, y)
    report = build_plan([("m", est)]).explain()[0]
    assert (report.path, report.reason) == ("fallback",
                                            "categorical features with non-numeric categories")
    assert identical(build_plan([("m", est)]).run(X.iloc[[1]]), est.predict(X.iloc[[1]]))


def test_nodes_visited_counts_each_tree_path():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    est = tree.DecisionTreeRegressor().fit(X, [0.0, 1.0, 2.0, 3.0])
    forest = make_kernel(est, "predict").forest
    depths = est.decision_path(X.astype(np.float32)).sum(axis=1).A.ravel()
    assert forest.nodes_visited(X.astype(np.float32)).tolist() == depths.tolist()


def test_pickled_plan_rebuilds_tree_kernels():
    import pickle

    rng = np.random.default_rng(4)
    X = rng.normal(size=(100, 3))
    est = ensemble.RandomForestRegressor(4, random_state=0).fit(X, X[:, 0])
    plan = build_plan([("m", est)], methods=["predict"])
    again = pickle.loads(pickle.dumps(plan))
    assert identical(again.run(X[:7]), est.predict(X[:7]))
    assert again.explain()[0].path == "kernel"


def test_debugger_snapshots_the_model_stage():
    from ml_toolbox import PipelineDebugger

    rng = np.random.default_rng(5)
    X = pd.DataFrame(rng.normal(size=(120, 3)), columns=list("pqr"))
    y = (X["p"] > 0).astype(int).to_numpy()
    debugger = PipelineDebugger()
    debugger.add_breakpoint("model", when="after")
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())],
                             model=ensemble.ExtraTreesClassifier(6, random_state=0)).fit(X, y)
    want = pipe.predict_proba(X.iloc[[7]])
    pipe.debugger = debugger
    got = pipe.predict_proba(X.iloc[[7]])
    assert identical(got, want)
    snap = debugger.snapshot("model", "after")
    assert snap.shape == want.shape and np.array_equal(snap.head.to_numpy(), want)
