"""Where paint is lost: lacunae from pinpoints (3 px) to large areas, with chipped, jagged edges, small flakes
clustered around the big losses, losses strung along cracks and whole crack-bounded islands flaked off.
Returns anti-aliased coverage; the caller decides what shows through (a ground, canvas, or an old fill).
"""

from __future__ import annotations

import cv2
import numpy as np

from lab.synthesis.grounds import smooth_noise


def _stamp(field: np.ndarray, cy: float, cx: float, r: float, rough: float, rng: np.random.Generator) -> None:
    """Raise `field` (signed px inside the boundary) with one jagged flake of mean radius `r` at (cy, cx)."""
    h, w = field.shape
    ecc = float(rng.uniform(1.0, 1.8))
    pad = int(r * ecc * (1.6 + rough)) + 3
    y0, y1 = max(0, int(cy) - pad), min(h, int(cy) + pad + 1)
    x0, x1 = max(0, int(cx) - pad), min(w, int(cx) + pad + 1)
    if y0 >= y1 or x0 >= x1:
        return
    box = (y1 - y0, x1 - x0)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    ang = float(rng.uniform(0, np.pi))
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(ang) + dy * np.sin(ang)) / ecc
    v = -dx * np.sin(ang) + dy * np.cos(ang)
    dist = np.sqrt(u * u + v * v)
    # Outline: large lobes (noise at a third of the radius) and chipped, jagged detail (noise at 1-2 px),
    # the jaggedness scaled to the flake so pinpoints stay compact.
    lobes = smooth_noise(box, max(2.0, r / 3), rng) * rough * r
    chips = np.abs(smooth_noise(box, float(rng.uniform(1.0, 2.0)), rng)) * min(r * 0.5, 2.5)
    np.maximum(field[y0:y1, x0:x1], r + lobes - chips - dist, out=field[y0:y1, x0:x1])


def largest_loss_radius(side: int) -> float:
    """The largest loss radius (px) drawn on an image whose shorter side is `side`: large, but not half a picture."""
    return max(4.0, min(side / 6, 80.0))


def loss_coverage(
    shape: tuple[int, int], rng: np.random.Generator, amount: float, cracks: np.ndarray | None = None,
    size_of: int = 0,
) -> np.ndarray:
    """(H, W) float32 coverage in [0, 1] of paint loss; `amount` scales how many losses; `cracks` (H, W) bool
    (optional) gets a string of small losses along it. `size_of` > 0 draws the loss sizes as on an image with
    that shorter side (a training tile cut from a whole painting gets the whole painting's large losses)."""
    h, w = shape
    field = np.full((h, w), -1e3, np.float32)
    scale = h * w / 512**2
    largest = largest_loss_radius(size_of or min(h, w))
    n_main = int(rng.poisson(amount * scale * 3)) + 1
    for _ in range(n_main):
        # Log-uniform radius: many pinpoints and small flakes, a few large lacunae.
        r = float(np.exp(rng.uniform(np.log(1.5), np.log(largest))))
        cy, cx = float(rng.uniform(0, h)), float(rng.uniform(0, w))
        _stamp(field, cy, cx, r, float(rng.uniform(0.15, 0.45)), rng)
        if r > 5:  # satellite flakes cluster around a big loss, thinning out with distance
            for _ in range(int(rng.poisson(r / 2.5))):
                ang = rng.uniform(0, 2 * np.pi)
                d = r * (1.0 + rng.exponential(0.6))
                _stamp(field, cy + d * np.sin(ang), cx + d * np.cos(ang), float(rng.uniform(0.8, 3.0)), 0.2, rng)
    cover = np.clip(field + 0.5, 0, 1)
    if cracks is not None and cracks.any():
        pts = np.argwhere(cracks)
        for _ in range(int(rng.poisson(amount * scale * 25))):  # flakes lifting at crack edges
            cy, cx = pts[int(rng.integers(len(pts)))]
            _stamp(field, float(cy), float(cx), float(rng.uniform(1.0, 5.0)), 0.25, rng)
        cover = np.maximum(np.clip(field + 0.5, 0, 1), _islands(cracks, pts, rng, amount * scale * 12))
    return cover.astype(np.float32)


def _islands(cracks: np.ndarray, pts: np.ndarray, rng: np.random.Generator, mean: float) -> np.ndarray:
    """(H, W) coverage of whole crack-bounded islands of paint that flaked off: angular losses whose edges
    follow the crack network, as cupped paint lifts island by island."""
    h, w = cracks.shape
    n, cells = cv2.connectedComponents((~cracks).astype(np.uint8), connectivity=4)
    area = np.bincount(cells.ravel(), minlength=n)
    lost = np.zeros(n, bool)
    for _ in range(int(rng.poisson(mean))):
        cy, cx = pts[int(rng.integers(len(pts)))]
        y0, y1, x0, x1 = max(0, cy - 2), min(h, cy + 3), max(0, cx - 2), min(w, cx + 3)
        for cell in np.unique(cells[y0:y1, x0:x1]):
            if cell and area[cell] < 0.02 * h * w and rng.random() < 0.5:
                lost[cell] = True
    if not lost.any():
        return np.zeros((h, w), np.float32)
    mask = lost[cells].astype(np.uint8)
    mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))  # the loss takes the crack beside it too
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 0.5)
