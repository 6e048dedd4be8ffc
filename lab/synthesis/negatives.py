"""Hard negatives: things a painter put there that look like damage, painted into the CLEAN image so they are
never labelled. Thin dark lines (rigging and stays, contours, hatching), white highlights and lace, signatures
and inscriptions, wood grain and canvas texture showing through the paint.

Lines are drawn 4x supersampled with anti-aliasing and area-downsampled, 0.6-2.5 px wide; their colour comes
from the paint under them (darkened or lightened), as a painter's stroke would. `paint_strokes` adds the wider
painted marks a detector mistakes for craquelure: tapering dark brushstrokes 3-6 px at their widest (a staff, a quill,
a branch) and flocks of small birds in a sky.
"""

from __future__ import annotations

import cv2
import numpy as np

from lab.synthesis.grounds import smooth_noise, weave

SS = 4
NEGATIVE_KINDS = ("rigging", "contour", "hatching", "lace", "highlight", "inscription", "wood", "canvas")
STROKE_KINDS = ("stroke", "bird")


def _curve(rng: np.random.Generator, h: int, w: int, n: int, bend: float) -> np.ndarray:
    """(n, 2) x, y points of a smooth curve crossing part of the image."""
    p0 = rng.uniform([0, 0], [w, h])
    length = float(rng.uniform(0.2, 0.9)) * np.hypot(h, w)
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, bend, n))
    steps = np.stack([np.cos(heading), np.sin(heading)], 1) * length / n
    return p0 + np.cumsum(steps, 0)


def _lines(shape: tuple[int, int], paths: list[np.ndarray], widths: list[float]) -> np.ndarray:
    """(H, W) float32 anti-aliased coverage of polylines (x, y) with the given widths in px."""
    h, w = shape
    canvas = np.zeros((h * SS, w * SS), np.uint8)
    for path, width in zip(paths, widths, strict=True):
        pts = np.rint(path * SS + (SS - 1) / 2).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [pts], False, 255, max(1, int(round(width * SS))), cv2.LINE_AA)
    return cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def _rigging(shape: tuple[int, int], rng: np.random.Generator) -> tuple[list[np.ndarray], list[float]]:
    """Long, nearly straight lines with a slight sag, fanning from a few points (a ship's rigging and stays)."""
    h, w = shape
    paths, widths = [], []
    for _ in range(int(rng.integers(1, 3))):
        top = rng.uniform([0, 0], [w, h / 2])
        for _ in range(int(rng.integers(2, 7))):
            end = rng.uniform([0, h / 3], [w, h * 1.2])
            t = np.linspace(0, 1, 24)[:, None]
            sag = float(rng.uniform(0, 0.04)) * np.hypot(*(end - top)) * (4 * t * (1 - t))
            paths.append(top + t * (end - top) + sag * np.array([0.0, 1.0]))
            widths.append(float(rng.uniform(0.6, 1.6)))
    return paths, widths


def _hatching(shape: tuple[int, int], rng: np.random.Generator) -> tuple[list[np.ndarray], list[float]]:
    """A patch of short parallel strokes, 3-8 px apart."""
    h, w = shape
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    ang = rng.uniform(0, np.pi)
    d, n = np.array([np.cos(ang), np.sin(ang)]), np.array([-np.sin(ang), np.cos(ang)])
    gap, length = float(rng.uniform(3, 8)), float(rng.uniform(10, 40))
    paths = [np.array([cx, cy]) + (k * gap) * n + np.outer(np.linspace(-0.5, 0.5, 4), d) * length
             + rng.normal(0, 1.0, 2) for k in range(int(rng.integers(4, 14)))]
    return paths, [float(rng.uniform(0.6, 1.4))] * len(paths)


