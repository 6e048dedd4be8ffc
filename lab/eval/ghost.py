"""Crack ghosts: damage left visible beside the fill region, and a fill region by damage class and width.

A filled crack leaves a ghost where the fill region stops short of the visible damage: the anti-aliased edge
below the label's 0.5 coverage, the light caught by lifted crack edges, the shadow of a flake's rim. On
synthetic damage (`pipeline.synthetic_damage`, drawn on clean paintings, so the clean image is known):

- `ghost_contrast(restored, clean, region, width=3)`: mean |restored - clean| ([0, 1] scale, mean over the colour
  channels) in the `width`-px band just outside `region` (`band_outside`). With region = the true damage
  (labels > 0) the band is fixed by the damage, so fill regions of any dilation are compared on the same pixels
  (part of the band lies inside a dilated fill region and scores the fill there); with region = the fill region
  itself the band is never touched by the fill, so the figure is the damage left beside it.
- `fill_region(labels, rule)`: the region the inpaint stage fills for a label map. 'dilate:N' is the stage's own
  rule (`pipeline.inpaint.dilate_hole`, as `retouch inpaint --dilate N`; the default is 2). 'width:R' grows
  craquelure by its local half-width plus R px (a 1-px hairline gets 1 + R, a 6-px crack 3 + R) and paint loss
  by R + 1 px (its thrown shadow).
- `evaluate_ghost(...)`: both figures, per class, with PSNR and the fill's area, over the held-out paintings
  damaged with the seeds of `pipeline.detect_eval.make_synthetic_set`, for several rules.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lab.synthesis.synthetic_damage import CRAQUELURE, PAINT_LOSS
from pipeline.stages.inpaint import dilate_hole

GHOST_BAND = 3  # px
HELD_OUT_SEED = 1_000_000_007  # pipeline.detect_eval.make_synthetic_set's seed: image i, copy k -> seed + 1000 i + k


def band_outside(region: np.ndarray, width: int = GHOST_BAND) -> np.ndarray:
    """(H, W) bool: the pixels within `width` px (disk) of `region` but not in it."""
    return dilate_hole(region, width) & ~region.astype(bool)


def ghost_contrast(
    restored: np.ndarray, clean: np.ndarray, region: np.ndarray, width: int = GHOST_BAND,
    within: np.ndarray | None = None,
) -> float:
    """Mean |restored - clean| on [0, 1] over the `width`-px band outside `region` (optionally only where `within`).

    restored, clean: (H, W, C) uint8/uint16 of the same dtype (colour channels only are compared).
    Returns 0.0 when the band is empty.
    """
    band = band_outside(region, width)
    if within is not None:
        band &= within
    if not band.any():
        return 0.0
    c = min(restored.shape[2], 3) if restored.ndim == 3 else 1
    top = float(np.iinfo(restored.dtype).max) if np.issubdtype(restored.dtype, np.integer) else 1.0
    r = restored.reshape(*restored.shape[:2], -1)[:, :, :c].astype(np.float32)
    k = clean.reshape(*clean.shape[:2], -1)[:, :, :c].astype(np.float32)
    return float(np.abs(r - k)[band].mean() / top)


def local_half_width(mask: np.ndarray) -> np.ndarray:
    """(H, W) float32: for each mask pixel, the half-width of the stroke it lies in (px), 0 outside.

    The distance transform's maximum within a disk of that radius around each pixel (the ridge of the
    distance transform is the half-width; a max-filter carries it to the stroke's edge pixels).
    """
    m = mask.astype(np.uint8)
    if not m.any():
        return np.zeros(mask.shape, np.float32)
    dist = cv2.distanceTransform(m, cv2.DIST_L2, 3)
    r = int(np.ceil(dist.max()))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return np.where(m > 0, cv2.dilate(dist, kernel), 0).astype(np.float32)


def width_aware_region(labels: np.ndarray, rim: int = 1) -> np.ndarray:
    """Craquelure grown by its local half-width (rounded up) + `rim` px; paint loss grown by `rim` + 1 px."""
    cracks = labels == CRAQUELURE
    region = dilate_hole(labels == PAINT_LOSS, rim + 1)
    half = np.ceil(local_half_width(cracks)).astype(int)
    for w in np.unique(half[cracks]):
        region |= dilate_hole(cracks & (half == w), int(w) + rim)
    return region | (labels > 0)


def fill_region(labels: np.ndarray, rule: str) -> np.ndarray:
    """The (H, W) bool region filled for a label map (0 background, 1 craquelure, 2 paint loss).

    'dilate:N': labels > 0 grown by N px (the inpaint stage's `--dilate N`); 'width:R': `width_aware_region`.
    """
    name, _, arg = rule.partition(":")
    try:
        n = int(arg)
    except ValueError:
        n = -1
    if name not in ("dilate", "width") or n < 0:
        raise ValueError(f"unknown fill rule {rule!r}; use 'dilate:N' or 'width:R' with N, R >= 0")
    if name == "dilate":
        return dilate_hole(labels > 0, n)
    return width_aware_region(labels, n)


def case_figures(clean: np.ndarray, restored: np.ndarray, labels: np.ndarray, region: np.ndarray) -> dict[str, float]:
    """Ghost contrast beside the true damage (all, craquelure, paint loss), beside the fill region, PSNR, area."""
    damage = labels > 0
    diff = clean.astype(np.float64) - restored.astype(np.float64)
    mse = float((diff**2).mean())
    return {
        "ghost": ghost_contrast(restored, clean, damage),
        "ghost_craquelure": ghost_contrast(restored, clean, damage, within=band_outside(labels == CRAQUELURE)),
        "ghost_paint_loss": ghost_contrast(restored, clean, damage, within=band_outside(labels == PAINT_LOSS)),
        "ghost_outside_fill": ghost_contrast(restored, clean, region),
        "psnr": 100.0 if mse == 0 else min(100.0, 10 * np.log10(255.0**2 / mse)),
        "fill_ratio": float(region.mean()),
    }


def evaluate_ghost(
    images: Sequence[Path],
    fill: Callable[[np.ndarray, np.ndarray], np.ndarray],
    rules: Sequence[str] = ("dilate:2", "width:1"),
    copies: int = 2,
    long_side: int = 768,
    seed: int = HELD_OUT_SEED,
    progress: Callable[[str], None] | None = None,
    style: str = "classic",
) -> dict[str, Any]:
    """Ghost figures per rule (mean, standard error, n) over `copies` damaged copies of each image, and 'cases'.

    Each image is read, made RGB8 and downscaled to `long_side` (INTER_AREA), then damaged with seed
    `seed + 1000 i + k` (as `make_synthetic_set`) at that size by the generator `style` ('classic' or
    'realistic', `DamageConfig.style`), so crack widths are those drawn. `fill(image, region)` returns the
    composite (e.g. `stage_fill`). Rule 'none' scores the damaged image itself (nothing filled). The realistic
    generator photographs the whole picture again (varnish, light, noise, JPEG), so its cases are scored against
    the clean picture photographed alike, not the clean painting.
    """
    from lab.eval.inpaint_eval import as_rgb8, downscale, standard_error
    from lab.synthesis.realistic import realistic_damage
    from lab.synthesis.synthetic_damage import DamageConfig, synthesize_damage
    from pipeline.io.image_io import read_image

    rows: dict[str, list[dict[str, float]]] = {r: [] for r in ("none", *rules)}
    seconds = dict.fromkeys(rules, 0.0)
    damage = DamageConfig(style=style)
    for i, path in enumerate(images):
        painting = downscale(as_rgb8(read_image(path)), long_side)
        for k in range(copies):
            if style == "realistic":
                drawn = realistic_damage(painting, seed + 1000 * i + k, damage)
                damaged, labels, clean = drawn.damaged, drawn.labels, drawn.clean
            else:
                (damaged, labels), clean = synthesize_damage(painting, seed + 1000 * i + k, damage), painting
            if not (labels > 0).any():
                continue
            rows["none"].append(case_figures(clean, damaged, labels, labels > 0) | {"image": f"{path.stem}_{k}"})
            for rule in rules:
                region = fill_region(labels, rule)
                t0 = time.perf_counter()
                restored = fill(damaged, region)
                seconds[rule] += time.perf_counter() - t0
                rows[rule].append(case_figures(clean, restored, labels, region) | {"image": f"{path.stem}_{k}"})
            if progress:
                progress(f"{path.stem} copy {k} done")
    out: dict[str, Any] = {}
    for rule, cases in rows.items():
        out[rule] = {"n": len(cases)}
        for key in ("ghost", "ghost_craquelure", "ghost_paint_loss", "ghost_outside_fill", "psnr", "fill_ratio"):
            values = [c[key] for c in cases]
            out[rule][key] = float(np.mean(values)) if values else float("nan")
            out[rule][f"{key}_se"] = standard_error(values) if values else float("nan")
    out["cases"] = rows  # every case's figures, for paired comparisons
    out["settings"] = {"images": [p.name for p in images], "copies": copies, "long_side": long_side, "seed": seed,
                       "style": style, "band_px": GHOST_BAND, "seconds": seconds}
    return out


def stage_fill(model: Any, strategy: str = "boxes", tile: int = 256, overlap: int = 64, margin: int = 24,
               grain: float = 1.0, grain_sigma: float = 3.0) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """`fill(image, region)` as the inpaint stage fills one chunk at its defaults: the network on boxes around the
    damage (`inpaint_boxes`; or on every tile holding a hole, `strategy` 'tiles'), then the copied texture layer at
    strength `grain` (0: none). The region is filled as given (a rule's dilation is the stage's `--dilate`)."""
    from pipeline.stages.inpaint_boxes import check_strategy, network_fill
    from pipeline.stages.inpaint_grain import GrainConfig, add_grain

    check_strategy(strategy)
    texture = GrainConfig(alpha=grain, sigma=grain_sigma)  # raises on a bad strength or sigma

    def fill(image: np.ndarray, region: np.ndarray) -> np.ndarray:
        out = network_fill(image, region, model, strategy=strategy, tile=tile, overlap=overlap, margin=margin)
        return add_grain(out, image, region, texture) if grain else out

    return fill
