"""Hard-negative mining: where a detector flags undamaged TRAIN paintings, or their intact paint beside damage.

`python -m lab.hard_negatives --weights NAME --out FILE.json [--threshold 0.3] [--tta 2] [--per-painting 200]`
runs the detector over every TRAIN painting (no damage drawn; VAL paintings are never read) and writes, per
painting file name, the centres of the connected regions whose damage probability (either class) exceeds the
threshold: `[y, x, area_px, max_probability]`, largest first. Training (`--hard-negatives FILE
--hard-fraction P`) centres that share of its clean, all-zero-target crops on them (lab.detector_data).

With `--damaged` each TRAIN painting is first damaged by the realistic generator (`--copies` times, seeds
`--seed` + 1000 i + k as `retouch evaluate make-detect-set` draws them) and only what the detector flags more than
FAR_PX from every true damage is listed: the intact paint it floods when damage is drawn beside it. Training
(`--flood-places FILE --flood-fraction P`) centres that share of its damaged crops on those places, with new damage
drawn around them each time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from skimage.measure import label, regionprops

from lab.eval.detect_eval import FAR_PX
from lab.eval.regions import far_from
from lab.paintings import paintings
from pipeline.io.image_io import read_image, to_float

FLOOD_SEED = 1_000_000_499  # the damage drawn for --damaged (apart from the tuning set's 1,000,000,099)
Hotspots = list[np.ndarray]  # per painting (aligned with the training list): (N, 2) int y, x centres


def flagged_regions(prob: np.ndarray, threshold: float, limit: int) -> list[list[float]]:
    """[y, x, area, max probability] of the connected regions of max-over-classes prob > threshold, the
    `limit` largest (ties: higher probability first)."""
    peak = prob.max(axis=0)
    labels = label(peak > threshold, connectivity=2)
    rows = [[int(round(r.centroid[0])), int(round(r.centroid[1])), int(r.area),
             round(float(peak[tuple(r.coords.T)].max()), 4)] for r in regionprops(labels)]
    rows.sort(key=lambda row: (-row[2], -row[3]))
    return rows[:limit]


def far_from_damage(prob: np.ndarray, labels: np.ndarray, distance: float = FAR_PX) -> np.ndarray:
    """`prob` (K, H, W) with every pixel within `distance` px (Euclidean) of a true damage (`labels` > 0) set to 0."""
    return prob * far_from(labels > 0, distance)


def mine(weights: str, threshold: float = 0.3, tta: int = 2, limit: int = 200,
         files: list[Path] | None = None, damaged_seed: int | None = None, copies: int = 1) -> dict[str, Any]:
    """The hard-negative record for `weights` over `files` (default: the TRAIN paintings); with `damaged_seed`,
    the places flagged far from the damage drawn on each painting (`copies` times)."""
    import torch

    from lab.synthesis.synthetic_damage import DamageConfig, synthesize_damage
    from models.weights import load_model
    from pipeline.stages.detect import default_manifest
    from pipeline.stages.detect_infer import predict_probabilities

    files = files if files is not None else paintings("train")
    model, entry = load_model(weights, manifest_path=Path(default_manifest()))
    model = model.to(memory_format=torch.channels_last)
    record: dict[str, Any] = {"weights": {"name": entry.name, "sha256": entry.sha256}, "threshold": threshold,
                              "tta": tta, "paintings": {}}
    if damaged_seed is not None:
        record.update(damaged_seed=damaged_seed, copies=copies, far_px=FAR_PX)
    for i, path in enumerate(files):
        image = read_image(path)
        if damaged_seed is None:
            prob = predict_probabilities(model, to_float(image), tile=512, overlap=64, views=tta)
            record["paintings"][path.name] = flagged_regions(prob, threshold, limit)
            continue
        rows = []
        for k in range(copies):
            damaged, labels = synthesize_damage(image, damaged_seed + i * 1000 + k, DamageConfig(style="realistic"))
            prob = predict_probabilities(model, to_float(damaged), tile=512, overlap=64, views=tta)
            rows += flagged_regions(far_from_damage(prob, labels), threshold, limit)
        record["paintings"][path.name] = sorted(rows, key=lambda row: (-row[2], -row[3]))[:limit]
    return record


def load_hotspots(path: Path, train_paths: list[Path]) -> Hotspots:
    """Centres per training painting, in the order of `train_paths`; a painting named in the file that is not
    a training painting (a VAL painting, or unknown) is a ValueError naming it."""
    record = json.loads(Path(path).read_text())
    names = {p.name: i for i, p in enumerate(train_paths)}
    stray = sorted(set(record["paintings"]) - set(names))
    if stray:
        raise ValueError(f"{path}: hard negatives name paintings outside the training list: {stray[:3]}")
    centres = [np.zeros((0, 2), np.int64) for _ in train_paths]
    for name, rows in record["paintings"].items():
        if rows:
            centres[names[name]] = np.array([[r[0], r[1]] for r in rows], np.int64)
    return centres


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lab.hard_negatives", description=__doc__)
    parser.add_argument("--weights", required=True, help="manifest name of the detector")
    parser.add_argument("--out", required=True, type=Path, help="JSON file to write")
    parser.add_argument("--threshold", type=float, default=0.3)
    parser.add_argument("--tta", type=int, default=2)
    parser.add_argument("--per-painting", type=int, default=200, help="keep at most this many regions each")
    parser.add_argument("--damaged", action="store_true",
                        help="draw realistic damage on each painting; list what is flagged far from it")
    parser.add_argument("--seed", type=int, default=FLOOD_SEED, help="with --damaged: the damage's first seed")
    parser.add_argument("--copies", type=int, default=1, help="with --damaged: damaged versions per painting")
    args = parser.parse_args(argv)
    if args.copies < 1:
        parser.error(f"--copies must be at least 1, got {args.copies}")
    record = mine(args.weights, args.threshold, args.tta, args.per_painting,
                  damaged_seed=args.seed if args.damaged else None, copies=args.copies)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(args.out)
    counts = {name: len(rows) for name, rows in record["paintings"].items()}
    print(f"{sum(counts.values())} regions over {len(counts)} TRAIN paintings -> {args.out}")


if __name__ == "__main__":
    main()
