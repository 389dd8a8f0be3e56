"""Private I/O helpers of the versioned store: hashing file wrappers, atomic files, locks.

Nothing here is public; :mod:`ml_toolbox.store` is the user-facing package.
"""

import contextlib
import hashlib
import hmac
import io
import json
import os
import pickle
import queue
import threading

import blake3
import filelock
import numpy as np
import xxhash

try:  # POSIX: the store's locks are flock(2) locks, taken directly (see acquire_lock)
    import fcntl as _fcntl
except ImportError:  # Windows (or no flock): filelock's portable lock
    _fcntl = None  # type: ignore[assignment]

# The digests a manifest may record. BLAKE3 (cryptographic, releases the GIL, hashes large buffers on
# several threads) is the default of new manifests; SHA-256 is still verified, and selectable;
# xxh3-128 (not cryptographic) is only ever checked on unsigned versions that recorded nothing else.
CRYPTOGRAPHIC = ("blake3", "sha256")
ALGORITHMS = ("blake3", "sha256", "xxh3_128")


class _Blake3:
    """``blake3.blake3`` hashing large buffers on several threads (it releases the GIL)."""

    __slots__ = ("_hash",)

    def __init__(self):
        self._hash = blake3.blake3(max_threads=blake3.blake3.AUTO)

    def update(self, data):
        self._hash.update(data)

    def hexdigest(self):
        return self._hash.hexdigest()


def new_hash(algorithm):
    """A fresh hash object (``update``/``hexdigest``) for one of :data:`ALGORITHMS`."""
    if algorithm == "blake3":
        return _Blake3()
    if algorithm == "sha256":
        return hashlib.sha256()
    if algorithm == "xxh3_128":
        return xxhash.xxh3_128()
    raise ValueError(f"Unknown digest {algorithm!r}; expected one of {ALGORITHMS}.")

# Writes larger than this hand their digests to a helper thread each (hashlib and blake3 release the
# GIL), so the digest is computed while joblib keeps pickling and writing; smaller artifacts are hashed
# inline. Hashing inline made a 200 MB save last as long as its hashing plus its writing (1.85x of
# joblib.dump on an idle machine); overlapped, the longer of the two.
_THREAD_THRESHOLD = 4 * 1024 * 1024
# Chunks waiting for the helper thread: SHA-256 (about 1.5 GB/s) is slower than joblib's writes, so
# without a bound every chunk of a large array would pile up in memory; with it the writer waits, at
# most this many chunks (joblib's are 16 MB) ahead. The save lasts as long as the hashing either way.
_QUEUED_CHUNKS = 4


