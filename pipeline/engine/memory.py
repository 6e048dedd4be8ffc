"""How this process's C heap treats freed memory (glibc; elsewhere nothing).

By default glibc maps every block of 32 MB or more (a network's activations) afresh and unmaps it when it is
freed, and gives each thread its own arena: every forward pass faults its activations in page by page again,
kernel time that grows with the number of passes. `keep_freed_memory` makes all threads allocate from one
heap, maps no block apart and keeps up to `KEEP_FREE_BYTES` free at the heap's top, so that the next pass
reuses what the last one freed. Blocks freed between live ones cannot always be reused (a block asked for
again with its alignment may not fit the space it left), so the free memory the heap holds is checked after
every chunk and its pages handed back above `HOLD_LIMIT_BYTES` (`release_if_holding`); `release_free_memory`
hands them all back when a stage's tasks end.
Call `keep_freed_memory` before other threads start allocating, and before torch is imported (which starts
one): the `retouch` command does it first thing. A thread that already has an arena of its own keeps it.
The same settings are put in the environment (GLIBC_TUNABLES, unless it is set already), so that the
processes this one starts (a Prefect flow run, a Dask worker process) begin with them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any

M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8  # glibc mallopt parameters
KEEP_FREE_BYTES = 1 << 30  # free at the heap's top before glibc gives it back
HOLD_LIMIT_BYTES = 2 << 30  # free anywhere in the heap before release_if_holding gives its pages back
# the same for processes started from this one (read by glibc when a process starts; one already set is kept)
ENVIRONMENT = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:"
                                 f"glibc.malloc.trim_threshold={KEEP_FREE_BYTES}"}

_libc: list[Any] = []
_kept: list[bool] = []


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _glibc() -> Any:
    """glibc through ctypes, or None where the C library has no mallopt/malloc_trim (not glibc)."""
    if not _libc:
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name) if name else None
        glibc = libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
        if hasattr(glibc, "mallinfo2"):
            glibc.mallinfo2.restype = _MallInfo2
        _libc.append(glibc)
    return _libc[0]


def keep_freed_memory() -> bool:
    """One heap for all threads, no block mapped apart, up to KEEP_FREE_BYTES kept free at its top (once per
    process; and in the environment of the processes it starts). True where it applies (glibc)."""
    libc = _glibc()
    if libc is None:
        return False
    if not _kept:
        libc.mallopt(M_ARENA_MAX, 1)
        libc.mallopt(M_MMAP_MAX, 0)
        libc.mallopt(M_TRIM_THRESHOLD, KEEP_FREE_BYTES)
        for name, value in ENVIRONMENT.items():
            os.environ.setdefault(name, value)
        _kept.append(True)
    return True


def free_heap_bytes() -> int | None:
    """Bytes the heap holds free (glibc >= 2.33 `mallinfo2`), or None where that cannot be asked."""
    mallinfo2 = getattr(_glibc(), "mallinfo2", None)
    return None if mallinfo2 is None else int(mallinfo2().fordblks)


def release_if_holding(limit: int = HOLD_LIMIT_BYTES) -> None:
    """Hand the free pages back when the heap holds more than `limit` bytes free (where that cannot be asked:
    always)."""
    free = free_heap_bytes()
    if free is None or free > limit:
        release_free_memory()


def release_free_memory() -> None:
    """Return the heap's free pages to the system (glibc `malloc_trim`): what a stage's chunks freed is not
    kept after it."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
