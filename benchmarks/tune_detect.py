"""Detection settings side by side on the tuning data only (TRAIN paintings and the real sets' training splits).

    python benchmarks/tune_detect.py --variant detector-resunet18-paint7 --variant detector-resunet18-paint7+border16
        [--sets intact,realistic,crackforest,uav75,deepcrack] [--deepcrack-limit 100] [--json FILE]

A change to detection is chosen here and decided on the reported sets afterwards (a rule in docs/rules/, written
before those are run): the VAL paintings, DeepCrack `test/`, CrackForest TEST, UAV75 `test/` and the bundled sample
are never read. Each variant (`pipeline.stages.detect.variant_fields`: `NAME[+coarse|+nocoarse][+minN][+straightN]
[+likeN][+borderN][+scaleS][+ttaN][+mirror|+half-turn|+quarter-turn|+small-mirror|+small-half-turn][+agreeA]`, the
rest as the detect stage's defaults) runs as `retouch detect` runs it (`DetectConfig.image_probabilities`, the stage's
tile and overlap, threshold 0.5) over:

- intact: the 30 TRAIN paintings, no damage drawn: the share flagged per painting (worst and which, mean; per class
  means; each painting's in the JSON);
- realistic: the TRAIN paintings damaged once by the realistic generator (`make_synthetic_set(split="train",
  copies=1, style="realistic", seed=SEED)`, written once under `runs/sets/`): craquelure and paint-loss strict F1
  (pooled), the paint losses of at least 9 px under half detected, and the intact paint flagged beside the damage
  (`far_from_damage`: pixels flagged more than 3 px from every true damage, as `retouch evaluate detect` counts them);
- crackforest (its TRAIN part), uav75 (`val/`), deepcrack (`train/`, the first `--deepcrack-limit` photos): strict
  craquelure F1, pooled.

One row per variant is printed; `--json` keeps the figures with the variants and sets.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SEED = 1_000_000_099  # the realistic TRAIN set (apart from the reported sets' seeds and the training's < 10**9)
REAL_SETS = {  # name: (images, masks, crack mask value, split)
    "crackforest": ("crackforest_cfd/images", "crackforest_cfd/masks", 255, "train"),
    "uav75": ("uav75/val/images", "uav75/val/labels", 255, "all"),
    "deepcrack": ("deepcrack/train/images", "deepcrack/train/masks", 255, "all"),
}
SETS = ("intact", "realistic", *REAL_SETS)
MIN_AREA = 9  # px: the losses counted in "under half", as `retouch evaluate detect`


def realistic_set(root: Path) -> Path:
    """The realistic TRAIN set under `root` (made once)."""
    from lab.eval.detect_eval import make_synthetic_set

    folder = root / f"realistic-train-{SEED}"
    if not (folder / "done").exists():
        make_synthetic_set(folder, split="train", copies=1, seed=SEED, style="realistic")
        (folder / "done").write_text("complete\n")
    return folder


def set_pairs(name: str, data: Path, sets_root: Path, deepcrack_limit: int) -> list[tuple[Path, Path | None]]:
    """(image, mask) pairs of one tuning set; masks None for the intact paintings."""
    from lab.paintings import paintings
    from lab.pairs import pair_files
    from lab.real_cracks import split_pairs

    if name == "intact":
        return [(path, None) for path in paintings("train")]
    if name == "realistic":
        folder = realistic_set(sets_root)
        return list(pair_files(folder / "images", folder / "masks"))
    images, masks, _, split = REAL_SETS[name]
    pairs = split_pairs(pair_files(data / images, data / masks), data / images, split)
    return pairs[:deepcrack_limit] if name == "deepcrack" else pairs


def score_variant(variant: str, sets: list[str], data: Path, sets_root: Path, deepcrack_limit: int
                  ) -> dict[str, object]:
    """The figures of one variant over `sets`."""
    from lab.eval.detect_eval import FAR_PX, EvalOptions, _load_model
    from lab.eval.intact_eval import flagged_fractions
    from lab.eval.metrics import Counts, confusion
    from lab.eval.regions import FarTally, region_shares, region_summary
    from pipeline.io.image_io import as_rgb, read_image, read_mask, to_float
    from pipeline.stages.detect import DetectConfig, variant_fields

    config = DetectConfig(**variant_fields(variant))
    model, _ = _load_model(EvalOptions(weights=config.weights))
    out: dict[str, object] = {}
    started = time.perf_counter()
    for name in sets:
        crack, loss, regions, shares, stems = Counts(), Counts(), [], [], []
        far = FarTally(FAR_PX)
        for image_path, mask_path in set_pairs(name, data, sets_root, deepcrack_limit):
            image = to_float(as_rgb(read_image(image_path)))
            prob = config.image_probabilities(model, image)
            fractions, flags = flagged_fractions(prob, config.threshold)  # as `retouch evaluate intact` counts
            if mask_path is None:
                shares.append(fractions)
                stems.append(image_path.stem)
                continue
            mask = read_mask(mask_path)
            if name == "realistic":
                crack += confusion(flags[0], mask == 1)
                loss += confusion(flags[1], mask == 2)
                regions += region_shares(flags[1], mask == 2)
                far.add(image_path.stem, flags[0] | flags[1], mask > 0)
            else:
                crack += confusion(flags[0], mask == REAL_SETS[name][2])
        if name == "intact":
            either = [f["any"] for f in shares]
            out[name] = {"worst": max(either), "mean": float(np.mean(either)),
                         "craquelure_mean": float(np.mean([f["craquelure"] for f in shares])),
                         "paint_loss_mean": float(np.mean([f["paint_loss"] for f in shares])),
                         "paintings": len(shares), "worst_painting": stems[int(np.argmax(either))],
                         "per_painting": dict(zip(stems, either, strict=True))}
        elif name == "realistic":
            summary = region_summary(regions, MIN_AREA)
            out[name] = {"craquelure_f1": crack.scores()["f1"], "paint_loss_f1": loss.scores()["f1"],
                         "under_half": summary["under_half"], "losses": summary["regions"],
                         "far_from_damage": far.summary()}
        else:
            out[name] = {"craquelure_f1": crack.scores()["f1"]}
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def row(variant: str, figures: dict[str, object]) -> str:
    """One printed line of a variant's figures."""
    parts = [variant]
    for name, f in figures.items():
        if name == "intact":
            parts.append(f"intact worst {100 * f['worst']:.4f} % mean {100 * f['mean']:.4f} %")
        elif name == "realistic":
            parts.append(f"realistic craq {f['craquelure_f1']:.4f} loss {f['paint_loss_f1']:.4f} "
                         f"under half {f['under_half']}/{f['losses']} "
                         f"far {100 * f['far_from_damage']['share']:.3f} %")
        elif isinstance(f, dict):
            parts.append(f"{name} {f['craquelure_f1']:.4f}")
    return " | ".join(parts)


