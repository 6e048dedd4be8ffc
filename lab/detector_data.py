"""Training tiles for the damage detector: crops of clean paintings, damaged on the fly, augmented.

A batch may also mix in (`make_batch(real=..., real_fraction=..., clean_fraction=...)`):
- real tiles: random crops of real crack photos (lab.real_cracks), crack mask -> craquelure channel,
  paint-loss channel 0, with the same rotations, flips and photometric augmentation;
- clean tiles (hard negatives): crops of the paintings with NO damage drawn and all-zero targets, so that
  intact paint (its thin lines, highlights and textures) is taught as "no damage"; with hard negatives
  (lab.hard_negatives) a share of them is centred on places a detector flagged on those paintings.
With flood places (lab.hard_negatives --damaged) a share of the damaged tiles is centred on the intact paint a
detector flagged beside damage, with new damage drawn around it.

Every tile is a pure function of (seed, index), so a resumed run sees exactly the tiles it would have seen.
Without real or clean fractions the random stream is the old one (same tiles, same validation set).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lab.real_cracks import RealSet
from lab.synthesis.synthetic_damage import CRAQUELURE, PAINT_LOSS, DamageConfig, synthesize_damage
from pipeline.io.image_io import as_rgb, read_image, to_float

ZOOM_MIN = 0.5  # the smallest factor a damaged tile is resized by after its damage is drawn
SHRUNK_COVER = 0.25  # a shrunk tile labels a damage class where it covers at least this share of a pixel


@dataclass(frozen=True)
class AugmentConfig:
    """Geometric and photometric augmentation of training tiles."""

    scale: tuple[float, float] = (0.6, 1.6)  # painting crop side / tile side
    brightness: float = 0.15  # +- additive
    contrast: float = 0.2  # +- multiplicative
    saturation: float = 0.3  # +- towards/away from grey
    p_blur: float = 0.25
    blur_sigma: tuple[float, float] = (0.3, 1.0)
    p_jpeg: float = 0.3
    jpeg_quality: tuple[int, int] = (35, 95)
    noise_sigma: float = 0.02  # max std of additive Gaussian noise
    p_grey: float = 0.05
    # Share of painting crops taken at an image edge and reflect-padded there, as detection pads a scan's
    # border (pipeline.engine.tiling, pipeline.stages.detect_infer): the mirror line is taught as intact.
    p_edge: float = 0.0
    # Share of damaged tiles drawn small and enlarged by a factor from `zoom` after the damage is drawn, so that
    # cracks and losses are as wide as on a scan at that many times the resolution (painting crops' `scale`
    # resizes the paint before any damage is drawn, so it never widens a crack); a factor below 1 draws the tile
    # larger and shrinks it, so cracks come out thinner and fainter than drawn.
    p_zoom: float = 0.0
    zoom: tuple[float, float] = (1.0, 3.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "zoom", tuple(self.zoom))  # JSON gives a list
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"AugmentConfig.scale must be an increasing positive range, got {self.scale}")
        if not ZOOM_MIN <= self.zoom[0] <= self.zoom[1] <= 8:
            raise ValueError(f"AugmentConfig.zoom must be an increasing range within [{ZOOM_MIN}, 8], got {self.zoom}")
        for name in ("p_blur", "p_jpeg", "p_grey", "p_edge", "p_zoom"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"AugmentConfig.{name} must be in [0, 1]")


def load_paintings(paths: list[Path]) -> list[np.ndarray]:
    """Paintings as (H, W, 3) uint8/uint16 arrays (grey replicated, alpha dropped)."""
    images = []
    for path in paths:
        image = read_image(path)
        images.append(as_rgb(image))
    return images


def _crop(painting: np.ndarray, tile: int, scale: float, rng: np.random.Generator, p_edge: float = 0.0) -> np.ndarray:
    h, w = painting.shape[:2]
    side = int(min(round(tile * scale), h, w))
    if p_edge and rng.random() < p_edge:
        return _edge_crop(painting, side, tile, rng)
    y = int(rng.integers(0, h - side + 1))
    x = int(rng.integers(0, w - side + 1))
    return _resize(painting[y : y + side, x : x + side], tile)


def _resize(crop: np.ndarray, tile: int) -> np.ndarray:
    side = crop.shape[0]
    if side != tile:
        interp = cv2.INTER_AREA if side > tile else cv2.INTER_CUBIC
        crop = cv2.resize(crop, (tile, tile), interpolation=interp)
    return crop


def _edge_crop(painting: np.ndarray, side: int, tile: int, rng: np.random.Generator) -> np.ndarray:
    """A side x side window that overhangs one or two image edges (a side or a corner) by 4 px to 3/8 of
    the window, the overhang filled by mirroring (np.pad "symmetric": the edge row repeated, where detection's
    reflect padding does not repeat it)."""
    h, w = painting.shape[:2]
    over_y = int(rng.integers(4, max(5, 3 * side // 8))) * int(rng.random() < 0.5)
    over_x = int(rng.integers(4, max(5, 3 * side // 8))) if (over_y == 0 or rng.random() < 0.5) else 0
    over_y, over_x = min(over_y, side - 1), min(over_x, side - 1)
    top = bool(rng.random() < 0.5)
    left = bool(rng.random() < 0.5)
    x = _window_start(w, side, over_x, left, rng)  # at most one of the two is drawn: over_x or over_y is > 0
    y = _window_start(h, side, over_y, top, rng)
    crop = painting[y : y + side - over_y, x : x + side - over_x]
    pad_y = (over_y, 0) if top else (0, over_y)
    pad_x = (over_x, 0) if left else (0, over_x)
    crop = np.pad(crop, (pad_y, pad_x, (0, 0)), mode="symmetric")
    return _resize(crop, tile)


def _window_start(size: int, side: int, over: int, near: bool, rng: np.random.Generator) -> int:
    """Start of the window's part inside the image along one axis: at the near or far edge when it overhangs
    by `over` px, else anywhere (drawn)."""
    if over:
        return 0 if near else size - (side - over)
    return int(rng.integers(0, size - side + 1))


def _photometric(image: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Colour/brightness jitter, blur, JPEG-like compression and sensor noise on float (H, W, 3)."""
    img = image
    grey = img.mean(axis=2, keepdims=True)
    img = grey + (img - grey) * (1 + rng.uniform(-cfg.saturation, cfg.saturation))
    img = (img - 0.5) * (1 + rng.uniform(-cfg.contrast, cfg.contrast)) + 0.5
    img = img + rng.uniform(-cfg.brightness, cfg.brightness) + rng.uniform(-0.03, 0.03, 3)
    img = np.clip(img, 0, 1).astype(np.float32)
    if rng.random() < cfg.p_blur:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(*cfg.blur_sigma)))
    if rng.random() < cfg.p_jpeg:
        q = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", (img * 255).round().astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255
    if cfg.noise_sigma > 0:
        img = img + rng.normal(0, rng.uniform(0, cfg.noise_sigma), img.shape).astype(np.float32)
    if rng.random() < cfg.p_grey:
        img = np.repeat(img.mean(axis=2, keepdims=True), 3, axis=2)
    return np.clip(img, 0, 1).astype(np.float32)


