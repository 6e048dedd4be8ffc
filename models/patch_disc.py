"""A small spectral-norm patch discriminator and its adversarial losses, scored on the hole region.

`PatchDiscriminator` sees an image beside its hole mask (as SN-PatchGAN in DeepFill v2 does) and gives one
logit per patch: `layers` stride-2 4x4 spectral-norm convolutions (LeakyReLU 0.2) and a 3x3 head, so a
logit scores a patch of about 16 * 2**layers px at 1 / 2**layers of the input's resolution.

The losses weight each patch logit by the share of hole pixels in its cell (`patch_weights`): a real
image is real everywhere, a composite is fake only where the network filled it (as LaMa's masked
discriminator loss), so the discriminator learns what a fill looks like, not where the mask is.
`kind="hinge"` (SN-PatchGAN) or `"nsgan"` (the non-saturating loss, softplus form).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm

ADV_LOSSES = ("hinge", "nsgan")


class PatchDiscriminator(nn.Module):
    """(image (B, C, H, W) in [0, 1], hole (B, 1, H, W), 1 = filled) -> logits (B, 1, H / 2**layers, W / 2**layers)."""

    def __init__(self, in_channels: int = 3, channels: int = 32, layers: int = 3) -> None:
        super().__init__()
        if channels < 1 or layers < 1:
            raise ValueError(f"channels and layers must be >= 1, got {channels} and {layers}")
        self.layers = layers
        blocks: list[nn.Module] = []
        cin = in_channels + 1
        for i in range(layers):
            cout = min(channels * 2**i, channels * 8)
            blocks += [spectral_norm(nn.Conv2d(cin, cout, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            cin = cout
        blocks.append(spectral_norm(nn.Conv2d(cin, 1, 3, padding=1)))
        self.net = nn.Sequential(*blocks)

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([image * 2.0 - 1.0, hole], dim=1))


def patch_weights(hole: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Share of hole pixels in each logit's cell: (B, 1, H, W) -> (B, 1, *size)."""
    return F.adaptive_avg_pool2d(hole, size)


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (values * weights).sum() / weights.sum().clamp_min(1e-6)


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor, hole: torch.Tensor, kind: str = "hinge") -> torch.Tensor:
    """The discriminator's loss: real logits over every patch, fake logits weighted by their hole share."""
    if kind not in ADV_LOSSES:
        raise ValueError(f"adversarial loss must be one of {', '.join(ADV_LOSSES)}, got {kind!r}")
    w = patch_weights(hole, tuple(fake.shape[-2:]))
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + _weighted_mean(F.relu(1.0 + fake), w)
    return F.softplus(-real).mean() + _weighted_mean(F.softplus(fake), w)


def generator_loss(fake: torch.Tensor, hole: torch.Tensor, kind: str = "hinge") -> torch.Tensor:
    """The inpainter's adversarial term: the composite's logits, weighted by each patch's hole share."""
    if kind not in ADV_LOSSES:
        raise ValueError(f"adversarial loss must be one of {', '.join(ADV_LOSSES)}, got {kind!r}")
    w = patch_weights(hole, tuple(fake.shape[-2:]))
    if kind == "hinge":
        return -_weighted_mean(fake, w)
    return _weighted_mean(F.softplus(-fake), w)
