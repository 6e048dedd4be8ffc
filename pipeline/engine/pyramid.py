"""Pyramid levels: each level made from the one before it (2x2 mean or max), one output chunk per task, or
one whole shard per task where the level is sharded (partial shard writes from concurrent tasks lose data)."""

from __future__ import annotations

import json

import dask
import numpy as np
import zarr

from pipeline.engine.ledger import Ledger
from pipeline.engine.runner import EngineConfig, run_tasks
from pipeline.io.store import LevelSpec, chunk_digests, chunks_in, downsample2, read_region, write_regions


def _downsample_chunk(source: zarr.Array, target: zarr.Array, region: tuple[int, int, int, int],
                      chunk: int, ledger: Ledger, task_id: str, mode: str = "mean") -> dict[str, str]:
    """Write one chunk (or shard) of a level from the level before it; digest each chunk.

    The region is made one output chunk at a time, each from its own 2x2 source region, and written whole:
    a task holds the output region and one chunk's source, never the source of a whole shard.
    """
    y0, y1, x0, x1 = region
    small = np.empty((target.shape[0], y1 - y0, x1 - x0), target.dtype)
    for cy0, cy1, cx0, cx1 in chunks_in(region, chunk):
        block = read_region(source, 2 * cy0, 2 * cy1, 2 * cx0, 2 * cx1)
        small[:, cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = downsample2(block, mode)[:, : cy1 - cy0, : cx1 - cx0]
    target[:, y0:y1, x0:x1] = small
    digests = chunk_digests(small, region, chunk)
    ledger.record(task_id, json.dumps(digests))
    return digests


def build_pyramid_levels(group: zarr.Group, levels: list[LevelSpec], chunk: int, ledger: Ledger,
                         done: dict[str, str], engine: EngineConfig, label: str,
                         mode: str = "mean", prefix: str = "") -> dict[str, dict[str, str]]:
    """Fill levels 1..N of `group` from level 0, skipping tasks the ledger has; per-level chunk digests."""
    per_level: dict[str, dict[str, str]] = {}
    for prev, level in zip(levels, levels[1:], strict=False):
        source, target = group[prev.path], group[level.path]
        digests: dict[str, str] = {}
        tasks = []
        for region in write_regions(target):
            task_id = f"{prefix}{level.path}-{region[0] // chunk}-{region[2] // chunk}"
            if task_id in done:
                digests.update(json.loads(done[task_id]))
                continue
            tasks.append(dask.delayed(_downsample_chunk, pure=False)(
                source, target, region, chunk, ledger, task_id, mode, dask_key_name=f"level-{task_id}"))
        for result in run_tasks(tasks, f"{label} level {level.path}", engine):
            digests.update(result)
        per_level[level.path] = digests
    return per_level
