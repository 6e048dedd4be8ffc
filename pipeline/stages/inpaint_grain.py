"""A texture layer on top of a fill: the surrounding paint's high-frequency band, copied into the hole.

The network's fill is smooth (the mean of the plausible fills). Here the fine band of the known paint,
`high_pass` = image minus its Gaussian blur (sigma px, per channel; the blur is a normalised convolution over
the known pixels only, so the hole does not leak into it), is copied into the hole block by block, and every
value depends only on the image position and the image near it, never on where a chunk starts: the blocks
(`block` px) lie on a grid of stride block / 2 aligned to image coordinates; each block that holds hole pixels
takes, among `candidates` source positions within `reach` px (and, where none of them is wholly known, as many
within `far` px: the core of a wide loss) drawn from a hash of the seed and the block's 32-px cell (so
neighbouring blocks try the same shifts and a periodic texture keeps its phase), the one that is best known
(share of known source pixels), closest in low-pass colour (a wider normalised blur at the block centre),
closest on the block's own known pixels and as busy as the known paint around it; the copies are overlap-added
with raised-cosine windows and divided by the root of the summed squared windows, which keeps the band's
variance. Each copy is first clipped per channel to `clip` robust deviations (1.4826 x median |band|) of the
known band within `reach` px of its block (within `far` px where nothing nearer is known), so the fine texture
is copied but the halo of a sharp edge (a fold, a contour) is not. The band, times `alpha` and the crack weight
(`grain_weight`), is added to the fill inside the hole only; every pixel outside the hole comes back bit for bit.

A pixel's grain reads the image within `GrainConfig.span` px of it, so a chunk with at least that halo
computes the same values as the whole image would (away from the image border, where the chunk's reflected
padding is used): chunks agree where they meet and the result does not depend on the chunk size.
Deterministic: no random state, the same input and seed give the same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.io.image_io import colour_channels

_MIN_WEIGHT = 1e-3  # normalised blur: below this share of known pixels the local mean is not trusted
_CELL = 32  # blocks in one cell of this size (px) try the same source shifts
_COLOUR_MIN_WEIGHT = 0.05  # the block centre's low-pass colour is used when this share of its blur is known
_COLOUR_SCALE = 0.03  # low-pass colour difference (unit range) that costs as much as ...
_UNKNOWN_COST = 8.0  # ... this share of unknown source pixels (times one)
_BATCH = 64  # at most this many blocks handled at once (their candidate patches are held together)
_TINY = 1e-8  # keeps log energy ratios finite


@dataclass(frozen=True)
class GrainConfig:
    """Strength `alpha` (0 = off), high-pass `sigma` (px), copy `block` (px, even; grid stride block / 2),
    `candidates` source shifts tried per block within `reach` px and as many within `far` px (0 = none; used
    where no near one is wholly known), `seed`; `clip` > 0 limits each copy to that many robust deviations of the
    known band near its block; `narrow` > 0: damage of at most that half-width (px) gets no grain, twice that
    and more the full strength (see `grain_weight`)."""

    alpha: float = 0.0
    sigma: float = 3.0
    block: int = 16
    reach: int = 32
    candidates: int = 32
    far: int = 96
    seed: int = 0
    clip: float = 2.5
    narrow: float = 3.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 4.0:
            raise ValueError(f"grain alpha must be in [0, 4], got {self.alpha}")
        if not 0.5 <= self.sigma <= 32.0:
            raise ValueError(f"grain sigma must be in [0.5, 32] px, got {self.sigma}")
        if self.block < 4 or self.block % 2:
            raise ValueError(f"need an even grain block >= 4, got {self.block}")
        if self.reach < 1 or self.candidates < 1:
            raise ValueError(f"need grain reach >= 1 and candidates >= 1, got {self.reach} and {self.candidates}")
        if self.far and self.far <= self.reach:
            raise ValueError(f"the grain's far reach must be 0 (none) or more than reach {self.reach}, got {self.far}")
        if self.clip < 0 or self.narrow < 0:
            raise ValueError(f"grain clip and narrow must be >= 0 (0 = off), got {self.clip} and {self.narrow}")

    @property
    def span(self) -> int:
        """How far (px) from a pixel the image is read to compute its grain: the halo a chunk needs."""
        band = _radius(self.sigma)
        colour = _radius(self.block / 4) - self.block // 2
        width = math.ceil(2 * self.narrow) + self.block // 2 + 2
        return max(self.block - 1 + max(self.reach, self.far) + max(band, colour), width)


def _radius(sigma: float) -> int:
    """The radius of OpenCV's Gaussian kernel for float images at this sigma."""
    return (int(round(sigma * 8 + 1)) | 1) // 2


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT).reshape(image.shape)


