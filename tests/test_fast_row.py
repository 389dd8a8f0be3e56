"""The one-row path of the fast plan: identical to scikit-learn bit for bit, or scikit-learn's error."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, SGDClassifier, SGDRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

from ml_toolbox import UnifiedMLPipeline
from ml_toolbox._kernels import row_finite, row_without_inf
from ml_toolbox.exceptions import InputSchemaError
from ml_toolbox.context import row_output
from ml_toolbox.fast import _UNHANDLED, build_plan, compile_row

COLUMNS = [f"f{i}" for i in range(5)]

from _versions import needs_kernels, sklearn_older

pytestmark = needs_kernels


def identical(a, b):
    return isinstance(a, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and \
        a.tobytes() == b.tobytes()


def frame(n=300, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 5)) * scale, columns=COLUMNS)
    X.iloc[::9, 1] = np.nan
    y3 = (X["f0"].fillna(0) > 0).astype(int) + (X["f2"] > 0.5)
    return X, (y3 > 0).astype(int).to_numpy(), y3.to_numpy(), X["f3"].to_numpy() * 2 + 1


def _pipes():
    X, y, y3, yr = frame()
    Xs = X * 0.05  # small scales: large inputs overflow to inf inside the scalers
    imp = SimpleImputer
    out = [
        (make_pipeline(imp(), StandardScaler(), LogisticRegression()).fit(X, y), "clf"),
        (make_pipeline(imp(), StandardScaler(), LogisticRegression()).fit(X, y3), "clf"),
        (make_pipeline(imp(strategy="median"), StandardScaler(), LogisticRegression()).fit(Xs, y), "clf"),
        (make_pipeline(imp(), *[c() for c in (StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler)] * 2,
                       LogisticRegression()).fit(X, y), "clf"),
        (make_pipeline(imp(strategy="constant", fill_value=2.5), MinMaxScaler(clip=True),
                       MaxAbsScaler(clip=True), SGDClassifier(loss="log_loss", random_state=0)).fit(X, y3), "clf"),
        (make_pipeline(imp(), RobustScaler(), PCA(3, whiten=True), LogisticRegression()).fit(X, y3), "clf"),
        (make_pipeline(imp(strategy="most_frequent"), StandardScaler(with_mean=False),
                       SGDClassifier(random_state=0)).fit(X, y), "clf"),
        (make_pipeline(imp(), StandardScaler(), Ridge()).fit(X, yr), "reg"),
        (make_pipeline(imp(), MinMaxScaler(), SGDRegressor(random_state=0)).fit(X, yr), "reg"),
        (make_pipeline(imp(), LinearRegression()).fit(X, np.column_stack([yr, -yr])), "reg"),
    ]
    return out


PIPES = None


def pipes():
    global PIPES
    if PIPES is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            PIPES = [(p, kind, build_plan(p)) for p, kind in _pipes()]
    return PIPES


def methods(pipe, kind):
    if kind == "reg":
        return ["predict"]
    out = ["predict", "decision_function"]
    if hasattr(pipe, "predict_proba"):
        out += ["predict_proba", "predict_log_proba"]
    return out


def outcome(fn, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow warnings: the same on both sides
        try:
            return "ok", fn(X)
        except ValueError as exc:
            return "error", str(exc)


def assert_same(pipe, plan, X, method):
    kind, want = outcome(getattr(pipe, method), X)
    got_kind, got = outcome(lambda Z: plan.run(Z, method), X)
    assert got_kind == kind, (method, X, got)
    if kind == "ok":
        assert identical(got, want), (method, X.to_numpy(), got, want)
    else:
        assert got == want
    row = plan._rows[method]
    assert row, "the plan has a row path"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        direct = row(X, True)
    if kind == "error":
        assert direct is _UNHANDLED  # bad rows always go through scikit-learn
    elif direct is not _UNHANDLED:
        assert identical(direct, want)
    return direct is not _UNHANDLED


VALUES = st.one_of(st.floats(-1e3, 1e3), st.just(float("nan")), st.sampled_from(
    [float("inf"), float("-inf"), 1e308, -1.7e308, 5e-324, -0.0, 0.0, 1e200]))


@settings(max_examples=150, deadline=None)
@given(st.lists(VALUES, min_size=5, max_size=5), st.integers(0, 9))
def test_one_row_identical_or_same_error(values, which):
    pipe, kind, plan = pipes()[which]
    X = pd.DataFrame([values], columns=COLUMNS)
    for method in methods(pipe, kind):
        assert_same(pipe, plan, X, method)


def stage_by_stage(functions, X):
    """Each stage's output, in order, then ("error", stage index, message) if a stage raises."""
    outs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for i, fn in enumerate(functions):
            try:
                X = fn(X)
            except ValueError as exc:
                return outs, ("error", i, str(exc))
            outs.append(X)
    return outs, None


