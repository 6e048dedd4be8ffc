"""What decides an inpainter training run (and which of its fields may change when a run resumes)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from models.inpaint_loss import FEATURE_NETS, HOLE_NORMS
from models.patch_disc import ADV_LOSSES
from models.pconv import PREFILLS
from pipeline.errors import ConfigError

# the schedule may be shortened or extended on resume; everything else must match the checkpoint
# (and the prefill's iteration count: a closer fill for fine-tuning changes no weight)
RESUMABLE_CHANGES = ("phase1_steps", "phase2_steps", "threads", "run_dir", "prefill_iterations", "snapshot_every")


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
    # 'none' | 'random' | 'vgg16:/path/vgg16.safetensors' | 'detector:<weights name>'. Default 'none': with the
    # fixed random feature net at the paper's weights (0.05 perceptual, 120 style) the fill lost 1.7 dB PSNR /
    # 0.054 SSIM on the validation tiles at an equal step count (400 steps: 25.79 dB / 0.784 vs 27.49 dB / 0.838),
    # see models/inpaint_loss.py.
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
    decoder_only: bool = False  # train the decoder and refinement branch; the encoder keeps init_weights' weights
    # loss weights (models.inpaint_loss.LossWeights; perceptual/style count only with a feature_net)
    perceptual_weight: float = 0.05
    style_weight: float = 120.0
    tv_weight: float = 0.1
    # adversarial term (models.patch_disc): 0 = no discriminator
    adv_weight: float = 0.0
    adv_loss: str = "hinge"  # models.patch_disc.ADV_LOSSES
    disc_channels: int = 32
    disc_layers: int = 3
    lr_disc: float = 2e-4
    snapshot_every: int = 0  # also keep a copy of the checkpoint every this many steps (0: none)

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):  # a NaN passes every "< 0" check and trains on NaN
            value = getattr(self, item.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{item.name} must be a finite number, got {value}")
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
        if not (self.feature_net in ("none", "random") or self.feature_net.split(":", 1)[0] in ("vgg16", "detector")):
            raise ConfigError(f"feature_net must be {FEATURE_NETS}, got {self.feature_net!r}")
        if self.decoder_only and (self.refine_only or not self.init_weights):
            raise ConfigError("decoder_only needs init_weights (the encoder to keep) and excludes refine_only")
        for key in ("perceptual_weight", "style_weight", "tv_weight", "adv_weight", "lr_disc"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0, got {getattr(self, key)}")
        if self.adv_loss not in ADV_LOSSES:
            raise ConfigError(f"adv_loss must be one of {', '.join(ADV_LOSSES)}, got {self.adv_loss!r}")
        if self.disc_channels < 1 or not 1 <= self.disc_layers <= self.depth:
            raise ConfigError(f"disc_channels must be >= 1 and disc_layers 1..depth, got {self.disc_channels} "
                              f"and {self.disc_layers}")
        if self.snapshot_every < 0:
            raise ConfigError(f"snapshot_every must be >= 0, got {self.snapshot_every}")

    @property
    def total_steps(self) -> int:
        return self.phase1_steps + self.phase2_steps
