"""Inpaint stage time against filled megapixels and scan size, scattered vs clustered damage, boxes vs tiles.

    python benchmarks/bench_inpaint_cost.py --json benchmarks/results/DATE-bench_inpaint_cost-cpu2.json
    python benchmarks/bench_inpaint_cost.py --sides 2048 4096 --specks 150 600 --tiles-at 600

Scans are smooth painting-like RGB 8-bit tiled TIFFs (ingested with the default 1024-px chunks). The damage
is `--specks` flakes (discs of radius 2-5 px) and short cracks (1-2 px wide, 10-40 px long), placed uniformly
over the scan ("scattered") or inside two 512-px squares ("clustered"); it is given to the stage as an edited
mask, so the cost follows the damage exactly. Every run is the inpaint stage with the default engine (a local
Dask cluster started before the clock, as `retouch run` does) in its own subprocess. With the box strategy it
runs at every (side, specks, pattern); the tiled strategy (the earlier path) at the first side and
`--tiles-at` specks. The box runs are fitted (least squares) to

    seconds = a + b_scattered * filled_MP_scattered + b_clustered * filled_MP_clustered + c * scan_MP

and the two per-filled-megapixel costs and their ratio are reported (the target: within 2x), for the wall
time and for the CPU time of the stage's process and its workers (the steadier figure on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import tifffile

REPO = Path(__file__).resolve().parents[1]

STAGE = """
import json, sys, time
from pathlib import Path
from pipeline.engine.runner import EngineConfig, close_local_clusters, local_cluster
from pipeline.stages.inpaint_stage import InpaintStageConfig, inpaint_store
store, mask, strategy, margin = sys.argv[1:5]
engine = EngineConfig(progress=False)
if engine.scheduler != "threads":
    local_cluster(engine)
from benchmarks.cpu_time import process_cpu_seconds as cpu
c, t = cpu(), time.perf_counter()
r = inpaint_store(store, InpaintStageConfig(strategy=strategy, margin=int(margin)), engine, mask=Path(mask), force=True)
seconds, cpu_seconds = time.perf_counter() - t, cpu() - c
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, **r.summary}))
close_local_clusters()
"""


def painting(side: int, seed: int) -> np.ndarray:
    """(side, side, 3) uint8: smooth colour waves with a little grain."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, side, dtype=np.float32)
    yy, xx = t[:, None], t[None, :]
    base = 0.45 + 0.25 * np.sin(23.0 * yy) * np.cos(17.0 * xx)
    rgb = np.stack([base, base * 0.8 + 0.1, base * 0.6 + 0.05], axis=-1)
    rgb += rng.normal(0.0, 0.015, rgb.shape).astype(np.float32)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def damage(side: int, specks: int, pattern: str, seed: int) -> np.ndarray:
    """(side, side) uint8 mask, 255 = damage: `specks` flakes and cracks, scattered or in two squares."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((side, side), np.uint8)
    if pattern == "scattered":
        centres = rng.integers(40, side - 40, (specks, 2))
    else:
        corners = rng.integers(40, side - 552, (2, 2))
        centres = corners[rng.integers(0, 2, specks)] + rng.integers(0, 512, (specks, 2))
    for i, (y, x) in enumerate(centres.tolist()):
        if i % 3:
            cv2.circle(mask, (x, y), int(rng.integers(2, 6)), 255, -1)
        else:
            length, angle = rng.integers(10, 41), rng.uniform(0, np.pi)
            end = (int(x + length * np.cos(angle)), int(y + length * np.sin(angle)))
            cv2.line(mask, (x, y), end, 255, int(rng.integers(1, 3)))
    return mask


def run_inpaint(store: Path, mask: Path, strategy: str, margin: int) -> dict:
    out = subprocess.run([sys.executable, "-c", STAGE, str(store), str(mask), strategy, str(margin)],
                         capture_output=True, text=True, cwd=REPO)
    if out.returncode:
        raise RuntimeError(f"inpaint failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fit(rows: list[dict], key: str) -> dict:
    """Least-squares a, b_scattered, b_clustered (s per filled MP), c (s per scan MP) of `key` (box runs)."""
    boxes = [r for r in rows if r["strategy"] == "boxes"]
    design = np.array([[1.0, r["filled_mp"] * (r["pattern"] == "scattered"),
                        r["filled_mp"] * (r["pattern"] == "clustered"), r["scan_mp"]] for r in boxes])
    seconds = np.array([r[key] for r in boxes])
    (a, b_s, b_c, c), *_ = np.linalg.lstsq(design, seconds, rcond=None)
    residual = seconds - design @ np.array([a, b_s, b_c, c])
    return {"a_s": a, "b_scattered_s_per_filled_mp": b_s, "b_clustered_s_per_filled_mp": b_c,
            "c_s_per_scan_mp": c, "scattered_over_clustered": b_s / b_c if b_c else None,
            "rms_residual_s": float(np.sqrt(np.mean(residual**2))), "runs": len(boxes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sides", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--specks", type=int, nargs="+", default=[150, 600])
    parser.add_argument("--tiles-at", type=int, default=600, help="specks for the tiled-path runs (0: none)")
    parser.add_argument("--margin", type=int, default=24, help="the box strategy's context margin, px")
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    from pipeline.engine.runner import EngineConfig
    from pipeline.stages.ingest import ingest

    scratch = Path(tempfile.mkdtemp(dir=args.dir, prefix="bench-inpaint-cost-"))
    rows = []
    try:
        for side in args.sides:
            scan = scratch / f"scan-{side}.tif"
            tifffile.imwrite(scan, painting(side, side), tile=(512, 512), photometric="rgb")
            store = scratch / f"scan-{side}.zarr"
            ingest(scan, str(store), engine=EngineConfig(scheduler="threads", progress=False))
            for pattern in ("scattered", "clustered"):
                for n in args.specks if side == args.sides[0] else args.specks[-1:]:
                    mask_path = scratch / f"mask-{side}-{pattern}-{n}.tif"
                    mask = damage(side, n, pattern, seed=n)
                    tifffile.imwrite(mask_path, mask, tile=(512, 512))
                    strategies = ["boxes"] + (["tiles"] if side == args.sides[0] and n == args.tiles_at else [])
                    for strategy in strategies:
                        r = run_inpaint(store, mask_path, strategy, args.margin)
                        row = {"strategy": strategy, "pattern": pattern, "scan_mp": side * side / 1e6,
                               "specks": n, "filled_mp": r["hole_pixels"] / 1e6, "seconds": r["seconds"],
                               "cpu_seconds": r["cpu_seconds"],
                               **{k: r[k] for k in ("chunks_inpainted", "chunks_total", "boxes",
                                                    "network_pixels") if k in r}}
                        rows.append(row)
                        print(json.dumps(row), file=sys.stderr, flush=True)
            shutil.rmtree(store)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = {"command": shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), "cores": os.cpu_count(),
              "margin": args.margin,
              "rows": rows, "fit_wall": fit(rows, "seconds"), "fit_cpu": fit(rows, "cpu_seconds"),
              "load_average": os.getloadavg()}
    for r in rows:
        print(f"{r['strategy']:>6} {r['pattern']:>10} {r['scan_mp']:6.1f} MP {r['filled_mp'] * 1e3:8.1f} k filled px "
              f"{r['seconds']:7.1f} s {r['cpu_seconds']:7.1f} cpu-s  net {r.get('network_pixels', 0) / 1e6:6.2f} MP")
    print(json.dumps({k: result[k] for k in ("fit_wall", "fit_cpu", "load_average")}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
