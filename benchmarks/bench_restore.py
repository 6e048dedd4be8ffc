"""Per-stage throughput and peak RSS of the whole restore, on generated scans with synthetic damage.

    python benchmarks/bench_restore.py                          # 16, 100 and 400 MP (4000, 10000, 20000 px)
    python benchmarks/bench_restore.py --sides 4000 --monai     # + detect vs MONAI sliding_window_inference
    python benchmarks/bench_restore.py --sides 4000 --efficiency  # detect with 1 vs 2 workers (1 thread each)
    python benchmarks/bench_restore.py --device cuda --bf16     # on a GPU machine

Scans are painting-like RGB 8-bit tiled BigTIFFs written tile by tile; about `--damage` of the area carries
synthetic craquelure and paint loss (pipeline.synthetic_damage on randomly chosen 1024-px blocks). Each
stage runs in its own subprocess so its peak RSS (ru_maxrss) is its own. Figures are printed as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile

BLOCK = 1024
REPO = Path(__file__).resolve().parents[1]


def painting_block(rng: np.random.Generator, y: int, x: int, side: int) -> np.ndarray:
    yy, xx = np.mgrid[0:BLOCK, 0:BLOCK].astype(np.float32) / BLOCK
    phase = (y * 7 + x * 3) / side
    base = 0.45 + 0.25 * np.sin(6.0 * (yy + phase)) * np.cos(4.0 * (xx - phase))
    rgb = np.stack([base, base * 0.8 + 0.1, base * 0.6 + 0.05], axis=-1)
    rgb += rng.normal(0.0, 0.015, rgb.shape).astype(np.float32)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def make_scan(path: Path, side: int, damage: float, seed: int = 0) -> float:
    """Write the scan; returns the damaged fraction of its area (from the generator's labels)."""
    from pipeline.synthetic_damage import synthesize_damage

    rng = np.random.default_rng(seed)
    n = -(-side // BLOCK)
    damaged_px = [0]

    def tiles():
        for by in range(n):
            row = []
            for bx in range(n):
                block = painting_block(rng, by * BLOCK, bx * BLOCK, side)
                if rng.random() < damage * 6:  # a damaged block carries ~1/6 of its area as damage
                    block, labels = synthesize_damage(block, seed=int(rng.integers(1 << 30)))
                    damaged_px[0] += int((labels > 0).sum())
                row.append(block)
            band = np.concatenate(row, axis=1)[:, :side]
            for ty in range(0, BLOCK, 512):
                for tx in range(0, side, 512):
                    tile = np.zeros((512, 512, 3), np.uint8)
                    part = band[ty : ty + 512, tx : tx + 512]
                    tile[: part.shape[0], : part.shape[1]] = part
                    yield tile

    tifffile.imwrite(path, tiles(), shape=(n * BLOCK, side, 3), dtype=np.uint8, tile=(512, 512), bigtiff=True,
                     photometric="rgb")
    return damaged_px[0] / (n * BLOCK * side)


STAGE = """
import json, resource, sys, time
from pipeline.engine import EngineConfig
stage, store, workers, threads, device, bf16 = sys.argv[1:7]
engine = EngineConfig(workers=int(workers), torch_threads=int(threads), progress=False)
t = time.perf_counter()
if stage == "ingest":
    from pipeline.ingest import ingest
    ingest(sys.argv[7], store, engine=engine)
elif stage == "detect":
    from pipeline.detect import DetectConfig, detect
    r = detect(store, DetectConfig(device=device, bf16=bf16 == "1"), engine, force=True)
elif stage == "inpaint":
    from pipeline.inpaint_stage import InpaintStageConfig, inpaint_store
    r = inpaint_store(store, InpaintStageConfig(device=device), engine, force=True)
elif stage == "export":
    from pipeline.export import export
    export(store, sys.argv[7], force=True)
seconds = time.perf_counter() - t
extra = {}
if stage == "inpaint":
    extra = {"hole_pixels": r.summary["hole_pixels"], "chunks_inpainted": r.summary["chunks_inpainted"],
             "chunks_total": r.summary["chunks_total"]}
if stage == "detect":
    extra = {"area_percent": r.summary["area_percent"]}
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  **extra}))
"""


def run_stage(stage: str, store: Path, *extra: str, workers: int = 0, threads: int = 0, device: str = "cpu",
              bf16: bool = False) -> dict:
    args = [sys.executable, "-c", STAGE, stage, str(store), str(workers), str(threads), device,
            "1" if bf16 else "0", *extra]
    out = subprocess.run(args, capture_output=True, text=True, cwd=REPO)
    if out.returncode:
        raise RuntimeError(f"{stage} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


MONAI = """
import json, resource, sys, time
import numpy as np, torch, zarr
from monai.inferers import sliding_window_inference
from models.weights import load_model
store, threads = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(threads)
model, _ = load_model("detector-resunet18")
image = zarr.open_group(store, mode="r")["scan/0"][:]  # (3, H, W) whole image in memory
t = time.perf_counter()
x = torch.from_numpy(image).float().div(255)[None]
with torch.inference_mode():
    prob = torch.sigmoid(sliding_window_inference(x, (512, 512), 1, model, overlap=64 / 512, mode="gaussian"))
labels = (prob[0] >= 0.5).numpy()
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_monai(store: Path, threads: int) -> dict:
    out = subprocess.run([sys.executable, "-c", MONAI, str(store), str(threads)], capture_output=True, text=True,
                         cwd=REPO)
    if out.returncode:
        raise RuntimeError(f"monai failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sides", type=int, nargs="+", default=[4000, 10000, 20000])
    parser.add_argument("--damage", type=float, default=0.03, help="target damaged fraction of the area")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--monai", action="store_true", help="detect vs MONAI on the first size")
    parser.add_argument("--efficiency", action="store_true", help="detect with 1 and 2 workers on the first size")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(dir=args.dir, prefix="bench-restore-"))
    rows, notes = [], []
    try:
        for side in args.sides:
            scan = scratch / f"scan-{side}.tif"
            damaged = make_scan(scan, side, args.damage)
            store = scratch / f"scan-{side}.zarr"
            mp = side * side / 1e6
            for stage, extra in (("ingest", [str(scan)]), ("detect", []), ("inpaint", []),
                                 ("export", [str(scratch / f"export-{side}")])):
                r = run_stage(stage, store, *extra, workers=args.workers, device=args.device, bf16=args.bf16)
                rows.append({"stage": stage, "mp": mp, "damage %": 100 * damaged, **r})
            if args.efficiency and side == args.sides[0]:
                one = run_stage("detect", store, workers=1, threads=1)
                two = run_stage("detect", store, workers=2, threads=1)
                notes.append(f"detect parallel efficiency at {mp:.0f} MP: 1 worker {one['seconds']:.1f} s, "
                             f"2 workers {two['seconds']:.1f} s -> {one['seconds'] / (2 * two['seconds']):.2f}")
            if args.monai and side == args.sides[0]:
                ours = run_stage("detect", store, workers=1, threads=os.cpu_count() or 1)
                theirs = run_monai(store, os.cpu_count() or 1)
                t_ratio = ours["seconds"] / theirs["seconds"]
                m_ratio = ours["peak_rss_mb"] / theirs["peak_rss_mb"]
                notes.append(f"detect vs MONAI sliding_window_inference at {mp:.0f} MP (tile 512, overlap 64, "
                             f"gaussian): time {ours['seconds']:.1f} s vs {theirs['seconds']:.1f} s (ratio "
                             f"{t_ratio:.2f}), peak RSS {ours['peak_rss_mb']:.0f} vs {theirs['peak_rss_mb']:.0f} MB "
                             f"(ratio {m_ratio:.2f})")
            scan.unlink()
            shutil.rmtree(store)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"restore stages on {os.cpu_count()} cores, device {args.device}, bf16 {args.bf16}")
    print(f"{'stage':>8} {'MP':>6} {'damage %':>9} {'s':>8} {'MP/s':>7} {'peak RSS MB':>12}  notes")
    for r in rows:
        note = ""
        if r["stage"] == "inpaint":
            note = f"{r['chunks_inpainted']}/{r['chunks_total']} chunks inpainted, {r['hole_pixels']} px filled"
        if r["stage"] == "detect":
            note = "found " + ", ".join(f"{k} {v:.2f}%" for k, v in r["area_percent"].items())
        print(f"{r['stage']:>8} {r['mp']:>6.0f} {r['damage %']:>9.2f} {r['seconds']:>8.1f} "
              f"{r['mp'] / r['seconds']:>7.2f} {r['peak_rss_mb']:>12.0f}  {note}")
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
