"""The seed's import path: ``from ml_toolbox.pipelines import UnifiedMLPipeline`` and friends.

Every name here is the very object ``ml_toolbox`` exports.
"""

import ml_toolbox as _ml_toolbox

__all__ = list(_ml_toolbox.__all__)


def __getattr__(name):
    if name in _ml_toolbox._EXPORTS:
        return getattr(_ml_toolbox, name)
    raise AttributeError(f"module 'ml_toolbox.pipelines' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
