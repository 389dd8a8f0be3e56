"""The compiled tree engine (private; needs numba: ``pip install ml_toolbox[trees]``).

One loop walks the flat arrays of :class:`ml_toolbox._tree_kernels.Forest`, row after row, tree
after tree, with scikit-learn's rules (NaN by ``nan_right``, ``x <= threshold`` left, categorical
nodes by their 256-entry table), and adds the leaves' values into the output in scikit-learn's order:
tree after tree, from the initial value. numba compiles without ``fastmath``, so every addition and
comparison is the IEEE operation scikit-learn's C code performs (a float32 input is compared as the
float64 it converts to, as in C). Importing this module raises ImportError without numba.
"""

import numba
import numpy as np

__all__ = ["engine"]


@numba.njit(cache=True, nogil=True)
def _walk(X, feature, threshold, left, right, nan_right, roots, values, column, cat_slot,
          cat_right, init, has_init, out):  # pragma: no cover - compiled (run through engine)
    n = X.shape[0]
    T = roots.shape[0]
    K = values.shape[1]
    n_cols = out.shape[1]
    has_cat = cat_slot.shape[0] > 0
    # trees outside, rows inside: one tree's nodes stay in the cache for the whole batch (as in
    # scikit-learn's tree-by-tree loop); each output still receives the trees in their order
    if has_init:
        for i in range(n):
            for c in range(n_cols):
                out[i, c] = init[c]
    for t in range(T):
        root = roots[t]
        c = column[t]
        first = not has_init and (t < n_cols if K == 1 else t == 0)
        for i in range(n):
            node = root
            while left[node] != node:  # a leaf's children are the leaf itself
                v = X[i, feature[node]]
                if v != v:
                    go_right = nan_right[node]
                elif has_cat and cat_slot[node] >= 0:
                    if v < 0:
                        go_right = nan_right[node]
                    else:
                        go_right = cat_right[np.uint32(cat_slot[node]), np.uint32(v)]
                else:
                    go_right = not (v <= threshold[node])
                node = right[node] if go_right else left[node]
            if K == 1:
                if first:
                    out[i, c] = values[node, 0]
                else:
                    out[i, c] += values[node, 0]
            else:
                for k in range(K):
                    if first:
                        out[i, k] = values[node, k]
                    else:
                        out[i, k] += values[node, k]


def engine(forest):
    """``raw(X, init, large=None) -> (n, K)`` for a :class:`~ml_toolbox._tree_kernels.Forest`."""
    K = forest.values.shape[1]
    n_cols = K if K > 1 else forest.n_columns
    empty_cat = np.zeros(0, dtype=np.intp)
    cat_slot = forest.cat_slot if forest.cat_slot is not None else empty_cat
    cat_right = forest.cat_right if forest.cat_right is not None else np.zeros((0, 256), dtype=bool)
    # uint32 node ids and features: a smaller footprint in the cache for the walk's random reads,
    # and unsigned indices need no wraparound test for negative values
    u32 = np.uint32
    args = (forest.feature.astype(u32), forest.threshold, forest.left.astype(u32),
            forest.right.astype(u32), forest.nan_right, forest.roots.astype(u32), forest.values,
            forest.column.astype(u32), cat_slot.astype(np.int32), cat_right)
    no_init = np.zeros(n_cols)

    def raw(X, init, large=None):
        out = np.empty((X.shape[0], n_cols))
        has_init = init is not None
        # one compiled specialization per dtype: C-contiguous float32 (tree_ models) or float64
        _walk(np.ascontiguousarray(X), *args, init if has_init else no_init, has_init, out)
        return out

    return raw
