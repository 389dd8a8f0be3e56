"""Versioned persistence (kept importable here): the store lives in :mod:`ml_toolbox.store`.

Every public name of :mod:`ml_toolbox.store` is importable from this module as before
(``from ml_toolbox.persistence import PipelinePersistence, GateError``).
"""

from ml_toolbox.store import (  # noqa: F401 - this module is the store's older address
    AliasedVersionError,
    FormatRefusedError,
    FsspecBackend,
    Gate,
    GateError,
    IntegrityError,
    InvalidNameError,
    MalformedFileError,
    LocalBackend,
    PersistenceError,
    PipelinePersistence,
    PluginSaveError,
    SignatureError,
    Staging,
    StoreBackend,
    StoreError,
    VersionMismatchWarning,
    VersionNotFoundError,
    __all__,
)
from ml_toolbox.store import _store as _impl


def __getattr__(name):  # the store module's other names (environment, json_safe, STORE_MARKER, ...)
    try:
        return getattr(_impl, name)
    except AttributeError:
        raise AttributeError(f"module 'ml_toolbox.persistence' has no attribute {name!r}") from None
