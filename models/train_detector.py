"""Train the Res-UNet damage detector on synthetic damage over the TRAIN paintings; ship the best weights.

Tiles are cut from the training paintings, damaged on the fly (seeded by step) and augmented. Every
`eval_every` steps ("epoch") the model is scored on a fixed set of damaged tiles from the VALIDATION
paintings (loss and F1 per class), logged to `<run_dir>/train.log` and `<run_dir>/metrics.jsonl`, and a
checkpoint (model + AdamW state, safetensors) is written so that a killed run resumes where it stopped.
At the end the best weights (by mean validation F1) go into the weights manifest.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import models  # noqa: F401  (torchvision import fix before smp)
from models.average_weights import average_state_dicts
from models.checkpoint import init_from, load_checkpoint, save_checkpoint
from models.detector_data import AugmentConfig, load_paintings, make_batch
from models.resunet import DEFAULT_DECODER, ResUNet
from models.weights import MANIFEST_PATH, Tiling, WeightsEntry, save_weights
from pipeline.detect_infer import VIEWS, tile_probabilities
from pipeline.metrics import Counts, confusion
from pipeline.paintings import paintings
from pipeline.synthetic_damage import CLASS_NAMES, CRACK_KINDS, DamageConfig

LOSSES = ("dice+bce", "dice+focal", "lovasz+bce")
DETECTOR_TILING = Tiling(tile=512, halo=64, channels=3, value_range=(0.0, 1.0), multiple_of=32)


@dataclass(frozen=True)
class DetectorTrainConfig:
    """Everything that decides a detector training run."""

    encoder: str = "resnet18"
    decoder_channels: tuple[int, ...] = DEFAULT_DECODER
    refine: int = 0  # channels of the full-resolution refinement branch (models.resunet.ResUNet); 0 = none
    tile: int = 256
    batch: int = 8
    steps: int = 1800
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 50
    eval_every: int = 150
    checkpoint_every: int = 50
    snapshot_every: int = 0  # also keep the weights every N steps in <run_dir>/snapshots/ (0 = none)
    average_from: int = 0  # ship the uniform average of the snapshots from this step on, not the best (0 = best)
    val_tiles: int = 48
    loss: str = "dice+bce"
    seed: int = 0
    threads: int = 1
    bf16: bool = True  # bf16 autocast for the forward pass (weights and optimizer stay fp32)
    max_minutes: float = 0.0  # stop early (and ship the best so far) after this wall time; 0 = no limit
    run_dir: str = "runs/detector"
    weights_name: str = "detector-resunet18"
    ship: bool = True
    store_half: bool = True  # store shipped weights as fp16 (loaded back to fp32): half the file size
    damage: DamageConfig = field(default_factory=DamageConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    init_weights: str = ""  # weights file or training checkpoint to start from (matching tensors are copied)
    # Real crack photos scored (craquelure P/R/F1, whole images) at every evaluation beside the synthetic tiles:
    # monitoring only, never trained on, and not used to pick the best weights.
    real_val_images: str = ""
    real_val_masks: str = ""
    real_val_mask_value: int = 0  # only this mask value is a crack (UAV75: 255); 0 = any nonzero value
    teacher: str = ""  # manifest name of a detector to distil: its probabilities become (soft) targets
    teacher_weight: float = 1.0  # with a teacher: target = w * teacher probability + (1 - w) * label
    teacher_views: int = 1  # the teacher's probabilities averaged over this many flipped views (its --tta)

    def __post_init__(self) -> None:
        if self.tile % 32:
            raise ValueError(f"tile must be a multiple of 32, got {self.tile}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        for name in ("batch", "steps", "eval_every", "checkpoint_every", "val_tiles", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.snapshot_every < 0 or self.average_from < 0:
            raise ValueError("snapshot_every and average_from must be >= 0")
        if self.average_from and not self.snapshot_every:
            raise ValueError("average_from needs snapshot_every (the snapshots to average)")
        if self.refine < 0:
            raise ValueError(f"refine must be >= 0, got {self.refine}")
        if self.init_weights and not Path(self.init_weights).is_file():
            raise ValueError(f"{self.init_weights}: init_weights file not found")
        if bool(self.real_val_images) != bool(self.real_val_masks):
            raise ValueError("real_val_images and real_val_masks go together (a folder of each)")
        for folder in (self.real_val_images, self.real_val_masks):
            if folder and not Path(folder).is_dir():
                raise ValueError(f"{folder}: real validation folder not found")
        if self.teacher_views not in VIEWS:
            raise ValueError(f"teacher_views must be one of {', '.join(map(str, VIEWS))}, got {self.teacher_views}")
        if not 0.0 <= self.teacher_weight <= 1.0:
            raise ValueError(f"teacher_weight must be in [0, 1], got {self.teacher_weight}")
        if not 0 <= self.real_val_mask_value <= 65535:
            raise ValueError(f"real_val_mask_value must be in [0, 65535], got {self.real_val_mask_value}")

    def arch_args(self) -> dict[str, Any]:
        args = {"encoder_name": self.encoder, "classes": 2, "decoder_channels": list(self.decoder_channels)}
        return args | ({"refine": self.refine} if self.refine else {})

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["decoder_channels"] = list(self.decoder_channels)
        return data


def lr_at(step: int, cfg: DetectorTrainConfig, elapsed_s: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to 2% of the peak over the steps or the time budget.

    With `max_minutes` set, progress is the larger of the step fraction and the time fraction, so the
    schedule completes whichever budget runs out first (the machine is shared; step times vary).
    """
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    if cfg.max_minutes > 0:
        progress = max(progress, elapsed_s / (cfg.max_minutes * 60))
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def make_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Dice + BCE, Dice + focal, or Lovasz hinge (a surrogate of IoU itself) + BCE, on (B, 2, H, W) logits."""
    import segmentation_models_pytorch as smp  # after `import models` (torchvision fix)

    first = (smp.losses.LovaszLoss("multilabel", from_logits=True) if name == "lovasz+bce"
             else smp.losses.DiceLoss("multilabel", from_logits=True))
    other = (smp.losses.FocalLoss("multilabel") if name == "dice+focal" else torch.nn.BCEWithLogitsLoss())

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return first(logits, target) + other(logits, target)

    return loss


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


def training_data(train_paths: list[Path], val_paths: list[Path]) -> dict[str, Any]:
    """The manifest's record of what a detector was trained and validated on."""
    return {
        "train_paintings": [p.name for p in train_paths],
        "val_paintings": [p.name for p in val_paths],
        "damage": "pipeline.synthetic_damage (synthetic craquelure + paint loss, seeded per step)",
    }