class _Feeder:
    """A digest of a byte stream, computed inline for small streams and in a helper thread for large ones.

    The order of the chunks is kept (one queue, one consumer), so the digest is exactly the digest of
    the bytes written.
    """

    def __init__(self, algorithm):
        self._hash = new_hash(algorithm)
        self._name = algorithm
        self._seen = 0
        self._queue = None
        self._thread = None

    def update(self, data):
        self._seen += len(data)
        if self._queue is None:
            if self._seen < _THREAD_THRESHOLD:
                self._hash.update(data)
                return
            self._queue = queue.Queue(maxsize=_QUEUED_CHUNKS)
            self._thread = threading.Thread(target=self._consume, name=f"ml_toolbox-{self._name}", daemon=True)
            self._thread.start()
        # joblib hands over freshly made bytes per chunk; keep a reference, never a copy.
        self._queue.put(data)

    def _consume(self):
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            self._hash.update(chunk)

    def close(self):
        """Stop the helper thread (after an error: the digest is then never asked for)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def hexdigest(self):
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        return self._hash.hexdigest()


class HashingWriter:
    """A write-only binary file object that feeds every byte to its digests as it is written.

    joblib (and pickle) write through it; nothing is read back for hashing. pickle hands over many
    small pieces (frames, opcodes, small arrays): they are gathered into blocks of ``_BLOCK`` bytes, so
    the hashes and the file see a few large updates instead of thousands of calls. Large writes (joblib's
    array chunks) pass straight through, after whatever is pending. BLAKE3 hashes inline (on several
    threads for large blocks), each digest in a helper thread of its own for large artifacts (:class:`_Feeder`).

    Parameters
    ----------
    raw : binary file
    algorithms : tuple of str
        The digests to compute, among :data:`ALGORITHMS`.
    """

    _BLOCK = 1024 * 1024

    def __init__(self, raw, algorithms=("blake3",)):
        self._raw = raw
        self._hashes = {a: _Feeder(a) for a in algorithms}
        self._updates = [h.update for h in self._hashes.values()]
        self._pending = bytearray()
        self.size = 0

    def write(self, data):
        n = len(data) if type(data) is bytes else memoryview(data).nbytes
        if n >= self._BLOCK:
            self._flush_pending()
            # bytes, or a memoryview of an array being saved (stable while it is written): by reference;
            # a bytearray (mutable: a hashing thread could see it change) is copied
            self._feed(bytes(data) if isinstance(data, bytearray) else data)
        else:
            self._pending += data
            if len(self._pending) >= self._BLOCK:
                self._flush_pending()
        self.size += n
        return n

    def _feed(self, data):
        for update in self._updates:
            update(data)
        self._raw.write(data)

    def _flush_pending(self):
        if self._pending:
            block = bytes(self._pending)  # immutable: a hashing thread may still hold it
            self._pending.clear()
            self._feed(block)

    def writable(self):
        return True

    def flush(self):
        self._flush_pending()
        self._raw.flush()

    def tell(self):
        return self.size

    def close(self):
        """Write out what is pending and stop the hashing threads (``digests`` still works after)."""
        try:
            self._flush_pending()
        finally:
            self._stop()

    def _stop(self):
        for h in self._hashes.values():
            h.close()

    def discard(self):
        """Drop what is pending, unwritten, and stop the hashing threads: for a write given up."""
        self._pending.clear()
        self._stop()

    def digests(self):
        self._flush_pending()
        out = {"size": self.size}
        for algorithm, h in self._hashes.items():
            out[algorithm] = h.hexdigest()
        return out


# An object holding no numpy array of at least _LARGE_ARRAY bytes, and less than _ARRAY_BUDGET bytes of
# arrays in all, is written by the C pickler (``pickle.Pickler``), some five times faster than joblib's
# pure-Python NumpyPickler on a fitted pipeline and seven times on a 200-tree forest (whose 800 arrays
# hold 1.2 MB, 9 kB at most). Its arrays are then pickled inside the stream, so ``mmap_mode`` cannot map
# them; that is only worth doing for large arrays (from about a megabyte, 256 pages, mapping beats
# reading) or for a lot of array data in all, and objects holding those keep joblib's own writer.
_LARGE_ARRAY = 1 << 20
_ARRAY_BUDGET = 64 << 20
_ARRAY_TYPES = (np.ndarray, np.matrix, np.memmap)  # the types joblib's NumpyPickler writes its own way


class _HoldsLargeArrays(Exception):
    """Raised inside ``_SmallObjectPickler`` to give the object back to joblib's writer."""


class _SmallObjectPickler(pickle.Pickler):
    """The C pickler, stopping at the first array joblib's writer should write (large, mapped, read-only,
    or in a foreign byte order, which joblib converts to the native one on load), or when the arrays
    pass the budget: each array then loads as ``joblib.load`` of joblib's own file would give it.

    ``reducer_override`` sees each object once (the memo comes first) and never sees atoms (numbers,
    strings, bytes) or built-in containers: on a fitted pipeline a few dozen calls.
    """

    def __init__(self, file, protocol):
        super().__init__(file, protocol=protocol)
        self._budget = _ARRAY_BUDGET

    def reducer_override(self, obj):
        kind = type(obj)
        if kind in _ARRAY_TYPES:
            nbytes = obj.nbytes
            self._budget -= nbytes
            if (nbytes >= _LARGE_ARRAY or self._budget < 0 or kind is np.memmap or not obj.dtype.isnative
                    or not obj.flags.writeable):  # protocol 5 would load it read-only; joblib, writable
                raise _HoldsLargeArrays
        return NotImplemented


