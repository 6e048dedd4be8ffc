"""Realistic synthetic damage on clean paintings: craquelure networks and paint loss, with exact labels.

Craquelure is drawn as a Voronoi network whose cells are stretched along one direction (canvas tension),
with wobbling, tapering, branching cracks 1-6 px wide, rendered 4x supersampled and area-downsampled so
edges are anti-aliased. Paint loss is a set of irregular flakes (often sitting on cracks, sometimes whole
crack-bounded islands) that expose a textured ground (gesso colours) or a canvas weave.

Labels follow what is drawn: a pixel is craquelure (1) where the crack coverage is >= 0.5 and paint loss
(2) where the loss coverage is >= 0.5 (paint loss is composited on top, so 2 wins). Everything is a pure
function of the seed.

Two opt-in styles (DamageConfig.p_free_cracks, p_texture; both 0 by default, so the default random stream and the
held-out evaluation set are unchanged) widen what training sees: a few isolated, meandering, branching cracks
instead of a network, and a grainy low-saturation surface (rough ground, stone, plaster, asphalt) under the damage.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import cv2
import numpy as np
from scipy.spatial import Voronoi

BACKGROUND, CRAQUELURE, PAINT_LOSS = 0, 1, 2
CLASS_NAMES = ("craquelure", "paint_loss")
SUPERSAMPLE = 4

# Ground colours exposed by paint loss (linear-ish RGB in [0, 1]): white/ochre/grey gesso, red bole.
GROUND_COLOURS = np.array(
    [
        [0.93, 0.91, 0.85],  # chalk gesso
        [0.88, 0.84, 0.74],  # aged white ground
        [0.80, 0.66, 0.42],  # ochre ground
        [0.62, 0.61, 0.58],  # grey ground
        [0.58, 0.33, 0.22],  # red bole / imprimatura
    ],
    dtype=np.float32,
)
CANVAS_COLOUR = np.array([0.66, 0.56, 0.40], dtype=np.float32)
DIRT_COLOUR = np.array([0.07, 0.055, 0.04], dtype=np.float32)


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


def _sample_style(rng: np.random.Generator, kinds: tuple[str, ...] = CRACK_KINDS) -> CrackStyle:
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
    base = _sample_style(rng)
    names = {f.name for f in fields(CrackStyle)}
    unknown = set(opts) - names
    if unknown:
        raise TypeError(f"unknown craquelure option(s) {sorted(unknown)}; valid: {sorted(names)}")
    return CrackStyle(**{**{n: getattr(base, n) for n in names}, **opts})


@dataclass(frozen=True)
class _CrackDrawing:
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


def _draw_cracks(shape: tuple[int, int], style: CrackStyle, rng: np.random.Generator) -> _CrackDrawing:
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
    return _CrackDrawing(alpha=alpha, cells=cells)


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


def _draw_free_cracks(shape: tuple[int, int], rng: np.random.Generator) -> _CrackDrawing:
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
    return _CrackDrawing(alpha=_crack_coverage(canvas, (h, w)), cells=[])


def _surface_texture(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) float32 grainy, low-saturation surface: rough ground, stone, concrete or asphalt grain."""
    h, w = shape
    level = float(rng.uniform(0.25, 0.75))
    t = level + _smooth_noise(shape, float(rng.uniform(1.2, 3.0)), rng) * float(rng.uniform(0.03, 0.12))
    t += _smooth_noise(shape, float(rng.uniform(15, 60)), rng) * float(rng.uniform(0.02, 0.08))
    specks = rng.random((h, w)).astype(np.float32)
    p = float(rng.uniform(0.005, 0.05))
    t += np.where(specks < p, -0.25, 0.0) + np.where(specks > 1 - p, 0.2, 0.0)  # dark and light aggregate
    t = cv2.GaussianBlur(t.astype(np.float32), (0, 0), float(rng.uniform(0.4, 1.0)))
    tint = 1.0 + rng.normal(0, 0.04, 3)
    return np.clip(t[..., None] * tint[None, None, :], 0, 1).astype(np.float32)


