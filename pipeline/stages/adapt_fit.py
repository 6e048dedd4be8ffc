"""Fitting an adapted detector's head on scribbles: features at the labelled pixels, then a class-balanced fit.

Only the `cell`-px squares of the scan that hold labelled pixels go through the frozen base network (each with
`context` px of its neighbours, reflected at the image border), one at a time, so the cost follows the strokes,
not the scan, and memory is one tile. Each square gives the head's input features at its labelled pixels.
Per adapted damage class, its strokes are the positives and the clean strokes the negatives, each side
weighted to half the loss (class-balanced binary cross-entropy); the other damage class's strokes are left out
(a pixel may be both). The veto head, per adapted class, learns the base's detections under the clean strokes
against the class's strokes and the base's other detections; with `joined` > 0 also against the base's detections
that a stroke of the class touches (a crack the conservator marked part of is damage along its whole found length).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from models.adapted import AdaptedDetector

UNLABELLED, CLEAN = 0, 3
JOINED = 4  # + class channel: a base detection joined to a stroke of that class (the veto's negatives only)
TOUCH_PX = 2  # a stroke touches a base detection within this many px


@dataclass(frozen=True)
class PixelSamples:
    """Head inputs (n, F) float32 at labelled pixels, their labels (n,) uint8 and the base's probability
    (n, K) float32 (what the base said about the strokes; which unlabelled samples it flags, for the veto's weak
    negatives and the head's `background_below`)."""

    features: np.ndarray
    labels: np.ndarray
    base_prob: np.ndarray


def cells_with_points(points: np.ndarray, cell: int) -> dict[tuple[int, int], np.ndarray]:
    """Labelled (y, x) points grouped by the `cell`-px square holding them."""
    keys = points // cell
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    keys, points = keys[order], points[order]
    out: dict[tuple[int, int], np.ndarray] = {}
    if len(points) == 0:
        return out
    breaks = np.flatnonzero(np.any(np.diff(keys, axis=0) != 0, axis=1)) + 1
    for group in np.split(np.arange(len(points)), breaks):
        out[(int(keys[group[0], 0]), int(keys[group[0], 1]))] = points[group]
    return out


def square_side(cell: int, context: int) -> int:
    """The side of a `cell`-px square read with `context` px around it; refused unless the network takes it."""
    from pipeline.stages.detect_infer import MULTIPLE_OF

    if (cell + 2 * context) % MULTIPLE_OF:
        raise ValueError(f"cell + 2 * context must be a multiple of {MULTIPLE_OF}, got {cell + 2 * context}")
    return cell + 2 * context


def source_side(side: int, scale: float) -> int:
    """The scan pixels that `side` network pixels cover at `scale` (the network sees the scan resampled by it)."""
    return side if scale == 1.0 else max(1, round(side / scale))


def square_input(scan: Any, cy: int, cx: int, cell: int, context: int, device: Any,
                 scale: float = 1.0) -> torch.Tensor:
    """The network input (1, 3, T, T) of square (cy, cx) of `scan` (C, H, W) with `context` px around it
    (reflected at the image border, padded by edge values to the full side at the far edges). At another
    `scale` the square and its context are `source_side` scan pixels, resampled to T as detect resamples a chunk
    (pipeline.stages.detect_infer.scaled_input)."""
    from pipeline.engine.tiling import read_with_halo
    from pipeline.stages.detect_infer import as_rgb_float, resampled_rgb

    _, height, width = scan.shape
    side = cell + 2 * context
    src_cell, src_context = source_side(cell, scale), source_side(context, scale)
    src_side = src_cell + 2 * src_context
    y0, x0 = cy * src_cell, cx * src_cell
    block = read_with_halo(scan, (y0, min(y0 + src_cell, height), x0, min(x0 + src_cell, width)), src_context)
    block = np.pad(block, ((0, 0), (0, src_side - block.shape[1]), (0, src_side - block.shape[2])), mode="edge")
    image = as_rgb_float(np.moveaxis(block, 0, -1))  # (S, S, 3)
    if src_side != side:
        image = resampled_rgb(image, (side, side))
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))[None]).to(device)


