"""Seeded hole masks for training and evaluating the inpainter, in hole-ratio bins.

Three kinds (True = hole):
- "irregular": the PConv paper's style of mask, random thick strokes and blobs (`irregular_element`);
- "craquelure" and "paint_loss": from `lab.synthesis.synthetic_damage` (the detector's damage synthesiser);
  a simple built-in crack/flake generator stands in only where that module is not importable.

`mask_in_bin(kind, shape, lo, hi, seed)` grows a mask of a kind (union of further seeded samples, or a
one-pixel dilation, whichever stays in the bin) until its hole ratio lies in [lo, hi]; the last step is
trimmed to the pixels nearest a random point when every whole step would overshoot.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

KINDS = ("irregular", "craquelure", "paint_loss")
BINS: tuple[tuple[float, float], ...] = tuple((i / 10, (i + 1) / 10) for i in range(6))
MIN_RATIO = 0.01  # the 0-10% bin starts at 1%: an empty mask measures nothing


def bin_name(lo: float, hi: float) -> str:
    return f"{round(lo * 100)}-{round(hi * 100)}"


def irregular_element(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """One random stroke (a polyline of thick segments with round joints) or one blob (filled ellipse)."""
    h, w = shape
    side = min(h, w)
    canvas = np.zeros((h, w), np.uint8)
    if rng.random() < 0.7:
        x, y = float(rng.uniform(0, w)), float(rng.uniform(0, h))
        width = int(rng.integers(max(2, side // 64), max(3, side // 16) + 1))
        angle = rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(2, 7))):
            angle += rng.normal(0, 0.9)
            length = rng.uniform(0.05, 0.2) * side
            nx = float(np.clip(x + length * np.cos(angle), 0, w - 1))
            ny = float(np.clip(y + length * np.sin(angle), 0, h - 1))
            cv2.line(canvas, (int(x), int(y)), (int(nx), int(ny)), 1, width, lineType=cv2.LINE_8)
            cv2.circle(canvas, (int(nx), int(ny)), width // 2, 1, -1)
            x, y = nx, ny
    else:
        center = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        axes = (int(rng.uniform(0.02, 0.1) * side) + 1, int(rng.uniform(0.02, 0.1) * side) + 1)
        cv2.ellipse(canvas, center, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return canvas.astype(bool)


def _fallback_cracks(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Thin branching random-walk cracks (used only without lab.synthesis.synthetic_damage)."""
    h, w = shape
    canvas = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(3, 8))):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        angle = rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(10, 40))):
            angle += rng.normal(0, 0.4)
            nx, ny = x + 6 * np.cos(angle), y + 6 * np.sin(angle)
            cv2.line(canvas, (int(x), int(y)), (int(nx), int(ny)), 1, int(rng.integers(1, 3)))
            x, y = nx, ny
    return canvas.astype(bool)


def kind_sampler(kind: str) -> Callable[[tuple[int, int], int], np.ndarray]:
    """A function (shape, seed) -> bool mask drawing one sample of `kind`."""
    if kind == "irregular":
        return lambda shape, seed: irregular_element(shape, np.random.default_rng(seed))
    if kind not in KINDS:
        raise ValueError(f"unknown mask kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    try:
        from lab.synthesis import synthetic_damage as sd
        from lab.synthesis.cracks import craquelure_mask
    except ImportError:
        sd = None
    if kind == "craquelure":
        if sd is not None:
            return lambda shape, seed: np.asarray(craquelure_mask(shape, seed), bool)
        return lambda shape, seed: _fallback_cracks(shape, np.random.default_rng(seed))
    if sd is not None:
        return lambda shape, seed: np.asarray(sd.paint_loss_mask(shape, seed), bool)

    def flakes(shape: tuple[int, int], seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        m = np.zeros(shape, bool)
        for _ in range(int(rng.integers(1, 4))):
            m |= irregular_element(shape, rng)
        return m

    return flakes


def _dilate(mask: np.ndarray) -> np.ndarray:
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    return cv2.dilate(mask.astype(np.uint8), cross).astype(bool)


def _trim(current: np.ndarray, candidate: np.ndarray, n_pixels: int, rng: np.random.Generator) -> np.ndarray:
    """`current` plus the `n_pixels` pixels of candidate-current nearest a random point of that set."""
    ys, xs = np.nonzero(candidate & ~current)
    pick = int(rng.integers(len(ys)))
    order = np.argsort((ys - ys[pick]) ** 2 + (xs - xs[pick]) ** 2, kind="stable")[:n_pixels]
    out = current.copy()
    out[ys[order], xs[order]] = True
    return out


def mask_in_bin(kind: str, shape: tuple[int, int], lo: float, hi: float, seed: int) -> np.ndarray:
    """A seeded bool hole mask of `kind` whose hole ratio lies in [max(lo, 1%), hi]."""
    rng = np.random.default_rng(seed)
    sample = kind_sampler(kind)
    total = shape[0] * shape[1]
    lo = max(lo, MIN_RATIO)
    target = rng.uniform(lo, hi)
    mask = np.zeros(shape, bool)
    for _ in range(2000):
        ratio = mask.sum() / total
        if ratio >= target:
            break
        candidates = [mask | sample(shape, int(rng.integers(2**31)))]
        if kind != "irregular" and ratio > 0:
            candidates.append(_dilate(mask))
        fitting = [c for c in candidates if lo <= c.sum() / total <= hi or c.sum() / total < target]
        if fitting:
            # prefer new samples while far below target; thicken an existing net when close
            mask = fitting[0] if len(fitting) == 1 or ratio < 0.5 * target else fitting[-1]
            continue
        smallest = min(candidates, key=lambda c: c.sum())
        mask = _trim(mask, smallest, int(np.ceil(target * total)) - int(mask.sum()), rng)
    return mask
