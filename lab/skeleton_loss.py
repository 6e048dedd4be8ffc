"""Skeleton recall: the share of a thin target's centre line that the prediction covers, as a loss term.

Kirchhoff et al., "Skeleton Recall Loss for Connectivity Conserving and Resource Efficient Segmentation of Thin
Tubular Structures" (ECCV 2024): the target is skeletonized and the skeleton widened by one pixel ("tubed");
the term is 1 - sum(p * S) / sum(S) per class over the batch, p the sigmoid probability. A crack missed
along its length costs its whole share however thin it is, where Dice and BCE weigh it by its few pixels.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import binary_dilation
from skimage.morphology import skeletonize

_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)


def tubed_skeletons(target: torch.Tensor, channels: tuple[int, ...]) -> torch.Tensor:
    """(B, K, H, W) float targets -> (B, len(channels), H, W) float: the skeleton of each target >= 0.5, widened
    by one pixel (a 4-neighbour cross) and kept inside the target."""
    masks = target[:, list(channels)].detach().cpu().numpy() >= 0.5  # (B, k, H, W) bool
    out = np.zeros(masks.shape, np.float32)
    for b in range(masks.shape[0]):
        for k in range(masks.shape[1]):
            if masks[b, k].any():
                out[b, k] = binary_dilation(skeletonize(masks[b, k]), _CROSS) & masks[b, k]
    return torch.from_numpy(out).to(target.device)


def skeleton_recall(logits: torch.Tensor, target: torch.Tensor, channels: tuple[int, ...] = (0,)) -> torch.Tensor:
    """1 - (soft recall of the tubed skeletons of `channels`), averaged over those channels that have any
    skeleton in the batch; 0 when none has. logits, target: (B, K, H, W)."""
    skeleton = tubed_skeletons(target, channels)  # (B, k, H, W)
    prob = torch.sigmoid(logits[:, list(channels)].float())
    total = skeleton.sum(dim=(0, 2, 3))  # (k,)
    present = total > 0
    if not bool(present.any()):
        return logits.sum() * 0.0
    covered = (prob * skeleton).sum(dim=(0, 2, 3))  # (k,)
    return (1.0 - covered[present] / total[present]).mean()
