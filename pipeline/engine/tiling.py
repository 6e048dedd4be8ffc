"""The tile engine: run a function over a (c, y, x) Zarr array chunk by chunk, with a halo of context.

Each task reads one output chunk plus `halo` pixels on every side (taken from the neighbours, reflected at
the image border), calls `fn(block)`, crops the halo off its result and writes the chunk-aligned result
into the output arrays. Dask chunks therefore always equal Zarr chunks: tasks never write the same chunk.
Finished tasks are recorded in the stage's ledger, so a stage killed halfway resumes at the next chunk.
Models are loaded once per worker process (`ModelCache`) and torch threads are set so that the workers
together use the cores without oversubscribing them.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import numpy as np
import zarr

from pipeline.engine.ledger import Ledger
from pipeline.engine.runner import EngineConfig, run_tasks
from pipeline.io.store import block_digest, chunk_grid, read_region

Region = tuple[int, int, int, int]


def read_with_halo(array: Any, region: Region, halo: int) -> np.ndarray:
    """(C, h + 2*halo, w + 2*halo): the region with context from neighbours, reflected at the image border."""
    _, height, width = array.shape
    y0, y1, x0, x1 = region
    ry0, ry1 = max(0, y0 - halo), min(height, y1 + halo)
    rx0, rx1 = max(0, x0 - halo), min(width, x1 + halo)
    block = read_region(array, ry0, ry1, rx0, rx1) if isinstance(array, zarr.Array) \
        else np.asarray(array[:, ry0:ry1, rx0:rx1])
    pad = ((0, 0), (halo - (y0 - ry0), halo - (ry1 - y1)), (halo - (x0 - rx0), halo - (rx1 - x1)))
    if any(p for pair in pad for p in pair):
        small = block.shape[1] <= max(pad[1]) or block.shape[2] <= max(pad[2])
        block = np.pad(block, pad, mode="symmetric" if small else "reflect")
        if block.shape[1] != (y1 - y0) + 2 * halo or block.shape[2] != (x1 - x0) + 2 * halo:
            block = np.pad(block, [(0, 0)] + [(0, t - s) for t, s in zip(
                ((y1 - y0) + 2 * halo, (x1 - x0) + 2 * halo), block.shape[1:], strict=True)], mode="edge")
    return block


def crop_halo(block: np.ndarray, halo: int) -> np.ndarray:
    return block[..., halo : block.shape[-2] - halo, halo : block.shape[-1] - halo] if halo else block


def chunk_id(region: Region, chunk: int) -> str:
    return f"{region[0] // chunk}-{region[2] // chunk}"


def torch_threads_per_worker(engine: EngineConfig) -> int:
    """Cores shared out among local worker threads (a cluster worker uses its own core count)."""
    if engine.torch_threads:
        return engine.torch_threads
    if engine.resolved_address():
        return 0  # decided on the worker
    return max(1, (os.cpu_count() or 1) // engine.n_workers)


class ModelCache:
    """One loaded model per (process, weights, device): tasks on the same worker share it."""

    _models: dict[tuple[str, str, str], Any] = {}
    _lock = threading.Lock()

    @classmethod
    def get(cls, name: str, manifest: str, device: str, threads: int) -> tuple[Any, Any]:
        import torch

        from models.weights import load_model

        key = (name, manifest, device)
        with cls._lock:
            if key not in cls._models:
                threads = threads or _cluster_worker_threads()
                if threads > 0:
                    torch.set_num_threads(threads)
                cls._models[key] = load_model(name, Path(manifest), device=device)
            return cls._models[key]

    @classmethod
    def clear(cls) -> None:
        with cls._lock:
            cls._models.clear()


def _cluster_worker_threads() -> int:
    """On a Dask cluster worker, its thread count (torch then shares the worker's cores); else 0."""
    try:
        from distributed import get_worker

        return int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return 0


@dataclass(frozen=True)
class ChunkJob:
    """What the tasks of one stage do: inputs to read, outputs to write, and the per-chunk function."""

    inputs: Sequence[Any]  # (c, y, x) arrays read with halo
    outputs: Sequence[zarr.Array]  # chunk-aligned outputs, same y/x shape
    # (*blocks with halo) -> (one block per output with the input's y/x size, a small JSON-able dict of facts)
    fn: Callable[..., tuple[Sequence[np.ndarray], dict[str, Any]]]
    halo: int
    chunk: int


def _run_chunk(job: ChunkJob, region: Region, ledger: Ledger, task_id: str) -> dict[str, Any]:
    blocks = [read_with_halo(a, region, job.halo) for a in job.inputs]
    results, facts = job.fn(*blocks)
    y0, y1, x0, x1 = region
    digests = []
    for out, result in zip(job.outputs, results, strict=True):
        kept = crop_halo(result, job.halo)
        out[:, y0:y1, x0:x1] = kept
        digests.append(block_digest(kept))
    record = {"digests": digests, "facts": facts}
    ledger.record(task_id, json.dumps(record))
    return record


def run_chunks(job: ChunkJob, regions: list[Region], ledger: Ledger, done: dict[str, str], label: str,
               engine: EngineConfig, prefix: str = "0") -> dict[str, dict[str, Any]]:
    """Run `job` over `regions` (skipping those the ledger has); per-chunk records by chunk id."""
    records: dict[str, dict[str, Any]] = {}
    tasks = []
    for region in regions:
        task_id = f"{prefix}-{chunk_id(region, job.chunk)}"
        if task_id in done:
            records[chunk_id(region, job.chunk)] = json.loads(done[task_id])
            continue
        tasks.append(dask.delayed(_run_chunk, pure=False)(job, region, ledger, task_id,
                                                          dask_key_name=f"chunk-{task_id}"))
    ids = [t.key[len("chunk-") + len(prefix) + 1 :] for t in tasks]
    for cid, record in zip(ids, run_tasks(tasks, label, engine), strict=True):
        records[cid] = record
    return records


def all_regions(shape: tuple[int, int, int], chunk: int) -> list[Region]:
    return chunk_grid(shape, chunk)


def regions_with_coverage(coverage: np.ndarray, scale: int, shape: tuple[int, int, int],
                          chunk: int) -> tuple[list[Region], list[Region]]:
    """Split the chunks into those whose area holds nonzero coverage and the rest.

    `coverage` is a (y, x) low-resolution map made by max-downsampling by `scale`, so a chunk is empty
    exactly when its footprint in `coverage` is all zero: no full-resolution read is needed.
    """
    hit, miss = [], []
    for region in chunk_grid(shape, chunk):
        y0, y1, x0, x1 = region
        footprint = coverage[y0 // scale : -(-y1 // scale), x0 // scale : -(-x1 // scale)]
        (hit if footprint.any() else miss).append(region)
    return hit, miss


def seam_score(prob: np.ndarray, chunk: int) -> float:
    """Mean jump across chunk borders divided by the mean jump between any two neighbouring pixels.

    prob: (..., y, x). About 1 for a seamless map; a visible seam makes the borders jump more than the rest.
    """
    p = prob.astype(np.float64)
    dy = np.abs(np.diff(p, axis=-2))  # jump between rows y-1 and y, at index y-1
    dx = np.abs(np.diff(p, axis=-1))
    rows = [y - 1 for y in range(chunk, p.shape[-2], chunk)]
    cols = [x - 1 for x in range(chunk, p.shape[-1], chunk)]
    border = np.concatenate([dy[..., rows, :].ravel(), dx[..., :, cols].ravel()])
    overall = np.concatenate([dy.ravel(), dx.ravel()]).mean()
    return float(border.mean() / overall) if overall > 0 else 1.0