RealPairs = list[tuple[np.ndarray, np.ndarray]]


def load_real_val(cfg: DetectorTrainConfig) -> RealPairs:
    """(float image, bool crack mask) pairs of the real validation photos; empty when none are configured."""
    if not cfg.real_val_images:
        return []
    from pipeline.detect_eval import EvalOptions, pair_files, read_pair
    from pipeline.image_io import to_float

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
    from pipeline.detect_infer import predict_probabilities

    model.eval()
    counts = Counts()
    for image, truth in pairs:
        prob = predict_probabilities(model, image, tile=512, overlap=64)
        counts += confusion(prob[CLASS_NAMES.index("craquelure")] > 0.5, truth)
    return counts.scores()


def load_teacher(cfg: DetectorTrainConfig, manifest_path: Path) -> tuple[torch.nn.Module | None, dict[str, Any]]:
    """The configured teacher (sha256-verified, eval mode) and its record, or (None, {}) without one."""
    if not cfg.teacher:
        return None, {}
    from models.weights import load_model

    teacher, entry = load_model(cfg.teacher, manifest_path=manifest_path)
    record = {"name": entry.name, "file": entry.file, "sha256": entry.sha256, "architecture": entry.architecture,
              "weight": cfg.teacher_weight, "views": cfg.teacher_views}
    return teacher.to(memory_format=torch.channels_last), record


