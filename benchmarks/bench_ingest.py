"""Ingest throughput (MB of raw pixels per second) and peak RSS on generated tiled BigTIFF scans.

    python benchmarks/bench_ingest.py                       # 100 MP and 400 MP, RGB 8-bit and 16-bit
    python benchmarks/bench_ingest.py --sizes 20000 --dtypes uint8

Each ingest runs in a fresh subprocess so its peak RSS (ru_maxrss of the child) is its own. The scans are
painting-like (smooth gradients, texture, noise) so they compress like real ones, and are generated tile by
tile so making them needs little memory either.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

TILE = 512


def tiles(side: int, dtype: np.dtype, seed: int = 0):
    """Painting-like RGB tiles, row by row (what tifffile expects for a tiled write)."""
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    yy, xx = np.mgrid[0:TILE, 0:TILE].astype(np.float32) / TILE
    for ty in range(0, side, TILE):
        for tx in range(0, side, TILE):
            phase = (ty * 7 + tx * 3) / side
            base = 0.45 + 0.25 * np.sin(6.0 * (yy + phase)) * np.cos(4.0 * (xx - phase))
            rgb = np.stack([base, base * 0.8 + 0.1, base * 0.6 + 0.05], axis=-1)
            rgb += rng.normal(0.0, 0.02, rgb.shape).astype(np.float32)
            yield (np.clip(rgb, 0, 1) * top).astype(dtype)


def make_scan(path: Path, side: int, dtype: np.dtype) -> None:
    tifffile.imwrite(path, tiles(side, dtype), shape=(side, side, 3), dtype=dtype, tile=(TILE, TILE),
                     bigtiff=True, photometric="rgb")


CHILD = """
import json, resource, sys, time
from pipeline.engine.runner import EngineConfig
from pipeline.stages.ingest import ingest
t = time.perf_counter()
r = ingest(sys.argv[1], sys.argv[2], engine=EngineConfig(workers=int(sys.argv[3]), progress=False))
print(json.dumps({"seconds": time.perf_counter() - t, "levels": r.levels,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_one(scan: Path, store: Path, workers: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(scan), str(store), str(workers)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 20000], help="square side(s) in px")
    parser.add_argument("--dtypes", nargs="+", default=["uint8", "uint16"])
    parser.add_argument("--workers", type=int, default=0, help="0 = all cores")
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: a temp dir)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(dir=args.dir, prefix="bench-ingest-"))
    rows = []
    try:
        for dtype_name in args.dtypes:
            dtype = np.dtype(dtype_name)
            for side in args.sizes:
                scan = scratch / f"scan-{side}-{dtype_name}.tif"
                t = time.perf_counter()
                make_scan(scan, side, dtype)
                made = time.perf_counter() - t
                store = scratch / f"scan-{side}-{dtype_name}.zarr"
                result = run_one(scan, store, args.workers)
                raw_mb = side * side * 3 * dtype.itemsize / 1e6
                stored_mb = sum(f.stat().st_size for f in store.rglob("*") if f.is_file()) / 1e6
                rows.append({"size": f"{side}x{side}", "mp": side * side / 1e6, "dtype": dtype_name,
                             "raw_mb": raw_mb, "seconds": result["seconds"],
                             "mb_per_s": raw_mb / result["seconds"], "peak_rss_mb": result["peak_rss_mb"],
                             "levels": result["levels"], "stored_mb": stored_mb, "generate_s": made})
                scan.unlink()
                shutil.rmtree(store)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"ingest on {os.cpu_count()} cores (workers={args.workers or os.cpu_count()}), tiled BigTIFF sources")
    print(f"{'size':>12} {'MP':>6} {'dtype':>7} {'raw MB':>8} {'s':>7} {'MB/s':>7} {'peak RSS MB':>12} "
          f"{'levels':>6} {'stored MB':>10}")
    for r in rows:
        print(f"{r['size']:>12} {r['mp']:>6.0f} {r['dtype']:>7} {r['raw_mb']:>8.0f} {r['seconds']:>7.1f} "
              f"{r['mb_per_s']:>7.1f} {r['peak_rss_mb']:>12.0f} {r['levels']:>6} {r['stored_mb']:>10.0f}")


if __name__ == "__main__":
    main()
