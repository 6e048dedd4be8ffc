"""The detector training configuration, its learning-rate schedule and loss, and how the CLI and flows override it."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

import models  # noqa: F401  (torchvision import fix before smp)
from lab.detector_data import AugmentConfig
from lab.real_cracks import RealSpec
from lab.synthesis.synthetic_damage import CLASS_NAMES, DamageConfig
from models.resunet import DEFAULT_DECODER
from models.weights import Tiling
from pipeline.stages.detect_infer import VIEWS

LOSSES = ("dice+bce", "dice+focal", "lovasz+bce")


DETECTOR_TILING = Tiling(tile=512, halo=64, channels=3, value_range=(0.0, 1.0), multiple_of=32)


@dataclass(frozen=True)
class DetectorTrainConfig:
    """Everything that decides a detector training run."""

    encoder: str = "resnet18"
    decoder_channels: tuple[int, ...] = DEFAULT_DECODER
    refine: int = 0  # channels of the full-resolution refinement branch (models.resunet.ResUNet); 0 = none
    relative: bool = False  # the encoder also sees the image's contrast relative to its local mean (ResUNet)
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
    skeleton_weight: float = 0.0  # weight of the craquelure skeleton-recall term (lab.skeleton_loss); 0 = none
    region_weight: float = 0.0  # weight of the paint-loss region-recall term (lab.region_loss); 0 = none
    rim_weight: float = 0.0  # weight of the paint-loss region-rim term (lab.region_loss.region_rim); 0 = none
    rim_width: int = 2  # px: the width of the paint-loss rim ring (8-connected steps from the loss)
    crack_rim_weight: float = 0.0  # weight of the craquelure channel's region-rim term; 0 = none
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
    init_weights: str = ""  # weights file or training checkpoint to start from (matching tensors are copied);
    # FILE#K: member K of an ensemble's weights file
    # Real crack photos scored (craquelure P/R/F1, whole images) at every evaluation beside the synthetic tiles:
    # monitoring only, never trained on, and not used to pick the best weights.
    real_val_images: str = ""
    real_val_masks: str = ""
    real_val_mask_value: int = 0  # only this mask value is a crack (UAV75: 255); 0 = any nonzero value
    teacher: str = ""  # manifest name of a detector to distil: its probabilities become (soft) targets
    teacher_weight: float = 1.0  # with a teacher: target = w * teacher probability + (1 - w) * label
    teacher_views: int = 1  # the teacher's probabilities averaged over this many flipped views (its --tta)
    teacher_classes: tuple[str, ...] = ()  # the classes whose targets the teacher mixes in; empty: all
    # Real crack photos trained on: "IMAGES_DIR:MASKS_DIR[:MASK_VALUE]" each (training splits only,
    # lab.real_cracks); `real_fraction` of the tiles (per tile, by chance) are crops of them.
    real_train: tuple[str, ...] = ()
    real_fraction: float = 0.0
    clean_fraction: float = 0.0  # share of tiles that are undamaged painting crops with all-zero targets
    # lab.hard_negatives record (JSON): `hard_fraction` of the clean crops are centred on the places it lists.
    hard_negatives: str = ""
    hard_fraction: float = 0.0
    # lab.hard_negatives --damaged record (JSON): `flood_fraction` of the damaged crops are centred on the intact
    # places it lists (flagged far from the damage drawn beside them), with new damage drawn around them.
    flood_places: str = ""
    flood_fraction: float = 0.0

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):  # a NaN passes every "< 0" check and trains on NaN
            value = getattr(self, item.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{item.name} must be a finite number, got {value}")
        object.__setattr__(self, "real_train", tuple(self.real_train))  # JSON gives a list
        object.__setattr__(self, "teacher_classes", tuple(self.teacher_classes))
        if self.tile % 32:
            raise ValueError(f"tile must be a multiple of 32, got {self.tile}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        for name in ("batch", "steps", "eval_every", "checkpoint_every", "val_tiles", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        weights = {"skeleton_weight": self.skeleton_weight, "region_weight": self.region_weight,
                   "rim_weight": self.rim_weight, "crack_rim_weight": self.crack_rim_weight}
        if any(value < 0 for value in weights.values()):
            raise ValueError(f"loss term weights must be >= 0, got {weights}")
        if self.rim_width < 1:
            raise ValueError(f"rim_width must be >= 1, got {self.rim_width}")
        if self.snapshot_every < 0 or self.average_from < 0:
            raise ValueError("snapshot_every and average_from must be >= 0")
        if self.average_from and not self.snapshot_every:
            raise ValueError("average_from needs snapshot_every (the snapshots to average)")
        if self.refine < 0:
            raise ValueError(f"refine must be >= 0, got {self.refine}")
        if self.init_weights and not Path(self.init_weights.partition("#")[0]).is_file():
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
        unknown = sorted(set(self.teacher_classes) - set(CLASS_NAMES))
        if unknown:
            raise ValueError(f"teacher_classes: unknown class {unknown[0]!r} (known: {', '.join(CLASS_NAMES)})")
        if not 0 <= self.real_val_mask_value <= 65535:
            raise ValueError(f"real_val_mask_value must be in [0, 65535], got {self.real_val_mask_value}")
        for name in ("real_fraction", "clean_fraction", "hard_fraction", "flood_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.real_fraction + self.clean_fraction > 1.0:
            raise ValueError(f"real_fraction + clean_fraction must be at most 1, got "
                             f"{self.real_fraction} + {self.clean_fraction}")
        if bool(self.real_train) != (self.real_fraction > 0):
            raise ValueError("real_train (IMAGES_DIR:MASKS_DIR[:MASK_VALUE]) and real_fraction > 0 go together")
        if bool(self.hard_negatives) != (self.hard_fraction > 0) or (self.hard_fraction and not self.clean_fraction):
            raise ValueError("hard_negatives (a lab.hard_negatives JSON) and hard_fraction > 0 go together, "
                             "with clean_fraction > 0")
        if self.hard_negatives and not Path(self.hard_negatives).is_file():
            raise ValueError(f"{self.hard_negatives}: hard negatives file not found")
        if bool(self.flood_places) != (self.flood_fraction > 0):
            raise ValueError("flood_places (a lab.hard_negatives --damaged JSON) and flood_fraction > 0 go together")
        if self.flood_places and not Path(self.flood_places).is_file():
            raise ValueError(f"{self.flood_places}: flood places file not found")
        for spec in self.real_train:
            RealSpec.parse(spec).check()  # malformed, missing or held-out (test/val, UAV75 test) refused here

    def arch_args(self) -> dict[str, Any]:
        args = {"encoder_name": self.encoder, "classes": 2, "decoder_channels": list(self.decoder_channels)}
        return args | ({"refine": self.refine} if self.refine else {}) | ({"relative": True} if self.relative else {})

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["decoder_channels"] = list(self.decoder_channels)
        return data

    def teacher_channels(self) -> list[int] | None:
        """The target channels the teacher mixes into (None: all)."""
        return [CLASS_NAMES.index(c) for c in self.teacher_classes] if self.teacher_classes else None


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


def make_loss(name: str, skeleton_weight: float = 0.0, region_weight: float = 0.0, rim_weight: float = 0.0,
              crack_rim_weight: float = 0.0, rim_width: int = 2,
              ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Dice + BCE, Dice + focal, or Lovasz hinge (a surrogate of IoU itself) + BCE, on (B, 2, H, W) logits;
    plus `skeleton_weight` x the craquelure channel's skeleton recall term (`lab.skeleton_loss`) and
    `region_weight` x the paint-loss channel's region recall term, `rim_weight` x its region rim term (a ring
    `rim_width` px wide) and
    `crack_rim_weight` x the craquelure channel's region rim term (`lab.region_loss`), each when > 0."""
    import segmentation_models_pytorch as smp  # after `import models` (torchvision fix)

    from lab.region_loss import region_recall, region_rim
    from lab.skeleton_loss import skeleton_recall

    first = (smp.losses.LovaszLoss("multilabel", from_logits=True) if name == "lovasz+bce"
             else smp.losses.DiceLoss("multilabel", from_logits=True))
    other = (smp.losses.FocalLoss("multilabel") if name == "dice+focal" else torch.nn.BCEWithLogitsLoss())

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        value = first(logits, target) + other(logits, target)
        if skeleton_weight:
            value = value + skeleton_weight * skeleton_recall(logits, target)
        if region_weight:
            value = value + region_weight * region_recall(logits, target)
        if rim_weight:
            value = value + rim_weight * region_rim(logits, target, channel=1, width=rim_width)
        if crack_rim_weight:
            value = value + crack_rim_weight * region_rim(logits, target, channel=0)
        return value

    return loss


