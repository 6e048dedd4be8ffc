"""Pixel scores for binary damage maps: precision, recall, F1, IoU, pixel accuracy.

Strict scores count pixels exactly. Tolerant scores (crack-benchmark style, CrackForest/DeepCrack) count a
predicted pixel as correct if a true pixel lies within `tolerance` px, and a true pixel as found if a
predicted pixel lies within `tolerance` px, because 1-px hand labels make exact pixel overlap meaningless.
Counts are accumulated over many images and turned into scores once (micro-average).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

SCORE_NAMES = ("precision", "recall", "f1", "iou", "pixel_accuracy")


@dataclass
class Counts:
    """Confusion counts; `tp_pred`/`tp_true` differ only under a distance tolerance."""

    tp_pred: int = 0  # predicted pixels that are correct
    fp: int = 0
    tp_true: int = 0  # true pixels that were found
    fn: int = 0
    tn: int = 0

    def __iadd__(self, other: Counts) -> Counts:
        self.tp_pred += other.tp_pred
        self.fp += other.fp
        self.tp_true += other.tp_true
        self.fn += other.fn
        self.tn += other.tn
        return self

    def scores(self) -> dict[str, float]:
        """precision, recall, f1, iou, pixel_accuracy (an empty class with no prediction scores 1.0)."""
        pred = self.tp_pred + self.fp
        true = self.tp_true + self.fn
        precision = self.tp_pred / pred if pred else (1.0 if true == 0 else 0.0)
        recall = self.tp_true / true if true else (1.0 if pred == 0 else 0.0)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        tp = (self.tp_pred + self.tp_true) / 2
        union = tp + self.fp + self.fn
        iou = tp / union if union else 1.0
        total = tp + self.fp + self.fn + self.tn
        accuracy = (tp + self.tn) / total if total else 1.0
        return {"precision": precision, "recall": recall, "f1": f1, "iou": iou, "pixel_accuracy": accuracy}


def _near(mask: np.ndarray, tolerance: float) -> np.ndarray:
    """Pixels within `tolerance` px (Euclidean) of any pixel of `mask`."""
    if not mask.any():
        return np.zeros_like(mask)
    return ndimage.distance_transform_edt(~mask) <= tolerance


def confusion(pred: np.ndarray, true: np.ndarray, tolerance: float = 0.0) -> Counts:
    """Counts for one pair of (H, W) bool maps, with an optional distance tolerance in px."""
    pred = np.asarray(pred, bool)
    true = np.asarray(true, bool)
    if pred.shape != true.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from mask shape {true.shape}")
    if tolerance > 0:
        tp_pred = int((pred & _near(true, tolerance)).sum())
        tp_true = int((true & _near(pred, tolerance)).sum())
    else:
        tp_pred = tp_true = int((pred & true).sum())
    n_pred, n_true = int(pred.sum()), int(true.sum())
    fp, fn = n_pred - tp_pred, n_true - tp_true
    tn = int(pred.size - ((pred | true).sum()))
    return Counts(tp_pred=tp_pred, fp=fp, tp_true=tp_true, fn=fn, tn=tn)


def binary_scores(pred: np.ndarray, true: np.ndarray, tolerance: float = 0.0) -> dict[str, float]:
    """The five scores for one pair of (H, W) bool maps."""
    return confusion(pred, true, tolerance).scores()
