"""scikit-learn's compositions read through the cached parameter names (issue 19's small save).

``ml_toolbox.base._fast_params`` gives what ``get_params`` gives, with each class's parameter names
computed once; for scikit-learn's ``Pipeline``, ``FeatureUnion`` and ``ColumnTransformer`` it mirrors
``_BaseComposition._get_params``. These tests hold it to scikit-learn's own answer (same keys, same
values, same order) over random nested compositions, odd step lists and subclasses that override
``get_params``, and the store's manifest ``params`` to the ones computed the slow way.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from ml_toolbox.base import _fast_params


def _leaf(draw):
    kind = draw(st.sampled_from(["scaler", "imputer", "pca", "function", "onehot", "passthrough", "drop"]))
    return {"scaler": lambda: StandardScaler(with_mean=draw(st.booleans())),
            "imputer": lambda: SimpleImputer(strategy=draw(st.sampled_from(["mean", "median"]))),
            "pca": lambda: PCA(n_components=draw(st.integers(1, 3))),
            "function": lambda: FunctionTransformer(np.log1p),
            "onehot": lambda: OneHotEncoder(handle_unknown="ignore"),
            "passthrough": lambda: "passthrough",
            "drop": lambda: "drop"}[kind]()


@st.composite
def compositions(draw, depth=0):
    kind = draw(st.sampled_from(["pipeline", "union", "column"] if depth < 2 else ["leaf"]))
    if kind == "leaf":
        return _leaf(draw)
    n = draw(st.integers(1, 3))
    parts = [draw(compositions(depth + 1)) if draw(st.booleans()) else _leaf(draw) for _ in range(n)]
    if kind == "pipeline":
        steps = [(f"p{i}", part) for i, part in enumerate(parts)]
        if draw(st.booleans()):
            steps.append(("model", LogisticRegression(C=draw(st.floats(0.1, 10)))))
        return Pipeline(steps, verbose=draw(st.booleans()))
    if kind == "union":
        return FeatureUnion([(f"u{i}", part) for i, part in enumerate(parts)],
                            n_jobs=draw(st.sampled_from([None, 2])))
    return ColumnTransformer([(f"c{i}", part, [i]) for i, part in enumerate(parts)],
                             remainder=draw(st.sampled_from(["drop", "passthrough", StandardScaler()])))


def _same(got, expected):
    assert list(got) == list(expected)
    for key in expected:
        assert got[key] is expected[key], key


@settings(max_examples=80, deadline=None)
@given(compositions(), st.booleans())
def test_compositions_give_exactly_scikit_learns_get_params(obj, deep):
    _same(_fast_params(obj, deep), obj.get_params(deep=deep))
    _same(_fast_params(obj), obj.get_params())


@pytest.mark.parametrize("steps", [[], "not a list", [("only-a-name",)], [("a", StandardScaler(), "extra")], None])
def test_malformed_step_lists_answer_as_scikit_learn_does(steps):
    """get_params is called by set_params and repr on invalid objects too: the same answer or error."""
    for make in (lambda s: Pipeline.__new__(Pipeline), lambda s: FeatureUnion.__new__(FeatureUnion)):
        obj = make(steps)
        attr = "steps" if isinstance(obj, Pipeline) else "transformer_list"
        for name in obj._get_param_names():
            setattr(obj, name, None)
        setattr(obj, attr, steps)
        try:
            expected = obj.get_params(deep=True)
        except Exception as error:  # noqa: BLE001 - whatever scikit-learn raises, ours must too
            with pytest.raises(type(error)):
                _fast_params(obj, True)
        else:
            _same(_fast_params(obj, True), expected)


def test_a_subclass_with_its_own_get_params_keeps_it():
    class Logged(Pipeline):
        def get_params(self, deep=True):
            return {"logged": True, **super().get_params(deep=deep)}

    class Mixed(Pipeline):
        def _get_params(self, attr, deep=True):
            return {"mixed": attr}

    for cls in (Logged, Mixed):
        obj = cls([("s", StandardScaler())])
        assert _fast_params(obj, True) == obj.get_params(deep=True)


def test_a_classes_constructor_replaced_later_is_read_again():
    class Grows(Pipeline):
        pass

    obj = Grows([("s", StandardScaler())])
    _same(_fast_params(obj, True), obj.get_params(deep=True))

    def __init__(self, steps, *, memory=None, verbose=False, transform_input=None, extra=1):
        Pipeline.__init__(self, steps, memory=memory, verbose=verbose, transform_input=transform_input)
        self.extra = extra

    Grows.__init__ = __init__
    obj = Grows([("s", StandardScaler())], extra=3)
    assert _fast_params(obj, True)["extra"] == 3
    _same(_fast_params(obj, True), obj.get_params(deep=True))


@settings(max_examples=25, deadline=None)
@given(compositions())
def test_the_store_records_the_same_params_as_the_slow_way(obj):
    import ml_toolbox.base as base
    from ml_toolbox.store._store import _params_of

    fast = _params_of(obj)
    saved = base._fast_params
    base._fast_params = lambda o, deep=None: o.get_params() if deep is None else o.get_params(deep=deep)
    try:
        slow = _params_of(obj)
    finally:
        base._fast_params = saved
    assert fast == slow
