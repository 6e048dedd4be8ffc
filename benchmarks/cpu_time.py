"""CPU seconds (user + system) of this process and all its children, for the benchmarks' stage subprocesses."""

from __future__ import annotations

import psutil


def process_cpu_seconds() -> float:
    """User + system CPU seconds of this process and its live children (Dask workers, loky pools)."""
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total
