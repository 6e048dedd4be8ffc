"""`retouch evaluate adapt`: what ten strokes of a conservator buy, before and after adapting the detector.

A simulated conservator draws 10 short strokes per image from the true masks (seeded): 6 along the true
damage (on the skeleton of each damaged region, so inside a loss and along a crack; 3 px wide, clipped to the
damage) and 4 on clean paint (at least 12 px from any damage); blindly, or informed by the base's detections
(the clean strokes first on its false alarms, the damage strokes first on what it missed). The base detector
and the detector adapted on those strokes (pipeline.stages.adapt_fit, as `retouch adapt` fits it) are scored
only on pixels more than 8 px from any stroke: recall, precision, strict F1 and the share of undamaged pixels
flagged (all of them, and those more than `lab.eval.residual.INTACT_MARGIN` px from any damage: intact paint beyond
a damage's rim), per image and averaged over the images where each is defined (recall over the images whose scored
pixels hold damage, precision over those where the detector flags some), and pooled over all pixels.

Sets:
- held out: realistic-generator paint loss exposing lime plaster (lab.synthesis.realistic with the ground fixed
  to plaster, no old fills, no craquelure) on seeded crops of the VALIDATION paintings, scored on the
  paint-loss channel: a style held out of one base's training alone (`--base detector-resunet18-noplaster`,
  trained with `--grounds gesso,bole,canvas`); every detector since `detector-resunet18-paint2` was fine-tuned
  with this generator, plaster included, on other paintings;
- real crack photos (DeepCrack test, CrackForest test split, UAV75 test), scored on the craquelure channel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from lab.eval.metrics import Counts, confusion
from lab.eval.residual import INTACT_MARGIN
from pipeline.stages.adapt import AdaptConfig, build_for, fit_adapted

if TYPE_CHECKING:
    from pipeline.stages.detect_infer import Views

FAR_PX = 8  # scored pixels are farther than this from every stroke
CLEAN_LABEL = 3
DEFAULT_SEED = 22_000_000


@dataclass(frozen=True)
class StrokePlan:
    """How the simulated conservator marks an image."""

    damage: int = 6
    clean: int = 4
    length: tuple[int, int] = (10, 30)
    width: int = 3
    clean_margin: int = 12  # a clean stroke starts at least this far from any damage, px
    near_clean: int = 2  # of the clean strokes, how many start near the damage (within `near` px), as a
    near: int = 40  # conservator marks the intact paint beside a loss; the others anywhere on clean paint
    informed: bool = False  # marks after looking at the base's detections: clean strokes on its false alarms,
    min_area: int = 20  # damage strokes on what it missed (regions of at least `min_area` px); else as above
    rounds: int = 1  # informed only: the strokes are drawn in this many rounds, each after the detections of
    # the detector adapted on the rounds before (its false alarms and misses), adapt refitting on all of them

    def __post_init__(self) -> None:
        if self.rounds not in (1, 2, 3) or (self.rounds > 1 and not self.informed):
            raise ValueError(f"rounds must be 1, or 2 or 3 with informed strokes, got {self.rounds}")

    @property
    def name(self) -> str:
        return ("informed" if self.informed else "blind") + (f", {self.rounds} rounds" if self.rounds > 1 else "")

    def parts(self) -> list[StrokePlan]:
        """One plan per round, the strokes shared out as evenly as they go (later rounds get the remainder)."""
        def share(total: int, k: int) -> int:
            return total // self.rounds + (1 if k >= self.rounds - total % self.rounds else 0)

        return [dataclasses.replace(self, damage=share(self.damage, k), clean=share(self.clean, k),
                                    near_clean=share(self.near_clean, k), rounds=1) for k in range(self.rounds)]


def _walk(skeleton: np.ndarray, start: tuple[int, int], length: int) -> list[tuple[int, int]]:
    """Up to `length` pixels of a path along the 8-connected skeleton from `start` (depth first)."""
    h, w = skeleton.shape
    path, seen, y, x = [start], {start}, *start
    while len(path) < length:
        step = next(((y + dy, x + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                     if (dy or dx) and 0 <= y + dy < h and 0 <= x + dx < w and skeleton[y + dy, x + dx]
                     and (y + dy, x + dx) not in seen), None)
        if step is None:
            break
        seen.add(step)
        path.append(step)
        y, x = step
    return path


def _regions(mask: np.ndarray, min_area: int, most: int) -> list[np.ndarray]:
    """Up to `most` 8-connected regions of the bool `mask` of at least `min_area` px, as bool masks, largest
    first (equal areas in scan order)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    order = [int(i) + 1 for i in np.argsort(-areas, kind="stable") if areas[i] >= min_area]
    return [labels == i for i in order[:most]]


