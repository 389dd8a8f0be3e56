"""Where a store keeps its files: a small backend interface, and the local file system as the first backend.

The store asks a backend for six things, each of which object storage (S3, GCS, Azure through fsspec)
offers natively: read a file's bytes (with an opaque version tag, an ETag there), write bytes atomically,
create a file only if it is absent (``If-None-Match: *``), replace a file only if it still has the tag it
was read with (compare-and-swap, ``If-Match: <etag>``), list a directory, and delete a file. Keys are
relative, ``/``-separated paths such as ``"churn/aliases.json"``.

A new version is written through a :class:`Staging` the backend gives (:meth:`StoreBackend.stage`): the
artifact is written into it, stored, and the version committed under its number with its manifest, all
or nothing. By default (object storage) the artifact is stored under its digest and the manifest created
only if absent; :class:`LocalBackend` stages in a private directory renamed into place.

:class:`LocalBackend` keeps them in a directory: atomic writes are a temporary file, fsync and rename;
create-if-absent is a hard link (which fails if the name exists); compare-and-swap holds a lock around
the comparison and the rename. It never follows a symlink, and turns a read-only file system into a
:class:`~ml_toolbox.store.StoreError` naming the file.
"""

import abc
import errno
import io
import os
import re
import shutil
import stat
import threading
import uuid

from ml_toolbox._docstrings import inherit_docstrings
from ml_toolbox.store import _io
from ml_toolbox.store.errors import StoreError

