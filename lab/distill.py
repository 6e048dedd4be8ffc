"""Distillation: a teacher detector's probabilities (optionally over flipped views, as --tta) as soft targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import models  # noqa: F401  (torchvision import fix before smp)
from lab.detector_config import DetectorTrainConfig
from pipeline.stages.detect_infer import tile_probabilities


def load_teacher(cfg: DetectorTrainConfig, manifest_path: Path) -> tuple[torch.nn.Module | None, dict[str, Any]]:
    """The configured teacher (sha256-verified, eval mode) and its record, or (None, {}) without one."""
    if not cfg.teacher:
        return None, {}
    from models.weights import load_model

    teacher, entry = load_model(cfg.teacher, manifest_path=manifest_path)
    record = {"name": entry.name, "file": entry.file, "sha256": entry.sha256, "architecture": entry.architecture,
              "weight": cfg.teacher_weight, "views": cfg.teacher_views,
              **({"classes": list(cfg.teacher_classes)} if cfg.teacher_classes else {})}
    return teacher.to(memory_format=torch.channels_last), record


def distilled_targets(
    teacher: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, weight: float, bf16: bool = False,
    views: int = 1, channels: list[int] | None = None,
) -> torch.Tensor:
    """Soft targets `weight * sigmoid(teacher(x)) + (1 - weight) * labels`, (B, 2, H, W) in [0, 1], from a
    teacher in eval mode (as `load_teacher` gives it; it never trains, so no gradient is kept). With `views`
    > 1 the teacher's probabilities are averaged over that many flipped views of the tiles, as `--tta` does at
    inference (pipeline.stages.detect_infer.tile_probabilities), so the student learns the augmented teacher.
    `channels` (default all) are the target channels mixed; the others stay the labels.

    BCE and Dice are linear in a soft target, so this is the same as mixing the distillation and label losses
    with those weights. A teacher probability above 0.5 / w stays a positive target whatever the label says.
    """
    with torch.no_grad():
        prob = tile_probabilities(teacher, x, bf16=bf16, views=views)
    mixed = weight * prob + (1.0 - weight) * labels
    if channels is None:
        return mixed
    out = labels.clone()
    out[:, channels] = mixed[:, channels]
    return out
