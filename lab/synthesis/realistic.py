"""The "realistic" damage style: damage that looks like a photograph of a damaged painting, with labels that
cover all of it.

Order of drawing, each a pure function of the seed:
1. hard negatives painted into the clean picture (`negatives`): they are paint, never labelled;
2. craquelure: a real crack network (`crack_shapes`, from real crack maps) or a procedural one (`cracks`),
   mostly 1-3 px wide, often with a finer secondary network; per image one look: dirt-filled dark cracks,
   cracks showing the light ground, or faint ones; the crack colour is the painting's own paint darkened, or
   the ground, never one fixed hue; cupped islands catch light on one rim and shade on the other;
3. paint loss (`losses`) exposing a textured ground (`grounds`: gesso, bole, plaster, canvas) with a thin
   shadow of the broken paint edge, or an old discoloured fill;
4. photography (`photography`) of the whole image, the same for the clean and the damaged picture.

Labels: every pixel whose colour the damage changed by more than LABEL_TOLERANCE after the optics (so blur
spread, lit rims and halos are included), every pixel at least half covered by a loss, and the core of a
faint crack where it changes the colour at all (FAINT_TOLERANCE; a crack that changes nothing is not
labelled; with `core_contrast` the tolerance falls with the paint's luminance, to CORE_FLOOR); a changed
pixel near a loss is paint loss (2), any other is craquelure (1).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from lab.synthesis import crack_shapes, grounds, losses, negatives, photography
from lab.synthesis.cracks import CRACK_KINDS, draw_cracks, sample_style

CRAQUELURE, PAINT_LOSS = 1, 2
LABEL_TOLERANCE = 0.03  # colour change (max over channels, of 1.0) that a label must cover
FAINT_TOLERANCE = 0.02  # the least change for which a crack's core is still labelled
CORE_FLOOR = 0.006  # with cfg.core_contrast: the least change (1.5 levels of 8 bits) a core label needs
GROUND_WEIGHTS = {"gesso": 0.35, "bole": 0.15, "plaster": 0.25, "canvas": 0.25}
STROKES_STREAM = 7  # seeds the random stream of the wide brushstrokes and birds apart from the rest of the damage


class RealisticOptions(Protocol):
    """The DamageConfig fields this style reads."""

    p_craquelure: float
    p_paint_loss: float
    loss_amount: tuple[float, float]
    p_real_shapes: float
    p_negatives: float
    p_strokes: float
    p_photography: float
    p_fills: float
    p_faint_cracks: float
    crack_width: tuple[float, float]
    loss_size_of: int
    shapes_root: str
    grounds: tuple[str, ...]
    ground_weights: tuple[float, ...]
    core_contrast: float


@dataclass(frozen=True)
class RealisticDamage:
    """A damaged image, its labels, the same clean picture photographed alike (for tests and intact-paint
    checks), the hard-negative coverage, and the real crack maps whose shapes were used."""

    damaged: np.ndarray
    labels: np.ndarray
    clean: np.ndarray
    negatives: np.ndarray
    sources: tuple[str, ...]


def _shift(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    return np.roll(a, (dy, dx), (0, 1))


def _network(shape: tuple[int, int], rng: np.random.Generator, cfg: RealisticOptions,
             width: tuple[float, float], used: list[str]) -> np.ndarray:
    """(H, W) crack coverage, real-shaped with probability cfg.p_real_shapes (when the maps are present)."""
    sources = crack_shapes.shape_sources(Path(cfg.shapes_root) if cfg.shapes_root else crack_shapes.default_root())
    if sources and rng.random() < cfg.p_real_shapes:
        real = crack_shapes.real_crack_network(shape, rng, sources, width)
        used.append(real.source)
        return real.alpha
    style = dataclasses.replace(sample_style(rng, CRACK_KINDS), width_min=width[0], width_max=width[1])
    return draw_cracks(shape, style, rng).alpha


def _draw_cracks(paint: np.ndarray, rng: np.random.Generator, cfg: RealisticOptions, used: list[str]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(cracked paint, (H, W) crack coverage)."""
    shape = paint.shape[:2]
    primary = _network(shape, rng, cfg, (0.8, float(rng.uniform(*cfg.crack_width))), used)
    alpha = primary
    if rng.random() < 0.6:  # a finer secondary network between the main cracks
        alpha = np.maximum(alpha, _network(shape, rng, cfg, (0.6, 1.0), used) * float(rng.uniform(0.4, 0.8)))
    rest = (1 - cfg.p_faint_cracks) / 0.8  # dark and light keep their 0.55 : 0.25
    look = rng.choice(["dark", "light", "faint"], p=[0.55 * rest, 0.25 * rest, cfg.p_faint_cracks])
    strength = float(rng.uniform(0.15, 0.35) if look == "faint" else rng.uniform(0.45, 0.9))
    along = np.clip(1 + 0.35 * grounds.smooth_noise(shape, float(rng.uniform(10, 40)), rng), 0.3, 1.3)
    a = (alpha * np.clip(strength * along, 0, 1))[..., None]
    out = paint.copy()
    hl = float(rng.uniform(0, 0.35)) if rng.random() < 0.5 else 0.0
    if hl > 0:  # cupped islands: the lifted rim on one side of a crack catches light, the other is shaded
        dy, dx = int(rng.choice([-1, 1])), int(rng.choice([-1, 1]))
        soft = cv2.GaussianBlur(alpha, (0, 0), 1.2)
        lit = np.clip(_shift(soft, dy, dx) - alpha, 0, 1)[..., None]
        shade = np.clip(_shift(soft, -dy, -dx) - alpha, 0, 1)[..., None]
        out = out + hl * lit * (1 - out) - 0.5 * hl * shade * out
    local = cv2.GaussianBlur(paint, (0, 0), 2.0)  # the paint around the crack gives its colour
    if look == "light":
        kind = _ground_kind(rng, cfg)
        fill = 0.75 * grounds.ground(kind if kind != "canvas" else "gesso", shape, rng) + 0.25 * local
    else:
        dirt = np.array([0.9, 0.78, 0.6], np.float32) * float(rng.uniform(0.8, 1.0))
        fill = local * float(rng.uniform(0.25, 0.65)) * (dirt if rng.random() < 0.6 else 1.0)
    return np.clip(out * (1 - a) + fill * a, 0, 1).astype(np.float32), alpha


