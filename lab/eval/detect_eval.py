"""`retouch evaluate detect`: score the shipped detector and the classical baseline against masks.

Images and masks pair by file stem. A mask is either a label mask (values 0/1/2: 1 craquelure, 2 paint
loss) or, for one class, a binary mask (nonzero = damage, or `mask_value` only, e.g. 255 in UAV75 where
204 marks a distractor). Scores are micro-averaged over all images: strict (exact pixels) and, with a
tolerance, crack-benchmark style (a pixel counts if the other map has one within `tolerance` px).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lab.eval.metrics import Counts, confusion
from lab.eval.regions import FarTally, region_shares, region_summary
from lab.eval.tone import DARK, SIGMA, add_counts, dark_paint, format_tones, tone_counts, tone_scores
from lab.pairs import IMAGE_SUFFIXES, MASK_SUFFIXES, pair_files  # noqa: F401  (re-exported)
from lab.synthesis.synthetic_damage import CLASS_NAMES
from pipeline.errors import InputError
from pipeline.io.image_io import read_image, read_mask, to_float, write_png
from pipeline.stages.detect import (
    DEFAULT_AGREEMENT_AREA,
    DEFAULT_BORDER,
    DEFAULT_COARSE_LOSS,
    DEFAULT_LOSS_AGREEMENT,
    DEFAULT_MIN_CRACK,
    DEFAULT_PAINT_LIKE,
    DEFAULT_SCALE,
    DEFAULT_SECOND_VIEW,
    DEFAULT_STRAIGHT,
    DEFAULT_TTA,
    DEFAULT_WEIGHTS,
)

if TYPE_CHECKING:
    from pipeline.stages.detect_infer import Views

BLOCK = 128  # px: the model's strict counts are also kept per block of this side (lab.eval.compare_detect)
REGION_CLASS = "paint_loss"  # scored region by region too (lab.eval.regions)
REGION_MIN_AREA = 9  # px: smaller true regions are not counted in the region summary (a 3 x 3 flake)
FAR_PX = 3.0  # px: flagged pixels farther than this from every true damage count as intact paint flagged


def block_counts(pred: np.ndarray, truth: np.ndarray, size: int) -> list[list[int]]:
    """[y, x, tp, fp, fn] of every size x size block (edge blocks smaller) of a prediction against truth."""
    rows = []
    for y in range(0, pred.shape[0], size):
        for x in range(0, pred.shape[1], size):
            p, t = pred[y : y + size, x : x + size], truth[y : y + size, x : x + size]
            rows.append([y, x, int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())])
    return rows


@dataclass(frozen=True)
class EvalOptions:
    """What to score and how."""

    classes: tuple[str, ...] = CLASS_NAMES
    tolerance: float = 2.0  # px; 0 = strict only
    weights: str = DEFAULT_WEIGHTS
    bf16: bool = False
    mask_value: int | None = None
    baseline: bool = True
    save_dir: Path | None = None
    tile: int = 512
    overlap: int = 64
    threshold: float = 0.5
    tta: int = DEFAULT_TTA  # flipped orientations averaged per tile (pipeline.stages.detect_infer.VIEWS), as detect
    second_view: str = DEFAULT_SECOND_VIEW  # the second of two views (detect_infer.SECOND_VIEWS), as detect
    loss_agreement: float = DEFAULT_LOSS_AGREEMENT  # paint loss where the views agree (detect_infer.Views), as detect
    agreement_area: int = DEFAULT_AGREEMENT_AREA  # loss regions under this many px keep the views' mean, as detect
    coarse_loss: bool = DEFAULT_COARSE_LOSS  # the coarse paint-loss pass, as detect
    min_crack: int = DEFAULT_MIN_CRACK  # craquelure fragments under this many px dropped, as detect
    straight: int = DEFAULT_STRAIGHT  # straight craquelure components of this many skeleton px dropped, as detect
    paint_like: int = DEFAULT_PAINT_LIKE  # paint loss this near the colour of the paint around it dropped, as detect
    border: int = DEFAULT_BORDER  # px along the image border judged with edge padding too, as detect
    scale: float = DEFAULT_SCALE  # the network sees the image resampled by this factor, as detect
    manifest: Path | None = None  # default: $RETOUCH_WEIGHTS_MANIFEST or models/weights/manifest.json
    split: str = "all"  # or "train"/"test" of a set split in code (CrackForest: lab.real_cracks)

    def __post_init__(self) -> None:
        unknown = [c for c in self.classes if c not in CLASS_NAMES]
        if unknown or not self.classes:
            raise ValueError(f"unknown class(es) {unknown}; choose from {', '.join(CLASS_NAMES)}")
        if self.tolerance < 0:
            raise ValueError(f"tolerance must be >= 0, got {self.tolerance}")
        if self.mask_value is not None and len(self.classes) != 1:
            raise ValueError("mask_value selects one class's pixels; give exactly one class with it")
        self.views()  # second_view, loss_agreement and agreement_area checked

    def views(self) -> Views:
        """The test-time augmentation: `tta`, `second_view`, `loss_agreement`, `agreement_area` (as
        DetectConfig.views)."""
        from pipeline.stages.detect_infer import Views

        return Views.of(self)


def truth_maps(mask: np.ndarray, opts: EvalOptions, path: Path) -> dict[str, np.ndarray]:
    """Per-class bool ground truth from one (H, W) mask."""
    if opts.mask_value is not None:
        return {opts.classes[0]: mask == opts.mask_value}
    values = set(np.unique(mask).tolist())
    if values <= {0, 1, 2} and (len(opts.classes) > 1 or 2 in values):
        return {c: mask == CLASS_NAMES.index(c) + 1 for c in opts.classes}
    if len(opts.classes) == 1:
        return {opts.classes[0]: mask != 0}
    raise InputError(path, f"mask values {sorted(values)[:8]} are not labels 0/1/2; for a binary mask "
                           "score one class (--classes craquelure)")


def read_pair(image_path: Path, mask_path: Path, opts: EvalOptions) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """An image as read and its per-class truth; a mask of another size is an error naming it."""
    image = read_image(image_path)
    mask = read_mask(mask_path)
    if mask.shape != image.shape[:2]:
        raise InputError(mask_path, f"mask is {mask.shape[1]}x{mask.shape[0]} but the image "
                                    f"{image_path.name} is {image.shape[1]}x{image.shape[0]}")
    return image, truth_maps(mask, opts, mask_path)


def _load_model(opts: EvalOptions) -> tuple[Any, dict[str, Any]]:
    import torch

    from models.weights import load_model
    from pipeline.stages.detect import default_manifest  # $RETOUCH_WEIGHTS_MANIFEST, as the stages use

    model, entry = load_model(opts.weights, manifest_path=opts.manifest or Path(default_manifest()))
    model = model.to(memory_format=torch.channels_last)
    return model, {"name": entry.name, "file": entry.file, "sha256": entry.sha256}


def evaluate_detect(images: Path, masks: Path, opts: EvalOptions | None = None) -> dict[str, Any]:
    """Strict (and tolerant) scores per class for the model and the baseline over all image pairs."""
    from lab.eval.baseline import BASELINE_PATH, baseline_predict, load_baseline
    from lab.real_cracks import split_pairs
    from pipeline.stages.detect_infer import detect_probabilities

    opts = opts or EvalOptions()
    pairs = split_pairs(pair_files(images, masks), images, opts.split)
    model, weights_info = _load_model(opts)
    base_params = load_baseline() if opts.baseline else None
    methods = ["model", "baseline"] if opts.baseline else ["model"]
    strict = {m: {c: Counts() for c in opts.classes} for m in methods}
    tolerant = {m: {c: Counts() for c in opts.classes} for m in methods}
    blocks: dict[str, list[list[int]]] = {c: [] for c in opts.classes}
    regions: list[dict[str, Any]] = []
    tones: dict[str, dict[str, list[int]]] = {c: {} for c in opts.classes}
    far = FarTally(FAR_PX)
    for index, (image_path, mask_path) in enumerate(pairs):
        image, truth = read_pair(image_path, mask_path, opts)
        dark = dark_paint(image)
        prob = detect_probabilities(model, to_float(image), tile=opts.tile, overlap=opts.overlap,
                                    bf16=opts.bf16, views=opts.views(), coarse_loss=opts.coarse_loss,
                                    min_crack=opts.min_crack, threshold=opts.threshold, border=opts.border,
                                    scale=opts.scale, straight=opts.straight, paint_like=opts.paint_like)
        preds = {"model": {c: prob[CLASS_NAMES.index(c)] > opts.threshold for c in opts.classes}}
        if base_params is not None:
            base = baseline_predict(image, base_params)
            preds["baseline"] = {c: base[CLASS_NAMES.index(c)] for c in opts.classes}
        for method in methods:
            for c in opts.classes:
                strict[method][c] += confusion(preds[method][c], truth[c])
                if opts.tolerance > 0:
                    tolerant[method][c] += confusion(preds[method][c], truth[c], opts.tolerance)
        for c in opts.classes:
            blocks[c] += [[index, *row] for row in block_counts(preds["model"][c], truth[c], BLOCK)]
            tones[c] = add_counts(tones[c], tone_counts(preds["model"][c], truth[c], dark))
        if REGION_CLASS in opts.classes:
            regions += [{"image": image_path.stem, **row}
                        for row in region_shares(preds["model"][REGION_CLASS], truth[REGION_CLASS])]
        far.add(image_path.stem, np.any([preds["model"][c] for c in opts.classes], axis=0),
                np.any([truth[c] for c in opts.classes], axis=0))
        if opts.save_dir is not None:
            for c in opts.classes:
                write_png(opts.save_dir / c / f"{image_path.stem}.png",
                          preds["model"][c].astype(np.uint8) * 255)
    report: dict[str, Any] = {m: {c: strict[m][c].scores() for c in opts.classes} for m in methods}
    if opts.tolerance > 0:
        report["tolerant"] = {"tolerance_px": opts.tolerance,
                              **{m: {c: tolerant[m][c].scores() for c in opts.classes} for m in methods}}
    report["images"] = len(pairs)
    report["blocks"] = {"size": BLOCK, "stems": [image.stem for image, _ in pairs], "counts": blocks}
    report["by_tone"] = {"dark_below": DARK, "sigma_px": SIGMA, **{c: tone_scores(tones[c]) for c in opts.classes}}
    if REGION_CLASS in opts.classes:
        report["regions"] = {REGION_CLASS: region_summary(regions, REGION_MIN_AREA)}
    report["far_from_damage"] = far.summary()
    if opts.split != "all":
        report["split"] = opts.split
    report["weights"] = weights_info
    report["bf16"] = opts.bf16
    report["tta"] = opts.tta
    if opts.second_view != DEFAULT_SECOND_VIEW or opts.loss_agreement:
        report["second_view"] = opts.second_view
        report["loss_agreement"] = opts.loss_agreement
        report["agreement_area"] = opts.agreement_area
    report["coarse_loss"] = opts.coarse_loss
    report["min_crack"] = opts.min_crack
    if opts.straight:
        report["straight"] = opts.straight
    if opts.paint_like:
        report["paint_like"] = opts.paint_like
    report["border"] = opts.border
    if opts.scale != DEFAULT_SCALE:
        report["scale"] = opts.scale
    report["threshold"] = opts.threshold
    if base_params is not None:
        report["baseline_params"] = str(BASELINE_PATH.name)
    return report


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of the figures."""
    lines = [f"{report['images']} image(s); weights {report['weights']['name']} "
             f"({report['weights']['sha256'][:12]}){' bf16' if report.get('bf16') else ''}"]
    header = f"{'method':<10} {'class':<11} {'scoring':<12} {'P':>6} {'R':>6} {'F1':>6} {'IoU':>6} {'acc':>7}"
    lines.append(header)
    sections = [("strict", report)]
    if "tolerant" in report:
        sections.append((f"tol {report['tolerant']['tolerance_px']:g}px", report["tolerant"]))
    for method in ("model", "baseline"):
        if method not in report:
            continue
        for c in report[method]:
            for name, section in sections:
                s = section[method][c]
                lines.append(f"{method:<10} {c:<11} {name:<12} {s['precision']:6.3f} {s['recall']:6.3f} "
                             f"{s['f1']:6.3f} {s['iou']:6.3f} {s['pixel_accuracy']:7.4f}")
    for c, scores in report.get("by_tone", {}).items():
        if c in CLASS_NAMES:
            lines.append(format_tones(c, scores))
    for c, r in report.get("regions", {}).items():
        if not r["regions"]:
            continue
        lines.append(f"model      {c} regions of {r['min_area']}+ px: {r['regions']}, under half detected "
                     f"{r['under_half']}, least detected {r['worst']:.2f}, median {r['median']:.2f}")
        lines += [f"  under half: {u['image']} y {u['box'][0]}-{u['box'][2]} x {u['box'][1]}-{u['box'][3]}, "
                  f"{u['area']} px, {u['share']:.2f} detected" for u in r["under_half_regions"][:10]]
    if "far_from_damage" in report:
        f = report["far_from_damage"]
        lines.append(f"model      flagged more than {f['distance_px']:g} px from any true damage: {f['flagged']} px "
                     f"({100 * f['share']:.3f} % of such pixels) in {f['marks']} marks")
        lines += [f"  mark: {m['image']} y {m['box'][0]}-{m['box'][2]} x {m['box'][1]}-{m['box'][3]}, {m['area']} px"
                  for m in f["largest"][:5]]
    return "\n".join(lines)