def loss_of(cfg: DetectorTrainConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The training loss `cfg` names, with its weighted terms."""
    return make_loss(cfg.loss, cfg.skeleton_weight, cfg.region_weight, cfg.rim_weight, cfg.crack_rim_weight,
                     cfg.rim_width)


def config_from_overrides(**overrides: Any) -> DetectorTrainConfig:
    """A config with the given fields replaced (unknown names raise a TypeError naming them)."""
    names = {f.name for f in dataclasses.fields(DetectorTrainConfig)}
    unknown = set(overrides) - names
    if unknown:
        raise TypeError(f"unknown training option(s) {sorted(unknown)}")
    if isinstance(overrides.get("damage"), dict):  # JSON form (Prefect flow parameters): DamageConfig fields
        overrides = {**overrides, "damage": DamageConfig(**overrides["damage"])}
    if isinstance(overrides.get("augment"), dict):  # AugmentConfig fields given (the rest keep their defaults)
        overrides = {**overrides, "augment": AugmentConfig(**overrides["augment"])}
    return DetectorTrainConfig(**{k: v for k, v in overrides.items() if v is not None})


def _range(field: str, text: str) -> list[float]:
    """"LO,HI" as [LO, HI]; a malformed one is a ValueError naming the field."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{field.replace('_', ' ')} must be two numbers LO,HI, got {text!r}") from None
    return [lo, hi]


