"""Inpainting core on numpy arrays: fill the hole with the PConv U-Net, keep every other pixel bit for bit.

No Zarr and no Prefect here: the store-level stage calls these functions per block.

- `inpaint_tile(tile, hole, model)`: one network pass on one tile -> the network's fill, float in [0, 1].
- `inpaint_image(image, hole, model, tile=, overlap=, dilate=)`: the composite for a whole (small) image or
  one Dask block with its halo: overlapping tiles, only those that contain hole pixels are run, their fills
  blended with a linear taper over the overlap; outside the (optionally dilated) hole the original pixels
  come back unchanged, in the original dtype.
- `load_edited_mask(path, expected_shape)`: a conservator's mask file (PNG/TIFF/Zarr) as a bool hole array.

Channels: the model is RGB. Grey images (C=1) are replicated to RGB and the fill is the mean of the three
predicted channels; grey+alpha (C=2) and RGBA (C=4) are filled in the colour channels only, alpha is never
changed (also not inside the hole).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from pipeline.io.edited_mask import load_edited_mask  # noqa: F401  (re-exported)
from pipeline.io.image_io import colour_channels


@dataclass(frozen=True)
class InpaintConfig:
    """Tiling of the inpaint stage. `tile` and `overlap` in pixels; `dilate` grows the hole by that many px."""

    tile: int = 512
    overlap: int = 64
    dilate: int = 0
    weights: str = "inpainter-pconv"

    def __post_init__(self) -> None:
        if self.tile < 16:
            raise ValueError(f"tile must be >= 16 px, got {self.tile}")
        if not 0 <= self.overlap < self.tile:
            raise ValueError(f"overlap must be in [0, tile), got {self.overlap} for tile {self.tile}")
        if self.dilate < 0:
            raise ValueError(f"dilate must be >= 0, got {self.dilate}")


def _to_unit(array: np.ndarray) -> np.ndarray:
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.float32) / float(np.iinfo(array.dtype).max)
    return array.astype(np.float32)


def dilate_hole(hole: np.ndarray, pixels: int) -> np.ndarray:
    """The hole grown by `pixels` (disk structuring element); the hole itself when pixels == 0."""
    if pixels <= 0:
        return hole.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(hole.astype(np.uint8), kernel).astype(bool)


def _multiple(model: torch.nn.Module) -> int:
    return int(getattr(model, "multiple", 1))


def inpaint_tile(tile: np.ndarray, hole: np.ndarray, model: torch.nn.Module, bf16: bool = False) -> np.ndarray:
    """The network's fill of one tile (`bf16`: the network under bfloat16 autocast, as `inpaint_tiles`).

    tile: (h, w, C) uint8/uint16 (or float in [0, 1]), C in 1..4; hole: (h, w) bool, True = fill.
    Returns (h, w, c) float32 in [0, 1] for the c colour channels (1 for grey, 3 for RGB); meaningful
    inside the hole. The tile is reflect-padded to a multiple of 2**depth and the result cropped.
    """
    return inpaint_tiles([tile], [hole], model, bf16)[0]


@torch.inference_mode()
def inpaint_tiles(tiles: list[np.ndarray], holes: list[np.ndarray], model: torch.nn.Module,
                  bf16: bool = False) -> list[np.ndarray]:
    """`inpaint_tile` over tiles of one shape in a single network call (a batch); one fill per tile.

    `bf16`: the network runs under bfloat16 autocast (its convolutions in bf16; the partial convolutions' mask
    counts and the smooth prefill stay float32); the fill comes back as float32."""
    if not tiles or len(tiles) != len(holes):
        raise ValueError(f"need as many holes as tiles (at least one), got {len(tiles)} and {len(holes)}")
    tile = tiles[0]
    for t, hole in zip(tiles, holes, strict=True):
        if t.ndim != 3 or hole.shape != t.shape[:2] or t.shape != tile.shape:
            raise ValueError(f"tiles (h, w, C) of one shape and holes (h, w) must match, got {t.shape} and "
                             f"{hole.shape}")
    h, w = holes[0].shape
    c = colour_channels(tile.shape[2])
    k = _multiple(model)
    ph, pw = -(-h // k) * k - h, -(-w // k) * k - w
    mode = "reflect" if h > ph and w > pw else "edge"
    rgbs, valids = [], []
    for t, hole in zip(tiles, holes, strict=True):
        rgb = _to_unit(t[:, :, :c])
        if c == 1:
            rgb = np.repeat(rgb, 3, axis=2)
        valid = (~hole.astype(bool)).astype(np.float32)
        if ph or pw:
            rgb = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode=mode)
            valid = np.pad(valid, ((0, ph), (0, pw)), mode=mode)
        rgbs.append(rgb.transpose(2, 0, 1))
        valids.append(valid[None])
    device = next(model.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(np.stack(rgbs))).to(device)  # (B, 3, H, W)
    m = torch.from_numpy(np.ascontiguousarray(np.stack(valids))).to(device)  # (B, 1, H, W), 1 = valid
    was_training = model.training
    model.eval()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        pred = model(x * m, m)[:, :, :h, :w].clamp(0, 1).cpu()  # (B, 3, h, w)
    model.train(was_training)
    fills = pred.float().permute(0, 2, 3, 1).numpy()
    return [f.mean(axis=2, keepdims=True) if c == 1 else f for f in fills]


def _starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def _taper(length: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1-D blend weights: a linear ramp over `overlap` px at inner tile edges, floored at 1e-3."""
    ramp = np.ones(length, np.float32)
    if overlap > 0:
        r = (np.arange(length, dtype=np.float32) + 0.5) / overlap
        if not at_start:
            ramp = np.minimum(ramp, r)
        if not at_end:
            ramp = np.minimum(ramp, r[::-1])
    return np.clip(ramp, 1e-3, 1.0)