def enlarged(image: np.ndarray, factor: float, nearest: bool = False) -> np.ndarray:
    """`image` (H, W[, C], uint8 or uint16) at `factor` times its size: bicubic, rounded and clipped to its dtype's
    range, or nearest-neighbour (label maps)."""
    import cv2

    h, w = image.shape[:2]
    size = (round(w * factor), round(h * factor))
    if nearest:
        return cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)
    top = np.iinfo(image.dtype).max
    return np.clip(np.rint(cv2.resize(image.astype(np.float32), size, interpolation=cv2.INTER_CUBIC)), 0,
                   top).astype(image.dtype)


def make_synthetic_set(
    out: Path, split: str = "val", copies: int = 3, seed: int = 1_000_000_007, style: str = "classic",
    enlarge: float = 1.0,
) -> list[Path]:
    """Damage each painting of `split` `copies` times; write images/<stem>_<k>.png, masks/<stem>_<k>.png.

    `style` is the damage generator (DamageConfig.style): "classic", the one the recorded held-out sets used,
    or "realistic". `enlarge` K > 1 writes the damaged paintings as a scan at K times the resolution would show
    them (bicubic, the labels nearest-neighbour): the same damage, K times as many pixels across every crack.
    """
    if not 1.0 <= enlarge <= 8.0:
        raise ValueError(f"enlarge must be in [1, 8], got {enlarge}")
    from lab.paintings import paintings
    from lab.synthesis.synthetic_damage import DamageConfig, synthesize_damage

    damage = DamageConfig(style=style)

    written = []
    sources = paintings(split)
    if not sources:
        raise FileNotFoundError(f"no {split} paintings found (is ../shared/data present?)")
    for i, path in enumerate(sources):
        image = read_image(path)
        for k in range(copies):
            damaged, labels = synthesize_damage(image, seed + i * 1000 + k, damage)
            if enlarge != 1.0:
                damaged, labels = enlarged(damaged, enlarge), enlarged(labels, enlarge, nearest=True)
            name = f"{path.stem}_{k}.png"
            write_png(out / "images" / name, damaged)
            write_png(out / "masks" / name, labels)
            written.append(out / "images" / name)
    return written