def _skeleton_stroke(region: np.ndarray, rng: np.random.Generator, plan: StrokePlan) -> np.ndarray | None:
    """A bool stroke `plan.width` px wide along the skeleton of the bool `region`, from a random skeleton pixel,
    `plan.length` px long at most; None when the region has no skeleton."""
    skeleton = cv2.ximgproc.thinning(region.astype(np.uint8) * 255) > 0
    ys, xs = np.nonzero(skeleton)
    if ys.size == 0:
        return None
    k = int(rng.integers(ys.size))
    line = np.zeros(region.shape, np.uint8)
    for y, x in _walk(skeleton, (int(ys[k]), int(xs[k])), int(rng.integers(*plan.length, endpoint=True))):
        line[y, x] = 1
    return cv2.dilate(line, np.ones((plan.width, plan.width), np.uint8)) > 0


def _axis_stroke(region: np.ndarray, rng: np.random.Generator, plan: StrokePlan) -> np.ndarray:
    """A bool straight stroke `plan.width` px wide and `plan.length` px long, centred on a random pixel of the
    bool `region`'s core (at least half its greatest depth inside it), along the main axis of the region's
    pixels within half that length of the centre (along a thin region, across a blob the long way)."""
    depth = cv2.distanceTransform(np.pad(region, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    cy, cx = np.nonzero(depth >= depth.max() / 2)
    ys, xs = np.nonzero(region)
    c, length = int(rng.integers(cy.size)), int(rng.integers(*plan.length, endpoint=True))
    near = (ys - cy[c]) ** 2 + (xs - cx[c]) ** 2 <= (length / 2) ** 2
    dy, dx = 0.0, 1.0
    if near.sum() > 1:
        _, vectors = np.linalg.eigh(np.cov(np.stack([ys[near], xs[near]]).astype(np.float64)))
        dy, dx = vectors[:, -1]
    ends = [(int(round(cx[c] + t * dx)), int(round(cy[c] + t * dy))) for t in (-length / 2, length / 2)]
    return cv2.line(np.zeros(region.shape, np.uint8), ends[0], ends[1], 1, plan.width) > 0


def simulate_strokes(truth: np.ndarray, rng: np.random.Generator, plan: StrokePlan = StrokePlan(),
                     flagged: np.ndarray | None = None) -> np.ndarray:
    """(H, W) uint8 scribbles from an (H, W) label truth (0 none, 1 craquelure, 2 paint loss): `plan.damage`
    strokes shared between the damage classes present (along the skeleton of the class's damage, clipped to
    it), `plan.clean` on clean paint (straight, at least `plan.clean_margin` px from any damage at the start).

    With `plan.informed`, `flagged` (K, H, W) bool holds the base's detections per class channel: the damage
    strokes of a class go first on the regions of that class the base missed, the clean strokes first on the
    base's false alarms of the classes present (flagged, undamaged and more than `plan.clean_margin` px from any
    damage), one straight stroke per region of at least `plan.min_area` px, largest first, along the region
    where it is centred (clipped like the blind strokes); the strokes left over follow the blind rules."""
    if plan.informed and flagged is None:
        raise ValueError("an informed stroke plan needs the base's detections (flagged)")
    h, w = truth.shape
    marks = np.zeros((h, w), np.uint8)
    classes = [c for c in (1, 2) if (truth == c).any()]
    missed = {c: _regions((truth == c) & ~flagged[c - 1], plan.min_area, plan.damage)
              if plan.informed and flagged is not None else [] for c in classes}
    for i in range(plan.damage if classes else 0):
        value = classes[i % len(classes)]
        region = truth == value
        if missed[value]:
            stroke = _axis_stroke(missed[value].pop(0), rng, plan)
        else:
            stroke = _skeleton_stroke(region, rng, plan)
        if stroke is not None:
            marks[stroke & region] = value
    room = cv2.distanceTransform((truth == 0).astype(np.uint8), cv2.DIST_L2, 5)
    alarms = []
    if plan.informed and flagged is not None and classes:
        wrong = flagged[[c - 1 for c in classes]].any(axis=0) & (room > plan.clean_margin)
        alarms = _regions(wrong, plan.min_area, plan.clean)
    anywhere = np.nonzero(room > plan.clean_margin)
    beside = np.nonzero((room > plan.clean_margin) & (room <= plan.near))
    blind = 0
    for _ in range(plan.clean if anywhere[0].size else 0):
        if alarms:
            marks[_axis_stroke(alarms.pop(0), rng, plan) & (room > plan.width) & (marks == 0)] = CLEAN_LABEL
            continue
        ys, xs = beside if blind < plan.near_clean and beside[0].size else anywhere
        blind += 1
        k = int(rng.integers(ys.size))
        angle, length = rng.uniform(0, np.pi), int(rng.integers(*plan.length, endpoint=True))
        end = (int(xs[k] + length * np.cos(angle)), int(ys[k] + length * np.sin(angle)))
        line = cv2.line(np.zeros((h, w), np.uint8), (int(xs[k]), int(ys[k])), end, 1, plan.width)
        marks[(line > 0) & (room > plan.width) & (marks == 0)] = CLEAN_LABEL
    return marks


def far_from_strokes(marks: np.ndarray, distance: int = FAR_PX) -> np.ndarray:
    return cv2.distanceTransform((marks == 0).astype(np.uint8), cv2.DIST_L2, 5) > distance


def _points(marks: np.ndarray) -> dict[int, np.ndarray]:
    return {v: np.argwhere(marks == v).astype(np.int64) for v in (1, 2, 3)}


def adapted_probabilities(image: np.ndarray, marks: np.ndarray, config: AdaptConfig, tile: int = 512,
                          tta: int | Views = 2, base: np.ndarray | None = None, build: Callable[..., Any] = build_for,
                          fit_with: Callable[..., dict[str, Any]] = fit_adapted, coarse_loss: bool = False,
                          straight: int = 0,
                          ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(base, adapted) (2, H, W) probabilities for an (H, W, C) image and its scribbles, and the fit's report
    (with "veto_fired": whether the clean strokes covered enough base detections to fit the veto); `base`, the
    base's probabilities when already computed. `build` and `fit_with` make and fit the adapted network (adapt's
    own by default; lab.eval.adapt_tune's fine-tune is the other); `coarse_loss` and `straight` as `predicted`."""
    import torch

    adapted = [c - 1 for c in (1, 2) if (marks == c).any()]
    model = build(config, adapted)
    torch.manual_seed(config.seed)
    scan = np.ascontiguousarray(np.moveaxis(image, -1, 0))  # (C, H, W)
    fit = fit_with(model, scan, _points(marks), config)
    fit.pop("samples")
    fit["veto_fired"] = bool(model.veto is not None and model.veto_on.any())
    if base is None:
        base = predicted(model.base, image, config.scale, tile, tta, coarse_loss, straight)
    after = predicted(model, image, config.scale, tile, tta, coarse_loss, straight)
    return base, after, fit


def predicted(model: Any, image: np.ndarray, scale: float = 1.0, tile: int = 512, tta: int | Views = 2,
              coarse_loss: bool = False, straight: int = 0) -> np.ndarray:
    """(2, H, W) probabilities of `model` on an (H, W, C) image seen at `scale`, as the detect stage sees it, with
    its coarse paint-loss pass when `coarse_loss` (the stage's default, `DEFAULT_COARSE_LOSS`), and its long straight
    craquelure dropped from `straight` px (0: kept; the stage's default is `DEFAULT_STRAIGHT`)."""
    from pipeline.stages.detect_infer import detect_probabilities

    return detect_probabilities(model, image, tile=tile, overlap=64, views=tta, scale=scale, coarse_loss=coarse_loss,
                                straight=straight)


def score(prob: np.ndarray, truth: np.ndarray, channel: int, far: np.ndarray) -> dict[str, Any]:
    """Strict scores of one channel on the far pixels, and the share of far undamaged pixels flagged (any
    class), all of them ("flagged_undamaged") and those more than INTACT_MARGIN px from any damage
    ("flagged_intact": beyond a damage's anti-aliased rim, where a flag is intact paint the restore stage paints
    over), with the raw counts."""
    pred = prob[channel] >= 0.5
    counts = confusion(pred[far], (truth == channel + 1)[far])
    clean = far & (truth == 0)
    intact = clean & (cv2.distanceTransform((truth == 0).astype(np.uint8), cv2.DIST_L2, 5) > INTACT_MARGIN)
    flagged = (prob >= 0.5).any(axis=0)
    return {**counts.scores(), "counts": asdict(counts),
            "flagged_undamaged": float((flagged & clean).sum() / max(clean.sum(), 1)),
            "flagged_intact": float((flagged & intact).sum() / max(intact.sum(), 1))}


def defined(row: dict[str, Any], key: str) -> bool:
    """Whether an image's score is defined: recall where the scored pixels hold true damage, precision where
    the detector flags some, F1 where either; the flagged share always."""
    c = row["counts"]
    true, pred = c["tp_true"] + c["fn"], c["tp_pred"] + c["fp"]
    return {"recall": true > 0, "precision": pred > 0, "f1": true + pred > 0}.get(key, True)


def mean_scores(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Each score averaged over the images where it is defined (`defined`), NaN where it is nowhere."""
    keys = ("recall", "precision", "f1", "flagged_undamaged", "flagged_intact")
    return {k: float(np.mean(v)) if (v := [r[k] for r in rows if defined(r, k)]) else float("nan") for k in keys}


def evaluate_cases(cases: Iterator[tuple[str, np.ndarray, np.ndarray]], channel: int, config: AdaptConfig,
                   plan: StrokePlan, seed: int, tta: int | Views = 2, reference: bool = True, coarse_loss: bool = False,
                   straight: int = 0,
                   **fitting: Callable[..., Any]) -> dict[str, Any]:
    """Before/after scores per image (name, (H, W, C) image, (H, W) label truth), averaged and pooled; with
    `reference`, when adapt's base is not the default detector, the default detector's scores too ("default":
    what `detect` showed before the painting was adapted). An informed `plan` draws the strokes after the
    base's detections (probability >= 0.5); with `plan.rounds` > 1, a share of them, and each further share
    after the detections of the detector adapted on the strokes so far; then each round's adapted detections are
    scored too (per image "after_round", the last being "after"; their means "mean_after_round"), on the pixels far
    from all the strokes. Per image, the clean-stroke pixels on the base's detections of the scored class
    ("clean_on_flagged") and whether the veto was fitted; "veto_fired" counts the images. Every detector scored runs
    with the coarse paint-loss pass when `coarse_loss`, as detect and adapt run by default. `fitting` (build,
    fit_with) goes to `adapted_probabilities`."""
    from models.weights import load_model
    from pipeline.stages.detect import DEFAULT_WEIGHTS

    scored_too = reference and config.base != DEFAULT_WEIGHTS
    default = load_model(DEFAULT_WEIGHTS, Path(config.manifest))[0] if scored_too else None
    base_model = load_model(config.base, Path(config.manifest))[0] if plan.informed else None
    whens = ("default", "before", "after") if default is not None else ("before", "after")
    rows, pooled = [], {when: Counts() for when in whens}
    for i, (name, image, truth) in enumerate(cases):
        seen = None if base_model is None else predicted(base_model, image, config.scale, tta=tta,
                                                         coarse_loss=coarse_loss, straight=straight)
        rng = np.random.default_rng(seed + i)
        first, *later = plan.parts()
        marks = simulate_strokes(truth, rng, first, None if seen is None else seen >= 0.5)
        middles = []  # the adapted detections after each round but the last
        for part in later:
            if not (marks == channel + 1).any() or not (marks == CLEAN_LABEL).any():
                break
            _, middle, _ = adapted_probabilities(image, marks, config, tta=tta, base=seen, coarse_loss=coarse_loss,
                                                 straight=straight, **fitting)
            middles.append(middle)
            marks = np.where(marks > 0, marks, simulate_strokes(truth, rng, part, middle >= 0.5))
        if not (marks == channel + 1).any() or not (marks == CLEAN_LABEL).any():
            rows.append({"image": name, "skipped": "no stroke of the class or no clean room"})
            continue
        base, after, fit = adapted_probabilities(image, marks, config, tta=tta, base=seen, coarse_loss=coarse_loss,
                                                 straight=straight, **fitting)
        far = far_from_strokes(marks)
        row = {"image": name, "labelled": {int(v): int((marks == v).sum()) for v in (1, 2, 3)},
               "clean_on_flagged": int(((marks == CLEAN_LABEL) & (base[channel] >= 0.5)).sum()),
               "before": score(base, truth, channel, far), "after": score(after, truth, channel, far), "fit": fit}
        if plan.rounds > 1:  # scored on the last round's far pixels, so that the rounds compare
            row["after_round"] = [*(score(m, truth, channel, far) for m in middles), row["after"]]
        if default is not None:
            reference = predicted(default, image, config.scale, tta=tta, coarse_loss=coarse_loss, straight=straight)
            row["default"] = score(reference, truth, channel, far)
        for when in whens:
            pooled[when] += Counts(**row[when]["counts"])
        rows.append(row)
    scored = [r for r in rows if "skipped" not in r]
    mean = {when: mean_scores([r[when] for r in scored]) for when in whens}
    report = {"images": rows, "scored": len(scored), "mean": mean, "strokes": plan.name,
              "veto_fired": sum(r["fit"]["veto_fired"] for r in scored),
              "pooled": {when: c.scores() for when, c in pooled.items()}}
    if plan.rounds > 1:  # the mean after each round; an image whose strokes ran out early keeps its last map
        report["mean_after_round"] = [mean_scores([r["after_round"][min(k, len(r["after_round"]) - 1)]
                                                   for r in scored]) for k in range(plan.rounds)]
    return report


def enlarged_cases(cases: Iterator[tuple[str, np.ndarray, np.ndarray]], factor: float,
                   ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """`cases` as a scan at `factor` times the resolution shows them (images bicubic, labels nearest); the
    cases themselves when `factor` is 1."""
    from lab.eval.detect_eval import enlarged

    for name, image, truth in cases:
        yield (name, image, truth) if factor == 1 else (name, enlarged(image, factor), enlarged(truth, factor, True))


def held_out_cases(copies: int, crop: int, seed: int) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Seeded crops of the VAL paintings with realistic paint loss on lime plaster (labels 0/2)."""
    from lab.detector_data import load_paintings
    from lab.paintings import paintings
    from lab.synthesis.realistic import realistic_damage
    from lab.synthesis.synthetic_damage import DamageConfig

    files = paintings("val")
    images = load_paintings(files)
    if not images:
        raise FileNotFoundError("no VAL paintings found (is ../shared/data present?)")
    cfg = DamageConfig(style="realistic", p_craquelure=0.0, p_paint_loss=1.0, p_fills=0.0)
    rng = np.random.default_rng(seed)
    for path, image in zip(files, images, strict=True):
        for copy in range(copies):
            h, w = image.shape[:2]
            y0, x0 = int(rng.integers(0, max(h - crop, 0) + 1)), int(rng.integers(0, max(w - crop, 0) + 1))
            clean = np.ascontiguousarray(image[y0 : y0 + crop, x0 : x0 + crop])
            damage = realistic_damage(clean, seed + 1000 * copy + len(path.name), cfg, ground="plaster")
            yield f"{path.stem[:40]}#{copy}", damage.damaged, np.where(damage.labels > 0, 2, 0).astype(np.uint8)


REAL_SETS = {  # name: (images, masks, crack mask value or None = any nonzero, split)
    "deepcrack": ("deepcrack/test/images", "deepcrack/test/masks", 255, "all"),
    "crackforest": ("crackforest_cfd/images", "crackforest_cfd/masks", None, "test"),
    "uav75": ("uav75/test/images", "uav75/test/labels", 255, "all"),
}


def real_cases(name: str, root: Path, limit: int,
               sets: dict[str, tuple[str, str, int | None, str]] = REAL_SETS,
               ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Up to `limit` pairs of a real crack set of `sets` (default: the test sets), evenly spread over its sorted
    pairs (labels 0/1)."""
    from lab.pairs import pair_files
    from lab.real_cracks import split_pairs
    from pipeline.io.image_io import as_rgb, read_image, read_mask

    images, masks, value, split = sets[name]
    pairs = split_pairs(pair_files(root / images, root / masks), root / images, split)
    if limit and len(pairs) > limit:
        pairs = [pairs[int(i)] for i in np.linspace(0, len(pairs) - 1, limit)]
    for image_path, mask_path in pairs:
        mask = read_mask(mask_path)
        crack = mask == value if value is not None else mask > 0
        yield image_path.stem, as_rgb(read_image(image_path)), crack.astype(np.uint8)


def format_adapt(report: dict[str, Any]) -> str:
    lines = []
    for name, result in report["sets"].items():
        m = result["mean"]
        lines.append(f"{name}: {result['scored']} image(s), {result['strokes']} strokes, mean over images "
                     f"(pixels > {FAR_PX} px from strokes); veto fitted on {result['veto_fired']}")
        for when in [w for w in ("default", "before", "after") if w in m]:
            s = m[when]
            lines.append(f"  {when:7}  recall {s['recall']:.3f}  precision {s['precision']:.3f}  F1 {s['f1']:.3f}"
                         f"  undamaged flagged {100 * s['flagged_undamaged']:.3f} % (beyond {INTACT_MARGIN} px of "
                         f"damage {100 * s['flagged_intact']:.3f} %)")
        if "mean_after_round" in result:
            lines.append("  F1 after each round: " + ", ".join(f"{r['f1']:.3f}" for r in result["mean_after_round"]))
    return "\n".join(lines)
