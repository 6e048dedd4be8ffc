"""What a stage holds does not grow with the number of chunks it runs, nor with the time it runs: memory a
chunk freed goes back to the system, and the local cluster's workers keep no profile history."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import zarr

from pipeline.engine.ledger import Ledger
from pipeline.engine.runner import EngineConfig, close_local_clusters, local_cluster, run_tasks
from pipeline.engine.tiling import ChunkJob, all_regions, run_chunks

HEAP_BLOCK = 64 * 1024  # below glibc's mmap threshold: served from the heap, kept there when freed
FREED_PER_CHUNK = 96 * 2**20
_survivors: list[np.ndarray] = []


def _fragmenting_chunk(block: np.ndarray) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Copies the block; on the way allocates FREED_PER_CHUNK in heap-sized pieces, keeps one small array
    allocated after them (so the heap cannot shrink from its top) and frees the rest."""
    pieces = [np.ones(HEAP_BLOCK // 8) for _ in range(FREED_PER_CHUNK // HEAP_BLOCK)]
    _survivors.append(np.ones(512))
    del pieces
    return [block.copy()], {}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_memory_a_chunk_freed_is_not_kept_after_the_stage(tmp_path: Path) -> None:
    root = zarr.open_group(str(tmp_path / "s.zarr"), mode="w")
    source = root.create_array("in", shape=(1, 128, 128), dtype=np.uint8, chunks=(1, 64, 64))
    source[:] = 7
    target = root.create_array("out", shape=(1, 128, 128), dtype=np.uint8, chunks=(1, 64, 64))
    ledger = Ledger(str(tmp_path / "s.zarr"), "t", "k")
    engine = EngineConfig(workers=1, progress=False, scheduler="threads")
    before = psutil.Process().memory_info().rss
    try:
        records = run_chunks(ChunkJob([source], [target], _fragmenting_chunk, 0, 64),
                             all_regions(source.shape, 64), ledger, ledger.start(), "fragment", engine)
        kept = psutil.Process().memory_info().rss - before
    finally:
        _survivors.clear()
    assert len(records) == 4 and (target[:] == 7).all()
    assert kept < FREED_PER_CHUNK // 4, f"{kept >> 20} MB of what the chunks freed is still resident"


def _busy(seconds: float) -> int:
    end, n = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        n += 1
    return n


def test_local_cluster_workers_keep_no_profile_history() -> None:
    """Dask's worker profiler samples every running task and keeps one tree per second: off on our cluster."""
    import dask

    engine = EngineConfig(workers=1, progress=False, scheduler="cluster")
    try:
        cluster = local_cluster(engine)
        results = run_tasks([dask.delayed(_busy, pure=False)(0.8) for _ in range(2)], "busy", engine)
        workers = list(cluster.workers.values())
        assert len(results) == 2 and all(n > 0 for n in results) and workers
        for worker in workers:
            assert len(worker.profile_history) == 0 and len(worker.profile_keys_history) == 0
            assert worker.profile_recent["count"] == 0
    finally:
        close_local_clusters()
