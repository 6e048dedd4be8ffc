"""Training tiles for the damage detector: crops of clean paintings, damaged on the fly, augmented.

Every tile is a pure function of (seed, index), so a resumed run sees exactly the tiles it would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lab.synthesis.synthetic_damage import CRAQUELURE, PAINT_LOSS, DamageConfig, synthesize_damage
from pipeline.io.image_io import read_image, to_float


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

    def __post_init__(self) -> None:
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"AugmentConfig.scale must be an increasing positive range, got {self.scale}")
        for name in ("p_blur", "p_jpeg", "p_grey"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"AugmentConfig.{name} must be in [0, 1]")


def load_paintings(paths: list[Path]) -> list[np.ndarray]:
    """Paintings as (H, W, 3) uint8/uint16 arrays (grey replicated, alpha dropped)."""
    images = []
    for path in paths:
        image = read_image(path)
        images.append(as_rgb(image))
    return images


def as_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, C) with C in 1..4 -> (H, W, 3): grey replicated, alpha dropped."""
    if image.shape[2] in (1, 2):
        return np.repeat(image[:, :, :1], 3, axis=2)
    return image[:, :, :3]


def _crop(painting: np.ndarray, tile: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    h, w = painting.shape[:2]
    side = int(min(round(tile * scale), h, w))
    y = int(rng.integers(0, h - side + 1))
    x = int(rng.integers(0, w - side + 1))
    crop = painting[y : y + side, x : x + side]
    if side != tile:
        interp = cv2.INTER_AREA if side > tile else cv2.INTER_CUBIC
        crop = cv2.resize(crop, (tile, tile), interpolation=interp)
    return crop


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
) -> tuple[np.ndarray, np.ndarray]:
    """One (3, T, T) float32 image in [0, 1] and its (2, T, T) float32 targets (craquelure, paint loss)."""
    painting = paintings[int(rng.integers(len(paintings)))]
    scale = float(rng.uniform(*augment.scale)) if augment else 1.0
    crop = _crop(painting, tile, scale, rng)
    damaged, labels = synthesize_damage(crop, int(rng.integers(1 << 31)), damage)
    img = to_float(damaged)
    if augment:
        k = int(rng.integers(4))
        img, labels = np.rot90(img, k), np.rot90(labels, k)
        if rng.random() < 0.5:
            img, labels = img[:, ::-1], labels[:, ::-1]
        img = _photometric(np.ascontiguousarray(img), augment, rng)
    target = np.stack([labels == CRAQUELURE, labels == PAINT_LOSS]).astype(np.float32)  # (2, T, T)
    return np.ascontiguousarray(img.transpose(2, 0, 1)), target  # (3, T, T)


def make_batch(
    paintings: list[np.ndarray],
    tile: int,
    batch: int,
    seed: int,
    damage: DamageConfig,
    augment: AugmentConfig | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(B, 3, T, T) images and (B, 2, T, T) targets, a pure function of `seed`."""
    rng = np.random.default_rng(seed)
    pairs = [make_tile(paintings, tile, rng, damage, augment) for _ in range(batch)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
