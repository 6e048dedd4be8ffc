"""The tile engine: run a function over a (c, y, x) Zarr array chunk by chunk, with a halo of context.

Each task reads one output chunk plus `halo` pixels on every side (taken from the neighbours, reflected at
the image border; a job may read some inputs with a wider halo), calls `fn(block)` (with `origin=`, the
block's image position, when the job asks), crops the halo off its result and writes the chunk-aligned
result into the output arrays. Where the outputs are sharded, the chunks of a shard run as tasks of their own
(on any worker) and one task per shard writes it whole: tasks never write to the same chunk or shard.
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
from pipeline.engine.memory import release_if_holding
from pipeline.engine.runner import EngineConfig, run_tasks
from pipeline.io.store import block_digest, chunk_grid, read_region, write_side

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


def read_inputs(inputs: Sequence[Any], region: Region, halos: Sequence[int]) -> list[np.ndarray]:
    """Each input read with its halo (`read_with_halo`). An array given more than once is read once, with the
    widest of its halos, where that read stays inside the array: its narrower blocks are copies of crops of it,
    the same pixels. Near the border (where a block is reflected) each is read apart."""
    widest: dict[int, int] = {}
    for array, halo in zip(inputs, halos, strict=True):
        widest[id(array)] = max(widest.get(id(array), 0), halo)
    y0, y1, x0, x1 = region
    wide: dict[int, np.ndarray] = {}
    blocks = []
    for array, halo in zip(inputs, halos, strict=True):
        w = widest[id(array)]
        _, height, width = array.shape
        if not (y0 >= w and x0 >= w and y1 + w <= height and x1 + w <= width):
            blocks.append(read_with_halo(array, region, halo))
            continue
        if id(array) not in wide:
            wide[id(array)] = read_with_halo(array, region, w)
        d = w - halo
        block = wide[id(array)]
        blocks.append(np.ascontiguousarray(block[:, d : block.shape[1] - d, d : block.shape[2] - d]) if d else block)
    return blocks


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
    # True: fn is also given origin=(y, x), the image position of its blocks' first pixel (halo included)
    origin: bool = False
    # per input, the halo it is read with (default: `halo` for every input); results are cropped by `halo`
    halos: Sequence[int] = ()


def _run_chunk(job: ChunkJob, region: Region) -> tuple[list[np.ndarray], dict[str, Any]]:
    """One chunk: its inputs read with their halos, `fn` run, the halo cropped off each result; the results
    and the chunk's record (a digest per output, the facts `fn` returned)."""
    halos = job.halos or [job.halo] * len(job.inputs)
    blocks = read_inputs(job.inputs, region, halos)
    ry0, _, rx0, _ = region
    extra = {"origin": (ry0 - job.halo, rx0 - job.halo)} if job.origin else {}
    results, facts = job.fn(*blocks, **extra)
    kept = [np.ascontiguousarray(crop_halo(result, job.halo)) for result in results]
    del blocks, results
    release_if_holding()
    return kept, {"digests": [block_digest(k) for k in kept], "facts": facts}


def _write_block(items: Sequence[tuple[ChunkJob, Region]], chunk_results: Sequence[tuple[list[np.ndarray], dict]],
                 ledger: Ledger, task_ids: Sequence[str]) -> dict[str, Any]:
    """Write the chunk results of one write block (a shard, or a single chunk), each output once where the
    chunks tile the block (always, for a stage's full chunk grid), else chunk by chunk; then record them."""
    outputs = items[0][0].outputs
    chunk = items[0][0].chunk
    y0, y1 = min(r[0] for _, r in items), max(r[1] for _, r in items)
    x0, x1 = min(r[2] for _, r in items), max(r[3] for _, r in items)
    whole = sum((r[1] - r[0]) * (r[3] - r[2]) for _, r in items) == (y1 - y0) * (x1 - x0)
    if whole:
        for i, out in enumerate(outputs):
            buffer = np.zeros((out.shape[0], y1 - y0, x1 - x0), out.dtype)
            for (_, (ry0, ry1, rx0, rx1)), (kept, _) in zip(items, chunk_results, strict=True):
                buffer[:, ry0 - y0 : ry1 - y0, rx0 - x0 : rx1 - x0] = kept[i]
            out[:, y0:y1, x0:x1] = buffer
            del buffer
    else:
        for (_, (ry0, ry1, rx0, rx1)), (kept, _) in zip(items, chunk_results, strict=True):
            for out, result in zip(outputs, kept, strict=True):
                out[:, ry0:ry1, rx0:rx1] = result
    records = {}
    for (_, region), task_id, (_, record) in zip(items, task_ids, chunk_results, strict=True):
        records[chunk_id(region, chunk)] = record
        ledger.record(task_id, json.dumps(record))  # recorded once the block is written
    return records


