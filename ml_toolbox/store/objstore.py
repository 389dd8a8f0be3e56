"""The store on object storage: a backend over any fsspec URL (``s3://bucket/prefix``, ``gs://``, ``az://``).

:class:`FsspecBackend` implements :class:`~ml_toolbox.store.StoreBackend` over an fsspec file system.
On S3 (and S3-compatible stores, through s3fs) it uses the protocol's conditional writes: a create is a
``PutObject`` with ``If-None-Match: *`` (refused when the key exists), a compare-and-swap a ``PutObject``
with ``If-Match: <ETag>``. Each read is one ``GetObject`` returning the bytes and their ETag together.
Transient errors (timeouts, connection resets, 5xx, throttling) are retried with tenacity; what still
fails is a :class:`~ml_toolbox.store.StoreError` naming the URL and the operation.

A file system that offers no conditional writes (everything but S3 here, for now) cannot keep two
writers apart without a lock service: the backend says so when it is opened, and refuses every write
unless the user declares a single writer (``single_writer=True``); reads always work.
"""

import errno
import os
import posixpath

from ml_toolbox._docstrings import inherit_docstrings
from ml_toolbox.store.backend import StoreBackend
from ml_toolbox.store.errors import StoreError

__all__ = ["FsspecBackend", "is_url"]

_TRANSIENT_CODES = {"500", "502", "503", "504", "InternalError", "ServiceUnavailable", "SlowDown", "Throttling",
                    "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed", "OperationAborted",
                    "ConditionalRequestConflict"}


def is_url(location):
    """Tell whether a store location is an fsspec URL naming a remote file system.

    Parameters
    ----------
    location : str or path-like
        A store location.

    Returns
    -------
    bool
        True for ``s3://...`` and other remote protocols; False for ``file://`` URLs and plain paths.

    Examples
    --------
    >>> is_url("s3://bucket/models"), is_url("file:///tmp/models"), is_url("models/")
    (True, False, False)
    """
    if not isinstance(location, str) or "://" not in location:
        return False
    return location.split("://", 1)[0].lower() not in ("file", "local")


def _error_code(exc):
    """The S3 error code (or HTTP status) an exception carries, looking through its causes."""
    seen = 0
    while exc is not None and seen < 5:
        response = getattr(exc, "response", None)
        if isinstance(response, dict):
            error = response.get("Error") or {}
            code = error.get("Code") or str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if code:
                return str(code)
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _transient(exc):
    if isinstance(exc, (FileNotFoundError, StoreError, PermissionError)):
        return False
    code = _error_code(exc)
    if code is not None:
        return code in _TRANSIENT_CODES or code.startswith("5")
    name = type(exc).__name__
    return isinstance(exc, (ConnectionError, TimeoutError)) or name in (
        "EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ServerDisconnectedError",
        "ClientConnectorError", "ClientOSError", "IncompleteRead", "ResponseStreamingError")


