"""Whole-image reading and writing for small images (evaluation, masks, previews).

Gigapixel scans never come through here: `pipeline.stages.ingest` streams them. Images come back channel-last
(H, W, C) with C in 1..4, dtype uint8 or uint16, exactly as stored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.io.sources import open_source


def read_image(path: str | Path) -> np.ndarray:
    """The image at `path` as (H, W, C) uint8/uint16; InputError names the file and the problem.

    Uses the same reader and checks as ingest (`pipeline.io.sources.open_source`), reading the whole image.
    """
    src = open_source(path)
    try:
        height, width, _ = src.shape
        return np.ascontiguousarray(np.moveaxis(src.read(0, height, 0, width), 0, -1))
    finally:
        src.close()


def read_mask(path: str | Path) -> np.ndarray:
    """A mask image as (H, W) uint8 label values (the first channel of a colour image)."""
    array = read_image(path)[:, :, 0]
    if array.dtype == np.uint16:
        array = (array > 0).astype(np.uint8) * 255
    return array


def as_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, C) with C in 1..4 -> (H, W, 3): grey replicated, alpha dropped."""
    if image.shape[2] in (1, 2):
        return np.repeat(image[:, :, :1], 3, axis=2)
    return image[:, :, :3]


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8/uint16 (H, W, C) -> float32 in [0, 1]."""
    return image.astype(np.float32) / float(np.iinfo(image.dtype).max)


def from_float(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float in [0, 1] -> uint8/uint16, rounded and clipped."""
    top = float(np.iinfo(dtype).max)
    return np.clip(np.rint(image * top), 0, top).astype(dtype)


def write_png(path: str | Path, image: np.ndarray, icc_profile: bytes | None = None) -> None:
    """Write (H, W), (H, W, 1|3|4) uint8 or uint16 as PNG, atomically; with `icc_profile` (8-bit images) the
    profile goes into an iCCP chunk, so colour-managed viewers show the colours the scan has."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
    tmp = path.with_name(path.name + ".tmp.png")
    if icc_profile and array.dtype == np.uint8:
        from PIL import Image

        Image.fromarray(np.ascontiguousarray(array)).save(tmp, "PNG", icc_profile=icc_profile, compress_level=6)
    else:
        import imagecodecs

        # a fresh C-ordered copy: numpy calls a (1, 1, 3) view contiguous whatever its strides, imagecodecs does not
        tmp.write_bytes(imagecodecs.png_encode(np.array(array, order="C", copy=True)))
    tmp.replace(path)


def colour_channels(n_channels: int) -> int:
    """How many leading channels are colour (the rest is alpha): 1 -> 1, 2 -> 1, 3 -> 3, 4 -> 3."""
    if n_channels not in (1, 2, 3, 4):
        raise ValueError(f"images must have 1 to 4 channels, got {n_channels}")
    return 1 if n_channels <= 2 else 3
