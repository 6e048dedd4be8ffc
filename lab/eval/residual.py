"""What a restoration left and what it painted over, against the clean picture: `retouch evaluate restored`.

A store restored by `retouch run` (or detect + inpaint) on a damaged image whose clean picture and true labels are
known (synthetic damage) is compared pixel by pixel with that clean picture, the detector and the inpainter
together, as a viewer sees the result:

- **Damage**, per class and per band of how much the damage changed the picture (its *contrast*: |scan - clean|,
  the largest over the colour channels, on [0, 1]): the share of the class's pixels in the band, the share the
  stage left unfilled (outside the fill region: the damage stays exactly as scanned), and the mean |picture -
  clean| before and after. A faint crack that changes the paint by 0.02 and is left unfilled costs little; one
  of 0.2 left unfilled is a visible crack in the restored image.
- **Intact paint**, the pixels more than `INTACT_MARGIN` px plus the stage's `dilate` from any true damage (beyond
  the rim that the fill region's own dilation adds to a true damage): the share inside the fill region (painted
  over: the restore stage replaced the painter's own paint where there was no damage) and the share changed by at
  least `visible`.

The fill region is the stage's own: the store's damage labels grown by the stage's `dilate` (`restored/`'s
recorded parameters, `pipeline.stages.inpaint.dilate_hole`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from lab.synthesis.synthetic_damage import CLASS_NAMES
from pipeline.stages.inpaint import dilate_hole

BANDS = (0.0, 0.03, 0.06, 0.12, 1.0)  # contrast bands; 0.03 is the realistic generator's labelling threshold
VISIBLE = 0.06  # |restored - clean| at or above this counts as a visible change
INTACT_MARGIN = 3  # px from the true damage beyond which paint is intact (anti-aliased rims and halos lie within)


def _unit(image: np.ndarray) -> np.ndarray:
    """(H, W, C) integer or float image -> (H, W, 3 or 1) float32 on [0, 1], colour channels only."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[:, :, None]
    top = float(np.iinfo(a.dtype).max) if np.issubdtype(a.dtype, np.integer) else 1.0
    return a[:, :, : min(a.shape[2], 3)].astype(np.float32) / top


