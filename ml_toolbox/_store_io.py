"""Private I/O helpers of the versioned store: hashing file wrappers, atomic files, locks.

Nothing here is public; :mod:`ml_toolbox.persistence` is the user-facing module.
"""

import contextlib
import fcntl
import hashlib
import hmac
import io
import json
import mmap
import os
import pickle
import queue
import threading

import numpy as np
import xxhash

# Writes larger than this hand their SHA-256 to a helper thread (hashlib releases the GIL), so the
# digest is computed while joblib keeps pickling; smaller artifacts are hashed inline.
_THREAD_THRESHOLD = 4 * 1024 * 1024
# Chunks waiting for the helper thread: SHA-256 (about 1.5 GB/s) is slower than joblib's writes, so
# without a bound every chunk of a large array would pile up in memory; with it the writer waits, at
# most this many chunks (joblib's are 16 MB) ahead. The save lasts as long as the hashing either way.
_QUEUED_CHUNKS = 4


class _Sha256Feeder:
    """SHA-256 of a byte stream, computed inline for small streams and in a helper thread for large ones.

    The order of the chunks is kept (one queue, one consumer), so the digest is exactly the digest of
    the bytes written.
    """

    def __init__(self):
        self._hash = hashlib.sha256()
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
            self._thread = threading.Thread(target=self._consume, name="ml_toolbox-sha256", daemon=True)
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
    """A write-only binary file object that feeds every byte to xxh3-128 and SHA-256 as it is written.

    joblib (and pickle) write through it; nothing is read back for hashing. pickle hands over many
    small pieces (frames, opcodes, small arrays): they are gathered into blocks of ``_BLOCK`` bytes, so
    the hashes and the file see a few large updates instead of thousands of calls. Large writes (joblib's
    array chunks) pass straight through, after whatever is pending.
    """

    _BLOCK = 1024 * 1024

    def __init__(self, raw, sha256=True):
        self._raw = raw
        self._xxh = xxhash.xxh3_128()
        self._sha = _Sha256Feeder() if sha256 else None
        self._pending = bytearray()
        self.size = 0

    def write(self, data):
        n = len(data) if type(data) is bytes else memoryview(data).nbytes
        if n >= self._BLOCK:
            self._flush_pending()
            self._feed(data if isinstance(data, bytes) else bytes(data))
        else:
            self._pending += data
            if len(self._pending) >= self._BLOCK:
                self._flush_pending()
        self.size += n
        return n

    def _feed(self, data):
        self._xxh.update(data)
        if self._sha is not None:
            self._sha.update(data)
        self._raw.write(data)

    def _flush_pending(self):
        if self._pending:
            block = bytes(self._pending)  # immutable: the SHA-256 thread may still hold it
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
        """Write out what is pending and stop the SHA-256 helper thread (``digests`` still works after)."""
        try:
            self._flush_pending()
        finally:
            if self._sha is not None:
                self._sha.close()

    def discard(self):
        """Drop what is pending, unwritten, and stop the SHA-256 helper thread: for a write given up."""
        self._pending.clear()
        if self._sha is not None:
            self._sha.close()

    def digests(self):
        self._flush_pending()
        out = {"size": self.size, "xxh3_128": self._xxh.hexdigest()}
        if self._sha is not None:
            out["sha256"] = self._sha.hexdigest()
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


def write_pickle_hashed(path, obj, compress=0, fsync=True, sha256=True):
    """Write ``obj`` as a joblib artifact at ``path`` (a new file), hashing as it is written.

    The C pickler writes it when it holds no large numpy array (see ``_LARGE_ARRAY``); otherwise, and
    whenever the C pickler fails, ``joblib.dump`` writes it from the start. Returns the file's size and
    digests, and which pickler wrote it ("pickle" or "joblib").
    """
    compression = _compression(compress)
    raw = open(path, "xb")
    try:
        if compression is not False:
            writer = HashingWriter(raw, sha256=sha256)
            try:
                _pickle_small(obj, writer, compression)
            except Exception:  # large arrays, or something only joblib's pickler takes (or fails on: its error)
                writer.discard()  # what it holds (most often all that was pickled) never reaches the file
                if raw.tell():  # a new file rather than a truncated one: ext4 writes a truncated file out on close
                    raw.close()
                    os.unlink(path)
                    raw = open(path, "xb")
            except BaseException:
                writer.discard()
                raise
            else:
                return _finish(raw, writer, fsync), "pickle"
        import joblib

        writer = HashingWriter(raw, sha256=sha256)
        try:
            joblib.dump(obj, writer, compress=compress)
        except BaseException:
            writer.discard()  # no helper thread outlives a failed dump
            raise
        return _finish(raw, writer, fsync), "joblib"
    finally:
        raw.close()


