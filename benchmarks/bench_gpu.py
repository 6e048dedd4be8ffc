"""The GPU path beside the CPU path: the same outputs within a tolerance, and each stage's MP/s on the device.

    python benchmarks/bench_gpu.py --json benchmarks/results/DATE-bench_gpu-h200.json   # on a GPU machine
    python benchmarks/bench_gpu.py --side 2048 --device cpu                            # a dry run (diffs 0)

A generated painting-like scan (`bench_restore.make_scan`, `--damage` of the area with synthetic damage) is
ingested once. Detect runs on the CPU in fp32 (the reference), then on `--device` in fp32 and in bf16
(autocast); inpaint fills the generator's label mask on the CPU and on the device. Each run is a subprocess as
in bench_restore (the local Dask cluster started before the clock; peak RSS of the process and its workers).
Compared with the CPU reference: the probabilities (0-255 levels: largest and mean |difference|, share of
pixels more than 2 levels apart), the labels (share of pixels whose class differs; F1 of each class's device
labels against the CPU's), and `restored/` (largest and mean |difference| in levels over the pixels either run
filled, where alone they can differ; share more than 2 levels apart; pixels filled by one run only). Then
the pure forward of the same detector on the device (one chunk with its halo as one (1, 3, tile, tile) input,
the tta views, the same precision), timed after warm-up and multiplied by the chunk count: the detect stage's
wall time over it is the stage's overhead on the device (issue 24's ratio).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_restore import json_subprocess, labels_path, make_scan, run_stage  # noqa: E402
from lab.eval.same_outputs import compare_detection, compare_restored  # noqa: E402
from pipeline.io.store import DAMAGE_LABELS, DAMAGE_PROBABILITIES, RESTORED  # noqa: E402
from pipeline.stages.detect import DEFAULT_TTA, DEFAULT_WEIGHTS, DetectConfig  # noqa: E402


def read_level0(store: Path, group: str) -> np.ndarray:
    """Level 0 of an image group of the store, whole, as numpy."""
    import zarr

    return np.asarray(zarr.open_array(store=str(store / group / "0"), mode="r")[...])


FORWARD = """
import json, sys, time
import torch
from models.weights import load_model
from pipeline.stages.detect_infer import tile_probabilities
weights, device, precision, tile, views, repeats = sys.argv[1:7]
tile, views, repeats = int(tile), int(views), int(repeats)
model, _ = load_model(weights, device=device)
model = model.to(memory_format=torch.channels_last)
x = torch.rand(1, 3, tile, tile, device=device).contiguous(memory_format=torch.channels_last)
def sync():
    if device.startswith("cuda"):
        torch.cuda.synchronize()
times = []
with torch.inference_mode():
    for i in range(2 + repeats):
        sync(); t = time.perf_counter()
        tile_probabilities(model, x, precision == "bf16", views).cpu()
        sync(); times.append(time.perf_counter() - t)
print(json.dumps({"seconds_per_chunk": min(times[2:]), "all": times[2:]}))
"""


def pure_forward(weights: str, device: str, precision: str, tile: int, views: int, repeats: int = 5) -> dict:
    """Seconds of one chunk's forward (tta views included) on the device, best of `repeats` after 2 warm-ups."""
    return json_subprocess("pure forward", [sys.executable, "-c", FORWARD, weights, device, precision, str(tile),
                                            str(views), str(repeats)])


def device_facts(device: str) -> dict:
    import torch

    facts = {"torch": torch.__version__, "cores": os.cpu_count(), "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name(0)
    return facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--damage", type=float, default=0.03)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--workers", type=int, default=0, help="Dask workers for every stage (0: one per core)")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS)
    parser.add_argument("--tta", type=int, default=DEFAULT_TTA)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(dir=args.dir, prefix="bench-gpu-"))
    mp = args.side * args.side / 1e6
    result: dict = {"command": " ".join(["python", "benchmarks/bench_gpu.py", *sys.argv[1:]]),
                    **device_facts(args.device), "side": args.side, "mp": mp, "weights": args.weights,
                    "tta": args.tta, "runs": [], "comparisons": {}}

    def stage(name: str, *extra: str, device: str, precision: str = "fp32") -> dict:
        r = run_stage(name, store, *extra, workers=args.workers, device=device, precision=precision, tta=args.tta)
        row = {"stage": name, "device": device, "precision": precision if name == "detect" else "fp32",
               "seconds": r["seconds"], "mp_per_s": mp / r["seconds"], "peak_rss_mb": r["peak_rss_mb"]}
        result["runs"].append(row)
        print(json.dumps(row), flush=True)
        return r

    try:
        scan_path = scratch / "scan.tif"
        result["damaged_fraction"] = make_scan(scan_path, args.side, args.damage)
        store = scratch / "scan.zarr"
        stage("ingest", str(scan_path), device="cpu")
        scan = read_level0(store, "scan")
        stage("detect", args.weights, device="cpu", precision="fp32")
        ref = read_level0(store, DAMAGE_PROBABILITIES), read_level0(store, DAMAGE_LABELS)
        detected = {}
        for precision in ("fp32", "bf16"):
            detected[precision] = stage("detect", args.weights, device=args.device, precision=precision)
            got = read_level0(store, DAMAGE_PROBABILITIES), read_level0(store, DAMAGE_LABELS)
            result["comparisons"][f"detect {args.device} {precision}"] = compare_detection(*ref, *got)
        mask = str(labels_path(scan_path))
        stage("inpaint", mask, device="cpu")
        ref_restored = read_level0(store, RESTORED)
        stage("inpaint", mask, device=args.device)
        result["comparisons"][f"inpaint {args.device}"] = compare_restored(scan, ref_restored,
                                                                          read_level0(store, RESTORED))
        for precision, run in detected.items():
            chunks, detect_s = run["chunks_run"], run["seconds"]
            fwd = pure_forward(args.weights, args.device, precision, DetectConfig().tile, args.tta)
            network = fwd["seconds_per_chunk"] * chunks
            result["comparisons"][f"forward {args.device} {precision}"] = {
                "seconds_per_chunk": fwd["seconds_per_chunk"], "chunks": chunks, "network_seconds": network,
                "stage_seconds": detect_s, "stage_over_forward": detect_s / network}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(result["comparisons"], indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"bench_gpu: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