def distilled_targets(
    teacher: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, weight: float, bf16: bool = False,
    views: int = 1,
) -> torch.Tensor:
    """Soft targets `weight * sigmoid(teacher(x)) + (1 - weight) * labels`, (B, 2, H, W) in [0, 1], from a
    teacher in eval mode (as `load_teacher` gives it; it never trains, so no gradient is kept). With `views`
    > 1 the teacher's probabilities are averaged over that many flipped views of the tiles, as `--tta` does at
    inference (pipeline.detect_infer.tile_probabilities), so the student learns the augmented teacher.

    BCE and Dice are linear in a soft target, so this is the same as mixing the distillation and label losses
    with those weights. A teacher probability above 0.5 / w stays a positive target whatever the label says.
    """
    with torch.no_grad():
        prob = tile_probabilities(teacher, x, bf16=bf16, views=views)
    return weight * prob + (1.0 - weight) * labels


class _Log:
    def __init__(self, path: Path, echo: Callable[[str], None] | None) -> None:
        self.path = path
        self.echo = echo

    def __call__(self, message: str) -> None:
        line = f"{dt.datetime.now().isoformat(timespec='seconds')} {message}"
        with open(self.path, "a") as fh:
            fh.write(line + "\n")
        if self.echo:
            self.echo(line)


def _config_key(cfg: DetectorTrainConfig) -> dict[str, Any]:
    """The fields that must match for a checkpoint to be resumed (not run length or shipping options)."""
    data = cfg.to_json()
    for name in ("steps", "max_minutes", "ship", "weights_name", "run_dir", "threads", "eval_every",
                 "checkpoint_every", "init_weights", "snapshot_every", "average_from", "real_val_images",
                 "real_val_masks", "real_val_mask_value"):
        data.pop(name)
    if data["teacher_views"] == 1 or not data["teacher"]:  # default or unused: older checkpoints resume
        data.pop("teacher_views")
    if not data["teacher"]:  # no distillation: checkpoints made before these fields resume
        data.pop("teacher")
        data.pop("teacher_weight")
    if tuple(data["damage"].get("crack_kinds", CRACK_KINDS)) == CRACK_KINDS:
        data["damage"].pop("crack_kinds", None)  # the default: checkpoints made before the field resume
    return json.loads(json.dumps(data))  # tuples -> lists, as stored in the checkpoint


