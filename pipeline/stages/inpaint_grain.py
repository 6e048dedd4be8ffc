"""A texture layer on top of a fill: the surrounding paint's high-frequency band, copied into the hole.

The network's fill is smooth (the mean of the plausible fills). Here the fine band of the known paint,
`high_pass` = image minus its Gaussian blur (sigma px, per channel; the blur is a normalised convolution over
the known pixels only, so the hole does not leak into it), is synthesised inside the hole by image quilting
(Efros & Freeman 2001): the hole's bounding area is covered in raster order by square blocks on a grid with
overlap; each block that holds hole pixels takes, among `candidates` fully known source blocks drawn near
it, the one whose high-pass is closest (sum of squared differences) to what is already fixed in the block
(known pixels and the overlap of blocks already placed), and is pasted into the hole pixels with a linear
ramp over the overlap. Copying whole blocks keeps a periodic texture's period (canvas weave), and matching
the overlaps keeps its phase. Before copying, the band is clipped per channel to `clip` robust deviations of
the known ring around the hole, so that the fine texture is copied but the halo of a sharp edge (a fold, a
contour) is not. The synthesised band, times `alpha`, is added to the fill inside the hole only; every pixel
outside the hole comes back bit for bit.

Deterministic: the candidates are drawn from `numpy.random.default_rng(seed)`, so the same input gives
the same bytes (a resumed stage rewrites a chunk identically).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.io.image_io import colour_channels

_MIN_WEIGHT = 1e-3  # normalised blur: below this share of known pixels the local mean is not trusted


@dataclass(frozen=True)
class GrainConfig:
    """Strength `alpha` (0 = off), high-pass `sigma` (px), quilting `block` and `overlap` (px), candidates, seed;
    `clip` > 0 limits the band to that many robust deviations of the ring around the hole (see `clip_band`);
    `narrow` > 0: damage of at most that half-width (px) gets no grain, twice that and more the full strength
    (see `grain_weight`)."""

    alpha: float = 0.0
    sigma: float = 3.0
    block: int = 16
    overlap: int = 4
    candidates: int = 96
    seed: int = 0
    clip: float = 2.5
    narrow: float = 3.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 4.0:
            raise ValueError(f"grain alpha must be in [0, 4], got {self.alpha}")
        if not 0.5 <= self.sigma <= 32.0:
            raise ValueError(f"grain sigma must be in [0.5, 32] px, got {self.sigma}")
        if self.block < 4 or not 0 <= self.overlap < self.block // 2 + 1:
            raise ValueError(f"need block >= 4 and 0 <= overlap <= block / 2, got {self.block}/{self.overlap}")
        if self.candidates < 1:
            raise ValueError(f"need candidates >= 1, got {self.candidates}")
        if self.clip < 0 or self.narrow < 0:
            raise ValueError(f"grain clip and narrow must be >= 0 (0 = off), got {self.clip} and {self.narrow}")


def high_pass(unit: np.ndarray, known: np.ndarray, sigma: float) -> np.ndarray:
    """(h, w, c) float32: `unit` minus its Gaussian blur over the known pixels only; 0 inside the hole."""
    k = known.astype(np.float32)
    num = cv2.GaussianBlur(unit * k[:, :, None], (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(k, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    num = num.reshape(unit.shape)
    low = num / np.maximum(den, _MIN_WEIGHT)[:, :, None]
    trusted = (den >= _MIN_WEIGHT) & known
    return np.where(trusted[:, :, None], unit - low, 0.0).astype(np.float32)


def clip_band(band: np.ndarray, hole: np.ndarray, reach: int, clip: float) -> np.ndarray:
    """`band` limited per channel to +-clip robust deviations (1.4826 x median |band|) of the known ring within
    `reach` px of the hole: the paint's fine texture passes, the halo of a sharp edge is cut down."""
    ring = cv2.dilate(hole.astype(np.uint8), np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)).astype(bool) & ~hole
    if not ring.any():
        return band
    limit = clip * 1.4826 * np.median(np.abs(band[ring]), axis=0)  # (c,)
    return np.clip(band, -limit, limit).astype(np.float32)


def grain_weight(hole: np.ndarray, narrow: float, reach: int) -> np.ndarray:
    """(h, w) float32 in [0, 1]: how much grain each hole pixel takes, from the hole's local half-width.

    The half-width near a pixel is the largest distance to known paint within `reach` px of it: a thin crack
    (half-width <= narrow) takes none, a loss of half-width >= 2 x narrow takes all, in between a linear ramp;
    so thin cracks keep the network's clean fill, and a large loss is textured up to its edge."""
    dist = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)
    if not narrow:
        return hole.astype(np.float32)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    width = cv2.dilate(dist, disk)
    return np.where(hole, np.clip((width - narrow) / narrow, 0.0, 1.0), 0.0).astype(np.float32)


def _block_sums(mask: np.ndarray, block: int) -> np.ndarray:
    """Count of True pixels in every block x block window, indexed by its top-left corner."""
    s = cv2.integral(mask.astype(np.uint8))  # (h + 1, w + 1)
    return s[block:, block:] - s[:-block, block:] - s[block:, :-block] + s[:-block, :-block]