def _compression(compress):
    """``compress`` as joblib.dump reads it: None (uncompressed), (method, level), or False when joblib
    should judge it itself (a value it refuses, lz4 not installed: its own error then)."""
    from joblib import compressor

    if compress is True or compress is None:  # joblib.dump: the default level of zlib
        return ("zlib", None)
    if isinstance(compress, str):
        compress = (compress, None)
    elif isinstance(compress, int):
        compress = ("zlib", compress)
    if not (isinstance(compress, tuple) and len(compress) == 2):
        return False
    method, level = compress
    if method not in compressor._COMPRESSORS or (method == "lz4" and compressor.lz4 is None):
        return False
    if level is not None and (isinstance(level, bool) or level not in range(10)):
        return level is False and None  # joblib: level False is uncompressed, any other value an error
    return None if level == 0 else (method, level)


def _pickle_small(obj, writer, compression):
    """Pickle ``obj`` into ``writer`` with the C pickler, through joblib's compressor file objects when
    ``compression`` is a (method, level): the file is then exactly what joblib.load reads (a pickle, or
    one in joblib's compressed container). Raises _HoldsLargeArrays as soon as joblib's writer is due."""
    protocol = pickle.DEFAULT_PROTOCOL  # the protocol joblib.dump writes
    if compression is None:
        _SmallObjectPickler(writer, protocol).dump(obj)
        return
    from joblib.numpy_pickle_utils import _write_fileobject

    with _write_fileobject(writer, compress=compression) as f:  # joblib's own compressor file object
        _SmallObjectPickler(f, protocol).dump(obj)


_ARRAY_SLICE = 16 * 1024 * 1024  # joblib's own chunk (its buffersize): large enough to hide the loop


def _region_pickler():
    """joblib's NumpyPickler, writing each contiguous array's own buffer (no copy) and noting where each
    array's raw data lies in the file (see ``regions``)."""
    from joblib.numpy_pickle import NumpyPickler, Pickler

    class _RegionPickler(NumpyPickler):
        """Writes exactly what ``joblib.dump`` writes, and records ``regions``: the ``[start, end)``
        byte ranges of raw array data (everything else in the file is pickle). A memory-mapped load
        copies the pickle ranges into private memory and verifies them there, and maps only these.

        joblib writes an array as ``chunk.tobytes()`` of 16 MB chunks: a copy of the whole array on the
        way to the file. A contiguous array (the usual case) is written here from its own memory, in
        slices of a memoryview: the same bytes, one copy fewer (and the digests read the array itself).
        """

        def __init__(self, fp):
            super().__init__(fp)
            self.regions = []

        def save(self, obj):
            kind = type(obj)
            if kind not in _ARRAY_TYPES or obj.dtype.hasobject or not obj.nbytes:
                return super().save(obj)
            if kind is np.memmap:  # as joblib does
                obj = np.asanyarray(obj)
            wrapper = self._create_array_wrapper(obj)
            order = wrapper.order
            if not obj.itemsize or not (obj.flags.c_contiguous if order == "C" else obj.flags.f_contiguous):
                super().save(obj)  # joblib's chunked copy (strided arrays)
            else:
                Pickler.save(self, wrapper)  # joblib's save, step by step (see NumpyPickler.save)
                if self.proto >= 4:
                    self.framer.commit_frame(force=True)
                self._write_buffer(wrapper, obj)
            end = self.file_handle.tell()  # the array's bytes were written straight after its wrapper
            self.regions.append([end - obj.nbytes, end])

        def _write_buffer(self, wrapper, array):
            """``wrapper.write_array(array, self)`` for a contiguous array, from its memory."""
            handle = self.file_handle
            alignment = wrapper.safe_get_numpy_array_alignment_bytes()
            if alignment is not None:  # joblib's padding: one byte saying how many follow, then 0xff's
                padding = alignment - ((handle.tell() + 1) % alignment)
                handle.write(int.to_bytes(padding, length=1, byteorder="little"))
                if padding:
                    handle.write(b"\xff" * padding)
            data = memoryview(np.asarray(array).reshape(-1, order=wrapper.order).view(np.uint8))
            for start in range(0, len(data), _ARRAY_SLICE):
                handle.write(data[start:start + _ARRAY_SLICE])

    return _RegionPickler


