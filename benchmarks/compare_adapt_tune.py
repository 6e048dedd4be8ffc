"""Adapt's per-pixel head against a fine-tune of the base's last decoder block, on the held-out style.

    python benchmarks/compare_adapt_tune.py --seed 1 --strokes blind|informed [--steps 150] [--teacher 1.0] \
        [--add 0] [--base detector-resunet18-paint2] [--copies 2] [--crop 768] [--json FILE]

The cases, simulated strokes and scores are `retouch evaluate adapt --sets held-out`'s (paint-loss channel,
pixels more than 8 px from the strokes); only the adapted network differs: `lab.eval.adapt_tune`'s TunedDetector,
fitted with the base as teacher on unlabelled pixels (`--teacher`), replacing the base's paint-loss logits
(`--add 0`) or adding to them from probability `--add`. The head's figures on the same seed come from
`retouch evaluate adapt ... --seed S --strokes P --no-default`. Prints, and with --json writes, the report with
the mean over the crops that hold damage more than 8 px from the strokes, beside evaluate's own means.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def damaged_means(report: dict) -> dict:
    """Recall and precision averaged over the crops with damage far from the strokes; flagged over all."""
    rows = [r for r in report["images"] if "skipped" not in r]
    damaged = [r for r in rows if r["before"]["counts"]["tp_true"] + r["before"]["counts"]["fn"] > 0]
    return {when: {"recall": float(np.mean([r[when]["recall"] for r in damaged])),
                   "precision": float(np.mean([r[when]["precision"] for r in damaged])),
                   "flagged_undamaged": float(np.mean([r[when]["flagged_undamaged"] for r in rows])),
                   "crops": len(damaged)} for when in ("before", "after")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--strokes", choices=("blind", "informed"), default="blind")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--teacher", type=float, default=1.0)
    parser.add_argument("--add", type=float, default=0.0)
    parser.add_argument("--base", default="detector-resunet18-paint2")
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--crop", type=int, default=768)
    parser.add_argument("--tta", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import torch

    from lab.eval.adapt_eval import StrokePlan, evaluate_cases, held_out_cases
    from lab.eval.adapt_tune import TuneConfig, tuned_builder, tuned_fitter
    from pipeline.stages.adapt import AdaptConfig

    torch.set_num_threads(1)
    tune = TuneConfig(steps=args.steps, teacher=args.teacher, add=args.add)
    report = evaluate_cases(held_out_cases(args.copies, args.crop, args.seed), 1, AdaptConfig(base=args.base),
                            StrokePlan(informed=args.strokes == "informed"), args.seed, args.tta, reference=False,
                            build=tuned_builder(tune), fit_with=tuned_fitter(tune))
    report.update({"method": "fine-tune of the last decoder block and head", "tune": vars(args) | {"json": None},
                   "damaged_mean": damaged_means(report)})
    for when, m in report["damaged_mean"].items():
        print(f"{when:6s} recall {m['recall']:.3f} precision {m['precision']:.3f} "
              f"flagged {100 * m['flagged_undamaged']:.3f} % ({m['crops']} crops with damage)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