def main() -> None:
    import torch

    from lab.paintings import shared_data_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", required=True, help="a detection setting (repeatable)")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of {', '.join(SETS)}")
    parser.add_argument("--deepcrack-limit", type=int, default=100, help="DeepCrack train photos (the first N)")
    parser.add_argument("--sets-root", type=Path, default=Path("runs/sets"), help="where the realistic set is kept")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    sets = [s for s in args.sets.split(",") if s]
    unknown = [s for s in sets if s not in SETS]
    if unknown or not sets:
        raise SystemExit(f"error: --sets: unknown set(s) {unknown}; choose from {', '.join(SETS)}")
    if args.deepcrack_limit < 1:
        raise SystemExit("error: --deepcrack-limit must be at least 1")
    data = shared_data_dir()
    if not (data / "nga_paintings").is_dir():
        raise SystemExit(f"error: {data}: no nga_paintings (is ../shared/data present?)")
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {}
    for variant in args.variant:
        try:
            results[variant] = score_variant(variant, sets, data, args.sets_root, args.deepcrack_limit)
        except ValueError as err:
            raise SystemExit(f"error: --variant {variant}: {err}") from None
        print(row(variant, results[variant]), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"sets": sets, "seed": SEED, "deepcrack_limit": args.deepcrack_limit,
                                         "variants": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