def craquelure_mask(shape: tuple[int, int], seed: int, **opts: float) -> np.ndarray:
    """(H, W) bool crack network; `opts` override `CrackStyle` fields of the seeded random style."""
    rng = np.random.default_rng(seed)
    return _draw_cracks(_shape(shape), _style(rng, opts), rng).alpha >= 0.5


def _shape(shape: tuple[int, int]) -> tuple[int, int]:
    h, w = int(shape[0]), int(shape[1])
    if h < 1 or w < 1:
        raise ValueError(f"shape must be positive, got {shape}")
    return h, w


def _smooth_noise(shape: tuple[int, int], scale: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-ish smooth noise with features about `scale` px wide."""
    h, w = shape
    gh, gw = max(2, int(np.ceil(h / scale)) + 2), max(2, int(np.ceil(w / scale)) + 2)
    small = rng.normal(0, 1, (gh, gw)).astype(np.float32)
    big = cv2.resize(small, (int(gw * scale), int(gh * scale)), interpolation=cv2.INTER_CUBIC)
    return big[:h, :w]


def _loss_alpha(
    shape: tuple[int, int],
    rng: np.random.Generator,
    cracks: np.ndarray | None,
    cells: list[np.ndarray] | None,
    amount: float,
) -> np.ndarray:
    """(H, W) float32 coverage of paint loss: flakes on cracks, crack-bounded islands, free blobs."""
    h, w = shape
    area = h * w
    ss = SUPERSAMPLE
    # Signed field: > 0 inside a flake. Built from blobs whose radii are modulated by smooth noise.
    field = np.full((h, w), -1e3, np.float32)
    rough = _smooth_noise(shape, float(rng.uniform(5, 12)), rng) * 0.22
    rough += _smooth_noise(shape, 2.5, rng) * 0.06
    n_blobs = int(rng.poisson(amount * area / 256**2 * 2.0)) + 1
    crack_pts = np.argwhere(cracks) if cracks is not None and cracks.any() else None
    for _ in range(n_blobs):
        if crack_pts is not None and rng.random() < 0.7:
            cy, cx = crack_pts[rng.integers(len(crack_pts))]
            r = float(rng.uniform(2, 14)) if rng.random() < 0.75 else float(rng.uniform(10, 40))
        else:
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            r = float(np.exp(rng.uniform(np.log(3), np.log(min(70.0, max(h, w) / 4 + 3)))))
        ecc = rng.uniform(1.0, 2.2)
        ang = rng.uniform(0, np.pi)
        pad = int(r * ecc * 1.6) + 3
        y0, y1 = max(0, int(cy) - pad), min(h, int(cy) + pad + 1)
        x0, x1 = max(0, int(cx) - pad), min(w, int(cx) + pad + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dy, dx = yy - cy, xx - cx
        u = (dx * np.cos(ang) + dy * np.sin(ang)) / ecc
        v = -dx * np.sin(ang) + dy * np.cos(ang)
        dist = np.sqrt(u * u + v * v)
        local = r * (1.0 + rough[y0:y1, x0:x1]) - dist  # ~ px inside the boundary
        np.maximum(field[y0:y1, x0:x1], local, out=field[y0:y1, x0:x1])
    alpha = np.clip(field + 0.5, 0, 1)  # one-pixel soft edge
    # Whole islands between cracks flake off (paint lifts cell by cell).
    if cells:
        n_cells = int(rng.binomial(min(len(cells), 30), min(1.0, amount * 0.25)))
        if n_cells:
            canvas = np.zeros((h * ss, w * ss), np.uint8)
            for idx in rng.choice(len(cells), n_cells, replace=False):
                poly = cells[idx]
                c = poly.mean(0)
                poly = c + (poly - c) * rng.uniform(0.85, 1.02)  # sometimes a rim of paint stays
                cv2.fillPoly(canvas, [np.rint(poly * ss + (ss - 1) / 2).astype(np.int32)], 255, cv2.LINE_8)
            cell_alpha = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
            alpha = np.maximum(alpha, cell_alpha)
    return alpha


def paint_loss_mask(
    shape: tuple[int, int], seed: int, cracks: np.ndarray | None = None, amount: float = 1.0
) -> np.ndarray:
    """(H, W) bool paint-loss flakes, placed mostly on `cracks` (H, W) bool when given."""
    shape = _shape(shape)
    if cracks is not None and cracks.shape != shape:
        raise ValueError(f"cracks has shape {cracks.shape}, expected {shape}")
    rng = np.random.default_rng(seed)
    return _loss_alpha(shape, rng, cracks, None, amount) >= 0.5


@dataclass(frozen=True)
class DamageConfig:
    """How much and what kind of damage `synthesize_damage` draws."""

    p_craquelure: float = 0.85  # chance that an image gets a crack network
    p_paint_loss: float = 0.7  # chance that it gets paint loss
    loss_amount: tuple[float, float] = (0.2, 2.0)  # range of the paint-loss density
    p_dark_cracks: float = 0.7  # dark (dirt-filled) vs light (ground showing) cracks
    p_canvas: float = 0.3  # paint loss shows canvas weave instead of a ground layer
    crack_contrast: tuple[float, float] = (0.55, 0.95)  # how strongly a crack replaces the paint
    cup_highlight: tuple[float, float] = (0.0, 0.25)  # light caught by lifted crack edges
    # Off by default (the held-out set is drawn without them); training may opt in:
    p_free_cracks: float = 0.0  # cracks are a few isolated meandering cracks instead of a network
    p_texture: float = 0.0  # the surface is first overlaid with a grainy texture (stone, plaster, asphalt)
    crack_kinds: tuple[str, ...] = CRACK_KINDS  # the network styles drawn (one per image, uniformly)

    def __post_init__(self) -> None:
        for name in ("crack_kinds", "loss_amount", "crack_contrast", "cup_highlight"):
            object.__setattr__(self, name, tuple(getattr(self, name)))  # JSON gives lists
        unknown = set(self.crack_kinds) - set(CRACK_KINDS)
        if not self.crack_kinds or unknown:
            raise ValueError(f"DamageConfig.crack_kinds must be a non-empty subset of {CRACK_KINDS}, "
                             f"got {self.crack_kinds}")
        for name in ("p_craquelure", "p_paint_loss", "p_dark_cracks", "p_canvas", "p_free_cracks", "p_texture"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"DamageConfig.{name} must be in [0, 1], got {value}")
        for name, lo_bound, hi_bound in (("loss_amount", 0.0, 20.0), ("crack_contrast", 0.0, 1.0),
                                         ("cup_highlight", 0.0, 1.0)):
            lo, hi = getattr(self, name)
            if not lo_bound <= lo <= hi <= hi_bound:
                raise ValueError(f"DamageConfig.{name} must be an increasing range within "
                                 f"[{lo_bound}, {hi_bound}], got {(lo, hi)}")


def _ground_texture(
    shape: tuple[int, int], channels: int, rng: np.random.Generator, canvas: bool
) -> np.ndarray:
    """(H, W, 3) float32 exposed ground: textured gesso colour, or canvas weave."""
    h, w = shape
    if canvas:
        period = rng.uniform(2.5, 6.0)
        ang = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        u = (xx * np.cos(ang) + yy * np.sin(ang)) * (2 * np.pi / period)
        v = (-xx * np.sin(ang) + yy * np.cos(ang)) * (2 * np.pi / period)
        weave = 0.5 + 0.25 * (np.sin(u) * np.sign(np.sin(v / 2)) + np.sin(v) * np.sign(np.cos(u / 2)))
        shade = (0.75 + 0.35 * weave)[..., None]
        colour = CANVAS_COLOUR * rng.uniform(0.8, 1.15)
    else:
        shade = (1.0 + 0.05 * _smooth_noise(shape, 12, rng) + 0.03 * rng.normal(0, 1, (h, w)))[..., None]
        colour = GROUND_COLOURS[rng.integers(len(GROUND_COLOURS))] * rng.uniform(0.9, 1.05)
    return np.clip(colour[None, None, :] * shade, 0, 1).astype(np.float32)


def _shifted(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    return np.roll(np.roll(a, dy, 0), dx, 1)


def synthesize_damage(
    image: np.ndarray, seed: int, config: DamageConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Damage a clean (H, W, C) uint8/uint16 image; returns (damaged image, (H, W) uint8 labels 0/1/2)."""
    cfg = config or DamageConfig()
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"image must be (H, W, C) with C in 1, 3, 4; got shape {image.shape}")
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"image must be uint8 or uint16, got {image.dtype}")
    rng = np.random.default_rng(seed)
    h, w, c = image.shape
    top = float(np.iinfo(image.dtype).max)
    colour = image[:, :, : min(c, 3)].astype(np.float32) / top  # (H, W, 1|3); alpha channel untouched
    grey = colour.shape[2] == 1

    def tint(rgb: np.ndarray) -> np.ndarray:  # (..., 3) -> matching channel count
        return rgb.mean(-1, keepdims=True) if grey else rgb

    # Opt-in draws happen only when enabled, so the default random stream (and the held-out set) is unchanged.
    if cfg.p_texture > 0 and rng.random() < cfg.p_texture:
        texture = _surface_texture((h, w), rng)
        blend = float(rng.uniform(0.5, 1.0))
        colour = colour * (1 - blend) + tint(texture) * blend
    free_cracks = cfg.p_free_cracks > 0 and rng.random() < cfg.p_free_cracks

    crack_alpha = np.zeros((h, w), np.float32)
    cells: list[np.ndarray] = []
    out = colour.copy()
    if rng.random() < cfg.p_craquelure:
        drawing = (_draw_free_cracks((h, w), rng) if free_cracks
                   else _draw_cracks((h, w), _sample_style(rng, cfg.crack_kinds), rng))
        crack_alpha, cells = drawing.alpha, drawing.cells
        a = crack_alpha[..., None]
        # Cup edges: lifted paint beside a crack catches the light on one side.
        hl = float(rng.uniform(*cfg.cup_highlight))
        if hl > 0:
            dy, dx = rng.choice([-1, 1]), rng.choice([-1, 1])
            halo = np.clip(_shifted(cv2.GaussianBlur(crack_alpha, (0, 0), 1.2), dy, dx) - crack_alpha, 0, 1)
            out = out + (hl * halo)[..., None] * (1 - out)
        strength = float(rng.uniform(*cfg.crack_contrast))
        if rng.random() < cfg.p_dark_cracks:
            fill = tint(DIRT_COLOUR * rng.uniform(0.6, 2.5))[None, None, :] + 0.25 * out * (1 - strength)
        else:
            ground = _ground_texture((h, w), c, rng, canvas=False)
            fill = tint(ground)
            fill = 0.85 * fill + 0.15 * out
        # Keep the contrast visible: the crack fill must differ from the paint it replaces.
        out = out * (1 - strength * a) + fill * (strength * a)
    loss_alpha = np.zeros((h, w), np.float32)
    if rng.random() < cfg.p_paint_loss:
        amount = float(rng.uniform(*cfg.loss_amount))
        cracks = crack_alpha >= 0.5 if cells or free_cracks else None
        loss_alpha = _loss_alpha((h, w), rng, cracks, cells, amount)
        ground = _ground_texture((h, w), c, rng, canvas=rng.random() < cfg.p_canvas)
        ground = tint(ground)
        # The paint layer's broken edge throws a thin shadow onto the exposed ground.
        dy, dx = rng.choice([-2, -1, 1, 2]), rng.choice([-2, -1, 1, 2])
        rim = np.clip(loss_alpha - _shifted(loss_alpha, dy, dx), 0, 1)
        ground = ground * (1 - 0.35 * rim[..., None])
        la = loss_alpha[..., None]
        out = out * (1 - la) + ground * la
    labels = np.zeros((h, w), np.uint8)
    labels[crack_alpha >= 0.5] = CRAQUELURE
    labels[loss_alpha >= 0.5] = PAINT_LOSS
    damaged = image.copy()
    damaged[:, :, : min(c, 3)] = np.clip(np.rint(out * top), 0, top).astype(image.dtype)
    return damaged, labels
