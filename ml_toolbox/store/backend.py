"""Where a store keeps its files: a small backend interface, and the local file system as the first backend.

The store asks a backend for six things, each of which object storage (S3, GCS, Azure through fsspec)
offers natively: read a file's bytes (with an opaque version tag, an ETag there), write bytes atomically,
create a file only if it is absent (``If-None-Match: *``), replace a file only if it still has the tag it
was read with (compare-and-swap, ``If-Match: <etag>``), list a directory, and delete a file. Keys are
relative, ``/``-separated paths such as ``"churn/aliases.json"``.

:class:`LocalBackend` keeps them in a directory: atomic writes are a temporary file, fsync and rename;
create-if-absent is a hard link (which fails if the name exists); compare-and-swap holds a lock around
the comparison and the rename. It never follows a symlink, and turns a read-only file system into a
:class:`~ml_toolbox.store.StoreError` naming the file.
"""

import abc
import errno
import os
import re
import stat
import threading
import uuid

from ml_toolbox._docstrings import inherit_docstrings
from ml_toolbox.store import _io
from ml_toolbox.store.errors import StoreError

__all__ = ["StoreBackend", "LocalBackend"]

_PART_RE = re.compile(r"[A-Za-z0-9_.\-]+")


class StoreBackend(abc.ABC):
    """The operations a store needs from where it keeps its files.

    Implementations raise ``FileNotFoundError`` for a missing key and :class:`StoreError` (naming the
    key) when the medium refuses a write. Tags are opaque strings that change whenever the content does.

    Examples
    --------
    A backend that keeps the files in memory (for tests):

    >>> from ml_toolbox.store import StoreBackend
    >>> class MemoryBackend(StoreBackend):
    ...     def __init__(self):
    ...         self.files = {}
    ...     def read(self, key):
    ...         data = self.files[key]
    ...         return data, str(hash(data))
    ...     def write(self, key, data, *, durable=True):
    ...         self.files[key] = data
    ...         return str(hash(data))
    ...     def create(self, key, data, *, durable=True):
    ...         return self.files.setdefault(key, data) is data
    ...     def compare_and_swap(self, key, data, tag, *, durable=True):
    ...         current = self.files.get(key)
    ...         if (None if current is None else str(hash(current))) != tag:
    ...             return False
    ...         self.files[key] = data
    ...         return True
    ...     def list(self, prefix=""):
    ...         start = prefix.rstrip("/") + "/" if prefix else ""
    ...         return sorted({k[len(start):].split("/")[0] for k in self.files if k.startswith(start)})
    ...     def delete(self, key):
    ...         return self.files.pop(key, None) is not None
    >>> backend = MemoryBackend()
    >>> backend.create("churn/aliases.json", b"{}"), backend.create("churn/aliases.json", b"[]")
    (True, False)
    >>> backend.list("churn")
    ['aliases.json']
    """

    @abc.abstractmethod
    def read(self, key):
        """Read the bytes stored at a key, with their tag.

        Parameters
        ----------
        key : str
            A ``/``-separated path under the store's root (``"churn/v0001/manifest.json"``).

        Returns
        -------
        data : bytes
            The content.
        tag : str
            An opaque string that changes whenever the content does (for :meth:`compare_and_swap`).

        Raises
        ------
        FileNotFoundError
            When the key does not exist.
        """

    @abc.abstractmethod
    def write(self, key, data, *, durable=True):
        """Replace (or create) a key atomically: readers see the old or the new bytes.

        Parameters
        ----------
        key : str
            A ``/``-separated path under the store's root (``"churn/v0001/manifest.json"``).
        data : bytes
            The new content.
        durable : bool, default=True
            Make the write survive a power cut before returning (fsync on a local disk; object storage is
            always durable).

        Returns
        -------
        str
            The new tag.

        Raises
        ------
        StoreError
            When the medium refuses the write (naming the key).
        """

    @abc.abstractmethod
    def create(self, key, data, *, durable=True):
        """Create a key only if it does not exist.

        Parameters
        ----------
        key : str
            A ``/``-separated path under the store's root (``"churn/v0001/manifest.json"``).
        data : bytes
            The new content.
        durable : bool, default=True
            Make the write survive a power cut before returning (fsync on a local disk; object storage is
            always durable).

        Returns
        -------
        bool
            True if created, False if the key existed (nothing written).
        """

    @abc.abstractmethod
    def compare_and_swap(self, key, data, tag, *, durable=True):
        """Replace a key only if its tag is still the one read.

        Parameters
        ----------
        key : str
            A ``/``-separated path under the store's root (``"churn/v0001/manifest.json"``).
        data : bytes
            The new content.
        tag : str or None
            The tag :meth:`read` returned; None: write only if the key is absent.
        durable : bool, default=True
            Make the write survive a power cut before returning (fsync on a local disk; object storage is
            always durable).

        Returns
        -------
        bool
            True when written; False when someone changed it first (read it again and retry).
        """

    @abc.abstractmethod
    def list(self, prefix=""):
        """List the entries directly under a directory.

        Parameters
        ----------
        prefix : str, default=""
            The directory, as a key (``""``: the root).

        Returns
        -------
        list of str
            The entry names, sorted (empty when the directory does not exist).
        """

    @abc.abstractmethod
    def delete(self, key):
        """Remove a key.

        Parameters
        ----------
        key : str
            A ``/``-separated path under the store's root (``"churn/v0001/manifest.json"``).

        Returns
        -------
        bool
            True if it existed.
        """

    def local_path(self, key):
        """Return the key's path on the local file system, if it has one.

        Without one (object storage), the store reads artifacts through :meth:`read` and cannot
        memory-map them.

        Parameters
        ----------
        key : str
            A ``/``-separated path under the store's root (``"churn/v0001/manifest.json"``).

        Returns
        -------
        str or None
            The path, or None.
        """
        return None


