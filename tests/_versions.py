"""What the oldest supported versions cannot have (``make test-oldest``), as skip markers.

The fast path's numpy kernels repeat scikit-learn's floating-point operations in its order, which
changed between versions; they are checked bit for bit against scikit-learn >= 1.8, and on older
versions every stage runs its own method (same numbers, scikit-learn's speed). Tests that assert
stages run *on kernels* (paths, row functions, explain tables) carry ``needs_kernels``; every
other test, the fast path's equality with scikit-learn included, runs on every version.
"""

import pytest
import sklearn

from ml_toolbox._kernels import _KERNEL_VERSION_OK

needs_kernels = pytest.mark.skipif(
    not _KERNEL_VERSION_OK,
    reason=f"asserts the fast path's kernels, checked against scikit-learn >= 1.8 (this is "
           f"{sklearn.__version__}, which runs every stage's own method)")


def sklearn_older(version):
    """Whether the installed scikit-learn is older than ``version`` (``"1.9"``)."""
    from sklearn.utils.fixes import parse_version

    return parse_version(sklearn.__version__).release < parse_version(version).release


def pandas_older(version):
    """Whether the installed pandas is older than ``version`` (``"3"``)."""
    import pandas
    from sklearn.utils.fixes import parse_version

    return parse_version(pandas.__version__).release < parse_version(version).release
