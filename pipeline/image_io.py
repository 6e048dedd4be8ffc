"""Whole-image reading and writing for small images (evaluation, masks, previews).

Gigapixel scans never come through here: `pipeline.ingest` streams them. Images come back channel-last
(H, W, C) with C in 1..4, dtype uint8 or uint16, exactly as stored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from pipeline.errors import InputError

TIFF_SUFFIXES = {".tif", ".tiff"}
SUPPORTED_DTYPES = (np.uint8, np.uint16)


def _as_hwc(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise InputError(path, f"unsupported image shape {array.shape}; expected (H, W) or (H, W, 1..4)")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(path, "image has zero size")
    if array.dtype not in SUPPORTED_DTYPES:
        raise InputError(path, f"unsupported pixel type {array.dtype}; Retouch reads 8- and 16-bit integer images")
    return array


def read_image(path: str | Path) -> np.ndarray:
    """The image at `path` as (H, W, C) uint8/uint16; InputError names the file and the problem."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            array = tifffile.imread(path, level=0) if _is_pyramid(path) else tifffile.imread(path)
        else:
            with Image.open(path) as im:
                if im.mode == "P":
                    im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                elif im.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
                    im = im.convert("L" if im.mode == "1" else "RGB")
                array = np.asarray(im)
                if array.dtype == np.int32 or im.mode.startswith("I;16"):
                    array = array.astype(np.uint16)
    except InputError:
        raise
    except (UnidentifiedImageError, tifffile.TiffFileError) as exc:
        raise InputError(path, f"not a readable image ({exc})") from exc
    except (OSError, ValueError) as exc:
        raise InputError(path, f"corrupt or truncated image ({exc})") from exc
    return _as_hwc(np.asarray(array), path)


def _is_pyramid(path: Path) -> bool:
    with tifffile.TiffFile(path) as tif:
        return len(tif.series) > 0 and len(tif.series[0].levels) > 1


def read_mask(path: str | Path) -> np.ndarray:
    """A mask image as (H, W) uint8 label values (the first channel of a colour image)."""
    array = read_image(path)[:, :, 0]
    if array.dtype == np.uint16:
        array = (array > 0).astype(np.uint8) * 255
    return array


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8/uint16 (H, W, C) -> float32 in [0, 1]."""
    return image.astype(np.float32) / float(np.iinfo(image.dtype).max)


def from_float(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float in [0, 1] -> uint8/uint16, rounded and clipped."""
    top = float(np.iinfo(dtype).max)
    return np.clip(np.rint(image * top), 0, top).astype(dtype)


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Write (H, W), (H, W, 1|3|4) uint8 or uint16 as PNG, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
    tmp = path.with_name(path.name + ".tmp.png")
    import imagecodecs

    tmp.write_bytes(imagecodecs.png_encode(np.ascontiguousarray(array)))
    tmp.replace(path)