def _run_block(items: Sequence[tuple[ChunkJob, Region]], ledger: Ledger, task_ids: Sequence[str]) -> dict[str, Any]:
    """Run the chunks of one write block one after the other in this task and write each output once."""
    return _write_block(items, [_run_chunk(job, region) for job, region in items], ledger, task_ids)


def _block_task(items: list[tuple[ChunkJob, Region]], ledger: Ledger, task_ids: list[str], name: str) -> Any:
    """The delayed task that writes one block: alone where the block is one chunk; else one task per chunk
    (spread over the workers, so that a shard's chunks are not left to one worker) feeding the block's writer."""
    if len(items) == 1:
        return dask.delayed(_run_block, pure=False)(items, ledger, task_ids, dask_key_name=name)
    chunks = [dask.delayed(_run_chunk, pure=False)(job, region, dask_key_name=f"{name}-{i}")
              for i, (job, region) in enumerate(items)]
    return dask.delayed(_write_block, pure=False)(items, chunks, ledger, task_ids, dask_key_name=name)


def run_chunk_jobs(parts: Sequence[tuple[ChunkJob, list[Region]]], ledger: Ledger, done: dict[str, str],
                   label: str, engine: EngineConfig, prefix: str = "0") -> dict[str, dict[str, Any]]:
    """Run each job over its regions (chunks), skipping those the ledger has; per-chunk records by chunk id.

    All jobs write the same outputs. Chunks are grouped by the outputs' write blocks (`write_side`): one
    writing task per shard where the outputs are sharded (its chunks run as tasks of their own), so that no
    two tasks ever write to the same shard.
    A block runs again whole unless the ledger has all of its chunks.
    """
    outputs = parts[0][0].outputs
    if any(list(job.outputs) != list(outputs) for job, _ in parts):
        raise ValueError("run_chunk_jobs: every job must write the same outputs")
    chunk = parts[0][0].chunk
    side = write_side(outputs[0])
    blocks: dict[tuple[int, int], list[tuple[ChunkJob, Region]]] = {}
    for job, regions in parts:
        for region in regions:
            blocks.setdefault((region[0] // side, region[2] // side), []).append((job, region))
    records: dict[str, dict[str, Any]] = {}
    tasks = []
    for (by, bx), items in blocks.items():
        task_ids = [f"{prefix}-{chunk_id(region, chunk)}" for _, region in items]
        if all(task_id in done for task_id in task_ids):
            for (_, region), task_id in zip(items, task_ids, strict=True):
                records[chunk_id(region, chunk)] = json.loads(done[task_id])
            continue
        tasks.append(_block_task(items, ledger, task_ids, f"chunk-{prefix}-{by}-{bx}"))
    for block_records in run_tasks(tasks, label, engine):
        records.update(block_records)
    return records


def run_chunks(job: ChunkJob, regions: list[Region], ledger: Ledger, done: dict[str, str], label: str,
               engine: EngineConfig, prefix: str = "0") -> dict[str, dict[str, Any]]:
    """Run `job` over `regions` (skipping those the ledger has); per-chunk records by chunk id."""
    return run_chunk_jobs([(job, regions)], ledger, done, label, engine, prefix)


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


def fill_seam_jumps(
    image: np.ndarray, fill: np.ndarray, chunk: int, near: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour jumps of `image` between two filled pixels: (across chunk borders, inside chunks near them).

    image: (C, y, x) or (y, x); fill: (y, x) bool, the pixels a fill replaced. A pair counts only when both of
    its pixels are filled (elsewhere the image is the scan, whose jumps say nothing of the fill); a jump is the
    mean over channels of |difference| between rows y-1 and y (or columns x-1 and x). Border pairs straddle a
    multiple of `chunk`; the inside pairs are the parallel pairs within `near` px of a border that do not
    cross it, so both samples come from the same stretch of paint. A seam makes the border jumps larger.
    """
    p = image.astype(np.float64).reshape(-1, *image.shape[-2:])
    dy = np.abs(np.diff(p, axis=-2)).mean(axis=0)  # (y-1, x): jump between rows y-1 and y at index y-1
    dx = np.abs(np.diff(p, axis=-1)).mean(axis=0)  # (y, x-1)
    pair_y, pair_x = fill[1:, :] & fill[:-1, :], fill[:, 1:] & fill[:, :-1]

    def lines(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        on, close = np.zeros(n, bool), np.zeros(n, bool)
        for b in range(chunk, size, chunk):
            on[b - 1] = True
            close[max(0, b - 1 - near) : b + near] = True
        return on, close & ~on

    on_y, close_y = lines(dy.shape[0], fill.shape[0])
    on_x, close_x = lines(dx.shape[1], fill.shape[1])
    border = np.concatenate([dy[pair_y & on_y[:, None]], dx[pair_x & on_x[None, :]]])
    inside = np.concatenate([dy[pair_y & close_y[:, None]], dx[pair_x & close_x[None, :]]])
    return border, inside