@settings(max_examples=120, deadline=None)
@given(st.lists(VALUES, min_size=5, max_size=5), st.integers(0, 9))
def test_stage_by_stage_row_path_identical_to_each_sklearn_step(values, which):
    # What the execution loop runs when plug-ins are attached: every stage on its own row kernel.
    # Each stage's output is scikit-learn's step output bit for bit, and a bad value is refused by
    # the very stage scikit-learn refuses it at, with its message.
    pipe, kind, plan = pipes()[which]
    X = pd.DataFrame([values], columns=COLUMNS)
    for method in methods(pipe, kind):
        steps = [est for _, est in pipe.steps]
        sk = [lambda Z, e=e: e.transform(Z) for e in steps[:-1]] + \
            [lambda Z: getattr(steps[-1], method)(Z)]
        want, want_error = stage_by_stage(sk, X)
        got, got_error = stage_by_stage(plan.stage_functions(method, len(steps)), X)
        assert got_error == want_error, (method, values)
        assert len(got) == len(want) and all(identical(g, w) for g, w in zip(got, want)), \
            (method, values, got, want)
        # the same stages run at once for observer plug-ins: the same outputs, or None (the loop
        # then runs them one by one, which raises scikit-learn's error)
        timed = plan.timed_row(method, len(steps))
        if timed is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                done = timed(X)
            if want_error is not None:
                assert done is None, (method, values)
            elif done is not None:
                outputs, stamps = done
                assert len(stamps) == len(outputs) + 1 and stamps == sorted(stamps)
                # the rows between stages become scikit-learn's (1, n) arrays when asked for
                outputs = [row_output(o) for o in outputs[:-1]] + outputs[-1:]
                assert all(identical(g, w) for g, w in zip(outputs, want)), (method, values)


def test_stage_functions_take_the_row_path_and_are_compiled_once():
    X, *_ = frame(seed=2)
    pipe, kind, plan = pipes()[0]
    functions = plan.stage_functions("predict_proba", 3)
    assert plan.stage_functions("predict_proba", 3) is functions
    assert plan.stage_functions("predict_proba", 2) is None  # stages do not map one to one
    row = X.iloc[[4]]
    calls = []
    plan_steps = plan._steps("predict_proba")
    for step in plan_steps:  # the general path must not be needed for a plain row
        step.checked = lambda Z, step=step: calls.append(step.name)
    try:
        outs, error = stage_by_stage(functions, row)
    finally:
        for step in plan_steps:
            del step.checked
    assert error is None and not calls
    assert identical(outs[-1], pipe.predict_proba(row))
    assert [o.shape for o in outs] == [(1, 5), (1, 5), (1, 2)]


def test_rows_of_the_training_data_take_the_row_path():
    X, *_ = frame(seed=1)
    for pipe, kind, plan in pipes():
        for i in range(0, 40, 3):
            for method in methods(pipe, kind):
                assert assert_same(pipe, plan, X.iloc[[i]], method) or X.iloc[i].isna().any() \
                    and not isinstance(pipe[0], SimpleImputer)


