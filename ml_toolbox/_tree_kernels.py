"""Kernels for fitted tree ensembles (private; :func:`ml_toolbox._kernels.make_kernel` calls
:func:`make_tree_kernel`).

Covered: ``DecisionTree{Classifier,Regressor}``, ``RandomForest*``, ``ExtraTrees*``,
``GradientBoosting*`` and ``HistGradientBoosting*`` (single output), for ``predict``,
``predict_proba``, ``predict_log_proba`` and ``decision_function`` where the estimator has them.

Every kernel repeats scikit-learn 1.9's arithmetic exactly:

- ``tree_``-based models (trees, forests, gradient boosting) compare the input *cast to float32*
  (``check_array(dtype=np.float32)``) with the float64 thresholds, send NaN where
  ``missing_go_to_left`` says, and refuse a value that becomes infinite in float32;
- histogram gradient boosting compares float64 input with ``num_threshold``, routes NaN by
  ``missing_go_to_left``, and a categorical node by its bitset (unknown or negative categories go
  where missing values go); categorical columns are first encoded as the model's own
  ``OrdinalEncoder`` encodes them;
- the trees' outputs are added in scikit-learn's order (tree by tree, starting from zero, the
  forest's baseline or the boosting's initial raw prediction), with ``np.cumsum`` (strictly
  sequential, unlike ``np.sum``'s pairwise summation), then finished by the same numpy calls
  (``/= n_estimators``, ``argmax``, ``np.log``, the loss's own ``predict_proba`` and link).

All trees' nodes live in one set of flat arrays (:class:`Forest`). The numpy kernel advances every
tree of every row one level per step (leaves point at themselves), so a row costs a few numpy calls
per level of the deepest tree, whatever the number of trees. When numba is installed (the
``ml_toolbox[trees]`` extra), a compiled loop walks the same arrays instead, tree after tree, adding
in the same order. For large batches without numba, each tree runs scikit-learn's own compiled
traversal (``tree_.apply`` / the predictor's ``predict``) on the checked input; the trees of
``tree_`` models do so on blocks of rows in parallel threads (each row's sum keeps its order).
"""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ml_toolbox._kernels import Decline, NoKernel, RowKernel, _check_width, finite_or_decline

__all__ = ["Forest", "make_tree_kernel", "numba_available", "TREE_ENGINE_ENV"]

#: Environment variable choosing the traversal: ``"auto"`` (numba if installed, default), ``"numpy"``.
TREE_ENGINE_ENV = "ML_TOOLBOX_TREE_ENGINE"

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_BATCH = 256  # from this many rows on, the numpy engine lets scikit-learn's compiled loops traverse
# one row: every node's decision at once when n_nodes <= _ALL_NODES * depth (a numpy call on n
# nodes costs about as much as _ALL_NODES times fewer calls of the level by level walk)
_ALL_NODES = 2000
_ROWS_PER_THREAD = 4096  # a large batch is cut into row blocks of at least this many rows
_MAX_THREADS = None  # the row blocks' threads: None, as many as scikit-learn's OpenMP would use


# --------------------------------------------------------------------------------------------------
# the flat layout


