"""A detector adapted to one painting: a frozen base detector with a per-pixel classifier for some classes.

The base (a Res-UNet or a max-ensemble of them) gives its logits and its decoder's last feature maps; for each
adapted class a small per-pixel network (1x1 convolutions) over [base features, base logits, image colour and
fixed filters of it], standardised by the statistics of the pixels it was fitted on, replaces that class's
logit. The filters are those of ilastik's pixel classification, at a few scales: Gaussian-smoothed colour,
gradient magnitude, difference of Gaussians and local standard deviation of the luminance. Classes not adapted
keep the base logit unchanged. With `union`, an adapted class keeps what the base found, the head only adding
where it is confident (its logit shifted by the adding threshold); an optional veto head per adapted class,
fitted on the base's detections under the conservator's clean strokes, removes the base detections that
resemble them; with a `reach`, the head only extends the base's detections of a class (an addition counts where
it joins them through other additions within that many px), never starting one of its own, and with `beside` it
lengthens them without thickening them. The head is fitted on a conservator's strokes (pipeline.stages.adapt);
the whole network (base and head) is one weights file, so detect loads it as it loads any detector.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn as nn

from models.blur import gaussian_kernel, separable_blur
from models.ensemble import MaxResUNet
from models.regions import regions_holding
from models.resunet import ResUNet

DEFAULT_SCALES = (1.0, 2.0, 4.0)
STRIP = 128  # rows of a tile the head takes at once (bounds the memory of its per-pixel layers)
GATE_SIGMA = 1.5  # px: the head's logits lightly smoothed for the gate (adapt's default smoothing)
GATE_ADD = 0.9  # the probability at which such a pixel counts as held by the head (adapt's default adding threshold)
GATE_OFF = -20.0  # the logit of a pixel the gate closes
END_RADIUS = 4  # px around a skeleton end point of a detection where the head may add beside it (see `beside`)


def grown(seed: np.ndarray, room: np.ndarray, steps: int) -> np.ndarray:
    """The bool (H, W) `seed` grown by 8-connected steps inside the bool `room`, `steps` at most: the pixels of
    `room` joined to the seed through `room` within that many steps."""
    kernel, inside = np.ones((3, 3), np.uint8), room.astype(np.uint8)
    joined = (seed & room).astype(np.uint8)
    for _ in range(steps):
        more = cv2.dilate(joined, kernel) & inside
        if np.array_equal(more, joined):
            break
        joined = more
    return joined.astype(bool)


def supported(adds: np.ndarray, found: np.ndarray, support: np.ndarray) -> np.ndarray:
    """The bool (H, W) pixels of the bool `adds` whose 8-connected region of `adds` | `found` holds a pixel of the
    bool `support` (`found` is part of it: a region joined to a detection is supported by it)."""
    return adds & regions_holding(adds | found, support)


def supported_probabilities(prob: np.ndarray, base: np.ndarray, levels: dict[int, float],
                            threshold: float = 0.5) -> np.ndarray:
    """(K, H, W) adapted probabilities `prob` with, for each class channel of `levels`, the regions it adds to the
    base's `base` (K, H, W) (pixels at `threshold` in `prob` and not in `base`) kept only where `supported` by a
    base pixel of at least that level (with the base's detections they join); a dropped pixel takes the base's
    probability, so it is no longer flagged."""
    out = prob.copy()
    for c, level in levels.items():
        found = base[c] >= threshold
        adds = (prob[c] >= threshold) & ~found
        dropped = adds & ~supported(adds, found, base[c] >= level)
        out[c][dropped] = base[c][dropped]
    return out


class BaseBeside(nn.Module):
    """An `AdaptedDetector` run as (B, 2K, H, W): its logits, then its base's (`forward_with_base`), so that tiled
    inference gives both from one pass of the base."""

    def __init__(self, model: AdaptedDetector) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_with_base(x)


def beside_ends(mask: np.ndarray, width: int) -> np.ndarray:
    """The bool (H, W) pixels within `width` px (a square) beside the bool `mask`, outside it, that are more than
    END_RADIUS px from the end points of its skeleton (a skeleton pixel with one 8-neighbour, or none)."""
    skeleton = cv2.ximgproc.thinning(mask.astype(np.uint8) * 255) > 0
    neighbours = cv2.filter2D(skeleton.astype(np.uint8), -1, np.ones((3, 3), np.float32),
                              borderType=cv2.BORDER_CONSTANT)
    ends = (skeleton & (neighbours <= 2)).astype(np.uint8)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * END_RADIUS + 1,) * 2)
    near_end = cv2.dilate(ends, disc) > 0
    around = cv2.dilate(mask.astype(np.uint8), np.ones((2 * width + 1,) * 2, np.uint8)) > 0
    return around & ~mask & ~near_end


def _joined_one(seed: np.ndarray, adds: np.ndarray, steps: int, beside: int) -> np.ndarray:
    """The bool (H, W) pixels of `seed` | `adds` joined to `seed` within `steps` (the `adds` within `beside` px
    beside the seed, away from its ends, left out when `beside` > 0); the seed alone when nothing is added."""
    if not adds.any():
        return seed
    room = seed | (adds & ~beside_ends(seed, beside) if beside else adds)
    return grown(seed, room, steps)


class FilterBank(nn.Module):
    """Fixed filters of an (B, 3, H, W) image at each scale sigma: Gaussian-smoothed colour (3), and of the
    luminance the gradient magnitude, the difference of Gaussians (sigma, 2 sigma) and the local standard
    deviation (1 each): (B, 3 + 6 * len(scales), H, W), the image itself first. Borders are reflected."""

    def __init__(self, scales: Sequence[float] = DEFAULT_SCALES) -> None:
        super().__init__()
        self.scales = [float(s) for s in scales]
        for i, sigma in enumerate(self.scales):
            self.register_buffer(f"g{i}", self._kernel(sigma), persistent=False)
            self.register_buffer(f"h{i}", self._kernel(2 * sigma), persistent=False)

    _kernel = staticmethod(gaussian_kernel)
    _blur = staticmethod(separable_blur)

    @property
    def channels(self) -> int:
        return 3 + 6 * len(self.scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lum = x.mean(dim=1, keepdim=True)  # (B, 1, H, W)
        out = [x]
        for i in range(len(self.scales)):
            g, h = getattr(self, f"g{i}"), getattr(self, f"h{i}")
            smooth = self._blur(torch.cat([x, lum, lum * lum], dim=1), g)  # (B, 5, H, W)
            colour, mean, square = smooth[:, :3], smooth[:, 3:4], smooth[:, 4:5]
            gy = nn.functional.pad(mean[:, :, 2:] - mean[:, :, :-2], (0, 0, 1, 1), mode="replicate")
            gx = nn.functional.pad(mean[:, :, :, 2:] - mean[:, :, :, :-2], (1, 1, 0, 0), mode="replicate")
            dog = mean - self._blur(lum, h)
            std = (square - mean * mean).clamp_min(0).sqrt()
            out += [colour, (gy * gy + gx * gx).sqrt() / 2, dog, std]
        return torch.cat(out, dim=1)  # (B, 3 + 6 * len(scales), H, W)

ARCHITECTURE = "resunet-adapted"


def _per_class(value: float | Sequence[float], classes: int, name: str) -> list[float]:
    """One float per adapted class: a single value for all, or a sequence in the order of `adapted`."""
    values = [float(value)] * classes if isinstance(value, int | float) else [float(v) for v in value]
    if len(values) != classes:
        raise ValueError(f"{name} needs one value or one per adapted class ({classes}), got {list(values)}")
    return values


def checked_adapted(adapted: Sequence[int], classes: int) -> list[int]:
    """The adapted class channels as ints; refused unless distinct, at least one, and in [0, classes)."""
    out = [int(c) for c in adapted]
    if not out or len(set(out)) != len(out) or not all(0 <= c < classes for c in out):
        raise ValueError(f"adapted must be distinct class indices in [0, {classes}), got {list(adapted)}")
    return out


BASES: dict[str, type[nn.Module]] = {"resunet": ResUNet, "resunet-max": MaxResUNet}


class PixelHead(nn.Module):
    """Per-pixel classifier: (B, F, H, W) standardised features -> (B, A, H, W) logits, one per adapted class.

    `hidden` = 0 is a linear classifier (one 1x1 convolution); otherwise a one-hidden-layer MLP per class (the
    hidden units of class a are the a-th block of the first layer's outputs, and the second layer is grouped,
    so the classes are fitted independently)."""

    def __init__(self, features: int, classes: int, hidden: int = 32) -> None:
        super().__init__()
        if classes < 1:
            raise ValueError(f"an adapted head needs at least one class, got {classes}")
        if hidden < 0:
            raise ValueError(f"hidden must be >= 0, got {hidden}")
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("scale", torch.ones(features))
        if hidden:
            self.net: nn.Module = nn.Sequential(
                nn.Conv2d(features, hidden * classes, 1), nn.ReLU(inplace=True),
                nn.Conv2d(hidden * classes, classes, 1, groups=classes))
        else:
            self.net = nn.Conv2d(features, classes, 1)
        self.classes = classes

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = (z - self.mean.view(1, -1, 1, 1)) / self.scale.view(1, -1, 1, 1)  # (B, F, H, W) standardised
        return self.net(z)  # (B, A, H, W)


class AdaptedDetector(nn.Module):
    """`base` (registered name) built with `base_args`; classes `adapted` (0-based channel indices) are
    decided by a fitted `PixelHead`, the others by the base; `scales` are the filter bank's (empty: the image's
    colour only). `smooth` > 0 blurs the head's logits with a Gaussian of that sigma (px) before use, after
    bounding them to [-`clamp`, `clamp`] when `clamp` > 0 (each one value, or one per adapted class).
    `gate` > 0 lets the smoothed head speak only where the head itself, lightly smoothed (GATE_SIGMA px),
    holds at least that share of the pixels around (Gaussian weights of sigma `gate_sigma` px) at GATE_ADD:
    a regional vote then fills in and rounds out what the head finds densely (the inside of a large loss) without
    growing the isolated pixels it holds elsewhere into blobs.

    `union` keeps what the base found: an adapted class's logit is the maximum of the head's, less
    logit(`add`) (the head adds a pixel only where its probability reaches `add`), and the base's. With `veto`
    a second, linear `PixelHead`, one output per adapted class (its `veto_on` flag set when it was fitted),
    decides which of the base's detections are the kind the clean strokes marked: where its logit is positive
    the base's logit is replaced by a negative one, so the union keeps only what the head itself adds there.
    With `reach` > 0 (one value, or one per adapted class) the head's additions to the union count only where
    they join the base's detections (after the veto) through other additions in at most `reach` steps of
    8-connected growth; the others keep the base's logit. With `beside` > 0 as well (px, per class) the head
    may not add within that many px beside a base detection, away from its ends (END_RADIUS px around the
    end points of its skeleton): it lengthens a crack or bridges a gap, it does not thicken it. `support` > 0
    (per class) is a rule of detection, not of this forward pass: a region of additions (8-connected pixels the
    adapted detector flags and the base does not, with the base's detections it joins) counts only where the base
    gives one of its pixels a probability of at least `support` (`supported_probabilities`, which detection applies
    to the whole block, the base read as detection reads it, its coarse pass included, from `forward_with_base`):
    the head completes what the base half saw, and does not start marks where it saw nothing."""

    def __init__(self, base: str, base_args: dict[str, Any], adapted: Sequence[int], hidden: int = 32,
                 scales: Sequence[float] = DEFAULT_SCALES, smooth: float | Sequence[float] = 0.0,
                 union: bool = False, add: float | Sequence[float] = 0.5, veto: bool = False,
                 clamp: float | Sequence[float] = 0.0, gate: float | Sequence[float] = 0.0,
                 gate_sigma: float = 4.0, reach: int | Sequence[int] = 0, beside: int | Sequence[int] = 0,
                 support: float | Sequence[float] = 0.0) -> None:
        super().__init__()
        if base not in BASES:
            raise ValueError(f"unknown base {base!r}; choose one of {', '.join(sorted(BASES))}")
        self.base = BASES[base](**base_args)
        classes = int(base_args.get("classes", 2))
        self.adapted = checked_adapted(adapted, classes)
        self.in_channels = int(base_args.get("in_channels", 3))
        if self.in_channels != 3:
            raise ValueError(f"an adapted detector takes RGB input, got in_channels={self.in_channels}")
        self.filters = FilterBank(scales)
        self.features = self.base.feature_channels + classes + self.filters.channels
        self.head = PixelHead(self.features, len(self.adapted), hidden)
        self.smooth = _per_class(smooth, len(self.adapted), "smooth")
        if any(v < 0 for v in self.smooth):
            raise ValueError(f"smooth must be >= 0, got {smooth}")
        for i, sigma in enumerate(self.smooth):
            if sigma:
                self.register_buffer(f"smoothing{i}", FilterBank._kernel(sigma), persistent=False)
        self.clamp = _per_class(clamp, len(self.adapted), "clamp")
        if any(v < 0 for v in self.clamp):
            raise ValueError(f"clamp must be >= 0, got {clamp}")
        self.gate = _per_class(gate, len(self.adapted), "gate")
        if not all(0.0 <= v < 1.0 for v in self.gate) or gate_sigma <= 0:
            raise ValueError(f"gate must be in [0, 1) and gate_sigma > 0, got {gate} and {gate_sigma}")
        self.gate_sigma = float(gate_sigma)
        if any(self.gate):
            self.register_buffer("gate_fine", FilterBank._kernel(GATE_SIGMA), persistent=False)
            self.register_buffer("gate_area", FilterBank._kernel(self.gate_sigma), persistent=False)
        self.union = bool(union)
        self.reach = [int(v) for v in _per_class(reach, len(self.adapted), "reach")]
        if any(v < 0 for v in self.reach) or (any(self.reach) and not self.union):
            raise ValueError(f"reach must be >= 0 and needs union, got {reach} (union {union})")
        self.beside = [int(v) for v in _per_class(beside, len(self.adapted), "beside")]
        if any(v < 0 or (v and not r) for v, r in zip(self.beside, self.reach, strict=True)):
            raise ValueError(f"beside must be >= 0 and needs a reach, got {beside} (reach {self.reach})")
        self.support = _per_class(support, len(self.adapted), "support")
        if not all(0.0 <= v < 1.0 for v in self.support) or (any(self.support) and not self.union):
            raise ValueError(f"support must be in [0, 1) and needs union, got {support} (union {union})")
        self.add = _per_class(add, len(self.adapted), "add")
        if not all(0.0 < v < 1.0 for v in self.add):
            raise ValueError(f"add must be in (0, 1), got {add}")
        self.register_buffer("shift", torch.tensor([math.log(v / (1.0 - v)) for v in self.add]).view(1, -1, 1, 1),
                             persistent=False)
        self.veto: PixelHead | None = PixelHead(self.features, len(self.adapted), 0) if veto else None
        if veto:
            self.register_buffer("veto_on", torch.zeros(len(self.adapted)))

    def pixel_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The base logits (B, K, H, W) and the head's input (B, F, H, W): base features, base logits, filters."""
        logits, feats = self.base.forward_features(x)
        return logits, torch.cat([feats, logits, self.filters(x)], dim=1)

    @property
    def support_levels(self) -> dict[int, float]:
        """{class channel: support level} of the adapted classes with a support (empty when none has one)."""
        return {c: level for c, level in zip(self.adapted, self.support, strict=True) if level}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._logits(x)[0]  # (B, K, H, W)

    def forward_with_base(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 2K, H, W): the adapted logits, then the base's own (before the veto), from one pass of the base."""
        return torch.cat(self._logits(x), dim=1)

    def _logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The adapted logits and the base's, each (B, K, H, W)."""
        logits, feats = self.base.forward_features(x)  # (B, K, H, W), (B, C, H, W)
        filters = self.filters(x)  # (B, 3 + 6 * scales, H, W)
        new = self._per_pixel(self.head, feats, logits, filters, gated=True)  # (B, A, H, W)
        if self.union:
            base = logits[:, self.adapted]  # (B, A, H, W)
            if self.veto is not None and bool(self.veto_on.any()):
                veto = self._per_pixel(self.veto, feats, logits, filters)
                vetoed = (veto > 0) & (self.veto_on.view(1, -1, 1, 1) > 0)
                base = torch.where(vetoed, torch.minimum(base, -veto), base)
            new = torch.maximum(self._joined(new - self.shift, base) if any(self.reach) else new - self.shift, base)
        out = [new[:, self.adapted.index(c)] if c in self.adapted else logits[:, c] for c in range(logits.shape[1])]
        return torch.stack(out, dim=1), logits

    def _per_pixel(self, head: PixelHead, feats: torch.Tensor, logits: torch.Tensor,
                   filters: torch.Tensor, gated: bool = False) -> torch.Tensor:
        """`head` over the pixels' features, strip by strip (bounded memory), smoothed (and `gated`, for the
        head): (B, A, H, W)."""
        out = torch.cat([head(torch.cat([feats[:, :, r : r + STRIP], logits[:, :, r : r + STRIP],
                                         filters[:, :, r : r + STRIP]], dim=1))
                         for r in range(0, feats.shape[-2], STRIP)], dim=2)
        parts = []
        for i, (sigma, bound, gate) in enumerate(zip(self.smooth, self.clamp, self.gate, strict=True)):
            part = out[:, i: i + 1]
            if bound:  # a pixel's vote is bounded, so a few very confident pixels cannot outweigh a region
                part = part.clamp(-bound, bound)
            part = FilterBank._blur(part, getattr(self, f"smoothing{i}")) if sigma else part
            if gate and gated:
                part = torch.where(self._dense(out[:, i: i + 1]) >= gate, part, torch.full_like(part, GATE_OFF))
            parts.append(part)
        return torch.cat(parts, dim=1)

    def _joined(self, head: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """(B, A, H, W) `head` logits with each class's additions (head positive, base not) that do not reach the
        base's detections within that class's `reach` steps set to GATE_OFF (a class of reach 0 unchanged)."""
        parts = []
        for i, (steps, side) in enumerate(zip(self.reach, self.beside, strict=True)):
            logit = head[:, i: i + 1]
            if steps:
                seed, adds = base[:, i: i + 1] > 0, (logit > 0) & (base[:, i: i + 1] <= 0)
                if adds.any():
                    joined = torch.from_numpy(np.stack([_joined_one(s, a, steps, side) for s, a in zip(
                        seed[:, 0].cpu().numpy(), adds[:, 0].cpu().numpy(), strict=True)]))[:, None]
                    logit = torch.where(adds & ~joined.to(logit.device), torch.full_like(logit, GATE_OFF), logit)
            parts.append(logit)
        return torch.cat(parts, dim=1)

    def _dense(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W): the Gaussian-weighted share of pixels around each whose logit, smoothed at GATE_SIGMA,
        reaches GATE_ADD."""
        held = FilterBank._blur(logits, self.gate_fine) >= math.log(GATE_ADD / (1.0 - GATE_ADD))
        return FilterBank._blur(held.to(logits.dtype), self.gate_area)
