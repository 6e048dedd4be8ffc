"""`retouch evaluate thin-lines`: does the detector leave a painter's thin lines alone?

Thin painted lines are the hardest negatives: rigging and stays, contours, hatching, lace, highlights and
inscriptions look like cracks or small losses, and whatever the detector flags the restore stage paints over.
For each kind, seeded crops of the VAL paintings (never trained on) get that kind painted in
(lab.synthesis.negatives, the training generator's negatives, here one kind at a time) and NO damage; the
detector runs on the crop with and without the lines. The wider painted marks (`WIDE_KINDS`: dark brushstrokes 3-6 px
wide, birds; `negatives.paint_strokes`) are checked alike and reported apart (`wide_kinds`, `wide_flagged_mean`), so
that `line_flagged_mean` stays the mean of the thin kinds it always was. Reported per kind:

- `line_flagged`: the share of the lines' pixels (coverage >= 0.25) that are flagged as damage (either class);
- `area_flagged`: the share of the crop flagged, and `area_flagged_plain` the same crop without the lines, so
  that the lines' own cost is their difference.

`save_dir` gets the worst case (painted crop | flagged pixels in red over it) to look at.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lab.synthesis.negatives import STROKE_KINDS, paint_negatives, paint_strokes
from pipeline.stages.detect import DEFAULT_WEIGHTS

THIN_KINDS = ("rigging", "contour", "hatching", "lace", "highlight", "inscription")
WIDE_KINDS = STROKE_KINDS
ALL_KINDS = THIN_KINDS + WIDE_KINDS  # a kind's index here seeds its crops
DEFAULT_SEED = 8_000_000  # apart from the training seeds and the other held-out sets'
LINE_COVER = 0.25  # a pixel belongs to a line where the line covers at least this much of it


def thin_line_cases(
    images: list[np.ndarray], kind: str, copies: int = 2, crop: int = 384, seed: int = DEFAULT_SEED,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(plain crop, crop with `kind` painted in, (H, W) bool line pixels) for `copies` seeded crops of every
    (H, W, 3) float image."""
    if kind not in ALL_KINDS:
        raise ValueError(f"kind must be one of {ALL_KINDS}, got {kind!r}")
    cases = []
    for i, image in enumerate(images):
        for k in range(copies):
            rng = np.random.default_rng(seed + 1000 * ALL_KINDS.index(kind) + 100 * i + k)
            h, w = image.shape[:2]
            ch, cw = min(crop, h), min(crop, w)
            y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            plain = np.ascontiguousarray(image[y0:y0 + ch, x0:x0 + cw], dtype=np.float32)
            paint = paint_negatives if kind in THIN_KINDS else paint_strokes
            painted, marks = paint(plain, rng, kinds=(kind,))
            cases.append((plain, painted, marks >= LINE_COVER))
    return cases


def thin_line_report(
    prob_fn: Callable[[np.ndarray], np.ndarray], images: list[np.ndarray], copies: int = 2, crop: int = 384,
    seed: int = DEFAULT_SEED, threshold: float = 0.5, save_dir: Path | None = None,
) -> dict[str, Any]:
    """Per kind of THIN_KINDS and WIDE_KINDS: line pixels, flagged line share, flagged area with and without the
    lines; `prob_fn` maps an (H, W, 3) float image to (K, H, W) probabilities. The worst kind is the thin kind
    with the largest flagged line share."""
    kinds: dict[str, dict[str, float]] = {}
    worst: tuple[float, np.ndarray, np.ndarray] | None = None
    for kind in ALL_KINDS:
        line_px = line_hit = area = area_plain = total = 0
        for plain, painted, lines in thin_line_cases(images, kind, copies, crop, seed):
            flags = (prob_fn(painted) > threshold).any(axis=0)
            flags_plain = (prob_fn(plain) > threshold).any(axis=0)
            hit = int((flags & lines).sum())
            line_px, line_hit = line_px + int(lines.sum()), line_hit + hit
            area, area_plain, total = area + int(flags.sum()), area_plain + int(flags_plain.sum()), total + flags.size
            share = hit / max(1, int(lines.sum()))
            if kind in THIN_KINDS and (worst is None or share > worst[0]):
                worst = (share, painted, flags)
        kinds[kind] = {"line_pixels": line_px, "line_flagged": line_hit / max(1, line_px),
                       "area_flagged": area / max(1, total), "area_flagged_plain": area_plain / max(1, total)}
    thin = {k: kinds[k] for k in THIN_KINDS}
    wide = {k: kinds[k] for k in WIDE_KINDS}
    report: dict[str, Any] = {
        "kinds": thin, "copies": copies, "crop": crop, "seed": seed, "threshold": threshold,
        "worst_kind": max(thin, key=lambda k: thin[k]["line_flagged"]),
        "line_flagged_mean": float(np.mean([v["line_flagged"] for v in thin.values()])),
        "wide_kinds": wide, "wide_flagged_mean": float(np.mean([v["line_flagged"] for v in wide.values()])),
    }
    if save_dir is not None and worst is not None:
        from pipeline.io.image_io import write_png

        _, painted, flags = worst
        marked = painted.copy()
        marked[flags] = (1.0, 0.0, 0.0)
        out = Path(save_dir) / "thin_lines_worst.png"
        write_png(out, np.rint(np.concatenate([painted, marked], axis=1) * 255).astype(np.uint8))
        report["worst_case"] = str(out)
    return report