class Forest:
    """All nodes of an ensemble's trees in flat arrays (node ids are global).

    Attributes
    ----------
    feature : ndarray of intp (n_nodes,)
        The feature a node compares (0 at leaves).
    threshold : ndarray of float64 (n_nodes,)
        ``x <= threshold`` goes left.
    children : ndarray of intp (2 * n_nodes,)
        ``children[2 * node]`` the left child, ``children[2 * node + 1]`` the right one; a leaf's
        children are the leaf itself, so advancing a finished tree leaves it where it is.
    nan_right : ndarray of bool (n_nodes,)
        Where a NaN goes (``not missing_go_to_left``).
    is_leaf : ndarray of bool (n_nodes,)
    roots : ndarray of intp (n_trees,)
    depth : int
        Levels of the deepest tree (steps that bring every row to its leaves).
    values : ndarray of float64 (n_nodes, k)
        What a leaf adds to the output; ``k`` is the number of classes of a forest classifier's
        ``predict_proba``, 1 for a tree that adds one number to one output column.
    column : ndarray of intp (n_trees,)
        The output column of each tree (boosting with several classes); trees of one column are
        summed in their order.
    cat_slot : ndarray of intp (n_nodes,) or None
        For categorical nodes (histogram gradient boosting), the row of ``cat_right``; -1 elsewhere.
    cat_right : ndarray of bool (n_categorical_nodes, 256) or None
        Whether category ``c`` goes right at that node (unknown categories go where NaN goes).
    """

    def __init__(self, feature, threshold, left, right, nan_right, is_leaf, roots, depth, values,
                 column, cat_slot=None, cat_right=None):
        n = feature.shape[0]
        ids = np.arange(n)
        left = np.where(is_leaf, ids, left).astype(np.intp)
        right = np.where(is_leaf, ids, right).astype(np.intp)
        self.feature = np.where(is_leaf, 0, feature).astype(np.intp)
        self.threshold = np.ascontiguousarray(threshold, dtype=np.float64)
        self.children = np.ascontiguousarray(np.stack([left, right], axis=1).reshape(-1))
        self.left, self.right = left, right
        self.nan_right = np.ascontiguousarray(nan_right, dtype=bool)
        self.is_leaf = np.ascontiguousarray(is_leaf, dtype=bool)
        self.roots = np.ascontiguousarray(roots, dtype=np.intp)
        self.depth = int(depth)
        self.values = np.ascontiguousarray(values, dtype=np.float64)
        self.column = np.ascontiguousarray(column, dtype=np.intp)
        self.cat_slot = cat_slot
        self.cat_right = cat_right
        self.n_columns = int(self.column.max()) + 1 if self.column.size else 1
        self.n_trees = self.roots.shape[0]
        self._ids = ids

    @property
    def n_nodes(self):
        return self.feature.shape[0]

    # -- the numpy engine
    def leaves(self, X):
        """The leaf each tree reaches for each row of ``X`` (already checked and cast): ``(n, T)``."""
        n = X.shape[0]
        has_nan = bool(np.isnan(X).any())
        if n == 1 and self.n_nodes <= _ALL_NODES * max(1, self.depth):
            # a small ensemble: every node's decision for this row at once (a few numpy calls on
            # arrays of n_nodes), then one lookup per level
            step = self._decide(self._ids, X[0][self.feature], has_nan, self.right, self.left)
            node = self.roots
            for level in range(self.depth):
                node = step[node]
                if level & 3 == 3 and self.is_leaf[node].all():
                    break
            return node.reshape(1, -1)
        # all trees of all rows, one level per step
        if n == 1:
            x = X[0]
            node = self.roots.copy()
            values = lambda node: x[self.feature[node]]  # noqa: E731
        else:
            node = np.repeat(self.roots.reshape(1, -1), n, axis=0)
            rows = np.arange(n).reshape(-1, 1)
            values = lambda node: X[rows, self.feature[node]]  # noqa: E731
        for level in range(self.depth):
            node = self._decide(node, values(node), has_nan)
            if level & 3 == 3 and self.is_leaf[node].all():
                break
        return node.reshape(1, -1) if n == 1 else node

    def _decide(self, node, v, has_nan, right_of=None, left_of=None):
        """The next node after ``node`` for the values ``v`` it compares (``right_of``/``left_of``:
        the next node of every node at once, given ``node`` is all nodes in order)."""
        right = v > self.threshold[node] if right_of is None else v > self.threshold
        if has_nan:
            nan = np.isnan(v)
            right |= nan & (self.nan_right[node] if right_of is None else self.nan_right)
        if self.cat_slot is not None:
            self._categorical(node, v, right)
        if right_of is not None:
            return np.where(right, right_of, left_of)
        return self.children[2 * node + right]

    def _categorical(self, node, v, right):
        slot = self.cat_slot[node]
        at = slot >= 0
        if not at.any():
            return
        vc = v[at]
        missing = ~(vc >= 0)  # NaN or a negative value: where missing values go
        code = np.where(missing, 0, vc).astype(np.intp)  # (uint8) truncation of 0 <= v < 256
        right[at] = np.where(missing, self.nan_right[node[at]], self.cat_right[slot[at], code])

    def nodes_visited(self, X):
        """The number of nodes (leaves included) each row of ``X`` visits across all trees."""
        n = X.shape[0]
        node = np.repeat(self.roots.reshape(1, -1), n, axis=0)
        rows = np.arange(n).reshape(-1, 1)
        count = np.zeros(n, dtype=np.intp)
        for _ in range(self.depth + 1):
            count += (~self.is_leaf[node]).sum(axis=1)
            node = self._decide(node, X[rows, self.feature[node]], True)
        return count + self.n_trees

    def gather(self, leaves):
        """``(n, S, k)``: each tree's leaf values, trees of one column consecutive along S."""
        vals = self.values[leaves]  # (n, T, k)
        if self.n_columns > 1:  # boosting: tree t adds to column t % K
            n, T = leaves.shape
            vals = vals.reshape(n, T // self.n_columns, self.n_columns)
        return vals


def _tree_by_tree(forest, apply, X, init):
    """``init`` plus each tree's leaf values (``apply[t](X)``: tree t's local leaf ids), tree by
    tree as scikit-learn adds them (``init`` None: a single tree's values).

    Large inputs are cut into row blocks, one per thread scikit-learn's OpenMP would use
    (``OMP_NUM_THREADS`` and ``threadpoolctl`` limits respected). Every row still receives its
    trees' values one after the other in the same order, so the sums are the same bits; only
    different rows run at the same time (``tree_.apply`` and numpy's loops release the GIL).
    """
    bounds = np.append(forest.roots, forest.n_nodes)
    local = [forest.values[a:b] for a, b in zip(bounds[:-1], bounds[1:])]  # each tree's own rows
    if init is None:
        return local[0][apply[0](X)]
    out = np.empty((X.shape[0], init.shape[0]))
    out[:] = init
    if forest.values.shape[1] > 1:  # a forest classifier: each tree adds its class fractions
        def add(rows):
            Xr, outr = X[rows], out[rows]
            for values, fn in zip(local, apply):  # np.take: scikit-learn's own gather, faster
                outr += values.take(fn(Xr), axis=0, mode="clip")
    else:
        def add(rows):
            Xr, outr = X[rows], out[rows]
            for values, fn, c in zip(local, apply, forest.column):
                outr[:, c] += values[:, 0].take(fn(Xr), mode="clip")
    _in_row_blocks(add, X.shape[0])
    return out


def _in_row_blocks(add, n):
    """``add(slice)`` over row blocks that together cover ``range(n)``, on up to as many threads
    as scikit-learn's OpenMP loops would use."""
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    n_threads = min(_MAX_THREADS or _openmp_effective_n_threads(), n // _ROWS_PER_THREAD)
    if n_threads <= 1:
        add(slice(0, n))
        return
    edges = np.linspace(0, n, n_threads + 1).astype(int)
    blocks = [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]
    with ThreadPoolExecutor(n_threads, thread_name_prefix="ml_toolbox-trees") as pool:
        for done in [pool.submit(add, block) for block in blocks]:
            done.result()


def ordered_sum(vals, init):
    """``init + vals[:, 0] + vals[:, 1] + ...`` added one term after the other, as scikit-learn's
    ``out += prediction`` loop over trees does (``init`` None: the first term itself)."""
    n, S, K = vals.shape
    if init is None:
        acc = np.cumsum(vals, axis=1)
    else:
        terms = np.empty((n, S + 1, K))
        terms[:, 0] = init
        terms[:, 1:] = vals
        acc = np.cumsum(terms, axis=1, out=terms)
    return acc[:, -1]


# --------------------------------------------------------------------------------------------------
# building the flat arrays


def _depth_of(left, right):
    """Depth (levels of internal nodes on the longest path) of a tree from its child arrays."""
    depth = np.zeros(left.shape[0], dtype=np.intp)
    order = [0]
    best = 0
    for node in order:  # breadth first: parents before children
        lft = left[node]
        if lft >= 0:
            d = depth[node] + 1
            depth[lft] = depth[right[node]] = d
            best = max(best, d)
            order.append(lft)
            order.append(right[node])
    return best


def _forest_of_trees(trees, leaf_values, columns):
    """Flat arrays of sklearn ``Tree`` objects; ``leaf_values[i]`` is tree i's (n_nodes, k) output."""
    feats, thrs, lefts, rights, nanr, leafs, roots, vals = [], [], [], [], [], [], [], []
    offset, depth = 0, 0
    for tree, value in zip(trees, leaf_values):
        left, right = tree.children_left, tree.children_right
        leaf = left < 0
        feats.append(tree.feature)
        thrs.append(tree.threshold)
        lefts.append(np.where(leaf, 0, left + offset))
        rights.append(np.where(leaf, 0, right + offset))
        nanr.append(tree.missing_go_to_left == 0)
        leafs.append(leaf)
        roots.append(offset)
        vals.append(value)
        offset += tree.node_count
        depth = max(depth, int(tree.max_depth))
    return Forest(np.concatenate(feats), np.concatenate(thrs), np.concatenate(lefts),
                  np.concatenate(rights), np.concatenate(nanr), np.concatenate(leafs),
                  np.array(roots), depth, np.concatenate(vals), columns)


def _forest_of_predictors(predictors, known_bitsets, f_idx_map):
    """Flat arrays of histogram gradient boosting's ``TreePredictor`` objects (all iterations)."""
    feats, thrs, lefts, rights, nanr, leafs, roots, vals, cols = [], [], [], [], [], [], [], [], []
    cat_slots, cat_rows = [], []
    offset, depth, n_slots = 0, 0, 0
    codes = np.arange(256)
    for iteration in predictors:
        for k, pred in enumerate(iteration):
            nodes = pred.nodes
            leaf = nodes["is_leaf"].astype(bool)
            left, right = nodes["left"].astype(np.intp), nodes["right"].astype(np.intp)
            feats.append(nodes["feature_idx"].astype(np.intp))
            thrs.append(nodes["num_threshold"])
            lefts.append(np.where(leaf, 0, left + offset))
            rights.append(np.where(leaf, 0, right + offset))
            nan_right = nodes["missing_go_to_left"] == 0
            nanr.append(nan_right)
            leafs.append(leaf)
            roots.append(offset)
            vals.append(nodes["value"].reshape(-1, 1))
            cols.append(k)
            slot = np.full(leaf.shape[0], -1, dtype=np.intp)
            for i in np.flatnonzero(nodes["is_categorical"].astype(bool) & ~leaf):
                in_left = _in_bitset(pred.raw_left_cat_bitsets[nodes["bitset_idx"][i]], codes)
                f = int(nodes["feature_idx"][i])
                known = _in_bitset(known_bitsets[f_idx_map[f]], codes)
                # sklearn: left if in the left bitset; else right if a known category; else missing
                cat_rows.append(np.where(in_left, False, np.where(known, True, nan_right[i])))
                slot[i] = n_slots
                n_slots += 1
            cat_slots.append(slot)
            offset += leaf.shape[0]
            depth = max(depth, _depth_of(np.where(leaf, -1, left), right))
    cat_slot = cat_right = None
    if n_slots:
        cat_slot = np.concatenate(cat_slots)
        cat_right = np.array(cat_rows, dtype=bool).reshape(n_slots, 256)
    return Forest(np.concatenate(feats), np.concatenate(thrs), np.concatenate(lefts),
                  np.concatenate(rights), np.concatenate(nanr), np.concatenate(leafs),
                  np.array(roots), depth, np.concatenate(vals), np.array(cols), cat_slot, cat_right)


def _in_bitset(bitset, codes):
    """Membership of ``codes`` (0..255) in a 256-bit bitset of eight uint32 words."""
    return ((bitset[codes >> 5] >> (codes & 31).astype(np.uint32)) & 1).astype(bool)


# --------------------------------------------------------------------------------------------------
# engines: the numpy kernel, the optional numba one, scikit-learn's own loops for large batches


def numba_available():
    """Whether the compiled engine can be used (numba importable, not switched off)."""
    if os.environ.get(TREE_ENGINE_ENV, "auto") == "numpy":
        return False
    try:
        from ml_toolbox import _tree_numba  # noqa: F401
    except ImportError:
        return False
    return True


def _engine(forest):
    """``raw(X, init) -> (n, K)``: the trees' outputs of checked ``X`` added in order."""
    if numba_available():
        from ml_toolbox import _tree_numba

        return _tree_numba.engine(forest), "numba"

    def raw(X, init, large=None):
        if large is not None and X.shape[0] >= _BATCH:
            return large(X, init)
        return ordered_sum(forest.gather(forest.leaves(X)), init)

    return raw, "numpy"


# --------------------------------------------------------------------------------------------------
# input checks, as the estimators' own validate_data does them


def _as_float32(X, allow_nan):
    """``check_array(X, dtype=np.float32, ensure_all_finite=...)`` of a numeric array, or Decline."""
    if X.dtype.kind not in "fiub" or X.dtype.itemsize > 8:
        raise Decline(f"dtype {X.dtype}")
    X32 = X if X.dtype == _F32 else X.astype(np.float32)
    finite_or_decline(X32, allow_nan)
    return X32


def _as_float64(X):
    """``check_array(X, dtype=[np.float64], ensure_all_finite=False)`` of a numeric array."""
    if X.dtype == _F64:
        return X
    if X.dtype.kind not in "fiub" or X.dtype.itemsize > 8:
        raise Decline(f"dtype {X.dtype}")
    return X.astype(np.float64)


def _allows_nan(est):
    return bool(est.__sklearn_tags__().input_tags.allow_nan)


# --------------------------------------------------------------------------------------------------
# per model family


def _tree_leaf_values(tree, classifier):
    value = tree.value  # (n_nodes, n_outputs, max_n_classes)
    if classifier:
        return value[:, 0, :]  # tree_.predict(X) reshaped: predict_proba's rows
    return value[:, 0, :1]


def _forest_kind(est):
    from sklearn import ensemble, tree

    kinds = {
        tree.DecisionTreeClassifier: ("tree", True), tree.DecisionTreeRegressor: ("tree", False),
        tree.ExtraTreeClassifier: ("tree", True), tree.ExtraTreeRegressor: ("tree", False),
        ensemble.RandomForestClassifier: ("forest", True),
        ensemble.RandomForestRegressor: ("forest", False),
        ensemble.ExtraTreesClassifier: ("forest", True),
        ensemble.ExtraTreesRegressor: ("forest", False),
        ensemble.GradientBoostingClassifier: ("gb", True),
        ensemble.GradientBoostingRegressor: ("gb", False),
        ensemble.HistGradientBoostingClassifier: ("hgb", True),
        ensemble.HistGradientBoostingRegressor: ("hgb", False),
    }
    return kinds.get(type(est))


def covers(est):
    """Whether ``type(est)`` is one of the tree models this module handles (any configuration)."""
    return _forest_kind(est) is not None


def make_tree_kernel(est, method):
    """Return ``kernel(X)`` (with ``kernel.row``) for a fitted tree model, or raise NoKernel."""
    found = _forest_kind(est)
    if found is None:
        raise NoKernel(f"no kernel for {type(est).__name__}")
    kind, classifier = found
    if method not in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        raise NoKernel(f"method {method!r}")
    if not hasattr(est, method):
        raise NoKernel(f"{type(est).__name__} has no {method}")
    build = {"tree": _tree_model, "forest": _tree_model, "gb": _gradient_boosting,
             "hgb": _hist_gradient_boosting}[kind]
    kernel = build(est, method, kind, classifier)
    kernel.reason = f"{kernel.engine} tree kernel for {type(est).__name__}.{method} " \
        f"({kernel.forest.n_trees} trees, {kernel.forest.n_nodes} nodes)"
    return kernel


def _finish_classifier(est, method, proba_of):
    """predict / predict_proba / predict_log_proba from ``proba_of(X)`` as forests and trees do."""
    classes = est.classes_
    if method == "predict_proba":
        return proba_of
    if method == "predict_log_proba":
        return lambda X: np.log(proba_of(X))
    if method == "predict":
        return lambda X: classes.take(np.argmax(proba_of(X), axis=1), axis=0)
    raise NoKernel(f"method {method!r}")


def _kernel_with_row(fn, checked, needs, forest, engine, floats):
    """``kernel(X)`` = fn(checked(X)); its row form takes a 1-D float64 row."""

    def kernel(X):
        return fn(checked(X))

    def row(x):
        return fn(checked(x.reshape(1, -1)))

    kernel.row = RowKernel(row, needs, floats=floats)
    kernel.forest = forest
    kernel.engine = engine
    return kernel


def _tree_model(est, method, kind, classifier):
    """Decision trees, random forests and extra trees."""
    if est.n_outputs_ != 1:
        raise NoKernel("multi-output model")
    trees = [est] if kind == "tree" else list(est.estimators_)
    tree_objs = [t.tree_ for t in trees]
    forest = _forest_of_trees(tree_objs, [_tree_leaf_values(t, classifier) for t in tree_objs],
                              np.zeros(len(trees), dtype=np.intp))
    raw, engine = _engine(forest)
    n = est.n_features_in_
    allow_nan = _allows_nan(trees[0])
    n_trees = len(trees)

    def checked(X):
        _check_width(X, n)
        return _as_float32(X, allow_nan)

    def large(X32, init):  # sklearn's own compiled traversal, tree by tree, the same sums
        return _tree_by_tree(forest, [t.apply for t in tree_objs], X32, init)

    if kind == "tree":
        def out(X32):  # tree_.predict: the leaf's value itself, no sum
            return raw(X32, None, large)
    else:
        zero = np.zeros(forest.values.shape[1])

        def out(X32):  # all_proba = zeros; all_proba += tree's output; proba /= n_estimators
            total = raw(X32, zero, large)
            total /= n_trees
            return total

    if classifier:
        fn = _finish_classifier(est, method, out)
    else:
        if method != "predict":
            raise NoKernel(f"method {method!r}")

        def fn(X32):
            return out(X32)[:, 0].copy() if kind == "tree" else out(X32).reshape(-1)

    return _kernel_with_row(fn, checked, "noinf" if allow_nan else "finite", forest, engine,
                            floats=False)


def _gradient_boosting(est, method, kind, classifier):
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble._gb import _init_raw_predictions

    if est.init_ != "zero" and type(est.init_) not in (DummyClassifier, DummyRegressor):
        raise NoKernel(f"init={type(est.init_).__name__} (its prediction depends on the input)")
    stages = est.estimators_
    S, K = stages.shape
    tree_objs = [stages[i, k].tree_ for i in range(S) for k in range(K)]
    lr = est.learning_rate
    # out[i, k] += scale * value[node]: the product is made once per node, in float64 as in C
    forest = _forest_of_trees(tree_objs, [lr * t.value[:, 0, :1] for t in tree_objs],
                              np.tile(np.arange(K), S))
    raw, engine = _engine(forest)
    n = est.n_features_in_
    if est.init_ == "zero":
        init = np.zeros(K)
    else:  # a Dummy estimator's prediction does not depend on the row
        init = _init_raw_predictions(np.zeros((1, n), dtype=np.float32), est.init_, est._loss,
                                     classifier)[0].astype(np.float64)

    def checked(X):
        _check_width(X, n)
        return _as_float32(X, False)

    def large(X32, init_row):
        return _tree_by_tree(forest, [t.apply for t in tree_objs], X32, init_row)

    def raw_predict(X32):
        return raw(X32, init, large)

    if not classifier:
        if method != "predict":
            raise NoKernel(f"method {method!r}")
        fn = lambda X32: raw_predict(X32).ravel()  # noqa: E731
    else:
        classes = est.classes_
        loss = est._loss

        def decision(X32):
            r = raw_predict(X32)
            return r.ravel() if r.shape[1] == 1 else r

        if method == "decision_function":
            fn = decision
        elif method == "predict":
            def fn(X32):
                d = decision(X32)
                encoded = (d >= 0).astype(int) if d.ndim == 1 else np.argmax(d, axis=1)
                return classes[encoded]
        elif method == "predict_proba":
            fn = lambda X32: loss.predict_proba(decision(X32))  # noqa: E731
        else:
            fn = lambda X32: np.log(loss.predict_proba(decision(X32)))  # noqa: E731
    return _kernel_with_row(fn, checked, "finite", forest, engine, floats=False)


def _hgb_encoder(est):
    """``X -> X`` as the model's ``_preprocessor`` (categorical columns ordinal-encoded, first)."""
    pre = est._preprocessor
    if pre is None:
        return None
    encoder = pre.named_transformers_["encoder"]
    cat_idx = np.flatnonzero(est.is_categorical_)
    num_idx = np.flatnonzero(~est.is_categorical_)
    tables = []
    for cats in encoder.categories_:
        if cats.dtype.kind not in "iuf":
            raise NoKernel("categorical features with non-numeric categories")
        cats = np.asarray(cats, dtype=np.float64)
        tables.append(cats[~np.isnan(cats)])
    order = np.concatenate([cat_idx, num_idx])

    def encode(X):
        out = np.empty(X.shape)
        out[:, len(cat_idx):] = X[:, num_idx]
        for j, (col, known) in enumerate(zip(cat_idx, tables)):
            v = X[:, col]
            if np.isinf(v).any():
                raise Decline("infinite value in a categorical column")
            at = np.searchsorted(known, v)  # OrdinalEncoder: the index among the sorted categories
            ok = at < known.shape[0]
            ok[ok] = known[at[ok]] == v[ok]
            out[:, j] = np.where(ok, at, np.nan)  # unknown and missing: NaN
        return out

    encode.order = order
    return encode


def _hist_gradient_boosting(est, method, kind, classifier):
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    if getattr(est, "_in_fit", False):
        raise NoKernel("model is being fitted")
    known_bitsets, f_idx_map = est._bin_mapper.make_known_categories_bitsets()
    forest = _forest_of_predictors(est._predictors, known_bitsets, f_idx_map)
    raw, engine = _engine(forest)
    encode = _hgb_encoder(est)
    n = est.n_features_in_
    K = est.n_trees_per_iteration_
    init = np.zeros((1, K), dtype=est._baseline_prediction.dtype) + est._baseline_prediction
    init = init[0].astype(np.float64)
    predictors = [p for iteration in est._predictors for p in iteration]

    def checked(X):
        _check_width(X, n)
        X = _as_float64(X)
        return encode(X) if encode is not None else X

    def large(X, init_row):  # raw_predictions[:, k] += predictor.predict(X), in order
        n_threads = _openmp_effective_n_threads(None)
        out = np.empty((X.shape[0], K), order="F")
        out[:] = init_row
        for i, p in enumerate(predictors):
            out[:, i % K] += p.predict(X, known_bitsets, f_idx_map, n_threads)
        return out

    def raw_predict(X):
        return raw(X, init, large)

    loss = est._loss
    if not classifier:
        if method != "predict":
            raise NoKernel(f"method {method!r}")
        fn = lambda X: loss.link.inverse(raw_predict(X).ravel())  # noqa: E731
    else:
        classes = est.classes_
        if method == "decision_function":
            def fn(X):
                r = raw_predict(X)
                return r.ravel() if r.shape[1] == 1 else r
        elif method == "predict":
            def fn(X):
                r = raw_predict(X)
                encoded = (r.ravel() > 0).astype(int) if r.shape[1] == 1 else np.argmax(r, axis=1)
                return classes[encoded]
        elif method == "predict_proba":
            fn = lambda X: loss.predict_proba(raw_predict(X))  # noqa: E731
        else:
            raise NoKernel(f"method {method!r}")
    # ensure_all_finite=False: NaN and infinities are values; the row needs no check
    # (ensure_all_finite=False: an infinity is a value here; the row path's "noinf" check sends
    # such a row the stage-by-stage way, where this kernel takes it)
    return _kernel_with_row(fn, checked, "noinf", forest, engine, floats=True)
