"""A small store for the review tests: a 16-bit RGB scan (4 levels of 128-px chunks) and a damage map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
import zarr

from pipeline.engine.runner import EngineConfig
from pipeline.io.store import (
    block_digest,
    chunk_grid,
    combine_digests,
    create_labels,
    downsample2,
    levels_like,
    mark_complete,
    open_complete,
)
from pipeline.stages.detect import LABEL_CLASSES
from pipeline.stages.ingest import IngestConfig, ingest

HEIGHT, WIDTH, CHUNK = 500, 700, 128


def damage_labels() -> np.ndarray:
    """(H, W) uint8: a horizontal crack (1) along y = 100 and a paint-loss square (2) at y, x = 300..340."""
    labels = np.zeros((HEIGHT, WIDTH), np.uint8)
    labels[100, 50:650] = 1
    labels[300:340, 300:340] = 2
    return labels


def make_store(tmp_path: Path) -> str:
    rng = np.random.default_rng(0)
    scan = (rng.integers(0, 65536, (HEIGHT, WIDTH, 3))).astype(np.uint16)
    scan[:, :, 0] = 65535  # red channel full: shows as 255 after the 16 -> 8 bit display scaling
    source = tmp_path / "scan.tif"
    tifffile.imwrite(source, scan, photometric="rgb")
    store = str(tmp_path / "store.zarr")
    ingest(source, store, IngestConfig(chunk=CHUNK, top_level_max_side=128), EngineConfig(workers=1))
    write_damage(store, damage_labels())
    return store


def write_damage(store: str, labels: np.ndarray) -> None:
    """A complete `damage/` group and its label image `scan/labels/damage` holding `labels` (max-downsampled
    pyramid), as detect writes them (the two markers name the same key)."""
    root = zarr.open_group(store, mode="a")
    group = root.create_group("damage", overwrite=True)
    levels = levels_like(open_complete(store, "scan"), 1)
    pyramid = create_labels(root, "scan", "damage", levels, CHUNK, LABEL_CLASSES)
    block = labels[None]
    for level in levels:
        pyramid[level.path][:] = block
        block = downsample2(block, "max")
    digests = {f"{y0 // CHUNK}-{x0 // CHUNK}": block_digest(labels[None, y0:y1, x0:x1])
               for y0, y1, x0, x1 in chunk_grid(labels[None].shape, CHUNK)}
    mark_complete(pyramid, {"stage": "detect", "key": "test"})
    mark_complete(group, {"stage": "detect", "key": "test", "digests": {"labels/0": combine_digests(digests)},
                          "weights": "test", "params": {"threshold": 0.5}})
