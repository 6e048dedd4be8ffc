"""What decides an inpainter training run (and which of its fields may change when a run resumes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models.inpaint_loss import HOLE_NORMS
from models.pconv import PREFILLS
from pipeline.errors import ConfigError

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
