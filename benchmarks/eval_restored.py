"""The whole restoration (detect, then inpaint, the stages' defaults) on held-out damaged paintings, scored against
the clean pictures by `retouch evaluate restored`'s measures (lab.eval.residual).

    python benchmarks/eval_restored.py --out DIR [--weights NAME[+coarse][+minN][+scaleS] ...] [--copies 2] \
        [--seed 5000000011] [--enlarge K] [--json FILE]

Every VALIDATION painting (never trained on) is damaged `--copies` times as the bundled sample was
(lab.make_samples.SAMPLE_DAMAGE: craquelure, paint loss and photography on every image), with seeds
`seed + 1000 i + k` apart from every training and held-out seed; the generator's clean picture photographed alike
is the reference. Each image is ingested once into DIR and restored once per detector in `--weights` (the
stages' own functions, their defaults, no Prefect; `NAME+coarse` with the detect stage's coarse paint-loss pass on,
`NAME+min16` with craquelure fragments under 16 px dropped, `NAME+scale0.5` with the detector seeing the scan at
half size, `NAME` with none; `pipeline.stages.detect.variant_fields`). `--enlarge K`: the damaged painting, its clean
picture and its labels as a scan at K times the resolution would show them (`lab.eval.detect_eval.enlarged`). Per
detector: the figures pooled over the images (pixel counts summed), and per image.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from lab.eval.detect_eval import enlarged
from lab.eval.residual import read_restored_store, residual_report
from lab.make_samples import SAMPLE_DAMAGE
from lab.paintings import paintings
from lab.synthesis.realistic import realistic_damage
from pipeline.engine.runner import EngineConfig
from pipeline.io.image_io import read_image, write_png
from pipeline.stages.detect import DEFAULT_WEIGHTS, DetectConfig, detect, variant_fields
from pipeline.stages.ingest import IngestConfig, ingest
from pipeline.stages.inpaint_stage import InpaintStageConfig, inpaint_store

SEED = 5_000_000_011
QUIET = EngineConfig(progress=False)


def pooled(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Pixel-weighted figures over several images' reports: per class the share of visible damage left unfilled
    and the band rows' unfilled shares; intact paint painted over."""
    out: dict[str, Any] = {"classes": {}}
    for name in reports[0]["classes"]:
        rows = [r["classes"][name] for r in reports]
        seen = sum(c["visible_pixels"] for c in rows)
        bands = []
        for b in range(len(rows[0]["bands"])):
            n = sum(c["bands"][b]["pixels"] for c in rows)
            unfilled = sum(c["bands"][b]["unfilled"] * c["bands"][b]["pixels"] for c in rows) / max(1, n)
            bands.append({"contrast": rows[0]["bands"][b]["contrast"], "pixels": n, "unfilled": unfilled})
        out["classes"][name] = {
            "visible_pixels": seen, "bands": bands,
            "visible_unfilled": sum(c["visible_unfilled"] * c["visible_pixels"] for c in rows) / max(1, seen),
            "visible_left": sum(c["visible_left"] * c["visible_pixels"] for c in rows) / max(1, seen)}
    intact = sum(r["intact"]["pixels"] for r in reports)
    out["intact"] = {"painted_over": sum(r["intact"]["painted_over_pixels"] for r in reports) / max(1, intact),
                     "worst_image": max(r["intact"]["painted_over"] for r in reports)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the images and stores")
    parser.add_argument("--weights", nargs="+", default=[DEFAULT_WEIGHTS])
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--enlarge", type=float, default=1.0, help="the scans at this many times the resolution")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    for weights in args.weights:
        try:
            variant_fields(weights)
        except ValueError as exc:
            parser.error(str(exc))
    if not 1.0 <= args.enlarge <= 8.0:
        parser.error(f"--enlarge must be in [1, 8], got {args.enlarge}")
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {w: {"images": {}} for w in args.weights}
    for i, path in enumerate(paintings("val")):
        for k in range(args.copies):
            stem = f"val{i}-copy{k}"
            seed = args.seed + 1000 * i + k
            made = realistic_damage(read_image(path), seed, SAMPLE_DAMAGE)
            damaged, clean, labels = made.damaged, made.clean, made.labels
            if args.enlarge != 1.0:
                damaged, clean = enlarged(damaged, args.enlarge), enlarged(clean, args.enlarge)
                labels = enlarged(labels, args.enlarge, nearest=True)
            scan = args.out / f"{stem}.png"
            write_png(scan, damaged)
            base = str(args.out / f"{stem}.zarr")
            ingest(scan, base, IngestConfig(), QUIET)
            for weights in args.weights:
                store = str(args.out / f"{stem}-{weights}.zarr")
                shutil.rmtree(store, ignore_errors=True)
                shutil.copytree(base, store)
                start = time.perf_counter()
                detect(store, DetectConfig(**variant_fields(weights)), QUIET)
                inpaint_store(store, InpaintStageConfig(), QUIET)
                seconds = time.perf_counter() - start
                scan_px, restored, _, fill, params = read_restored_store(store)
                report = residual_report(scan_px, restored, clean, labels, fill,
                                         dilate=int(params["dilate"]))
                report.update({"painting": path.name, "seed": seed, "seconds": seconds})
                results[weights]["images"][stem] = report
                print(f"{stem} {weights}: crack visible unfilled "
                      f"{report['classes']['craquelure']['visible_unfilled']:.3f}, loss "
                      f"{report['classes']['paint_loss']['visible_unfilled']:.3f}, intact painted over "
                      f"{100 * report['intact']['painted_over']:.3f} % ({seconds:.0f} s)", flush=True)
    for weights, result in results.items():
        result["pooled"] = pooled(list(result["images"].values()))
        p = result["pooled"]
        print(f"{weights}: visible damage left unfilled: craquelure "
              f"{p['classes']['craquelure']['visible_unfilled']:.3f}, paint loss "
              f"{p['classes']['paint_loss']['visible_unfilled']:.3f}; intact paint painted over "
              f"{100 * p['intact']['painted_over']:.3f} % (worst image {100 * p['intact']['worst_image']:.3f} %)")
    if args.json:
        args.json.write_text(json.dumps({"command": shlex.join(["python", "benchmarks/eval_restored.py",
                                                                *sys.argv[1:]]),
                                         "copies": args.copies, "seed": args.seed, "enlarge": args.enlarge,
                                         "results": results},
                                        indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