def write_pickle_hashed(path, obj, compress=0, fsync=True, algorithms=("blake3",)):
    """Write ``obj`` as a joblib artifact at ``path`` (a new file), hashing as it is written.

    The C pickler writes it when it holds no large numpy array (see ``_LARGE_ARRAY``); otherwise, and
    whenever the C pickler fails, joblib's pickler writes it from the start (uncompressed: recording
    where each array's raw bytes lie, as ``regions``). Returns the file's size and digests (with
    ``regions`` when recorded), and which pickler wrote it ("pickle" or "joblib").
    """
    compression = _compression(compress)
    raw = _open_target(path)
    try:
        if compression is not False:
            writer = HashingWriter(raw, algorithms)
            try:
                _pickle_small(obj, writer, compression)
            except Exception:  # large arrays, or something only joblib's pickler takes (or fails on: its error)
                writer.discard()  # what it holds (most often all that was pickled) never reaches the file
                if raw.tell() and raw is path:  # in memory: start again
                    raw.seek(0)
                    raw.truncate()
                elif raw.tell():  # a new file rather than a truncated one: ext4 writes a truncated file out on close
                    raw.close()
                    os.unlink(path)
                    raw = open_new(path)
            except BaseException:
                writer.discard()
                raise
            else:
                return _finish(raw, writer, fsync), "pickle"
        import joblib

        writer = HashingWriter(raw, algorithms)
        try:
            if compression is None:  # what joblib.dump does with a file object, noting the array ranges
                pickler = _region_pickler()(writer)
                pickler.dump(obj)
            else:
                joblib.dump(obj, writer, compress=compress)
        except BaseException:
            writer.discard()  # no helper thread outlives a failed dump
            raise
        digests = _finish(raw, writer, fsync)
        if compression is None:
            digests["regions"] = pickler.regions
        return digests, "joblib"
    finally:
        if raw is not path:
            raw.close()


def _open_target(path):
    """``path`` itself when it is an in-memory file (``io.BytesIO``: object storage uploads from memory),
    else a new file there."""
    return path if isinstance(path, io.BytesIO) else open_new(path)


def open_new(path):
    """A new file at ``path`` for writing (refused if anything, a symlink included, is there)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o666)
    return open(fd, "wb")


def _finish(raw, writer, fsync):
    """Write out what ``writer`` holds, fsync ``raw`` if asked, and return the size and digests."""
    try:
        digests = writer.digests()
    except BaseException:
        writer.discard()
        raise
    if fsync and not isinstance(raw, io.BytesIO):
        raw.flush()
        os.fsync(raw.fileno())
    return digests


def load_pickle(data):
    """Unpickle an artifact written by the C pickler, with the C unpickler, from ``data`` (its verified
    bytes, in memory); a compressed one through joblib's decompressor file objects."""
    if data[:1] == pickle.PROTO:  # uncompressed (no joblib container starts so)
        return pickle.loads(data)
    from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

    with io.BytesIO(data) as f:
        with _validate_fileobject_and_memmap(f, "") as (fobj, _):
            return pickle.load(fobj)


def write_bytes_hashed(path, data, fsync=True, algorithms=("blake3",)):
    """Write ``data`` to a new file at ``path`` (or into an ``io.BytesIO``), fsync it (if asked) and return
    its size and digests."""
    raw = _open_target(path)
    try:
        writer = HashingWriter(raw, algorithms)
        writer.write(data)
        return _finish(raw, writer, fsync)
    finally:
        if raw is not path:
            raw.close()


