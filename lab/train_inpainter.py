"""Train the PConv U-Net on clean tiles of the TRAIN paintings with generated holes, in two phases.

Phase 1: Adam at `lr_phase1` with batch norm everywhere. Phase 2: Adam at `lr_phase2` with encoder batch
norm frozen (Liu et al. 2018). Holes: irregular strokes/blobs, craquelure and paint loss
(`lab.synthesis.masks`), hole ratios uniform over the bins 0-10 ... 50-60%. `hole_norm="hole"` averages the hole
L1 per image over its own hole (models.inpaint_loss.InpaintingLoss), so small holes count. Every
`steps_per_epoch` steps the run logs the mean loss terms and the PSNR/SSIM of the composite on fixed tiles
of the VALIDATION paintings (never trained on), and writes a resumable checkpoint (safetensors only, model +
Adam state; the step's randomness is derived from (seed, step), so a resumed run draws the same batches).

`adv_weight` > 0 adds an adversarial term: a spectral-norm patch discriminator (models.patch_disc) is trained
one step after each inpainter step, on the clean tile (real) against the composite (fake in its hole), and
the inpainter's loss gains `adv_weight` times the composite's generator loss. The discriminator and its Adam
state are saved in the same checkpoint, so a resumed run continues both. `decoder_only` trains the decoder
and refinement branch from `init_weights`, the encoder frozen.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open

from lab.checkpoint import init_from
from lab.inpainter_config import RESUMABLE_CHANGES, InpainterTrainConfig
from lab.inpainter_data import TileSampler, validation_set
from models.inpaint_loss import InpaintingLoss, LossWeights, build_feature_net
from models.patch_disc import PatchDiscriminator, discriminator_loss, generator_loss
from models.pconv import PConvUNet, composite
from models.weights import Tiling, WeightsEntry, save_weights, write_safetensors

WEIGHTS_NAME = "inpainter-pconv"


@torch.inference_mode()
def validate(model: PConvUNet, images: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    """Mean PSNR / SSIM of the composite (whole tile) and L1 over the hole."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    was_training = model.training
    model.eval()
    psnr, ssim, l1 = [], [], []
    for i in range(0, len(images), 4):
        x, m = images[i : i + 4], masks[i : i + 4]
        comp = composite(model(x * m, m).clamp(0, 1), x, m)
        for a, b, mm in zip(comp.numpy(), x.numpy(), m.numpy(), strict=True):
            a8 = np.rint(a * 255).astype(np.uint8).transpose(1, 2, 0)
            b8 = np.rint(b * 255).astype(np.uint8).transpose(1, 2, 0)
            psnr.append(peak_signal_noise_ratio(b8, a8, data_range=255))
            ssim.append(structural_similarity(b8, a8, channel_axis=2, data_range=255))
            hole = mm[0] < 0.5
            l1.append(float(np.abs(a8.astype(float) - b8)[hole].mean() / 255) if hole.any() else 0.0)
    model.train(was_training)
    return {"val_psnr": float(np.mean(psnr)), "val_ssim": float(np.mean(ssim)), "val_l1_hole": float(np.mean(l1))}


def _optimizer(model: PConvUNet, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)


def save_checkpoint(
    path: Path, model: PConvUNet, opt: torch.optim.Optimizer, meta: dict[str, Any],
    disc: torch.nn.Module | None = None, disc_opt: torch.optim.Optimizer | None = None,
) -> None:
    """Model and Adam state (and the discriminator's, if any) as safetensors; step, phase, config and log in the
    metadata. Atomic."""
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    for prefix, optimizer in (("opt", opt), ("dopt", disc_opt)):
        if optimizer is None:
            continue
        for idx, st in optimizer.state_dict()["state"].items():
            for key, val in st.items():
                tensors[f"{prefix}.{idx}.{key}"] = torch.as_tensor(val).detach().contiguous()
    if disc is not None:
        tensors.update({f"disc.{k}": v.detach().contiguous() for k, v in disc.state_dict().items()})
    write_safetensors(tensors, path, {"meta": json.dumps(meta)})