def format_thin_lines(report: dict[str, Any]) -> str:
    """A plain-text table: per kind the flagged share of line pixels and of the area (with and without lines)."""
    lines = [f"{'kind':<12} {'line px':>9} {'lines flagged %':>16} {'area flagged %':>15} {'without lines %':>16}"]
    for kind, row in {**report["kinds"], **report.get("wide_kinds", {})}.items():
        lines.append(f"{kind:<12} {row['line_pixels']:9d} {100 * row['line_flagged']:16.3f} "
                     f"{100 * row['area_flagged']:15.4f} {100 * row['area_flagged_plain']:16.4f}")
    lines.append(f"worst kind {report['worst_kind']}; mean flagged share of line pixels "
                 f"{100 * report['line_flagged_mean']:.3f}% (thin kinds)")
    if "wide_flagged_mean" in report:
        lines.append(f"wide strokes and birds: mean flagged share {100 * report['wide_flagged_mean']:.3f}%")
    return "\n".join(lines)


def evaluate_thin_lines(
    weights: str = DEFAULT_WEIGHTS, tta: int | None = None, threshold: float = 0.5, copies: int = 2,
    crop: int = 384, save_dir: Path | None = None, paths: list[Path] | None = None, manifest: Path | None = None,
    tile: int | None = None, coarse_loss: bool | None = None, min_crack: int | None = None, straight: int | None = None,
    second_view: str | None = None, loss_agreement: float | None = None, agreement_area: int | None = None,
    border: int | None = None, paint_like: int | None = None,
    scale: float | None = None,
) -> dict[str, Any]:
    """The thin-line check of a manifest detector on the VAL paintings (or `paths`), tiled as `retouch detect`
    runs it (or in `tile`-px tiles), `tta` views, `coarse_loss`, `min_crack`, `straight`, `paint_like`, `second_view`,
    `loss_agreement`, `agreement_area`, `border` and `scale` (default the detect stage's)."""
    from lab.eval.detect_eval import EvalOptions, _load_model
    from lab.paintings import paintings
    from pipeline.io.image_io import as_rgb, read_image, to_float
    from pipeline.stages.detect import DetectConfig

    stage = DetectConfig().given(tta=tta, coarse_loss=coarse_loss, min_crack=min_crack, straight=straight,
                                 paint_like=paint_like, second_view=second_view, loss_agreement=loss_agreement,
                                 agreement_area=agreement_area, border=border, scale=scale, tile=tile)
    model, weights_info = _load_model(EvalOptions(weights=weights, tta=stage.tta, manifest=manifest))
    paths = paintings("val") if paths is None else paths
    if not paths:
        raise FileNotFoundError("no paintings to check (is ../shared/data present?)")
    images = [to_float(as_rgb(read_image(p))) for p in paths]

    def prob_fn(image: np.ndarray) -> np.ndarray:
        return stage.image_probabilities(model, image, threshold)

    report = thin_line_report(prob_fn, images, copies, crop, threshold=threshold, save_dir=save_dir)
    report.update({"weights": weights_info, **stage.inference_record(), "tile": stage.tile,
                   "paintings": [p.name for p in paths]})
    return report
