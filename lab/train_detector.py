"""Train the Res-UNet damage detector on synthetic damage over the TRAIN paintings; ship the best weights.

Tiles are cut from the training paintings, damaged on the fly (seeded by step) and augmented. A share of
each batch may be real crack photos (`--real-train IMAGES:MASKS[:VALUE]`, `--real-fraction P`; their training
splits only, lab.real_cracks) and a share undamaged painting crops with all-zero targets (`--clean-fraction
P`: intact paint taught as no damage). Every
`eval_every` steps ("epoch") the model is scored on a fixed set of damaged tiles from the VALIDATION
paintings (loss and F1 per class), logged to `<run_dir>/train.log` and `<run_dir>/metrics.jsonl`, and a
checkpoint (model + AdamW state, safetensors) is written so that a killed run resumes where it stopped.
At the end the best weights (by mean validation F1) go into the weights manifest.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

import models  # noqa: F401  (torchvision import fix before smp)
from lab.average_weights import average_state_dicts
from lab.checkpoint import init_from, load_checkpoint, save_checkpoint
from lab.detector_config import (
    DETECTOR_TILING,
    LOSSES,
    DetectorTrainConfig,
    augment_overrides,
    config_from_overrides,
    damage_overrides,
    loss_of,
    lr_at,
)
from lab.detector_data import load_paintings, make_batch
from lab.detector_validation import (
    RealPairs,
    evaluate_tiles,
    load_real_val,
    score_real,
    training_data,
    validation_tiles,
)
from lab.distill import distilled_targets, load_teacher
from lab.hard_negatives import load_hotspots
from lab.paintings import paintings
from lab.real_cracks import RealSet, RealSpec, load_real_set
from lab.synthesis.cracks import CRACK_KINDS
from lab.synthesis.synthetic_damage import CLASS_NAMES
from models.resunet import ResUNet
from models.weights import MANIFEST_PATH, WeightsEntry, save_weights, write_safetensors


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
    if not data["teacher_classes"] or not data["teacher"]:  # all classes (or unused): older checkpoints resume
        data.pop("teacher_classes")
    if not data["teacher"]:  # no distillation: checkpoints made before these fields resume
        data.pop("teacher")
        data.pop("teacher_weight")
    data.pop("hard_negatives")  # the file's path; its use is keyed by hard_fraction
    data.pop("flood_places")  # the same, keyed by flood_fraction
    for name, default in (("real_train", []), ("real_fraction", 0.0), ("clean_fraction", 0.0),
                          ("hard_fraction", 0.0), ("flood_fraction", 0.0), ("skeleton_weight", 0.0),
                          ("region_weight", 0.0),
                          ("rim_weight", 0.0), ("rim_width", 2), ("crack_rim_weight", 0.0), ("relative", False)):
        if data[name] == default:  # off: checkpoints made before these fields resume
            data.pop(name)
    if not data["augment"].get("p_edge"):
        data["augment"].pop("p_edge", None)  # off: checkpoints made before the field resume
    if not data["augment"].get("p_zoom"):
        data["augment"].pop("p_zoom", None)  # off: checkpoints made before these fields resume
        data["augment"].pop("zoom", None)
    if not data["damage"].get("core_contrast"):
        data["damage"].pop("core_contrast", None)  # off: checkpoints made before the field resume
    if tuple(data["damage"].get("crack_kinds", CRACK_KINDS)) == CRACK_KINDS:
        data["damage"].pop("crack_kinds", None)  # the default: checkpoints made before the field resume
    if not data["damage"].get("grounds"):
        data["damage"].pop("grounds", None)  # every ground: checkpoints made before the field resume
    if not data["damage"].get("ground_weights"):
        data["damage"].pop("ground_weights", None)  # the default mix: checkpoints made before the field resume
    return json.loads(json.dumps(data))  # tuples -> lists, as stored in the checkpoint


def train_detector(
    cfg: DetectorTrainConfig | None = None,
    *,
    train_paths: list[Path] | None = None,
    val_paths: list[Path] | None = None,
    manifest_path: Path = MANIFEST_PATH,
    echo: Callable[[str], None] | None = print,
    ship_only: bool = False,
) -> dict[str, Any]:
    """Train (resuming from `<run_dir>/checkpoint.safetensors` if present); returns the summary.

    `ship_only`: train no further; ship what the run's checkpoint (and snapshots) hold, as the end of the
    run would have (needs the checkpoint, a config that matches it and `ship`)."""
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
    real_train = [load_real_set(RealSpec.parse(spec)) for spec in cfg.real_train]
    teacher, teacher_record = load_teacher(cfg, manifest_path)
    hotspots = load_hotspots(Path(cfg.hard_negatives), train_paths) if cfg.hard_negatives else None
    floods = load_hotspots(Path(cfg.flood_places), train_paths) if cfg.flood_places else None

    model = ResUNet(**cfg.arch_args())
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = loss_of(cfg)
    ckpt_path, best_path = run_dir / "checkpoint.safetensors", run_dir / "best.safetensors"
    step, extra = 0, {"best": None, "history": [], "seconds": 0.0}
    if ship_only and (not ckpt_path.exists() or not cfg.ship):
        raise ValueError(f"ship_only needs {ckpt_path} (a run to ship) and shipping on (no --no-ship)")
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
    for real_set in real_train:
        log(f"real training pairs {len(real_set.stems)} from {real_set.spec.images} "
            f"(fraction {cfg.real_fraction} of tiles, all sets together)")
    if cfg.clean_fraction:
        log(f"clean tiles: fraction {cfg.clean_fraction} undamaged painting crops with all-zero targets")
    if hotspots is not None:
        log(f"hard negatives: {cfg.hard_fraction} of the clean crops centred on {sum(map(len, hotspots))} "
            f"flagged places in {sum(1 for h in hotspots if len(h))} paintings ({cfg.hard_negatives})")
    if floods is not None:
        log(f"flood places: {cfg.flood_fraction} of the damaged crops centred on {sum(map(len, floods))} places "
            f"flagged beside damage in {sum(1 for h in floods if len(h))} paintings ({cfg.flood_places})")
    start, seconds_before = time.perf_counter(), float(extra.get("seconds", 0.0))
    running, t_last = [], time.perf_counter()
    while step < cfg.steps and not ship_only:
        model.train()
        lr = lr_at(step, cfg, seconds_before + time.perf_counter() - start)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = make_batch(train_images, cfg.tile, cfg.batch, cfg.seed * 1_000_003 + step, cfg.damage,
                          cfg.augment, real_train, cfg.real_fraction, cfg.clean_fraction,
                          hotspots, cfg.hard_fraction, floods, cfg.flood_fraction)
        x_t = torch.from_numpy(x).to(memory_format=torch.channels_last)  # (B, 3, T, T)
        y_t = torch.from_numpy(y)  # (B, 2, T, T)
        if teacher is not None:
            y_t = distilled_targets(teacher, x_t, y_t, cfg.teacher_weight, cfg.bf16, cfg.teacher_views,
                                    cfg.teacher_channels())
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
                              real_pairs, real_train)
        summary["shipped"] = {"name": entry.name, "file": entry.file, "sha256": entry.sha256,
                              "metrics": entry.metrics}
    return summary


def _save_state(model: torch.nn.Module, path: Path) -> None:
    write_safetensors({k: v.contiguous() for k, v in model.state_dict().items()}, path)


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
    real_train: list[RealSet] | None = None,
) -> WeightsEntry:
    """Store `model` (fp16 if `store_half`) in the manifest, with validation scores of what was stored."""
    stored = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    if cfg.store_half:
        stored = stored.half()
    # Score the weights exactly as they will load: fp16-rounded, back in an fp32 network.
    check = ResUNet(**cfg.arch_args())
    check.load_state_dict(stored.state_dict())
    val = evaluate_tiles(check, val_x, val_y, loss_of(cfg))
    training = {
        "config": cfg.to_json(),
        "data": training_data(train_paths, val_paths, cfg, real_train),
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


def main(argv: list[str] | None = None) -> None:
    """`python -m lab.train_detector [--steps N] [--max-minutes M] [--run-dir D] [--init-weights F]
    [--free-cracks P] [--texture P] [--dark-cracks P] [--crack-contrast LO,HI]
    [--damage-style S] [--faint-cracks P] [--crack-width LO,HI] [--loss-size-of PX] [--grounds G,G]
    [--ground-weights G=W,...] [--core-contrast F] [--stroke-negatives P] [--refine C] [--relative]
    [--skeleton-weight W] [--region-weight W] [--rim-weight W] [--rim-width PX] [--crack-rim-weight W] [--no-ship]
    [--real-val-images DIR --real-val-masks DIR [--real-val-mask-value V]]
    [--teacher NAME [--teacher-weight W] [--teacher-views N] [--teacher-classes C[,C]]]
    [--real-train IMAGES_DIR:MASKS_DIR[:MASK_VALUE] ... --real-fraction P] [--clean-fraction P]
    [--edge-fraction P] [--zoom-fraction P [--zoom LO,HI]] [--weights-name NAME] [--ship-only]`
    (no Prefect)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--max-minutes", type=float)
    parser.add_argument("--run-dir")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--refine", type=int)
    parser.add_argument("--relative", action="store_true", help="the encoder also sees the image's contrast "
                        "relative to its local mean (an RGB --init-weights is widened with zero weights)")
    parser.add_argument("--init-weights")
    parser.add_argument("--free-cracks", type=float, help="DamageConfig.p_free_cracks (isolated cracks)")
    parser.add_argument("--texture", type=float, help="DamageConfig.p_texture (grainy surfaces)")
    parser.add_argument("--dark-cracks", type=float, help="DamageConfig.p_dark_cracks (dirt-filled, not ground)")
    parser.add_argument("--crack-contrast", help="DamageConfig.crack_contrast as LO,HI (default 0.55,0.95)")
    parser.add_argument("--damage-style", choices=("classic", "realistic"),
                        help="DamageConfig.style: the damage generator (default classic)")
    parser.add_argument("--faint-cracks", type=float,
                        help="DamageConfig.p_faint_cracks: share of realistic images with faint cracks (default 0.2)")
    parser.add_argument("--crack-width", help="DamageConfig.crack_width as LO,HI: widest crack of a realistic "
                        "main network, px (default 1.2,2.8)")
    parser.add_argument("--loss-size-of", type=int, help="DamageConfig.loss_size_of: draw realistic paint-loss "
                        "sizes as on an image with this shorter side, px (default 0: the tile's own)")
    parser.add_argument("--grounds", help="DamageConfig.grounds: the only grounds realistic losses and light cracks "
                        "expose, comma-separated among gesso,bole,plaster,canvas (default all)")
    parser.add_argument("--ground-weights", help="DamageConfig.ground_weights as NAME=W,...: how often realistic "
                        "losses and light cracks expose each ground, e.g. canvas=0.3,bole=0.3,gesso=0.2,plaster=0.2 "
                        "(default gesso=0.35,bole=0.15,plaster=0.25,canvas=0.25)")
    parser.add_argument("--core-contrast", type=float, help="DamageConfig.core_contrast: label a realistic crack's "
                        "core where its change exceeds this fraction of the paint's luminance (default 0: off)")
    parser.add_argument("--stroke-negatives", type=float, help="DamageConfig.p_strokes: share of realistic images "
                        "that also get dark 3-6 px brushstrokes and birds painted unlabelled (default 0)")
    parser.add_argument("--loss", choices=LOSSES)
    parser.add_argument("--skeleton-weight", type=float,
                        help="weight of the craquelure skeleton-recall term added to the loss (default 0: none)")
    parser.add_argument("--region-weight", type=float,
                        help="weight of the paint-loss region-recall term added to the loss (default 0: none)")
    parser.add_argument("--rim-weight", type=float, help="weight of the paint-loss region-rim term (the probability "
                        "in a ring around each true loss) added to the loss (default 0: none)")
    parser.add_argument("--rim-width", type=int, help="px: the width of that ring (default 2)")
    parser.add_argument("--crack-rim-weight", type=float, help="weight of the craquelure channel's region-rim term "
                        "(the probability in a 2-px ring around true cracks) added to the loss (default 0: none)")
    parser.add_argument("--snapshot-every", type=int, help="keep the weights every N steps in <run-dir>/snapshots")
    parser.add_argument("--average-from", type=int, help="ship the average of the snapshots from this step on")
    parser.add_argument("--no-ship", action="store_true", help="keep the best weights in the run folder only")
    parser.add_argument("--real-val-images", help="real crack photos scored at every evaluation (monitoring only)")
    parser.add_argument("--real-val-masks", help="their masks (same stems)")
    parser.add_argument("--real-val-mask-value", type=int, help="only this mask value is a crack (default: nonzero)")
    parser.add_argument("--teacher", help="manifest name of a detector to distil (its probabilities are the targets)")
    parser.add_argument("--teacher-weight", type=float, help="target = w * teacher + (1 - w) * label (default 1)")
    parser.add_argument("--teacher-views", type=int, help="average the teacher over 1, 2, 4 or 8 flipped views")
    parser.add_argument("--teacher-classes", help="comma-separated classes whose targets the teacher mixes into "
                        "(default all: craquelure,paint_loss)")
    parser.add_argument("--real-train", action="append", metavar="IMAGES_DIR:MASKS_DIR[:MASK_VALUE]",
                        help="real crack photos to train on (training splits only; repeatable)")
    parser.add_argument("--real-fraction", type=float, help="share of tiles cropped from the real pairs")
    parser.add_argument("--clean-fraction", type=float,
                        help="share of tiles that are undamaged painting crops with all-zero targets")
    parser.add_argument("--hard-negatives", help="lab.hard_negatives JSON: flagged places on TRAIN paintings")
    parser.add_argument("--hard-fraction", type=float, help="share of the clean crops centred on those places")
    parser.add_argument("--flood-places", help="lab.hard_negatives --damaged JSON: TRAIN paint flagged beside damage")
    parser.add_argument("--flood-fraction", type=float, help="share of the damaged crops centred on those places")
    parser.add_argument("--edge-fraction", type=float,
                        help="AugmentConfig.p_edge: share of painting crops reflect-padded at an image edge")
    parser.add_argument("--zoom-fraction", type=float, help="AugmentConfig.p_zoom: share of damaged tiles drawn "
                        "small and enlarged after the damage is drawn (wider cracks and losses)")
    parser.add_argument("--zoom", help="AugmentConfig.zoom as LO,HI: their enlargement (default 1,3; below 1, "
                        "from 0.5, shrinks them: thinner, fainter cracks)")
    parser.add_argument("--weights-name", help="manifest name of the shipped weights")
    parser.add_argument("--ship-only", action="store_true",
                        help="train no further: ship what the run dir holds (same options as the run)")
    args = parser.parse_args(argv)
    ship_only = {"ship_only": True} if args.ship_only else {}
    summary = train_detector(config_from_overrides(
        steps=args.steps, max_minutes=args.max_minutes, run_dir=args.run_dir, threads=args.threads, lr=args.lr,
        refine=args.refine, relative=True if args.relative else None, init_weights=args.init_weights, loss=args.loss,
        skeleton_weight=args.skeleton_weight,
        region_weight=args.region_weight, rim_weight=args.rim_weight, rim_width=args.rim_width,
        crack_rim_weight=args.crack_rim_weight,
        snapshot_every=args.snapshot_every, average_from=args.average_from, ship=False if args.no_ship else None,
        real_val_images=args.real_val_images, real_val_masks=args.real_val_masks,
        real_val_mask_value=args.real_val_mask_value, teacher=args.teacher, teacher_weight=args.teacher_weight,
        teacher_views=args.teacher_views, weights_name=args.weights_name,
        teacher_classes=tuple(args.teacher_classes.split(",")) if args.teacher_classes else None,
        real_train=tuple(args.real_train) if args.real_train else None, real_fraction=args.real_fraction,
        clean_fraction=args.clean_fraction, hard_negatives=args.hard_negatives, hard_fraction=args.hard_fraction,
        flood_places=args.flood_places, flood_fraction=args.flood_fraction,
        augment=augment_overrides(args.edge_fraction, args.zoom_fraction, args.zoom),
        damage=damage_overrides(args.free_cracks, args.texture, args.dark_cracks, args.crack_contrast,
                                args.damage_style, args.faint_cracks, args.crack_width, args.loss_size_of,
                                args.grounds, args.core_contrast, args.stroke_negatives, args.ground_weights)),
        **ship_only)
    print(json.dumps({k: summary[k] for k in ("steps", "minutes", "shipped") if k in summary}, indent=2))


if __name__ == "__main__":
    main()
