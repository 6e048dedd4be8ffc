"""Per-region recall of paint loss: each connected loss of the truth and the share of it that was detected.

A loss found at 95 % of its pixels overall can still hide one patch left almost whole in the restored image; the
detection issue asks for no loss patch under half detected, so each patch is scored on its own.

Marks far from any damage: on a damaged painting, the pixels flagged more than a few px from every true damage
are intact paint that the restore stage would paint over (a rim beside a true damage is not counted, a highlight
or a lace thread marked as loss is); each connected mark of them is listed, largest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    found = ndimage.sum_labels(pred & truth, labels, np.arange(1, count + 1))
    return [{**row, "share": float(f / row["area"])} for row, f in zip(_boxes(labels, count), found, strict=True)]


def _boxes(labels: np.ndarray, count: int) -> list[dict[str, Any]]:
    """Bounding box [y0, x0, y1, x1] and area of each region 1..`count` of `labels` (H, W)."""
    area = ndimage.sum_labels(np.ones_like(labels, np.int64), labels, np.arange(1, count + 1))
    return [{"box": [box[0].start, box[1].start, box[0].stop, box[1].stop], "area": int(a)}
            for box, a in zip(ndimage.find_objects(labels), area, strict=True)]


def region_summary(rows: list[dict[str, Any]], min_area: int = 1) -> dict[str, Any]:
    """Regions of at least `min_area` px: how many, how many under half detected (listed, least found first),
    the least detected share and the median."""
    kept = [r for r in rows if r["area"] >= min_area]
    under = sorted((r for r in kept if r["share"] < HALF), key=lambda r: r["share"])
    shares = [r["share"] for r in kept]
    return {"regions": len(kept), "min_area": min_area, "under_half": len(under),
            "worst": min(shares) if shares else None,
            "median": float(np.median(shares)) if shares else None, "under_half_regions": under}


def far_from(truth: np.ndarray, distance: float) -> np.ndarray:
    """(H, W) bool: the pixels more than `distance` px (Euclidean) from every pixel of `truth` (H, W bool); all of
    them when `truth` is empty."""
    return ndimage.distance_transform_edt(~truth) > distance if truth.any() else np.ones(truth.shape, bool)


def far_marks(pred: np.ndarray, truth: np.ndarray, distance: float) -> tuple[int, int, list[dict[str, Any]]]:
    """Of the pixels more than `distance` px (Euclidean) from every pixel of `truth` (H, W bool): how many,
    how many `pred` (H, W bool) flags, and one row per 8-connected mark of those flagged (box [y0, x0, y1, x1],
    area)."""
    far = far_from(truth, distance)
    flagged = pred & far
    labels, count = ndimage.label(flagged, structure=np.ones((3, 3), bool))
    return int(far.sum()), int(flagged.sum()), _boxes(labels, count) if count else []


def far_summary(far: int, flagged: int, rows: list[dict[str, Any]], distance: float, listed: int = 10
                ) -> dict[str, Any]:
    """The share of far pixels flagged and the `listed` largest marks (`rows` carry their image)."""
    return {"distance_px": distance, "far_pixels": far, "flagged": flagged, "share": flagged / far if far else 0.0,
            "marks": len(rows), "largest": sorted(rows, key=lambda r: -r["area"])[:listed]}


@dataclass
class FarTally:
    """`far_marks` added up over the images of a set; `summary` is `far_summary` of the total."""

    distance: float
    far: int = 0
    flagged: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, image: str, pred: np.ndarray, truth: np.ndarray) -> None:
        """Count one image's flags `pred` against its damage `truth` (H, W bool); its marks carry `image`."""
        far, flagged, rows = far_marks(pred, truth, self.distance)
        self.far, self.flagged = self.far + far, self.flagged + flagged
        self.rows += [{"image": image, **row} for row in rows]

    def summary(self) -> dict[str, Any]:
        return far_summary(self.far, self.flagged, self.rows, self.distance)
