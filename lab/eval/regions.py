"""Per-region recall of paint loss: each connected loss of the truth and the share of it that was detected.

A loss found at 95 % of its pixels overall can still hide one patch left almost whole in the restored image; the
detection issue asks for no loss patch under half detected, so each patch is scored on its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

HALF = 0.5


def region_shares(pred: np.ndarray, truth: np.ndarray) -> list[dict[str, Any]]:
    """One row per 8-connected region of `truth` (H, W bool): its bounding box [y0, x0, y1, x1], area and the
    share of its pixels that `pred` (H, W bool) marks."""
    labels, count = ndimage.label(truth, structure=np.ones((3, 3), bool))
    if not count:
        return []
    index = np.arange(1, count + 1)
    area = ndimage.sum_labels(np.ones_like(truth, np.int64), labels, index)
    found = ndimage.sum_labels(pred & truth, labels, index)
    rows = []
    for box, a, f in zip(ndimage.find_objects(labels), area, found, strict=True):
        rows.append({"box": [box[0].start, box[1].start, box[0].stop, box[1].stop], "area": int(a),
                     "share": float(f / a)})
    return rows


def region_summary(rows: list[dict[str, Any]], min_area: int = 1) -> dict[str, Any]:
    """Regions of at least `min_area` px: how many, how many under half detected (listed, least found first),
    the least detected share and the median."""
    kept = [r for r in rows if r["area"] >= min_area]
    under = sorted((r for r in kept if r["share"] < HALF), key=lambda r: r["share"])
    shares = [r["share"] for r in kept]
    return {"regions": len(kept), "min_area": min_area, "under_half": len(under),
            "worst": min(shares) if shares else None,
            "median": float(np.median(shares)) if shares else None, "under_half_regions": under}