def load_checkpoint(path: Path, model: PConvUNet) -> tuple[dict[str, Any], dict[int, dict[str, torch.Tensor]]]:
    """Load model weights from a checkpoint; return its metadata and the Adam state by parameter index."""
    meta, state = _read_checkpoint(path)
    model.load_state_dict(state["model"])
    return meta, state["opt"]


def load_discriminator(path: Path, disc: torch.nn.Module) -> dict[int, dict[str, torch.Tensor]]:
    """Load the discriminator's weights from a checkpoint; return its Adam state by parameter index."""
    _, state = _read_checkpoint(path)
    if not state["disc"]:
        raise ValueError(f"{path}: checkpoint holds no discriminator")
    disc.load_state_dict(state["disc"])
    return state["dopt"]


def _read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    state: dict[str, Any] = {"model": {}, "disc": {}, "opt": {}, "dopt": {}}
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["meta"])
        for key in f.keys():
            prefix, rest = key.split(".", 1)
            if prefix in ("model", "disc"):
                state[prefix][rest] = f.get_tensor(key)
            else:
                idx, name = rest.split(".", 1)
                state[prefix].setdefault(int(idx), {})[name] = f.get_tensor(key)
    return meta, state


def build_model(cfg: InpainterTrainConfig) -> PConvUNet:
    return PConvUNet(in_channels=3, base_channels=cfg.base_channels, depth=cfg.depth,
                     max_channels=cfg.max_channels, prefill=cfg.prefill,
                     prefill_iterations=cfg.prefill_iterations, refine=cfg.refine)