def _finish(raw, writer, fsync):
    """Write out what ``writer`` holds, fsync ``raw`` if asked, and return the size and digests."""
    try:
        digests = writer.digests()
    except BaseException:
        writer.discard()
        raise
    if fsync:
        raw.flush()
        os.fsync(raw.fileno())
    return digests


def load_pickle(data=None, fd=None):
    """Unpickle an artifact written by the C pickler, with the C unpickler: from ``data`` (its bytes)
    or else from the open file ``fd``; a compressed one through joblib's decompressor file objects."""
    if data is not None and data[:1] == pickle.PROTO:  # uncompressed (no joblib container starts so)
        return pickle.loads(data)
    from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

    with (io.BytesIO(data) if data is not None else open(fd, "rb", closefd=False)) as f:
        with _validate_fileobject_and_memmap(f, "") as (fobj, _):
            return pickle.load(fobj)


def write_bytes_hashed(path, data, fsync=True, sha256=True):
    """Write ``data`` to a new file at ``path``, fsync it (if asked) and return its size and digests."""
    with open(path, "xb") as raw:
        writer = HashingWriter(raw, sha256=sha256)
        writer.write(data)
        return _finish(raw, writer, fsync)


def write_file(path, data, fsync=True):
    """Write ``data`` to a new file at ``path`` (refused if it exists), fsync'ed if asked.

    Plain ``os`` calls (open, write, close): no buffered file object for one small write.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def digest_bytes(data, algorithm):
    h = xxhash.xxh3_128() if algorithm == "xxh3_128" else hashlib.sha256()
    h.update(data)
    return h.hexdigest()


def digest_fd(fd, algorithm, size):
    """Digest an open file's first ``size`` bytes through a read-only memory map (one pass, no copy)."""
    h = xxhash.xxh3_128() if algorithm == "xxh3_128" else hashlib.sha256()
    if size:
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as view:
            if hasattr(mmap, "MADV_WILLNEED"):  # map (and read ahead) the whole file up front: fewer faults
                view.madvise(mmap.MADV_WILLNEED)
            h.update(view)
    return h.hexdigest()


_O_RDONLY = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


def open_fd(path):
    """``os.open`` for reading: a plain descriptor, no buffered file object (raises FileNotFoundError)."""
    return os.open(path, _O_RDONLY)


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


def atomic_write_json(path, payload, tmp_dir):
    """Replace ``path`` with ``payload`` as JSON: write a temp file in ``tmp_dir``, fsync, rename."""
    data = json.dumps(payload, indent=2, sort_keys=True).encode()
    tmp = os.path.join(tmp_dir, f".{os.path.basename(path)}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path))


def acquire_lock(path, *, blocking=True):
    """Open ``path`` (created if missing), take an exclusive ``fcntl.flock`` on it and return the fd.

    The lock is released when the fd is closed, or when the process dies (even by SIGKILL). A lock file
    may be unlinked by its holder (or by a cleaner that found it orphaned) while another process waits
    on it: the lock would then guard nothing, so once locked, the file at ``path`` must still be the one
    locked, or it is opened again.
    """
    flags = fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, flags)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def file_lock(path, *, blocking=True):
    """Hold :func:`acquire_lock` on ``path`` for the ``with`` block."""
    fd = acquire_lock(path, blocking=blocking)
    try:
        yield fd
    finally:
        os.close(fd)


def release_owner_lock(path, fd, pid):
    """Drop a store object's staging lock: unlink it (in the process that made it), close the fd."""
    if os.getpid() == pid:
        try:
            os.unlink(path)
        except OSError:
            pass
    try:
        os.close(fd)
    except OSError:  # pragma: no cover
        pass


def canonical_json(payload):
    """The bytes a signature covers: sorted keys, no whitespace, UTF-8."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(key, payload):
    return hmac.new(key, canonical_json(payload), hashlib.sha256).hexdigest()


def signature_matches(key, payload, signature):
    return hmac.compare_digest(sign(key, payload), signature)
