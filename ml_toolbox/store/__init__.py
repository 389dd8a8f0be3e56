"""The versioned model store: versions, verified loads, signed aliases, gates, promote and rollback.

:class:`PipelinePersistence` keeps fitted pipelines, models, pipeline states and configurations as
numbered versions with manifests; aliases (``production``, ``staging``) point at versions, with a
signed, chained history. What a load deserialises is exactly what it verified (see the "Security
model" section of docs/persistence.md). The store reaches its files through a small backend
(:class:`StoreBackend`): :class:`LocalBackend`, a directory on the local file system, or
:class:`FsspecBackend`, object storage (``PipelinePersistence("s3://bucket/prefix")``).

``ml_toolbox.persistence`` re-exports the same names.
"""

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
from ml_toolbox.store.backend import LocalBackend, StoreBackend
from ml_toolbox.store.objstore import FsspecBackend
from ml_toolbox.store.gates import Gate

__all__ = [
    "PipelinePersistence",
    "Gate",
    "StoreBackend",
    "LocalBackend",
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
    "VersionMismatchWarning",
]
