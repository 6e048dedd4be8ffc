"""Detection scores split by the tone of the paint around each pixel: dark paint hides dark (dirt-filled) cracks.

The tone is read from the evaluated image itself (the only picture a real crack photo or scan has): its mean RGB
in [0, 1], blurred by a Gaussian of SIGMA px so that a thin crack does not darken its own surround, below DARK is
dark paint. Per tone: true positives, false negatives and false positives, and from them recall and precision.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DARK = 0.2  # blurred mean RGB (0-1) under which the paint counts as dark
SIGMA = 3.0  # px of the blur that gives the paint's tone around a pixel
TONES = ("dark", "light")


def dark_paint(image: np.ndarray) -> np.ndarray:
    """(H, W) bool: where the paint around is dark, for an image as the detector takes it (`as_rgb_float`: grey or
    colour, 8/16 bit or float in [0, 1])."""
    import cv2

    from pipeline.stages.detect_infer import as_rgb_float

    return cv2.GaussianBlur(as_rgb_float(image).mean(axis=-1), (0, 0), SIGMA) < DARK


def tone_counts(pred: np.ndarray, truth: np.ndarray, dark: np.ndarray) -> dict[str, list[int]]:
    """{tone: [tp, fn, fp]} of a bool prediction against bool truth, split by the bool `dark` map."""
    out = {}
    for tone, where in zip(TONES, (dark, ~dark), strict=True):
        p, t = pred & where, truth & where
        out[tone] = [int((p & t).sum()), int((t & ~p).sum()), int((p & ~t).sum())]
    return out


def add_counts(total: dict[str, list[int]], more: dict[str, list[int]]) -> dict[str, list[int]]:
    """The element-wise sum of two `tone_counts` results."""
    return {tone: [a + b for a, b in zip(total.get(tone, [0, 0, 0]), more[tone], strict=True)] for tone in TONES}


def tone_scores(counts: dict[str, list[int]]) -> dict[str, dict[str, Any]]:
    """{tone: {"pixels": damaged px, "recall", "precision"}} from summed counts (None where undefined)."""
    scores = {}
    for tone in TONES:
        tp, fn, fp = counts.get(tone, [0, 0, 0])
        scores[tone] = {"pixels": tp + fn, "recall": tp / (tp + fn) if tp + fn else None,
                        "precision": tp / (tp + fp) if tp + fp else None}
    return scores


def format_tones(cls: str, scores: dict[str, dict[str, Any]]) -> str:
    """One line: the class's recall (and precision) on dark paint and elsewhere."""
    parts = []
    for tone, label in zip(TONES, (f"on dark paint (< {DARK:g})", "elsewhere"), strict=True):
        s = scores[tone]
        recall = "-" if s["recall"] is None else f"{s['recall']:.3f}"
        precision = "-" if s["precision"] is None else f"{s['precision']:.3f}"
        parts.append(f"{label} recall {recall} of {s['pixels']} px, precision {precision}")
    return f"model      {cls} " + "; ".join(parts)
