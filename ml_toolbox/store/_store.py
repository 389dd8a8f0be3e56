"""Versioned persistence: a joblib-backed model store with versions, aliases, quality gates and rollback.

A store is a plain directory; no server runs. Each ``save`` writes a new numbered version holding the
artifact (joblib, or skops, or JSON for configurations) and a JSON manifest: sizes and digests of every
file, the library versions it was saved under, parameters, metrics, tags, input schema, parent version
and a message. Aliases (``production``, ``staging``, any name) point at versions; every move is
recorded with when, from which version to which, and why.

.. warning::
   A joblib artifact is a pickle: loading it can run arbitrary code. Load only from a store you trust,
   or sign it. The digests catch corruption and truncation; a signing key (``signing_key=`` or the
   environment variable ``ML_TOOLBOX_SIGNING_KEY``) makes loads refuse any version or alias history not
   signed with that key. ``allow_pickle=False`` never unpickles: save with ``format="skops"``.

Layout of a store::

    <storage_dir>/
        ml_toolbox_store.json      marks the directory as a store (format version; signed or not)
        .lock                      locked (flock) while a version number is reserved or an alias moves
        .cas.lock                  the local backend's compare-and-swap lock
        .tmp/                      staging directories of saves in progress (<token>-<id>)
        .locks/<token>             locked by the live store object whose staging directories bear it
        <name>/
            .kind                  what the name holds, written once (atomically)
            v000001/manifest.json  v000001/artifact.joblib
            v000002.deleted        tombstone: version numbers are never reused
            aliases.json           current aliases, their rollback stacks and the chained, signed history
"""

import contextlib
import datetime as _dt
import errno
import io
import json
import math
import numbers
import os
import pickle
import re
import shutil
import stat
import sys
import threading
import uuid
import warnings
import weakref
from pathlib import Path

from ml_toolbox.store._artifact import for_save, trusted_types
from ml_toolbox.store import _aliases
from ml_toolbox.store import _io as _store_io
from ml_toolbox.store import _verify
from ml_toolbox.store.backend import LocalBackend
from ml_toolbox.store.gates import fmt_number, parse_gates

__all__ = ["PipelinePersistence"]  # the package (ml_toolbox.store) exports the errors and the rest

STORE_MARKER = "ml_toolbox_store.json"
STORE_FORMAT = 1
SIGNING_KEY_ENV = "ML_TOOLBOX_SIGNING_KEY"
_ATTEMPTS = 200  # saves that lost the race for a number before giving up (object storage: each retries at once)
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")  # always fullmatch: "churn\n" is refused
_VERSION_DIR_RE = re.compile(r"^v(\d+)$")
_TOMBSTONE_RE = re.compile(r"^v(\d+)\.deleted$")
_FORMATS = {"joblib": "artifact.joblib", "skops": "artifact.skops", "json": "artifact.json"}
_KIND_GROUP = {"pipeline": "object", "model": "object", "object": "object", "state": "state", "config": "config"}


from ml_toolbox.store.errors import (  # noqa: E402 - the store's errors, one module of their own
    AliasedVersionError,
    FormatRefusedError,
    MalformedFileError,
    GateError,
    IntegrityError,
    InvalidNameError,
    PersistenceError,
    SignatureError,
    StoreError,
    VersionMismatchWarning,
    VersionNotFoundError,
)


# ---------------------------------------------------------------------------------------- helpers
def _utcnow():
    return _dt.datetime.now(_dt.timezone.utc)


def _iso(moment):
    return moment.astimezone(_dt.timezone.utc).isoformat(timespec="microseconds")


def _parse_iso(text):
    return _dt.datetime.fromisoformat(text)


_ENVIRONMENT = None


def environment():
    """The library versions recorded in (and compared against) every manifest."""
    global _ENVIRONMENT
    if _ENVIRONMENT is None:
        import ml_toolbox

        found = {"python": ".".join(map(str, sys.version_info[:3]))}
        for label, module, dist in (("scikit-learn", "sklearn", "scikit-learn"), ("numpy", "numpy", "numpy"),
                                    ("pandas", "pandas", "pandas"), ("joblib", "joblib", "joblib")):
            loaded = sys.modules.get(module)  # importing pandas just to read its version costs seconds
            found[label] = getattr(loaded, "__version__", None) or _dist_version(dist)
        found["ml_toolbox"] = ml_toolbox.__version__
        _ENVIRONMENT = found
    return dict(_ENVIRONMENT)


def _dist_version(dist):
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def json_safe(value, _depth=0):
    """A JSON-serialisable rendering of ``value``: primitives kept, containers walked, objects repr'd.

    Examples
    --------
    >>> json_safe({"C": 1.0, "steps": [("scale", None)], "nan": float("nan")})
    {'C': 1.0, 'steps': [['scale', None]], 'nan': 'nan'}
    """
    kind = type(value)
    if kind is str or kind is bool or kind is int or value is None:  # the common cases first
        return value
    if kind is float:
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else repr(value)
    if _depth < 8 and isinstance(value, dict):
        return {str(k): json_safe(v, _depth + 1) for k, v in value.items()}
    if _depth < 8 and isinstance(value, (list, tuple)):
        return [json_safe(v, _depth + 1) for v in value]
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return json_safe(value.item(), _depth + 1)
    text = repr(value)
    return text if len(text) <= 2000 else text[:1997] + "..."


def _flatten(mapping, prefix=""):
    out = {}
    if isinstance(mapping, dict):
        for key, value in mapping.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict) and value:
                out.update(_flatten(value, path))
            else:
                out[path] = value
    elif mapping is not None:
        out[prefix or "value"] = mapping
    return out


def _schema_of(obj):
    schema = obj.get("schema") if isinstance(obj, dict) else getattr(obj, "input_schema_", None)
    if schema is None:
        return None
    if hasattr(schema, "to_dict"):
        schema = schema.to_dict()
    return json_safe(schema)


_AS_IS = frozenset({str, bool, int, type(None)})  # parameter values JSON holds as they are


def _is_estimator(value):
    return hasattr(value, "get_params") and not isinstance(value, type)


def _params_of(obj):
    """The manifest's ``params``: ``get_params(deep=True)``, JSON-safe, nested estimators by class name.

    Each parameter is recorded under the name ``set_params`` takes (``model__C``), so ``diff`` names
    exactly what changed; an estimator is recorded as its class name, its parameters under its own
    key. A pipeline state's ``params`` (``state["params"]``) are recorded the same way.
    """
    if isinstance(obj, dict) and "params" in obj:
        params = obj["params"]
    else:
        get_params = getattr(obj, "get_params", None)
        if get_params is None:
            return {}
        from ml_toolbox.base import _fast_params  # here: the store's import stays light (the CLI)

        try:
            params = _fast_params(obj, deep=True)  # get_params(deep=True), parameter names cached
        except Exception:  # an object whose get_params needs fitting or arguments: record nothing
            return {}
    if not isinstance(params, dict):
        return json_safe(params)
    return _flat_params(params, "", {}, 0)


def _flat_params(params, prefix, out, depth):
    """Add ``params`` to ``out`` under ``prefix``: estimators as class names, their parameters after them.

    A nested estimator whose parameters its owner already lists (``model`` and ``model__C``, as
    scikit-learn's ``get_params(deep=True)`` does, steps included) is only named; one whose owner does
    not list them (a ``get_params(deep=False)``, or a step only held in a list) is expanded here, once.
    """
    others = []
    for key, value in params.items():  # most values are plain: kept as they are, in one pass
        if type(value) in _AS_IS:
            out[f"{prefix}{key}"] = value
        else:
            others.append((key, value))
    if not others:
        return out
    estimators = [value for _, value in others if _is_estimator(value)]
    listed = {id(value) for value in estimators}
    for key, value in others:
        path = f"{prefix}{key}"
        if id(value) in listed:
            out[path] = type(value).__name__
            children = f"{key}__"
            if not any(isinstance(k, str) and k.startswith(children) for k in params):
                _expand(value, path, out, depth)
        elif isinstance(value, (list, tuple)) and any(_is_estimator(v) or isinstance(v, tuple) for v in value):
            out[path] = [_param_item(item, path, listed, out, depth) for item in value]
        else:
            out[path] = json_safe(value)
    return out


def _param_item(item, path, listed, out, depth):
    """One entry of a list parameter (``steps``, ``features``, ``transformers``), JSON-safe."""
    if isinstance(item, tuple) and len(item) >= 2 and isinstance(item[0], str) and _is_estimator(item[1]):
        if id(item[1]) not in listed:
            _expand(item[1], f"{path}__{item[0]}", out, depth)
        return [item[0], type(item[1]).__name__, *(json_safe(v) for v in item[2:])]
    return json_safe(item)  # an unnamed estimator in a list: its repr


def _expand(estimator, path, out, depth):
    if depth >= 8:
        return
    try:
        nested = estimator.get_params(deep=True)
    except Exception:  # noqa: BLE001 - as for the top level: record the name only
        return
    if isinstance(nested, dict):
        _flat_params(nested, f"{path}__", out, depth + 1)


def _check_name(name, what="name"):
    if not isinstance(name, str):
        raise InvalidNameError(f"The {what} must be a string; got {name!r} of type {type(name).__name__}.")
    if not name or name in (".", "..") or "/" in name or "\\" in name or os.sep in name or not _NAME_RE.fullmatch(name):
        raise InvalidNameError(
            f"Invalid {what} {name!r}: use 1-128 letters, digits, '_', '-' or '.', starting with a letter, "
            "a digit or '_' (no path separators, not empty, not '..')."
        )
    return name


def _check_metrics(metrics):
    if metrics is None:
        return {}
    if not hasattr(metrics, "items"):
        raise TypeError(f"metrics must be a mapping of metric name to number; got {type(metrics).__name__}.")
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(
                f"Metric {key!r} must be a real number; got {value!r} of type {type(value).__name__}."
            )
        out[str(key)] = float(value) if not isinstance(value, numbers.Integral) else int(value)
    return out