def train(cfg: InpainterTrainConfig, paintings_train: list[Path], paintings_val: list[Path]) -> Path:
    """Run (or resume) training; returns the path of the final checkpoint."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    ckpt, log_path = run / "checkpoint.safetensors", run / "log.jsonl"
    (run / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")

    model = build_model(cfg)
    step, log, meta = 0, [], {}
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    if ckpt.exists():
        meta, opt_state = load_checkpoint(ckpt, model)
        theirs, ours = meta["config"], json.loads(json.dumps(asdict(cfg)))
        defaults = json.loads(json.dumps({f.name: f.default for f in fields(InpainterTrainConfig)}))
        changed = sorted(k for k in ours if theirs.get(k, defaults[k]) != ours[k] and k not in RESUMABLE_CHANGES)
        if changed:
            raise ValueError(f"{ckpt}: checkpoint was made with other {', '.join(changed)}; use a new run_dir")
        step, log = meta["step"], meta["log"]
        print(f"resuming {ckpt} at step {step}", flush=True)
    elif cfg.init_weights:
        fresh = init_from(model, Path(cfg.init_weights))
        if cfg.prefill != "none" and any(k.startswith(f"decoder.{cfg.depth - 1}.") for k in fresh):
            model.zero_last_layer()  # a new last layer starts at 0: the network begins as the smooth fill
        print(f"started from {cfg.init_weights}; left at their init: {', '.join(fresh) or 'none'}", flush=True)
    if step >= cfg.total_steps:
        return ckpt
    if cfg.refine_only:
        model.freeze_base()
    if cfg.decoder_only:
        model.freeze_encoder()
    phase = 1 if step < cfg.phase1_steps else 2
    if phase == 2:
        model.freeze_encoder_bn()
    opt = _optimizer(model, cfg.lr_phase1 if phase == 1 else cfg.lr_phase2)
    if opt_state and meta.get("phase", 1) == phase:  # a phase change starts a fresh optimizer
        sd = opt.state_dict()
        sd["state"] = opt_state
        opt.load_state_dict(sd)

    sampler = TileSampler(cfg, paintings_train)
    val_x, val_m = validation_set(cfg, paintings_val)
    weights = LossWeights(psnr=cfg.psnr_weight, perceptual=cfg.perceptual_weight, style=cfg.style_weight,
                          tv=cfg.tv_weight)
    criterion = InpaintingLoss(build_feature_net(cfg.feature_net, cfg.feature_seed), weights, hole_norm=cfg.hole_norm)
    disc, disc_opt = _discriminator(cfg, ckpt if meta else None)
    model.train()
    sums: dict[str, float] = {}
    n_in_epoch = 0
    t_epoch = time.time()
    while step < cfg.total_steps:
        if step == cfg.phase1_steps and cfg.phase2_steps and not getattr(model, "_encoder_bn_frozen", False):
            model.freeze_encoder_bn()
            opt = _optimizer(model, cfg.lr_phase2)
            print(f"phase 2 at step {step}: encoder BN frozen, lr {cfg.lr_phase2}", flush=True)
        x, m = sampler.batch(step)
        pred = model(x * m, m)
        loss, terms = criterion(pred, x, m)
        if disc is not None:
            comp, hole = composite(pred, x, m), 1.0 - m
            disc.requires_grad_(False)
            adv = generator_loss(disc(comp, hole), hole, cfg.adv_loss)
            disc.requires_grad_(True)
            loss = loss + cfg.adv_weight * adv
            terms["adv_g"] = float(adv.detach())
        if not math.isfinite(float(loss.detach())):
            raise FloatingPointError(f"loss became {float(loss.detach())} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if disc is not None and disc_opt is not None:
            d_loss = discriminator_loss(disc(x, hole), disc(comp.detach(), hole), hole, cfg.adv_loss)
            disc_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            disc_opt.step()
            terms["adv_d"] = float(d_loss.detach())
        step += 1
        n_in_epoch += 1
        for k, v in {"loss": float(loss.detach()), **terms}.items():
            sums[k] = sums.get(k, 0.0) + v
        if step % cfg.steps_per_epoch == 0 or step == cfg.total_steps:
            entry = {
                "epoch": len(log) + 1,
                "step": step,
                "phase": 1 if step <= cfg.phase1_steps else 2,
                **{k: v / n_in_epoch for k, v in sums.items()},
                "s_per_step": (time.time() - t_epoch) / n_in_epoch,
                **validate(model, val_x, val_m),
            }
            log.append(entry)
            with open(log_path, "a") as fh:
                fh.write(json.dumps(entry) + "\n")
            print(json.dumps(entry), flush=True)
            phase_now = 2 if getattr(model, "_encoder_bn_frozen", False) else 1
            meta_out = {"step": step, "phase": phase_now, "config": asdict(cfg), "log": log}
            save_checkpoint(ckpt, model, opt, meta_out, disc, disc_opt)
            if cfg.snapshot_every and step % cfg.snapshot_every == 0:
                shutil.copyfile(ckpt, run / f"checkpoint-step{step}.safetensors")
            sums, n_in_epoch, t_epoch = {}, 0, time.time()
    return ckpt


def _discriminator(
    cfg: InpainterTrainConfig, ckpt: Path | None
) -> tuple[PatchDiscriminator | None, torch.optim.Adam | None]:
    """The patch discriminator and its Adam (Adam betas 0.5/0.999), resumed from `ckpt` when it holds one."""
    if not cfg.adv_weight:
        return None, None
    disc = PatchDiscriminator(3, cfg.disc_channels, cfg.disc_layers)
    disc_opt = torch.optim.Adam(disc.parameters(), lr=cfg.lr_disc, betas=(0.5, 0.999))
    if ckpt is not None:
        state = load_discriminator(ckpt, disc)
        if state:
            sd = disc_opt.state_dict()
            sd["state"] = state
            disc_opt.load_state_dict(sd)
    disc.train()
    return disc, disc_opt


def _config(stored: dict[str, Any]) -> InpainterTrainConfig:
    """The config stored in a checkpoint (fields added since keep their defaults)."""
    return InpainterTrainConfig(**{**stored, "scales": tuple(stored["scales"])})


def model_from_checkpoint(ckpt: Path) -> PConvUNet:
    """The network of a training checkpoint (e.g. for evaluating a run that is not shipped), in eval mode."""
    with safe_open(str(ckpt), framework="pt") as f:
        config = json.loads(f.metadata()["meta"])["config"]
    model = build_model(_config(config))
    load_checkpoint(ckpt, model)
    return model.eval()


def export_weights(
    ckpt: Path,
    *,
    name: str = WEIGHTS_NAME,
    data: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    manifest_path: Path | None = None,
) -> WeightsEntry:
    """Ship a checkpoint's model through `models.weights.save_weights` with config, data and metrics."""
    with safe_open(str(ckpt), framework="pt") as f:
        meta = json.loads(f.metadata()["meta"])
    cfg = _config(meta["config"])
    model = build_model(cfg)
    load_checkpoint(ckpt, model)
    last = meta["log"][-1] if meta["log"] else {}
    kwargs = {} if manifest_path is None else {"manifest_path": manifest_path}
    return save_weights(
        model,
        name=name,
        architecture="pconvunet",
        arch_args=model.arch_args(),
        tiling=Tiling(tile=256, halo=32, channels=3, value_range=(0.0, 1.0), multiple_of=model.multiple),
        training={
            "config": meta["config"],
            "steps": meta["step"],
            "data": data or {},
            "log_last": last,
            "epochs": len(meta["log"]),
        },
        metrics={**{k: last[k] for k in ("val_psnr", "val_ssim", "val_l1_hole") if k in last}, **(metrics or {})},
        **kwargs,
    )


