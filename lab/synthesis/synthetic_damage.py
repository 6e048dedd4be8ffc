"""Realistic synthetic damage on clean paintings: craquelure networks and paint loss, with exact labels.

Craquelure is drawn as a Voronoi network whose cells are stretched along one direction (canvas tension),
with wobbling, tapering, branching cracks 1-6 px wide, rendered 4x supersampled and area-downsampled so
edges are anti-aliased. Paint loss is a set of irregular flakes (often sitting on cracks, sometimes whole
crack-bounded islands) that expose a textured ground (gesso colours) or a canvas weave.

Labels follow what is drawn: a pixel is craquelure (1) where the crack coverage is >= 0.5 and paint loss
(2) where the loss coverage is >= 0.5 (paint loss is composited on top, so 2 wins). Everything is a pure
function of the seed.

`DamageConfig(style="realistic")` selects `lab.synthesis.realistic` instead (real crack shapes, textured grounds,
hard negatives, photography); the classic generator below stays the default so that existing records reproduce.

Two opt-in styles (DamageConfig.p_free_cracks, p_texture; both 0 by default, so the default random stream and the
held-out evaluation set are unchanged) widen what training sees: a few isolated, meandering, branching cracks
instead of a network, and a grainy low-saturation surface (rough ground, stone, plaster, asphalt) under the damage.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from lab.synthesis.cracks import (
    CRACK_KINDS,
    SUPERSAMPLE,
    checked_shape,
    draw_cracks,
    draw_free_cracks,
    sample_style,
)
from lab.synthesis.grounds import GROUNDS
from lab.synthesis.realistic import realistic_damage

BACKGROUND, CRAQUELURE, PAINT_LOSS = 0, 1, 2
STYLES = ("classic", "realistic")
CLASS_NAMES = ("craquelure", "paint_loss")

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
    shape = checked_shape(shape)
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
    # "classic" (the default, the generator the shipped detector and its held-out records used) or "realistic"
    # (lab.synthesis.realistic: real crack shapes, textured grounds, fills, hard negatives, photography).
    style: str = "classic"
    # Read by the realistic style only:
    p_real_shapes: float = 0.6  # a crack network takes a real crack map's shape (when ../shared/data has them)
    p_negatives: float = 0.7  # hard negatives (thin painted lines, lace, inscriptions, grain) painted unlabelled
    # wide dark brushstrokes (3-6 px) and birds painted unlabelled, drawn from a random stream of their own, so the
    # rest of an image's damage is the same whatever this is; 0 = none (the held-out sets are drawn without them)
    p_strokes: float = 0.0
    p_photography: float = 0.9  # the whole image is re-photographed (varnish, light, glare, blur, noise, JPEG)
    p_fills: float = 0.3  # some losses are old discoloured fills instead of exposed ground
    p_faint_cracks: float = 0.2  # an image's cracks are faint (the rest dark or light ground in 0.55 : 0.25)
    crack_width: tuple[float, float] = (1.2, 2.8)  # range of the widest crack of a main network (px)
    loss_size_of: int = 0  # draw loss sizes as on an image with this shorter side (px); 0 = the image's own
    shapes_root: str = ""  # folder holding the real crack maps; "" = ../shared/data or $RETOUCH_SHARED_DATA
    grounds: tuple[str, ...] = ()  # the grounds a realistic loss or light crack may expose; () = all, by weight
    # how often each ground of GROUNDS (gesso, bole, plaster, canvas, in that order) is drawn, relative to the others;
    # () = realistic.GROUND_WEIGHTS
    ground_weights: tuple[float, ...] = ()
    # A crack's core is also labelled where its change exceeds this fraction of the paint's local luminance
    # (a contrast relative to the paint, so dark cracks on dark paint are labelled as they are seen); 0 = off.
    core_contrast: float = 0.0

    def __post_init__(self) -> None:
        for name in ("crack_kinds", "loss_amount", "crack_contrast", "cup_highlight", "crack_width", "grounds",
                     "ground_weights"):
            object.__setattr__(self, name, tuple(getattr(self, name)))  # JSON gives lists
        unknown = set(self.crack_kinds) - set(CRACK_KINDS)
        if not self.crack_kinds or unknown:
            raise ValueError(f"DamageConfig.crack_kinds must be a non-empty subset of {CRACK_KINDS}, "
                             f"got {self.crack_kinds}")
        if set(self.grounds) - set(GROUNDS) or len(set(self.grounds)) != len(self.grounds):
            raise ValueError(f"DamageConfig.grounds must be distinct names from {GROUNDS} (none = all), "
                             f"got {self.grounds}")
        if self.ground_weights and (len(self.ground_weights) != len(GROUNDS) or min(self.ground_weights) < 0 or not any(
                w for g, w in zip(GROUNDS, self.ground_weights, strict=True) if g in (self.grounds or GROUNDS))):
            raise ValueError(f"DamageConfig.ground_weights must be {len(GROUNDS)} weights >= 0 for {GROUNDS}, some "
                             f"ground allowed by `grounds` above 0 (none = the default mix), got {self.ground_weights}")
        if self.style not in STYLES:
            raise ValueError(f"DamageConfig.style must be one of {STYLES}, got {self.style!r}")
        for name in ("p_craquelure", "p_paint_loss", "p_dark_cracks", "p_canvas", "p_free_cracks", "p_texture",
                     "p_real_shapes", "p_negatives", "p_strokes", "p_photography", "p_fills", "p_faint_cracks",
                     "core_contrast"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"DamageConfig.{name} must be in [0, 1], got {value}")
        for name, lo_bound, hi_bound in (("loss_amount", 0.0, 20.0), ("crack_contrast", 0.0, 1.0),
                                         ("cup_highlight", 0.0, 1.0), ("crack_width", 0.8, 8.0)):
            lo, hi = getattr(self, name)
            if not lo_bound <= lo <= hi <= hi_bound:
                raise ValueError(f"DamageConfig.{name} must be an increasing range within "
                                 f"[{lo_bound}, {hi_bound}], got {(lo, hi)}")
        if self.loss_size_of < 0:
            raise ValueError(f"DamageConfig.loss_size_of must be >= 0 (0 = the image's own size), got "
                             f"{self.loss_size_of}")


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
    """Damage a clean (H, W, C) uint8/uint16 image; returns (damaged image, (H, W) uint8 labels 0/1/2).

    The config's `style` picks the generator: "classic" below, or "realistic" (`realistic_damage`).
    """
    cfg = config or DamageConfig()
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"image must be (H, W, C) with C in 1, 3, 4; got shape {image.shape}")
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"image must be uint8 or uint16, got {image.dtype}")
    if cfg.style == "realistic":
        result = realistic_damage(image, seed, cfg)
        return result.damaged, result.labels
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
        drawing = (draw_free_cracks((h, w), rng) if free_cracks
                   else draw_cracks((h, w), sample_style(rng, cfg.crack_kinds), rng))
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
