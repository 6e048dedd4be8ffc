"""Adapting by fine-tuning, the alternative to adapt's per-pixel head that the adapt issue asked to measure.

`TunedDetector`: a frozen Res-UNet whose last decoder block and segmentation head have a second, trainable copy
for the adapted classes. The base runs as trained up to the input of its last decoder block (half resolution, no
skip connection there); from that feature map both the base's own last block and head (the classes not adapted)
and the tuned copies (the adapted classes) make logits at full resolution. The copies start as the base's, so
before fitting the network answers exactly as the base does. With `add` the tuned logits only add to the base's
where their probability reaches `add` (adapt's own rule for its head).

`fit_tuned`: the `cell`-px squares of the scan that hold labelled pixels, and a few random squares, go once
through the frozen base (each with `context` px around); each keeps the input of the base's last decoder block,
the base's probabilities and the stroke labels. The tuned block and head are fitted on random crops of those
squares, half of them centred on a stroke pixel: per adapted class, class-balanced binary cross-entropy on the
strokes (the class's strokes positive, the clean strokes negative, each side half of that term; the other damage
class's strokes left out) plus, at weight `teacher`, binary cross-entropy towards the base's probability on every
unlabelled pixel, so that paint the strokes say nothing about keeps the base's answer.

`benchmarks/compare_adapt_tune.py` scores it with `retouch evaluate adapt`'s cases and strokes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.adapted import checked_adapted
from models.resunet import ResUNet
from pipeline.stages.adapt import AdaptConfig
from pipeline.stages.adapt_fit import PixelSamples, cells_with_points, square_input, square_side


@dataclass(frozen=True)
class TuneConfig:
    """The fine-tune: Adam steps, learning rate, crops per step and their side (px), the teacher's weight, and
    the tuned class's probability from which it adds to the base's (0 = the tuned logits replace the base's)."""

    steps: int = 150
    lr: float = 1e-3
    batch: int = 8
    crop: int = 96
    teacher: float = 1.0
    add: float = 0.0


class TunedDetector(nn.Module):
    """`ResUNet(**base_args)` (no refine head) with tuned copies of its last decoder block and head deciding the
    class channels `adapted` (0-based)."""

    veto = None  # adapt's veto head has no counterpart here

    def __init__(self, base_args: dict[str, Any], adapted: Sequence[int], add: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= add < 1.0:
            raise ValueError(f"add must be in [0, 1), got {add}")
        self.shift = math.log(add / (1.0 - add)) if add else None
        self.base = ResUNet(**base_args)
        if self.base.refine is not None:
            raise ValueError("a tuned detector takes a base without a refine head")
        self.adapted = checked_adapted(adapted, int(base_args.get("classes", 2)))
        self.block = copy.deepcopy(self.base.net.decoder.blocks[-1])
        self.head = copy.deepcopy(self.base.net.segmentation_head)

    def start_from_base(self) -> None:
        """Copy the base's last block and head into the tuned ones (after the base's weights are loaded)."""
        self.block.load_state_dict(self.base.net.decoder.blocks[-1].state_dict())
        self.head.load_state_dict(self.base.net.segmentation_head.state_dict())

    def tunable(self) -> list[nn.Parameter]:
        return [*self.block.parameters(), *self.head.parameters()]

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """The input of the last decoder block (B, C, H / 2, W / 2), from the frozen base."""
        x = self.base._check(x)
        feats = self.base.net.encoder(x)
        decoder = self.base.net.decoder
        shapes = [f.shape[2:] for f in feats][::-1]
        skips = feats[1:][::-1]
        y = decoder.center(skips[0])
        for i, block in enumerate(decoder.blocks[:-1]):
            y = block(y, *shapes[i + 1], skip_connection=skips[i + 1] if i + 1 < len(skips) else None)
        return y

    def tuned_logits(self, pre: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The tuned copies' logits of the adapted classes (B, A, H, W) from `trunk`'s output."""
        return self.head(self.block(pre, height, width))[:, self.adapted]

    def base_logits(self, pre: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The base's own logits (B, K, H, W) from `trunk`'s output."""
        return self.base.net.segmentation_head(self.base.net.decoder.blocks[-1](pre, height, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pre = self.trunk(x)
        logits = self.base_logits(pre, height, width)
        tuned = self.tuned_logits(pre, height, width)
        if self.shift is not None:
            tuned = torch.maximum(tuned - self.shift, logits[:, self.adapted])
        out = [tuned[:, self.adapted.index(c)] if c in self.adapted else logits[:, c] for c in range(logits.shape[1])]
        return torch.stack(out, dim=1)  # (B, K, H, W)


UNLABELLED, CLEAN = 0, 3


@dataclass(frozen=True)
class TuneCells:
    """Per square: the last block's input (1, C, T / 2, T / 2), the base's probabilities (K, T, T) and the
    stroke labels (T, T) uint8 (0 where none)."""

    pre: list[torch.Tensor]
    base_prob: list[torch.Tensor]
    labels: list[np.ndarray]


@torch.inference_mode()
def collect_cells(model: TunedDetector, scan: Any, marks: dict[int, np.ndarray], extra: list[tuple[int, int]],
                  cell: int = 256, context: int = 64) -> TuneCells:
    """The squares holding the points of `marks` (label value -> (n, 2) (y, x)) and the `extra` squares (cell
    indices), from `scan` (C, H, W): a Zarr array or an array in memory."""
    side = square_side(cell, context)
    labelled = np.concatenate(list(marks.values()))
    values = np.concatenate([np.full(len(p), c, np.uint8) for c, p in marks.items()])
    by_cell = cells_with_points(labelled, cell)
    keys = list(by_cell) + [k for k in extra if k not in by_cell]
    out = TuneCells([], [], [])
    device = next(model.parameters()).device
    for cy, cx in keys:
        y0, x0 = cy * cell, cx * cell
        pre = model.trunk(square_input(scan, cy, cx, cell, context, device))
        out.pre.append(pre.float())
        out.base_prob.append(torch.sigmoid(model.base_logits(pre, side, side)[0].float()))
        labels = np.zeros((side, side), np.uint8)
        inside = (labelled[:, 0] >= y0 - context) & (labelled[:, 0] < y0 + cell + context) & (
            labelled[:, 1] >= x0 - context) & (labelled[:, 1] < x0 + cell + context)
        labels[labelled[inside, 0] - y0 + context, labelled[inside, 1] - x0 + context] = values[inside]
        out.labels.append(labels)
    return out


def stroke_samples(cells: TuneCells) -> PixelSamples:
    """The labelled pixels of the squares with the base's probabilities there (for the stage's summary)."""
    labels, probs = [], []
    for lab, prob in zip(cells.labels, cells.base_prob, strict=True):
        ys, xs = np.nonzero(lab)
        labels.append(lab[ys, xs])
        probs.append(prob[:, ys, xs].T.cpu().numpy())
    return PixelSamples(np.zeros((sum(len(v) for v in labels), 0), np.float32), np.concatenate(labels),
                        np.concatenate(probs))


def _crop(cells: TuneCells, rng: np.random.Generator, crop: int, on_stroke: bool
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One crop (even-aligned, `crop` px at full resolution): last-block input, base probability, labels."""
    i = int(rng.integers(len(cells.pre)))
    side = cells.labels[i].shape[0]
    ys, xs = np.nonzero(cells.labels[i]) if on_stroke else ((), ())
    if len(ys):
        k = int(rng.integers(len(ys)))
        cy, cx = int(ys[k]), int(xs[k])
    else:
        cy, cx = (int(v) for v in rng.integers(0, side, 2))
    y0 = int(np.clip(cy - crop // 2, 0, side - crop)) // 2 * 2
    x0 = int(np.clip(cx - crop // 2, 0, side - crop)) // 2 * 2
    pre = cells.pre[i][0, :, y0 // 2: (y0 + crop) // 2, x0 // 2: (x0 + crop) // 2]
    prob = cells.base_prob[i][:, y0: y0 + crop, x0: x0 + crop]
    labels = torch.from_numpy(cells.labels[i][y0: y0 + crop, x0: x0 + crop].astype(np.int64))
    return pre, prob, labels


def fit_tuned(model: TunedDetector, cells: TuneCells, tune: TuneConfig, seed: int = 0) -> dict[str, float]:
    """Fit the tuned block and head from the base's; the last step's losses (strokes, teacher)."""
    steps, lr, batch, crop, teacher = tune.steps, tune.lr, tune.batch, tune.crop, tune.teacher
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model.start_from_base()
    for p in model.parameters():
        p.requires_grad_(False)
    params = model.tunable()
    for p in params:
        p.requires_grad_(True)
    optimiser = torch.optim.Adam(params, lr=lr)  # batch norm keeps the base's statistics (eval mode)
    stroke_loss = teacher_loss = torch.zeros(())
    with torch.enable_grad():
        for _ in range(steps):
            parts = [_crop(cells, rng, crop, on_stroke=j % 2 == 0) for j in range(batch)]
            pre = torch.stack([p[0] for p in parts])
            prob = torch.stack([p[1] for p in parts])[:, model.adapted]  # (B, A, crop, crop)
            labels = torch.stack([p[2] for p in parts])  # (B, crop, crop)
            logits = model.tuned_logits(pre, crop, crop)  # (B, A, crop, crop)
            stroke_loss = torch.zeros(())
            for a, channel in enumerate(model.adapted):
                out = logits[:, a]
                pos, neg = labels == channel + 1, labels == CLEAN
                if pos.any():
                    stroke_loss = stroke_loss + 0.5 * F.binary_cross_entropy_with_logits(
                        out[pos], torch.ones_like(out[pos]))
                if neg.any():
                    stroke_loss = stroke_loss + 0.5 * F.binary_cross_entropy_with_logits(
                        out[neg], torch.zeros_like(out[neg]))
            free = (labels == UNLABELLED)[:, None].expand_as(logits)
            teacher_loss = F.binary_cross_entropy_with_logits(logits[free], prob[free])
            loss = stroke_loss + teacher * teacher_loss
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    for p in params:
        p.requires_grad_(False)
    return {"stroke_loss": float(stroke_loss), "teacher_loss": float(teacher_loss)}


def tuned_builder(tune: TuneConfig) -> Any:
    """`build(config, adapted)` for `lab.eval.adapt_eval.adapted_probabilities`: a TunedDetector over the
    verified weights of `config.base` (a single Res-UNet)."""
    from models.weights import get_entry, load_state

    def build(config: AdaptConfig, adapted: list[int]) -> TunedDetector:
        entry = get_entry(config.base, Path(config.manifest))
        if entry.architecture != "resunet":
            raise ValueError(f"{config.base!r} is a {entry.architecture!r}; fine-tuning takes a single resunet")
        model = TunedDetector(entry.arch_args, adapted, tune.add)
        model.base.load_state_dict(load_state(entry, Path(config.manifest).parent))
        model.start_from_base()
        return model.to(config.device).eval()

    return build


def tuned_fitter(tune: TuneConfig) -> Any:
    """`fit(model, scan, marks, config)` for `lab.eval.adapt_eval.adapted_probabilities`: the stroke squares and
    `config.background_cells` random squares, then `fit_tuned`."""

    def fit(model: TunedDetector, scan: Any, marks: dict[int, np.ndarray], config: AdaptConfig) -> dict[str, Any]:
        _, height, width = scan.shape
        rng = np.random.default_rng(config.seed)
        rows, cols = max(height // config.cell, 1), max(width // config.cell, 1)
        extra = [(int(rng.integers(0, rows)), int(rng.integers(0, cols))) for _ in range(config.background_cells)]
        cells = collect_cells(model, scan, marks, extra, config.cell, config.context)
        report: dict[str, Any] = fit_tuned(model, cells, tune, config.seed)
        return {**report, "squares": len(cells.pre), "samples": stroke_samples(cells)}

    return fit
