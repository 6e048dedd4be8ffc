"""A max-ensemble of Res-UNet detectors: every member sees the same tile; a pixel is a class when any member
says so (per-pixel, per-class maximum of the logits, which is the maximum of the sigmoid probabilities).

Why: fine-tuning the detector on synthetic painting damage raises its synthetic craquelure F1 but costs
recall on real crack photos (UAV75, CrackForest), in every fine-tune so far (five runs, sessions 5-9). A union
of a real-robust member and a synthetic-specialist member keeps the recall of each. It costs one forward
pass per member.

    python -m models.ensemble NAME MEMBER.safetensors MEMBER.safetensors [--note TEXT] [--manifest M] [--int8]
        [--thresholds T0,T1]

`--thresholds` gives each member its own decision threshold: member i says "damage" where its probability
exceeds T_i (its logit is shifted by -logit(T_i) before the maximum, so the ensemble's output keeps 0.5 as
its threshold and a global threshold moves all members together). Default: 0.5 for every member.

stores the members (fp16, as shipping does, or int8 kernels: half the size) as one `resunet-max` entry of the
weights manifest.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors.torch import load_file

from models.resunet import ResUNet
from models.weights import MANIFEST_PATH, WeightsEntry, save_weights, sha256_file

ARCHITECTURE = "resunet-max"


class MaxResUNet(nn.Module):
    """`members` Res-UNets of the same shape; `forward` gives the per-pixel maximum of their (B, K, H, W) logits,
    each first shifted by -logit(threshold) of its member (`thresholds`; default 0.5 each, i.e. no shift)."""

    def __init__(self, members: int = 2, thresholds: Sequence[float] | None = None, **resunet_args: Any) -> None:
        super().__init__()
        if members < 1:
            raise ValueError(f"members must be >= 1, got {members}")
        thresholds = [0.5] * members if thresholds is None else [float(t) for t in thresholds]
        if len(thresholds) != members or not all(0.0 < t < 1.0 for t in thresholds):
            raise ValueError(f"thresholds must be {members} numbers in (0, 1), got {thresholds}")
        self.members = nn.ModuleList(ResUNet(**resunet_args) for _ in range(members))
        self.thresholds = thresholds
        self.offsets = [math.log(t / (1.0 - t)) for t in thresholds]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) - offset if offset else member(x)
                            for member, offset in zip(self.members, self.offsets, strict=True)]).amax(dim=0)


def ensemble_from_files(
    paths: list[Path], resunet_args: dict[str, Any], thresholds: Sequence[float] | None = None
) -> MaxResUNet:
    """A MaxResUNet whose members load the given Res-UNet state files (each must fit `resunet_args`)."""
    if len(paths) < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {len(paths)}")
    model = MaxResUNet(members=len(paths), thresholds=thresholds, **resunet_args)
    for member, path in zip(model.members, paths, strict=True):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: member weights not found")
        try:
            member.load_state_dict(load_file(str(path)))
        except RuntimeError as exc:
            raise ValueError(f"{path}: not a Res-UNet of {resunet_args}: {str(exc).splitlines()[0]}") from None
    return model.eval()


def validation_metrics(model: nn.Module, val_paths: list[Path] | None = None) -> dict[str, Any]:
    """Scores on the detector training's own VALIDATION tiles (default config, so the same tiles as
    models.train_detector), so that an ensemble's manifest entry is comparable with a trained one's."""
    from models.detector_data import load_paintings
    from models.train_detector import DetectorTrainConfig, evaluate_tiles, make_loss, validation_tiles
    from pipeline.paintings import paintings

    cfg = DetectorTrainConfig()
    val_x, val_y = validation_tiles(cfg, load_paintings(val_paths or paintings("val")))
    return {"tiles": cfg.val_tiles, "tile": cfg.tile, "threshold": 0.5,
            **evaluate_tiles(model, val_x, val_y, make_loss(cfg.loss))}


def ship_ensemble(
    name: str,
    paths: list[Path],
    resunet_args: dict[str, Any],
    training: dict[str, Any],
    manifest_path: Path = MANIFEST_PATH,
    validate: bool = True,
    int8: bool = False,
    thresholds: Sequence[float] | None = None,
) -> WeightsEntry:
    """Store the ensemble of `paths` (fp16, or int8 kernels with `int8`) as manifest entry `name`, architecture
    `resunet-max`, with its scores on the VALIDATION tiles (computed on the weights as they will load).
    `thresholds` (one per member) are kept in the entry's arch_args."""
    from models.quantize import dequantize, quantize_state

    model = ensemble_from_files(paths, resunet_args, thresholds)
    if not int8:
        model = model.half()
    arch_args = {"members": len(paths), **({"thresholds": model.thresholds} if thresholds else {}), **resunet_args}
    metrics = None
    if validate:
        check = MaxResUNet(**arch_args)
        state = model.state_dict()
        check.load_state_dict(dequantize(quantize_state(state)) if int8 else state)
        metrics = {"validation": validation_metrics(check)}
    training = {**training, "stored_dtype": "int8 kernels (per-output-channel scales)" if int8 else "float16"}
    from models.train_detector import DETECTOR_TILING

    return save_weights(model, name=name, architecture=ARCHITECTURE, arch_args=arch_args, tiling=DETECTOR_TILING,
                        training=training, metrics=metrics, manifest_path=manifest_path, int8=int8)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("members", nargs="+", type=Path)
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--decoder", default="128,64,48,32,16", help="decoder widths, comma-separated")
    parser.add_argument("--note", default="", help="where the members came from (kept in the manifest)")
    parser.add_argument("--manifest", type=Path, default=MANIFEST_PATH)
    parser.add_argument("--no-validate", action="store_true", help="skip the VALIDATION-tile scores")
    parser.add_argument("--thresholds", help="one decision threshold per member, comma-separated (default 0.5 each)")
    parser.add_argument("--int8", action="store_true",
                        help="store the kernels as int8 with per-output-channel scales: half the size of fp16")
    args = parser.parse_args(argv)
    resunet_args = {"encoder_name": args.encoder, "classes": 2,
                    "decoder_channels": [int(c) for c in args.decoder.split(",")]}
    from models.train_detector import training_data
    from pipeline.paintings import paintings

    thresholds = None
    if args.thresholds:
        try:
            thresholds = [float(t) for t in args.thresholds.split(",")]
        except ValueError:
            parser.error(f"--thresholds must be numbers separated by commas, got {args.thresholds!r}")
    members = [{"file": str(p), "sha256": sha256_file(p)} for p in args.members]
    training = {"members": members, "combine": "per-pixel max of the logits", "note": args.note,
                "data": training_data(paintings("train"), paintings("val"))}
    entry = ship_ensemble(args.name, args.members, resunet_args, training, args.manifest, not args.no_validate,
                          args.int8, thresholds)
    print(json.dumps({"name": entry.name, "file": entry.file, "sha256": entry.sha256}, indent=2))


if __name__ == "__main__":
    main()
