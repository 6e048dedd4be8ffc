"""Real crack-network shapes for synthesis: binary crack maps from ../shared/data, warped, scaled, rotated,
thinned to a skeleton and redrawn with a smoothly varying width.

Sources (training parts only, so no held-out test image lends its shape to training data):
- `nga_craquelure_maps/maps`: threshold maps of real craquelure on 17th-century paintings, kept where
  `index.csv` gives a crack fraction of 3-30% (above that a map is mostly shading);
- `deepcrack/train/masks` (its test split is held out);
- `crackforest_cfd/masks`, TRAIN stems only: sorted stems, every 4th (index 3, 7, ...) is TEST (the same
  rule as the real-crack training data).

Why redraw: the maps are thresholded photos (blobby, 2-8 px wide) and road-crack masks are wider than paint
cracks; the skeleton keeps the network's topology and the redraw gives paint-crack widths (mostly 1-3 px).
"""

from __future__ import annotations

import csv
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from skimage.morphology import remove_small_objects, skeletonize

from lab.pairs import crackforest_split

SHARED_DATA_ENV = "RETOUCH_SHARED_DATA"  # the same variable lab.paintings reads (synthesis may not import it)
NGA_FRACTION = (0.03, 0.30)


def default_root() -> Path:
    """../shared/data beside the repository, or $RETOUCH_SHARED_DATA."""
    env = os.environ.get(SHARED_DATA_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _nga_maps(root: Path) -> list[Path]:
    folder = root / "nga_craquelure_maps"
    index = folder / "index.csv"
    if not index.is_file():
        return []
    lo, hi = NGA_FRACTION
    with index.open(newline="") as f:
        stems = [row["stem"] for row in csv.DictReader(f) if lo <= float(row["crack_fraction"]) <= hi]
    return [folder / "maps" / f"{s}.png" for s in sorted(stems) if (folder / "maps" / f"{s}.png").is_file()]


def crackforest_train(masks: list[Path]) -> list[Path]:
    """The TRAIN part of CrackForest masks, as lab.pairs.crackforest_split decides for every user of the set."""
    stems = [p.stem for p in masks]
    return [p for p in sorted(masks, key=lambda p: p.stem) if crackforest_split(p.stem, stems) == "train"]


@functools.lru_cache(maxsize=8)
def shape_sources(root: Path) -> tuple[Path, ...]:
    """Every real crack map usable for training under `root` (empty when the data is absent)."""
    nga = _nga_maps(root)
    deepcrack = sorted((root / "deepcrack" / "train" / "masks").glob("*.png"))
    crackforest = crackforest_train(list((root / "crackforest_cfd" / "masks").glob("*.png")))
    return tuple(nga + deepcrack + crackforest)


@dataclass(frozen=True)
class RealCracks:
    """Coverage (H, W) float32 in [0, 1] of redrawn real cracks, and the source map's file name."""

    alpha: np.ndarray
    source: str


def _smooth_field(shape: tuple[int, int], scale: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean smooth noise, roughly unit amplitude, features about `scale` px wide."""
    h, w = shape
    gh, gw = int(np.ceil(h / scale)) + 3, int(np.ceil(w / scale)) + 3
    small = rng.normal(0, 1, (gh, gw)).astype(np.float32)
    return cv2.resize(small, (int(gw * scale), int(gh * scale)), interpolation=cv2.INTER_CUBIC)[:h, :w]


@functools.lru_cache(maxsize=256)
def _load(path: Path) -> np.ndarray:
    """The map's line network, 3 px wide: specks dropped, and blobs (shading caught by a threshold) in NGA maps."""
    m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise ValueError(f"{path}: not a readable crack map")
    mask = m > 127
    n, comp = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    area = np.bincount(comp.ravel(), minlength=n)
    length = np.bincount(comp[skeletonize(mask)], minlength=n)
    keep = area >= 25
    if path.parent.name == "maps":  # NGA threshold maps: long and thin is a crack, a compact blob is shading
        keep &= area <= 5 * np.maximum(length, 1)
    keep[0] = False
    lines = skeletonize(keep[comp])
    return cv2.dilate(lines.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


def _warped(mask: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """`mask` mirrored to cover, scaled, rotated and elastically warped onto an (H, W) float map."""
    h, w = shape
    scale = float(np.exp(rng.uniform(np.log(0.6), np.log(2.2))))  # output px per map px
    angle = float(rng.uniform(0, 360))
    diag = int(np.ceil(np.hypot(h, w) / scale)) + 8
    reps = (int(np.ceil(diag / mask.shape[0])) + 1, int(np.ceil(diag / mask.shape[1])) + 1)
    if reps != (1, 1):  # mirror-tile: a network continues across a mirrored edge without a seam
        mask = np.pad(mask, ((0, mask.shape[0] * (reps[0] - 1)), (0, mask.shape[1] * (reps[1] - 1))), "symmetric")
    y0 = int(rng.integers(0, max(1, mask.shape[0] - diag + 1)))
    x0 = int(rng.integers(0, max(1, mask.shape[1] - diag + 1)))
    src = mask[y0:y0 + diag, x0:x0 + diag].astype(np.float32)
    centre = (src.shape[1] / 2, src.shape[0] / 2)
    m = cv2.getRotationMatrix2D(centre, angle, scale)
    m[:, 2] += (w / 2 - centre[0], h / 2 - centre[1])
    # Elastic: a smooth displacement field a few px strong, so no two draws of a map look alike.
    strength = float(rng.uniform(1.0, 6.0))
    dx = _smooth_field(shape, float(rng.uniform(20, 60)), rng) * strength
    dy = _smooth_field(shape, float(rng.uniform(20, 60)), rng) * strength
    inv = cv2.invertAffineTransform(m)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xs, ys = xx + dx, yy + dy
    map_x = (inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]).astype(np.float32)
    map_y = (inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]).astype(np.float32)
    return cv2.remap(src, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def redraw(skeleton: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage of lines along `skeleton` (H, W) bool with a per-pixel half-width `radius` (px)."""
    if not skeleton.any():
        return np.zeros(skeleton.shape, np.float32)
    dist, labels = cv2.distanceTransformWithLabels((~skeleton).astype(np.uint8), cv2.DIST_L2, 5,
                                                   labelType=cv2.DIST_LABEL_PIXEL)
    # The half-width at each pixel is that of its nearest skeleton pixel, so a crack's width varies along it.
    ys, xs = np.nonzero(skeleton)
    lut = np.zeros(labels.max() + 1, np.float32)
    lut[labels[ys, xs]] = radius[ys, xs]
    r = lut[labels]
    return np.clip(r + 0.5 - dist, 0, 1).astype(np.float32)


def real_crack_network(
    shape: tuple[int, int], rng: np.random.Generator, sources: tuple[Path, ...], width: tuple[float, float]
) -> RealCracks:
    """One real crack map, warped onto `shape` and redrawn `width` px wide (a range; varies along each crack)."""
    path = sources[int(rng.integers(len(sources)))]
    warped = _warped(_load(path), shape, rng) > 0.35
    skeleton = skeletonize(remove_small_objects(warped, max_size=8))
    lo, hi = width
    t = np.clip(0.5 + 0.35 * _smooth_field(shape, float(rng.uniform(15, 50)), rng), 0, 1)
    radius = (lo + (hi - lo) * t) / 2 - 0.5  # a 1-px crack has radius 0: only its skeleton pixel is covered
    return RealCracks(alpha=redraw(skeleton, np.maximum(radius, 0.0)), source=path.name)