def _tag(data):
    return _io.digest_bytes(data, "blake3")[:32]


@inherit_docstrings
class LocalBackend(StoreBackend):
    """A store's files in the directory ``root`` on the local file system.

    Parameters
    ----------
    root : str or path-like
        The store's directory (it must exist).
    tmp : str, default=".tmp"
        The directory under ``root`` that holds temporary files before their rename.

    Examples
    --------
    >>> import tempfile
    >>> backend = LocalBackend(tempfile.mkdtemp())
    >>> backend.create("churn/.kind", b"pipeline")
    True
    >>> backend.create("churn/.kind", b"state")
    False
    >>> data, tag = backend.read("churn/.kind")
    >>> backend.compare_and_swap("churn/.kind", b"model", "stale-tag"), backend.compare_and_swap("churn/.kind", b"model", tag)
    (False, True)
    >>> backend.list("churn")
    ['.kind']
    """

    def __init__(self, root, tmp=".tmp"):
        self.root = os.path.abspath(os.fspath(root))
        self.tmp = tmp
        self._cas = threading.Lock()

    def __repr__(self):
        return f"LocalBackend({self.root!r})"

    def __getstate__(self):  # a copy (pickled, or in another process) has its own thread lock
        return {"root": self.root, "tmp": self.tmp}

    def __setstate__(self, state):
        self.__init__(state["root"], state["tmp"])

    # ------------------------------------------------------------------------------------ paths
    def local_path(self, key):
        parts = key.split("/")
        if not key or any(not _PART_RE.fullmatch(p) or p in (".", "..") for p in parts):
            raise StoreError(f"Invalid key {key!r} in the store {self.root!r}: expected '/'-separated names.")
        path = os.path.join(self.root, *parts)
        current = self.root
        for part in parts[:-1]:  # no directory on the way is a symlink (the file itself: O_NOFOLLOW)
            current = os.path.join(current, part)
            try:
                mode = os.lstat(current).st_mode
            except FileNotFoundError:
                break
            if stat.S_ISLNK(mode):
                raise StoreError(f"{current!r} is a symlink; the store never follows one.")
        return path

    def _failed(self, path, exc, what):
        if isinstance(exc, FileNotFoundError):
            return exc
        if exc.errno == errno.ELOOP:
            return StoreError(f"{path!r} is a symlink; the store never follows one.")
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return StoreError(f"Cannot {what} {path!r}: the store is read-only ({exc.strerror}).")
        return StoreError(f"Cannot {what} {path!r}: {exc}.")

    def _temporary(self, path, data, durable):
        directory = os.path.join(self.root, self.tmp)
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            os.makedirs(directory, exist_ok=True)
            _io.write_file(tmp, data, fsync=durable)
        except OSError as exc:
            raise self._failed(path, exc, "write") from exc
        return tmp

    # ---------------------------------------------------------------------------- operations
    def read(self, key):
        path = self.local_path(key)
        try:
            data = _io.read_file(path)
        except OSError as exc:
            raise self._failed(path, exc, "read") from None
        return data, _tag(data)

    def write(self, key, data, *, durable=True):
        path = self.local_path(key)
        tmp = self._temporary(path, data, durable)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.replace(tmp, path)
        except OSError as exc:
            _unlink(tmp)
            raise self._failed(path, exc, "write") from exc
        if durable:
            _io.fsync_dir(os.path.dirname(path))
        return _tag(data)

    def create(self, key, data, *, durable=True):
        path = self.local_path(key)
        tmp = self._temporary(path, data, durable)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.link(tmp, path)  # atomic, and refused when the name exists (a symlink included)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV) or \
                    isinstance(exc, PermissionError) and not os.access(os.path.dirname(path), os.W_OK):
                raise self._failed(path, exc, "create") from exc
            with self._cas, _io.file_lock(os.path.join(self.root, ".cas.lock")):  # no hard links here
                if os.path.lexists(path):
                    return False
                os.replace(tmp, path)
                tmp = None
        finally:
            if tmp is not None:
                _unlink(tmp)
        if durable:
            _io.fsync_dir(os.path.dirname(path))
        return True

    def compare_and_swap(self, key, data, tag, *, durable=True):
        path = self.local_path(key)
        with self._cas, _io.file_lock(os.path.join(self.root, ".cas.lock")):
            try:
                current = _tag(_io.read_file(path))
            except FileNotFoundError:
                current = None
            except OSError as exc:
                raise self._failed(path, exc, "read") from None
            if current != tag:
                return False
            self.write(key, data, durable=durable)
        return True

    def list(self, prefix=""):
        path = self.local_path(prefix) if prefix else self.root
        try:
            return sorted(os.listdir(path))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def delete(self, key):
        path = self.local_path(key)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise self._failed(path, exc, "delete") from exc
        return True


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass
