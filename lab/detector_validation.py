"""What a detector training run is scored on: the fixed VALIDATION tiles (loss, per-class F1) and, for
monitoring only, real crack photos scored whole and tiled."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import models  # noqa: F401  (torchvision import fix before smp)
from lab.detector_config import DetectorTrainConfig
from lab.detector_data import make_batch
from lab.eval.metrics import Counts, confusion
from lab.real_cracks import RealSet
from lab.synthesis.synthetic_damage import CLASS_NAMES


@torch.inference_mode()
def evaluate_tiles(
    model: torch.nn.Module,
    images: np.ndarray,
    targets: np.ndarray,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batch: int = 8,
    bf16: bool = False,
) -> dict[str, Any]:
    """Loss and per-class scores (threshold 0.5) over (N, 3, T, T) images and (N, 2, T, T) targets."""
    model.eval()
    counts = [Counts() for _ in CLASS_NAMES]
    losses = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i : i + batch])
        y = torch.from_numpy(targets[i : i + batch])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        logits = logits.float()
        losses.append(float(loss_fn(logits, y)) * len(x))
        pred = (logits > 0).numpy()
        for c in range(len(CLASS_NAMES)):
            counts[c] += confusion(pred[:, c], targets[i : i + batch, c] > 0.5)
    result: dict[str, Any] = {"loss": sum(losses) / len(images)}
    for name, count in zip(CLASS_NAMES, counts, strict=True):
        result[name] = count.scores()
    result["mean_f1"] = float(np.mean([result[n]["f1"] for n in CLASS_NAMES]))
    return result


def validation_tiles(cfg: DetectorTrainConfig, val_images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The run's fixed VALIDATION set: (N, 3, T, T) damaged tiles and (N, 2, T, T) targets, seeded by cfg.seed."""
    return make_batch(val_images, cfg.tile, cfg.val_tiles, 1_000_003 + cfg.seed, cfg.damage, None)


def training_data(
    train_paths: list[Path], val_paths: list[Path], cfg: DetectorTrainConfig | None = None,
    real: list[RealSet] | None = None,
) -> dict[str, Any]:
    """The manifest's record of what a detector was trained and validated on."""
    data: dict[str, Any] = {
        "train_paintings": [p.name for p in train_paths],
        "val_paintings": [p.name for p in val_paths],
        "damage": "lab.synthesis.synthetic_damage (synthetic craquelure + paint loss, seeded per step)",
    }
    if real:
        data["real_train"] = {"fraction": cfg.real_fraction if cfg else None,
                              "label": "crack mask -> craquelure; paint loss 0",
                              "sets": [s.record() for s in real]}
    if cfg is not None and cfg.clean_fraction:
        data["clean_tiles"] = {"fraction": cfg.clean_fraction,
                               "what": "TRAIN painting crops with no damage drawn, all-zero targets"}
    return data


RealPairs = list[tuple[np.ndarray, np.ndarray]]


def load_real_val(cfg: DetectorTrainConfig) -> RealPairs:
    """(float image, bool crack mask) pairs of the real validation photos; empty when none are configured."""
    if not cfg.real_val_images:
        return []
    from lab.eval.detect_eval import EvalOptions, pair_files, read_pair
    from pipeline.io.image_io import to_float

    opts = EvalOptions(classes=("craquelure",), mask_value=cfg.real_val_mask_value or None)
    pairs = []
    for image_path, mask_path in pair_files(Path(cfg.real_val_images), Path(cfg.real_val_masks)):
        image, truth = read_pair(image_path, mask_path, opts)
        pairs.append((to_float(image), truth["craquelure"]))
    if not pairs:
        raise ValueError(f"{cfg.real_val_images}: no image/mask pairs for real validation")
    return pairs


@torch.inference_mode()
def score_real(model: torch.nn.Module, pairs: RealPairs) -> dict[str, float]:
    """Pooled craquelure scores (threshold 0.5) of whole-image, tiled predictions over `pairs`."""
    from pipeline.stages.detect_infer import predict_probabilities

    model.eval()
    counts = Counts()
    for image, truth in pairs:
        prob = predict_probabilities(model, image, tile=512, overlap=64)
        counts += confusion(prob[CLASS_NAMES.index("craquelure")] > 0.5, truth)
    return counts.scores()


def validation_metrics(model: torch.nn.Module, val_paths: list[Path] | None = None) -> dict[str, Any]:
    """Scores on the detector training's own VALIDATION tiles (default config, so the same tiles as
    lab.train_detector), so that a combined detector's manifest entry is comparable with a trained one's."""
    from lab.detector_config import make_loss
    from lab.detector_data import load_paintings
    from lab.paintings import paintings

    cfg = DetectorTrainConfig()
    val_x, val_y = validation_tiles(cfg, load_paintings(val_paths or paintings("val")))
    return {"tiles": cfg.val_tiles, "tile": cfg.tile, "threshold": 0.5,
            **evaluate_tiles(model, val_x, val_y, make_loss(cfg.loss))}
