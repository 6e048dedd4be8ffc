"""Craquelure drawing: a Voronoi network whose cells are stretched along one direction (canvas tension), with
wobbling, tapering, branching cracks 1-6 px wide, rendered 4x supersampled and area-downsampled so edges are
anti-aliased; or a few isolated meandering cracks. Pure functions of the random generator they are given.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import cv2
import numpy as np
from scipy.spatial import Voronoi

SUPERSAMPLE = 4


@dataclass(frozen=True)
class CrackStyle:
    """One craquelure style; `craquelure_mask(..., **opts)` may override any field."""

    cell: float = 40.0  # mean cell diameter, px
    elongation: float = 1.6  # cell length / width along `angle`
    angle: float = 0.0  # radians
    keep: float = 0.9  # fraction of network edges drawn
    partial: float = 0.15  # fraction of drawn edges that stop halfway, tapering to nothing
    width_min: float = 1.0  # px
    width_max: float = 3.0  # px
    wobble: float = 0.08  # perpendicular wander, fraction of edge length
    branches: float = 0.3  # short side branches per cell


CRACK_KINDS = ("canvas", "panel", "fine", "isotropic", "wide")


def sample_style(rng: np.random.Generator, kinds: tuple[str, ...] = CRACK_KINDS) -> CrackStyle:
    """One of the craquelure styles `kinds` (default: all of CRACK_KINDS) with random parameters."""
    kind = rng.choice(list(kinds))
    angle = float(rng.uniform(0, np.pi))
    if kind == "canvas":  # rectangular-ish cells stretched across the canvas tension
        return CrackStyle(float(rng.uniform(25, 70)), float(rng.uniform(1.4, 2.6)), angle,
                          float(rng.uniform(0.8, 1.0)), 0.15, 1.0, float(rng.uniform(2.0, 4.0)), 0.07, 0.3)
    if kind == "panel":  # long cracks along the wood grain
        return CrackStyle(float(rng.uniform(30, 80)), float(rng.uniform(2.5, 4.5)), angle,
                          float(rng.uniform(0.7, 0.95)), 0.25, 1.0, float(rng.uniform(2.0, 5.0)), 0.05, 0.2)
    if kind == "fine":  # small cells, hair-line cracks
        return CrackStyle(float(rng.uniform(16, 34)), float(rng.uniform(1.0, 1.8)), angle,
                          float(rng.uniform(0.75, 1.0)), 0.2, 1.0, float(rng.uniform(1.3, 2.2)), 0.1, 0.4)
    if kind == "isotropic":
        return CrackStyle(float(rng.uniform(20, 60)), 1.0, angle, float(rng.uniform(0.8, 1.0)), 0.15,
                          1.0, float(rng.uniform(1.5, 3.5)), 0.12, 0.5)
    return CrackStyle(float(rng.uniform(50, 120)), float(rng.uniform(1.0, 2.0)), angle,  # "wide"
                      float(rng.uniform(0.85, 1.0)), 0.1, float(rng.uniform(1.5, 3.0)),
                      float(rng.uniform(4.0, 6.0)), 0.06, 0.3)


def _style(rng: np.random.Generator, opts: dict) -> CrackStyle:
    base = sample_style(rng)
    names = {f.name for f in fields(CrackStyle)}
    unknown = set(opts) - names
    if unknown:
        raise TypeError(f"unknown craquelure option(s) {sorted(unknown)}; valid: {sorted(names)}")
    return CrackStyle(**{**{n: getattr(base, n) for n in names}, **opts})


@dataclass(frozen=True)
class CrackDrawing:
    alpha: np.ndarray  # (H, W) float32 coverage in [0, 1]
    cells: list[np.ndarray]  # polygons (N, 2) of network cells in image coordinates (x, y)


def _voronoi_network(shape: tuple[int, int], style: CrackStyle, rng: np.random.Generator) -> Voronoi:
    """A Voronoi diagram whose cells are stretched by `elongation` along `angle`, covering `shape`."""
    h, w = shape
    a = np.sqrt(style.elongation)
    rot = np.array([[np.cos(style.angle), -np.sin(style.angle)], [np.sin(style.angle), np.cos(style.angle)]])
    to_image = rot @ np.diag([a, 1.0 / a])  # (u, v) cell space -> (x, y)
    # Cover the image (plus a margin) in cell space.
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], dtype=np.float64) - [w / 2, h / 2]
    uv = corners @ np.linalg.inv(to_image).T
    margin = 2 * style.cell
    lo, hi = uv.min(0) - margin, uv.max(0) + margin
    n = int(np.clip(np.prod(hi - lo) / style.cell**2, 8, 40000))
    # Jittered grid points give even, polygonal cells (closer to real craquelure than Poisson points).
    side = style.cell
    gu, gv = np.meshgrid(np.arange(lo[0], hi[0], side), np.arange(lo[1], hi[1], side))
    pts = np.stack([gu.ravel(), gv.ravel()], 1)
    if len(pts) > n * 2:
        pts = pts[rng.permutation(len(pts))[: n * 2]]
    pts = pts + rng.uniform(-0.45, 0.45, pts.shape) * side
    pts[1::2, 0] += side / 2 * rng.uniform(0.5, 1.0)  # break grid alignment
    xy = pts @ to_image.T + [w / 2, h / 2]
    return Voronoi(xy)


def draw_cracks(shape: tuple[int, int], style: CrackStyle, rng: np.random.Generator) -> CrackDrawing:
    h, w = shape
    ss = SUPERSAMPLE
    vor = _voronoi_network(shape, style, rng)
    verts = vor.vertices
    ridges = np.array([r for r in vor.ridge_vertices if -1 not in r], dtype=np.int64).reshape(-1, 2)
    canvas = np.zeros((h * ss, w * ss), np.uint8)
    if len(ridges):
        p0, p1 = verts[ridges[:, 0]], verts[ridges[:, 1]]
        inside = lambda p: (p[:, 0] > -60) & (p[:, 0] < w + 60) & (p[:, 1] > -60) & (p[:, 1] < h + 60)  # noqa: E731
        sel = (inside(p0) | inside(p1)) & (rng.random(len(ridges)) < style.keep)
        p0, p1, ridge_ids = p0[sel], p1[sel], ridges[sel]
        # Widths live on vertices so that cracks meeting at a junction keep their width.
        vert_w = rng.uniform(style.width_min, style.width_max, len(verts)) ** 1.0
        w0, w1 = vert_w[ridge_ids[:, 0]], vert_w[ridge_ids[:, 1]]
        k = 9
        t = np.linspace(0, 1, k)[None, :]  # (1, K)
        d = p1 - p0
        length = np.linalg.norm(d, axis=1, keepdims=True) + 1e-9
        normal = np.stack([-d[:, 1], d[:, 0]], 1) / length
        amp = style.wobble * length * rng.normal(0, 1, (len(d), 2))
        phase = rng.uniform(0, 2 * np.pi, (len(d), 1))
        offset = (amp[:, :1] * np.sin(np.pi * t) + amp[:, 1:] * 0.5 * np.sin(2 * np.pi * t + phase)
                  * np.sin(np.pi * t))  # (R, K), zero at both ends keeps the network joined
        path = p0[:, None, :] + t[..., None] * d[:, None, :] + offset[..., None] * normal[:, None, :]
        # path (R, K, 2)
        width = w0[:, None] + (w1 - w0)[:, None] * t  # (R, K)
        # Some edges stop partway and taper to a point (dead-end cracks).
        partial = rng.random(len(d)) < style.partial
        stop = np.where(partial, rng.uniform(0.3, 0.8, len(d)), 1.0)[:, None]
        flip = rng.random(len(d)) < 0.5
        path[flip] = path[flip, ::-1]
        width[flip] = width[flip, ::-1]
        taper = np.clip((stop - t) / np.maximum(stop * 0.5, 1e-6), 0, 1)
        width = np.where(partial[:, None], width * taper, width)
        visible = t <= stop
        _polylines(canvas, path, width, visible, ss)
        # Short side branches that taper to nothing, sprouting from the network into the cells.
        n_br = int(style.branches * len(d))
        if n_br:
            src = rng.integers(0, len(d), n_br)
            ts = rng.uniform(0.2, 0.8, n_br)
            start = p0[src] + ts[:, None] * d[src]
            ang = np.arctan2(d[src, 1], d[src, 0]) + rng.choice([-1, 1], n_br) * rng.uniform(0.6, 1.6, n_br)
            blen = rng.uniform(0.15, 0.5, n_br) * style.cell
            tb = np.linspace(0, 1, 5)[None, :]
            direction = np.stack([np.cos(ang), np.sin(ang)], 1)
            bend = rng.normal(0, 0.15, (n_br, 1)) * blen[:, None] * tb**2
            bnorm = np.stack([-direction[:, 1], direction[:, 0]], 1)
            bpath = (start[:, None, :] + (tb * blen[:, None])[..., None] * direction[:, None, :]
                     + bend[..., None] * bnorm[:, None, :])
            bw = (rng.uniform(style.width_min, style.width_max, n_br) * 0.8)[:, None] * (1 - tb * 0.85)
            _polylines(canvas, bpath, bw, np.ones_like(bw, bool), ss)
    alpha = _crack_coverage(canvas, (h, w))
    cells = []
    for region_index in rng.permutation(len(vor.regions))[:400]:
        region = vor.regions[region_index]
        if region and -1 not in region:
            poly = verts[region]
            c = poly.mean(0)
            if 0 <= c[0] < w and 0 <= c[1] < h:
                cells.append(poly)
    return CrackDrawing(alpha=alpha, cells=cells)


def _crack_coverage(canvas: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 coverage in [0, 1] of cracks drawn on the supersampled canvas: area-downsampled, softened."""
    h, w = shape
    alpha = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    alpha = cv2.GaussianBlur(alpha, (0, 0), 0.45)
    return np.clip(alpha * 1.15, 0, 1)  # keeps 1-px cracks' cores at full coverage after the blur


