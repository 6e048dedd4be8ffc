"""A conservator's scribbles for `adapt`: one uint8 label per pixel of the scan, read and checked block by block.

    0 unlabelled, 1 craquelure, 2 paint loss, 3 clean

From a PNG/TIFF of the scan's size or a Zarr array (a group's first array, e.g. the review page's
`<store>/scribbles/`: (1, y, x)). The checks refuse, in one line naming the file: another size than the scan,
another pixel type than uint8, more than one channel, lossy compression (JPEG, a JPEG/WebP-compressed TIFF: its
noise changes labels without leaving 0..3), a value above 3, no damage stroke (1 or 2), no clean stroke (3).
The labelled pixels' coordinates are kept (a few dozen strokes are a few thousand pixels; a class with more than
`max_points` is subsampled, seeded), with the count per class and a digest of the labels.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError

UNLABELLED, CRAQUELURE, PAINT_LOSS, CLEAN = 0, 1, 2, 3
CLASS_NAMES = {CRAQUELURE: "craquelure", PAINT_LOSS: "paint_loss", CLEAN: "clean"}
ROWS = 1024  # rows read per block


@dataclass(frozen=True)
class Scribbles:
    """The checked scribbles: counts of labelled pixels per class name, digest (sha256 of the label bytes, row
    by row, so a PNG and a Zarr copy of the same labels agree) and (n, 2) int64 (y, x) points per label value."""

    path: str
    shape: tuple[int, int]
    counts: dict[str, int]
    digest: str
    points: dict[int, np.ndarray] = field(repr=False)

    @property
    def damage_classes(self) -> list[int]:
        """The damage labels (1, 2) that have strokes."""
        return [c for c in (CRAQUELURE, PAINT_LOSS) if self.counts[CLASS_NAMES[c]] > 0]


def _open(path: Path) -> tuple[Any, Any, bool]:
    """(array-like, source to close or None, channel_first)."""
    if path.is_dir() or path.suffix.lower() == ".zarr":
        from pipeline.io.edited_mask import open_zarr_mask

        array, channel_first = open_zarr_mask(path)
        return array, None, channel_first
    from pipeline.io.sources import open_source

    source = open_source(path)  # InputError for junk, truncation, float pixels, ...
    if source.lossy:  # JPEG noise turns 1s into 2s and 3s into 2s while every value stays in 0..3
        source.close()
        raise InputError(path, f"scribbles stored with lossy compression ({source.compression}), which changes "
                               "label values; save them as PNG, as TIFF without JPEG/WebP compression, or as Zarr")
    return source.array, source, False


def _block(array: Any, source: Any, channel_first: bool, y0: int, y1: int, path: Path) -> np.ndarray:
    """Rows [y0:y1] as (h, w) uint8."""
    if source is not None:
        return source.read(y0, y1, 0, source.shape[1])[0]
    try:
        block = np.asarray(array[..., y0:y1, :] if channel_first else array[y0:y1])
    except Exception as exc:  # codec errors come in many types
        raise InputError(path, f"corrupt scribble data near y={y0} ({exc})") from exc
    return block[0] if block.ndim == 3 and channel_first else block[..., 0] if block.ndim == 3 else block


def read_scribbles(path: str | Path, expected_shape: tuple[int, int], max_points: int = 200_000,
                   seed: int = 0) -> Scribbles:
    """Read and check scribbles against the scan's (height, width); InputError (one line) when unusable."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "scribbles file not found")
    array, source, channel_first = _open(path)
    try:
        shape = tuple(int(s) for s in array.shape)
        dtype = np.dtype(array.dtype)
        if len(shape) == 2:
            (height, width), channels = shape, 1
        elif len(shape) == 3 and channel_first:
            channels, height, width = shape
        elif len(shape) == 3:
            height, width, channels = shape
        else:
            raise InputError(path, f"scribbles have shape {shape}; expected one uint8 channel of the scan's size")
        if channels != 1:
            raise InputError(path, f"scribbles have {channels} channels; expected one uint8 channel (0 unlabelled, "
                                   "1 craquelure, 2 paint loss, 3 clean), not a colour drawing")
        if dtype != np.uint8:
            raise InputError(path, f"scribbles have pixel type {dtype}; expected uint8 (0 unlabelled, "
                                   "1 craquelure, 2 paint loss, 3 clean)")
        if (height, width) != tuple(expected_shape):
            eh, ew = expected_shape
            raise InputError(path, f"scribbles are {height}x{width} (HxW) but the scan is {eh}x{ew}; "
                                   "they must have exactly the scan's size")
        digest = hashlib.sha256(f"{height}x{width}".encode())
        found: dict[int, list[np.ndarray]] = {c: [] for c in CLASS_NAMES}
        for y0 in range(0, height, ROWS):
            block = _block(array, source, channel_first, y0, min(y0 + ROWS, height), path)
            top = int(block.max()) if block.size else 0
            if top > CLEAN:
                ys, xs = np.nonzero(block > CLEAN)
                raise InputError(path, f"scribbles hold the value {int(block[ys[0], xs[0]])} at y={y0 + ys[0]}, "
                                       f"x={xs[0]}; allowed: 0 unlabelled, 1 craquelure, 2 paint loss, 3 clean")
            digest.update(np.ascontiguousarray(block).tobytes())
            for value in CLASS_NAMES:
                ys, xs = np.nonzero(block == value)
                if ys.size:
                    found[value].append(np.stack([ys + y0, xs], axis=1).astype(np.int64))
    finally:
        if source is not None:
            source.close()
    points = {c: np.concatenate(v) if v else np.zeros((0, 2), np.int64) for c, v in found.items()}
    counts = {CLASS_NAMES[c]: int(p.shape[0]) for c, p in points.items()}
    if counts["craquelure"] + counts["paint_loss"] == 0:
        raise InputError(path, "scribbles hold no damage stroke: mark some craquelure (1) or paint loss (2)")
    if counts["clean"] == 0:
        raise InputError(path, "scribbles hold no clean stroke: mark some intact paint as clean (3)")
    rng = np.random.default_rng(seed)
    points = {c: p[np.sort(rng.choice(len(p), max_points, replace=False))] if len(p) > max_points else p
              for c, p in points.items()}
    return Scribbles(str(path), (height, width), counts, digest.hexdigest(), points)