__all__ = ["StoreBackend", "LocalBackend", "Staging"]

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
        """Read the bytes stored at ``key``.

        Parameters
        ----------
        key : str
            A relative, ``/``-separated key.

        Returns
        -------
        data : bytes
            The stored bytes.
        tag : str
            An opaque tag that changes whenever the bytes do (an ETag on S3).

        Raises
        ------
        FileNotFoundError
            When the key does not exist.
        """

    @abc.abstractmethod
    def write(self, key, data, *, durable=True):
        """Replace (or create) ``key`` with ``data`` atomically: readers see the old or the new bytes.

        Parameters
        ----------
        key : str
            A relative, ``/``-separated key.
        data : bytes
            The new content.
        durable : bool, default=True
            Make the write survive a power cut before returning (fsync), where the medium needs it.

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
        """Create ``key`` with ``data`` only if it does not exist (atomically, against every writer).

        Parameters
        ----------
        key : str
            A relative, ``/``-separated key.
        data : bytes
            The content.
        durable : bool, default=True
            As for :meth:`write`.

        Returns
        -------
        bool
            True if created, False if the key existed.
        """

    @abc.abstractmethod
    def compare_and_swap(self, key, data, tag, *, durable=True):
        """Replace ``key`` with ``data`` only if its tag is still ``tag`` (atomically).

        Parameters
        ----------
        key : str
            A relative, ``/``-separated key.
        data : bytes
            The new content.
        tag : str or None
            The tag :meth:`read` returned; None: write only if the key is absent.
        durable : bool, default=True
            As for :meth:`write`.

        Returns
        -------
        bool
            True when written; False when someone changed it first (read it again and retry).
        """

    @abc.abstractmethod
    def list(self, prefix=""):
        """List the entries directly under the directory ``prefix``.

        Parameters
        ----------
        prefix : str, default=""
            A relative, ``/``-separated key; empty for the store's root.

        Returns
        -------
        list of str
            The entries' names, sorted (empty when ``prefix`` does not exist).
        """

    @abc.abstractmethod
    def delete(self, key):
        """Remove ``key``.

        Parameters
        ----------
        key : str
            A relative, ``/``-separated key.

        Returns
        -------
        bool
            True if it existed.
        """

    def delete_tree(self, prefix):
        """Remove the keys directly under ``prefix`` (a version's files), by default one :meth:`delete` each.

        Parameters
        ----------
        prefix : str
            A relative, ``/``-separated key.

        Raises
        ------
        FileNotFoundError
            When nothing is under ``prefix``.
        """
        entries = self.list(prefix)
        if not entries:
            raise FileNotFoundError(prefix)
        for entry in entries:
            self.delete(f"{prefix}/{entry}")

    def exists(self, key):
        """Tell whether ``key`` exists (by default: whether it can be read).

        Parameters
        ----------
        key : str
            A relative, ``/``-separated key.

        Returns
        -------
        bool
            True when it exists.
        """
        try:
            self.read(key)
        except FileNotFoundError:
            return False
        return True

    def url_of(self, key):
        """Name where ``key`` is, as error messages show it.

        Parameters
        ----------
        key : str
            A relative, ``/``-separated key.

        Returns
        -------
        str
            A path or a URL (by default the key itself).
        """
        return key

    def stage(self, name, token="", *, durable=True):
        """Begin writing a new version of ``name``: the :class:`Staging` its files go through.

        By default the content-addressed layout object storage uses: an artifact is kept in memory while
        it is written, stored with :meth:`write` under ``<name>/objects/<digest>/`` (its key is its
        digest: a concurrent upload of it writes the same bytes), and the version is committed by
        :meth:`create` of its manifest, which fails if another writer took that number first.

        Parameters
        ----------
        name : str
            The name the version is saved under.
        token : str, default=""
            The saving store object's staging token (the local backend names its staging directory so).
        durable : bool, default=True
            As for :meth:`write`.

        Returns
        -------
        Staging
            Where the new version's files go until it is committed (or discarded).
        """
        return Staging(self, name, durable)

    def local_path(self, key):
        """Give the key's path on the local file system: an extra capability, None where there is none.

        With a path, the store opens the file itself, once and without following links (the verified
        load), and can memory-map its arrays; without, it reads artifacts through :meth:`read` into
        private memory, verifies them there, and refuses ``mmap_mode``.

        Parameters
        ----------
        key : str
            A relative, ``/``-separated key.

        Returns
        -------
        str or None
            The path, or None (object storage).
        """
        return None


class Staging:
    """A new version's files on their way into a backend: written, stored, then committed all at once.

    The store writes each file into :meth:`target` (what ``_io.write_pickle_hashed`` and
    ``_io.write_bytes_hashed`` write to: a path, or an in-memory file), calls :meth:`store` with its
    digest, then :meth:`commit` with the version's key and manifest once it has a number; :meth:`discard`
    drops whatever was not committed. This class is the object-storage layout (see
    :meth:`StoreBackend.stage`); :class:`LocalBackend` has its own.

    Parameters
    ----------
    backend : StoreBackend
        Where the files go.
    name : str
        The name the version is saved under.
    durable : bool
        As for :meth:`StoreBackend.write`.

    Examples
    --------
    >>> import uuid
    >>> from ml_toolbox.store.objstore import FsspecBackend
    >>> backend = FsspecBackend(f"memory://staging-{uuid.uuid4().hex}", single_writer=True)
    >>> staging = backend.stage("churn")
    >>> staging.target("artifact.json").write(b"{}")
    2
    >>> staging.store("artifact.json", "ab12" * 8)
    {'location': 'objects/ab12ab12ab12ab12ab12ab12ab12ab12'}
    >>> staging.commit("churn/v000001", b'{"version": 1}'), staging.commit("churn/v000001", b'{"version": 1}')
    (True, False)
    >>> backend.list("churn")
    ['objects', 'v000001']
    """

    def __init__(self, backend, name, durable=True):
        self.backend = backend
        self.name = name
        self.durable = durable
        self._buffers = {}

    def target(self, filename):
        """Where to write the file ``filename``: an in-memory file here (a path for the local backend).

        Parameters
        ----------
        filename : str
            The file's name in its version (``artifact.joblib``...).

        Returns
        -------
        io.BytesIO or str
            An in-memory file to write to, or (local backend) the path of a new file to create.
        """
        buffer = self._buffers[filename] = io.BytesIO()
        return buffer

    def data(self, filename):
        """The bytes written to ``filename`` (kept in memory here; None where they are not).

        Parameters
        ----------
        filename : str
            A file written to :meth:`target`.

        Returns
        -------
        memoryview or None
            Its bytes, or None where they were written straight to their file.
        """
        buffer = self._buffers.get(filename)
        return None if buffer is None else buffer.getbuffer()

    def store(self, filename, digest):
        """Store the written file (here: upload it under its digest) and return the manifest fields it needs.

        Parameters
        ----------
        filename : str
            A file written to :meth:`target`.
        digest : str
            Its digest (hex), naming its place.

        Returns
        -------
        dict
            Fields for the manifest (here ``{"location": "objects/<digest>"}``).
        """
        location = f"objects/{digest}"
        self.backend.write(f"{self.name}/{location}/{filename}", self._buffers[filename].getvalue(),
                           durable=self.durable)
        return {"location": location}

    def commit(self, version_key, manifest):
        """Make the version visible under ``version_key`` with its manifest, only if that key is free.

        Parameters
        ----------
        version_key : str
            ``<name>/v<number>``.
        manifest : bytes
            The manifest, written last, as ``manifest.json``.

        Returns
        -------
        bool
            True when committed; False when the number was taken (number it again and retry).
        """
        return self.backend.create(f"{version_key}/manifest.json", manifest, durable=self.durable)

    def discard(self):
        """Drop what was not committed (stored artifacts stay: they are content-addressed and shared)."""
        self._buffers.clear()


class _LocalStaging(Staging):
    """A version staged in ``<root>/<tmp>/<token>-<random>`` (its files opened new, never through a
    symlink), renamed into ``<name>/v<number>`` whole: a version appears complete or not at all."""

    def __init__(self, backend, name, token, durable):
        super().__init__(backend, name, durable)
        self.key = f"{backend.tmp}/{token}-{os.urandom(16).hex()}"
        self.path = backend.local_path(f"{self.key}/manifest.json")[:-len("/manifest.json")]  # no symlinked tmp
        os.mkdir(self.path)
        self.committed = False

    def target(self, filename):
        return self.backend.local_path(f"{self.key}/{filename}")

    def data(self, filename):
        return None

    def store(self, filename, digest):
        return {}  # written in place (and fsynced with durable) by the writer

    def commit(self, version_key, manifest):
        path = os.path.join(self.path, "manifest.json")
        _unlink(path)  # a commit refused at a taken number left its manifest here: this one replaces it
        _io.write_file(path, manifest, fsync=self.durable)
        if self.durable:
            _io.fsync_dir(self.path)
        target = self.backend.local_path(f"{version_key}/manifest.json")[:-len("/manifest.json")]
        parent = os.path.dirname(target)
        try:
            try:
                os.rename(self.path, target)
            except FileNotFoundError:  # the name's first version (or its directory was removed)
                os.makedirs(parent, exist_ok=True)
                os.rename(self.path, target)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):  # the number is taken (a directory left there)
                return False
            raise
        self.committed = True
        if self.durable:
            _io.fsync_dir(parent)
        return True

    def discard(self):
        if not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)


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

    def url_of(self, key):
        return self.local_path(key) if key else self.root

    def stage(self, name, token="", *, durable=True):
        return _LocalStaging(self, name, token or "s", durable)

    def exists(self, key):
        return os.path.lexists(self.local_path(key))

    def delete_tree(self, prefix):  # the directory at once: one rename out (into ``tmp``), then its removal
        path = self.local_path(prefix)
        trash = os.path.join(self.root, self.tmp, f"deleted-{uuid.uuid4().hex}")
        try:
            os.makedirs(os.path.dirname(trash), exist_ok=True)
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                raise FileNotFoundError(errno.ENOENT, f"{path!r} is not a directory", path)
            os.rename(path, trash)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise self._failed(path, exc, "delete") from exc
        _io.fsync_dir(os.path.dirname(path))
        shutil.rmtree(trash, ignore_errors=True)

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
