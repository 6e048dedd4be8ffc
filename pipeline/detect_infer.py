"""Tiled detector inference over an image of any size: overlapping tiles blended with a Gaussian window.

The image is reflect-padded by half the overlap on every side (so image borders are not tile borders) and
up to whole tiles that are multiples of 32; tiles overlap by `overlap` px; each tile's probabilities are
weighted by a Gaussian window (sigma = tile / 8, clamped at 1e-3, as MONAI's sliding window) and the sum is
divided by the summed weights. An image that fits in one tile gives exactly the untiled result.
"""

from __future__ import annotations

import numpy as np
import torch

MULTIPLE_OF = 32


def _ceil_to(n: int, m: int) -> int:
    return (n + m - 1) // m * m


def as_rgb_float(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, C) float/uint8/uint16 -> (H, W, 3) float32 in [0, 1]: grey replicated, alpha dropped."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an (H, W) or (H, W, 1..4) image, got shape {image.shape}")
    if np.issubdtype(image.dtype, np.integer):
        image = image.astype(np.float32) / float(np.iinfo(image.dtype).max)
    image = image[:, :, :1] if image.shape[2] in (1, 2) else image[:, :, :3]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image, dtype=np.float32)


def gaussian_window(height: int, width: int, sigma_scale: float = 0.125) -> np.ndarray:
    """(h, w) float32 blending weights, 1 at the centre, clamped >= 1e-3 at the edges."""

    def one(n: int) -> np.ndarray:
        x = np.arange(n, dtype=np.float32) - (n - 1) / 2
        return np.exp(-0.5 * (x / (sigma_scale * n)) ** 2)

    return np.maximum(np.outer(one(height), one(width)), 1e-3).astype(np.float32)


def _starts(length: int, tile: int, stride: int) -> list[int]:
    starts = list(range(0, max(length - tile, 0) + 1, stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def _pad(image: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """Reflect padding that also works when the pad is larger than the image (repeats the reflection)."""
    while top or bottom or left or right:
        h, w = image.shape[:2]
        t, b = min(top, h - 1), min(bottom, h - 1)
        lft, r = min(left, w - 1), min(right, w - 1)
        if h == 1 or w == 1:  # reflection needs two pixels; a 1-px side is extended by edge copies
            return np.pad(image, ((top, bottom), (left, right), (0, 0)), mode="edge")
        image = np.pad(image, ((t, b), (lft, r), (0, 0)), mode="reflect")
        top, bottom, left, right = top - t, bottom - b, left - lft, right - r
    return image


@torch.inference_mode()
def predict_probabilities(
    model: torch.nn.Module,
    image_float_hwc: np.ndarray,
    tile: int = 512,
    overlap: int = 64,
    bf16: bool = False,
    channels_last: bool = True,
) -> np.ndarray:
    """(2, H, W) float32 per-class probabilities for an (H, W, C) image in [0, 1] (C 1..4)."""
    if tile % MULTIPLE_OF or tile <= 0:
        raise ValueError(f"tile must be a positive multiple of {MULTIPLE_OF}, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got {overlap} for tile {tile}")
    image = as_rgb_float(image_float_hwc)  # (H, W, 3)
    h, w = image.shape[:2]
    margin = overlap // 2
    # Tile sides: never larger than the (margin-padded) image rounded up to a multiple of 32.
    th = min(tile, _ceil_to(h + 2 * margin, MULTIPLE_OF))
    tw = min(tile, _ceil_to(w + 2 * margin, MULTIPLE_OF))
    stride_h, stride_w = max(th - overlap, MULTIPLE_OF), max(tw - overlap, MULTIPLE_OF)
    ph = max(th, h + 2 * margin)
    pw = max(tw, w + 2 * margin)
    padded = _pad(image, margin, ph - h - margin, margin, pw - w - margin)  # (Hp, Wp, 3)
    window = gaussian_window(th, tw)
    classes = None
    out = weight = None
    device = next(model.parameters()).device
    for y in _starts(ph, th, stride_h):
        for x in _starts(pw, tw, stride_w):
            patch = torch.from_numpy(np.ascontiguousarray(padded[y : y + th, x : x + tw].transpose(2, 0, 1)))
            batch = patch[None].to(device)  # (1, 3, th, tw)
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(batch)  # (1, K, th, tw)
            prob = torch.sigmoid(logits.float())[0].cpu().numpy()  # (K, th, tw)
            if out is None:
                classes = prob.shape[0]
                out = np.zeros((classes, ph, pw), np.float32)
                weight = np.zeros((ph, pw), np.float32)
            out[:, y : y + th, x : x + tw] += prob * window
            weight[y : y + th, x : x + tw] += window
    assert out is not None and weight is not None and classes is not None
    out /= weight[None]
    return np.ascontiguousarray(out[:, margin : margin + h, margin : margin + w])
