"""Separable Gaussian blur of (B, C, H, W) tensors: the adapted detector's filters and the inpainter's loss."""

from __future__ import annotations

import torch
from torch import nn


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """1-D float32 Gaussian of radius round(3 sigma) (at least 1), summing to 1."""
    radius = max(1, int(round(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def separable_blur(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) blurred per channel by the 1-D kernel `k` along both axes; borders reflected (replicated where
    the image is no wider than the kernel's radius)."""
    c, r = x.shape[1], k.numel() // 2
    x = nn.functional.pad(x, (r, r, r, r), mode="reflect" if min(x.shape[-2:]) > r else "replicate")
    x = nn.functional.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return nn.functional.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