def _ground_weights(text: str) -> list[float]:
    """"NAME=W,NAME=W" as one weight per ground of GROUNDS, in that order (0 for a ground not named)."""
    from lab.synthesis.grounds import GROUNDS

    weights = dict.fromkeys(GROUNDS, 0.0)
    for part in text.split(","):
        name, _, value = part.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = None
        if name not in weights or number is None:
            raise ValueError(f"ground weights must be NAME=W,... with NAME among {', '.join(GROUNDS)}, got {text!r}")
        weights[name] = number
    return list(weights.values())


def damage_overrides(
    free_cracks: float | None = None, texture: float | None = None, dark_cracks: float | None = None,
    crack_contrast: str | None = None, style: str | None = None, faint_cracks: float | None = None,
    crack_width: str | None = None, loss_size_of: int | None = None, grounds: str | None = None,
    core_contrast: float | None = None, strokes: float | None = None, ground_weights: str | None = None,
) -> dict[str, Any] | None:
    """DamageConfig fields for the styles and mixes that were given (JSON-able), or None to keep the default.
    `crack_contrast` and `crack_width` are "LO,HI" (e.g. "0.2,0.95"); a malformed one is a ValueError naming
    it. `style` picks the generator ("classic" or "realistic", lab.synthesis); `loss_size_of` draws the realistic
    style's loss sizes as on an image with that shorter side; `grounds` ("gesso,bole,canvas") limits the grounds
    its losses and light cracks expose (a style held out of training); `core_contrast` labels a crack's core by its
contrast relative to the paint; `strokes` is the share of realistic images that also get wide dark brushstrokes
and birds painted unlabelled; `ground_weights` ("canvas=0.3,bole=0.3,gesso=0.2,plaster=0.2") sets how often each
ground is drawn (a ground not named gets 0)."""
    given: list[tuple[str, Any]] = [("p_free_cracks", free_cracks), ("p_texture", texture),
                                    ("p_dark_cracks", dark_cracks), ("style", style),
                                    ("p_faint_cracks", faint_cracks), ("loss_size_of", loss_size_of),
                                    ("core_contrast", core_contrast), ("p_strokes", strokes)]
    if grounds is not None:
        given.append(("grounds", tuple(g for g in grounds.split(",") if g)))
    if ground_weights is not None:
        given.append(("ground_weights", _ground_weights(ground_weights)))
    for name, text in (("crack_contrast", crack_contrast), ("crack_width", crack_width)):
        if text is not None:
            given.append((name, _range(name, text)))
    extra = {k: v for k, v in given if v is not None}
    return extra or None


def augment_overrides(edge_fraction: float | None = None, zoom_fraction: float | None = None,
                      zoom: str | None = None) -> dict[str, Any] | None:
    """AugmentConfig fields that were given (JSON-able), or None to keep the default; `zoom` is "LO,HI"."""
    given: dict[str, Any] = {"p_edge": edge_fraction, "p_zoom": zoom_fraction,
                             "zoom": _range("zoom", zoom) if zoom is not None else None}
    extra = {k: v for k, v in given.items() if v is not None}
    return extra or None
