"""The store's file locks (``ml_toolbox.store._io.acquire_lock``): ``flock`` taken directly on POSIX.

What the store relies on: threads of one process exclude each other as processes do; a lock dies with
its process (SIGKILL included); a non-blocking attempt on a held lock is ``LockBusy``; a symlink
planted at a lock's path is refused, not followed; a forked child neither keeps its parent's lock
held after the parent releases it nor releases it for the parent.
"""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from ml_toolbox.store import _io

pytestmark = pytest.mark.skipif(_io._fcntl is None, reason="flock locks are the POSIX path")


def _busy(path):
    try:
        lock = _io.acquire_lock(path, blocking=False)
    except _io.LockBusy:
        return True
    lock.release()
    return False


def test_threads_of_one_process_exclude_each_other(tmp_path):
    path = str(tmp_path / ".lock")
    held = _io.acquire_lock(path)
    assert held.is_locked and _busy(path)
    order = []

    def waiter():
        lock = _io.acquire_lock(path)  # blocks until the main thread releases
        order.append("waiter")
        lock.release()

    thread = threading.Thread(target=waiter)
    thread.start()
    thread.join(0.2)
    assert thread.is_alive() and order == []
    order.append("main")
    held.release()
    thread.join(10)
    assert order == ["main", "waiter"] and not held.is_locked
    assert not _busy(path)
    held.release()  # a second release is a no-op


def test_many_threads_counting_under_the_lock_lose_nothing(tmp_path):
    path, counter = str(tmp_path / ".lock"), tmp_path / "n"
    counter.write_text("0")

    def work():
        for _ in range(50):
            with _io.file_lock(path):
                counter.write_text(str(int(counter.read_text()) + 1))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.read_text() == "300"


def test_a_lock_dies_with_its_process_even_by_sigkill(tmp_path):
    path = str(tmp_path / ".lock")
    code = textwrap.dedent(f"""
        import sys, time
        from ml_toolbox.store import _io
        lock = _io.acquire_lock({path!r})
        print("held", flush=True)
        time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        assert _busy(path)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert not _busy(path)
    finally:
        child.kill()
        child.wait()


def test_a_symlink_at_the_lock_path_is_refused_not_followed(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    store = tmp_path / "store"
    store.mkdir()
    os.symlink(outside, store / ".lock")
    with pytest.raises(OSError):
        _io.acquire_lock(str(store / ".lock"))
    assert outside.read_text() == "keep me"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_releases_nor_keeps_its_parents_lock(tmp_path):
    path = str(tmp_path / ".lock")
    held = _io.acquire_lock(path)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drops its copy of the lock object, as its garbage collector would
        try:
            os.close(read)
            held.release()
            del_ok = not held.is_locked
            os.write(write, b"1" if del_ok else b"0")
            time.sleep(2)  # still alive while the parent releases below
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    assert _busy(path)  # the child's release left the parent's lock held
    held.release()  # the parent releases while the child still has a copy of the descriptor
    assert not _busy(path)
    os.waitpid(pid, 0)
    os.close(read)


def test_the_store_saves_and_loads_with_these_locks_across_threads(tmp_path):
    from sklearn.preprocessing import StandardScaler

    from ml_toolbox import PipelinePersistence

    store = PipelinePersistence(tmp_path / "s")
    numbers, errors = [], []

    def save():
        try:
            for _ in range(5):
                numbers.append(store.save(StandardScaler(), "m"))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=save) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and sorted(numbers) == list(range(1, 21))
    assert store.list_versions("m") == list(range(1, 21))