def write_file(path, data, fsync=True):
    """Write ``data`` to a new file at ``path`` (refused if it exists), fsync'ed if asked.

    Plain ``os`` calls (open, write, close): no buffered file object for one small write.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def digest_bytes(data, algorithm):
    h = new_hash(algorithm)
    h.update(data)
    return h.hexdigest()


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # a symlink planted in the store is never followed
_O_RDONLY = os.O_RDONLY | _O_CLOEXEC | _O_NOFOLLOW | getattr(os, "O_BINARY", 0)


def open_fd(path, write=False):
    """``os.open`` for reading (and writing, for ``mmap_mode="r+"``) that refuses a symlink.

    Raises FileNotFoundError when missing, and a StoreSymlinkError-worthy ``OSError`` (ELOOP) for a
    symlink; callers turn both into the store's errors.
    """
    return os.open(path, (_O_RDONLY & ~os.O_RDONLY) | (os.O_RDWR if write else os.O_RDONLY))


def read_fd(fd, size=None):
    """Read ``size`` bytes (all, when None) from ``fd``'s position; fewer only at the end of the file."""
    chunks = []
    while size is None or size > 0:
        chunk = os.read(fd, size if size is not None else 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
        if size is not None:
            size -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_file(path):
    """All the bytes of the file at ``path``, with plain os calls (raises FileNotFoundError)."""
    fd = open_fd(path)
    try:
        return read_fd(fd)
    finally:
        os.close(fd)


def fsync_dir(path):
    """fsync a directory so a rename into it survives a power cut (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


class LockBusy(Exception):
    """A non-blocking lock attempt found the lock held (by a live process)."""


def acquire_lock(path, *, blocking=True):
    """Take an exclusive lock on the file at ``path`` (created if missing); return the lock object.

    An ``flock`` on Unix, ``msvcrt`` locking on Windows, released when the lock is released or the
    process dies (even by SIGKILL). Non-blocking, a held lock raises :class:`LockBusy`. Lock files
    that others may wait on are never unlinked (``.lock``); a store object's staging lock is unlinked
    only by its owner or by a cleaner holding it. A symlink at ``path`` is refused, not followed.

    Where the system has ``flock`` the lock is :class:`_Flock`: the same system call
    ``filelock.UnixFileLock`` makes, without its bookkeeping (filelock 4 spends about 0.3 ms per
    acquisition on fork tracking: a quarter of a small pipeline's save). Elsewhere it is
    :class:`filelock.FileLock` (``msvcrt`` on Windows, its soft lock where neither exists).
    """
    if _fcntl is None:
        lock = filelock.FileLock(path, timeout=-1 if blocking else 0, thread_local=False)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise LockBusy(path) from None
        return lock
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        _fcntl.flock(fd, _fcntl.LOCK_EX if blocking else _fcntl.LOCK_EX | _fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LockBusy(path) from None
    except BaseException:
        os.close(fd)
        raise
    return _Flock(fd)


class _Flock:
    """An exclusive ``flock`` held on one open descriptor (each acquisition opens its own, so two
    threads of one process exclude each other as two processes do).

    Released by the process that took it (``LOCK_UN``, then the descriptor closed), even if a forked
    child still holds a copy of the descriptor; a forked child only closes its copy, leaving the
    parent's lock alone.
    """

    __slots__ = ("_fd", "_pid")

    def __init__(self, fd):
        self._fd = fd
        self._pid = os.getpid()

    @property
    def is_locked(self):
        return self._fd is not None

    def release(self, force=False):
        """Release the lock (``force`` is accepted for filelock's signature; one hold, one release)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if os.getpid() == self._pid:
                _fcntl.flock(fd, _fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __del__(self):
        self.release()


@contextlib.contextmanager
def file_lock(path, *, blocking=True):
    """Hold :func:`acquire_lock` on ``path`` for the ``with`` block."""
    lock = acquire_lock(path, blocking=blocking)
    try:
        yield lock
    finally:
        lock.release()


def release_owner_lock(path, lock, pid):
    """Drop a store object's staging lock: release and unlink it, in the process that made it (a
    forked child leaves its parent's lock alone: releasing an inherited ``flock`` would release it for
    the parent too)."""
    if os.getpid() != pid:
        return
    try:
        os.unlink(path)
    except OSError:
        pass
    try:
        lock.release(force=True)
    except OSError:  # pragma: no cover
        pass


def canonical_json(payload):
    """The bytes a signature covers: sorted keys, no whitespace, UTF-8."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(key, payload):
    return hmac.new(key, canonical_json(payload), hashlib.sha256).hexdigest()


def signature_matches(key, payload, signature):
    return hmac.compare_digest(sign(key, payload), signature)
