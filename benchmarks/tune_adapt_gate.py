"""How the adapted head's output is combined with the base's, compared on a tuning seed of the held-out style.

    python benchmarks/tune_adapt_gate.py dump DIR --base detector-resunet18-paint2 --seed 21000000 --copies 2
    python benchmarks/tune_adapt_gate.py score DIR [DIR ...] [--json FILE]

`dump` runs `retouch evaluate adapt`'s held-out cases (crops, damage and simulated strokes from `--seed`), fits the
head as `adapt` does (no veto: the clean strokes of this simulation seldom lie on the base's detections) and keeps
per image the base's probabilities and the head's own (smoothed) probability, tile by tile with `--tta` views.
`score` compares decision rules on the paint-loss channel, on pixels more than 8 px from the strokes: the base
alone, the head alone, the union (base or head >= 0.5), the head adding only from probability `add`, and
that with the head also removing the base's detections where its probability is below `remove`. Recall,
precision, strict F1 (mean over images) and the share of undamaged pixels flagged in any class.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ADDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
REMOVES = (0.0, 0.02, 0.1, 0.3)


def dump(out: Path, base: str, seed: int, copies: int, crop: int, tta: int) -> None:
    import torch

    from lab.eval.adapt_eval import CLEAN_LABEL, StrokePlan, _points, held_out_cases, simulate_strokes
    from pipeline.stages.adapt import AdaptConfig, build_for, fit_adapted
    from pipeline.stages.detect_infer import predict_probabilities

    torch.set_num_threads(1)

    class BaseAndHead(torch.nn.Module):  # (B, K + A, H, W): the base's logits, then the head's (smoothed)
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.m = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            m = self.m
            logits, feats = m.base.forward_features(x)
            return torch.cat([logits, m._per_pixel(m.head, feats, logits, m.filters(x))], dim=1)

    out.mkdir(parents=True, exist_ok=True)
    config = AdaptConfig(base=base, veto=False)
    for i, (name, image, truth) in enumerate(held_out_cases(copies, crop, seed)):
        marks = simulate_strokes(truth, np.random.default_rng(seed + i), StrokePlan())
        if not (marks == 2).any() or not (marks == CLEAN_LABEL).any():
            continue
        model = build_for(config, [1])
        torch.manual_seed(config.seed)
        fit_adapted(model, np.ascontiguousarray(np.moveaxis(image, -1, 0)), _points(marks), config)
        with torch.inference_mode():
            prob = predict_probabilities(BaseAndHead(model).eval(), image, tile=512, overlap=64, views=tta)
        np.savez_compressed(out / f"{i:02d}.npz", prob=prob.astype(np.float16), truth=truth, marks=marks, name=name)
        print(i, name, flush=True)


def score(folder: Path) -> dict[str, dict[str, float]]:
    from lab.eval.adapt_eval import far_from_strokes

    cases = []
    for path in sorted(folder.glob("*.npz")):
        z = np.load(path)
        prob = z["prob"].astype(np.float32)
        cases.append((prob[1], prob[2], prob[0] >= 0.5, z["truth"], far_from_strokes(z["marks"])))

    def rule_scores(decide) -> dict[str, float]:
        recall, precision, f1, flagged = [], [], [], []
        for base, head, crack, truth, far in cases:
            loss, damage = decide(base, head), truth == 2
            tp, fp, fn = (loss & damage & far).sum(), (loss & ~damage & far).sum(), (~loss & damage & far).sum()
            recall.append(tp / max(tp + fn, 1))
            precision.append(tp / (tp + fp) if tp + fp else 1.0)
            f1.append(2 * tp / max(2 * tp + fp + fn, 1))
            clean = far & (truth == 0)
            flagged.append(((loss | crack) & clean).sum() / max(clean.sum(), 1))
        return {"recall": float(np.mean(recall)), "precision": float(np.mean(precision)), "f1": float(np.mean(f1)),
                "flagged_undamaged": float(np.mean(flagged))}

    rules = {"base": lambda b, h: b >= 0.5, "head": lambda b, h: h >= 0.5}
    for add in ADDS:
        for remove in REMOVES:
            rules[f"add {add} remove {remove}"] = (
                lambda a, r: lambda b, h: (h >= a) | ((b >= 0.5) & (h >= r)))(add, remove)
    return {name: rule_scores(rule) for name, rule in rules.items()} | {"images": {"n": float(len(cases))}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    d = sub.add_parser("dump")
    d.add_argument("out", type=Path)
    d.add_argument("--base", default="detector-resunet18")
    d.add_argument("--seed", type=int, default=21_000_000)
    d.add_argument("--copies", type=int, default=2)
    d.add_argument("--crop", type=int, default=768)
    d.add_argument("--tta", type=int, default=2)
    s = sub.add_parser("score")
    s.add_argument("folders", type=Path, nargs="+")
    s.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.what == "dump":
        dump(args.out, args.base, args.seed, args.copies, args.crop, args.tta)
        return
    report = {"command": "python " + " ".join(sys.argv), "sets": {}}
    for folder in args.folders:
        report["sets"][folder.name] = result = score(folder)
        print(f"{folder}: {int(result['images']['n'])} images")
        for name, r in result.items():
            if name != "images":
                print(f"  {name:24} recall {r['recall']:.3f}  precision {r['precision']:.3f}  "
                      f"F1 {r['f1']:.3f}  undamaged flagged {100 * r['flagged_undamaged']:.3f} %")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