def make_tile(
    paintings: list[np.ndarray],
    tile: int,
    rng: np.random.Generator,
    damage: DamageConfig,
    augment: AugmentConfig | None,
    floods: list[np.ndarray] | None = None,
    flood_fraction: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One (3, T, T) float32 image in [0, 1] and its (2, T, T) float32 targets (craquelure, paint loss).

    With `floods` (per painting, (N, 2) y, x centres from lab.hard_negatives --damaged) a `flood_fraction` share
    of the tiles hold one of those places, drawn uniformly over all of them; the damage is drawn as on any tile."""
    hot = floods is not None and flood_fraction > 0 and rng.random() < flood_fraction
    painting = None if hot else paintings[int(rng.integers(len(paintings)))]  # a hot crop draws its own
    scale = float(rng.uniform(*augment.scale)) if augment else 1.0
    zoom = _draw_zoom(augment, rng)
    small = tile if zoom == 1.0 else max(32, round(tile / zoom))
    if painting is None:
        crop = _hotspot_crop(paintings, floods or [], small, scale, rng)
    else:
        crop = _crop(painting, small, scale, rng, augment.p_edge if augment else 0.0)
    damaged, labels = synthesize_damage(crop, int(rng.integers(1 << 31)), damage)
    if small != tile:
        damaged, labels = resized_tile(damaged, labels, tile)
    img, labels = _augment(to_float(damaged), labels, augment, rng)
    target = np.stack([labels == CRAQUELURE, labels == PAINT_LOSS]).astype(np.float32)  # (2, T, T)
    return np.ascontiguousarray(img.transpose(2, 0, 1)), target  # (3, T, T)


def _draw_zoom(augment: AugmentConfig | None, rng: np.random.Generator) -> float:
    """The enlargement of one damaged tile: 1 unless drawn (no draw at all when `p_zoom` is 0, so the tiles of
    a configuration without zoom are unchanged)."""
    if not augment or not augment.p_zoom:
        return 1.0
    zoom = float(rng.uniform(*augment.zoom))
    return zoom if rng.random() < augment.p_zoom else 1.0


def resized_tile(image: np.ndarray, labels: np.ndarray, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """A damaged (h, w, 3) image and its (h, w) labels resized to (tile, tile). Enlarged: the image bicubic, each
    damage class where its linearly resampled coverage is at least 0.5 (paint loss over craquelure), as synthetic
    labels are drawn. Shrunk: the image by area averaging, each class where it covers at least SHRUNK_COVER of a
    pixel, so a crack thinned below a pixel keeps the label of the faint trace it leaves."""
    shrink = tile < image.shape[0]
    img = cv2.resize(image, (tile, tile), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    out = np.zeros((tile, tile), labels.dtype)
    for value in (CRAQUELURE, PAINT_LOSS):
        cover = cv2.resize((labels == value).astype(np.float32), (tile, tile),
                           interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        out[cover >= (SHRUNK_COVER if shrink else 0.5)] = value
    return img, out


def _augment(img: np.ndarray, labels: np.ndarray, augment: AugmentConfig | None,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random rotation by k * 90 degrees, mirror and photometric jitter of an (H, W, 3) float image and its
    (H, W) labels (the same draws, in the same order, as a synthetic tile's)."""
    if augment:
        k = int(rng.integers(4))
        img, labels = np.rot90(img, k), np.rot90(labels, k)
        if rng.random() < 0.5:
            img, labels = img[:, ::-1], labels[:, ::-1]
        img = _photometric(np.ascontiguousarray(img), augment, rng)
    return img, labels


def make_clean_tile(
    paintings: list[np.ndarray], tile: int, rng: np.random.Generator, augment: AugmentConfig | None,
    hotspots: list[np.ndarray] | None = None, hard_fraction: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A hard negative: a crop of a painting with no damage drawn, augmented, and all-zero (2, T, T) targets.

    With `hotspots` (per painting, (N, 2) y, x centres from lab.hard_negatives) a `hard_fraction` share of
    the crops hold one of those places, drawn uniformly over all of them, at a random position in the crop."""
    if hotspots is not None and hard_fraction > 0 and rng.random() < hard_fraction:
        scale = float(rng.uniform(*augment.scale)) if augment else 1.0
        crop = _hotspot_crop(paintings, hotspots, tile, scale, rng)
    else:  # the draws of a plain clean tile, in their old order
        painting = paintings[int(rng.integers(len(paintings)))]
        scale = float(rng.uniform(*augment.scale)) if augment else 1.0
        crop = _crop(painting, tile, scale, rng, augment.p_edge if augment else 0.0)
    img, _ = _augment(to_float(crop), np.zeros((tile, tile), np.uint8), augment, rng)
    return np.ascontiguousarray(img.transpose(2, 0, 1)), np.zeros((2, tile, tile), np.float32)


def _hotspot_crop(paintings: list[np.ndarray], hotspots: list[np.ndarray], tile: int, scale: float,
                  rng: np.random.Generator) -> np.ndarray:
    sizes = [len(h) for h in hotspots]
    if not sum(sizes):
        raise ValueError("hard negatives list no place in any training painting")
    which, item = _draw_item(sizes, rng)
    cy, cx = hotspots[which][item]
    painting = paintings[which]
    h, w = painting.shape[:2]
    side = int(min(round(tile * scale), h, w))
    y = int(np.clip(cy - rng.integers(side // 8, side - side // 8), 0, h - side))
    x = int(np.clip(cx - rng.integers(side // 8, side - side // 8), 0, w - side))
    return _resize(painting[y : y + side, x : x + side], tile)


def _draw_item(sizes: list[int], rng: np.random.Generator) -> tuple[int, int]:
    """(list, item): one item drawn uniformly over all the items of lists of these sizes (one draw)."""
    index = int(rng.integers(sum(sizes)))
    which = int(np.searchsorted(np.cumsum(sizes), index, side="right"))
    return which, index - sum(sizes[:which])


def make_real_tile(
    real: list[RealSet], tile: int, rng: np.random.Generator, augment: AugmentConfig | None,
) -> tuple[np.ndarray, np.ndarray]:
    """A random crop of a real crack photo: (3, T, T) image and (2, T, T) targets (craquelure = its crack
    mask, resampled as coverage >= 0.5 like synthetic labels; paint loss 0). Sets are drawn in proportion
    to their number of pairs."""
    which, item = _draw_item([len(s.images) for s in real], rng)
    image, mask = real[which].images[item], real[which].masks[item]
    h, w = image.shape[:2]
    scale = float(rng.uniform(*augment.scale)) if augment else 1.0
    side = int(min(round(tile * scale), h, w))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = image[y : y + side, x : x + side]
    cover = mask[y : y + side, x : x + side].astype(np.float32)
    if side != tile:
        shrink = side > tile
        crop = cv2.resize(crop, (tile, tile), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        cover = cv2.resize(cover, (tile, tile), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    labels = (cover >= 0.5).astype(np.uint8)
    img, labels = _augment(to_float(crop), labels, augment, rng)
    target = np.stack([labels > 0, np.zeros_like(labels, dtype=bool)]).astype(np.float32)
    return np.ascontiguousarray(img.transpose(2, 0, 1)), np.ascontiguousarray(target)


def make_batch(
    paintings: list[np.ndarray],
    tile: int,
    batch: int,
    seed: int,
    damage: DamageConfig,
    augment: AugmentConfig | None,
    real: list[RealSet] | None = None,
    real_fraction: float = 0.0,
    clean_fraction: float = 0.0,
    hotspots: list[np.ndarray] | None = None,
    hard_fraction: float = 0.0,
    floods: list[np.ndarray] | None = None,
    flood_fraction: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(B, 3, T, T) images and (B, 2, T, T) targets, a pure function of `seed`.

    Each tile is real with probability `real_fraction` (needs `real`), clean (undamaged painting, zero
    targets) with probability `clean_fraction`, else synthetic damage. With both fractions 0 no draw is
    made for the choice, so the tiles are those of the plain synthetic batch.
    """
    if real_fraction < 0 or clean_fraction < 0 or real_fraction + clean_fraction > 1:
        raise ValueError(f"real_fraction {real_fraction} and clean_fraction {clean_fraction} must be >= 0 "
                         "and sum to at most 1")
    if real_fraction > 0 and not real:
        raise ValueError("real_fraction > 0 needs real training pairs")
    rng = np.random.default_rng(seed)
    kinds = (rng.random(batch) if real_fraction or clean_fraction else np.ones(batch))
    pairs = []
    for u in kinds:
        if u < real_fraction:
            pairs.append(make_real_tile(real or [], tile, rng, augment))
        elif u < real_fraction + clean_fraction:
            pairs.append(make_clean_tile(paintings, tile, rng, augment, hotspots, hard_fraction))
        else:
            pairs.append(make_tile(paintings, tile, rng, damage, augment, floods, flood_fraction))
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
