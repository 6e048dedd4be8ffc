"""A conservator's edited mask (PNG/TIFF image or Zarr array), read lazily, block by block.

Grey masks from a lossless file (PNG, TIFF, Zarr): non-zero = hole, so a label mask (1 = craquelure,
2 = paint loss) works as is. Colour masks and lossy-compressed masks (JPEG, or a TIFF compressed with JPEG, WebP,
JPEG 2000/XL/XR or LERC) are thresholded at half the range (> 127 for 8 bit)
on their brightest colour channel: JPEG noise and anti-aliased edges around a painted mark do not count,
and a mark in any colour does. An alpha channel, if present, must pass the same rule. `rule` says which
applied. TIFF and Zarr masks are
read one block at a time, so a gigapixel mask never sits whole in memory (PNG/JPEG have no random access
and are decoded whole). Every problem is an InputError naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError
from pipeline.io.image_io import colour_channels


class EditedMask:
    """`hole(y0, y1, x0, x1)` -> (h, w) bool; opened and checked against the scan's (height, width)."""

    def __init__(self, path: str | Path, expected_shape: tuple[int, int]) -> None:
        if len(expected_shape) != 2:
            raise ValueError(f"expected_shape must be the scan's (height, width), got {expected_shape}")
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(self.path, "mask file not found")
        self._source: Any = None
        if self.path.is_dir() or self.path.suffix.lower() == ".zarr":
            self.array, self.channel_first = open_zarr_mask(self.path)
        else:
            from pipeline.io.sources import open_source

            self._source = open_source(self.path)  # InputError for junk, truncation, float pixels, ...
            self.array, self.channel_first = self._source.array, False
        shape = tuple(int(s) for s in self.array.shape)
        dtype = np.dtype(self.array.dtype)
        if dtype.kind != "b" and not np.issubdtype(dtype, np.integer):
            raise InputError(self.path, f"mask has pixel type {dtype}; use an 8/16-bit integer or bool mask")
        if len(shape) == 2:
            height, width, self.channels = shape[0], shape[1], 1
        elif len(shape) == 3 and self.channel_first:
            self.channels, height, width = shape
        elif len(shape) == 3:
            height, width, self.channels = shape
        else:
            raise InputError(self.path, f"mask has shape {shape}; expected (H, W) or (H, W, 1..4)")
        if not 1 <= self.channels <= 4:
            raise InputError(self.path, f"mask has shape {shape}; expected (H, W) or (H, W, 1..4)")
        if (height, width) != tuple(expected_shape):
            eh, ew = expected_shape
            raise InputError(self.path, f"mask is {height}x{width} (HxW) but the scan is {eh}x{ew}; "
                                        "an edited mask must have exactly the scan's size")
        self.shape = (height, width)
        lossy = self._source is not None and self._source.lossy
        if dtype.kind == "b" or (self.channels <= 2 and not lossy):
            self.threshold, self.rule = 0, "nonzero = hole"
        else:
            self.threshold = int(np.iinfo(dtype).max) // 2
            self.rule = f"> {self.threshold} on the brightest colour channel = hole"

    def hole(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The hole over [y0:y1, x0:x1] as (h, w) bool."""
        if self._source is not None:
            block = self._source.read(y0, y1, x0, x1)  # (C, h, w); a decoding failure names the file
        else:
            try:
                block = np.asarray(self.array[..., y0:y1, x0:x1] if self.channel_first
                                   else self.array[y0:y1, x0:x1])
            except Exception as exc:  # codec errors come in many types
                raise InputError(self.path, f"corrupt mask data near y={y0}, x={x0} ({exc})") from exc
            block = block[None] if block.ndim == 2 else block if self.channel_first else np.moveaxis(block, -1, 0)
        colour = colour_channels(self.channels)
        hole = (block[:colour] > self.threshold).any(axis=0)
        if self.channels in (2, 4):
            hole &= block[-1] > self.threshold
        return hole

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None


def load_edited_mask(path: str | Path, expected_shape: tuple[int, int]) -> np.ndarray:
    """The whole mask as an (H, W) bool hole array (for images that fit in memory)."""
    mask = EditedMask(path, expected_shape)
    try:
        return mask.hole(0, mask.shape[0], 0, mask.shape[1])
    finally:
        mask.close()


def open_zarr_mask(path: Path) -> tuple[Any, bool]:
    """The Zarr array (the first array of a group) and whether it is channel-first (c, y, x)."""
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises several types for a non-store
        raise InputError(path, f"not a readable Zarr array ({exc})") from exc
    if isinstance(node, zarr.Group):
        arrays = sorted(node.array_keys())
        if not arrays:
            raise InputError(path, "Zarr group holds no array")
        node = node[arrays[0]]
    shape = node.shape
    channel_first = len(shape) == 3 and shape[0] in (1, 2, 3, 4) and shape[2] not in (1, 2, 3, 4)
    return node, channel_first
