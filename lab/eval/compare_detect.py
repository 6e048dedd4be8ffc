"""Is detector B's strict F1 lower than detector A's by more than noise? A paired bootstrap over photos.

    python -m lab.eval.compare_detect A.json B.json [--margin 0.02] [--resamples 2000] [--seed 0]

A.json and B.json are `retouch evaluate detect --json` outputs of two detectors on the same images (their
per-block counts, lab.eval.detect_eval.block_counts). Per class, the units resampled with replacement are the
photos, or the blocks of the one photo when a set has fewer than `MIN_PHOTOS`; both detectors are scored on
the same resample, and F1 is pooled over it (2 TP / (2 TP + FP + FN)). It prints each F1, the difference B - A
and its 95 % percentile interval, and "not lower" when the interval's low end is above -margin.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

MIN_PHOTOS = 5


def unit_counts(report: dict[str, Any], cls: str, by_photo: bool) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """(keys, (N, 3) tp, fp, fn) per photo or per block of one class in an evaluation report."""
    rows = np.array(report["blocks"]["counts"][cls], np.int64).reshape(-1, 6)  # image, y, x, tp, fp, fn
    keys = rows[:, :1] if by_photo else rows[:, :3]
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    sums = np.zeros((len(unique), 3), np.int64)
    np.add.at(sums, inverse.ravel(), rows[:, 3:])
    return [tuple(k) for k in unique.tolist()], sums


def pooled_f1(counts: np.ndarray) -> np.ndarray:
    """F1 from (..., 3) summed tp, fp, fn (1.0 where there is nothing to find and nothing found)."""
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 1.0)


def compare(a: dict[str, Any], b: dict[str, Any], cls: str, resamples: int = 2000, seed: int = 0,
            margin: float = 0.02) -> dict[str, Any]:
    """The paired bootstrap of F1(B) - F1(A) for one class."""
    for report, name in ((a, "A"), (b, "B")):
        if "blocks" not in report or cls not in report["blocks"]["counts"]:
            raise ValueError(f"{name} has no per-block counts for {cls} (re-run retouch evaluate detect --json)")
    if a["blocks"]["stems"] != b["blocks"]["stems"] or a["blocks"]["size"] != b["blocks"]["size"]:
        raise ValueError("A and B were not evaluated on the same images with the same block size")
    by_photo = len(a["blocks"]["stems"]) >= MIN_PHOTOS
    keys_a, counts_a = unit_counts(a, cls, by_photo)
    keys_b, counts_b = unit_counts(b, cls, by_photo)
    if keys_a != keys_b:
        raise ValueError("A and B do not cover the same blocks")
    rng = np.random.default_rng(seed)
    draws = rng.integers(len(keys_a), size=(resamples, len(keys_a)))
    diffs = pooled_f1(counts_b[draws].sum(axis=1)) - pooled_f1(counts_a[draws].sum(axis=1))
    low, high = np.percentile(diffs, [2.5, 97.5])
    f1_a, f1_b = float(pooled_f1(counts_a.sum(axis=0))), float(pooled_f1(counts_b.sum(axis=0)))
    return {"class": cls, "units": "photos" if by_photo else f"{a['blocks']['size']}-px blocks",
            "n": len(keys_a), "f1_a": f1_a, "f1_b": f1_b, "difference": f1_b - f1_a,
            "ci95": [float(low), float(high)], "margin": margin, "not_lower": bool(low > -margin)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lab.eval.compare_detect", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path, help="the reference detector's evaluation JSON")
    parser.add_argument("b", type=Path, help="the candidate's evaluation JSON (same images)")
    parser.add_argument("--margin", type=float, default=0.02)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    a, b = json.loads(args.a.read_text()), json.loads(args.b.read_text())
    results = [compare(a, b, cls, args.resamples, args.seed, args.margin) for cls in a["blocks"]["counts"]]
    for r in results:
        print(f"{r['class']:<11} {r['units']} n={r['n']}: A {r['f1_a']:.4f} B {r['f1_b']:.4f} "
              f"B-A {r['difference']:+.4f} 95% [{r['ci95'][0]:+.4f}, {r['ci95'][1]:+.4f}] "
              f"{'not lower' if r['not_lower'] else 'LOWER'} (margin {r['margin']})")
    if args.json:
        args.json.write_text(json.dumps({"a": str(args.a), "b": str(args.b), "results": results}, indent=1))


if __name__ == "__main__":
    main()
