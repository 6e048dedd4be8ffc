"""Region recall: every connected paint loss of the target counts the same, however small.

Dice and BCE weigh a loss by its pixels, so a network can leave every 5-px flake out and lose almost nothing
while the restored image keeps them all. This term is 1 - the mean, over the target's 8-connected regions of
one channel in the batch, of the mean probability inside each region: a flake missed whole costs as much as a
lacuna missed whole.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

_EIGHT = np.ones((3, 3), bool)


def region_labels(target: torch.Tensor, channel: int) -> tuple[torch.Tensor, int]:
    """(B, H, W) int64 region index per pixel of `target[:, channel] >= 0.5` (0 = none; regions numbered over
    the whole batch) and the number of regions."""
    masks = target[:, channel].detach().cpu().numpy() >= 0.5  # (B, H, W)
    out = np.zeros(masks.shape, np.int64)
    count = 0
    for b in range(masks.shape[0]):
        labels, n = ndimage.label(masks[b], structure=_EIGHT)
        out[b] = np.where(labels > 0, labels + count, 0)
        count += n
    return torch.from_numpy(out).to(target.device), count


def region_recall(logits: torch.Tensor, target: torch.Tensor, channel: int = 1) -> torch.Tensor:
    """1 - the mean over target regions of `channel` of their mean sigmoid probability; 0 when the batch has
    no region. logits, target: (B, K, H, W)."""
    labels, count = region_labels(target, channel)
    if not count:
        return logits.sum() * 0.0
    prob = torch.sigmoid(logits[:, channel].float()).reshape(-1)
    index = labels.reshape(-1)
    sums = torch.zeros(count + 1, device=prob.device).index_add_(0, index, prob)
    sizes = torch.bincount(index, minlength=count + 1).to(prob.dtype)
    return 1.0 - (sums[1:] / sizes[1:]).mean()
