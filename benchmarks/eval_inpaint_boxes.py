"""The inpainting evaluation run both ways: the model on 256-px tiles (the stage's earlier path) and on boxes.

    python benchmarks/eval_inpaint_boxes.py --images DIR [--count 3] [--margin 24] [--json FILE]

The first `--count` images of DIR (sorted), the default seeded masks of every kind and hole-ratio bin, the
model only; per kind/bin the PSNR and hole L1 of both, their paired difference (boxes - tiles) with its
standard error over the cases, and the seconds each took.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from lab.eval.inpaint_eval import EvalConfig, evaluate, standard_error
from lab.paintings import IMAGE_SUFFIXES
from pipeline.stages.inpaint import load_inpainter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--margin", type=int, default=EvalConfig.margin, help="the boxes' context margin, px")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[: args.count]
    model = load_inpainter()
    base = EvalConfig(tile=256, overlap=64, methods=("model",), margin=args.margin)
    runs = {s: evaluate(images, model, replace(base, strategy=s)) for s in ("tiles", "boxes")}
    table = {}
    for key, rows in runs["tiles"]["cases"]["model"].items():
        other = runs["boxes"]["cases"]["model"][key]
        d_psnr = [b["psnr"] - t["psnr"] for t, b in zip(rows, other, strict=True)]
        d_l1 = [b["l1_hole"] - t["l1_hole"] for t, b in zip(rows, other, strict=True)]
        table[key] = {"psnr_tiles": float(np.mean([r["psnr"] for r in rows])),
                      "psnr_boxes": float(np.mean([r["psnr"] for r in other])),
                      "psnr_diff": float(np.mean(d_psnr)), "psnr_diff_se": standard_error(d_psnr),
                      "l1_hole_diff": float(np.mean(d_l1)), "l1_hole_diff_se": standard_error(d_l1), "n": len(rows)}
        print(f"{key:>24}: PSNR tiles {table[key]['psnr_tiles']:.2f} boxes {table[key]['psnr_boxes']:.2f} "
              f"(diff {table[key]['psnr_diff']:+.3f} ± {table[key]['psnr_diff_se']:.3f}), hole L1 diff "
              f"{table[key]['l1_hole_diff']:+.5f}")
    seconds = {s: runs[s]["settings"]["seconds"]["model"] for s in runs}
    print(f"model seconds: {seconds}")
    if args.json:
        args.json.write_text(json.dumps({"command": shlex.join(["benchmarks/eval_inpaint_boxes.py", *sys.argv[1:]]),
                                         "images": [p.name for p in images], "margin": args.margin,
                                         "table": table,
                                         "seconds": seconds}, indent=1) + "\n")


if __name__ == "__main__":
    main()
