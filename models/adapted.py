"""A detector adapted to one painting: a frozen base detector with a per-pixel classifier for some classes.

The base (a Res-UNet or a max-ensemble of them) gives its logits and its decoder's last feature maps; for each
adapted class a small per-pixel network (1x1 convolutions) over [base features, base logits, image colour],
standardised by the statistics of the pixels it was fitted on, replaces that class's logit. Classes not adapted
keep the base logit unchanged. The head is fitted on a conservator's strokes (pipeline.stages.adapt); the whole
network (base and head) is one weights file, so detect loads it as it loads any detector.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from models.ensemble import MaxResUNet
from models.resunet import ResUNet

ARCHITECTURE = "resunet-adapted"
BASES: dict[str, type[nn.Module]] = {"resunet": ResUNet, "resunet-max": MaxResUNet}


class PixelHead(nn.Module):
    """Per-pixel classifier: (B, F, H, W) standardised features -> (B, A, H, W) logits, one per adapted class.

    `hidden` = 0 is a linear classifier (one 1x1 convolution); otherwise a one-hidden-layer MLP per class
    (grouped 1x1 convolutions, so the classes are fitted independently)."""

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
                nn.Conv2d(features * classes, hidden * classes, 1, groups=classes), nn.ReLU(inplace=True),
                nn.Conv2d(hidden * classes, classes, 1, groups=classes))
        else:
            self.net = nn.Conv2d(features * classes, classes, 1, groups=classes)
        self.classes = classes

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = (z - self.mean.view(1, -1, 1, 1)) / self.scale.view(1, -1, 1, 1)  # (B, F, H, W) standardised
        return self.net(z.repeat(1, self.classes, 1, 1))  # (B, A, H, W)


class AdaptedDetector(nn.Module):
    """`base` (registered name) built with `base_args`; classes `adapted` (0-based channel indices) are
    decided by a fitted `PixelHead`, the others by the base."""

    def __init__(self, base: str, base_args: dict[str, Any], adapted: Sequence[int], hidden: int = 32) -> None:
        super().__init__()
        if base not in BASES:
            raise ValueError(f"unknown base {base!r}; choose one of {', '.join(sorted(BASES))}")
        self.base = BASES[base](**base_args)
        classes = int(base_args.get("classes", 2))
        self.adapted = [int(c) for c in adapted]
        if not self.adapted or len(set(self.adapted)) != len(self.adapted) or not all(
                0 <= c < classes for c in self.adapted):
            raise ValueError(f"adapted must be distinct class indices in [0, {classes}), got {list(adapted)}")
        self.in_channels = int(base_args.get("in_channels", 3))
        self.features = self.base.feature_channels + classes + self.in_channels
        self.head = PixelHead(self.features, len(self.adapted), hidden)

    def pixel_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The base logits (B, K, H, W) and the head's input (B, F, H, W): base features, base logits, image."""
        logits, feats = self.base.forward_features(x)
        return logits, torch.cat([feats, logits, x], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits, z = self.pixel_features(x)
        new = self.head(z)  # (B, A, H, W)
        out = [new[:, self.adapted.index(c)] if c in self.adapted else logits[:, c] for c in range(logits.shape[1])]
        return torch.stack(out, dim=1)  # (B, K, H, W)
