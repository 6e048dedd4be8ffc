"""Map a function over items in a few threads (or processes), results in the items' order, a bounded number ahead.

For I/O-bound and GIL-releasing work (Zarr chunk decoding, JPEG/PNG encoding, file writes) done tile by tile
in a fixed order: the next tiles are read or written while the current one is consumed, and memory holds at
most `ahead` results. CPU-bound Python work takes a process pool instead (`pool=ProcessPoolExecutor`).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    return min(8, os.cpu_count() or 1)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int = 0, ahead: int = 0,
                pool: Callable[[int], Executor] = ThreadPoolExecutor) -> Iterator[R]:
    """`fn(item)` for each item, in order; `workers` threads (0: up to 8, one per core), or processes of
    `pool` (then `fn` and the items must pickle), at most `ahead` (0: twice the workers) submitted and not
    yet yielded; one worker maps in this thread. An exception in `fn` is raised where its result would have
    been yielded; no item is submitted after that (those already submitted, fewer than `ahead`, may still run)
    and those not yet started are cancelled."""
    workers = workers or default_workers()
    ahead = ahead or 2 * workers
    if workers == 1:
        yield from map(fn, items)
        return
    pending: deque[Future[R]] = deque()
    with pool(workers) as executor:
        try:
            for item in items:
                pending.append(executor.submit(fn, item))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def run_in_order(fn: Callable[[T], object], items: Iterable[T], workers: int = 0, ahead: int = 0) -> None:
    """`fn(item)` for each item for its effect (a file written), as `ordered_map` runs it; the first error raised."""
    deque(ordered_map(fn, items, workers, ahead), maxlen=0)