def known_mean(unit: np.ndarray, known: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """The Gaussian mean of `unit` (h, w, c) over the known pixels only, and the known share of the blur (h, w)."""
    k = known.astype(np.float32)
    den = _blur(k, sigma)
    num = _blur(unit * k[:, :, None], sigma)
    return num / np.maximum(den, _MIN_WEIGHT)[:, :, None], den


def high_pass(unit: np.ndarray, known: np.ndarray, sigma: float) -> np.ndarray:
    """(h, w, c) float32: `unit` minus its Gaussian blur over the known pixels only; 0 inside the hole."""
    low, den = known_mean(unit, known, sigma)
    trusted = (den >= _MIN_WEIGHT) & known
    return np.where(trusted[:, :, None], unit - low, 0.0).astype(np.float32)


def robust_limit(band: np.ndarray, known: np.ndarray, clip: float) -> np.ndarray:
    """(c,) float32: `clip` robust deviations (1.4826 x median |band|) of the known pixels of `band`; inf when
    none is known or `clip` is 0."""
    if not clip or not known.any():
        return np.full(band.shape[-1], np.inf, np.float32)
    return _limit(np.abs(band[known]), clip)


def _limit(magnitudes: np.ndarray, clip: float) -> np.ndarray:
    """(c,) float32: `clip` x 1.4826 x the median of (n, c) absolute band values."""
    return (clip * 1.4826 * np.median(magnitudes, axis=0)).astype(np.float32)


def grain_weight(hole: np.ndarray, narrow: float, reach: int) -> np.ndarray:
    """(h, w) float32 in [0, 1]: how much grain each hole pixel takes, from the hole's local half-width.

    The half-width near a pixel is the largest distance to known paint within `reach` px of it: a thin crack
    (half-width <= narrow) takes none, a loss of half-width >= 2 x narrow takes all, in between a linear ramp;
    so thin cracks keep the network's clean fill, and a large loss is textured up to its edge."""
    if not narrow:
        return hole.astype(np.float32)
    dist = np.minimum(cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3), 2 * narrow)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    width = cv2.dilate(dist, disk)
    return np.where(hole, np.clip((width - narrow) / narrow, 0.0, 1.0), 0.0).astype(np.float32)


