"""What a paint loss exposes, as textured (H, W, 3) float32 surfaces in [0, 1]: chalk/gesso grounds with grain,
red-ochre bole, grey lime plaster with speckle, canvas weave at a real thread period, and old discoloured fills.

Each is a pure function of the random generator; colours vary per draw so no ground is a single fixed hue.
"""

from __future__ import annotations

import cv2
import numpy as np

GROUNDS = ("gesso", "bole", "plaster", "canvas")
# Base colours (RGB in [0, 1]) drawn around per kind: white-cream chalk/gesso, red-ochre bole, grey lime plaster,
# unprimed linen/hemp canvas.
_BASE = {
    "gesso": ((0.90, 0.88, 0.80), 0.06),
    "bole": ((0.56, 0.37, 0.28), 0.08),
    "plaster": ((0.72, 0.70, 0.66), 0.08),
    "canvas": ((0.64, 0.54, 0.39), 0.08),
}


def smooth_noise(shape: tuple[int, int], scale: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean smooth noise, roughly unit amplitude, with features about `scale` px wide."""
    h, w = shape
    gh, gw = int(np.ceil(h / scale)) + 3, int(np.ceil(w / scale)) + 3
    small = rng.normal(0, 1, (gh, gw)).astype(np.float32)
    return cv2.resize(small, (int(gw * scale), int(gh * scale)), interpolation=cv2.INTER_CUBIC)[:h, :w]


def _colour(kind: str, rng: np.random.Generator) -> np.ndarray:
    base, spread = _BASE[kind]
    return np.clip(np.asarray(base, np.float32) * (1 + rng.normal(0, spread, 3)), 0, 1).astype(np.float32)


def _grain(shape: tuple[int, int], rng: np.random.Generator, fine: float, mottle: float) -> np.ndarray:
    """(H, W) multiplicative shade around 1: per-pixel grain softened by a fraction of a pixel, plus mottling."""
    g = cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (0, 0), 0.6) * fine
    return 1.0 + g + smooth_noise(shape, float(rng.uniform(8, 30)), rng) * mottle


def weave(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(H, W) plain-weave shade: threads every 3-9 px (10-20 threads/cm photographed at 50-150 px/cm),
    slightly irregular, nearly aligned with the image axes as a stretched canvas is."""
    h, w = shape
    period = float(rng.uniform(3.0, 9.0))
    ang = float(rng.uniform(-0.15, 0.15)) + (np.pi / 2 if rng.random() < 0.5 else 0.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    jitter = smooth_noise(shape, period * 6, rng) * 0.6
    u = (xx * np.cos(ang) + yy * np.sin(ang)) * (2 * np.pi / period) + jitter
    v = (-xx * np.sin(ang) + yy * np.cos(ang)) * (2 * np.pi / (period * float(rng.uniform(0.85, 1.15)))) - jitter
    warp_up = (np.sin(u / 2) * np.sin(v / 2)) > 0  # plain weave: warp over weft on alternate crossings
    thread = np.where(warp_up, 0.5 + 0.5 * np.cos(v), 0.5 + 0.5 * np.cos(u))
    gaps = np.minimum(np.abs(np.cos(u / 2)), np.abs(np.cos(v / 2)))  # dark interstices between threads
    return (0.8 + 0.2 * thread) * (0.86 + 0.14 * np.clip(gaps * 3, 0, 1))


def ground(kind: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) float32 exposed ground of `kind` (one of GROUNDS)."""
    h, w = shape
    colour = _colour(kind, rng)
    if kind == "gesso":
        shade = _grain(shape, rng, float(rng.uniform(0.03, 0.08)), float(rng.uniform(0.03, 0.08)))
    elif kind == "bole":
        shade = _grain(shape, rng, float(rng.uniform(0.06, 0.1)), float(rng.uniform(0.08, 0.14)))
    elif kind == "plaster":
        shade = _grain(shape, rng, float(rng.uniform(0.05, 0.1)), float(rng.uniform(0.04, 0.08)))
        specks = rng.random(shape)
        p = float(rng.uniform(0.01, 0.05))
        shade = shade - np.where(specks < p, float(rng.uniform(0.2, 0.4)), 0) + np.where(specks > 1 - p, 0.1, 0)
        shade = cv2.GaussianBlur(shade.astype(np.float32), (0, 0), 0.5)
    elif kind == "canvas":
        shade = weave(shape, rng) * _grain(shape, rng, 0.03, 0.04)
    else:
        raise ValueError(f"unknown ground {kind!r}; valid: {', '.join(GROUNDS)}")
    return np.clip(colour[None, None, :] * shade[..., None], 0, 1).astype(np.float32)


def old_fill(paint: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) float32 old retouching: a smooth, slightly mottled colour near the paint's mean but shifted
    (yellowed, greyed or darkened with age), so it no longer matches the paint around it."""
    h, w = paint.shape[:2]
    mean = paint.reshape(-1, paint.shape[2]).mean(0)
    mean = np.resize(mean, 3).astype(np.float32)
    shift = np.asarray([rng.uniform(-0.02, 0.08), rng.uniform(-0.03, 0.05), rng.uniform(-0.12, 0.0)], np.float32)
    colour = mean * float(rng.uniform(0.75, 1.2)) + shift
    shade = 1.0 + smooth_noise((h, w), float(rng.uniform(10, 40)), rng) * 0.04
    return np.clip(colour[None, None, :] * shade[..., None], 0, 1).astype(np.float32)