def _ground_kind(rng: np.random.Generator, cfg: RealisticOptions) -> str:
    """A ground drawn by `cfg.ground_weights` (grounds.GROUNDS order; default GROUND_WEIGHTS), among `cfg.grounds`
    when it names some (weights renormalised)."""
    mix = dict(zip(grounds.GROUNDS, cfg.ground_weights, strict=True)) if cfg.ground_weights else GROUND_WEIGHTS
    kinds = [k for k in mix if (not cfg.grounds or k in cfg.grounds) and mix[k] > 0]
    weights = np.array([mix[k] for k in kinds])
    return str(rng.choice(kinds, p=weights / weights.sum()))


def _draw_losses(paint: np.ndarray, rng: np.random.Generator, cfg: RealisticOptions, cracks: np.ndarray | None,
                 ground: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(paint with losses, (H, W) loss coverage); the exposed ground is `ground` or drawn by `_ground_kind`."""
    shape = paint.shape[:2]
    cover = losses.loss_coverage(shape, rng, float(rng.uniform(*cfg.loss_amount)), cracks, cfg.loss_size_of)
    kind = ground or _ground_kind(rng, cfg)
    exposed = grounds.ground(kind, shape, rng)
    # Dirt and paint remnants lodged in the exposed ground: mottled, partly the colour of the paint around.
    local = cv2.GaussianBlur(paint, (0, 0), 3.0)
    grime = np.clip(0.5 + 0.5 * grounds.smooth_noise(shape, float(rng.uniform(1.5, 5)), rng), 0, 1)[..., None]
    exposed = exposed * (1 - float(rng.uniform(0.0, 0.15)) * grime) + local * float(rng.uniform(0.0, 0.2)) * grime
    # Old fills: some losses were filled and retouched long ago, in a colour that has since drifted.
    n, comp = cv2.connectedComponents((cover > 0.02).astype(np.uint8), connectivity=8)
    if n > 1 and rng.random() < cfg.p_fills:
        filled = rng.random(n) < float(rng.uniform(0.2, 0.7))
        filled[0] = False
        exposed = np.where(filled[comp][..., None], grounds.old_fill(paint, rng), exposed)
    # The broken paint edge: a thin shadow on the ground inside the loss, a lit chipped rim outside.
    dy, dx = int(rng.choice([-2, -1, 1, 2])), int(rng.choice([-2, -1, 1, 2]))
    inner = np.clip(cover - _shift(cover, dy, dx), 0, 1)[..., None]
    outer = np.clip(_shift(cover, -dy, -dx) - cover, 0, 1)[..., None]
    exposed = exposed * (1 - float(rng.uniform(0.2, 0.5)) * inner)
    out = paint + float(rng.uniform(0.0, 0.25)) * outer * (1 - paint)
    c = cover[..., None]
    return np.clip(out * (1 - c) + exposed * c, 0, 1).astype(np.float32), cover


def _core_tolerance(clean: np.ndarray, contrast: float) -> np.ndarray | float:
    """The least change that labels a crack's core: FAINT_TOLERANCE, or with `contrast` > 0 that fraction of
    the clean paint's local luminance where it is smaller (never under CORE_FLOOR)."""
    if contrast <= 0:
        return FAINT_TOLERANCE
    local = cv2.GaussianBlur(clean.mean(axis=2), (0, 0), 2.0)
    return np.clip(contrast * local, CORE_FLOOR, FAINT_TOLERANCE)


def _to_rgb(image: np.ndarray) -> np.ndarray:
    top = float(np.iinfo(image.dtype).max)
    rgb = image[:, :, : min(image.shape[2], 3)].astype(np.float32) / top
    return np.repeat(rgb, 3, axis=2) if rgb.shape[2] == 1 else rgb


def _from_rgb(rgb: np.ndarray, like: np.ndarray) -> np.ndarray:
    top = float(np.iinfo(like.dtype).max)
    channels = rgb.mean(axis=2, keepdims=True) if like.shape[2] == 1 else rgb
    out = like.copy()
    out[:, :, : min(like.shape[2], 3)] = np.clip(np.rint(channels * top), 0, top).astype(like.dtype)
    return out


def realistic_damage(image: np.ndarray, seed: int, cfg: RealisticOptions, ground: str | None = None
                     ) -> RealisticDamage:
    """Damage a clean (H, W, C) uint8/uint16 image (C = 1, 3 or 4; an alpha channel is kept); `ground` fixes
    the ground every paint loss exposes (one of grounds.GROUNDS; default: drawn per image)."""
    rng = np.random.default_rng(seed)
    paint = _to_rgb(image)
    shape = paint.shape[:2]
    marks = np.zeros(shape, np.float32)
    if rng.random() < cfg.p_negatives:
        paint, marks = negatives.paint_negatives(paint, rng)
    strokes_rng = np.random.default_rng([seed, STROKES_STREAM])
    if cfg.p_strokes and strokes_rng.random() < cfg.p_strokes:
        paint, strokes = negatives.paint_strokes(paint, strokes_rng)
        marks = np.maximum(marks, strokes)
    used: list[str] = []
    out, crack = paint, np.zeros(shape, np.float32)
    if rng.random() < cfg.p_craquelure:
        out, crack = _draw_cracks(out, rng, cfg, used)
    loss = np.zeros(shape, np.float32)
    if rng.random() < cfg.p_paint_loss:
        out, loss = _draw_losses(out, rng, cfg, crack >= 0.5 if crack.any() else None, ground)
    photo = photography.draw_photography(shape, rng) if rng.random() < cfg.p_photography else None
    clean, damaged = (paint, out) if photo is None else (photography.optics(paint, photo),
                                                         photography.optics(out, photo))
    change = np.abs(damaged - clean).max(axis=2)
    changed = change > LABEL_TOLERANCE
    # A faint crack is labelled where it is drawn at all (not where it changes nothing: dark on black paint).
    faint = (change > _core_tolerance(clean, cfg.core_contrast)) & (crack >= 0.5)
    near_loss = cv2.dilate((loss > 0.02).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    labels = np.zeros(shape, np.uint8)
    labels[changed | faint] = CRAQUELURE
    labels[(changed & near_loss) | (loss >= 0.5)] = PAINT_LOSS
    if photo is not None:
        eight = image.dtype == np.uint8
        damaged, clean = (photography.sensor(damaged, clean, photo, eight),
                          photography.sensor(clean, clean, photo, eight))
    return RealisticDamage(_from_rgb(damaged, image), labels, _from_rgb(clean, image), marks, tuple(used))
