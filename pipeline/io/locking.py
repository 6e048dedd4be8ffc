"""One writer per store: a lock that a second run waits for (up to a timeout) and then fails on, clearly.

Local stores use an OS file lock (`fcntl.flock`) on `<store>.lock` beside the store: the OS releases it when
the holding process dies, even on kill -9, so a crash never leaves a stale lock; a run that ends removes
the file. Remote (fsspec) stores
use a lock object `<store>/_lock` created exclusively, with the holder and time in it; one older than
`stale_after` seconds is taken over.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import InputError
from pipeline.io.store import fs_and_path, is_local, join, local_path


class StoreBusyError(InputError):
    """Another run is writing this store."""


def _holder() -> str:
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()})


@contextmanager
def store_lock(store: str, timeout: float = 0.0, poll: float = 0.5, stale_after: float = 6 * 3600) -> Iterator[None]:
    """Hold the store's write lock for the block; wait up to `timeout` s for another holder, then fail."""
    if is_local(store):
        with _local_lock(store, timeout, poll):
            yield
    else:
        with _remote_lock(store, timeout, poll, stale_after):
            yield


@contextmanager
def _local_lock(store: str, timeout: float, poll: float) -> Iterator[None]:
    """flock on `<store>.lock`, removed by its holder on release (no leftover file after a run).

    A waiter may lock the file just after the holder unlinked it: it then holds a lock on a file no one
    else can open, so after locking it checks that the path still names its file and retries otherwise."""
    path = Path(f"{local_path(store).rstrip('/')}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                holder = _read(path) or "another process"
                raise StoreBusyError(store, f"another Retouch run is writing this store ({holder}); "
                                            "wait for it to finish or use another store") from None
            time.sleep(poll)
            continue
        if _same_file(fd, path):
            break
        os.close(fd)  # locked a file its holder had just removed: take the current one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, _holder().encode())
        yield
    finally:
        path.unlink(missing_ok=True)  # while still holding the lock
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == path.stat().st_ino
    except FileNotFoundError:
        return False


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


@contextmanager
def _remote_lock(store: str, timeout: float, poll: float, stale_after: float) -> Iterator[None]:
    fs, path = fs_and_path(join(store, "_lock"))
    deadline = time.monotonic() + timeout
    while True:
        try:
            _create_exclusive(fs, path)
            break
        except FileExistsError:
            try:
                since = json.loads(fs.cat_file(path)).get("since", 0)
            except (FileNotFoundError, ValueError):
                continue
            if time.time() - since > stale_after:
                fs.rm(path)
                continue
            if time.monotonic() >= deadline:
                raise StoreBusyError(store, "another Retouch run is writing this store; wait or use another store") \
                    from None
            time.sleep(poll)
    try:
        yield
    finally:
        fs.rm(path)


def _create_exclusive(fs, path: str) -> None:  # noqa: ANN001
    """Create `path` only if absent (filesystems without exclusive mode: check, then write)."""
    try:
        with fs.open(path, "xb") as fh:
            fh.write(_holder().encode())
    except (ValueError, NotImplementedError):
        if fs.exists(path):
            raise FileExistsError(path) from None
        fs.pipe_file(path, _holder().encode())
