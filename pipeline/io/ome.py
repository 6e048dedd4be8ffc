"""OME-Zarr 0.5 metadata of the store's groups: multiscales, `omero` channels, labels and `image-label`.

Written so that third-party readers (ome-zarr-py, napari-ome-zarr, ome-zarr-models, the NGFF strict JSON
schemas) see what each group means: an RGB scan as one colour image, the damage map as a label image with
named, coloured classes placed under the scan it annotates, every level with the physical pixel size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline import __version__

NGFF_VERSION = "0.5"

# How each pyramid level is made from the one before it (`pipeline.io.store.downsample2`).
DOWNSAMPLING = {
    "mean": "2x2 block mean, rounded half up; an odd last row/column is replicated before pooling",
    "max": "2x2 block maximum (label maps: a class present at full resolution stays visible); an odd last "
           "row/column is replicated before pooling",
}


@dataclass(frozen=True)
class Channel:
    """One channel of an image: its name, display colour (RRGGBB) and intensity window."""

    label: str
    color: str


@dataclass(frozen=True)
class LabelClass:
    """One value of a label image: the class it stands for and its display colour with alpha."""

    value: int
    name: str
    rgba: tuple[int, int, int, int]


COLOUR_CHANNELS = {
    1: (Channel("gray", "FFFFFF"),),
    2: (Channel("gray", "FFFFFF"), Channel("alpha", "FFFFFF")),
    3: (Channel("R", "FF0000"), Channel("G", "00FF00"), Channel("B", "0000FF")),
    4: (Channel("R", "FF0000"), Channel("G", "00FF00"), Channel("B", "0000FF"), Channel("alpha", "FFFFFF")),
}


def colour_channels(count: int) -> tuple[Channel, ...]:
    """The channels of a scan with `count` channels (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA)."""
    if count not in COLOUR_CHANNELS:
        raise ValueError(f"a scan has 1 to 4 channels, got {count}")
    return COLOUR_CHANNELS[count]


def dtype_window(dtype: np.dtype) -> tuple[float, float]:
    """The full value range of `dtype`: [0, 1] for floats, the integer limits otherwise."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return 0.0, 1.0


def omero(channels: Sequence[Channel], dtype: np.dtype) -> dict[str, Any]:
    """The `omero` rendering block: each channel's label, colour and window over the dtype's range."""
    low, high = dtype_window(dtype)
    grey = len(channels) == 1 or all(c.color == "FFFFFF" for c in channels)
    return {
        "channels": [
            {"label": c.label, "color": c.color, "active": c.label != "alpha", "coefficient": 1.0,
             "family": "linear", "inverted": False,
             "window": {"min": low, "max": high, "start": low, "end": high}}
            for c in channels
        ],
        "rdefs": {"model": "greyscale" if grey else "color", "defaultT": 0, "defaultZ": 0},
    }


def multiscales(name: str, level_paths: Sequence[str], level_scales: Sequence[int], pixel_size_um: float | None,
                downsampling: str) -> dict[str, Any]:
    """One NGFF multiscale: axes (c, y, x) with units where the pixel size is known, per-level scale and
    the half-pixel translation of the pooled pixel centres, the downsampling type and its method."""
    if downsampling not in DOWNSAMPLING:
        raise ValueError(f"downsampling must be one of {sorted(DOWNSAMPLING)}, got {downsampling!r}")
    size = pixel_size_um or 1.0
    space: dict[str, Any] = {"type": "space"}
    if pixel_size_um:
        space["unit"] = "micrometer"
    datasets = []
    for path, factor in zip(level_paths, level_scales, strict=True):
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": [1.0, size * factor, size * factor]}]
        if factor > 1:  # a pooled pixel's centre lies between the centres of the pixels it pools
            shift = size * (factor - 1) / 2
            transforms.append({"type": "translation", "translation": [0.0, shift, shift]})
        datasets.append({"path": path, "coordinateTransformations": transforms})
    return {
        "name": name,
        "axes": [{"name": "c", "type": "channel"}, {"name": "y", **space}, {"name": "x", **space}],
        "datasets": datasets,
        "type": downsampling,
        "metadata": {"description": DOWNSAMPLING[downsampling], "method": "pipeline.io.store.downsample2",
                     "version": __version__, "kwargs": {"mode": downsampling}},
    }


def image_label(classes: Sequence[LabelClass], source_image: str = "../../") -> dict[str, Any]:
    """The `image-label` block: a colour and a name per class value (0 is background, transparent)."""
    return {
        "colors": [{"label-value": 0, "rgba": [0, 0, 0, 0]}]
        + [{"label-value": c.value, "rgba": list(c.rgba)} for c in classes],
        "properties": [{"label-value": 0, "class": "none"}]
        + [{"label-value": c.value, "class": c.name} for c in classes],
        "source": {"image": source_image},
    }
