"""The detect stage's coarse paint-loss pass, judged against the full-size pass: which of its regions to keep
(`anchored`) and which of their pixels (`ground_only`). Its module level needs numpy, scipy and scikit-image only (no
torch: `anchored` imports `models.regions` when called), so that the stage key can name the settings without loading
the network."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.color import rgb2lab


def anchored(coarse: np.ndarray, loss: np.ndarray, threshold: float) -> np.ndarray:
    """(H, W) float32: `coarse` on its connected regions (coarse >= threshold, 8-connected) that hold a pixel the
    full-size pass marks (`loss` >= threshold), 0 elsewhere. The coarse pass alone also marks intact objects that
    look like a loss at half size (a white flower, a pale face); a large loss, seen whole at half size, is marked
    in part at full size, at its chipped edges."""
    from models.regions import regions_holding

    kept = regions_holding(coarse >= threshold, loss >= threshold)
    return np.where(kept, coarse, np.float32(0)).astype(np.float32)


COARSE_TRIM = 0.35  # a coarse-pass pixel stays where its colour is this much nearer its region's than the surround's
COARSE_RING = (4, 12)  # px: the surround of a region, outside its dilation by the first, inside by the second


def ground_only(coarse: np.ndarray, rgb: np.ndarray, marked: np.ndarray, threshold: float) -> np.ndarray:
    """(H, W) float32: `coarse` with the pixels of each region (coarse >= threshold, 8-connected) set to 0 whose
    colour is not COARSE_TRIM times nearer (CIELAB distance) the region's median colour than the median colour of its
    surround (the COARSE_RING band around it, less the pixels the full-size pass `marked` as damage); `rgb` (H, W, 3)
    float in [0, 1]. The half-size region of a large loss spreads a few pixels past the exposed ground onto the paint
    around it; those pixels have the paint's colour, the ground has its own. A region with under 10 surround pixels
    is kept whole."""
    out = coarse.copy()
    labels, _ = ndimage.label(coarse >= threshold, structure=np.ones((3, 3), bool))
    inner, outer = COARSE_RING
    h, w = coarse.shape
    for c, box in enumerate(ndimage.find_objects(labels), 1):
        if box is None:
            continue
        ys = slice(max(0, box[0].start - outer - 1), min(h, box[0].stop + outer + 1))
        xs = slice(max(0, box[1].start - outer - 1), min(w, box[1].stop + outer + 1))
        region = labels[ys, xs] == c
        ring = (ndimage.binary_dilation(region, iterations=outer) & ~ndimage.binary_dilation(region, iterations=inner)
                & ~marked[ys, xs])
        if ring.sum() < 10:
            continue
        lab = rgb2lab(rgb[ys, xs])
        own, around = np.median(lab[region], axis=0), np.median(lab[ring], axis=0)
        ground = np.linalg.norm(lab - own, axis=-1) < COARSE_TRIM * np.linalg.norm(lab - around, axis=-1)
        out[ys, xs][region & ~ground] = 0.0
    return out