def _check_tags(tags):
    if tags is None:
        return {}
    if isinstance(tags, str):
        return {tags: ""}
    if hasattr(tags, "items"):
        return {str(k): json_safe(v) for k, v in tags.items()}
    return {str(t): "" for t in tags}


def _parse_age(value):
    """``older_than`` as a timedelta: a timedelta, a number of days, or '30d' / '12h' / '45m' / '10s'."""
    if value is None or isinstance(value, _dt.timedelta):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return _dt.timedelta(days=float(value))
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhms])\s*", str(value))
    if match is None:
        raise ValueError(
            f"older_than={value!r} is not an age: give a timedelta, a number of days, or a string such as "
            "'30d', '12h', '45m', '10s'."
        )
    unit = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}[match[2]]
    return _dt.timedelta(**{unit: float(match[1])})


def _signing_key(signing_key):
    """The HMAC key as bytes, or None: ``signing_key``, else ``$ML_TOOLBOX_SIGNING_KEY``. An empty key is
    an error (it would silently turn signing off, over the environment variable too)."""
    if signing_key is None:
        signing_key = os.environ.get(SIGNING_KEY_ENV)
        if signing_key == "":
            raise ValueError(f"${SIGNING_KEY_ENV} is set but empty; unset it, or set a key.")
        source = f"${SIGNING_KEY_ENV}"
    else:
        source = "signing_key"
    if signing_key is None:
        return None
    if not isinstance(signing_key, (str, bytes)):
        raise TypeError(f"{source} must be a str or bytes; got {type(signing_key).__name__}.")
    if not signing_key:
        raise ValueError(f"{source}='' is empty: give a key (a str or bytes), or None for no signing.")
    return signing_key.encode() if isinstance(signing_key, str) else bytes(signing_key)


def _check_formats(formats, what):
    """``formats`` as a tuple of artifact formats ("joblib", "skops"), checked."""
    if isinstance(formats, str):
        formats = (formats,)
    formats = tuple(formats)
    unknown = [f for f in formats if f not in ("joblib", "skops", "json")]
    if unknown:
        raise ValueError(f"{what}={formats!r} names unknown formats {unknown}; choose among 'joblib', 'skops'.")
    return formats


