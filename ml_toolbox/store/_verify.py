"""Verified reads: the bytes that are checked are the bytes that are deserialised.

A pickle stream runs code while it is read, so it is read once into private memory, its digest checked
there, and unpickled from that very memory; nothing is opened again by path. A memory-mapped load maps
the open file once: the pickle ranges are copied into private memory, the digest is taken over those
copies and over the mapped array ranges in file order, and the arrays returned are views of that same
mapping (raw data, never code). What a mapping cannot do is stop a writer changing the file while it is
mapped: see the "Security model" of docs/persistence.md.
"""

import mmap
import os
import pickle

import numpy as np

from ml_toolbox.store import _io
from ml_toolbox.store.errors import IntegrityError

_SMALL = 1 << 20  # up to this size a file is read into a bytearray; above, into anonymous memory (lazy pages)
_ACCESS = {"r": mmap.ACCESS_READ, "c": mmap.ACCESS_COPY, "r+": mmap.ACCESS_WRITE, "w+": mmap.ACCESS_WRITE}


def _mismatch(path, algorithm, expected, found):
    return IntegrityError(
        f"{path!r} failed its {algorithm} check: expected {expected}, found {found}. "
        "The artifact was modified or damaged; it was not loaded.",
        path, expected, found,
    )


def check_size(fd, path, expected_size):
    """The open file's size, checked against the manifest's."""
    size = os.fstat(fd).st_size
    if size != expected_size:
        what = "truncated" if size < expected_size else "longer than recorded"
        raise IntegrityError(
            f"{path!r} is {what}: expected {expected_size} bytes, found {size}. "
            "The artifact was modified or damaged; it was not loaded.",
            path, expected_size, size,
        )
    return size


_CHUNK = 16 << 20  # a large file is read in chunks this big, each hashed (in a thread) while the next is read


def read_private(fd, size, feed=None):
    """The file's ``size`` bytes, read once into private, writable memory (a bytearray, or anonymous
    memory whose pages cost nothing until written). Fewer bytes than ``size``: IntegrityError by the caller.
    ``feed`` (a hash's ``update``) is given each piece as soon as it is read."""
    memory = bytearray(size) if size <= _SMALL else mmap.mmap(-1, max(size, 1))
    view = memoryview(memory)
    done = 0
    with open(fd, "rb", buffering=0, closefd=False) as f:
        f.seek(0)
        while done < size:
            n = f.readinto(view[done:min(size, done + _CHUNK)])
            if not n:
                break
            if feed is not None:
                feed(view[done:done + n])
            done += n
    view.release()
    return memory, done


def read_verified(fd, path, expected, algorithm):
    """Read the open file once, check its size and ``algorithm`` digest in memory, return that memory."""
    size = check_size(fd, path, expected["size"])
    # the digest in a helper thread for a large file, hashing each chunk while the next one is read
    digest = _io._Feeder(algorithm) if algorithm != "size" else None
    try:
        memory, got = read_private(fd, size, digest.update if digest is not None else None)
    finally:
        if digest is not None:
            found = digest.hexdigest()  # joins the thread, whatever happened
    if got != size:
        raise IntegrityError(f"{path!r} shrank while it was read: expected {size} bytes, read {got}.",
                             path, size, got)
    if digest is not None and found != expected[algorithm]:
        raise _mismatch(path, algorithm, expected[algorithm], found)
    return memory


def check_memory(memory, path, expected, algorithm):
    """``memory`` (bytes read from a backend that cannot open files), once its size and ``algorithm``
    digest match the manifest's ``expected`` entry."""
    size = expected["size"]
    if len(memory) != size:
        what = "truncated" if len(memory) < size else "longer than recorded"
        raise IntegrityError(f"{path!r} is {what}: expected {size} bytes, found {len(memory)}. The artifact was "
                             "modified or damaged; it was not loaded.", path, size, len(memory))
    if algorithm != "size":
        found = _digest(memoryview(memory), algorithm)
        if found != expected[algorithm]:
            raise _mismatch(path, algorithm, expected[algorithm], found)
    return memory


def _digest(view, algorithm):
    h = _io.new_hash(algorithm)
    h.update(view)
    return h.hexdigest()


def _checked_regions(path, regions, size):
    """The manifest's array ranges as sorted, disjoint (start, end) pairs within the file."""
    out, last = [], 0
    for region in regions:
        if (not isinstance(region, (list, tuple)) or len(region) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in region)
                or not last <= region[0] <= region[1] <= size):
            raise IntegrityError(f"{path!r}: the manifest's array ranges are malformed ({region!r}).",
                                 path, "sorted [start, end) ranges within the file", region)
        out.append((region[0], region[1]))
        last = region[1]
    return out


def map_verified(fd, path, expected, algorithm, mmap_mode):
    """Map the open file once and verify it: (private memory holding its pickle ranges, the mapping).

    The pickle ranges (everything outside ``expected["regions"]``) are copied into private memory, and
    the digest runs over those copies and the mapped array ranges in file order: what is unpickled is
    the private copy that was hashed, and the arrays are views of the mapping that was hashed.
    """
    size = check_size(fd, path, expected["size"])
    regions = _checked_regions(path, expected["regions"], size)
    mapping = mmap.mmap(fd, size, access=_ACCESS[mmap_mode]) if size else None
    if mapping is not None and algorithm != "size" and hasattr(mmap, "MADV_WILLNEED"):
        mapping.madvise(mmap.MADV_WILLNEED)  # it is all about to be hashed: map it in ahead, fewer faults
    private = mmap.mmap(-1, max(size, 1))
    h = _io.new_hash(algorithm) if algorithm != "size" else None
    if mapping is not None:
        source, target = memoryview(mapping), memoryview(private)
        position = 0
        for start, end in regions + [(size, size)]:
            if start > position:
                target[position:start] = source[position:start]  # the pickle: copied, then hashed there
                if h is not None:
                    h.update(target[position:start])
            if h is not None and end > start:
                h.update(source[start:end])  # raw array data: hashed where it will be used
            position = end
        source.release()
        target.release()
    if h is not None:
        found = h.hexdigest()
        if found != expected[algorithm]:
            raise _mismatch(path, algorithm, expected[algorithm], found)
    return private, mapping, regions


