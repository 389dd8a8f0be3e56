"""The versioned model store: versions, verified loads, signed aliases, gates, promote and rollback.

:class:`PipelinePersistence` keeps fitted pipelines, models, pipeline states and configurations as
numbered versions with manifests; aliases (``production``, ``staging``) point at versions, with a
signed, chained history. What a load deserialises is exactly what it verified (see the "Security
model" section of docs/persistence.md). The store reaches its files through a small backend
(:class:`StoreBackend`): :class:`LocalBackend`, a directory on the local file system, or
:class:`FsspecBackend`, object storage (``PipelinePersistence("s3://bucket/prefix")``).

``ml_toolbox.persistence`` re-exports the same names.
"""

import inspect

from ml_toolbox.store._store import (
    AliasedVersionError,
    FormatRefusedError,
    GateError,
    IntegrityError,
    InvalidNameError,
    MalformedFileError,
    PersistenceError,
    PipelinePersistence,
    SignatureError,
    StoreError,
    VersionMismatchWarning,
    VersionNotFoundError,
)
from ml_toolbox.store.errors import PluginSaveError
from ml_toolbox.store.backend import LocalBackend, Staging, StoreBackend
from ml_toolbox.store.objstore import FsspecBackend
from ml_toolbox.store.gates import Gate


class _ConstructorSignature:
    """``cls.__signature__``: the parameters of ``cls.__init__`` (without ``self``).

    ``PipelinePersistence.__new__`` takes ``*args, **kwargs`` (it picks the object-storage class for a
    URL), and ``inspect.signature`` -- hence ``help()`` and numpydoc -- would show that catch-all.
    """

    def __get__(self, obj, cls):
        if obj is not None:
            raise AttributeError("__signature__")
        init = inspect.signature(cls.__init__)
        return init.replace(parameters=list(init.parameters.values())[1:])


PipelinePersistence.__signature__ = _ConstructorSignature()  # type: ignore[attr-defined]

__all__ = [
    "PipelinePersistence",
    "Gate",
    "StoreBackend",
    "LocalBackend",
    "Staging",
    "FsspecBackend",
    "PersistenceError",
    "StoreError",
    "InvalidNameError",
    "VersionNotFoundError",
    "IntegrityError",
    "SignatureError",
    "GateError",
    "AliasedVersionError",
    "FormatRefusedError",
    "MalformedFileError",
    "PluginSaveError",
    "VersionMismatchWarning",
]