# ------------------------------------------------------------------------------------------ store
class PipelinePersistence:
    """A versioned, verified store for fitted pipelines, models, pipeline states and configurations.

    Parameters
    ----------
    storage_dir : str or path-like, default="pipeline_storage"
        The store's directory. Created (with its parents) when missing; refused when it is a file or a
        non-empty directory that is not a store. An fsspec URL (``"s3://bucket/prefix"``) opens the store
        on object storage instead, which also takes ``storage_options=`` (passed to fsspec),
        ``single_writer=``, ``cache_dir=``, ``retries=`` and ``retry_timeout=``: see "Shared store on
        object storage" in docs/persistence.md.
    compress : int or (str, int), default=0
        The joblib compression for new artifacts (``0`` is fastest and allows ``mmap_mode`` loads; ``3`` or
        ``("lz4", 3)`` trade speed for size). Compressed artifacts cannot be memory-mapped.
    signing_key : str or bytes, optional
        HMAC-SHA256 key. When set (here or through ``ML_TOOLBOX_SIGNING_KEY``), every save and every
        alias move is signed, every load refuses an unsigned or wrongly signed version or alias history,
        and the store is marked as signed: store objects without the key then refuse to promote, roll
        back, delete or prune. An empty key is an error.
    durable : bool, default=False
        ``True`` fsyncs every file and directory of a new version before ``save`` returns, so the
        version survives a power cut or a kernel crash that follows at once (this costs a few
        fsyncs per save: milliseconds on most disks, and for a large artifact the wait for the disk to
        write it). Saves are atomic either way: a process killed at any moment leaves the whole version
        or none, since the version appears by one rename. With the default, a power cut within seconds
        of a save can leave that version damaged (or missing); a damaged version is refused at load by
        its size and digest checks, never loaded wrong. Whatever this setting, alias moves are always
        fsynced, and ``promote`` first fsyncs the version it points the alias at.
    digest : {"blake3", "sha256"}, default="blake3"
        The cryptographic digest recorded for every file of a new version, computed while it is
        written (BLAKE3 runs at several GB/s, on several threads for large blocks). Versions recorded
        with SHA-256 (or, by earlier releases, xxh3-128) are still verified.
    sha256 : bool, default=False
        Also record SHA-256 next to BLAKE3 (in a helper thread for large artifacts).
    allow_pickle : bool, default=True
        ``False`` refuses to save or load any pickle (joblib) artifact, whatever its manifest says: a
        skops version whose manifest was rewritten to ask for a pickle is refused, not run.
    formats : tuple of str, optional
        The artifact formats allowed (``("joblib", "skops")`` when None); ``("skops",)`` is the same
        policy as ``allow_pickle=False``. Configurations (JSON) are always allowed.
    clock : callable, optional
        Returns the current aware ``datetime``; inject one in tests (``created`` times, ``prune``).

    Attributes
    ----------
    path : pathlib.Path
        The store's directory.

    See Also
    --------
    UnifiedMLPipeline.save, UnifiedMLPipeline.load : The scikit-learn style entry points.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.linear_model import LogisticRegression
    >>> store = PipelinePersistence(tempfile.mkdtemp())
    >>> model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    >>> store.save(model, "churn", metrics={"accuracy": 0.91})
    1
    >>> store.promote("churn", 1, "production", gates={"accuracy": ">=0.9"})
    1
    >>> store.load("churn", "production").predict([[1.0]])
    array([1])
    """

    def __new__(cls, storage_dir="pipeline_storage", *args, **kwargs):
        if cls is PipelinePersistence and isinstance(storage_dir, str) and "://" in storage_dir:
            from ml_toolbox.store.objstore import is_url

            if is_url(storage_dir):  # s3://bucket/prefix and other fsspec URLs: the object-storage store
                from ml_toolbox.store._remote import ObjectStorePersistence

                return super().__new__(ObjectStorePersistence)
        return super().__new__(cls)

    def __init__(self, storage_dir="pipeline_storage", *, compress=0, signing_key=None, durable=False,
                 digest="blake3", sha256=False, allow_pickle=True, formats=None, clock=None):
        self.storage_dir = storage_dir
        self.compress = compress
        self.durable = durable
        self.digest = digest
        self.sha256 = sha256
        self.allow_pickle = allow_pickle
        self.formats = formats
        if digest not in _store_io.CRYPTOGRAPHIC:
            raise ValueError(f"digest={digest!r} is not one of {list(_store_io.CRYPTOGRAPHIC)} (the cryptographic "
                             "digest recorded for every file of a new version).")
        self._digests = (digest,) + (("sha256",) if sha256 and digest != "sha256" else ())
        self._allowed = set(_check_formats(formats if formats is not None else ("joblib", "skops"), "formats"))
        if not allow_pickle:
            self._allowed.discard("joblib")
        self._setup_location(storage_dir)
        self._kinds = {}  # name -> the kind its .kind marker records (immutable once written)
        self._owner = None  # (pid, token, lock path, inode, finalizer): see _staging_token
        self._owner_lock = threading.Lock()
        self._key = _signing_key(signing_key)
        self._clock = clock or _utcnow
        self._open()

    def _setup_location(self, storage_dir):
        """Where the store lives: its path, and the backend that reaches its files."""
        self.path = Path(os.fspath(storage_dir)).expanduser().absolute()
        self._root = str(self.path)
        self._backend = LocalBackend(self._root)
        self.cache_dir = None  # artifacts are read in place: nothing to cache

    # ------------------------------------------------------------------------------ construction
    @classmethod
    def from_location(cls, store_or_path, **kwargs):
        """Return ``store_or_path`` if it is a store, else open (or create) a store at that path.

        Parameters
        ----------
        store_or_path : PipelinePersistence, str or path-like
            A store, or where to open one (a directory or an fsspec URL).
        **kwargs
            Constructor parameters, for a path only.

        Returns
        -------
        PipelinePersistence
            The store.

        Raises
        ------
        TypeError
            When ``store_or_path`` is neither, or ``kwargs`` come with a store.
        """
        if isinstance(store_or_path, cls):
            if kwargs:
                raise TypeError(f"Options {sorted(kwargs)} apply only when opening a store from a path.")
            return store_or_path
        if isinstance(store_or_path, (str, os.PathLike)):
            return cls(store_or_path, **kwargs)
        raise TypeError(
            f"Expected a PipelinePersistence or a directory path; got {store_or_path!r} "
            f"of type {type(store_or_path).__name__}."
        )

    def _open(self):
        path = self.path
        if path.exists() and not path.is_dir():
            raise StoreError(f"The store path {str(path)!r} is a file, not a directory.")
        marker = path / STORE_MARKER
        if path.is_dir():
            if marker.is_file():
                self._mark_signed()
                return
            entries = [p for p in os.listdir(path) if not p.startswith(".")]
            if entries:
                shown = ", ".join(sorted(entries)[:5]) + (", ..." if len(entries) > 5 else "")
                raise StoreError(
                    f"{str(path)!r} is not an ml_toolbox store (no {STORE_MARKER}; it holds {shown}). "
                    "Give an empty or new directory."
                )
        else:
            parent = next((p for p in path.parents if p.exists()), None)
            if parent is not None and not parent.is_dir():
                raise StoreError(f"Cannot create the store at {str(path)!r}: {str(parent)!r} is a file.")
            if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
                raise StoreError(f"Cannot create the store at {str(path)!r}: {str(parent)!r} is not writable.")
        self._require_writable()
        path.mkdir(parents=True, exist_ok=True)
        (path / ".tmp").mkdir(exist_ok=True)
        self._backend.create(STORE_MARKER, _alias_bytes(
            {"format": "ml_toolbox.store", "format_version": STORE_FORMAT, "created": _iso(self._clock()),
             **({"signed": True} if self._key else {})}))
        self._mark_signed()

    def _mark_signed(self):
        """With a key, record in the store's marker that it is signed: from then on, store objects without
        the key refuse to move aliases or delete versions (best effort on a read-only store)."""
        if not self._key:
            return
        path = os.path.join(self._root, STORE_MARKER)
        data, tag = self._backend.read(STORE_MARKER)
        marker = _parse_json(data, path, dict)
        if marker.get("signed") is True:
            return
        marker["signed"] = True
        try:
            self._backend.compare_and_swap(STORE_MARKER, _alias_bytes(marker), tag)
        except StoreError:  # a read-only store: nobody can move its aliases anyway
            pass

    def _require_writable(self):
        if os.access(self._root, os.W_OK | os.X_OK):  # the usual case: one system call
            return
        target = self.path if self.path.exists() else next(p for p in self.path.parents if p.exists())
        if not os.access(target, os.W_OK | os.X_OK):
            raise StoreError(f"The store at {str(self.path)!r} is not writable.")

    def __getstate__(self):  # a copy (pickled, or in another process) takes its own staging lock
        state = dict(self.__dict__)
        state["_owner"] = None
        del state["_owner_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._owner_lock = threading.Lock()

    def __repr__(self):
        signed = ", signed" if self._key else ""
        return f"PipelinePersistence(storage_dir={str(self.path)!r}{signed})"

    # --------------------------------------------------------------------------------- low level
    @contextlib.contextmanager
    def _lock(self):
        """The store's lock, held while a version number is reserved or a ref moves. A store that cannot
        be written (a read-only file system, no permission) is a StoreError here, before anything changes."""
        path = os.path.join(self._root, ".lock")
        try:
            lock = _store_io.acquire_lock(path)
        except OSError as exc:
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"The store at {self._root!r} cannot be written ({path!r}: {exc.strerror or exc}); "
                             "saves, promotions, rollbacks, deletions and pruning need a writable store.") from exc
        try:
            yield lock
        finally:
            lock.release()

    def _tmp(self):
        """The staging directory's path (a str), created again if something removed it."""
        tmp = os.path.join(self._root, ".tmp")
        if not os.path.isdir(tmp):
            os.makedirs(tmp, exist_ok=True)
        return tmp

    def _version_dir(self, name, version):
        return self.path / name / f"v{version:06d}"

    def _staging_token(self):
        """The token naming this store object's staging directories (``.tmp/<token>-<id>``).

        While the object lives, it holds an ``flock`` on ``.locks/<token>``: a cleaner (any save, in any
        process) removes a staging directory only when it can take its owner's lock, i.e. when the
        process that made it is gone. One lock per store object (per process), not per save: a save
        then creates no lock file of its own.
        """
        owner = self._owner
        pid = os.getpid()
        if owner is not None and owner[0] == pid:
            try:
                if os.stat(owner[2]).st_ino == owner[3]:
                    return owner[1]
            except FileNotFoundError:  # someone removed .locks/: take a new lock
                pass
        with self._owner_lock:
            if owner is not None:
                owner[4]()  # release the old lock (in a forked child: leave the parent's alone)
            token = uuid.uuid4().hex[:16]
            locks = os.path.join(self._root, ".locks")
            if os.path.isdir(locks):
                self._clean_locks()  # once per store object: the locks of killed processes go
            else:
                os.makedirs(locks, exist_ok=True)
            path = os.path.join(locks, token)
            lock = _store_io.acquire_lock(path)
            finalizer = weakref.finalize(self, _store_io.release_owner_lock, path, lock, pid)
            self._owner = (pid, token, path, os.stat(path).st_ino, finalizer)
        return token

    def _vdir(self, name, version):  # the same, as a str: no pathlib on the save and load paths
        return os.path.join(self._root, name, f"v{version:06d}")

    def names(self):
        """Return every name in the store that holds at least one version.

        Returns
        -------
        list of str
            The names, sorted.
        """
        return [entry for entry in self._backend.list("")
                if entry != STORE_MARKER and _NAME_RE.fullmatch(entry) and self.list_versions(entry)]

    def list_versions(self, name):
        """Return the version numbers stored under a name.

        Parameters
        ----------
        name : str
            The name the versions are stored under.

        Returns
        -------
        list of int
            The numbers, ascending (empty when the name is unknown).
        """
        _check_name(name)
        return self._scan(name)[0]

    def _scan(self, name):
        """One listing of a name's directory: (existing versions sorted, every number ever used)."""
        return _version_numbers(self._backend.list(name))

    def _check_kind(self, name, kind, record=False):
        """A name holds one kind of thing (objects, pipeline states or configurations).

        The ``.kind`` marker is written once, before the name's first version, and never changes: this
        store object remembers what it read or wrote.
        """
        previous = self._kinds.get(name)
        if previous is None:
            key = f"{name}/.kind"
            try:
                previous = self._backend.read(key)[0].decode("utf-8", "replace").strip()
            except FileNotFoundError:
                previous = None
            marked = previous in _KIND_GROUP
            if not marked:  # none yet (or an empty one an older release left): the versions say
                stale = previous is not None
                versions = self.list_versions(name)
                previous = self.manifest(name, versions[-1]).get("kind", "pipeline") if versions else None
                if record:  # written atomically (temporary file, fsync, link): never seen empty
                    if stale:
                        self._backend.write(key, (previous or kind).encode(), durable=self.durable)
                    elif not self._backend.create(key, (previous or kind).encode(), durable=self.durable):
                        self._kinds.pop(name, None)
                        return self._check_kind(name, kind, record)  # another process wrote it first
                    previous = previous or kind
                    marked = True
            if marked:  # remembered once a marker holds it (never an empty or missing one)
                self._kinds[name] = previous
        if previous is not None and _KIND_GROUP.get(previous) != _KIND_GROUP[kind]:
            raise ValueError(f"{name!r} holds {previous} versions; save this {kind} under another name.")

    def _missing(self, name, version=None):
        names = self.names()
        if version is None or not self.list_versions(name):
            known = ", ".join(repr(n) for n in names) or "none: the store is empty"
            return VersionNotFoundError(f"No versions named {name!r} in the store {str(self.path)!r}. Names: {known}.")
        versions = ", ".join(map(str, self.list_versions(name)))
        aliases = self.aliases(name)
        alias_text = ", ".join(f"{a!r} -> {v}" for a, v in sorted(aliases.items())) or "none"
        return VersionNotFoundError(
            f"{name!r} has no version {version!r}. Versions: {versions}; aliases: {alias_text}."
        )

    def resolve(self, name, version=None):
        """Return the version number that ``version`` means under ``name``.

        Parameters
        ----------
        name : str
            The name the versions are stored under.
        version : int, str or None, default=None
            None for the latest version, a version number, or an alias such as ``"production"``.

        Returns
        -------
        int
            The version number.

        Raises
        ------
        VersionNotFoundError
            When the name has no versions, or no such version or alias; the message lists what
            exists.
        TypeError
            When ``version`` is neither None, an int nor a str.
        """
        return self._resolve(name, version)

    def _resolve(self, name, version, check=True):
        """:meth:`resolve`; ``check=False`` leaves a number's existence to the caller, who reads its
        manifest next anyway (one read of the manifest per load, not two: on object storage, a request)."""
        _check_name(name)
        if version is None or version == "latest":
            versions = self.list_versions(name)
            if not versions:
                raise self._missing(name)
            return versions[-1]
        if isinstance(version, str) and not version.isdigit():
            aliases = self.aliases(name)
            if version not in aliases:
                raise self._missing(name, version)
            return aliases[version]
        if isinstance(version, bool) or not isinstance(version, (numbers.Integral, str)):
            raise TypeError(f"version must be None, an int or an alias name; got {version!r}.")
        number = int(version)
        if check and not self._has_version(name, number):
            raise self._missing(name, number)
        return number

    def _has_version(self, name, number):
        return self._backend.exists(f"{name}/v{number:06d}/manifest.json")

    def manifest(self, name, version=None):
        """Return the manifest of one version, as written at save time.

        Parameters
        ----------
        name : str
            The name the versions are stored under.
        version : int, str or None, default=None
            None for the latest version, a version number, or an alias such as ``"production"``.

        Returns
        -------
        dict
            The manifest: kind, format, files with sizes and digests, params, metrics, tags...

        Raises
        ------
        VersionNotFoundError
            When there is no such version.
        MalformedFileError
            When the manifest is not valid JSON of the expected layout.
        """

        return self._read_manifest(name, self._resolve(name, version, check=False))

    def _manifest_data(self, name, number, for_load=False):
        """A version's manifest bytes (``for_load``: a load asks; object storage may answer from memory)."""
        return self._backend.read(f"{name}/v{number:06d}/manifest.json")[0]

    def _read_manifest(self, name, number, for_load=False):
        path = os.path.join(self._vdir(name, number), "manifest.json")
        try:
            data = self._manifest_data(name, number, for_load)
        except FileNotFoundError:
            raise self._missing(name, number) from None
        manifest = _parse_json(data, path, dict)
        for field, kind in (("files", dict), ("artifact", str)):
            if not isinstance(manifest.get(field), kind):
                raise MalformedFileError(f"The manifest {path!r} is malformed: its {field!r} is not a JSON "
                                         f"{'object' if kind is dict else 'string'}.", path)
        return manifest

    def manifests(self, name):
        """Return the manifests of every version under a name.

        Parameters
        ----------
        name : str
            The name the versions are stored under.

        Returns
        -------
        list of dict
            The manifests, oldest first.
        """
        return [self.manifest(name, v) for v in self.list_versions(name)]

    # -------------------------------------------------------------------------------------- save
    def save(self, obj, name, *, metrics=None, tags=None, message=None, parent=None, format="joblib",
             compress=None, kind="pipeline", plugins="drop", run_id=None):
        """Save ``obj`` as the next version of ``name`` and return the new version number.

        Parameters
        ----------
        obj : object
            Anything picklable (typically a fitted UnifiedMLPipeline or scikit-learn estimator). Its
            parameters (``get_params(deep=True)``, nested estimators by class name) and input schema
            (``input_schema_``) go to the manifest.
        name : str
            1-128 letters, digits, '_', '-', '.'; checked before anything is written.
        metrics : dict of str to number, optional
            Recorded in the manifest; quality gates read them.
        tags : dict or list of str, optional
            Labels recorded in the manifest (and signed with it).
        message : str, optional
            Free text (why this version exists).
        parent : int or str, optional
            The version this one derives from (a number or an alias). Default: the latest version of
            ``name`` at save time, if any.
        format : {"joblib", "skops"}, default="joblib"
            ``"skops"`` writes a skops.io artifact that loads without running code (see ``load``). A
            joblib artifact is always a file ``joblib.load`` reads; an object holding no numpy array of
            1 MiB or more (and under 64 MiB of arrays in all) is written by Python's C pickler, faster
            than joblib's, and the manifest's ``pickler`` says which wrote it.
        compress : int or (str, int), optional
            The joblib compression for this artifact (default: the store's ``compress``).
        kind : {"pipeline", "model", "state", "config"}, default="pipeline"
            What the version holds, recorded in the manifest; a name holds one kind only
            (:meth:`save_model`, :meth:`save_pipeline_state` and :meth:`save_config` set it).
        plugins : {"drop", "keep"}, default="drop"
            The plug-ins attached to a pipeline (monitor, debugger, retry handler) are left out of
            the artifact; attach them again after loading. ``"keep"`` saves them too (an error
            names a plug-in that cannot be written). See :func:`ml_toolbox.store._artifact.for_save`.
        run_id : str, optional
            The run this version comes from (see :mod:`ml_toolbox.runs`), recorded in the manifest as
            ``run_id`` (and signed with it): the lineage run <-> version.

        Returns
        -------
        int
            The new version number.
        """
        _check_name(name)
        metrics = _check_metrics(metrics)
        tags = _check_tags(tags)
        if format not in ("joblib", "skops", "json"):
            raise ValueError(f"format={format!r} is not supported; use 'joblib' or 'skops'.")
        if format != "json" and format not in self._allowed:
            raise FormatRefusedError(
                f"Refusing to save {name!r} with format={format!r}: this store's policy allows "
                f"{sorted(self._allowed) or ['json only']} (allow_pickle={self.allow_pickle!r}, "
                f"formats={self.formats!r}). Save with format='skops'.", None, sorted(self._allowed), format)
        if kind not in _KIND_GROUP:
            raise ValueError(f"kind={kind!r} is not one of {sorted(_KIND_GROUP)}.")
        if format != "json":  # the model, not the session's plug-ins (ml_toolbox.store._artifact)
            obj = for_save(obj, plugins, format)
        compress = self.compress if compress is None else compress
        if message is not None and not isinstance(message, str):
            raise TypeError(f"message must be a string; got {type(message).__name__}.")
        if parent is not None:
            parent = self.resolve(name, parent)
        self._check_kind(name, kind)
        self._require_writable()
        return self._write_version(obj, name, kind, format, compress, parent, metrics, tags, message, run_id)

    def _manifest_fields(self, obj, name, kind, format, compress, metrics, tags, message, run_id):
        """A new version's manifest, before its files, number, parent, date and signature."""
        return {
            "name": name,
            "kind": kind,
            "format": format,
            "compress": json_safe(compress) if format == "joblib" else 0,
            "artifact": _FORMATS[format],
            "object_type": f"{type(obj).__module__}.{type(obj).__qualname__}",
            "environment": environment(),
            "params": _params_of(obj) if kind != "config" else {},
            "metrics": metrics,
            "tags": tags,
            "schema": _schema_of(obj) if kind != "config" else None,
            "message": message,
            **({"run_id": str(run_id)} if run_id is not None else {}),
        }

    def _number_manifest(self, manifest, number, parent, existing):
        """Give ``manifest`` its version ``number``, parent, date and (with a key) signature."""
        manifest["version"] = number
        manifest["parent"] = parent if parent is not None else (existing[-1] if existing else None)
        manifest["created"] = _iso(self._clock())
        manifest.pop("signature", None)
        if self._key:
            manifest["signature"] = {"algorithm": "hmac-sha256", "value": _store_io.sign(self._key, manifest)}
        return manifest

    def _write_version(self, obj, name, kind, format, compress, parent, metrics, tags, message, run_id):
        """Write the artifact, then the manifest, as the next version of ``name``; return its number.

        One path for every backend, through its :class:`~ml_toolbox.store.backend.Staging`: the artifact
        is written (and hashed as it is written) into the staging, stored, and the version committed
        with its manifest under the next free number. On disk the store's lock keeps writers apart (the
        staging directory is renamed into place); on object storage the manifest's create-only write
        does, and a writer that loses the race numbers it again.
        """
        self._clean_staging()  # also makes .tmp again if something removed it
        artifact = _FORMATS[format]
        staging = None
        try:
            staging = self._backend.stage(name, self._staging_token(), durable=self.durable)
            files, pickler = self._write_artifact(obj, staging.target(artifact), format, compress)
            located = staging.store(artifact, files[self.digest])
            if self.cache_dir is not None:
                self._cache_put(files, staging.data(artifact))
            manifest = {**self._manifest_fields(obj, name, kind, format, compress, metrics, tags, message, run_id),
                        **({"pickler": pickler} if pickler else {}), "files": {artifact: files}, **located}
            with self._lock():
                self._check_kind(name, kind, record=True)
                for _ in range(_ATTEMPTS):
                    existing, used = self._scan(name)
                    number = max(used) + 1
                    self._number_manifest(manifest, number, parent, existing)
                    if staging.commit(f"{name}/v{number:06d}", _manifest_bytes(manifest)):
                        return number
            raise StoreError(f"Could not save a version of {name!r} in {self._root!r}: {_ATTEMPTS} other versions "
                             "were created while this save tried to number its own.")
        except OSError as exc:
            if isinstance(exc, PersistenceError) or exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            raise StoreError(f"The store at {self._root!r} cannot be written ({exc.filename!r}: {exc.strerror}); "
                             f"version of {name!r} not saved.") from exc
        finally:
            if staging is not None:
                staging.discard()

    def _write_artifact(self, obj, path, format, compress):
        """Write the artifact to ``path`` (a new file, or an in-memory file: what the staging's ``target``
        gives); return its size and digests, and the pickler that wrote it (joblib format)."""
        if format == "json":
            data = json.dumps(obj, indent=2, sort_keys=True).encode()
            return _store_io.write_bytes_hashed(path, data, fsync=self.durable, algorithms=self._digests), None
        if format == "skops":
            sio = _import_skops()
            return (_store_io.write_bytes_hashed(path, sio.dumps(obj), fsync=self.durable,
                                                 algorithms=self._digests), None)
        return _store_io.write_pickle_hashed(path, obj, compress, fsync=self.durable, algorithms=self._digests)

    def _clean_staging(self):
        """Remove what saves and deletes that died left in ``.tmp`` (and their lock files in ``.locks``).

        A staging directory ``<token>-<id>`` is removed when its owner's lock ``.locks/<token>`` can be
        taken (its process is gone); a directory without a token (a deletion's trash, or an older layout
        whose per-save ``<id>.lock`` is free or gone) likewise.
        """
        tmp = os.path.join(self._root, ".tmp")
        try:
            entries = os.listdir(tmp)
        except FileNotFoundError:
            os.makedirs(tmp, exist_ok=True)
            return []
        if not entries:
            return []
        removed = []
        present = set(entries)
        mine = self._owner[1] if self._owner is not None and self._owner[0] == os.getpid() else None
        locks = os.path.join(self._root, ".locks")
        for entry in entries:
            path = os.path.join(tmp, entry)
            if entry.endswith(".tmp"):  # an alias/marker file of a writer that died before its rename
                if not _pid_alive(entry.split(".")[-3]):
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        pass
                continue
            if entry.endswith(".lock"):  # older layout: an orphan per-save lock whose directory is gone
                if entry[:-5] not in present:
                    try:
                        with _store_io.file_lock(path, blocking=False):
                            if not os.path.exists(path[:-5]):
                                os.unlink(path)
                    except (_store_io.LockBusy, FileNotFoundError):
                        pass
                continue
            token, dash, _ = entry.partition("-")
            if dash and token != "deleted":
                if token == mine:
                    continue  # this object's own save in progress (another thread)
                lock_path = os.path.join(locks, token)
            else:
                lock_path = f"{path}.lock"
                if lock_path[len(tmp) + 1:] not in present and not os.path.exists(lock_path):
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(entry)
                    continue
            try:
                with _store_io.file_lock(lock_path, blocking=False):
                    shutil.rmtree(path, ignore_errors=True)
                    os.unlink(lock_path)
            except _store_io.LockBusy:  # a save in progress
                continue
            except FileNotFoundError:  # .locks/ itself is gone: the owner is too
                shutil.rmtree(path, ignore_errors=True)
            removed.append(entry)
        if removed:
            self._clean_locks()
        return removed

    def _clean_locks(self):
        """Unlink the staging locks in ``.locks`` whose store objects are gone (killed processes)."""
        locks = os.path.join(self._root, ".locks")
        try:
            entries = os.listdir(locks)
        except FileNotFoundError:
            return
        for entry in entries:
            path = os.path.join(locks, entry)
            try:
                with _store_io.file_lock(path, blocking=False):
                    os.unlink(path)
            except (_store_io.LockBusy, FileNotFoundError):
                pass

    # -------------------------------------------------------------------------------------- load
    def load(self, name, version=None, *, mmap_mode=None, trusted=None, verify="auto", allow_pickle=None,
             formats=None):
        """Verify and load one version of ``name``.

        The artifact is opened once (never through a symlink). A pickle stream is read once into
        private memory, its size and digest are checked there, and it is deserialised from that very
        memory; a memory-mapped load verifies the pickle ranges in private memory and the arrays in the
        mapping they are returned in. A mismatch raises :class:`IntegrityError` naming the file, the
        expected and the found value, and nothing is deserialised.

        Parameters
        ----------
        name : str
            The name the version is stored under.
        version : None, int or str
            None for the latest version, a version number, or an alias such as ``"production"`` (whose
            signed history is checked first when the store has a signing key).
        mmap_mode : {None, "r", "r+", "c"}
            Memory-map the numpy arrays of an uncompressed joblib artifact instead of reading them. An
            artifact whose manifest records ``pickler="pickle"`` (an object holding no array of 1 MiB or
            more, written by the C pickler) has its arrays inside the pickle: it loads in memory, as do
            artifacts saved before array ranges were recorded. A store on object storage loads in
            memory only and refuses ``mmap_mode``.
        trusted : list of str, optional
            For skops artifacts: the types you trust beyond skops' defaults and ml_toolbox's own
            (every ``ml_toolbox.*`` type, and ``numpy.dtype``, are trusted). Loading refuses any other
            type and lists them.
        verify : {"auto", "blake3", "sha256", "xxh3_128", "size"}
            Which digest to check. ``"auto"``: BLAKE3 where recorded (new versions), else SHA-256 with a
            signing key, else the fastest recorded. ``"xxh3_128"`` (not cryptographic) and ``"size"``
            (sizes only: an ``mmap_mode`` load of huge arrays from a store you trust) are refused when
            the store has a signing key.
        allow_pickle, formats : optional
            This load's format policy, on top of the store's (it can only narrow it): ``allow_pickle=False``
            refuses any version whose manifest asks for a pickle (joblib), ``formats=("skops",)`` any
            format not listed; configurations (JSON) are never refused.

        Returns
        -------
        object
            The object saved, as verified.

        Raises
        ------
        FormatRefusedError
            The manifest asks for a format the policy refuses; nothing was read.
        IntegrityError, SignatureError
            The artifact or its manifest failed a check; nothing was deserialised.
        ValueError
            When ``mmap_mode`` is not one of the above, or is given for a store on object storage.
        """
        if mmap_mode not in (None, "r", "r+", "c", "w+"):
            raise ValueError(f"mmap_mode={mmap_mode!r} is not one of None, 'r', 'r+', 'c'.")
        if mmap_mode is not None and self._backend.local_path(STORE_MARKER) is None:
            raise ValueError(f"mmap_mode={mmap_mode!r}: a store on object storage ({self._root!r}) loads into "
                             "memory only; load without mmap_mode.")
        self._check_verify(verify)
        number = self._resolve(name, version, check=False)  # the manifest's read checks it exists
        manifest = self._verified_manifest(name, number, for_load=isinstance(version, numbers.Integral) or (
            isinstance(version, str) and version.isdigit()))
        fmt = self._check_format(name, number, manifest, allow_pickle, formats)
        key = self._artifact_key(name, number, manifest, manifest["artifact"])
        artifact = self._backend.local_path(key)  # the local backend's capability: open, no link, mmap
        where = artifact or self._backend.url_of(key)
        expected = self._file_entry(manifest, manifest["artifact"], where)
        algorithm = self._algorithm(verify, expected, where)
        compressed = manifest.get("compress") not in (0, None, False)
        if mmap_mode is not None and (fmt != "joblib" or compressed):
            raise ValueError(
                f"Version {number} of {name!r} was saved with format={fmt!r}, compress={manifest.get('compress')!r}; "
                "only uncompressed joblib artifacts can be memory-mapped. Load without mmap_mode, or re-save "
                "with compress=0."
            )
        self._warn_versions(name, number, manifest)
        if artifact is None:  # object storage: downloaded once (or cached), verified in private memory
            memory = self._fetch_verified(key, where, expected, algorithm, name, number)
            return self._deserialize(memory, expected["size"], fmt, manifest, where, name, number, trusted)
        self._check_inside(artifact)
        fd = self._open_artifact(artifact, name, number, write=mmap_mode in ("r+", "w+"))
        try:
            if mmap_mode is not None and manifest.get("pickler") != "pickle":
                if isinstance(expected.get("regions"), list):  # the arrays' ranges are known: map them
                    private, mapping, regions = _verify.map_verified(fd, artifact, expected, algorithm, mmap_mode)
                    return _verify.load_joblib(private, expected["size"], artifact, mapping=mapping,
                                               regions=regions, mmap_mode=mmap_mode)
                if algorithm == "size":  # saved before ranges were recorded, from a store trusted as it is
                    import joblib

                    return joblib.load(artifact, mmap_mode=mmap_mode)
            memory = _verify.read_verified(fd, artifact, expected, algorithm)
        finally:
            os.close(fd)
        return self._deserialize(memory, expected["size"], fmt, manifest, artifact, name, number, trusted)

    def _artifact_key(self, name, number, manifest, filename):
        """The backend key of a version's file: in its version's directory here."""
        if os.path.basename(filename) != filename or filename in ("", ".", ".."):
            path = self._backend.url_of(f"{name}/v{number:06d}/manifest.json")
            raise IntegrityError(f"The manifest {path!r} names a file outside its version: {filename!r}.", path)
        return f"{name}/v{number:06d}/{filename}"

    def _fetch_verified(self, key, url, expected, algorithm, name, number):
        """An artifact the backend cannot open as a file: its bytes, checked in private memory, from the
        digest-keyed cache when a verified copy is there, else read once through the backend (and then
        cached)."""
        cached = self._cache_path(expected, algorithm)
        if cached is not None:
            try:
                fd = _store_io.open_fd(cached)
            except OSError:
                fd = None
            if fd is not None:  # read once into private memory and checked there, as a local load is
                try:
                    return _verify.read_verified(fd, cached, expected, algorithm)
                except IntegrityError:  # a damaged cache entry: drop it and download
                    with contextlib.suppress(OSError):
                        os.unlink(cached)
                finally:
                    os.close(fd)
        try:
            data = self._backend.read(key)[0]
        except FileNotFoundError:
            raise IntegrityError(f"{url!r} is missing: version {number} of {name!r} is incomplete.",
                                 url, "a file", None) from None
        memory = _verify.check_memory(bytearray(data), url, expected, algorithm)
        del data
        self._cache_put(expected, memory)
        return memory

    def _cache_path(self, expected, algorithm):
        if self.cache_dir is None or algorithm not in _store_io.CRYPTOGRAPHIC:
            return None
        digest = expected.get(algorithm)
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{16,128}", digest):
            return None
        return os.path.join(self.cache_dir, algorithm, digest[:2], digest)

    def _cache_put(self, files, data):
        algorithm = next((a for a in _store_io.CRYPTOGRAPHIC if isinstance(files.get(a), str)), None)
        path = self._cache_path(files, algorithm) if algorithm else None
        if path is None or os.path.exists(path):
            return
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
            _store_io.write_file(tmp, data, fsync=False)
            os.replace(tmp, path)
        except OSError:  # a cache that cannot be written is no cache, not an error
            pass

    def _deserialize(self, memory, size, fmt, manifest, artifact, name, number, trusted):
        """The object in verified private ``memory`` (``size`` bytes of it), as its format says."""
        if fmt == "joblib":
            if manifest.get("pickler") == "pickle":  # no large array in it: the C unpickler, in memory
                return _store_io.load_pickle(memory)
            if memory[:1] == pickle.PROTO:  # uncompressed: joblib's unpickler, arrays as views of the memory
                return _verify.load_joblib(memory, size, artifact)
            import joblib

            return joblib.load(io.BytesIO(memory))  # compressed: joblib's decompressor, from memory
        data = bytes(memory[:size]) if not isinstance(memory, bytearray) else memory
        if fmt == "json":
            return json.loads(data)
        sio = _import_skops()
        data = bytes(data)
        accepted, untrusted = trusted_types(sio.get_untrusted_types(data=data), trusted)
        if untrusted:
            raise IntegrityError(
                f"Version {number} of {name!r} (skops) holds types that are not trusted: {untrusted}. "
                "Pass trusted=[...] with the ones you trust.",
                str(artifact), expected="trusted types", found=untrusted,
            )
        return sio.loads(data, trusted=accepted or None)

    def _formats(self, allow_pickle=None, formats=None):
        """The formats a load may deserialise: the store's policy narrowed by the load's."""
        allowed = set(self._allowed)
        if allow_pickle is False:
            allowed.discard("joblib")
        if formats is not None:
            allowed &= set(_check_formats(formats, "formats"))
        return allowed

    def _check_format(self, name, number, manifest, allow_pickle, formats):
        """The manifest's format, refused (before anything is read) when the policy does not allow it."""
        path = os.path.join(self._vdir(name, number), "manifest.json")
        fmt = manifest.get("format", "joblib")
        if fmt not in _FORMATS or manifest.get("artifact") != _FORMATS[fmt]:
            raise IntegrityError(
                f"{path!r} names format {fmt!r} with artifact {manifest.get('artifact')!r}; expected one of "
                f"{sorted(_FORMATS)} with its own artifact name. Refusing to load it.", path, sorted(_FORMATS), fmt)
        if fmt != "json" and fmt not in self._formats(allow_pickle, formats):
            allowed = sorted(self._formats(allow_pickle, formats)) or ["json only"]
            raise FormatRefusedError(
                f"Refusing to load version {number} of {name!r}: its manifest asks for format {fmt!r} "
                f"({'a pickle, which can run code' if fmt == 'joblib' else 'not allowed'}), and the policy "
                f"allows {allowed} (allow_pickle / formats). Nothing was read.", path, allowed, fmt)
        return fmt

    def _file_entry(self, manifest, filename, path):
        entry = manifest.get("files", {}).get(filename) if isinstance(manifest.get("files"), dict) else None
        if not isinstance(entry, dict) or not isinstance(entry.get("size"), int) or isinstance(entry["size"], bool):
            raise IntegrityError(f"The manifest of {path!r} records no size for it; it was not loaded.",
                                 path, "a files entry with a size", entry)
        return entry

    def _open_artifact(self, path, name, number, write=False):
        try:
            return _store_io.open_fd(path, write=write)
        except FileNotFoundError:
            if not os.path.isdir(os.path.dirname(path)):  # the version was deleted (another process) meanwhile
                raise self._missing(name, number) from None
            raise IntegrityError(f"{path!r} is missing: version {number} of {name!r} is incomplete.",
                                 path, "a file", None) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StoreError(f"{path!r} is a symlink; the store never follows one. Refusing to load it.") from None
            raise

    def _check_inside(self, path):
        """Refuse a path whose directories inside the store are symlinks (the last part is opened with
        O_NOFOLLOW): nothing outside the store is ever read or written through one."""
        relative = os.path.relpath(os.path.dirname(path), self._root)
        current = self._root
        for part in [] if relative == "." else relative.split(os.sep):
            current = os.path.join(current, part)
            try:
                if stat.S_ISLNK(os.lstat(current).st_mode):
                    raise StoreError(f"{current!r} is a symlink; the store never follows one.")
            except FileNotFoundError:
                return

    def _check_verify(self, verify):
        if verify not in ("auto", "size") + _store_io.ALGORITHMS:
            raise ValueError(f"verify={verify!r} is not one of 'auto', 'blake3', 'sha256', 'xxh3_128', 'size'.")
        if self._key and verify not in ("auto",) + _store_io.CRYPTOGRAPHIC:
            raise ValueError(f"verify={verify!r} is not a cryptographic check, which a store with a signing key "
                             "requires: use 'auto', 'blake3' or 'sha256'.")

    def _algorithm(self, verify, expected, path):
        """The digest a load checks: ``verify`` as asked, or the best one recorded (``"auto"``)."""
        self._check_verify(verify)
        if verify == "size":
            return "size"
        if verify == "auto":
            order = _store_io.CRYPTOGRAPHIC if self._key else ("blake3", "xxh3_128", "sha256")
            verify = next((a for a in order if isinstance(expected.get(a), str)), None)
            if verify is None:
                raise IntegrityError(f"The manifest of {path!r} records no {' or '.join(order)} digest; it was "
                                     "not loaded.", path, order, None)
        elif not isinstance(expected.get(verify), str):
            raise ValueError(f"{path!r} was saved without a {verify} digest; it records "
                             f"{sorted(a for a in _store_io.ALGORITHMS if a in expected)}.")
        return verify

    def _verified_manifest(self, name, number, for_load=False):
        manifest = self._read_manifest(name, number, for_load)
        path = os.path.join(self._vdir(name, number), "manifest.json")
        if self._key:
            signature = manifest.get("signature")
            if not signature:
                raise SignatureError(
                    f"Version {number} of {name!r} is not signed, and this store requires signed versions "
                    f"(a signing key is set). Refusing to load {str(path)!r}.",
                    str(path), "an HMAC-SHA256 signature", None,
                )
            unsigned = {k: v for k, v in manifest.items() if k != "signature"}
            if not _store_io.signature_matches(self._key, unsigned, signature.get("value", "")):
                raise SignatureError(
                    f"Version {number} of {name!r} has a signature that does not match the signing key "
                    f"(manifest {str(path)!r} altered, or signed with another key). Refusing to load it.",
                    str(path), "a signature made with this key", signature.get("value"),
                )
        if manifest.get("version") != number or manifest.get("name") != name:
            raise IntegrityError(
                f"{str(path)!r} describes {manifest.get('name')!r} version {manifest.get('version')}, "
                f"not {name!r} version {number}.",
                str(path), (name, number), (manifest.get("name"), manifest.get("version")),
            )
        return manifest

    def _warn_versions(self, name, number, manifest):
        saved = manifest.get("environment", {})
        here = environment()
        differences = [
            f"{lib} {saved[lib]} (saved) vs {here[lib]} (here)"
            for lib in ("scikit-learn", "numpy", "pandas", "joblib", "python", "ml_toolbox")
            if lib in saved and saved[lib] != here.get(lib)
        ]
        if differences:
            warnings.warn(
                f"Version {number} of {name!r} was saved under other library versions: "
                + "; ".join(differences)
                + ". It may load wrongly or behave differently; re-train or re-save it under these versions.",
                VersionMismatchWarning,
                stacklevel=3,
            )

    def verify(self, name=None, version=None):
        """Check files, signatures and alias histories without deserialising anything.

        Every file's size and strongest recorded digest, the signatures (with a key) and each name's
        alias history are checked.

        Parameters
        ----------
        name : str, optional
            Only this name (default: every name).
        version : int, str or None, default=None
            Only this version of ``name`` (a number or an alias; default: every version).

        Returns
        -------
        list of tuple
            ``(name, version, problem)`` per version; ``problem`` is None for a sound version. A
            name whose ``aliases.json`` fails its check (malformed; with a key: unsigned, altered, a
            broken chain, or an alias that disagrees with its history) adds
            ``(name, "aliases", problem)``.
        """
        results = []
        names = [name] if name is not None else self.names()
        for each in names:
            if version is None:
                try:
                    self._read_aliases(each)
                except (IntegrityError, StoreError) as exc:
                    results.append((each, "aliases", str(exc)))
            versions = [self.resolve(each, version)] if version is not None else self.list_versions(each)
            for number in versions:
                try:
                    manifest = self._verified_manifest(each, number)
                    self._check_format(each, number, manifest, None, None)  # the format policy too
                    directory = self._backend.url_of(f"{each}/v{number:06d}")
                    files = manifest.get("files")
                    if not isinstance(files, dict) or manifest.get("artifact") not in files:
                        raise IntegrityError(f"The manifest of {directory!r} lists no artifact file.", directory)
                    for filename in files:
                        key = self._artifact_key(each, number, manifest, filename)
                        path = self._backend.local_path(key)
                        where = path or self._backend.url_of(key)
                        expected = self._file_entry(manifest, filename, where)
                        algorithm = next((a for a in ("blake3", "sha256", "xxh3_128")
                                          if isinstance(expected.get(a), str)), None)
                        algorithm = self._algorithm(algorithm or "auto", expected, where)
                        if path is None:  # never the cache: this checks the store itself
                            _verify.check_memory(bytearray(self._backend.read(key)[0]), where, expected, algorithm)
                            continue
                        self._check_inside(path)
                        fd = self._open_artifact(path, each, number)
                        try:
                            _verify.check_file(fd, path, expected, algorithm)
                        finally:
                            os.close(fd)
                    results.append((each, number, None))
                except FileNotFoundError as exc:
                    results.append((each, number, f"missing: {exc}"))
                except (IntegrityError, StoreError, ValueError) as exc:
                    results.append((each, number, str(exc)))
        return results

    # ----------------------------------------------------------------------------------- aliases
    def _aliases_path(self, name):
        return self.path / name / "aliases.json"

    def _read_aliases(self, name, tagged=False):
        """The name's alias file, checked: ``{"aliases": {alias: {"stack": [...]}}, "history": [...]}``.

        Its history is a chain (each event records the digest of the one before it) and, with a signing
        key, each event is signed over that digest; the aliases are then what replaying the verified
        history gives. A malformed file is a StoreError naming it; a broken chain, an unsigned or
        altered event, or aliases that disagree with the history is a SignatureError.
        """
        key = f"{name}/aliases.json"
        path = os.path.join(self._root, name, "aliases.json")
        try:
            data, tag = self._backend.read(key)
        except FileNotFoundError:
            payload, tag = {"aliases": {}, "history": []}, None
        else:
            payload = _aliases.parse(_parse_json(data, path, dict), path)
            _aliases.check(payload, path, name, self._key)
        return (payload, tag) if tagged else payload

    def _write_aliases(self, name, payload, tag):
        """Write the alias file if nobody changed it since it was read (compare-and-swap on its tag)."""
        if not self._backend.compare_and_swap(f"{name}/aliases.json", _alias_bytes(payload), tag):
            raise StoreError(f"{os.path.join(self._root, name, 'aliases.json')!r} changed while this move was "
                             "decided; nothing was written. Try again.")

    def _move_alias(self, name, alias, event, stack):
        """Append ``event`` (chained, and signed with a key) and set ``alias``'s stack; under the lock."""
        self._require_key(f"move the alias {alias!r} of {name!r}")
        payload, tag = self._read_aliases(name, tagged=True)
        self._check_movable(name, payload, event["to"])
        _aliases.append(payload, name, event, self._key)
        payload["aliases"].setdefault(alias, {})["stack"] = stack
        self._write_aliases(name, payload, tag)

    def _check_movable(self, name, payload, number):
        """Refuse to point an alias at a version being (or already) deleted: one in the alias file's
        ``deleted`` list (see :meth:`_delete_guarded`), or no longer in the store."""
        if number in payload.get("deleted", ()) or not self._has_version(name, number):
            raise VersionNotFoundError(
                f"{name!r} has no version {number}: it was deleted (by another process, since this move was "
                f"asked for). Versions: {', '.join(map(str, self.list_versions(name))) or 'none'}.")

    def _require_key(self, what):
        """A store marked as signed refuses its writes of refs without the key (they could not be signed)."""
        if self._key is None and self._signed_store():
            raise SignatureError(
                f"Refusing to {what}: the store {self._root!r} is signed, and this store object has no signing "
                f"key (pass signing_key= or set ${SIGNING_KEY_ENV}).", self._root, "a signing key", None)

    def _signed_store(self):
        try:
            data, _ = self._backend.read(STORE_MARKER)
            return bool(_parse_json(data, os.path.join(self._root, STORE_MARKER), dict).get("signed"))
        except FileNotFoundError:
            return False

    def aliases(self, name):
        """Return the current aliases of a name.

        Parameters
        ----------
        name : str
            The name the versions are stored under.

        Returns
        -------
        dict of str to int
            Alias -> the version number it points at.
        """
        _check_name(name)
        return {alias: entry["stack"][-1] for alias, entry in self._read_aliases(name)["aliases"].items()
                if entry["stack"]}

    def sign_aliases(self, name, *, reason=None):
        """Sign the alias history of ``name`` as it stands, with this store's key; return the aliases.

        For a history written before the store had a key (loads by alias, promote and rollback refuse an
        unsigned one): its events are kept, unsigned, under ``unsigned_history``, and a new signed chain
        starts with one ``adopt`` event per alias, recording its current stack. Check the aliases first
        (``store.aliases(name)`` reads them without the key's check only on a store object without it).

        Parameters
        ----------
        name : str
            The name the versions are stored under.
        reason : str, optional
            Recorded in the ``adopt`` events.

        Returns
        -------
        dict of str to int
            The aliases (alias -> version number), now signed.
        """
        _check_name(name)
        if not self._key:
            raise SignatureError(f"sign_aliases needs a signing key; the store object for {self._root!r} has none.",
                                 self._root, "a signing key", None)
        with self._lock():
            path = os.path.join(self._root, name, "aliases.json")
            try:
                data, tag = self._backend.read(f"{name}/aliases.json")
            except FileNotFoundError:
                return {}
            payload = _aliases.parse(_parse_json(data, path, dict), path)
            old = payload["history"]
            payload["unsigned_history"] = payload.get("unsigned_history", []) + old
            payload["history"] = []
            for alias, entry in sorted(payload["aliases"].items()):
                if entry["stack"]:
                    _aliases.append(payload, name, {
                        "when": _iso(self._clock()), "alias": alias, "action": "adopt", "from": None,
                        "to": entry["stack"][-1], "stack": list(entry["stack"]), "reason": reason, "gates": [],
                    }, self._key)
            self._write_aliases(name, payload, tag)
        return self.aliases(name)

    def show(self, name=None):
        """A display of the store (its names) or of one name (its versions and alias history).

        Rich in a terminal (``rich.print(store.show("churn"))``), a table in a notebook; the same
        rows as ``ml-toolbox list`` and ``ml-toolbox history``.

        Parameters
        ----------
        name : str, optional
            One name (default: the whole store).

        Returns
        -------
        ml_toolbox.store.views.StoreView
            The display object (``__rich__`` and ``_repr_html_``).

        Raises
        ------
        VersionNotFoundError
            When ``name`` has no versions.
        """
        from ml_toolbox.store.views import StoreView

        if name is not None and not self.list_versions(name):
            raise self._missing(name)
        return StoreView(self, name)

    def __rich__(self):
        return self.show().__rich__()

    def _repr_html_(self):
        return self.show()._repr_html_()

    def history(self, name, alias=None):
        """Return the audited alias history of a name, oldest first.

        Parameters
        ----------
        name : str
            The name the versions are stored under.
        alias : str, optional
            Only this alias's events.

        Returns
        -------
        list of dict
            The events, with ``when``, ``alias``, ``action``, ``from``, ``to`` and ``reason``.
        """
        events = self._read_aliases(name)["history"]
        return [e for e in events if alias is None or e["alias"] == alias]

    def check_gates(self, name, version, alias, gates):
        """Check quality gates for promoting a version to an alias, without moving anything.

        Parameters
        ----------
        name : str
            The name the versions are stored under.
        version : int or str
            The candidate version (a number or an alias).
        alias : str
            The alias it would move; relative gates compare with the version holding it.
        gates : mapping or list
            The gates, as :meth:`promote` takes them.

        Returns
        -------
        list of str
            One message per failed gate (empty when all pass).
        """
        gates = parse_gates(gates)
        number = self.resolve(name, version)
        metrics = self.manifest(name, number).get("metrics", {})
        current = self.aliases(name).get(alias)
        current_metrics = self.manifest(name, current).get("metrics", {}) if current is not None else {}
        failed = []
        for gate in gates:
            if gate.metric not in metrics:
                available = ", ".join(sorted(metrics)) or "none"
                failed.append(f"gate {gate} failed: version {number} has no metric {gate.metric!r} "
                              f"(its metrics: {available})")
                continue
            value = metrics[gate.metric]
            if gate.relative:
                if current is None:
                    continue  # nothing holds the alias yet: nothing to compare with
                if gate.metric not in current_metrics:
                    failed.append(f"gate {gate} failed: version {current} (currently {alias!r}) has no metric "
                                  f"{gate.metric!r} to compare with")
                    continue
                if not gate.check(value, current_metrics[gate.metric]):
                    failed.append(f"gate {gate} failed: version {number} has {gate.metric}={fmt_number(value)}, version "
                                  f"{current} (currently {alias!r}) has {fmt_number(current_metrics[gate.metric])}")
            elif not gate.check(value):
                failed.append(f"gate {gate} failed: version {number} has {gate.metric}={fmt_number(value)}")
        return failed

    def promote(self, name, version, alias, *, gates=None, reason=None):
        """Point an alias at a version after checking quality gates.

        Parameters
        ----------
        name : str
            The name the versions are stored under.
        version : int or str
            The version to point at (a number, or an alias: the version it points at).
        alias : str
            The alias to move (``"production"``, ``"staging"``...); created if missing.
        gates : mapping or list, optional
            ``{"accuracy": 0.85}`` (a minimum), ``{"log_loss": "<=0.3"}``, ``["accuracy>=current-0.01"]``:
            absolute thresholds, or comparisons with the version currently holding ``alias`` (skipped
            when nothing holds it yet). A gate on a metric the version lacks fails.
        reason : str, optional
            Recorded in the alias history.

        Returns
        -------
        int
            The version number the alias now points at.

        Raises
        ------
        GateError
            Naming every failed gate; the alias is left unchanged.
        VersionNotFoundError
            When there is no such version, or it was deleted (possibly by another process) before the
            alias moved; the alias is left unchanged.
        """
        _check_name(alias, "alias")
        self._require_key(f"promote {name!r} version {version!r} to {alias!r}")
        if alias.isdigit() or alias == "latest":
            raise InvalidNameError(f"Invalid alias {alias!r}: an alias cannot be a number or 'latest'.")
        number = self.resolve(name, version)
        with self._lock():
            failed = self.check_gates(name, number, alias, gates)
            if failed:
                raise GateError(
                    f"Refusing to promote {name!r} version {number} to {alias!r}: " + "; ".join(failed) + ".",
                    failed,
                )
            if not self.durable:  # an alias only ever points at a version on disk for good
                self._make_durable(name, number)
            stack = list(self._read_aliases(name)["aliases"].get(alias, {}).get("stack", []))
            previous = stack[-1] if stack else None
            self._move_alias(name, alias, {
                "when": _iso(self._clock()), "alias": alias, "action": "promote", "from": previous,
                "to": number, "reason": reason, "gates": [str(g) for g in parse_gates(gates)],
            }, stack + [number])
        return number

    def _make_durable(self, name, number):
        """fsync a version saved with ``durable=False``: its files, its directory, the name's directory."""
        directory = self._vdir(name, number)
        self._check_inside(directory)
        try:
            entries = os.listdir(directory)
        except FileNotFoundError:
            raise self._missing(name, number) from None
        for entry in entries:
            fd = self._open_artifact(os.path.join(directory, entry), name, number)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _store_io.fsync_dir(directory)
        _store_io.fsync_dir(os.path.dirname(directory))

    def rollback(self, name, alias, *, reason=None):
        """Move an alias back one step, to the version it pointed at before.

        Parameters
        ----------
        name : str
            The name the versions are stored under.
        alias : str
            The alias to move back.
        reason : str, optional
            Recorded in the alias history.

        Returns
        -------
        int
            The version the alias now points at.

        Raises
        ------
        VersionNotFoundError
            When the alias does not exist or has no earlier version.
        """
        _check_name(name)
        _check_name(alias, "alias")
        self._require_key(f"roll back the alias {alias!r} of {name!r}")
        with self._lock():
            payload = self._read_aliases(name)
            entry = payload["aliases"].get(alias)
            if entry is None:
                known = ", ".join(sorted(payload["aliases"])) or "none"
                raise VersionNotFoundError(f"{name!r} has no alias {alias!r}. Aliases: {known}.")
            stack = list(entry["stack"])
            current = stack.pop()
            existing = set(self.list_versions(name)) - set(payload.get("deleted", ()))
            while stack and stack[-1] not in existing:
                stack.pop()  # a version deleted since: skip it
            if not stack:
                raise VersionNotFoundError(
                    f"Cannot roll back {alias!r} of {name!r}: version {current} is the first version it held "
                    "(nothing to roll back to)."
                )
            self._move_alias(name, alias, {
                "when": _iso(self._clock()), "alias": alias, "action": "rollback", "from": current,
                "to": stack[-1], "reason": reason, "gates": [],
            }, stack)
        return stack[-1]

    # ---------------------------------------------------------------------------------- compare
    def diff(self, name, a, b):
        """Return what changed between two versions: params, metrics and schema.

        Parameters
        ----------
        name : str
            The name the versions are stored under.
        a, b : int or str
            The two versions (numbers or aliases).

        Returns
        -------
        dict
            ``{section: {key: (value_in_a, value_in_b)}}`` with only the keys that differ
            (a missing key is None).
"""
        left, right = self.manifest(name, a), self.manifest(name, b)
        out = {}
        for section in ("params", "metrics", "schema", "tags", "environment"):
            flat_a, flat_b = _flatten(left.get(section) or {}), _flatten(right.get(section) or {})
            out[section] = {key: (flat_a.get(key), flat_b.get(key))
                            for key in sorted(set(flat_a) | set(flat_b)) if flat_a.get(key) != flat_b.get(key)}
        return out

    # ------------------------------------------------------------------------------- retention
    def _protected(self, name):
        return {v: alias for alias, v in self.aliases(name).items()}

    def delete_version(self, name, version):
        """Delete one version (refused while an alias points at it); its number is never reused.

        Parameters
        ----------
        name : str
            The name the versions are stored under.
        version : int or str
            The version (a number or an alias).

        Returns
        -------
        int
            The number of the version deleted.

        Raises
        ------
        AliasedVersionError
            When an alias points at the version.
        VersionNotFoundError
            When there is no such version.
        """
        self._require_key(f"delete {name!r} version {version!r}")
        number = self.resolve(name, version)
        with self._lock():
            self._delete_guarded(name, number)
        return number

    def _delete_guarded(self, name, number):
        """Delete one version unless an alias points at it, safely against a concurrent promote.

        The version's number is first added to the alias file's ``deleted`` list, by compare-and-swap on
        the alias file as read when its aliases were checked; an alias move reads the same file and
        refuses a version in that list. Of a promote and a delete of the same version, racing on two
        machines, one moves the alias file first: the other's compare-and-swap then fails, and its retry
        sees the alias (the delete refuses) or the mark (the promote refuses). Only then are the version's
        files removed. The list only grows, so a tag is never seen twice (no ABA).
        """
        self._mark_deleted(name, number)
        self._delete_locked(name, number)

    def _mark_deleted(self, name, number):
        """Add ``number`` to the alias file's ``deleted`` list, unless an alias points at it."""
        payload, tag = self._read_aliases(name, tagged=True)
        for alias, entry in sorted(payload["aliases"].items()):
            if entry["stack"] and entry["stack"][-1] == number:
                raise AliasedVersionError(
                    f"Refusing to delete {name!r} version {number}: alias {alias!r} points at it. "
                    "Promote another version (or roll back) first."
                )
        deleted = payload.setdefault("deleted", [])
        if number in deleted:  # a delete interrupted after its mark: finish it
            return
        if not self._has_version(name, number):  # deleted by another process since it was resolved
            raise self._missing(name, number)
        deleted.append(number)
        self._write_aliases(name, payload, tag)

    def _delete_locked(self, name, number):
        if not self._has_version(name, number):  # deleted by another process since it was resolved
            raise self._missing(name, number)
        # the tombstone replaces whatever is at its name (a planted symlink itself, never what it points at)
        self._backend.write(f"{name}/v{number:06d}.deleted", json.dumps({"deleted": _iso(self._clock())}).encode())
        try:
            self._backend.delete_tree(f"{name}/v{number:06d}")  # on disk one rename; S3: the manifest
        except FileNotFoundError:
            raise self._missing(name, number) from None
        # Only the highest number ever used matters for the next one: a tombstone below another tombstone
        # or a version is redundant (the highest number only ever grows), and every save lists them all.
        entries = self._backend.list(name)
        top = max(_version_numbers(entries)[1])
        for entry in entries:
            if entry.startswith("v") and entry.endswith(".deleted") and entry[1:-8].isdigit() \
                    and int(entry[1:-8]) < top:
                self._backend.delete(f"{name}/{entry}")  # False: another store object compacted it first

    def prune(self, name=None, *, keep_last=None, older_than=None, dry_run=False):
        """Delete old versions, never one an alias points at.

        A version is deleted when it is not among the ``keep_last`` newest of its name (if given) and is
        older than ``older_than`` (if given; a timedelta, days, or '30d' / '12h'). At least one of the
        two is required.

        Parameters
        ----------
        name : str, optional
            Only this name (default: every name).
        keep_last : int, optional
            Keep at least this many newest versions of each name.
        older_than : datetime.timedelta, number or str, optional
            Delete only versions older than this (a timedelta, days, or ``'30d'`` / ``'12h'``).
        dry_run : bool, default=False
            Only report what would be deleted.

        Returns
        -------
        list of tuple
            The ``(name, version)`` pairs deleted (or, with ``dry_run``, that would be).

        Raises
        ------
        ValueError
            When neither ``keep_last`` nor ``older_than`` is given, or one is invalid.
        """
        if keep_last is None and older_than is None:
            raise ValueError("prune needs keep_last=..., older_than=..., or both.")
        if not dry_run:
            self._require_key("prune versions")
        if keep_last is not None and (isinstance(keep_last, bool) or not isinstance(keep_last, numbers.Integral)
                                      or keep_last < 0):
            raise ValueError(f"keep_last must be a non-negative integer; got {keep_last!r}.")
        age = _parse_age(older_than)
        now = self._clock()
        deleted = []
        with self._lock():
            for each in [name] if name is not None else self.names():
                versions = self.list_versions(each)
                protected = self._protected(each)
                candidates = versions[:-keep_last] if keep_last else list(versions)
                for number in candidates:
                    if number in protected:
                        continue
                    if age is not None:
                        created = _parse_iso(self.manifest(each, number)["created"])
                        if now - created < age:
                            continue
                    if not dry_run:
                        try:
                            self._delete_guarded(each, number)
                        except (AliasedVersionError, VersionNotFoundError):
                            continue  # promoted, or deleted, by another process since it was listed
                    deleted.append((each, number))
            if not dry_run:
                self._clean_staging()
                self._clean_locks()
        return deleted

    # ------------------------------------------------------------------------- the seed's API
    def save_model(self, model, name, *, metrics=None, tags=None, message=None, **kwargs):
        """Save a fitted model as the next version of a name.

        Parameters
        ----------
        model : estimator
            The fitted model.
        name : str
            The name the versions are stored under.
        metrics : dict of str to number, optional
            Recorded in the manifest; quality gates read them.
        tags : dict or list of str, optional
            Labels recorded in the manifest.
        message : str, optional
            Free text (why this version exists).
        **kwargs
            Other options of :meth:`save` (``format``, ``compress``, ``parent``, ``run_id``...).

        Returns
        -------
        int
            The new version number.
        """
        return self.save(model, name, metrics=metrics, tags=tags, message=message, kind="model", **kwargs)

    def load_model(self, name, version=None, **kwargs):
        """Load a model saved with :meth:`save_model` (or :meth:`save`).

        Parameters
        ----------
        name : str
            The name the versions are stored under.
        version : int, str or None, default=None
            None for the latest version, a version number, or an alias such as ``"production"``.
        **kwargs
            Options of :meth:`load` (``mmap_mode``, ``trusted``, ``verify``...).

        Returns
        -------
        object
            The model, as verified.
        """
        return self.load(name, version, **kwargs)

    def save_pipeline_state(self, name, state, *, metrics=None, tags=None, message=None, **kwargs):
        """Save a pipeline's ``state`` dict (``pipeline.state``) as the next version of a name.

        ``state["params"]``, ``state["schema"]`` and the numeric ``state["metrics"]`` (when present, and
        unless ``metrics=`` is given) go to the manifest.

        Parameters
        ----------
        name : str
            The name the versions are stored under.
        state : dict
            The pipeline's state.
        metrics : dict of str to number, optional
            Recorded in the manifest; quality gates read them.
        tags : dict or list of str, optional
            Labels recorded in the manifest.
        message : str, optional
            Free text (why this version exists).
        **kwargs
            Other options of :meth:`save` (``format``, ``compress``, ``parent``, ``run_id``...).

        Returns
        -------
        int
            The new version number.

        Raises
        ------
        TypeError
            When ``state`` is not a dict.
        """
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict (pipeline.state); got {type(state).__name__}.")
        if metrics is None and isinstance(state.get("metrics"), dict):
            metrics = {k: v for k, v in state["metrics"].items()
                       if isinstance(v, numbers.Real) and not isinstance(v, bool)}
        return self.save(state, name, metrics=metrics, tags=tags, message=message, kind="state", **kwargs)

    def load_pipeline_state(self, name, version=None, **kwargs):
        """Load a state saved with :meth:`save_pipeline_state`.

        Parameters
        ----------
        name : str
            The name the versions are stored under.
        version : int, str or None, default=None
            None for the latest version, a version number, or an alias such as ``"production"``.
        **kwargs
            Options of :meth:`load` (``mmap_mode``, ``trusted``, ``verify``...).

        Returns
        -------
        dict
            The pipeline's state.
        """
        return self._load_kind(name, version, "state", **kwargs)

    def save_config(self, name, config, *, tags=None, message=None):
        """Save a JSON-serialisable configuration (stored as JSON, loads without pickle).

        Parameters
        ----------
        name : str
            The name the versions are stored under.
        config : dict, list, str or number
            The configuration.
        tags : dict or list of str, optional
            Labels recorded in the manifest.
        message : str, optional
            Free text (why this version exists).

        Returns
        -------
        int
            The new version number.

        Raises
        ------
        TypeError
            When ``config`` is not JSON-serialisable.
        """

        try:
            json.dumps(config)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"The configuration for {name!r} is not JSON-serialisable: {exc}.") from exc
        return self.save(config, name, tags=tags, message=message, format="json", kind="config")

    def load_config(self, name, version=None):
        """Load a configuration saved with :meth:`save_config`.

        Parameters
        ----------
        name : str
            The name the versions are stored under.
        version : int, str or None, default=None
            None for the latest version, a version number, or an alias such as ``"production"``.

        Returns
        -------
        object
            The configuration, as saved.
        """
        return self._load_kind(name, version, "config")

    def _load_kind(self, name, version, kind, **kwargs):
        number = self.resolve(name, version)
        found = self.manifest(name, number).get("kind", "pipeline")
        if _KIND_GROUP.get(found) != _KIND_GROUP[kind]:
            raise ValueError(f"{name!r} version {number} holds a {found}, not a {kind}.")
        return self.load(name, number, **kwargs)


