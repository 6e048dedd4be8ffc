"""Map a function over items in a few threads, results in the items' order, a bounded number ahead.

For I/O-bound and GIL-releasing work (Zarr chunk decoding, JPEG/PNG encoding, file writes) done tile by tile
in a fixed order: the next tiles are read or written while the current one is consumed, and memory holds at
most `ahead` results.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    return min(8, os.cpu_count() or 1)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int = 0, ahead: int = 0) -> Iterator[R]:
    """`fn(item)` for each item, in order; `workers` threads (0: up to 8, one per core), at most `ahead`
    (0: twice the workers) submitted and not yet yielded. An exception in `fn` is raised where its result
    would have been yielded; no item is submitted after that (those already submitted, fewer than `ahead`,
    may still run) and those not yet started are cancelled."""
    workers = workers or default_workers()
    ahead = ahead or 2 * workers
    if workers == 1:
        yield from map(fn, items)
        return
    pending: deque[Future[R]] = deque()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