def square_points(points: np.ndarray, cy: int, cx: int, cell: int, context: int, scale: float = 1.0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns in square (cy, cx)'s network input (`square_input`) of scan points (n, 2) (y, x) inside
    its cell: at another scale the network pixel whose area holds the scan pixel's centre."""
    src_cell, src_context = source_side(cell, scale), source_side(context, scale)
    local = points - np.array([cy * src_cell, cx * src_cell]) + src_context
    if scale == 1.0:
        return local[:, 0], local[:, 1]
    side = cell + 2 * context
    at = np.clip(np.floor((local + 0.5) * side / (src_cell + 2 * src_context)).astype(np.int64), 0, side - 1)
    return at[:, 0], at[:, 1]


def joined_pixels(flagged: np.ndarray, stroke: np.ndarray, cell: slice, most: int, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of up to `most` random pixels, inside the `cell` rows and columns of a square, of the
    8-connected regions of `flagged` (T, T) that the `stroke` (T, T) pixels touch (within TOUCH_PX), strokes left
    out."""
    import cv2
    from scipy import ndimage

    near = cv2.dilate(stroke.astype(np.uint8), np.ones((2 * TOUCH_PX + 1,) * 2, np.uint8)) > 0
    regions, _ = ndimage.label(flagged, structure=np.ones((3, 3), bool))
    touched = np.unique(regions[near & flagged])
    members = np.isin(regions, touched[touched > 0]) & ~stroke
    inside = np.zeros_like(members)
    inside[cell, cell] = True
    ys, xs = np.nonzero(members & inside)
    if len(ys) > most:
        keep = rng.choice(len(ys), most, replace=False)
        ys, xs = ys[keep], xs[keep]
    return ys, xs


@torch.inference_mode()
def collect_features(model: AdaptedDetector, scan: Any, points: dict[int, np.ndarray], cell: int = 256,
                     context: int = 64, scale: float = 1.0, joined: Sequence[int] = (), seed: int = 0
                     ) -> PixelSamples:
    """The head's inputs at every point of `points` (label value -> (n, 2) (y, x)), cell by cell, from `scan`
    (C, H, W): a Zarr array or an array in memory; at another `scale`, from the network's view of the scan
    resampled by it (a cell is then `source_side(cell, scale)` scan pixels). With `joined` (one count per adapted
    class; empty: none), per cell and adapted class, up to that many of the base's detections of the class that its
    strokes in the cell touch, labelled JOINED + the class channel (`joined_pixels`; drawn with `seed`)."""
    square_side(cell, context)
    labelled = np.concatenate([p for p in points.values()])
    values = np.concatenate([np.full(len(p), c, np.uint8) for c, p in points.items()])
    index = {tuple(p): v for p, v in zip(map(tuple, labelled), values, strict=True)}
    feats, labels, probs = [], [], []
    device = next(model.parameters()).device
    rng = np.random.default_rng(seed)
    joining = [(c, most) for c, most in zip(model.adapted, joined, strict=True) if most] if joined else []
    for (cy, cx), cell_points in cells_with_points(labelled, source_side(cell, scale)).items():
        square = square_input(scan, cy, cx, cell, context, device, scale)
        logits, z = model.pixel_features(square)  # (1, K/F, T, T)
        ys, xs = square_points(cell_points, cy, cx, cell, context, scale)
        kinds = np.array([index[(int(y), int(x))] for y, x in cell_points], np.uint8)
        if joining:
            inside = slice(context, context + cell)
            extra = [_joined_here(logits[0, c], ys[kinds == c + 1], xs[kinds == c + 1], inside, most, rng)
                     for c, most in joining]
            ys = np.concatenate([ys, *(e[0] for e in extra)])
            xs = np.concatenate([xs, *(e[1] for e in extra)])
            kinds = np.concatenate([kinds, *(np.full(len(e[0]), JOINED + c, np.uint8)
                                             for e, (c, _) in zip(extra, joining, strict=True))])
        feats.append(z[0][:, ys, xs].T.float().cpu().numpy())  # (n, F)
        probs.append(torch.sigmoid(logits[0][:, ys, xs].T.float()).cpu().numpy())  # (n, K)
        labels.append(kinds)
    return PixelSamples(np.concatenate(feats), np.concatenate(labels), np.concatenate(probs))


def _joined_here(logit: torch.Tensor, ys: np.ndarray, xs: np.ndarray, cell: slice, most: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`joined_pixels` of one class in one square from its base logit (T, T) and its stroke pixels there."""
    if not len(ys):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    stroke = np.zeros(tuple(logit.shape), bool)
    stroke[ys, xs] = True
    return joined_pixels(logit.float().cpu().numpy() > 0, stroke, cell, most, rng)


def strokes_and_background(samples: PixelSamples) -> PixelSamples:
    """The samples without the veto's JOINED ones."""
    keep = samples.labels <= CLEAN
    if keep.all():
        return samples
    return PixelSamples(samples.features[keep], samples.labels[keep], samples.base_prob[keep])


def background_points(shape: tuple[int, int], marks: dict[int, np.ndarray], cells: int, per_cell: int, cell: int,
                      rng: np.random.Generator) -> np.ndarray:
    """(n, 2) (y, x) unlabelled pixels: `per_cell` random pixels in each of `cells` random `cell`-px squares of
    the scan (labelled pixels left out)."""
    height, width = shape
    labelled = {tuple(p) for pts in marks.values() for p in pts.tolist()}
    out = []
    for _ in range(cells):
        y0, x0 = int(rng.integers(0, max(height - cell, 0) + 1)), int(rng.integers(0, max(width - cell, 0) + 1))
        ys = rng.integers(y0, min(y0 + cell, height), per_cell)
        xs = rng.integers(x0, min(x0 + cell, width), per_cell)
        out += [(int(y), int(x)) for y, x in zip(ys, xs, strict=True) if (int(y), int(x)) not in labelled]
    return np.unique(np.array(out, np.int64).reshape(-1, 2), axis=0)


def fit_head(model: AdaptedDetector, samples: PixelSamples, steps: int = 300, lr: float = 1e-2,
             weight_decay: float = 1e-3, seed: int = 0, background: float = 0.0,
             background_below: float = 1.0, relabel: float = 0.0) -> dict[str, float]:
    """Fit `model.head` on the samples (label of class channel k is k + 1; clean = 3; unlabelled = 0); the final
    training loss and the training accuracy per adapted class.

    Per class the positives weigh half the loss and the negatives the other half: the clean strokes, and with
    `background` > 0 the unlabelled samples at that share of the negatives' half (most of a painting is intact
    paint, so an unlabelled pixel is clean unless the strokes say otherwise), of them only those the base gives
    less than `background_below` of the class (an unlabelled pixel the base flags is as likely damage; 1: all).

    With `relabel` > 0 the head is fitted twice: the second fit leaves out of a class's weak negatives the
    unlabelled samples that the first fit gives that class at least `relabel` and the base less than 0.5 (damage the
    base missed and the strokes taught the head, which the first fit was also told is clean paint); the samples the
    base flags stay, as they teach the head that the base's specks on intact paint are clean. Their count per class
    is reported ("relabelled_K"). The veto's JOINED samples are left out (of the standardisation too)."""
    samples = strokes_and_background(samples)
    labels = torch.from_numpy(samples.labels.astype(np.int64))
    targets, backgrounds = [], []
    for channel in model.adapted:
        pos, neg, bg = labels == channel + 1, labels == CLEAN, labels == UNLABELLED
        if background_below < 1.0:
            bg = bg & torch.from_numpy(samples.base_prob[:, channel] < background_below)
        if not pos.any() or not neg.any():
            raise ValueError(f"class {channel + 1} needs positive and clean samples to adapt")
        targets.append(pos.float())
        backgrounds.append(bg)
    target = torch.stack(targets, dim=1)  # (n, A)
    weight = _class_weights(target, labels, backgrounds, background)
    hit, loss = _fit(model.head, samples.features, target, weight, steps, lr, weight_decay, seed)
    report = {"loss": loss}
    if relabel and background:
        sure = _probabilities(model.head, samples.features) >= relabel  # (n, A)
        missed = torch.from_numpy(samples.base_prob[:, model.adapted] < 0.5)  # (n, A)
        dropped = [bg & sure[:, i] & missed[:, i] for i, bg in enumerate(backgrounds)]
        backgrounds = [bg & ~drop for bg, drop in zip(backgrounds, dropped, strict=True)]
        weight = _class_weights(target, labels, backgrounds, background)
        hit, loss = _fit(model.head, samples.features, target, weight, steps, lr, weight_decay, seed)
        report = {"loss": loss, **{f"relabelled_{c + 1}": int(d.sum()) for c, d in zip(model.adapted, dropped,
                                                                                            strict=True)}}
    for i, channel in enumerate(model.adapted):
        strokes = weight[:, i] * (labels != UNLABELLED).float()
        report[f"train_balanced_accuracy_{channel + 1}"] = float((hit[:, i] * strokes).sum() / strokes.sum())
    return report


def fit_veto(model: AdaptedDetector, samples: PixelSamples, min_pixels: int, steps: int = 300, lr: float = 1e-2,
             weight_decay: float = 1e-3, seed: int = 0, backgrounds: Sequence[float] | None = None) -> dict[str, int]:
    """Fit `model.veto` per adapted class where the clean strokes cover at least `min_pixels` of the base's
    detections of that class; the count of such pixels per class (its `veto_on` flag set where fitted), and of the
    JOINED samples where there are some.

    The positives are those clean pixels the base flags (the false alarms the conservator marked); the negatives
    the class's own strokes (damage, never to be vetoed) with the base's detections they touch (JOINED samples,
    when collected), and, at the class's share of `backgrounds` (one per adapted
    class; None: none) of the negatives' half, the unlabelled pixels the base flags (most of what the base flags is
    damage)."""
    veto = model.veto
    if veto is None:
        raise ValueError("the model has no veto head")
    model.veto_on.zero_()
    labels = torch.from_numpy(samples.labels.astype(np.int64))
    flagged = torch.from_numpy(samples.base_prob >= 0.5)  # (n, K)
    shares = [0.0] * len(model.adapted) if backgrounds is None else list(backgrounds)
    targets, weights, counts = [], [], {}
    for channel, share in zip(model.adapted, shares, strict=True):
        pos = (labels == CLEAN) & flagged[:, channel]
        neg = (labels == channel + 1) | (labels == JOINED + channel)
        bg = (labels == UNLABELLED) & flagged[:, channel]
        counts[f"veto_pixels_{channel + 1}"] = int(pos.sum())
        if (joined := int((labels == JOINED + channel).sum())):
            counts[f"veto_joined_{channel + 1}"] = joined
        targets.append(pos.float())
        weights.append(_balanced(pos, neg, bg, share) if pos.any() and neg.any() else torch.zeros(len(pos)))
    target, weight = torch.stack(targets, dim=1), torch.stack(weights, dim=1)  # (n, A)
    if any(v >= min_pixels for v in counts.values()):
        _fit(veto, samples.features, target, weight, steps, lr, weight_decay, seed)
        for i, channel in enumerate(model.adapted):
            model.veto_on[i] = float(counts[f"veto_pixels_{channel + 1}"] >= min_pixels)
    return counts


def _class_weights(target: torch.Tensor, labels: torch.Tensor, backgrounds: list[torch.Tensor],
                   background: float) -> torch.Tensor:
    """(n, A) per-sample weights of the head's fit: per adapted class, its positives (`target`), the clean strokes
    and its weak negatives `backgrounds`, balanced by `_balanced`."""
    neg = labels == CLEAN
    return torch.stack([_balanced(target[:, i] > 0, neg, bg, background) for i, bg in enumerate(backgrounds)], dim=1)


@torch.no_grad()
def _probabilities(head: Any, features: np.ndarray) -> torch.Tensor:
    """(n, A) the fitted head's probabilities at the samples' features (no smoothing: one pixel each)."""
    return torch.sigmoid(head(torch.from_numpy(features)[:, :, None, None])[:, :, 0, 0])


def _balanced(pos: torch.Tensor, neg: torch.Tensor, bg: torch.Tensor, background: float) -> torch.Tensor:
    """Per-sample weights: the positives half the loss, the negatives the other half, of which the unlabelled
    samples `background` (when there are some)."""
    share = background if bg.any() else 0.0
    return (pos.float() * 0.5 / pos.sum() + neg.float() * 0.5 * (1 - share) / neg.sum()
            + (bg.float() * 0.5 * share / bg.sum() if share else 0.0))


def _fit(head: Any, features: np.ndarray, target: torch.Tensor, weight: torch.Tensor, steps: int, lr: float,
         weight_decay: float, seed: int) -> tuple[torch.Tensor, float]:
    """Weighted binary cross-entropy fit of a `PixelHead` from a fresh start, standardised on `features`;
    whether each training decision is right (n, A) and the final loss."""
    torch.manual_seed(seed)
    z = torch.from_numpy(features)  # (n, F)
    head.mean.copy_(z.mean(dim=0))
    head.scale.copy_(z.std(dim=0).clamp_min(1e-3))
    for module in head.net.modules():  # a fresh start whatever was fitted before
        if isinstance(module, torch.nn.Conv2d):
            module.reset_parameters()
    x = z[:, :, None, None]  # (n, F, 1, 1)
    head.train()
    optimiser = torch.optim.Adam(head.net.parameters(), lr=lr, weight_decay=weight_decay)
    loss = torch.zeros(())
    with torch.enable_grad():
        for _ in range(steps):
            optimiser.zero_grad()
            out = head(x)[:, :, 0, 0]  # (n, A)
            loss = (F.binary_cross_entropy_with_logits(out, target, reduction="none") * weight).sum()
            loss.backward()
            optimiser.step()
    head.eval()
    with torch.no_grad():
        hit = ((head(x)[:, :, 0, 0] > 0).float() == target).float()
    return hit, float(loss.detach())