def tiles_to_run(hole: np.ndarray, tile: int, overlap: int) -> list[tuple[int, int]]:
    """(y, x) of the tiles on the overlapping grid that contain at least one hole pixel."""
    h, w = hole.shape
    stride = tile - overlap
    return [
        (y, x)
        for y in _starts(h, tile, stride)
        for x in _starts(w, tile, stride)
        if hole[y : y + tile, x : x + tile].any()
    ]


def inpaint_image(
    image: np.ndarray,
    hole: np.ndarray,
    model: torch.nn.Module,
    *,
    tile: int = 512,
    overlap: int = 64,
    dilate: int = 0,
    bf16: bool = False,
) -> np.ndarray:
    """The composite: the network's fill inside the (dilated) hole, `image` unchanged elsewhere (`bf16` as
    `inpaint_tiles`).

    image: (H, W, C) uint8 or uint16, C in 1..4 (alpha never changes); hole: (H, W) bool, True = fill.
    Returns an array of image's shape and dtype. Only tiles holding hole pixels run through the network.
    """
    cfg = InpaintConfig(tile=tile, overlap=overlap, dilate=dilate)
    if image.ndim == 2:
        return inpaint_image(image[:, :, None], hole, model, tile=tile, overlap=overlap, dilate=dilate,
                             bf16=bf16)[:, :, 0]
    if image.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"image must be uint8 or uint16, got {image.dtype}")
    if hole.shape != image.shape[:2]:
        raise ValueError(f"hole mask {hole.shape} does not match image {image.shape[:2]}")
    if hole.dtype != bool:
        raise TypeError(f"hole mask must be bool, got {hole.dtype}")
    hole = dilate_hole(hole, cfg.dilate)
    out = image.copy()
    if not hole.any():
        return out
    h, w = hole.shape
    c = colour_channels(image.shape[2])
    acc = np.zeros((h, w, c), np.float32)
    wsum = np.zeros((h, w), np.float32)
    for y, x in tiles_to_run(hole, cfg.tile, cfg.overlap):
        ys, xs = slice(y, min(y + cfg.tile, h)), slice(x, min(x + cfg.tile, w))
        fill = inpaint_tile(image[ys, xs], hole[ys, xs], model, bf16)
        th, tw = fill.shape[:2]
        weight = np.outer(
            _taper(th, cfg.overlap, y == 0, y + th >= h), _taper(tw, cfg.overlap, x == 0, x + tw >= w)
        )
        acc[ys, xs] += fill * weight[:, :, None]
        wsum[ys, xs] += weight
    top = float(np.iinfo(image.dtype).max)
    filled = acc[hole] / wsum[hole][:, None]  # (N, c); every hole pixel lies in a run tile
    out[:, :, :c][hole] = np.clip(np.rint(filled * top), 0, top).astype(image.dtype)
    return out


def load_inpainter(name: str = "inpainter-pconv") -> torch.nn.Module:
    """The shipped inpainter (sha256-verified), in eval mode."""
    from models.weights import load_model

    model, _ = load_model(name, kind="inpainter")
    return model
