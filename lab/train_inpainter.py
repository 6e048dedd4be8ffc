"""Train the PConv U-Net on clean tiles of the TRAIN paintings with generated holes, in two phases.

Phase 1: Adam at `lr_phase1` with batch norm everywhere. Phase 2: Adam at `lr_phase2` with encoder batch
norm frozen (Liu et al. 2018). Holes: irregular strokes/blobs, craquelure and paint loss
(`lab.synthesis.masks`), hole ratios uniform over the bins 0-10 ... 50-60%. `hole_norm="hole"` averages the hole
L1 per image over its own hole (models.inpaint_loss.InpaintingLoss), so small holes count. Every
`steps_per_epoch` steps the run logs the mean loss terms and the PSNR/SSIM of the composite on fixed tiles
of the VALIDATION paintings (never trained on), and writes a resumable checkpoint (safetensors only, model +
Adam state; the step's randomness is derived from (seed, step), so a resumed run draws the same batches).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lab.checkpoint import init_from
from lab.synthesis.masks import BINS, KINDS, mask_in_bin
from models.inpaint_loss import HOLE_NORMS, InpaintingLoss, LossWeights, build_feature_net
from models.pconv import PREFILLS, PConvUNet, composite
from models.weights import Tiling, WeightsEntry, save_weights
from pipeline.errors import ConfigError

WEIGHTS_NAME = "inpainter-pconv"
# the schedule may be shortened or extended on resume; everything else must match the checkpoint
# (and the prefill's iteration count: a closer fill for fine-tuning changes no weight)
RESUMABLE_CHANGES = ("phase1_steps", "phase2_steps", "threads", "run_dir", "prefill_iterations")


@dataclass(frozen=True)
class InpainterTrainConfig:
    tile: int = 128
    batch: int = 8
    depth: int = 6
    base_channels: int = 32
    max_channels: int = 256
    phase1_steps: int = 3000
    phase2_steps: int = 1000
    lr_phase1: float = 2e-4
    lr_phase2: float = 5e-5
    steps_per_epoch: int = 250
    # 'none' | 'random' | 'vgg16:/path/vgg16.safetensors'. Default 'none': with the fixed random feature net at the
    # paper's weights (0.05 perceptual, 120 style) the fill lost 1.7 dB PSNR / 0.054 SSIM on the validation tiles
    # at an equal step count (400 steps: 25.79 dB / 0.784 vs 27.49 dB / 0.838), see models/inpaint_loss.py.
    feature_net: str = "none"
    feature_seed: int = 0
    hole_norm: str = "image"  # models.inpaint_loss.HOLE_NORMS: the paper's L_hole, or averaged per image's hole
    psnr_weight: float = 0.0  # weight of minus each composite's PSNR (dB) in the loss (LossWeights.psnr)
    seed: int = 0
    scales: tuple[float, ...] = (0.4, 0.5, 0.6, 0.75, 1.0)  # painting down-scalings tiles are cut from
    masks_per_bin: int = 40  # bank of masks per kind and bin (augmented by the 8 flips/rotations)
    val_tile: int = 256
    val_tiles_per_painting: int = 6
    val_long_side: int = 512  # validation paintings are downscaled to this, as in the evaluation
    threads: int = 1
    run_dir: str = "runs/inpainter"
    prefill: str = "none"  # else a smooth fill to correct (models.pconv.PREFILLS, models.pconv.PConvUNet)
    prefill_iterations: int | None = None  # iterations of that fill (None: the fill function's default)
    refine: int = 0  # channels of PConvUNet's full-resolution refinement branch (0: none, the paper's network)
    refine_only: bool = False  # train the refinement branch only; the rest keeps the init_weights as they are
    init_weights: str = ""  # safetensors file to start from (layers whose shapes differ keep their init)

    def __post_init__(self) -> None:
        if self.tile % 2**self.depth or self.val_tile % 2**self.depth:
            raise ConfigError(f"tile {self.tile} and val_tile {self.val_tile} must be multiples of 2**depth")
        if self.phase1_steps < 0 or self.phase2_steps < 0 or self.steps_per_epoch < 1:
            raise ConfigError("step counts must be >= 0 and steps_per_epoch >= 1")
        if self.prefill not in PREFILLS:
            raise ConfigError(f"prefill must be one of {', '.join(PREFILLS)}, got {self.prefill!r}")
        if self.prefill_iterations is not None and self.prefill_iterations < 0:
            raise ConfigError(f"prefill_iterations must be >= 0, got {self.prefill_iterations}")
        if self.refine < 0:
            raise ConfigError(f"refine must be >= 0, got {self.refine}")
        if self.refine_only and not (self.refine and self.init_weights):
            raise ConfigError("refine_only needs refine > 0 and init_weights (the network to refine)")
        if self.init_weights and not Path(self.init_weights).is_file():
            raise ConfigError(f"{self.init_weights}: init_weights file not found")
        if self.hole_norm not in HOLE_NORMS:
            raise ConfigError(f"hole_norm must be one of {', '.join(HOLE_NORMS)}, got {self.hole_norm!r}")
        if self.psnr_weight < 0:
            raise ConfigError(f"psnr_weight must be >= 0, got {self.psnr_weight}")

    @property
    def total_steps(self) -> int:
        return self.phase1_steps + self.phase2_steps


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def load_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 of a painting (grey replicated, alpha dropped)."""
    from pipeline.io.image_io import from_float, read_image, to_float

    img = read_image(path)
    if img.dtype != np.uint8:
        img = from_float(to_float(img), np.uint8)
    if img.shape[2] in (1, 2):
        img = np.repeat(img[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def downscale_long_side(image: np.ndarray, long_side: int) -> np.ndarray:
    scale = long_side / max(image.shape[:2])
    return image if scale >= 1 else _resize(image, scale)


class TileSampler:
    """Random clean tiles of the train paintings and random masks from a seeded bank."""

    def __init__(self, cfg: InpainterTrainConfig, paintings: list[Path]) -> None:
        if not paintings:
            raise FileNotFoundError("no training paintings found (lab.paintings.paintings('train') is empty)")
        self.cfg = cfg
        self.images = []
        for p in paintings:
            full = load_rgb(p)
            for s in cfg.scales:
                img = _resize(full, s)
                if min(img.shape[:2]) >= cfg.tile:
                    self.images.append(img)
        rng = np.random.default_rng(cfg.seed + 1)
        shape = (cfg.tile, cfg.tile)
        self.masks = [
            mask_in_bin(kind, shape, lo, hi, int(rng.integers(2**31)))
            for kind in KINDS
            for lo, hi in BINS
            for _ in range(cfg.masks_per_bin)
        ]

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, T, T) clean tiles in [0, 1] and (B, 1, T, T) masks (1 = valid) for `step`."""
        rng = np.random.default_rng((self.cfg.seed, step))
        t = self.cfg.tile
        tiles, masks = [], []
        for _ in range(self.cfg.batch):
            img = self.images[int(rng.integers(len(self.images)))]
            y = int(rng.integers(img.shape[0] - t + 1))
            x = int(rng.integers(img.shape[1] - t + 1))
            tile = img[y : y + t, x : x + t]
            if rng.random() < 0.5:
                tile = tile[:, ::-1]
            hole = self.masks[int(rng.integers(len(self.masks)))]
            hole = np.rot90(hole, int(rng.integers(4)))
            if rng.random() < 0.5:
                hole = hole[::-1]
            tiles.append(tile.astype(np.float32) / 255.0)
            masks.append(~hole)
        x_t = torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2).contiguous()
        m_t = torch.from_numpy(np.stack(masks).astype(np.float32))[:, None]
        return x_t, m_t


def validation_set(cfg: InpainterTrainConfig, paintings: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed tiles of the validation paintings (downscaled) with seeded masks of every kind and bin."""
    rng = np.random.default_rng(12345)
    t = cfg.val_tile
    tiles, masks = [], []
    combos = [(k, b) for k in KINDS for b in BINS]
    i = 0
    for p in paintings:
        img = downscale_long_side(load_rgb(p), cfg.val_long_side)
        for _ in range(cfg.val_tiles_per_painting):
            y = int(rng.integers(img.shape[0] - t + 1))
            x = int(rng.integers(img.shape[1] - t + 1))
            kind, (lo, hi) = combos[i % len(combos)]
            i += 1
            tiles.append(img[y : y + t, x : x + t].astype(np.float32) / 255.0)
            masks.append(~mask_in_bin(kind, (t, t), lo, hi, int(rng.integers(2**31))))
    x_t = torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2).contiguous()
    return x_t, torch.from_numpy(np.stack(masks).astype(np.float32))[:, None]


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


