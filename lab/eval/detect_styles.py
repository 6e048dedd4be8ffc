"""`retouch evaluate detect-styles`: the detector's craquelure scores per crack style and fill.

The pooled held-out figure mixes every style; this breaks it down so that a weak style shows. For each
network style of `lab.synthesis.synthetic_damage.CRACK_KINDS` and each fill (dark: dirt in the crack; light: the
ground showing through), crops of the held-out (VAL) paintings get cracks of only that style and fill (no
paint loss), seeded and deterministic, and the model's map is scored against the drawn label.

The same crops are also damaged at three crack contrasts (how strongly the crack replaces the paint; every
style, the default mix of fills): faint, medium, and the default range that training and the held-out set
use. Real craquelure is often fainter than that default, and recall falls with contrast.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lab.eval.metrics import Counts, confusion
from lab.synthesis.cracks import CRACK_KINDS
from lab.synthesis.synthetic_damage import CRAQUELURE, DamageConfig, synthesize_damage

FILLS = {"dark": 1.0, "light": 0.0}  # DamageConfig.p_dark_cracks for each fill
CONTRASTS = {"faint": (0.2, 0.35), "medium": (0.35, 0.55), "default": DamageConfig().crack_contrast}
DEFAULT_SEED = 7_000_000  # apart from the training seeds (< 10**9 per step) and the held-out set's


def _crop(image: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    ch, cw = min(side, h), min(side, w)
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return np.ascontiguousarray(image[y0:y0 + ch, x0:x0 + cw])


def style_cases(
    images: list[np.ndarray], kind: str, fill: str, copies: int = 2, crop: int = 512, seed: int = DEFAULT_SEED
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(damaged crop, craquelure mask) pairs: `copies` seeded crops of every image, cracks of one style and fill."""
    if kind not in CRACK_KINDS or fill not in FILLS:
        raise ValueError(f"kind must be one of {CRACK_KINDS} and fill one of {tuple(FILLS)}, got {kind!r}, {fill!r}")
    cfg = DamageConfig(p_craquelure=1.0, p_paint_loss=0.0, p_dark_cracks=FILLS[fill], crack_kinds=(kind,))
    return damage_cases(images, cfg, copies, crop, seed)


def contrast_cases(
    images: list[np.ndarray], band: str, copies: int = 2, crop: int = 512, seed: int = DEFAULT_SEED
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(damaged crop, craquelure mask) pairs with cracks of every style at one contrast band of `CONTRASTS`."""
    if band not in CONTRASTS:
        raise ValueError(f"band must be one of {tuple(CONTRASTS)}, got {band!r}")
    cfg = DamageConfig(p_craquelure=1.0, p_paint_loss=0.0, crack_contrast=CONTRASTS[band])
    return damage_cases(images, cfg, copies, crop, seed)


def damage_cases(
    images: list[np.ndarray], cfg: DamageConfig, copies: int, crop: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """`copies` seeded crops of every image damaged with `cfg`, each with its craquelure mask."""
    cases = []
    for i, image in enumerate(images):
        for k in range(copies):
            case_seed = seed + 100 * i + k
            damaged, labels = synthesize_damage(_crop(image, crop, np.random.default_rng(case_seed)), case_seed, cfg)
            cases.append((damaged, labels == CRAQUELURE))
    return cases


def style_breakdown(
    predict: Callable[[np.ndarray], np.ndarray], images: list[np.ndarray], copies: int = 2, crop: int = 512,
    seed: int = DEFAULT_SEED, threshold: float = 0.5,
) -> dict[str, dict[str, float]]:
    """Scores per "kind/fill", pooled ("all"), and per contrast band ("contrast/<band>", not in "all");
    `predict` maps a damaged (H, W, C) uint8/uint16 crop to an (H, W) craquelure probability (or 0/1) map,
    thresholded at `threshold`."""
    def counted(cases: list[tuple[np.ndarray, np.ndarray]]) -> Counts:
        counts = Counts()
        for damaged, truth in cases:
            counts += confusion(np.asarray(predict(damaged)) > threshold, truth)
        return counts

    rows: dict[str, dict[str, float]] = {}
    total = Counts()
    for kind in CRACK_KINDS:
        for fill in FILLS:
            counts = counted(style_cases(images, kind, fill, copies, crop, seed))
            rows[f"{kind}/{fill}"] = counts.scores()
            total += counts
    rows["all"] = total.scores()
    for band in CONTRASTS:
        rows[f"contrast/{band}"] = counted(contrast_cases(images, band, copies, crop, seed)).scores()
    return rows


def format_styles(rows: dict[str, dict[str, float]]) -> str:
    """A plain-text table of `style_breakdown`'s rows."""
    lines = [f"{'style/fill':<16} {'P':>6} {'R':>6} {'F1':>6}"]
    lines += [f"{name:<16} {s['precision']:6.3f} {s['recall']:6.3f} {s['f1']:6.3f}" for name, s in rows.items()]
    return "\n".join(lines)