@inherit_docstrings
class FsspecBackend(StoreBackend):
    """A store's files under the fsspec URL ``url``.

    Parameters
    ----------
    url : str
        ``s3://bucket/prefix`` (or any fsspec URL). The bucket must exist; the prefix is created by use.
    storage_options : dict, optional
        Passed to fsspec (credentials, ``endpoint_url`` in ``client_kwargs``, ``anon``...).
    single_writer : bool, default=False
        Declare that one process at a time writes this store. Needed (and only then honoured) where the
        file system offers no conditional writes; otherwise every write is refused.
    retries : int, default=5
        Attempts of each operation on transient errors (exponential back-off from 50 ms to 2 s).

    Examples
    --------
    >>> import uuid
    >>> backend = FsspecBackend(f"memory://example-{uuid.uuid4().hex}", single_writer=True)  # no conditional writes
    >>> backend.create("churn/.kind", b"pipeline"), backend.create("churn/.kind", b"state")
    (True, False)
    >>> data, tag = backend.read("churn/.kind")
    >>> backend.compare_and_swap("churn/.kind", b"model", "stale"), backend.compare_and_swap("churn/.kind", b"model", tag)
    (False, True)
    >>> backend.list("churn")
    ['.kind']
    """

    def __init__(self, url, storage_options=None, *, single_writer=False, retries=5):
        import fsspec.core

        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.single_writer = bool(single_writer)
        self.retries = int(retries)
        self.wait = None  # tenacity's wait between attempts (None: exponential, 50 ms to 2 s)
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        except ImportError as exc:
            protocol = url.split("://", 1)[0]
            extra = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure"}.get(protocol)
            hint = f"pip install 'ml_toolbox[{extra}]'" if extra else "install the fsspec implementation for it"
            raise ImportError(f"The store URL {url!r} needs an fsspec file system for {protocol!r}: {hint}.") from exc
        self.root = self.root.rstrip("/")
        protocols = self.fs.protocol if isinstance(self.fs.protocol, (tuple, list)) else (self.fs.protocol,)
        self.conditional = any(p in ("s3", "s3a") for p in protocols) and hasattr(self.fs, "call_s3")
        if self.conditional:
            self.bucket, _, self.key_prefix = self.root.partition("/")

    def __repr__(self):
        return f"FsspecBackend({self.url!r})"

    def __getstate__(self):
        return {"url": self.url, "storage_options": self.storage_options, "single_writer": self.single_writer,
                "retries": self.retries}

    def __setstate__(self, state):
        self.__init__(state["url"], state["storage_options"], single_writer=state["single_writer"],
                      retries=state["retries"])

    # ------------------------------------------------------------------------------------ helpers
    def _path(self, key):
        parts = key.split("/") if key else []
        if any(not p or p in (".", "..") for p in parts):
            raise StoreError(f"Invalid key {key!r} in the store {self.url!r}: expected '/'-separated names.")
        return posixpath.join(self.root, *parts) if parts else self.root

    def _s3_key(self, key):
        return posixpath.join(self.key_prefix, key) if self.key_prefix else key

    def url_of(self, key):
        """Return the full URL of a key (what error messages name).

        Parameters
        ----------
        key : str
            A ``/``-separated path under the store's root (``""``: the root).

        Returns
        -------
        str
            ``<url>/<key>``.
        """
        return f"{self.url}/{key}" if key else self.url

    def _run(self, what, key, function, *args, **kwargs):
        """``function(*args)`` retried on transient errors; a StoreError naming the URL and ``what`` after."""
        import tenacity

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_transient), stop=tenacity.stop_after_attempt(max(self.retries, 1)),
            wait=self.wait or tenacity.wait_exponential(multiplier=0.05, max=2.0), reraise=True)
        try:
            return retrying(function, *args, **kwargs)
        except (FileNotFoundError, StoreError):
            raise
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno == errno.ENOENT:
                raise FileNotFoundError(errno.ENOENT, f"{self.url_of(key)} does not exist") from None
            if _error_code(exc) in ("NoSuchKey", "404"):
                raise FileNotFoundError(errno.ENOENT, f"{self.url_of(key)} does not exist") from None
            attempts = retrying.statistics.get("attempt_number", 1)
            raise StoreError(f"Cannot {what} {self.url_of(key)!r}: {type(exc).__name__}: {exc} "
                             f"(after {attempts} attempt{'s' if attempts > 1 else ''}).") from exc

    def _require_writer(self, what, key):
        if not self.conditional and not self.single_writer:
            raise StoreError(
                f"Cannot {what} {self.url_of(key)!r}: this file system ({self.fs.protocol!r}) offers no conditional "
                "writes, so the store cannot keep two writers apart. Declare that only one process writes it "
                "with single_writer=True (reads need nothing).")

    # ------------------------------------------------------------------------------------ S3 calls
    def _s3_put(self, key, data, **conditions):
        return self.fs.call_s3("put_object", Bucket=self.bucket, Key=self._s3_key(key), Body=data, **conditions)

    def _conditional_put(self, what, key, data, **conditions):
        """True when written, False when the condition failed (412; 409 is retried as transient)."""
        def put():
            try:
                self._s3_put(key, data, **conditions)
            except Exception as exc:
                if _error_code(exc) in ("PreconditionFailed", "412"):
                    return False
                raise
            return True

        return self._run(what, key, put)

    def _s3_read(self, key):
        response = self.fs.call_s3("get_object", Bucket=self.bucket, Key=self._s3_key(key))
        body = response["Body"]
        from fsspec.asyn import sync

        async def read_all():
            async with body:  # aiobotocore's streaming body
                return await body.read()

        data = sync(self.fs.loop, read_all)
        length = response.get("ContentLength")
        if length is not None and len(data) != length:
            raise ConnectionError(f"short read of {self.url_of(key)}: {len(data)} of {length} bytes")
        return data, response["ETag"]

    # ---------------------------------------------------------------------------------- operations
    def read(self, key):
        path = self._path(key)
        if self.conditional:
            return self._run("read", key, self._s3_read, key)

        def read():
            data = self.fs.cat_file(path)
            return data, _content_tag(data)

        return self._run("read", key, read)

    def write(self, key, data, *, durable=True):
        self._require_writer("write", key)
        if self.conditional:
            response = self._run("write", key, self._s3_put, key, data)
            return response.get("ETag")
        self._run("write", key, self.fs.pipe_file, self._path(key), data)
        return _content_tag(data)

    def create(self, key, data, *, durable=True):
        self._require_writer("create", key)
        if self.conditional:
            return self._conditional_put("create", key, data, IfNoneMatch="*")
        path = self._path(key)
        if self._run("check", key, self.fs.exists, path):
            return False
        self._run("create", key, self.fs.pipe_file, path, data)
        return True

    def compare_and_swap(self, key, data, tag, *, durable=True):
        self._require_writer("replace", key)
        if self.conditional:
            if tag is None:
                return self.create(key, data)
            return self._conditional_put("replace", key, data, IfMatch=tag)
        try:
            current = self.read(key)[1]
        except FileNotFoundError:
            current = None
        if current != tag:
            return False
        self._run("replace", key, self.fs.pipe_file, self._path(key), data)
        return True

    def list(self, prefix=""):
        path = self._path(prefix)

        def listing():
            try:
                entries = self.fs.ls(path, detail=False, refresh=True)
            except FileNotFoundError:
                return []
            except TypeError:  # a file system whose ls takes no refresh=
                self.fs.invalidate_cache(path)
                entries = self.fs.ls(path, detail=False)
            names = {posixpath.basename(str(e).rstrip("/")) for e in entries}
            return sorted(n for n in names if n and str(posixpath.join(path, n)).strip("/") != path.strip("/"))

        return self._run("list", prefix, listing)

    def delete(self, key):
        self._require_writer("delete", key)
        path = self._path(key)

        def remove():
            try:
                self.fs.rm_file(path)
            except FileNotFoundError:
                return False
            return True

        if self.conditional:  # S3 deletes are idempotent: ask first, to answer "existed"
            try:
                self.read(key)
            except FileNotFoundError:
                return False
            self._run("delete", key, self.fs.call_s3, "delete_object", Bucket=self.bucket, Key=self._s3_key(key))
            return True
        return self._run("delete", key, remove)


def _content_tag(data):
    from ml_toolbox.store import _io

    return _io.digest_bytes(data, "blake3")[:32]


def default_cache_dir():
    """Where verified artifacts downloaded from object storage are cached, keyed by their BLAKE3 digest:
    ``$ML_TOOLBOX_CACHE`` or ``~/.cache/ml_toolbox/store``."""
    return os.environ.get("ML_TOOLBOX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ml_toolbox",
                                                              "store")