def _parse_json(data, path, kind=None):
    """A store file's JSON, or a StoreError naming the file (not JSON, too deep, or not a ``kind``)."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise MalformedFileError(f"The store file {path!r} is malformed: not valid JSON ({exc}).", path) from None
    if kind is not None and not isinstance(value, kind):
        raise MalformedFileError(f"The store file {path!r} is malformed: expected a JSON {kind.__name__}, found "
                                 f"{type(value).__name__}.", path)
    return value


def _version_numbers(entries):
    """A name's directory entries as (existing versions sorted, every number ever used)."""
    existing, used = [], [0]
    for entry in entries:  # v000001 (a version), v000002.deleted (a tombstone); plain str tests are fastest
        if entry[:1] != "v":
            continue
        digits = entry[1:]
        if digits.isascii() and digits.isdigit():
            existing.append(int(digits))
            used.append(int(digits))
        elif entry.endswith(".deleted") and digits[:-8].isascii() and digits[:-8].isdigit():
            used.append(int(digits[:-8]))
    return sorted(existing), used


def _alias_bytes(payload):
    return json.dumps(payload, indent=2, sort_keys=True).encode()


_MANIFEST_ENCODER = json.JSONEncoder(sort_keys=True)  # json.dumps(..., sort_keys=True) makes one per call


def _manifest_bytes(manifest):
    """A manifest as stored: sorted keys on one line (the C encoder; ``indent`` would use the slow one)."""
    return _MANIFEST_ENCODER.encode(manifest).encode()


def _pid_alive(text):
    try:
        os.kill(int(text), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # pragma: no cover - another user's live process
        return True
    return True


def _import_skops():
    try:
        import skops.io as sio
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("format='skops' needs the optional extra: pip install 'ml_toolbox[skops]'.") from exc
    return sio