def _grid(length: int, block: int, step: int) -> list[int]:
    starts = list(range(0, length - block + 1, step))
    if starts[-1] != length - block:
        starts.append(length - block)
    return starts


def _candidates(valid: np.ndarray, y: int, x: int, reach: int, count: int,
                rng: np.random.Generator) -> np.ndarray:
    """Up to `count` distinct (y, x) top-left corners of fully known blocks within `reach` px of (y, x)."""
    vh, vw = valid.shape
    for _ in range(6):
        ys = np.clip(y + rng.integers(-reach, reach + 1, 4 * count), 0, vh - 1)
        xs = np.clip(x + rng.integers(-reach, reach + 1, 4 * count), 0, vw - 1)
        keep = valid[ys, xs]
        if keep.sum() >= max(1, count // 4):
            pos = np.unique(np.stack([ys[keep], xs[keep]], axis=1), axis=0)
            return pos[rng.permutation(len(pos))[:count]]
        reach *= 2
    pos = np.argwhere(valid)
    return pos[rng.choice(len(pos), size=min(count, len(pos)), replace=False)] if len(pos) else pos


def synthesize_grain(band: np.ndarray, hole: np.ndarray, config: GrainConfig,
                     where: np.ndarray | None = None) -> np.ndarray:
    """(h, w, c) float32: the high-pass `band` (known pixels' values used) quilted into `hole`; 0 outside it.

    With `where` ((h, w) bool), only the grid blocks holding `where` pixels are synthesised (0 elsewhere)."""
    h, w = hole.shape
    b, o = config.block, config.overlap
    out = np.zeros_like(band)
    if h < b or w < b or not hole.any():
        return out
    valid = _block_sums(hole, b) == 0  # fully known source blocks
    if not valid.any():
        return out
    rng = np.random.default_rng(config.seed)
    canvas = np.where(hole[:, :, None], 0.0, band).astype(np.float32)
    fixed = ~hole
    holes_in = _block_sums(hole if where is None else hole & where, b)
    dist = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)
    ramp = np.minimum(1.0, (np.arange(b, dtype=np.float32) + 0.5) / max(o, 1))
    feather = np.minimum.outer(ramp, ramp) if o else np.ones((b, b), np.float32)
    offsets = np.arange(b)
    ys, xs = np.nonzero(hole)
    step = b - o
    for y in _grid(h, b, step):
        if not (y + b > ys.min() and y <= ys.max()):
            continue
        for x in _grid(w, b, step):
            if holes_in[y, x] == 0:
                continue
            cell = (slice(y, y + b), slice(x, x + b))
            reach = int(dist[cell].max()) + 2 * b
            pos = _candidates(valid, y, x, reach, config.candidates, rng)
            if not len(pos):
                continue
            rows, cols = pos[:, 0, None, None] + offsets[:, None], pos[:, 1, None, None] + offsets[None, :]
            patches = band[rows, cols]  # (n, b, b, c)
            known = fixed[cell]
            if known.any():
                diff = patches - canvas[cell][None]
                cost = np.einsum("nijc,nijc,ij->n", diff, diff, known.astype(np.float32))
                best = patches[int(np.argmin(cost))]
            else:
                best = patches[0]
            target = hole[cell]
            placed = known & target  # hole pixels an earlier block filled: blend over the overlap
            weight = np.where(placed, feather, 1.0)[:, :, None]
            block_now = canvas[cell]
            block_now[target] = (weight * best + (1 - weight) * block_now)[target]
            fixed[cell] |= target
    out[hole] = canvas[hole]
    return out


def add_grain(filled: np.ndarray, original: np.ndarray, hole: np.ndarray, config: GrainConfig) -> np.ndarray:
    """`filled` with alpha x the quilted high-pass of `original`'s known paint added inside `hole`.

    filled, original: (H, W, C) uint8/uint16 of one shape, C in 1..4 (alpha channels never change);
    hole: (H, W) bool, the pixels the fill replaced. Returns a new array; outside the hole it is `filled`.
    """
    if filled.shape != original.shape or filled.dtype != original.dtype or filled.ndim != 3:
        raise ValueError(f"filled and original must be (H, W, C) of one shape and dtype, got {filled.shape} "
                         f"{filled.dtype} and {original.shape} {original.dtype}")
    if hole.shape != filled.shape[:2] or hole.dtype != bool:
        raise ValueError(f"hole must be a bool (H, W) of the image's size, got {hole.dtype} {hole.shape}")
    if filled.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"images must be uint8 or uint16, got {filled.dtype}")
    out = filled.copy()
    if config.alpha == 0 or not hole.any():
        return out
    c = colour_channels(filled.shape[2])
    top = float(np.iinfo(filled.dtype).max)
    unit = original[:, :, :c].astype(np.float32) / top
    weight = grain_weight(hole, config.narrow, config.block // 2)
    if not weight.any():
        return out
    band = high_pass(unit, ~hole, config.sigma)
    if config.clip:
        band = clip_band(band, hole, 2 * config.block, config.clip)
    grain = synthesize_grain(band, hole, config, where=weight > 0)
    layer = filled[:, :, :c].astype(np.float32)[hole] + config.alpha * top * (weight[:, :, None] * grain)[hole]
    out[:, :, :c][hole] = np.clip(np.rint(layer), 0, top).astype(filled.dtype)
    return out