def train_detector(
    cfg: DetectorTrainConfig | None = None,
    *,
    train_paths: list[Path] | None = None,
    val_paths: list[Path] | None = None,
    manifest_path: Path = MANIFEST_PATH,
    echo: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Train (resuming from `<run_dir>/checkpoint.safetensors` if present); returns the summary."""
    cfg = cfg or DetectorTrainConfig()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log = _Log(run_dir / "train.log", echo)
    train_paths = train_paths if train_paths is not None else paintings("train")
    val_paths = val_paths if val_paths is not None else paintings("val")
    if not train_paths or not val_paths:
        raise FileNotFoundError("no training or validation paintings found (is ../shared/data present?)")
    overlap = {p.name for p in train_paths} & {p.name for p in val_paths}
    if overlap:
        raise ValueError(f"paintings in both train and val: {sorted(overlap)}")
    train_images = load_paintings(train_paths)
    val_images = load_paintings(val_paths)
    val_x, val_y = validation_tiles(cfg, val_images)
    real_pairs = load_real_val(cfg)
    teacher, teacher_record = load_teacher(cfg, manifest_path)

    model = ResUNet(**cfg.arch_args())
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = make_loss(cfg.loss)
    ckpt_path, best_path = run_dir / "checkpoint.safetensors", run_dir / "best.safetensors"
    step, extra = 0, {"best": None, "history": [], "seconds": 0.0}
    if ckpt_path.exists():
        step, extra = load_checkpoint(ckpt_path, model, optimizer)
        if extra.get("config_key") != _config_key(cfg):
            raise ValueError(f"{ckpt_path}: checkpoint was made with another configuration; "
                             f"delete {run_dir} or use another --run-dir to start afresh")
        log(f"resumed at step {step}")
    elif cfg.init_weights:
        fresh = init_from(model, Path(cfg.init_weights))
        log(f"started from {cfg.init_weights}; left at their init: {', '.join(fresh) or 'none'}")
    extra["config_key"] = _config_key(cfg)
    log(f"config {json.dumps(cfg.to_json())}")
    log(f"train paintings {len(train_paths)}, val paintings {len(val_paths)} "
        f"({', '.join(p.stem[:40] for p in val_paths)})")
    start, seconds_before = time.perf_counter(), float(extra.get("seconds", 0.0))
    running, t_last = [], time.perf_counter()
    while step < cfg.steps:
        model.train()
        lr = lr_at(step, cfg, seconds_before + time.perf_counter() - start)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = make_batch(train_images, cfg.tile, cfg.batch, cfg.seed * 1_000_003 + step, cfg.damage,
                          cfg.augment)
        x_t = torch.from_numpy(x).to(memory_format=torch.channels_last)  # (B, 3, T, T)
        y_t = torch.from_numpy(y)  # (B, 2, T, T)
        if teacher is not None:
            y_t = distilled_targets(teacher, x_t, y_t, cfg.teacher_weight, cfg.bf16, cfg.teacher_views)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            logits = model(x_t)
        loss = loss_fn(logits.float(), y_t)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running.append(float(loss.detach()))
        step += 1
        elapsed = seconds_before + time.perf_counter() - start
        if step % 10 == 0:
            now = time.perf_counter()
            log(f"step {step}/{cfg.steps} loss {np.mean(running):.4f} lr {lr:.2e} "
                f"{(now - t_last) / 10:.2f}s/step elapsed {elapsed / 60:.1f}min")
            running, t_last = [], now
        out_of_time = cfg.max_minutes > 0 and elapsed > cfg.max_minutes * 60
        if step % cfg.eval_every == 0 or step == cfg.steps or out_of_time:
            val = evaluate_tiles(model, val_x, val_y, loss_fn)
            if real_pairs:
                val["real_val"] = score_real(model, real_pairs)
            record = {"step": step, "minutes": round(elapsed / 60, 2), **val}
            extra["history"].append(record)
            with open(run_dir / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")
            log(f"val step {step} loss {val['loss']:.4f} " + " ".join(
                f"{n} F1 {val[n]['f1']:.4f} P {val[n]['precision']:.3f} R {val[n]['recall']:.3f}"
                for n in CLASS_NAMES))
            if real_pairs:
                real = val["real_val"]
                log(f"real val step {step} ({len(real_pairs)} photos) craquelure F1 {real['f1']:.4f} "
                    f"P {real['precision']:.3f} R {real['recall']:.3f}")
            if extra["best"] is None or val["mean_f1"] > extra["best"]["mean_f1"]:
                extra["best"] = record
                _save_state(model, best_path)
                log(f"new best mean F1 {val['mean_f1']:.4f} at step {step}")
        if cfg.snapshot_every and step % cfg.snapshot_every == 0:
            (run_dir / "snapshots").mkdir(exist_ok=True)
            _save_state(model, run_dir / "snapshots" / f"step-{step:06d}.safetensors")
        if step % cfg.checkpoint_every == 0 or step == cfg.steps or out_of_time:
            extra["seconds"] = elapsed
            save_checkpoint(ckpt_path, model, optimizer, step, extra)
        if out_of_time:
            log(f"stopping at step {step}: max_minutes {cfg.max_minutes} reached")
            break
    summary: dict[str, Any] = {"steps": step, "minutes": round(extra["seconds"] / 60, 2), "best": extra["best"]}
    if teacher_record:
        summary["teacher"] = teacher_record
    if cfg.ship:
        if cfg.average_from:
            snaps = averaged_snapshots(run_dir, cfg.average_from)
            model.load_state_dict(average_state_dicts(snaps))
            summary["selected"] = (f"uniform average of {len(snaps)} snapshots, steps {cfg.average_from}-"
                                   f"{_snapshot_step(snaps[-1])} every {cfg.snapshot_every}")
        else:
            model.load_state_dict(load_file(str(best_path)))
            summary["selected"] = f"best mean validation F1, step {summary['best']['step']}"
        entry = ship_detector(model, cfg, train_paths, val_paths, summary, val_x, val_y, manifest_path, log,
                              real_pairs)
        summary["shipped"] = {"name": entry.name, "file": entry.file, "sha256": entry.sha256,
                              "metrics": entry.metrics}
    return summary


def _save_state(model: torch.nn.Module, path: Path) -> None:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


def _snapshot_step(path: Path) -> int:
    return int(path.stem.split("-")[1])  # step-000150.safetensors -> 150


def averaged_snapshots(run_dir: Path, from_step: int) -> list[Path]:
    """The run's snapshot files at or after `from_step`, in step order (refuses none)."""
    snaps = sorted(p for p in (run_dir / "snapshots").glob("step-*.safetensors") if _snapshot_step(p) >= from_step)
    if not snaps:
        raise FileNotFoundError(f"{run_dir / 'snapshots'}: no snapshots from step {from_step} on to average")
    return snaps


def ship_detector(
    model: torch.nn.Module,
    cfg: DetectorTrainConfig,
    train_paths: list[Path],
    val_paths: list[Path],
    summary: dict[str, Any],
    val_x: np.ndarray,
    val_y: np.ndarray,
    manifest_path: Path,
    log: Callable[[str], None],
    real_pairs: RealPairs | None = None,
) -> WeightsEntry:
    """Store `model` (fp16 if `store_half`) in the manifest, with validation scores of what was stored."""
    stored = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    if cfg.store_half:
        stored = stored.half()
    # Score the weights exactly as they will load: fp16-rounded, back in an fp32 network.
    check = ResUNet(**cfg.arch_args())
    check.load_state_dict(stored.state_dict())
    val = evaluate_tiles(check, val_x, val_y, make_loss(cfg.loss))
    training = {
        "config": cfg.to_json(),
        "data": training_data(train_paths, val_paths),
        "steps": summary["steps"],
        "minutes": summary["minutes"],
        "selected": summary["selected"],
        **({"teacher": summary["teacher"]} if "teacher" in summary else {}),
        "stored_dtype": "float16" if cfg.store_half else "float32",
        "date": dt.datetime.now().isoformat(timespec="seconds"),
    }
    metrics = {
        "validation": {"tiles": cfg.val_tiles, "tile": cfg.tile, "threshold": 0.5, **val},
    }
    if real_pairs:
        metrics["real_validation"] = {"images": cfg.real_val_images, "masks": cfg.real_val_masks,
                                      "photos": len(real_pairs), "threshold": 0.5,
                                      "craquelure": score_real(check, real_pairs)}
    entry = save_weights(
        stored,
        name=cfg.weights_name,
        architecture="resunet",
        arch_args=cfg.arch_args(),
        tiling=DETECTOR_TILING,
        training=training,
        metrics=metrics,
        manifest_path=manifest_path,
    )
    log(f"shipped {entry.file} sha256 {entry.sha256[:16]} val " + " ".join(
        f"{n} F1 {val[n]['f1']:.4f}" for n in CLASS_NAMES))
    return entry


def config_from_overrides(**overrides: Any) -> DetectorTrainConfig:
    """A config with the given fields replaced (unknown names raise a TypeError naming them)."""
    names = {f.name for f in dataclasses.fields(DetectorTrainConfig)}
    unknown = set(overrides) - names
    if unknown:
        raise TypeError(f"unknown training option(s) {sorted(unknown)}")
    if isinstance(overrides.get("damage"), dict):  # JSON form (Prefect flow parameters): DamageConfig fields
        overrides = {**overrides, "damage": DamageConfig(**overrides["damage"])}
    return DetectorTrainConfig(**{k: v for k, v in overrides.items() if v is not None})


def damage_overrides(
    free_cracks: float | None = None, texture: float | None = None, dark_cracks: float | None = None,
    crack_contrast: str | None = None,
) -> dict[str, Any] | None:
    """DamageConfig fields for the styles and mixes that were given (JSON-able), or None to keep the default.
    `crack_contrast` is "LO,HI" (e.g. "0.2,0.95"); a malformed one is a ValueError naming it."""
    given: list[tuple[str, Any]] = [("p_free_cracks", free_cracks), ("p_texture", texture),
                                    ("p_dark_cracks", dark_cracks)]
    if crack_contrast is not None:
        try:
            lo, hi = (float(v) for v in crack_contrast.split(","))
        except ValueError:
            raise ValueError(f"crack contrast must be two numbers LO,HI, got {crack_contrast!r}") from None
        given.append(("crack_contrast", [lo, hi]))
    extra = {k: v for k, v in given if v is not None}
    return extra or None


def main(argv: list[str] | None = None) -> None:
    """`python -m models.train_detector [--steps N] [--max-minutes M] [--run-dir D] [--init-weights F]
    [--free-cracks P] [--texture P] [--dark-cracks P] [--crack-contrast LO,HI] [--refine C] [--no-ship]
    [--real-val-images DIR --real-val-masks DIR [--real-val-mask-value V]]
    [--teacher NAME [--teacher-weight W] [--teacher-views N]]`
    (no Prefect)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--max-minutes", type=float)
    parser.add_argument("--run-dir")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--refine", type=int)
    parser.add_argument("--init-weights")
    parser.add_argument("--free-cracks", type=float, help="DamageConfig.p_free_cracks (isolated cracks)")
    parser.add_argument("--texture", type=float, help="DamageConfig.p_texture (grainy surfaces)")
    parser.add_argument("--dark-cracks", type=float, help="DamageConfig.p_dark_cracks (dirt-filled, not ground)")
    parser.add_argument("--crack-contrast", help="DamageConfig.crack_contrast as LO,HI (default 0.55,0.95)")
    parser.add_argument("--loss", choices=LOSSES)
    parser.add_argument("--snapshot-every", type=int, help="keep the weights every N steps in <run-dir>/snapshots")
    parser.add_argument("--average-from", type=int, help="ship the average of the snapshots from this step on")
    parser.add_argument("--no-ship", action="store_true", help="keep the best weights in the run folder only")
    parser.add_argument("--real-val-images", help="real crack photos scored at every evaluation (monitoring only)")
    parser.add_argument("--real-val-masks", help="their masks (same stems)")
    parser.add_argument("--real-val-mask-value", type=int, help="only this mask value is a crack (default: nonzero)")
    parser.add_argument("--teacher", help="manifest name of a detector to distil (its probabilities are the targets)")
    parser.add_argument("--teacher-weight", type=float, help="target = w * teacher + (1 - w) * label (default 1)")
    parser.add_argument("--teacher-views", type=int, help="average the teacher over 1, 2, 4 or 8 flipped views")
    args = parser.parse_args(argv)
    summary = train_detector(config_from_overrides(
        steps=args.steps, max_minutes=args.max_minutes, run_dir=args.run_dir, threads=args.threads, lr=args.lr,
        refine=args.refine, init_weights=args.init_weights, loss=args.loss,
        snapshot_every=args.snapshot_every, average_from=args.average_from, ship=False if args.no_ship else None,
        real_val_images=args.real_val_images, real_val_masks=args.real_val_masks,
        real_val_mask_value=args.real_val_mask_value, teacher=args.teacher, teacher_weight=args.teacher_weight,
        teacher_views=args.teacher_views,
        damage=damage_overrides(args.free_cracks, args.texture, args.dark_cracks, args.crack_contrast)))
    print(json.dumps({k: summary[k] for k in ("steps", "minutes", "shipped") if k in summary}, indent=2))


if __name__ == "__main__":
    main()
