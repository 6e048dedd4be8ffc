"""Adapt's craquelure smoothing, adding threshold and reach, tuned on the real crack sets' TRAINING splits only.

    python benchmarks/tune_adapt_smooth.py --smooth 1.5 --add 0.9 [--reach 32] [--beside 0] [--no-veto]
        [--veto-background 0.1] [--veto-joined 0] [--background 0.3] [--background-below 0.5] [--limit 10] [--rounds 3]
        [--sets crackforest,deepcrack,uav75] [--no-coarse-loss] [--straight PX]
        [--json FILE]

`retouch evaluate adapt` reports on DeepCrack test, CrackForest TEST and UAV75 test; choosing a setting there would
select on the reported sets. This scores the same informed simulated strokes (`lab.eval.adapt_eval`, craquelure
channel, pixels more than 8 px from the strokes) on DeepCrack `train/`, CrackForest's TRAIN part and UAV75 `val/`,
`--limit` images of each, evenly spread, and prints strict F1 before and after adapt per set (with `--rounds` > 1
also after each round; the JSON keeps each image's F1 before and after each round). Every detection runs as
`retouch evaluate adapt` runs it, with detect's coarse paint-loss pass and its long straight craquelure dropped
(records before 2026-12-07 session 56 have neither: no "coarse_loss" and "straight" keys).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TRAIN_SETS = {  # name: (images, masks, crack mask value or None = any nonzero, split)
    "deepcrack": ("deepcrack/train/images", "deepcrack/train/masks", 255, "all"),
    "crackforest": ("crackforest_cfd/images", "crackforest_cfd/masks", None, "train"),
    "uav75": ("uav75/val/images", "uav75/val/labels", 255, "all"),
}
SEED = 5_000_000  # strokes; not evaluate adapt's reported seed


def main() -> None:
    import torch

    from lab.eval.adapt_eval import StrokePlan, evaluate_cases, real_cases
    from pipeline.stages.adapt import AdaptConfig
    from pipeline.stages.detect import DEFAULT_COARSE_LOSS, DEFAULT_STRAIGHT

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smooth", type=float, default=AdaptConfig.smooth)
    parser.add_argument("--add", type=float, default=AdaptConfig.add)
    parser.add_argument("--reach", type=int, default=AdaptConfig.reach)
    parser.add_argument("--beside", type=int, default=AdaptConfig.beside)
    parser.add_argument("--veto", action=argparse.BooleanOptionalAction, default=AdaptConfig.veto,
                        help="fit the clean strokes' veto (--no-veto: never)")
    parser.add_argument("--veto-background", type=float, default=AdaptConfig.veto_background,
                        help="share of the veto's negatives taken from the base's detections among unlabelled pixels")
    parser.add_argument("--veto-joined", type=int, default=AdaptConfig.veto_joined,
                        help="per square of strokes, the base's cracks a craquelure stroke touches taken as the "
                             "craquelure veto's negatives (0 = none)")
    parser.add_argument("--background", type=float, default=AdaptConfig.background,
                        help="share of the head's negatives taken from unlabelled pixels")
    parser.add_argument("--background-below", type=float, default=AdaptConfig.background_below,
                        help="a weak negative of a class only where the base gives it less than this (1 = all)")
    parser.add_argument("--relabel", type=float, default=AdaptConfig.relabel,
                        help="fit the head again without the weak negatives its first fit gives at least this "
                             "(0 = once)")
    parser.add_argument("--coarse-loss", action=argparse.BooleanOptionalAction, default=DEFAULT_COARSE_LOSS,
                        help="detect's coarse paint-loss pass (--no-coarse-loss: without it)")
    parser.add_argument("--straight", type=int, default=DEFAULT_STRAIGHT,
                        help="drop straight craquelure this many px long, as detect does (0: keep it)")
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sets", default="crackforest,deepcrack,uav75")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = AdaptConfig(smooth=args.smooth, add=args.add, reach=args.reach, beside=args.beside, veto=args.veto,
                         veto_background=args.veto_background, veto_joined=args.veto_joined,
                         background=args.background,
                         background_below=args.background_below, relabel=args.relabel)
    plan = StrokePlan(informed=True, rounds=args.rounds)
    report = {"base": config.base, "smooth": args.smooth, "add": args.add, "reach": args.reach, "beside": args.beside,
              "veto": args.veto, "veto_background": args.veto_background, "veto_joined": args.veto_joined,
              "background": args.background,
              "background_below": args.background_below, "relabel": args.relabel,
              "coarse_loss": args.coarse_loss, "straight": args.straight,
              "limit": args.limit, "rounds": args.rounds, "sets": {}}
    for name in args.sets.split(","):
        cases = real_cases(name, args.data, args.limit, TRAIN_SETS)
        result = evaluate_cases(cases, 0, config, plan, SEED, reference=False, coarse_loss=args.coarse_loss,
                                straight=args.straight)
        report["sets"][name] = dict(result["mean"])
        before, after = result["mean"]["before"], result["mean"]["after"]
        print(f"{name}: F1 {before['f1']:.3f} -> {after['f1']:.3f}, precision {before['precision']:.3f} -> "
              f"{after['precision']:.3f}, recall {before['recall']:.3f} -> {after['recall']:.3f}", flush=True)
        if "mean_after_round" in result:  # each round's mean, and each image's F1 before and after each round
            report["sets"][name]["after_round"] = result["mean_after_round"]
            report["sets"][name]["images_f1"] = {
                r["image"]: [r["before"]["f1"], *(a["f1"] for a in r["after_round"])]
                for r in result["images"] if "skipped" not in r}
            print("  F1 after each round: " + ", ".join(f"{r['f1']:.3f}" for r in result["mean_after_round"]))
    gains = [v["after"]["f1"] - v["before"]["f1"] for v in report["sets"].values()]
    print(f"mean F1 gain {np.mean(gains):+.3f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