def _hash(seed: int, *keys: np.ndarray) -> np.ndarray:
    """uint64 per element: a SplitMix64-style mix of the seed and integer keys (stable across platforms)."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
        for key in keys:
            z = z ^ (np.asarray(key).astype(np.int64).astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15))
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
    return z


def _window(block: int) -> np.ndarray:
    """(block, block) raised-cosine window; shifted copies at stride block / 2 sum to 1."""
    ramp = np.sin(np.pi * (np.arange(block, dtype=np.float64) + 0.5) / block) ** 2
    return np.outer(ramp, ramp).astype(np.float32)


def _integral(values: np.ndarray) -> np.ndarray:
    """(h + 1, w + 1) summed-area table of a bool (int64 counts) or float (float64 sums) (h, w) array."""
    if values.dtype == bool:
        return cv2.integral(values.astype(np.uint8)).astype(np.int64)
    return cv2.integral(values.astype(np.float64))


def _sum_at(table: np.ndarray, ys: np.ndarray, xs: np.ndarray, block: int) -> np.ndarray:
    """Sums over the block x block windows with top-left corners (`ys`, `xs`), from an `_integral` table."""
    return table[ys + block, xs + block] - table[ys, xs + block] - table[ys + block, xs] + table[ys, xs]


def _gather(values: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """`values` (h, w[, c]) at the positions (`ys`, `xs`), 0 where they fall outside it."""
    h, w = values.shape[:2]
    inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    out = values[np.clip(ys, 0, h - 1), np.clip(xs, 0, w - 1)]
    out[~inside] = 0
    return out


def _padded(values: np.ndarray, pad: int) -> np.ndarray:
    """`values` (h, w[, c]) with `pad` zeros (False) on both sides of its first two axes."""
    out = np.zeros((values.shape[0] + 2 * pad, values.shape[1] + 2 * pad, *values.shape[2:]), values.dtype)
    out[pad : pad + values.shape[0], pad : pad + values.shape[1]] = values
    return out


def _cell_deviations(bandp: np.ndarray, known: np.ndarray, gy: np.ndarray, gx: np.ndarray,
                     corner: tuple[int, int], config: GrainConfig) -> np.ndarray:
    """(n, c) robust deviations (`robust_limit` at clip 1; inf where nothing is known) per block, one per
    image-aligned cell of `block` px (the cell holding the block's centre), from the known band within
    reach - block / 2 px of the cell, or within far - block / 2 px where nothing nearer is known."""
    b = config.block
    cy, cx = (gy + b // 2) // b, (gx + b // 2) // b
    cells, index = np.unique(np.stack([cy, cx], axis=1), axis=0, return_inverse=True)
    out = np.empty((len(cells), bandp.shape[-1]), np.float32)
    magnitude = np.abs(bandp)  # robust_limit's |band|, taken once
    for i, (y, x) in enumerate(cells):
        for reach in (config.reach, config.far):
            margin = reach - b // 2
            y0, x0 = int(y) * b - corner[0] - margin, int(x) * b - corner[1] - margin
            near = (slice(max(0, y0), y0 + b + 2 * margin), slice(max(0, x0), x0 + b + 2 * margin))
            mine = known[near]
            out[i] = _limit(magnitude[near][mine], 1.0) if mine.any() else np.inf
            if np.isfinite(out[i]).all() or not config.far:
                break
    return out[index.reshape(-1)]


def synthesize_grain(band: np.ndarray, hole: np.ndarray, config: GrainConfig, where: np.ndarray | None = None,
                     origin: tuple[int, int] = (0, 0), low: np.ndarray | None = None,
                     low_weight: np.ndarray | None = None) -> np.ndarray:
    """(h, w, c) float32: the high-pass `band` (known pixels' values used) copied into `hole`; 0 outside it.

    `origin`: the image position of the arrays' first pixel (the block grid and the source shifts follow
    image coordinates). `low`, `low_weight`: the low-pass colour of the known paint and its known share
    (see `known_mean`), used to prefer sources of the block's colour. With `where` ((h, w) bool), only the
    blocks holding `where` pixels are copied (0 elsewhere)."""
    h, w, c = band.shape
    b, r = config.block, config.reach
    step, half = b // 2, b // 2
    out = np.zeros_like(band)
    target = hole if where is None else hole & where
    if not target.any():
        return out
    pad = max(r, config.far) + b
    known = _padded(~hole, pad)
    bandp = _padded(band, pad)
    known_table = _integral(known)  # window sums indexed by the padded top-left corner
    # block top-left corners (padded coordinates) on the image-aligned grid, covering the target
    oy, ox = origin[0] - pad, origin[1] - pad  # image position of padded (0, 0)
    ty = np.arange((-oy) % step, h + 2 * pad - b + 1, step)
    tx = np.arange((-ox) % step, w + 2 * pad - b + 1, step)
    hits = _sum_at(_integral(_padded(target, pad)), ty[:, None], tx[None, :], b) > 0
    iy, ix = np.nonzero(hits)
    by, bx = ty[iy], tx[ix]  # padded top-left of every block to fill
    n, k = len(by), config.candidates
    gy, gx = by + oy, bx + ox  # image coordinates
    cell_y, cell_x = gy // _CELL, gx // _CELL
    shifts = []
    for i, reach in enumerate((r, config.far) if config.far else (r,)):  # near candidates, then far ones
        code = _hash(config.seed, cell_y[:, None], cell_x[:, None], np.arange(i * k, (i + 1) * k)[None, :])
        span = np.uint64(2 * reach + 1)
        shifts.append(((code % span).astype(np.int64) - reach, ((code // span) % span).astype(np.int64) - reach))
    dy = np.concatenate([s[0] for s in shifts], axis=1)  # (n, k) or (n, 2k)
    dx = np.concatenate([s[1] for s in shifts], axis=1)
    sy, sx = by[:, None] + dy, bx[:, None] + dx  # (n, k) padded source corners, inside the padding
    cost = _UNKNOWN_COST * (1.0 - _sum_at(known_table, sy, sx, b) / (b * b))
    if low is not None and low_weight is not None:
        dest = _gather(low, by + half - pad, bx + half - pad)  # (n, c)
        use = _gather(low_weight, by + half - pad, bx + half - pad) >= _COLOUR_MIN_WEIGHT
        diff = ((_gather(low, sy + half - pad, sx + half - pad) - dest[:, None]) ** 2).mean(axis=-1) \
            / _COLOUR_SCALE ** 2
        cost = cost + np.where(use[:, None], diff, 0.0)
    # far sources only for blocks with no wholly known source among the near ones (the core of a wide loss)
    near = np.ones(n, bool) if not config.far else (_sum_at(known_table, sy[:, :k], sx[:, :k], b) == b * b).any(axis=1)
    cost[near, k:] = np.inf
    # blocks with known pixels of their own: also agree with them (keeps a periodic texture's phase)
    # every b x b window of the padded band (and of the known map) as a view, indexed by its top-left corner:
    # gathering whole blocks by their corners, not pixel by pixel
    windows = np.lib.stride_tricks.sliding_window_view(bandp, (b, b), axis=(0, 1))  # (.., .., c, b, b)
    known_windows = np.lib.stride_tricks.sliding_window_view(known, (b, b))
    own = _sum_at(known_table, by, bx, b) > 0
    for group, last in ((own & near, k), (own & ~near, sy.shape[1])):
        blocks = np.flatnonzero(group)
        for part in np.array_split(blocks, max(1, -(-len(blocks) // _BATCH))):
            if not len(part):
                continue
            here, mine = windows[by[part], bx[part]], known_windows[by[part], bx[part]].astype(np.float32)
            patches = windows[sy[part, :last], sx[part, :last]]  # (m, k, c, b, b)
            ssd = np.einsum("mkcij,mij->mk", (patches - here[:, None]) ** 2, mine)
            scale = np.einsum("mcij,mij->m", here**2, mine) + 1e-8
            cost[part, :last] += ssd / scale[:, None]
    deviation = _cell_deviations(bandp, known, by + oy, bx + ox, (oy, ox), config)  # (n, c)
    local = np.mean(deviation**2, axis=1)  # the band's local variance near each block
    energy = _sum_at(_integral(_padded((band**2).mean(axis=-1), pad)), sy, sx, b) / (b * b)  # (n, k) each source's
    fair = np.isfinite(local)[:, None]
    ratio = np.log((energy + _TINY) / (np.where(fair[:, 0], local, 1.0)[:, None] + _TINY))
    cost = cost + np.where(fair, (ratio / 2) ** 2, 0.0)  # prefer sources as busy as the paint around the block
    pick = np.argmin(cost, axis=1)
    src_y, src_x = sy[np.arange(n), pick], sx[np.arange(n), pick]
    limits = config.clip * deviation if config.clip else np.full_like(deviation, np.inf)
    win = _window(b)[:, :, None]
    offsets = np.arange(b)
    acc = np.zeros((h + 2 * pad, w + 2 * pad, c), np.float32)
    norm = np.zeros((h + 2 * pad, w + 2 * pad), np.float32)
    for phase_y in (0, 1):  # blocks of one grid parity do not overlap: add them in one go
        for phase_x in (0, 1):
            sel = np.flatnonzero((gy // step % 2 == phase_y) & (gx // step % 2 == phase_x))  # image-aligned order
            for part in np.array_split(sel, max(1, -(-len(sel) // _BATCH))):
                if not len(part):
                    continue
                rows = by[part, None, None] + offsets[:, None]
                cols = bx[part, None, None] + offsets[None, :]
                best = np.moveaxis(windows[src_y[part], src_x[part]], 1, -1)  # (m, b, b, c)
                lim = limits[part][:, None, None, :]
                acc[rows, cols] += win * np.clip(best, -lim, lim)
                norm[rows, cols] += win[:, :, 0] ** 2
    acc = acc[pad : pad + h, pad : pad + w]
    norm = norm[pad : pad + h, pad : pad + w]
    out[target] = acc[target] / np.sqrt(np.maximum(norm[target], 1e-6))[:, None]
    return out


def grain_field(original: np.ndarray, hole: np.ndarray, config: GrainConfig, origin: tuple[int, int] = (0, 0),
                where: np.ndarray | None = None) -> np.ndarray:
    """(h, w, c) float32 in the image's unit range: the texture layer added to a fill (alpha x crack weight x
    the copied band) of `original` (uint8/uint16, colour channels only) around `hole`; 0 outside the hole.
    `origin` is the image position of the arrays' first pixel. With `where` ((h, w) bool), only those pixels
    are computed (0 elsewhere), from the part of the arrays within `config.span` px of them."""
    c = colour_channels(original.shape[2])
    top = float(np.iinfo(original.dtype).max)
    out = np.zeros((*hole.shape, c), np.float32)
    if config.alpha == 0 or not hole.any():
        return out
    weight = grain_weight(hole, config.narrow, config.block // 2)
    need = weight > 0 if where is None else (weight > 0) & where
    if not need.any():
        return out
    rows, cols = np.flatnonzero(need.any(axis=1)), np.flatnonzero(need.any(axis=0))
    y0, x0 = max(0, rows[0] - config.span), max(0, cols[0] - config.span)
    y1, x1 = min(hole.shape[0], rows[-1] + 1 + config.span), min(hole.shape[1], cols[-1] + 1 + config.span)
    box = (slice(y0, y1), slice(x0, x1))  # all that the needed pixels read
    unit = original[box][:, :, :c].astype(np.float32) / top
    known = ~hole[box]
    band = high_pass(unit, known, config.sigma)
    low, low_weight = known_mean(unit, known, config.block / 4)
    grain = synthesize_grain(band, hole[box], config, where=need[box], origin=(origin[0] + y0, origin[1] + x0),
                             low=low, low_weight=low_weight)
    out[box] = config.alpha * weight[box][:, :, None] * grain
    return out


def add_grain(filled: np.ndarray, original: np.ndarray, hole: np.ndarray, config: GrainConfig,
              origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """`filled` with alpha x the copied high-pass of `original`'s known paint added inside `hole`.

    filled, original: (H, W, C) uint8/uint16 of one shape, C in 1..4 (alpha channels never change);
    hole: (H, W) bool, the pixels the fill replaced; origin: the image position of the arrays' first pixel
    (a chunk's, halo included). Returns a new array; outside the hole it is `filled`.
    """
    if filled.shape != original.shape or filled.dtype != original.dtype or filled.ndim != 3:
        raise ValueError(f"filled and original must be (H, W, C) of one shape and dtype, got {filled.shape} "
                         f"{filled.dtype} and {original.shape} {original.dtype}")
    if hole.shape != filled.shape[:2] or hole.dtype != bool:
        raise ValueError(f"hole must be a bool (H, W) of the image's size, got {hole.dtype} {hole.shape}")
    if filled.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"images must be uint8 or uint16, got {filled.dtype}")
    if config.alpha == 0 or not hole.any():
        return filled.copy()
    return add_field(filled, hole, grain_field(original, hole, config, origin))


def add_field(filled: np.ndarray, hole: np.ndarray, field: np.ndarray) -> np.ndarray:
    """A copy of `filled` (H, W, C) uint8/uint16 with `field` ((H, W, colour channels), unit range, see
    `grain_field`) added inside `hole` (H, W) bool, rounded and clipped to the dtype's range."""
    out = filled.copy()
    c = colour_channels(filled.shape[2])
    top = float(np.iinfo(filled.dtype).max)
    layer = filled[:, :, :c].astype(np.float32)[hole] + top * field[hole]
    out[:, :, :c][hole] = np.clip(np.rint(layer), 0, top).astype(filled.dtype)
    return out