def save_checkpoint(path: Path, model: PConvUNet, opt: torch.optim.Optimizer, meta: dict[str, Any]) -> None:
    """Model and Adam state as safetensors; step, phase, config and log in the metadata. Atomic."""
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    for idx, st in opt.state_dict()["state"].items():
        for key, val in st.items():
            tensors[f"opt.{idx}.{key}"] = torch.as_tensor(val).detach().contiguous()
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"meta": json.dumps(meta)})
    tmp.replace(path)


def load_checkpoint(path: Path, model: PConvUNet) -> tuple[dict[str, Any], dict[int, dict[str, torch.Tensor]]]:
    """Load model weights from a checkpoint; return its metadata and the Adam state by parameter index."""
    model_state, opt_state = {}, {}
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["meta"])
        for key in f.keys():
            if key.startswith("model."):
                model_state[key[len("model.") :]] = f.get_tensor(key)
            else:
                _, idx, name = key.split(".", 2)
                opt_state.setdefault(int(idx), {})[name] = f.get_tensor(key)
    model.load_state_dict(model_state)
    return meta, opt_state


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
        changed = sorted(k for k in ours if theirs.get(k) != ours[k] and k not in RESUMABLE_CHANGES)
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
    criterion = InpaintingLoss(build_feature_net(cfg.feature_net, cfg.feature_seed),
                               LossWeights(psnr=cfg.psnr_weight), hole_norm=cfg.hole_norm)
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
        if not math.isfinite(float(loss.detach())):
            raise FloatingPointError(f"loss became {float(loss.detach())} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
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
            save_checkpoint(ckpt, model, opt, meta_out)
            sums, n_in_epoch, t_epoch = {}, 0, time.time()
    return ckpt


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
