"""The store on object storage: a backend over any fsspec URL (``s3://bucket/prefix``, ``gs://``, ``az://``).

:class:`FsspecBackend` implements :class:`~ml_toolbox.store.StoreBackend` over an fsspec file system.
It uses each object store's conditional writes, as its fsspec implementation exposes them:

- S3 and S3-compatible stores (s3fs): a create is a ``PutObject`` with ``If-None-Match: *`` (refused
  when the key exists), a compare-and-swap a ``PutObject`` with ``If-Match: <ETag>``; a read is one
  ``GetObject`` returning the bytes and their ETag together;
- Google Cloud Storage (gcsfs): a create is an upload with ``ifGenerationMatch=0`` (gcsfs's
  ``pipe_file(mode="create")``), a compare-and-swap an upload with ``ifGenerationMatch=<generation>``;
  a read is one media download returning the bytes and their ``x-goog-generation``;
- Azure Blob Storage (adlfs): a create is an upload with ``If-None-Match: *`` (adlfs's
  ``pipe_file(mode="create")``), a compare-and-swap an upload with ``If-Match: <ETag>`` (adlfs passes
  ``etag=`` and ``match_condition=`` through to the Azure SDK); a read is one download with its ETag.

A conditional write refused because the object changed is told apart from one whose answer was lost
(the write happened, the connection did not survive, and the retry was refused): when the object now
holds exactly the bytes written, the write was this one.

Transient errors (timeouts, connection resets, 5xx, throttling) are retried with tenacity, within
``retries`` attempts and ``retry_timeout`` seconds; what still fails is a
:class:`~ml_toolbox.store.StoreError` naming the URL and the operation.

A file system that offers no conditional writes (``memory://``, ``file://``, HTTP...) cannot keep two
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
        status = getattr(exc, "status_code", None)  # the Azure SDK's HttpResponseError
        if not isinstance(status, int) and not isinstance(exc, OSError):
            status = getattr(exc, "code", None)  # gcsfs's HttpError
        if isinstance(status, int) and status >= 400:
            return str(status)
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _dialect(fs):
    """Which conditional writes ``fs`` offers: "s3", "gcs", "azure", or None."""
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    if any(p in ("s3", "s3a") for p in protocols) and hasattr(fs, "call_s3"):
        return "s3"
    if any(p in ("gs", "gcs") for p in protocols) and hasattr(fs, "call") and hasattr(fs, "_location"):
        return "gcs"
    if any(p in ("az", "abfs", "abfss") for p in protocols) and hasattr(fs, "service_client"):
        return "azure"
    return None


def _transient(exc):
    if isinstance(exc, (FileNotFoundError, FileExistsError, StoreError, PermissionError)):
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
    retry_timeout : float, default=60.0
        Seconds after which an operation still failing transiently is given up, whatever ``retries``
        says (the client library's own retries, set in ``storage_options``, come on top of this).
    timeout : float, default=30.0
        Seconds a request may wait for the server to accept its connection or send its next bytes; a
        request that waits longer fails as a transient error (and is retried, as above). Without it
        gcsfs waits forever for an answer that never comes. It is set in each client's own options
        (``requests_timeout`` for gcsfs, ``connect_timeout``/``read_timeout`` for s3fs,
        ``connection_timeout``/``read_timeout`` for adlfs) unless ``storage_options`` sets them. A read or
        write of the store's small files (markers, manifests, aliases: everything but artifacts) is
        given up after ``retry_timeout`` seconds in all, the client's own retries included.

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

    def __init__(self, url, storage_options=None, *, single_writer=False, retries=5, retry_timeout=60.0,
                 timeout=30.0):
        import fsspec.core

        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout={timeout!r}: expected a number of seconds > 0.")
        self.timeout = float(timeout)
        self.single_writer = bool(single_writer)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 1:
            raise ValueError(f"retries={retries!r}: expected a whole number of attempts >= 1.")
        if isinstance(retry_timeout, bool) or not isinstance(retry_timeout, (int, float)) or not retry_timeout > 0:
            raise ValueError(f"retry_timeout={retry_timeout!r}: expected a number of seconds > 0.")
        self.retries = retries
        self.retry_timeout = float(retry_timeout)
        self.wait = None  # tenacity's wait between attempts (None: exponential, 50 ms to 2 s)
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url, **_with_timeouts(url, self.storage_options,
                                                                                  self.timeout))
        except ImportError as exc:
            protocol = url.split("://", 1)[0]
            extra = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure"}.get(protocol)
            hint = f"pip install 'ml_toolbox[{extra}]'" if extra else "install the fsspec implementation for it"
            raise ImportError(f"The store URL {url!r} needs an fsspec file system for {protocol!r}: {hint}.") from exc
        self.root = self.root.rstrip("/")
        self.dialect = _dialect(self.fs)
        self.conditional = self.dialect is not None
        if self.conditional:
            self.bucket, _, self.key_prefix = self.root.partition("/")

    def __repr__(self):
        return f"FsspecBackend({self.url!r})"

    def __getstate__(self):
        return {"url": self.url, "storage_options": self.storage_options, "single_writer": self.single_writer,
                "retries": self.retries, "retry_timeout": self.retry_timeout, "timeout": self.timeout}

    def __setstate__(self, state):
        self.__init__(state["url"], state["storage_options"], single_writer=state["single_writer"],
                      retries=state["retries"], retry_timeout=state.get("retry_timeout", 60.0),
                      timeout=state.get("timeout", 30.0))

    def _bound(self, key):
        """The whole-request time limit of a GCS call on ``key`` (fsspec's ``sync`` cancels it then): the
        store's small files get ``retry_timeout``; artifacts (any size) only the per-read ``timeout``."""
        return None if "/objects/" in f"/{key}" else self.retry_timeout

    # ------------------------------------------------------------------------------------ helpers
    def _path(self, key):
        parts = key.split("/") if key else []
        if any(not p or p in (".", "..") for p in parts):
            raise StoreError(f"Invalid key {key!r} in the store {self.url!r}: expected '/'-separated names.")
        return posixpath.join(self.root, *parts) if parts else self.root

    def _s3_key(self, key):  # the object's name in its bucket (or container)
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
            retry=tenacity.retry_if_exception(_transient),
            stop=tenacity.stop_after_attempt(self.retries) | tenacity.stop_after_delay(self.retry_timeout),
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
            elapsed = retrying.statistics.get("delay_since_first_attempt", 0.0)
            raise StoreError(f"Cannot {what} {self.url_of(key)!r}: {type(exc).__name__}: {exc} "
                             f"(after {attempts} attempt{'s' if attempts > 1 else ''} in {elapsed:.1f} s).") from exc

    def _require_writer(self, what, key):
        if not self.conditional and not self.single_writer:
            raise StoreError(
                f"Cannot {what} {self.url_of(key)!r}: this file system ({self.fs.protocol!r}) offers no conditional "
                "writes, so the store cannot keep two writers apart. Declare that only one process writes it "
                "with single_writer=True (reads need nothing).")

    # ----------------------------------------------------------------- each cloud's conditional writes
    def _put(self, key, data, mode, tag=None):
        """One upload of ``key``: ``mode`` "overwrite", "create" (only if absent) or "swap" (only if its tag
        is still ``tag``). Returns the new tag (or True where the cloud does not answer one), or None when
        the condition failed."""
        if not self.conditional:
            self.fs.pipe_file(self._path(key), data)
            return _content_tag(data)
        name = self._s3_key(key)
        if self.dialect == "s3":
            conditions = {"create": {"IfNoneMatch": "*"}, "swap": {"IfMatch": tag}}.get(mode, {})
            try:
                response = self.fs.call_s3("put_object", Bucket=self.bucket, Key=name, Body=data, **conditions)
            except Exception as exc:
                if _error_code(exc) in ("PreconditionFailed", "412"):
                    return None
                raise
            return response.get("ETag") or True
        if self.dialect == "gcs":
            if mode == "create":  # gcsfs's own create-only upload (ifGenerationMatch=0)
                from fsspec.asyn import sync

                try:  # gcsfs's _pipe_file, through sync to bound it (see _bound)
                    sync(self.fs.loop, self.fs._pipe_file, self._path(key), data, mode="create",
                         timeout=self._bound(key))
                except FileExistsError:  # gcsfs's 412
                    return None
                return True
            return self._gcs_upload(name, data, {"ifGenerationMatch": str(tag)} if mode == "swap" else {},
                                    self._bound(key))
        if self.dialect == "azure":
            if mode == "create":  # adlfs's create-only upload (overwrite=False: If-None-Match: *)
                try:
                    self.fs.pipe_file(self._path(key), data, mode="create")
                except FileExistsError:
                    return None
                return True
            options = {}
            if mode == "swap":
                from azure.core import MatchConditions

                options = {"etag": tag, "match_condition": MatchConditions.IfNotModified}
            try:
                out = self.fs.pipe_file(self._path(key), data, overwrite=True, **options)
            except Exception as exc:
                if _error_code(exc) == "412":
                    return None
                raise
            return (out or {}).get("etag") or True
        raise AssertionError(self.dialect)

    def _gcs_upload(self, name, data, params, bound=None):
        """A multipart upload (JSON metadata, then the bytes) of the object ``name``, under ``params``'
        preconditions; its new generation, or None when a precondition failed (gcsfs raises 412 as
        FileExistsError)."""
        import json
        import uuid
        from urllib.parse import quote

        boundary = uuid.uuid4().hex  # random: it cannot occur in the bytes by accident
        body = (f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{json.dumps({'name': name})}"
                f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
        body += bytes(data) + f"\r\n--{boundary}--".encode()
        try:
            out = self.fs.call("POST", f"{self.fs._location}/upload/storage/v1/b/{quote(self.bucket, safe='')}/o",
                               uploadType="multipart", data=body, json_out=True,
                               headers={"Content-Type": f'multipart/related; boundary="{boundary}"'},
                               timeout=bound, **params)
        except FileExistsError:
            return None
        return str(out.get("generation") or "") or True

    def _conditional_put(self, what, key, data, mode, tag=None):
        """True when written, False when the condition failed (409 is retried as transient). A refusal of
        a retried write whose first answer was lost is recognised: the object then holds these bytes."""
        def put():
            if self._put(key, data, mode, tag) is not None:
                return True
            try:
                current = self._read_tagged(key)[0]
            except Exception as exc:  # gone since: the condition failed against someone else's change
                if isinstance(exc, FileNotFoundError) or _error_code(exc) in ("NoSuchKey", "404"):
                    return False
                raise
            return bytes(current) == bytes(data)

        return self._run(what, key, put)

    def _read_tagged(self, key):
        """The bytes of ``key`` and its tag (ETag or generation), read together in one request."""
        name = self._s3_key(key)
        if self.dialect == "gcs":
            headers, data = self.fs.call("GET", "b/{}/o/{}", self.bucket, name, alt="media", timeout=self._bound(key))
            generation = headers.get("x-goog-generation")
            if generation is None:
                raise StoreError(f"{self.url_of(key)!r}: the server sent no x-goog-generation with the object, "
                                 "so it cannot be compared-and-swapped.")
            return data, generation
        if self.dialect == "azure":
            from fsspec.asyn import sync

            async def download():
                async with self.fs.service_client.get_blob_client(container=self.bucket, blob=name) as client:
                    stream = await client.download_blob(connection_timeout=self.timeout, read_timeout=self.timeout)
                    return await stream.readall(), stream.properties.etag

            return sync(self.fs.loop, download)
        response = self.fs.call_s3("get_object", Bucket=self.bucket, Key=name)
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
            return self._run("read", key, self._read_tagged, key)

        def read():
            data = self.fs.cat_file(path)
            return data, _content_tag(data)

        return self._run("read", key, read)

    def write(self, key, data, *, durable=True):
        self._require_writer("write", key)
        tag = self._run("write", key, self._put, key, data, "overwrite")
        return tag if isinstance(tag, str) else None

    def create(self, key, data, *, durable=True):
        self._require_writer("create", key)
        if self.conditional:
            return self._conditional_put("create", key, data, "create")
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
            return self._conditional_put("replace", key, data, "swap", tag)
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
            self.fs.invalidate_cache(path)  # adlfs ignores refresh=: its listings are cached until invalidated
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

    def modified(self, key):
        """When ``key`` was last written.

        Parameters
        ----------
        key : str
            A '/'-separated key under the store's URL.

        Returns
        -------
        float or None
            Seconds since the epoch, or None when the file system does not say.
        """
        info = self._run("stat", key, self.fs.info, self._path(key))
        return _timestamp(info)

    def delete(self, key):
        self._require_writer("delete", key)
        path = self._path(key)

        def remove():
            try:
                self.fs.rm_file(path)
            except FileNotFoundError:
                return False
            return True

        if self.dialect == "s3":  # S3 deletes are idempotent: ask first, to answer "existed"
            try:
                self.read(key)
            except FileNotFoundError:
                return False
            self._run("delete", key, self.fs.call_s3, "delete_object", Bucket=self.bucket, Key=self._s3_key(key))
            return True
        return self._run("delete", key, remove)


def _with_timeouts(url, options, timeout):
    """``options`` with each client's own connect and read timeouts set to ``timeout`` where not given."""
    protocol = url.split("://", 1)[0].lower()
    options = dict(options)
    if protocol in ("gs", "gcs"):
        if options.get("requests_timeout") is None:  # gcsfs's default: aiohttp with no timeout at all
            import aiohttp

            options["requests_timeout"] = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
    elif protocol in ("s3", "s3a"):
        config = dict(options.get("config_kwargs") or {})
        config.setdefault("connect_timeout", timeout)
        config.setdefault("read_timeout", timeout)
        options["config_kwargs"] = config
    elif protocol in ("az", "abfs", "abfss"):
        options.setdefault("connection_timeout", timeout)
        options.setdefault("read_timeout", timeout)
    return options


def _timestamp(info):
    """The modification time in an fsspec ``info`` dict, whatever its implementation calls it."""
    import datetime

    for field in ("LastModified", "last_modified", "updated", "mtime", "created"):
        value = info.get(field)
        if isinstance(value, str):
            try:
                value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
        if isinstance(value, datetime.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=datetime.timezone.utc)
            return value.timestamp()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _content_tag(data):
    from ml_toolbox.store import _io

    return _io.digest_bytes(data, "blake3")[:32]


def default_cache_dir():
    """Where verified artifacts downloaded from object storage are cached, keyed by their BLAKE3 digest:
    ``$ML_TOOLBOX_CACHE`` or ``~/.cache/ml_toolbox/store``."""
    return os.environ.get("ML_TOOLBOX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ml_toolbox",
                                                              "store")
