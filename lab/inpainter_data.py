"""The inpainter's training data: clean RGB tiles of the paintings (downscaled, randomly cropped and flipped)
with generated holes of every kind and hole-ratio bin, and the fixed VALIDATION tiles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lab.inpainter_config import InpainterTrainConfig
from lab.synthesis.masks import BINS, KINDS, mask_in_bin


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def load_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 of a painting (grey replicated, alpha dropped)."""
    from pipeline.io.image_io import from_float, read_image, to_float

    img = read_image(path)
    if img.dtype != np.uint8:
        img = from_float(to_float(img), np.uint8)
    if img.shape[2] in (1, 2):
        img = np.repeat(img[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def downscale_long_side(image: np.ndarray, long_side: int) -> np.ndarray:
    scale = long_side / max(image.shape[:2])
    return image if scale >= 1 else _resize(image, scale)


class TileSampler:
    """Random clean tiles of the train paintings and random masks from a seeded bank."""

    def __init__(self, cfg: InpainterTrainConfig, paintings: list[Path]) -> None:
        if not paintings:
            raise FileNotFoundError("no training paintings found (lab.paintings.paintings('train') is empty)")
        self.cfg = cfg
        self.images = []
        for p in paintings:
            full = load_rgb(p)
            for s in cfg.scales:
                img = _resize(full, s)
                if min(img.shape[:2]) >= cfg.tile:
                    self.images.append(img)
        rng = np.random.default_rng(cfg.seed + 1)
        shape = (cfg.tile, cfg.tile)
        self.masks = [
            mask_in_bin(kind, shape, lo, hi, int(rng.integers(2**31)))
            for kind in KINDS
            for lo, hi in BINS
            for _ in range(cfg.masks_per_bin)
        ]

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, T, T) clean tiles in [0, 1] and (B, 1, T, T) masks (1 = valid) for `step`."""
        rng = np.random.default_rng((self.cfg.seed, step))
        t = self.cfg.tile
        tiles, masks = [], []
        for _ in range(self.cfg.batch):
            img = self.images[int(rng.integers(len(self.images)))]
            y = int(rng.integers(img.shape[0] - t + 1))
            x = int(rng.integers(img.shape[1] - t + 1))
            tile = img[y : y + t, x : x + t]
            if rng.random() < 0.5:
                tile = tile[:, ::-1]
            hole = self.masks[int(rng.integers(len(self.masks)))]
            hole = np.rot90(hole, int(rng.integers(4)))
            if rng.random() < 0.5:
                hole = hole[::-1]
            tiles.append(tile.astype(np.float32) / 255.0)
            masks.append(~hole)
        x_t = torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2).contiguous()
        m_t = torch.from_numpy(np.stack(masks).astype(np.float32))[:, None]
        return x_t, m_t


def validation_set(cfg: InpainterTrainConfig, paintings: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed tiles of the validation paintings (downscaled) with seeded masks of every kind and bin."""
    rng = np.random.default_rng(12345)
    t = cfg.val_tile
    tiles, masks = [], []
    combos = [(k, b) for k in KINDS for b in BINS]
    i = 0
    for p in paintings:
        img = downscale_long_side(load_rgb(p), cfg.val_long_side)
        for _ in range(cfg.val_tiles_per_painting):
            y = int(rng.integers(img.shape[0] - t + 1))
            x = int(rng.integers(img.shape[1] - t + 1))
            kind, (lo, hi) = combos[i % len(combos)]
            i += 1
            tiles.append(img[y : y + t, x : x + t].astype(np.float32) / 255.0)
            masks.append(~mask_in_bin(kind, (t, t), lo, hi, int(rng.integers(2**31))))
    x_t = torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2).contiguous()
    return x_t, torch.from_numpy(np.stack(masks).astype(np.float32))[:, None]
