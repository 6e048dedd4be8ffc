"""Open a scan file lazily as a channel-last array, checking it before any pixel is read.

TIFF (striped, tiled, BigTIFF, pyramidal, OME-TIFF) is read through tifffile's Zarr interface, so only
the regions asked for are decoded. PNG and JPEG have no random access: they are decoded whole (they are
limited to what those formats hold; gigapixel scans come as TIFF).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import zarr
from PIL import Image, UnidentifiedImageError

from pipeline.errors import InputError

MAX_SIDE = 1 << 20  # 1,048,576 px: larger than any painting scan
# Limits, each overridable in the environment (a header is only a claim: these bound what one can make us do)
LIMITS = {
    # a TIFF is streamed chunk by chunk: its size is bounded by disk, not memory (~137 gigapixels)
    "RETOUCH_MAX_PIXELS": 1 << 37,
    # PNG and JPEG are decoded whole, in memory (Pillow's decompression-bomb guard is set to this too)
    "RETOUCH_MAX_DECODE_PIXELS": 1 << 29,
    # the largest TIFF strip or tile, decoded, that one chunk read may have to decode whole
    "RETOUCH_MAX_SEGMENT_MB": 512,
}
TIFF_SUFFIXES = {".tif", ".tiff", ".btf", ".tf8"}
PIL_SUFFIXES = {".png", ".jpg", ".jpeg"}
SUPPORTED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))
# compressions that lose or may lose information, by tifffile's names (a JPEG file's own, "jpeg", is among them):
# a label map stored so is not exact
LOSSY_COMPRESSIONS = {"OJPEG", "JPEG", "JPEG_99", "ALT_JPEG", "JPEG_LOSSY", "JPEG_2000_LOSSY", "JPEG2000",
                      "APERIO_JP2000_YCBC", "APERIO_JP2000_RGB", "JPEGXR", "JPEGXR_NDPI", "JPEGXL", "JPEGXL_DNG",
                      "WEBP", "WEBP_DEPRECATED", "LERC"}


@dataclass
class ScanSource:
    """A lazily readable scan: `array[y0:y1, x0:x1]` gives (h, w, C) in the source dtype."""

    path: Path
    array: Any  # zarr.Array (TIFF) or np.ndarray (PNG/JPEG), channel-last (H, W, C)
    format: str
    striped: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    compression: str = "none"  # JPEG's "jpeg", PNG's "deflate", a TIFF's compression (tifffile's name, lower case)
    _handle: Any = None

    @property
    def lossy(self) -> bool:
        """True when the pixels were stored with a compression that loses or may lose information (JPEG, or a TIFF
        compressed with JPEG, JPEG 2000, JPEG XL, JPEG XR, WebP or LERC)."""
        return self.compression.upper() in LOSSY_COMPRESSIONS

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.array.dtype)

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixels [y0:y1, x0:x1] as (C, h, w); a decoding failure names the file."""
        try:
            block = np.asarray(self.array[y0:y1, x0:x1])
        except Exception as exc:  # codec errors come in many types
            raise self._corrupt_tile_error(y0, y1, x0, x1, exc) from exc
        return np.ascontiguousarray(np.moveaxis(block, -1, 0))

    def _corrupt_tile_error(self, y0: int, y1: int, x0: int, x1: int, exc: Exception) -> InputError:
        """Name the first tile (or strip) of the region that does not decode: a region spans many."""
        ty, tx = getattr(self.array, "chunks", None) or (y1 - y0, x1 - x0)
        for cy in range(y0 // ty * ty, y1, ty):
            for cx in range(x0 // tx * tx, x1, tx):
                try:
                    self.array[cy : min(cy + ty, y1), cx : min(cx + tx, x1)]
                except Exception as tile_exc:  # noqa: BLE001 - any codec failure marks the tile
                    return InputError(self.path, f"corrupt image data in the {ty}x{tx} tile at y={cy}, x={cx} "
                                                 f"({tile_exc})")
        return InputError(self.path, f"corrupt image data in y={y0}:{y1}, x={x0}:{x1} ({exc})")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def limit(name: str) -> int:
    """The limit `name` of LIMITS, or its override from the environment (a positive integer)."""
    import os

    value = os.environ.get(name)
    if value is None:
        return LIMITS[name]
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        from pipeline.errors import ConfigError

        raise ConfigError(f"{name}={value!r}: expected a positive integer")
    return number


def _check_size_and_dtype(path: Path, height: int, width: int, channels: int, dtype: np.dtype,
                          max_pixels_name: str = "RETOUCH_MAX_PIXELS") -> None:
    if height <= 0 or width <= 0:
        raise InputError(path, f"image has zero size ({width}x{height})")
    max_pixels = limit(max_pixels_name)
    if height > MAX_SIDE or width > MAX_SIDE:
        raise InputError(
            path, f"header claims absurd dimensions {width}x{height}; the limit is {MAX_SIDE} px per side"
        )
    if height * width > max_pixels:
        raise InputError(path, f"{width}x{height} px is more than the {max_pixels:,} px this format may hold "
                               f"here ({max_pixels_name}; TIFF is streamed, PNG and JPEG are decoded whole)")
    if channels not in (1, 2, 3, 4):
        raise InputError(path, f"{channels} channels; Retouch reads grey, grey+alpha, RGB and RGBA")
    if np.dtype(dtype) not in SUPPORTED_DTYPES:
        raise InputError(
            path, f"unsupported pixel type {np.dtype(dtype)}; Retouch reads 8- and 16-bit unsigned integers"
        )


# photometric interpretations read as they are: grey (0 = black), RGB, and JPEG's YCbCr (tifffile decodes it to RGB)
READ_PHOTOMETRIC = ("MINISBLACK", "RGB", "YCBCR")


def _check_tiff_layout(path: Path, page: tifffile.TiffPage) -> None:
    """Refuse what the stored pixels would show wrongly: colours that are not grey or RGB (CMYK, a palette, grey with
    0 = white, CIELab), and an Orientation other than 1 (the outputs keep the stored grid, so they would show the
    painting turned or mirrored against the scan as viewers show it)."""
    photometric = page.photometric.name if page.photometric is not None else "MINISBLACK"
    if photometric not in READ_PHOTOMETRIC:
        what = {"SEPARATED": "CMYK", "PALETTE": "a colour palette", "MINISWHITE": "grey with 0 = white"}
        raise InputError(path, f"TIFF photometric interpretation {photometric} "
                               f"({what.get(photometric, 'not grey or RGB')}); Retouch reads grey and RGB scans: "
                               f"convert it to RGB first, keeping its ICC profile")
    orientation = page.tags.get("Orientation")
    if orientation is not None and int(orientation.value) != 1:
        raise InputError(path, f"TIFF Orientation is {int(orientation.value)} (viewers show the stored pixels turned "
                               f"or mirrored) and Retouch keeps the stored grid: write the scan upright first (e.g. "
                               f"`vips autorot`)")


def main_series(tif: tifffile.TiffFile) -> Any:
    """The scan in a TIFF: its largest image series. A camera's or scanner's TIFF may hold a reduced-resolution
    preview first, a slide scanner's a label or macro image beside the scan; the first series is not always it."""

    def area(series: Any) -> int:
        dims = dict(zip(series.axes, series.shape, strict=True))
        return int(dims.get("Y", 0)) * int(dims.get("X", 0))

    return max(tif.series, key=area)  # the first of the largest


def _tiff_metadata(page: tifffile.TiffPage) -> dict[str, Any]:
    """ICC profile (hex) and resolution tags of the first page."""
    meta: dict[str, Any] = {}
    icc = page.tags.get("InterColorProfile")
    if icc is not None:
        meta["icc_profile_hex"] = bytes(icc.value).hex()
    for name in ("XResolution", "YResolution"):
        tag = page.tags.get(name)
        if tag is not None:
            num, den = tag.value
            meta[name] = [int(num), int(den)]
    unit = page.tags.get("ResolutionUnit")
    if unit is not None:
        meta["ResolutionUnit"] = int(unit.value)
    meta["photometric"] = str(page.photometric.name) if page.photometric is not None else None
    return meta


def _check_tiff_offsets(path: Path, page: tifffile.TiffPage) -> None:
    """A truncated file has strips/tiles that point past its end; a forged or damaged header claims more
    strips/tiles than the file indexes, or strips so large that one read would decode gigabytes: refuse
    all three before streaming."""
    size = path.stat().st_size
    offsets = np.asarray(page.dataoffsets, dtype=np.int64)
    counts = np.asarray(page.databytecounts, dtype=np.int64)
    if offsets.size == 0 or counts.size == 0:
        raise InputError(path, "TIFF has no image data (no strips or tiles)")
    if np.any(counts <= 0) or np.any(offsets + counts > size):
        raise InputError(path, f"truncated TIFF: image data points past the end of the file ({size} bytes)")
    height, width = int(page.imagelength), int(page.imagewidth)
    planes = int(page.samplesperpixel) if int(page.planarconfig) == 2 else 1  # SEPARATE: one set per sample
    if page.is_tiled:
        rows, cols = int(page.tilelength), int(page.tilewidth)
        kind = "tiles"
    else:
        rows, cols = min(int(page.rowsperstrip or height), height), width
        kind = "strips"
    expected = -(-height // rows) * -(-width // cols) * planes * max(int(page.imagedepth), 1)
    if offsets.size != expected:
        raise InputError(path, f"header claims {width}x{height} px, which takes {expected:,} {kind}, but the file "
                               f"indexes {offsets.size:,}: a damaged or forged TIFF header")
    segment = rows * cols * (int(page.samplesperpixel) // planes) * np.dtype(page.dtype).itemsize
    max_mb = limit("RETOUCH_MAX_SEGMENT_MB")
    if segment > max_mb << 20:
        raise InputError(path, f"one of its {kind} decodes to {segment / 2**20:,.0f} MB, over the "
                               f"{max_mb} MB limit (RETOUCH_MAX_SEGMENT_MB): save it as a tiled TIFF "
                               "(e.g. 512-px tiles)")


def _channel_last(path: Path, axes: str, array: Any) -> Any:
    """Map tifffile series axes to (H, W, C); singleton extra axes are dropped."""
    shape = dict(zip(axes, array.shape, strict=True))
    extra = [a for a in axes if a not in "YXSC" and shape[a] > 1]
    if extra or ("S" in axes and "C" in axes and shape["C"] > 1 and shape["S"] > 1):
        raise InputError(path, f"unsupported TIFF layout {axes} {tuple(array.shape)}; expected one 2-D image")
    if "Y" not in axes or "X" not in axes:
        raise InputError(path, f"TIFF layout {axes} has no Y/X image plane")
    return _LazyAxes(array, axes)


class _LazyAxes:
    """View of a tifffile zarr array as (H, W, C) without reading it."""

    def __init__(self, array: Any, axes: str) -> None:
        self._array = array
        self._axes = axes
        dims = dict(zip(axes, array.shape, strict=True))
        channel_axis = "S" if dims.get("S", 1) > 1 else ("C" if dims.get("C", 1) > 1 else None)
        self._channel_axis = channel_axis
        self.shape = (dims["Y"], dims["X"], dims[channel_axis] if channel_axis else 1)
        self.dtype = array.dtype
        self.chunks = _chunks_of(array, axes)

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        ys, xs = key
        index = []
        order = []
        for axis in self._axes:
            if axis == "Y":
                index.append(ys)
                order.append("Y")
            elif axis == "X":
                index.append(xs)
                order.append("X")
            elif axis == self._channel_axis:
                index.append(slice(None))
                order.append("C")
            else:
                index.append(0)
        block = np.asarray(self._array[tuple(index)])
        if "C" not in order:
            block = block[..., None]
            order.append("C")
        return np.transpose(block, [order.index(a) for a in "YXC"])


def _chunks_of(array: Any, axes: str) -> tuple[int, int]:
    chunks = getattr(array, "chunks", None) or array.shape
    dims = dict(zip(axes, chunks, strict=True))
    return int(dims["Y"]), int(dims["X"])


@contextmanager
def _tifffile_quiet() -> Iterator[None]:
    """tifffile logs what it finds odd in a header (e.g. 'shape does not match page shape') on stderr; the
    checks here turn what matters into one InputError, so its warnings would only be extra lines."""
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # it logs a forged shape as an error, then reads on
    try:
        yield
    finally:
        logger.setLevel(level)


def _open_tiff(path: Path) -> ScanSource:
    with _tifffile_quiet():
        return _open_tiff_checked(path)


def _open_tiff_checked(path: Path) -> ScanSource:
    try:
        tif = tifffile.TiffFile(path)
    except (tifffile.TiffFileError, ValueError, OSError, struct.error) as exc:
        raise InputError(path, f"not a readable TIFF ({exc})") from exc
    try:
        if not tif.series:
            raise InputError(path, "TIFF holds no image series")
        series = main_series(tif)
        page = series.pages[0] if series.pages else None
        if page is None or not hasattr(page, "dataoffsets"):
            raise InputError(path, "TIFF has no readable first page")
        height = series.shape[series.axes.index("Y")] if "Y" in series.axes else 0
        width = series.shape[series.axes.index("X")] if "X" in series.axes else 0
        dims = dict(zip(series.axes, series.shape, strict=True))
        channels = dims.get("S", 1) if dims.get("S", 1) > 1 else dims.get("C", 1)
        _check_size_and_dtype(path, height, width, channels, series.dtype)
        _check_tiff_layout(path, page)
        _check_tiff_offsets(path, page)
        store = series.aszarr(level=0)
        array = zarr.open(store, mode="r")
        if isinstance(array, zarr.Group):
            array = array["0"]
        lazy = _channel_last(path, series.axes, array)
        striped = not page.is_tiled
        meta = _tiff_metadata(page)
        meta["levels_in_source"] = len(series.levels)
        meta["is_ome"] = bool(tif.is_ome)
        meta["bigtiff"] = bool(tif.is_bigtiff)
        compression = page.compression.name.lower() if page.compression is not None else "none"
        return ScanSource(path, lazy, "ome-tiff" if tif.is_ome else "tiff", striped, meta, compression, _handle=tif)
    except InputError:
        tif.close()
        raise
    except Exception as exc:
        tif.close()
        raise InputError(path, f"corrupt TIFF ({exc})") from exc


def _open_pil(path: Path) -> ScanSource:
    Image.MAX_IMAGE_PIXELS = limit("RETOUCH_MAX_DECODE_PIXELS")  # Pillow's decompression-bomb guard
    try:
        with Image.open(path) as im:
            compression = "deflate" if im.format == "PNG" else "jpeg"  # the signature let in PNG or JPEG (MPO)
            width, height = im.size
            _check_size_and_dtype(path, height, width, 1, np.uint8, "RETOUCH_MAX_DECODE_PIXELS")
            meta: dict[str, Any] = {}
            if im.info.get("icc_profile"):
                meta["icc_profile_hex"] = bytes(im.info["icc_profile"]).hex()
            if im.info.get("dpi"):
                meta["dpi"] = [float(v) for v in im.info["dpi"]]
            orientation = int(im.getexif().get(ORIENTATION_TAG, 1))
            if orientation != 1:  # a camera's JPEG: the scan is the picture as viewers show it, upright
                meta["exif_orientation_applied"] = orientation
            if _png_bit_depth(path) == 16:  # Pillow would give 16-bit RGB(A) as 8 bit
                array = _decode_png16(path)
            else:
                if im.mode == "CMYK":  # converted naively, its colours would be wrong and its ICC profile CMYK's
                    raise InputError(path, "a CMYK image; Retouch reads grey and RGB scans: convert it to RGB "
                                           "first, keeping its ICC profile")
                if im.mode == "P":
                    im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                elif im.mode in ("1", "YCbCr"):
                    im = im.convert("L" if im.mode == "1" else "RGB")
                array = np.asarray(im)
                if im.mode.startswith("I;16") or array.dtype == np.int32:
                    array = array.astype(np.uint16)
    except InputError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise InputError(path, f"not a readable image ({exc})") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(path, f"corrupt or truncated image ({exc})") from exc
    if array.ndim == 2:
        array = array[:, :, None]
    array = oriented(array, orientation)
    _check_size_and_dtype(path, array.shape[0], array.shape[1], array.shape[2], array.dtype)
    return ScanSource(path, array, "png" if compression == "deflate" else "jpeg", False, meta, compression)


ORIENTATION_TAG = 0x0112  # EXIF Orientation: how a viewer turns the stored pixels to show the picture


def oriented(array: np.ndarray, orientation: int) -> np.ndarray:
    """(H, W, C) stored pixels turned as EXIF `orientation` (1-8) says a viewer shows them (Pillow's
    `ImageOps.exif_transpose`); other values leave them as stored."""
    turns = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
             5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
             8: lambda a: np.rot90(a, 1)}
    turn = turns.get(orientation)
    return array if turn is None else np.ascontiguousarray(turn(array))


def _png_bit_depth(path: Path) -> int | None:
    """The bit depth in a PNG's IHDR (None for other files)."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return head[24]


def _decode_png16(path: Path) -> np.ndarray:
    """A 16-bit PNG at full depth (libpng through imagecodecs), as uint16 (H, W[, C])."""
    import imagecodecs

    try:
        return np.asarray(imagecodecs.png_decode(path.read_bytes()), dtype=np.uint16)
    except imagecodecs.PngError as exc:
        raise InputError(path, f"corrupt or truncated PNG ({exc})") from exc


def open_source(path: str | Path) -> ScanSource:
    """Open a scan lazily; InputError names the file and says what is wrong with it."""
    path = Path(path)
    for name in LIMITS:
        limit(name)  # a bad override fails as itself, not as a corrupt file
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a directory, not an image file")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty (0 bytes)")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic[:2] in (b"II", b"MM"):
        return _open_tiff(path)
    if magic == b"\x89PNG" or magic[:3] == b"\xff\xd8\xff":
        return _open_pil(path)
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES | PIL_SUFFIXES:
        raise InputError(path, f"not a {suffix.lstrip('.').upper()} image (file signature {magic!r})")
    raise InputError(path, f"not an image Retouch reads (TIFF, PNG, JPEG); signature {magic!r}")