def contrast(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W) float32: |a - b|, the largest over the colour channels, on [0, 1]."""
    return np.abs(_unit(a) - _unit(b)).max(axis=2)


def residual_report(
    scan: np.ndarray, restored: np.ndarray, clean: np.ndarray, truth: np.ndarray, fill: np.ndarray,
    dilate: int = 0, visible: float = VISIBLE, bands: tuple[float, ...] = BANDS,
) -> dict[str, Any]:
    """The figures for one image: `scan`, `restored` and `clean` (H, W, C) images of one size, `truth` (H, W) labels
    0 / 1 craquelure / 2 paint loss, `fill` (H, W) bool the region the stage filled, grown by `dilate` px from
    the damage it found."""
    if not (scan.shape[:2] == restored.shape[:2] == clean.shape[:2] == truth.shape == fill.shape):
        raise ValueError(f"sizes differ: scan {scan.shape[:2]}, restored {restored.shape[:2]}, clean "
                         f"{clean.shape[:2]}, labels {truth.shape}, fill {fill.shape}")
    before, after = contrast(scan, clean), contrast(restored, clean)
    classes: dict[str, Any] = {}
    for value, name in enumerate(CLASS_NAMES, start=1):
        cls = truth == value
        rows = []
        for lo, hi in zip(bands[:-1], bands[1:], strict=True):
            band = cls & (before >= lo) & (before < (np.inf if hi == bands[-1] else hi))  # the last band is open
            n = int(band.sum())
            rows.append({"contrast": [lo, hi], "pixels": n, "share": n / max(1, int(cls.sum())),
                         "unfilled": float((~fill[band]).mean()) if n else 0.0,
                         "before": float(before[band].mean()) if n else 0.0,
                         "after": float(after[band].mean()) if n else 0.0})
        seen = cls & (before >= visible)
        classes[name] = {"pixels": int(cls.sum()), "bands": rows, "visible_pixels": int(seen.sum()),
                         "visible_unfilled": float((~fill[seen]).mean()) if seen.any() else 0.0,
                         "visible_left": float((after[seen] >= visible).mean()) if seen.any() else 0.0}
    intact = intact_paint(truth, dilate)
    painted = fill & intact
    pieces = ndimage.label(painted, np.ones((3, 3), bool))[1]
    return {
        "classes": classes,
        "intact": {"pixels": int(intact.sum()), "painted_over": float(painted.sum() / max(1, intact.sum())),
                   "painted_over_pixels": int(painted.sum()), "painted_over_pieces": int(pieces),
                   "changed": float((after[intact] >= visible).mean()) if intact.any() else 0.0},
        "visible": visible, "intact_margin": INTACT_MARGIN + dilate,
    }


def intact_paint(truth: np.ndarray, dilate: int = 0) -> np.ndarray:
    """(H, W) bool: the pixels more than INTACT_MARGIN + `dilate` px (chessboard distance) from any true damage."""
    return ~ndimage.binary_dilation(truth > 0, np.ones((3, 3), bool), iterations=INTACT_MARGIN + dilate)


def residual_map(scan: np.ndarray, truth: np.ndarray, fill: np.ndarray, before: np.ndarray, dilate: int = 0,
                 visible: float = VISIBLE) -> np.ndarray:
    """(H, W, 3) uint8 to look at: the scan dimmed to 60 %, visible damage the stage left unfilled in magenta,
    intact paint it painted over in yellow."""
    out = _unit(scan)
    out = np.repeat(out, 3, axis=2) if out.shape[2] == 1 else out
    out = out * 0.6
    out[(truth > 0) & ~fill & (before >= visible)] = (1.0, 0.0, 1.0)
    out[fill & intact_paint(truth, dilate)] = (1.0, 1.0, 0.0)
    return np.rint(out * 255).astype(np.uint8)


def read_restored_store(url: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Level 0 of a restored store: scan and restored (H, W, C), the mask the inpaint stage filled from and the
    stage's fill region (H, W), and `restored/`'s recorded parameters. Refuses a store whose inpaint stage did not
    complete (one line naming the store and the command to run)."""
    import zarr

    from pipeline.io.store import StoreError, group_info, join, open_complete
    from pipeline.stages.inpaint_stage import EDITED_MASK_GROUP

    restored = open_complete(url, "restored")
    scan = open_complete(url, "scan")
    info = dict(restored.attrs["retouch"])
    if info["mask"] == EDITED_MASK_GROUP:  # a mask corrected in review: its own group
        current = (group_info(url, EDITED_MASK_GROUP) or {}).get("digests", {}).get("0")
    else:  # the detected damage: its digest is damage/'s
        current = (group_info(url, "damage") or {}).get("digests", {}).get("labels/0")
    if current != info.get("mask_digest"):
        raise StoreError(join(url, "restored"), f"was filled from another {info['mask']} than the store holds now; "
                                                "run `retouch inpaint` again")
    mask = zarr.open_group(url, mode="r", path=info["mask"])
    params = info.get("params", {})
    labels = np.asarray(mask["0"])[0]
    return (np.moveaxis(np.asarray(scan["0"]), 0, -1), np.moveaxis(np.asarray(restored["0"]), 0, -1), labels,
            dilate_hole(labels > 0, int(params.get("dilate", 0))), params)


def format_residual(report: dict[str, Any]) -> str:
    """A plain-text table: per class and contrast band, the share of pixels, the share left unfilled and the mean
    |picture - clean| before and after; then intact paint."""
    lines = [f"{'class':<11} {'contrast':>11} {'pixels':>8} {'share':>6} {'unfilled':>9} {'before':>7} {'after':>7}"]
    for name, cls in report["classes"].items():
        for row in cls["bands"]:
            lo, hi = row["contrast"]
            lines.append(f"{name:<11} {lo:5.2f}-{hi:<5.2f} {row['pixels']:8d} {row['share']:6.2f} "
                         f"{row['unfilled']:9.2f} {row['before']:7.3f} {row['after']:7.3f}")
        lines.append(f"{name:<11} visible (contrast >= {report['visible']}): {cls['visible_pixels']} px, "
                     f"{100 * cls['visible_unfilled']:.1f} % left unfilled, {100 * cls['visible_left']:.1f} % "
                     f"still >= {report['visible']} from the clean picture after restoring")
    intact = report["intact"]
    lines.append(f"intact paint (> {report['intact_margin']} px from any damage): {100 * intact['painted_over']:.3f} % "
                 f"painted over ({intact['painted_over_pixels']} px in {intact['painted_over_pieces']} pieces), "
                 f"{100 * intact['changed']:.3f} % changed by >= {report['visible']}")
    return "\n".join(lines)