def _lace(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(H, W) coverage of a white lace band: rows of small loops and dots along a curve."""
    h, w = shape
    canvas = np.zeros((h * SS, w * SS), np.uint8)
    spine = _curve(rng, h, w, 120, 0.03)
    r = float(rng.uniform(1.2, 3.0))
    rows = int(rng.integers(2, 5))
    for k, (x, y) in enumerate(spine[::2]):
        for row in range(rows):  # overlapping loops in rows, a dot at every other crossing
            c = (int((x + rng.normal(0, 0.4)) * SS), int((y + row * 1.6 * r + (k % 2) * 0.8 * r) * SS))
            cv2.circle(canvas, c, int(r * SS), 255, max(1, SS // 2), cv2.LINE_AA)
            if (k + row) % 2:
                cv2.circle(canvas, c, int(0.3 * r * SS), 255, -1, cv2.LINE_AA)
    return cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def _inscription(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(H, W) coverage of a short painted signature or inscription in a script font."""
    h, w = shape
    canvas = np.zeros((h * SS, w * SS), np.uint8)
    lower = list("abcdefghijklmnopqrstuvwxyz")
    text = str(rng.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))) + "".join(rng.choice(lower, int(rng.integers(1, 7))))
    if rng.random() < 0.5:  # a signature with its date: "Name 1653"
        text += f" 16{int(rng.integers(0, 100)):02d}"
    font = [cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_COMPLEX, cv2.FONT_ITALIC][int(rng.integers(3))]
    scale = float(rng.uniform(0.25, 0.6)) * SS
    org = (int(rng.uniform(0, w * 0.7) * SS), int(rng.uniform(h * 0.1, h) * SS))
    cv2.putText(canvas, text, org, font, scale, 255, max(1, int(rng.uniform(0.7, 1.8) * SS)), cv2.LINE_AA)
    return cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def _wood(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(H, W) multiplicative shade of panel wood grain showing through thin paint."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    warp = smooth_noise(shape, float(rng.uniform(30, 90)), rng) * float(rng.uniform(3, 10))
    period = float(rng.uniform(4, 14))
    across = xx if rng.random() < 0.5 else yy
    grain = np.sin(2 * np.pi * (across + warp) / period) ** 8
    return 1.0 - float(rng.uniform(0.02, 0.06)) * grain


def paint_negatives(
    rgb: np.ndarray, rng: np.random.Generator, kinds: tuple[str, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Paint a random few hard negatives (or exactly `kinds`, of NEGATIVE_KINDS) into `rgb` (H, W, 3) float32;
    returns (painted, (H, W) float32 coverage of the strokes and marks: everything here is paint, never damage)."""
    h, w = rgb.shape[:2]
    out, marks = rgb.copy(), np.zeros((h, w), np.float32)
    if kinds is None:
        kinds = tuple(k for k in NEGATIVE_KINDS if rng.random() < 0.35)
    elif unknown := set(kinds) - set(NEGATIVE_KINDS):
        raise ValueError(f"unknown negative kind(s) {sorted(unknown)}; known: {', '.join(NEGATIVE_KINDS)}")
    for kind in kinds:
        if kind in ("rigging", "contour", "hatching"):
            if kind == "rigging":
                paths, widths = _rigging((h, w), rng)
            elif kind == "contour":
                paths = [_curve(rng, h, w, 40, 0.08) for _ in range(int(rng.integers(1, 4)))]
                widths = [float(rng.uniform(0.8, 2.5)) for _ in paths]
            else:
                paths, widths = _hatching((h, w), rng)
            cover = _lines((h, w), paths, widths) * float(rng.uniform(0.6, 1.0))
            ink = out * float(rng.uniform(0.15, 0.55))  # dark paint of the painting's own hue
        elif kind in ("lace", "highlight"):
            if kind == "lace":
                cover = _lace((h, w), rng)
            else:  # short bright strokes of highlight
                strokes = [_curve(rng, h, w, 8, 0.3) * 0.15 + rng.uniform([0, 0], [w, h]) * 0.85
                           for _ in range(int(rng.integers(1, 5)))]
                cover = _lines((h, w), strokes, [float(rng.uniform(1.0, 3.0)) for _ in strokes])
            cover = cover * float(rng.uniform(0.6, 1.0))
            ink = 1 - (1 - out) * float(rng.uniform(0.03, 0.2))  # near-white lead white, a trace of the hue
        elif kind == "inscription":
            cover = _inscription((h, w), rng) * float(rng.uniform(0.7, 1.0))
            ink = out * float(rng.uniform(0.2, 0.5)) if rng.random() < 0.7 else out * np.array([1.2, 0.5, 0.35])
        else:  # wood grain, canvas weave: texture modulating the whole picture, not strokes
            shade = _wood((h, w), rng) if kind == "wood" else 1.0 + (weave((h, w), rng) - 0.85) * float(
                rng.uniform(0.1, 0.3))
            out = out * shade[..., None].astype(np.float32)
            continue
        out = out * (1 - cover[..., None]) + np.clip(ink, 0, 1) * cover[..., None]
        marks = np.maximum(marks, cover)
    return np.clip(out, 0, 1).astype(np.float32), marks


def _tapered(canvas: np.ndarray, path: np.ndarray, widths: np.ndarray) -> None:
    """Draw polyline `path` (x, y in px) into the supersampled `canvas`, segment i `widths[i]` px wide."""
    pts = path * SS + (SS - 1) / 2
    for a, b, width in zip(pts[:-1], pts[1:], widths, strict=False):
        size = max(1, int(round(width * SS)))
        cv2.line(canvas, tuple(np.rint(a).astype(int)), tuple(np.rint(b).astype(int)), 255, size, cv2.LINE_AA)


def _brushstrokes(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(H, W) coverage of 1-4 dark brushstrokes, 12-90 px long, 3-6 px at their widest, tapering to about
    1 px at one end (a quill, a branch) or both (a staff, a stroke laid and lifted)."""
    h, w = shape
    canvas = np.zeros((h * SS, w * SS), np.uint8)
    for _ in range(int(rng.integers(1, 5))):
        n = 24
        length = float(rng.uniform(12, 90))
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, float(rng.uniform(0.0, 0.08)), n))
        path = rng.uniform([0, 0], [w, h]) + np.cumsum(
            np.stack([np.cos(heading), np.sin(heading)], 1) * length / n, 0)
        t = np.linspace(0, 1, n - 1)
        taper = np.sin(np.pi * t) ** 0.6 if rng.random() < 0.5 else (1 - t) ** 0.7
        _tapered(canvas, path, np.maximum(0.8, float(rng.uniform(3.0, 6.0)) * taper))
    return cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def _birds(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(H, W) coverage of a flock of 1-10 small birds: two curved wings meeting at a thicker body, 5-18 px
    across, scattered in a patch of the image."""
    h, w = shape
    canvas = np.zeros((h * SS, w * SS), np.uint8)
    centre = rng.uniform([0, 0], [w, h])
    spread = float(rng.uniform(0.1, 0.35)) * max(h, w)
    for _ in range(int(rng.integers(1, 11))):
        body = centre + rng.normal(0, spread / 2, 2)
        span, lift = float(rng.uniform(5, 18)), float(rng.uniform(0.1, 0.45))
        tilt = float(rng.normal(0, 0.3))
        rot = np.array([[np.cos(tilt), -np.sin(tilt)], [np.sin(tilt), np.cos(tilt)]])
        thick = float(rng.uniform(1.2, 3.0))
        t = np.linspace(0, 1, 8)
        for side in (-1.0, 1.0):  # a wing: out from the body, rising, its tip dropping a little
            wing = np.stack([side * t * span / 2, -lift * span * np.sin(np.pi * t * 0.8)], 1)
            _tapered(canvas, body + wing @ rot.T, np.maximum(0.7, thick * (1 - 0.7 * t[:-1])))
    return cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def paint_strokes(
    rgb: np.ndarray, rng: np.random.Generator, kinds: tuple[str, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Paint dark brushstrokes and/or birds (one or both of STROKE_KINDS; default: drawn at random, at least one)
    into `rgb` (H, W, 3) float32 in a dark paint of the painting's own hue; returns (painted, (H, W) float32
    coverage). Like `paint_negatives`, all of it is paint, never damage."""
    h, w = rgb.shape[:2]
    if kinds is None:
        kinds = (("stroke",), ("bird",), STROKE_KINDS)[int(rng.integers(3))]
    elif unknown := set(kinds) - set(STROKE_KINDS):
        raise ValueError(f"unknown stroke kind(s) {sorted(unknown)}; known: {', '.join(STROKE_KINDS)}")
    out, marks = rgb.copy(), np.zeros((h, w), np.float32)
    for kind in kinds:
        cover = (_brushstrokes if kind == "stroke" else _birds)((h, w), rng) * float(rng.uniform(0.7, 1.0))
        ink = out * float(rng.uniform(0.1, 0.5))
        out = out * (1 - cover[..., None]) + ink * cover[..., None]
        marks = np.maximum(marks, cover)
    return np.clip(out, 0, 1).astype(np.float32), marks
