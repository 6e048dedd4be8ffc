"""Build a max-ensemble of Res-UNet detectors (models.ensemble.MaxResUNet) and ship it to the weights manifest.

    python -m lab.ensemble NAME MEMBER.safetensors MEMBER.safetensors [--note TEXT] [--manifest M] [--int8]
        [--thresholds T0,T1]

`--thresholds` gives each member its own decision threshold (default 0.5 each). The members are stored
(fp16, as shipping does, or int8 kernels: half the size) as one `resunet-max` entry of the weights manifest,
with its scores on the detector training's VALIDATION tiles.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from lab.detector_validation import validation_metrics
from models.ensemble import ARCHITECTURE, MaxResUNet
from models.weights import MANIFEST_PATH, WeightsEntry, save_weights, sha256_file


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
    from lab.detector_config import DETECTOR_TILING

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
    from lab.detector_validation import training_data
    from lab.paintings import paintings

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