def test_frame_layouts():
    X, y, *_ = frame()
    pipe = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(X, y)
    direct = make_pipeline(LogisticRegression()).fit(X.fillna(0), y)  # the model reads the frame itself
    plan, plan_direct = build_plan(pipe), build_plan(direct)
    view = X.iloc[3:4]  # a view: the block's row stride is the frame's
    mixed = X.iloc[[2]].assign(f4=np.int64(3))  # float64 and int64 blocks
    ints = (X.iloc[[2]].fillna(0) * 10).astype(np.int64)
    reordered = X.iloc[[5]][COLUMNS[::-1]][COLUMNS]
    f32 = X.iloc[[2]].astype(np.float32)
    nullable = X.iloc[[2]].astype("Float64")
    for data, used in [(view, True), (mixed, True), (ints, True), (reordered, True), (f32, False),
                       (nullable, False)]:
        for method in ("predict", "predict_proba"):
            assert assert_same(pipe, plan, data, method) is used, (data.dtypes, method)
    for data in (X.fillna(0).iloc[3:4], X.fillna(0).iloc[[7]]):
        assert assert_same(direct, plan_direct, data, "decision_function")
    for extra in (X.iloc[[2]].assign(g=1), X.iloc[[2]].assign(g=1.0)):  # one column too many
        for check_input in (True, False):
            with pytest.raises(ValueError, match="feature names should match"):
                plan.run(extra, "predict", check_input=check_input)
    ints_direct = (X.iloc[[2]].fillna(0) * 10).astype(np.int64)
    assert not assert_same(direct, plan_direct, ints_direct, "decision_function")  # stays int for sklearn


def test_wide_rows_run_numpy_operations():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 80)), columns=[f"c{i}" for i in range(80)])
    X.iloc[::7, 3] = np.nan
    y = (rng.random(200) > 0.5).astype(int)
    pipe = make_pipeline(SimpleImputer(), StandardScaler(), MinMaxScaler(), LogisticRegression()).fit(X, y)
    plan = build_plan(pipe)
    for i in (0, 7, 8):
        for method in ("predict", "predict_proba"):
            assert assert_same(pipe, plan, X.iloc[[i]], method)
    bad = X.iloc[[1]].copy()
    bad.iloc[0, 5] = np.inf
    assert not assert_same(pipe, plan, bad, "predict")


def test_checks_are_placed_once():
    X, y, *_ = frame()
    three = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(X, y)
    plan = build_plan(three)
    ops = compile_row([s.kernel.row for s in plan._steps("predict")], 5)
    assert len(ops) == 2  # one pass (fill, subtract, divide, then the finite check), the model
    # one check in the pass, which is written twice: on an array (fn) and on a list (fn.on_list)
    assert "_list_finite(vs)" in ops[0].source and ops[0].source.count("_list_") == 2
    clip = make_pipeline(StandardScaler(), MinMaxScaler(clip=True), LogisticRegression()).fit(X.fillna(0), y)
    rows = [s.kernel.row for s in build_plan(clip)._steps("predict")]
    # the scaler's own check cannot wait: clip turns +-inf into bounds
    assert "_list_without_inf(vs)" in compile_row(rows, 5)[0].source
    wide = compile_row(rows, 100)  # numpy operations: check, scale, check, clip, check, model
    assert [op for op in wide if op in (row_finite, row_without_inf)] == \
        [row_without_inf, row_without_inf, row_finite] and len(wide) == 6


def test_unified_pipeline_one_row_entry():
    X, y, *_ = frame()
    sk = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(X, y)
    pipe = UnifiedMLPipeline(features=[("impute", SimpleImputer()), ("scale", StandardScaler())],
                             model=LogisticRegression()).fit(X, y)
    for i in range(12):
        for method in ("predict", "predict_proba", "decision_function"):
            assert identical(getattr(pipe, method)(X.iloc[[i]]), getattr(sk, method)(X.iloc[[i]]))
    assert pipe.inference_pipeline.fast_plan_._rows["predict"]
    shuffled = X.iloc[[4]][COLUMNS[::-1]]  # the entry reorders the columns
    assert identical(pipe.predict_proba(shuffled), sk.predict_proba(X.iloc[[4]]))
    with pytest.raises(InputSchemaError, match=re.escape("missing column(s) ['f2']")):
        pipe.predict(X.iloc[[0]].drop(columns="f2"))
    with pytest.raises(InputSchemaError, match="column 'f1' had dtype float64 at fit time but has dtype"):
        pipe.predict(X.iloc[[0]].astype({"f1": str}))
    bad = X.iloc[[0]].copy()
    bad.iloc[0, 0] = np.inf
    with pytest.raises(ValueError, match="Input X contains infinity") as info:
        pipe.predict(bad)
    assert any("stage 'impute'" in note for note in info.value.__notes__)


