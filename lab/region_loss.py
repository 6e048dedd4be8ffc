"""Region recall: every connected paint loss of the target counts the same, however small.

Dice and BCE weigh a loss by its pixels, so a network can leave every 5-px flake out and lose almost nothing
while the restored image keeps them all. This term is 1 - the mean, over the target's 8-connected regions of
one channel in the batch, of the mean probability inside each region: a flake missed whole costs as much as a
lacuna missed whole.

Region rim: its counterpart outside. Pushing each region's inside up alone lets a network widen what it finds
(the labels already cover a loss's whole visible extent, so the pixels just outside are intact paint). This term
is the mean, over the same regions, of the mean probability in the `width`-px ring around each region (pixels
that no target channel marks), so a loss found wider costs as much on a flake as on a lacuna.
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


def rim_labels(labels: torch.Tensor, target: torch.Tensor, width: int) -> torch.Tensor:
    """(B, H, W) int64: each region's index of `labels` spread `width` px (8-connected steps) onto the pixels
    around it that no channel of `target` (B, K, H, W) marks; 0 elsewhere (where rings meet, the higher index)."""
    spread = ndimage.grey_dilation(labels.cpu().numpy(), size=(1, 2 * width + 1, 2 * width + 1))
    marked = (target.detach().cpu().numpy() >= 0.5).any(axis=1)
    return torch.from_numpy(np.where(marked, 0, spread)).to(target.device)


def region_rim(logits: torch.Tensor, target: torch.Tensor, channel: int = 1, width: int = 2) -> torch.Tensor:
    """The mean over target regions of `channel` of their `width`-px ring's mean sigmoid probability (regions
    whose ring is empty left out); 0 when the batch has no ring. logits, target: (B, K, H, W)."""
    labels, count = region_labels(target, channel)
    rims = rim_labels(labels, target, width)
    if not count or not bool((rims > 0).any()):
        return logits.sum() * 0.0
    return mean_of_region_means(logits[:, channel], rims, count)


def mean_of_region_means(logits: torch.Tensor, index: torch.Tensor, count: int) -> torch.Tensor:
    """The mean, over the regions 1..`count` of `index` (B, H, W; 0 = none) that hold a pixel, of each one's mean
    sigmoid probability of `logits` (B, H, W)."""
    prob = torch.sigmoid(logits.float()).reshape(-1)
    flat = index.reshape(-1)
    sums = torch.zeros(count + 1, device=prob.device).index_add_(0, flat, prob)
    sizes = torch.bincount(flat, minlength=count + 1).to(prob.dtype)
    has = sizes[1:] > 0
    return (sums[1:][has] / sizes[1:][has]).mean()


def region_recall(logits: torch.Tensor, target: torch.Tensor, channel: int = 1) -> torch.Tensor:
    """1 - the mean over target regions of `channel` of their mean sigmoid probability; 0 when the batch has
    no region. logits, target: (B, K, H, W)."""
    labels, count = region_labels(target, channel)
    if not count:
        return logits.sum() * 0.0
    return 1.0 - mean_of_region_means(logits[:, channel], labels, count)
