"""How far one run's outputs lie from a reference run's: a detection (0-255 probabilities and a label image)
and a restored image. Used to hold the GPU path to the CPU path (benchmarks/bench_gpu.py)."""

from __future__ import annotations

import numpy as np


def class_f1(reference: np.ndarray, other: np.ndarray, value: int) -> float:
    """F1 of `other == value` against `reference == value` (1.0 where both are empty)."""
    ref, got = reference == value, other == value
    both = int((ref & got).sum())
    total = int(ref.sum()) + int(got.sum())
    return 1.0 if total == 0 else 2 * both / total


def compare_detection(ref_prob: np.ndarray, ref_labels: np.ndarray, prob: np.ndarray,
                      labels: np.ndarray) -> dict[str, float]:
    """How far a detection (0-255 probabilities, label image) lies from the reference one."""
    diff = np.abs(ref_prob.astype(np.int16) - prob.astype(np.int16))
    return {
        "probability_max_levels": int(diff.max()),
        "probability_mean_levels": float(diff.mean()),
        "probability_share_over_2_levels": float((diff > 2).mean()),
        "label_share_differing": float((ref_labels != labels).mean()),
        "craquelure_f1_vs_reference": class_f1(ref_labels, labels, 1),
        "paint_loss_f1_vs_reference": class_f1(ref_labels, labels, 2),
    }


def compare_restored(scan: np.ndarray, ref: np.ndarray, restored: np.ndarray) -> dict[str, float]:
    """How far a restored (C, H, W) image lies from the reference one, over the pixels either changed from
    the scan (elsewhere both are the scan, so the largest difference there is the largest anywhere);
    `changed_by_one_only`: pixels that one run changed and the other left as scanned."""
    by_ref, by_other = np.any(ref != scan, axis=0), np.any(restored != scan, axis=0)
    filled = by_ref | by_other
    diff = np.abs(ref.astype(np.int32) - restored.astype(np.int32)).max(axis=0)
    inside = diff[filled]
    return {
        "filled_pixels": int(filled.sum()),
        "restored_max_levels": int(inside.max()) if inside.size else 0,
        "restored_mean_levels": float(inside.mean()) if inside.size else 0.0,
        "restored_share_over_2_levels": float((inside > 2).mean()) if inside.size else 0.0,
        "changed_by_one_only": int((by_ref ^ by_other).sum()),
    }