def test_same_names_on_arrow_and_other_indexes():
    from ml_toolbox._schema import same_names

    refs = {}
    arrow = getattr(getattr(pd.Index(["a"]), "_values", None), "_pa_array", None) is not None
    assert same_names(pd.Index(["a", "b"]), ["a", "b"], refs)
    assert bool(refs) == arrow  # an Arrow copy is kept where pandas holds the names in Arrow
    assert not same_names(pd.Index(["b", "a"]), ["a", "b"], refs)
    assert not same_names(pd.Index(["a"]), ["a", "b"], refs)
    assert same_names(pd.Index([0, 1]), [0, 1], {})
    assert not same_names(pd.Index(["0", "1"]), [0, 1], {})  # names that Arrow cannot hold as strings
    assert same_names(pd.Index(["a", "b"], dtype=object), ["a", "b"], {})
    if arrow:  # names held in another Arrow type: a copy of that type too, each tried in turn
        import pyarrow as pa

        other = pd.Index(pd.arrays.ArrowExtensionArray(pa.array(["a", "b"], type=pa.string())))
        assert same_names(other, ["a", "b"], refs) and len(refs) == 2
        assert same_names(pd.Index(["a", "b"]), ["a", "b"], refs)
        assert not same_names(pd.Index(["a", "c"]), ["a", "b"], refs) and len(refs) == 2


def test_row_functions_are_rebuilt_after_pickling():
    import pickle

    X, y, *_ = frame()
    pipe = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(X, y)
    plan = build_plan(pipe)
    plan.run(X.iloc[[0]], "predict")
    assert plan._rows["predict"]
    again = pickle.loads(pickle.dumps(plan))
    assert again._rows == {}
    assert assert_same(pipe, again, X.iloc[[9]], "predict_proba")


def test_string_labels_and_no_intercept():
    X, y, y3, _ = frame()
    names = np.array(["no", "yes"], dtype=object)[y]
    pipes = [make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(X, names),
             make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(fit_intercept=False)).fit(X, y3),
             make_pipeline(SimpleImputer(), SGDClassifier(loss="log_loss", fit_intercept=False,
                                                          random_state=0)).fit(X, y)]
    for pipe in pipes:
        plan = build_plan(pipe)
        for i in range(0, 30, 3):
            for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
                assert assert_same(pipe, plan, X.iloc[[i]], method)


def test_binary_score_is_sklearns_matrix_product_bit_for_bit():
    # The row kernel of a binary linear classifier takes x.dot(coef_.T[:, 0]) for sklearn's
    # (1, n) @ coef_.T: the same BLAS dot on the same strides. Mixed magnitudes make any other
    # summation order show (a plain left-to-right sum differs on about 40% of these).
    rng = np.random.default_rng(7)
    for n in [1, 2, 3, 5, 8, 13, 16, 31, 64, 65, 200]:
        for order in ("C", "F"):
            coef = np.asarray(rng.normal(size=(1, n)) * 10.0 ** rng.integers(-8, 9, size=n),
                              order=order)
            column = coef.T[:, 0]
            for _ in range(50):
                block = rng.normal(size=(n, 3)) * 10.0 ** rng.integers(-8, 9, size=(n, 1))
                for x in (block[:, 1], block[:, 1].copy()):  # a strided view, a vector
                    assert float(x.dot(column)) == (x.reshape(1, -1) @ coef.T).item()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_classifier_rows_identical(dtype):
    # fitted on float32 data, a classifier keeps float32 coef_: the row kernel multiplies as sklearn
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(400, 12)) * 10.0 ** rng.integers(-4, 5, size=12),
                     columns=[f"c{i}" for i in range(12)])
    y = (X["c0"] * X["c1"] > 0).astype(int).to_numpy()
    Xfit = X.astype(dtype)
    for pipe in (make_pipeline(LogisticRegression(max_iter=50)).fit(Xfit, y),  # the row as given
                 make_pipeline(StandardScaler(), SGDClassifier(random_state=0)).fit(Xfit, y)):
        if not (isinstance(pipe[-1], LogisticRegression) and sklearn_older("1.9")):
            assert pipe[-1].coef_.dtype == dtype  # (LogisticRegression kept float64 before 1.9)
        plan = build_plan(pipe)
        for i in range(0, 400, 7):
            for method in methods(pipe, "clf"):
                assert assert_same(pipe, plan, X.iloc[[i]], method)  # on the row path, identical
