"""Tiled detector inference over an image of any size: overlapping tiles blended with a Gaussian window.

The image is reflect-padded by `margin` px on every side (default half the overlap, so image borders are not
tile borders; 0 when the caller already supplies real context) and covered by the fewest equal tiles of at
most `tile` px (multiples of 32) that overlap by at least `overlap` px. Each tile's probabilities are
weighted by a Gaussian window (sigma = tile / 8, clamped at 1e-3, as MONAI's sliding window) and the sum is
divided by the summed weights. An image that fits in one tile gives exactly the untiled result.
With `views` > 1 each tile is also run flipped (and, at 8, transposed), the probabilities flipped back and
averaged (test-time augmentation): `views` times the compute for steadier thin-crack maps. Two views are the tile and
its mirror image, or (`Views.second`) the tile turned by a half or a quarter turn, or ("small-") the mirror or half
turn seen at SMALL_VIEW of the tile's side, its logits scaled back; with `Views.loss_agreement` a pixel's
paint loss is the views' mean only where every view gives it at least that much, else the lowest view's (except, with
`Views.agreement_area`, in the tile's smaller loss regions, which keep the mean).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.stages.coarse_loss import anchored, ground_only
from pipeline.stages.detect_border import DEFAULT_BORDER, at_border

MULTIPLE_OF = 32
VIEWS = (1, 2, 4, 8)  # test-time augmentation: identity, + horizontal flip, + vertical flips, + transposes
_FLIPS = ((), (-1,), (-2,), (-2, -1))  # the flipped dims of views k and k + 4
SMALL_VIEW = 13 / 16  # a "small-" second view's side, of the tile's (rounded to a multiple of 32): 0.66 of its pixels
SECOND_VIEWS = {"mirror": (1, 1.0), "half-turn": (3, 1.0), "quarter-turn": (5, 1.0),  # the second of two views: its
                "small-mirror": (1, SMALL_VIEW), "small-half-turn": (3, SMALL_VIEW)}  # k in `_view`, and its side
AREA_THRESHOLD = 0.5  # the mean loss probability from which a pixel belongs to a region (Views.agreement_area)


@dataclass(frozen=True)
class Views:
    """Test-time augmentation: `count` orientations of every tile (VIEWS); with two, the tile and its `second`
    (SECOND_VIEWS); the views' probabilities averaged, except paint loss with `loss_agreement` > 0: there a pixel's
    probability is the mean only where every view gives it at least `loss_agreement`, else the lowest view's; except
    that the regions of the tile's mean loss map (> AREA_THRESHOLD, 8-connected) of fewer than `agreement_area` px keep
    the mean (0: none do)."""

    count: int = 1
    second: str = "mirror"
    loss_agreement: float = 0.0
    agreement_area: int = 0

    def __post_init__(self) -> None:
        if self.count not in VIEWS:
            raise ValueError(f"views must be one of {VIEWS}, got {self.count}")
        if self.second not in SECOND_VIEWS:
            raise ValueError(f"second view must be one of {tuple(SECOND_VIEWS)}, got {self.second!r}")
        if not 0.0 <= self.loss_agreement < 1.0:
            raise ValueError(f"loss agreement must be in [0, 1), got {self.loss_agreement}")
        if self.agreement_area < 0:
            raise ValueError(f"agreement area must be >= 0, got {self.agreement_area}")

    @classmethod
    def of(cls, settings: Any) -> Views:
        """The views that `settings` (a DetectConfig, an evaluation's options) name by their `tta`, `second_view`,
        `loss_agreement` and `agreement_area`."""
        return cls(settings.tta, settings.second_view, settings.loss_agreement, settings.agreement_area)

    def indices(self) -> tuple[int, ...]:
        """The k (`_view`) of each view run."""
        return (0, SECOND_VIEWS[self.second][0]) if self.count == 2 else tuple(range(self.count))

    def sides(self) -> tuple[float, ...]:
        """Each view's side as a share of the tile's (1: full size; SMALL_VIEW for a "small-" second view)."""
        return (1.0, SECOND_VIEWS[self.second][1]) if self.count == 2 else (1.0,) * self.count


def small_size(n: int, side: float) -> int:
    """A tile side `n` times `side`, rounded to a multiple of MULTIPLE_OF (at least one)."""
    return max(MULTIPLE_OF, round(n * side / MULTIPLE_OF) * MULTIPLE_OF)


def _run_view(model: torch.nn.Module, x: torch.Tensor, k: int, side: float, bf16: bool) -> torch.Tensor:
    """Sigmoid probabilities of view k of (B, 3, H, W) tiles, mapped back; with `side` < 1 the view is shrunk to
    `small_size` (area averaging) and its logits brought back to H x W (bilinear) before the sigmoid."""
    v = _view(x, k)
    size = v.shape[-2:]
    if side != 1.0:
        v = F.interpolate(v, size=(small_size(size[0], side), small_size(size[1], side)), mode="area")
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(v)
    logits = logits.float()
    if side != 1.0:
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return _unview(torch.sigmoid(logits), k)


def _view(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th of the 8 flips/transposes of (B, C, H, W) tiles (k < 4: flips only); `_unview` undoes it."""
    if k >= 4:
        x = x.transpose(-2, -1)
    dims = _FLIPS[k % 4]
    return x.flip(dims) if dims else x


def _unview(y: torch.Tensor, k: int) -> torch.Tensor:
    dims = _FLIPS[k % 4]
    y = y.flip(dims) if dims else y
    return y.transpose(-2, -1) if k >= 4 else y


def tile_probabilities(model: torch.nn.Module, x: torch.Tensor, bf16: bool = False,
                       views: int | Views = 1) -> torch.Tensor:
    """Sigmoid probabilities (B, K, H, W) float32 of (B, 3, H, W) tiles, fused over `views` (a count: flips, the
    paint loss averaged too). The odd channels are paint loss (K = 2 classes per network; 4 with a base beside)."""
    plan = views if isinstance(views, Views) else Views(views)
    total = low = None
    for k, side in zip(plan.indices(), plan.sides(), strict=True):
        prob = _run_view(model, x, k, side, bf16)
        total = prob if total is None else total + prob
        if plan.loss_agreement:
            loss = prob[:, 1::2]
            low = loss if low is None else torch.minimum(low, loss)
    assert total is not None
    mean = total / plan.count
    if low is not None:
        loss = mean[:, 1::2]
        fused = torch.where(low >= plan.loss_agreement, loss, low)
        if plan.agreement_area:
            small = small_regions(loss.cpu().numpy() > AREA_THRESHOLD, plan.agreement_area)
            fused = torch.where(torch.from_numpy(small).to(loss.device), loss, fused)
        mean[:, 1::2] = fused
    return mean


def small_regions(mask: np.ndarray, area: int) -> np.ndarray:
    """Bool, the shape of `mask` (..., H, W): the pixels of its 8-connected regions (in each H x W slice) of fewer
    than `area` px."""
    from scipy import ndimage

    out = np.zeros(mask.shape, bool)
    for index in np.ndindex(mask.shape[:-2]):
        labels, count = ndimage.label(mask[index], structure=np.ones((3, 3), bool))
        if count:
            sizes = np.bincount(labels.ravel())
            small = sizes < area
            small[0] = False
            out[index] = small[labels]
    return out


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


def fit_tiles(length: int, max_tile: int, overlap: int) -> tuple[int, list[int]]:
    """The fewest equal tiles (multiples of 32, at most `max_tile`) covering `length` with >= `overlap` shared.

    Returns the tile side and the start of each tile. With n tiles of side t, n*t - (n-1)*overlap >= length,
    so a 1152-px block at max_tile 512 / overlap 64 takes three 448-px tiles instead of three 512-px ones.
    """
    if not 0 <= overlap < max_tile:
        raise ValueError(f"overlap must be in [0, {max_tile}), got {overlap}")
    if length <= max_tile:
        return _ceil_to(length, MULTIPLE_OF), [0]
    n = -(-(length - overlap) // (max_tile - overlap))
    tile = min(max_tile, _ceil_to(-(-(length + (n - 1) * overlap) // n), MULTIPLE_OF))
    # spread the n starts evenly from 0 to length - tile
    starts = [round(i * (length - tile) / (n - 1)) for i in range(n)]
    return tile, starts


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


PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_native_bf16() -> bool:
    """True on CPUs with AVX512-BF16 or AMX (bf16 autocast is then about twice as fast as fp32 here)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(precision: str, device: str) -> str:
    """'fp32' or 'bf16': 'auto' takes bf16 on GPUs and on CPUs with native bf16, fp32 elsewhere.

    bf16 kept the held-out detection F1 of fp32 (models/weights/detector-resunet18.eval.json).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "bf16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


@torch.inference_mode()
def predict_probabilities(
    model: torch.nn.Module,
    image_float_hwc: np.ndarray,
    tile: int = 512,
    overlap: int = 64,
    bf16: bool = False,
    channels_last: bool = True,
    margin: int | None = None,
    batch: int = 1,
    views: int | Views = 1,
    border: int = 0,
    real: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """(2, H, W) float32 per-class probabilities for an (H, W, C) image in [0, 1] (C 1..4).

    `margin` px of reflection are added on every side first (default overlap // 2, so the image border is
    no tile border); a block that already carries real context (the detect stage's halo) passes 0. Tiles
    are fitted to the padded image (`fit_tiles`) and run `batch` at a time, each in `views` orientations.
    With `border` px, the band along each reflected side of the image is judged again with edge copies for
    padding (`detect_border.at_border`); `real` (y0, y1, x0, x1) is the part of the input that is image (default
    all of it: a block whose halo the caller reflected passes the rest).
    """
    if tile % MULTIPLE_OF or tile <= 0:
        raise ValueError(f"tile must be a positive multiple of {MULTIPLE_OF}, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got {overlap} for tile {tile}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    image = as_rgb_float(image_float_hwc)  # (H, W, 3)
    h, w = image.shape[:2]
    margin = overlap // 2 if margin is None else margin
    th, ys = fit_tiles(h + 2 * margin, tile, overlap)
    tw, xs = fit_tiles(w + 2 * margin, tile, overlap)
    ph, pw = max(th, h + 2 * margin), max(tw, w + 2 * margin)
    padded = _pad(image, margin, ph - h - margin, margin, pw - w - margin)  # (Hp, Wp, 3)
    window = gaussian_window(th, tw) if len(ys) * len(xs) > 1 else np.ones((th, tw), np.float32)
    out = weight = None
    device = next(model.parameters()).device
    corners = [(y, x) for y in ys for x in xs]
    for i in range(0, len(corners), batch):
        group = corners[i : i + batch]
        patches = np.stack([padded[y : y + th, x : x + tw].transpose(2, 0, 1) for y, x in group])
        x_t = torch.from_numpy(patches).to(device)  # (b, 3, th, tw)
        if channels_last:
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        prob = tile_probabilities(model, x_t, bf16, views).cpu().numpy()  # (b, K, th, tw)
        if out is None:
            out = np.zeros((prob.shape[1], ph, pw), np.float32)
            weight = np.zeros((ph, pw), np.float32)
        for (y, x), p in zip(group, prob, strict=True):
            out[:, y : y + th, x : x + tw] += p * window
            weight[y : y + th, x : x + tw] += window
    assert out is not None and weight is not None
    out /= weight[None]
    if border:
        ry0, ry1, rx0, rx1 = (0, h, 0, w) if real is None else real
        at_border(out, padded, (margin + ry0, margin + ry1, margin + rx0, margin + rx1), border,
                  lambda strip: predict_probabilities(model, strip, tile=tile, overlap=overlap, bf16=bf16,
                                                      channels_last=channels_last, margin=0, batch=batch))
    return np.ascontiguousarray(out[:, margin : margin + h, margin : margin + w])


COARSE_SCALE = 2  # the coarse paint-loss pass sees the image at 1 / COARSE_SCALE of its size
COARSE_OPENING = 15  # px (full size): only plateaus of the coarse loss probability at least this wide are kept


def coarse_loss_probability(model: torch.nn.Module, image: np.ndarray, tile: int = 512, overlap: int = 64,
                            bf16: bool = False, margin: int | None = None, batch: int = 1, border: int = 0,
                            real: tuple[int, int, int, int] | None = None, channels: tuple[int, ...] = (1,),
                            ) -> np.ndarray:
    """(len(channels), H, W) float32: the paint-loss probability (the model's output `channels`; 1 for a detector)
    of the image seen at half size (area averaging, one view), scaled back (bilinear) and opened by a
    COARSE_OPENING-px square (grey-level opening), so that only losses at least that wide remain. At full size a
    tile sees the flat interior of a large loss without its edges; at half size it sees both. `border` and `real`
    as `predict_probabilities`, at half size."""
    import cv2
    from scipy import ndimage

    full = as_rgb_float(image)
    h, w = full.shape[:2]
    small = cv2.resize(full, (max(1, w // COARSE_SCALE), max(1, h // COARSE_SCALE)), interpolation=cv2.INTER_AREA)
    margin = None if margin is None else margin // COARSE_SCALE
    small_real = None if real is None else half_region(real, small.shape[:2])
    prob = predict_probabilities(model, small, tile=tile, overlap=overlap, bf16=bf16, margin=margin, batch=batch,
                                 border=-(-border // COARSE_SCALE), real=small_real)
    return np.stack([ndimage.grey_opening(cv2.resize(prob[c], (w, h), interpolation=cv2.INTER_LINEAR),
                                          size=(COARSE_OPENING, COARSE_OPENING)) for c in channels])


def half_region(region: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of a full-size block as a region of its COARSE_SCALE-times smaller `shape` (never empty)."""
    out = []
    for (a, b), n in zip((region[:2], region[2:]), shape, strict=True):
        lo = min(-(-a // COARSE_SCALE), n - 1)
        out += [lo, max(lo + 1, min(n, b // COARSE_SCALE))]
    return out[0], out[1], out[2], out[3]


def detect_probabilities(model: torch.nn.Module, image: np.ndarray, tile: int = 512, overlap: int = 64,
                         bf16: bool = False, margin: int | None = None, batch: int = 1, views: int | Views = 1,
                         coarse_loss: bool = False, min_crack: int = 0, threshold: float = 0.5,
                         border: int = DEFAULT_BORDER, real: tuple[int, int, int, int] | None = None,
                         scale: float = 1.0, straight: int = 0, paint_like: int = 0) -> np.ndarray:
    """(2, H, W) float32 as the detect stage makes them: `predict_probabilities` (with its `border` rule), with
    `coarse_loss` the paint-loss channel raised to `coarse_loss_probability` where that is larger (craquelure
    untouched; only its regions that the full-size pass marks in part, `anchored`, and in them only the pixels of the
    exposed ground's colour, `ground_only`, both in `pipeline.stages.coarse_loss`; not run where the full-size pass
    marks no loss), and with `min_crack` the craquelure fragments the stage drops set to 0 (`without_small_cracks` at
    `threshold`), and with `straight` its long straight components too (`straight_cracks.without_straight_cracks`: the
    image judged whole, as the stage judges the whole scan), and with `paint_like` the paint loss that looks like the
    paint around it (`paint_like_loss.without_paint_like_loss`, the image judged whole). With `scale` != 1 the network
    sees the image resampled by that factor (`scaled_input`; margin, border and `real` scaled with it) and its
    probabilities are taken back to the image's size by area averaging, so a 1-px crack reaches the network `scale` px
    wide, at `scale`**2 times the pixels. An adapted detector with a support (`models.adapted`) is run with its base
    beside it, and the regions it adds to the base are kept only where the base, read the same way (coarse pass
    included), supports them (`supported_probabilities`)."""
    from models.adapted import AdaptedDetector, BaseBeside, supported_probabilities

    levels = model.support_levels if isinstance(model, AdaptedDetector) else {}
    net = BaseBeside(model) if levels else model  # (adapted, base) logits from one pass of the base
    original = image
    if scale != 1.0:
        h, w = image.shape[:2]
        image, real = scaled_input(image, scale, real)
        margin = None if margin is None else round(margin * scale)
        border = round(border * scale)
    prob = predict_probabilities(net, image, tile=tile, overlap=overlap, bf16=bf16, margin=margin, batch=batch,
                                 views=views, border=border, real=real)  # (K, H, W), or (2K, H, W) with a base
    heads = (0, prob.shape[0] // 2) if levels else (0,)  # where each network's K channels start
    if coarse_loss and (prob[1] >= threshold).any():  # with no loss marked, nothing could be anchored
        coarse = coarse_loss_probability(net, image, tile, overlap, bf16, margin, batch, border, real,
                                         tuple(start + 1 for start in heads))
        rgb = as_rgb_float(image)
        for start, loss in zip(heads, coarse, strict=True):
            own = prob[start : start + prob.shape[0] // len(heads)]
            kept = ground_only(anchored(loss, own[1], threshold), rgb, (own >= threshold).any(axis=0), threshold)
            np.maximum(own[1], kept, out=own[1])
    if scale != 1.0:
        prob = resized(prob, (h, w))
    if levels:
        prob = supported_probabilities(prob[: heads[1]], prob[heads[1] :], levels, threshold)
    from pipeline.stages.paint_like_loss import without_paint_like_loss
    from pipeline.stages.straight_cracks import without_straight_cracks

    prob = without_straight_cracks(without_small_cracks(prob, threshold, min_crack), threshold, straight)
    return without_paint_like_loss(prob, as_rgb_float(original), threshold, paint_like) if paint_like else prob


SCALES = (0.1, 2.0)  # the range of `scale` the detect stage accepts


def scaled_input(image: np.ndarray, scale: float, real: tuple[int, int, int, int] | None = None,
                 ) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """(H', W', 3) float32 in [0, 1]: `image` resampled by `scale` (bicubic, clipped; area averaging when smaller),
    H' = round(H * scale); and the region `real` (y0, y1, x0, x1) in the resampled image's pixels."""
    full = as_rgb_float(image)
    h, w = full.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = resampled_rgb(full, size)
    if real is not None:
        ry0, ry1, rx0, rx1 = (round(v * scale) for v in real)
        real = (ry0, max(ry0 + 1, min(size[1], ry1)), rx0, max(rx0 + 1, min(size[0], rx1)))
    return out, real


def resampled_rgb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] resampled to `size` (width, height): bicubic and clipped when larger, area
    averaging when smaller."""
    import cv2

    method = cv2.INTER_CUBIC if size[0] > image.shape[1] else cv2.INTER_AREA
    return np.clip(cv2.resize(image, size, interpolation=method), 0.0, 1.0)


def resized(prob: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(K, h, w) float32 probabilities resampled to `shape` (area averaging when smaller, bilinear when larger)."""
    import cv2

    h, w = shape
    method = cv2.INTER_AREA if h <= prob.shape[1] else cv2.INTER_LINEAR
    return np.stack([cv2.resize(c, (w, h), interpolation=method) for c in prob]).astype(np.float32, copy=False)


def drop_small_fragments(mask: np.ndarray, min_px: int) -> np.ndarray:
    """(H, W) bool: `mask` without its 8-connected pieces of fewer than `min_px` pixels (`mask` itself if 0)."""
    from scipy import ndimage

    mask = np.asarray(mask, bool)
    if min_px <= 1 or not mask.any():
        return mask
    pieces, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    sizes = np.bincount(pieces.ravel(), minlength=count + 1)
    keep = sizes >= min_px
    keep[0] = False
    return keep[pieces]


def without_small_cracks(prob: np.ndarray, threshold: float, min_px: int) -> np.ndarray:
    """(2, H, W) probabilities as the label map reads them: the craquelure probability set to 0 on the fragments of
    the craquelure map (prob > threshold) smaller than `min_px` pixels, so that thresholding gives the stage's
    labels; `prob` itself when min_px is 0."""
    if min_px <= 1:
        return prob
    crack = prob[0] > threshold
    out = prob.copy()
    out[0][crack & ~drop_small_fragments(crack, min_px)] = 0.0
    return out
