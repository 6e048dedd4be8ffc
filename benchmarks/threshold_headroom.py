"""How far a per-image threshold could carry the detector on the real crack sets' TRAINING splits.

    python benchmarks/threshold_headroom.py [--weights NAME] [--sets uav75,crackforest,deepcrack] [--limit 10]
        [--json FILE]

Adapt is asked to raise the strict F1 of each real crack photo by 0.10 with 10 strokes. One thing a few strokes
can tell is where this photo's threshold lies. This scores the detector as `retouch detect` runs it (its coarse
paint-loss pass, its long straight craquelure dropped; `lab.eval.adapt_eval.predicted`) on the same images
`benchmarks/tune_adapt_smooth.py` uses (`--limit` of each training split, evenly spread), at thresholds 0.1-0.9: per
set the mean strict F1 over images at 0.5, at the single best threshold, and at each image's own best threshold (an
oracle no stroke can beat by thresholding), with the F1 at 0.5 when a pixel counts within 2 px of the other map (the
share of the strict F1's shortfall that is where a crack's edge lies, not whether it is found). The straight
craquelure is dropped at 0.5, so thresholds below it see those pixels as dropped. Whole images, no strokes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
TOLERANCE = 2.0  # px, as `retouch evaluate detect` counts its tolerant F1


def image_row(prob: np.ndarray, truth: np.ndarray) -> dict[str, object]:
    """Strict F1 of one craquelure probability map at each of THRESHOLDS, and the tolerant F1 at 0.5."""
    from lab.eval.metrics import confusion

    strict = [confusion(prob >= t, truth).scores()["f1"] for t in THRESHOLDS]
    return {"f1": strict, "tolerant_f1": confusion(prob >= 0.5, truth, TOLERANCE).scores()["f1"]}


def set_summary(rows: list[dict[str, object]]) -> dict[str, float]:
    """Means over the images of one set: at 0.5, at the best single threshold (and which), at each image's own."""
    f1 = np.array([r["f1"] for r in rows])
    means = f1.mean(axis=0)
    return {"at_half": float(means[THRESHOLDS.index(0.5)]), "best_single": float(means.max()),
            "best_single_threshold": THRESHOLDS[int(means.argmax())], "per_image_best": float(f1.max(axis=1).mean()),
            "tolerant_at_half": float(np.mean([r["tolerant_f1"] for r in rows])), "images": len(rows)}


def main() -> None:
    import torch
    from tune_adapt_smooth import TRAIN_SETS

    from lab.eval.adapt_eval import predicted, real_cases
    from models.weights import load_model
    from pipeline.stages.detect import DEFAULT_COARSE_LOSS, DEFAULT_STRAIGHT, DEFAULT_WEIGHTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS)
    parser.add_argument("--sets", default="uav75,crackforest,deepcrack")
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.weights)[0]
    report: dict[str, object] = {"weights": args.weights, "thresholds": THRESHOLDS, "limit": args.limit,
                                 "coarse_loss": DEFAULT_COARSE_LOSS, "straight": DEFAULT_STRAIGHT, "sets": {}}
    for name in args.sets.split(","):
        rows = []
        for stem, image, truth in real_cases(name, args.data, args.limit, TRAIN_SETS):
            prob = predicted(model, image, coarse_loss=DEFAULT_COARSE_LOSS, straight=DEFAULT_STRAIGHT)[0]
            rows.append({"image": stem, **image_row(prob, truth == 1)})
        summary = set_summary(rows)
        report["sets"][name] = {**summary, "per_image": rows}
        print(f"{name}: strict F1 at 0.5 {summary['at_half']:.3f}, at the best single threshold "
              f"{summary['best_single']:.3f} ({summary['best_single_threshold']}), at each image's best "
              f"{summary['per_image_best']:.3f}; within 2 px at 0.5 {summary['tolerant_at_half']:.3f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
