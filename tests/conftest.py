"""What the oldest supported versions cannot have (``make test-oldest``), skipped with the reason.

The fast path's numpy kernels repeat scikit-learn's floating-point operations in its order, which
changed between versions; they are checked bit for bit against scikit-learn >= 1.8, and on older
versions every stage runs its own method (same numbers, scikit-learn's speed). The tests below
assert that stages run *on kernels* (paths, row functions, explain tables), so they cannot pass
there; every other test, the fast path's equality with scikit-learn included, still runs.
"""

import pytest
import sklearn

from ml_toolbox._kernels import _KERNEL_VERSION_OK

_NEED_KERNELS = {
    "test_fast.py": {
        "test_classifiers_identical_on_sklearn_datasets",
        "test_regressors_identical_on_sklearn_datasets",
        "test_column_transformer_with_missing_and_categories",
        "test_fallback_stage_and_explain",
        "test_unified_pipeline_predicts_like_sklearn_and_can_switch_off",
        "test_plugins_see_every_stage_while_the_stages_run_on_kernels",
    },
    "test_fast_row.py": "all",
    "test_display.py": {
        "test_fast_fact_names_stages_off_the_kernels",
        "test_inference_pipeline_displays",
    },
}


def pytest_collection_modifyitems(config, items):
    if _KERNEL_VERSION_OK:
        return
    skip = pytest.mark.skip(reason=f"asserts the fast path's kernels, checked against "
                                   f"scikit-learn >= 1.8 (this is {sklearn.__version__}, which "
                                   f"runs every stage's own method)")
    for item in items:
        names = _NEED_KERNELS.get(item.path.name)
        if names == "all" or (names and item.originalname in names):
            item.add_marker(skip)