def _polylines(canvas: np.ndarray, path: np.ndarray, width: np.ndarray, visible: np.ndarray, ss: int) -> None:
    """Draw (R, K, 2) image-space paths on the supersampled canvas, with per-vertex width (px)."""
    pts = np.rint(path * ss + (ss - 1) / 2).astype(np.int32)
    thick = np.maximum(np.rint(width * ss).astype(np.int32), 0)
    lim = 1 << 20
    pts = np.clip(pts, -lim, lim)
    for r in range(pts.shape[0]):
        for j in range(pts.shape[1] - 1):
            if not visible[r, j + 1]:
                break
            th = int((thick[r, j] + thick[r, j + 1]) // 2)
            if th < 1:
                continue
            cv2.line(canvas, (int(pts[r, j, 0]), int(pts[r, j, 1])), (int(pts[r, j + 1, 0]),
                     int(pts[r, j + 1, 1])), 255, th, cv2.LINE_8)


def draw_free_cracks(shape: tuple[int, int], rng: np.random.Generator) -> CrackDrawing:
    """A few isolated, meandering, branching cracks (no closed network), 1-6 px wide, tapering at the ends.

    The look of single drying or impact cracks in a paint layer, and of cracks in plaster, stone or asphalt.
    """
    h, w = shape
    ss = SUPERSAMPLE
    canvas = np.zeros((h * ss, w * ss), np.uint8)
    diag = float(np.hypot(h, w))
    k = 48
    t = np.linspace(0, 1, k)
    for _ in range(int(rng.integers(1, 5))):
        length = diag * float(rng.uniform(0.3, 1.3))
        # Heading wanders as a random walk; a smooth width profile tapers at both ends.
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, float(rng.uniform(0.05, 0.3)), k))
        steps = np.stack([np.cos(heading), np.sin(heading)], 1) * (length / (k - 1))
        path = np.concatenate([[[0.0, 0.0]], np.cumsum(steps[:-1], 0)])
        path += rng.uniform([0, 0], [w, h]) - path[int(rng.integers(k // 4, k - k // 4))]  # crosses the image
        width_max = float(rng.uniform(1.0, 6.0))
        profile = 0.75 + 0.25 * np.sin(2 * np.pi * (t * rng.uniform(0.5, 3.0) + rng.uniform(0, 1)))
        ends = np.clip(np.minimum(t, 1 - t) / float(rng.uniform(0.05, 0.25)), 0.25, 1.0)
        width = np.maximum(width_max * profile * ends, 1.0)
        _polylines(canvas, path[None], width[None], np.ones((1, k), bool), ss)
        for _ in range(int(rng.poisson(2.0))):  # branches leave the main crack and taper to nothing
            j = int(rng.integers(k // 8, k - k // 8))
            kb = int(rng.integers(6, 20))
            turn = rng.choice([-1, 1]) * rng.uniform(0.4, 1.2)
            bh = heading[j] + turn + np.cumsum(rng.normal(0, 0.15, kb))
            bsteps = np.stack([np.cos(bh), np.sin(bh)], 1) * (length / (k - 1))
            bpath = path[j] + np.concatenate([[[0.0, 0.0]], np.cumsum(bsteps[:-1], 0)])
            bw = np.maximum(width[j] * 0.7 * (1 - np.linspace(0, 0.9, kb)), 0.8)
            _polylines(canvas, bpath[None], bw[None], np.ones((1, kb), bool), ss)
    return CrackDrawing(alpha=_crack_coverage(canvas, (h, w)), cells=[])


def craquelure_mask(shape: tuple[int, int], seed: int, **opts: float) -> np.ndarray:
    """(H, W) bool crack network; `opts` override `CrackStyle` fields of the seeded random style."""
    rng = np.random.default_rng(seed)
    return draw_cracks(checked_shape(shape), _style(rng, opts), rng).alpha >= 0.5


def checked_shape(shape: tuple[int, int]) -> tuple[int, int]:
    h, w = int(shape[0]), int(shape[1])
    if h < 1 or w < 1:
        raise ValueError(f"shape must be positive, got {shape}")
    return h, w
