"""A max-ensemble of Res-UNet detectors: every member sees the same tile; a pixel is a class when any member
says so (per-pixel, per-class maximum of the logits, which is the maximum of the sigmoid probabilities).

Why: a union of a member robust on real crack photos and a member specialised on synthetic painting damage
keeps the recall of each, at one forward pass per member.

Each member may have its own decision threshold T_i: its logit is shifted by -logit(T_i) before the maximum,
so the ensemble's output keeps 0.5 as its threshold and a global threshold moves all members together.
Built and shipped by `python -m lab.ensemble`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from models.resunet import ResUNet

ARCHITECTURE = "resunet-max"


class MaxResUNet(nn.Module):
    """`members` Res-UNets of the same shape; `forward` gives the per-pixel maximum of their (B, K, H, W) logits,
    each first shifted by -logit(threshold) of its member (`thresholds`; default 0.5 each, i.e. no shift)."""

    def __init__(self, members: int = 2, thresholds: Sequence[float] | None = None, **resunet_args: Any) -> None:
        super().__init__()
        if members < 1:
            raise ValueError(f"members must be >= 1, got {members}")
        thresholds = [0.5] * members if thresholds is None else [float(t) for t in thresholds]
        if len(thresholds) != members or not all(0.0 < t < 1.0 for t in thresholds):
            raise ValueError(f"thresholds must be {members} numbers in (0, 1), got {thresholds}")
        self.members = nn.ModuleList(ResUNet(**resunet_args) for _ in range(members))
        self.thresholds = thresholds
        self.offsets = [math.log(t / (1.0 - t)) for t in thresholds]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) - offset if offset else member(x)
                            for member, offset in zip(self.members, self.offsets, strict=True)]).amax(dim=0)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The ensemble's logits (B, K, H, W) and every member's decoder features and shifted logits, stacked
        along channels (B, members * (decoder_channels[-1] + K), H, W)."""
        logits, feats = [], []
        for member, offset in zip(self.members, self.offsets, strict=True):
            member_logits, dec = member.forward_features(x)
            member_logits = member_logits - offset if offset else member_logits
            logits.append(member_logits)
            feats.extend((dec, member_logits))
        return torch.stack(logits).amax(dim=0), torch.cat(feats, dim=1)

    @property
    def feature_channels(self) -> int:
        """Channels of `forward_features`' feature map."""
        first = self.members[0]
        return len(self.members) * (first.feature_channels + int(first.net.segmentation_head[0].out_channels))

