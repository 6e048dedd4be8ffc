"""Time and peak RSS of `adapt` (the fit) and of the detection run after it, on a generated scan.

    python benchmarks/bench_adapt.py                    # 20 MP (4472 px square), 36 strokes
    python benchmarks/bench_adapt.py --side 2048 --damage-strokes 12 --clean-strokes 6
    python benchmarks/bench_adapt.py --support-loss 0.02   # adapt's paint-loss support (read beside the base)

The scan is bench_restore's painting-like RGB 8-bit BigTIFF with synthetic damage on random 1024-px blocks;
the strokes are drawn from its labels by the simulated conservator of `retouch evaluate adapt` (along the
damage, on clean paint). Ingest runs first (not timed); then one subprocess runs `adapt` and `detect` (the
store's adapted weights, default settings and engine) with the RSS of it and its workers sampled every 0.1 s.
Figures are printed as JSON (`--json FILE` writes them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_restore import REPO, RSS_SAMPLER, labels_path, make_scan, run_stage  # noqa: E402

sys.path.insert(0, str(REPO))
from pipeline.stages.adapt import AdaptConfig  # noqa: E402

ADAPT = RSS_SAMPLER + """
import json, sys
from pipeline.engine.runner import EngineConfig, close_local_clusters, local_cluster
from pipeline.stages.adapt import AdaptConfig, adapt
from pipeline.stages.detect import DetectConfig, detect
store, scribbles, support = sys.argv[1], sys.argv[2], float(sys.argv[3])
engine = EngineConfig(progress=False)
if engine.scheduler != "threads":
    local_cluster(engine)
t = time.perf_counter()
fitted = adapt(store, scribbles, AdaptConfig(support_loss=support))
fit_seconds = time.perf_counter() - t
fit_peak = peak[0]
r = detect(store, DetectConfig(), engine)
seconds = time.perf_counter() - t
time.sleep(0.2)
print(json.dumps({"adapt_seconds": fit_seconds, "adapt_peak_rss_mb": fit_peak / 2**20,
                  "detect_seconds": seconds - fit_seconds, "total_seconds": seconds,
                  "peak_rss_mb": peak[0] / 2**20, "notes": list(r.notes), "summary": fitted.summary}))
close_local_clusters()
"""


def write_scribbles(labels_file: Path, out: Path, damage: int, clean: int, seed: int) -> dict[str, int]:
    import tifffile
    from PIL import Image

    from lab.eval.adapt_eval import StrokePlan, simulate_strokes

    truth = tifffile.imread(labels_file)
    marks = simulate_strokes(truth, np.random.default_rng(seed), StrokePlan(damage=damage, clean=clean))
    Image.fromarray(marks).save(out)
    return {str(v): int((marks == v).sum()) for v in (1, 2, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", type=int, default=4472)
    parser.add_argument("--damage", type=float, default=0.03)
    parser.add_argument("--damage-strokes", type=int, default=24)
    parser.add_argument("--clean-strokes", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--support-loss", type=float, default=AdaptConfig.support_loss)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scan = Path(tmp) / "scan.tif"
        make_scan(scan, args.side, args.damage, args.seed)
        store = Path(tmp) / "scan.zarr"
        run_stage("ingest", store, str(scan))
        scribbles = Path(tmp) / "scribbles.png"
        labelled = write_scribbles(labels_path(scan), scribbles, args.damage_strokes, args.clean_strokes, args.seed)
        out = subprocess.run([sys.executable, "-c", ADAPT, str(store), str(scribbles), str(args.support_loss)],
                             capture_output=True, text=True, cwd=REPO)
        if out.returncode:
            raise RuntimeError(f"adapt failed:\n{out.stderr[-3000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
    from machine import machine

    report = {"cores": os.cpu_count(), "machine": machine(), "mp": args.side * args.side / 1e6,
              "strokes": args.damage_strokes + args.clean_strokes, "labelled_pixels": labelled,
              "base": AdaptConfig.base, "support_loss": args.support_loss, **result}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