def main(argv: list[str] | None = None) -> None:
    """`python -m lab.train_inpainter [--key value ...]` with InpainterTrainConfig fields."""
    import argparse

    from lab.paintings import paintings

    parser = argparse.ArgumentParser(description=__doc__)
    defaults = InpainterTrainConfig()
    for key, val in asdict(defaults).items():
        if isinstance(val, tuple):
            parser.add_argument(f"--{key}", type=float, nargs="+", default=val)
        elif isinstance(val, bool):
            parser.add_argument(f"--{key}", action="store_true")
        else:
            parser.add_argument(f"--{key}", type=int if val is None else type(val), default=val)  # None: an int
    parser.add_argument("--export", action="store_true", help="save_weights from the final checkpoint")
    parser.add_argument("--eval-json", type=Path, default=None, help="`retouch evaluate inpaint --json` output "
                        "to record in the manifest metrics (with --export)")
    args = vars(parser.parse_args(argv))
    export, eval_json = args.pop("export"), args.pop("eval_json")
    cfg = InpainterTrainConfig(**{**args, "scales": tuple(args["scales"])})
    ckpt = train(cfg, paintings("train"), paintings("val"))
    if export:
        data = {
            "source": "../shared/data/nga_paintings (NGA open access, CC0)",
            "train_paintings": [p.name for p in paintings("train")],
            "val_paintings_held_out": [p.name for p in paintings("val")],
        }
        metrics = eval_metrics(json.loads(eval_json.read_text())) if eval_json else None
        entry = export_weights(ckpt, data=data, metrics=metrics)
        print(f"shipped {entry.name}: {entry.file} sha256 {entry.sha256}")


def eval_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """Manifest metrics from an evaluation result: the model's figures and its margin over the best classical."""
    from lab.eval.inpaint_eval import compare

    margins = compare(result)
    wins = sum(m["psnr"] > 0 and m["ssim"] > 0 for m in margins.values())
    return {
        "eval": {
            "settings": result.get("settings", {}),
            "model": result.get("model", {}),
            "margin_over_best_classical": margins,
            "bins_beating_best_classical_on_psnr_and_ssim": wins,
            "bins": len(margins),
        }
    }


if __name__ == "__main__":
    main()