class _Reader:
    """A read-only file object over private memory (positions are the file's offsets)."""

    def __init__(self, memory, size):
        self._memory = memory
        self._view = memoryview(memory)
        self._size = size
        self._pos = 0

    def read(self, n=-1):
        start = self._pos
        end = self._size if n is None or n < 0 else min(self._size, start + n)
        self._pos = end
        return bytes(self._view[start:end])

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def readline(self):
        end = self._memory.find(b"\n", self._pos, self._size)
        return self.read((end + 1 if end >= 0 else self._size) - self._pos)

    def tell(self):
        return self._pos

    def seek(self, pos, whence=0):
        self._pos = pos if whence == 0 else (self._pos + pos if whence == 1 else self._size + pos)
        return self._pos


def load_joblib(memory, size, path, *, mapping=None, regions=None, mmap_mode=None):
    """Unpickle an uncompressed joblib artifact from verified private ``memory``.

    Each array is a view, never a copy: of ``memory`` (a full load: private and writable), or, with
    ``mapping``, of the verified mapping (one of ``regions``). joblib's own unpickler runs; only how an
    array's bytes are found differs, and nothing is read by path.
    """
    from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler
    from joblib.numpy_pickle_compat import NDArrayWrapper
    from joblib.numpy_pickle_utils import Unpickler, _ensure_native_byte_order

    reader = _Reader(memory, size)
    starts = {start: end for start, end in regions or ()}

    class _VerifiedUnpickler(NumpyUnpickler):
        dispatch = NumpyUnpickler.dispatch.copy()

        def load_build(self):
            Unpickler.load_build(self)
            top = self.stack[-1]
            if isinstance(top, NDArrayWrapper):  # joblib < 0.10: arrays in companion files, read by path
                raise IntegrityError(f"{path!r} keeps its arrays in companion files (joblib < 0.10), which a "
                                     "verified load cannot check; re-save it.", path)
            if isinstance(top, NumpyArrayWrapper):
                self.stack[-1] = self._array(top)

        dispatch[pickle.BUILD[0]] = load_build

        def _array(self, wrapper):
            if wrapper.dtype.hasobject:  # a nested pickle stream, in the verified memory
                return wrapper.read_array(self, self.ensure_native_byte_order)
            if wrapper.safe_get_numpy_array_alignment_bytes() is not None:
                padding = reader.read(1)
                reader.read(int.from_bytes(padding, "little"))
            offset = reader.tell()
            count = int(np.prod(wrapper.shape, dtype=np.int64)) if len(wrapper.shape) else 1
            nbytes = count * wrapper.dtype.itemsize
            if offset + nbytes > size:
                raise IntegrityError(f"{path!r}: an array runs past the end of the file.", path)
            mapped = mapping is not None and nbytes
            if mapped and starts.get(offset) != offset + nbytes:
                raise IntegrityError(f"{path!r}: an array at byte {offset} is not one of the manifest's array "
                                     "ranges; it was not loaded.", path, "a recorded array range", offset)
            array = np.frombuffer(mapping if mapped else memory, dtype=wrapper.dtype, count=count, offset=offset)
            reader.seek(offset + nbytes)
            if wrapper.order == "F":
                array = array.reshape(wrapper.shape[::-1]).transpose()
            else:
                array = array.reshape(wrapper.shape)
            in_map = mapping is not None and mmap_mode is not None and wrapper.allow_mmap
            if mapped and not in_map:
                array = array.copy()
            if in_map:  # what joblib returns for a mapped array: a np.memmap, read-only under "r"
                array = array.view(np.memmap)
                array.filename, array.offset, array.mode = path, offset, mmap_mode
                if not nbytes and mmap_mode == "r":
                    array.flags.writeable = False
            elif self.ensure_native_byte_order:
                array = _ensure_native_byte_order(array)
            if wrapper.subclass not in (np.ndarray, np.memmap):
                array = array.view(wrapper.subclass)
            return array

    unpickler = _VerifiedUnpickler("", reader, mmap_mode is None, mmap_mode=mmap_mode)
    return unpickler.load()


def check_file(fd, path, expected, algorithm, chunk=8 << 20):
    """Check an open file's size and digest by streaming it (``verify``: nothing is deserialised)."""
    size = check_size(fd, path, expected["size"])
    h = _io.new_hash(algorithm)
    buffer = bytearray(min(chunk, max(size, 1)))
    view = memoryview(buffer)
    with open(fd, "rb", buffering=0, closefd=False) as f:
        f.seek(0)
        while True:
            n = f.readinto(view)
            if not n:
                break
            h.update(view[:n])
    found = h.hexdigest()
    if found != expected[algorithm]:
        raise _mismatch(path, algorithm, expected[algorithm], found)
