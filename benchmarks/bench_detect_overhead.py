"""Detect stage overhead: its wall time over the pure forward time of the same network on the same pixels.

    python benchmarks/bench_detect_overhead.py --json benchmarks/results/DATE-bench_detect_overhead-cpu2.json
    python benchmarks/bench_detect_overhead.py --side 2048 --tta 1 --repeats 2 --layouts 1x2 2x1

A smooth painting-like RGB scan of `--side` px is ingested once (1024-px chunks). For each engine layout WxT (W
local workers of T torch threads), in a fresh subprocess: the local Dask cluster is started before the clock (as
`retouch run` does), then `detect(force=True)` is timed `--repeats` times with the default DetectConfig apart from
`--tta` and `--border` (I/O, halos, labels, pyramids, the strips along the image border, provenance included); its
wall time and the CPU time of the process and its workers are recorded. Then, in the same process with the cluster
closed and torch at W*T threads, the pure forward: the same network on one (1, 3, tile, tile) channels-last input
(a chunk with its halo is one tile), the same precision, timed `--repeats` times after two warm-up passes, times
the chunks (tta views included); with W > 1 also at T threads, divided by W (each worker's share of the chunks, run
side by side). Wall and CPU ratios are both recorded: on a shared machine a torch thread that waits for the cores
spins and burns CPU. Ratios stage / forward are reported with min and median (the machine is shared: the load
average is recorded with the figures).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

import tifffile

REPO = Path(__file__).resolve().parents[1]

RUN = """
import json, sys, time
import torch
from pipeline.engine.runner import EngineConfig, close_local_clusters, local_cluster
from pipeline.stages.detect import DEFAULT_WEIGHTS, DetectConfig, detect
store, workers, threads, tta, repeats, border = sys.argv[1], *map(int, sys.argv[2:7])
from benchmarks.cpu_time import process_cpu_seconds as cpu
engine = EngineConfig(workers=workers, torch_threads=threads, progress=False)
if engine.scheduler != "threads":
    local_cluster(engine)
config = DetectConfig(tta=tta, border=border).resolved()
stage, stage_cpu = [], []
for _ in range(repeats):
    c, t = cpu(), time.perf_counter()
    r = detect(store, config, engine, force=True)
    stage.append(time.perf_counter() - t)
    stage_cpu.append(cpu() - c)
close_local_clusters()
chunks = r.chunks_run
from models.weights import load_model
from pipeline.stages.detect_infer import tile_probabilities
torch.set_num_threads(workers * threads)
model, _ = load_model(config.weights or DEFAULT_WEIGHTS)  # None: the stage uses the default
x = torch.rand(1, 3, config.tile, config.tile).contiguous(memory_format=torch.channels_last)
def forwards():
    times, cpus = [], []
    with torch.inference_mode():
        for _ in range(2):  # warm-up: the heap reuses a pass's memory from the third pass on
            tile_probabilities(model, x, config.precision == "bf16", tta)
        for _ in range(repeats):
            c, t = time.process_time(), time.perf_counter()
            tile_probabilities(model, x, config.precision == "bf16", tta)
            times.append((time.perf_counter() - t) * chunks)
            cpus.append((time.process_time() - c) * chunks)
    return times, cpus
forward, forward_cpu = forwards()
extra = {}
if workers > 1:  # the workers' own view: one worker's threads, its share of the chunks
    torch.set_num_threads(threads)
    single, single_cpu = forwards()
    extra = {"forward_per_worker_s": [s / workers for s in single], "forward_per_worker_cpu_s": single_cpu}
print(json.dumps({"stage_s": stage, "stage_cpu_s": stage_cpu, "forward_s": forward, "forward_cpu_s": forward_cpu,
                  **extra, "chunks": chunks, "precision": config.precision, "tile": config.tile,
                  "border": config.border}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=2048)
    parser.add_argument("--tta", type=int, default=1, choices=[1, 2, 4, 8])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--border", type=int, default=None, help="the stage's --border (default: its default); the "
                        "strips along the image border count as stage time, not forward")
    parser.add_argument("--layouts", nargs="+", default=["1x2", "2x1"], help="WORKERSxTHREADS")
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_inpaint_cost import painting
    from bench_restore import json_subprocess  # runs with the C heap the retouch command sets up

    from pipeline.engine.runner import EngineConfig
    from pipeline.stages.detect import DEFAULT_BORDER
    from pipeline.stages.ingest import ingest

    border = DEFAULT_BORDER if args.border is None else args.border

    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-detect-overhead-") as scratch:
        scan, store = Path(scratch) / "scan.tif", Path(scratch) / "scan.zarr"
        tifffile.imwrite(scan, painting(args.side, 0), tile=(512, 512), photometric="rgb")
        ingest(scan, str(store), engine=EngineConfig(scheduler="threads", progress=False))
        for layout in args.layouts:
            workers, threads = (int(v) for v in layout.split("x"))
            r = json_subprocess(layout, [sys.executable, "-c", RUN, str(store), str(workers), str(threads),
                                         str(args.tta), str(args.repeats), str(border)])
            ratios = [s / f for s, f in zip(r["stage_s"], r["forward_s"], strict=True)]
            row = {"layout": layout, **r, "ratio_min": min(ratios), "ratio_median": statistics.median(ratios),
                   "ratio_best_over_best": min(r["stage_s"]) / min(r["forward_s"]),
                   "cpu_ratio_min": min(r["stage_cpu_s"]) / min(r["forward_cpu_s"]), "load_average": os.getloadavg()}
            if "forward_per_worker_s" in r:
                row["ratio_to_per_worker_forward_min"] = min(r["stage_s"]) / min(r["forward_per_worker_s"])
                row["cpu_ratio_to_per_worker_forward_min"] = (min(r["stage_cpu_s"])
                                                              / min(r["forward_per_worker_cpu_s"]))
            rows.append(row)
            print(f"{layout}: stage {min(r['stage_s']):.1f}/{statistics.median(r['stage_s']):.1f} s (min/median), "
                  f"forward {min(r['forward_s']):.1f}/{statistics.median(r['forward_s']):.1f} s, ratio "
                  f"min {row['ratio_min']:.2f} median {row['ratio_median']:.2f}, load {row['load_average']}",
                  flush=True)
    if args.json:
        from machine import machine

        args.json.write_text(json.dumps({"command": shlex.join(["benchmarks/bench_detect_overhead.py",
                                                                 *sys.argv[1:]]),
                                         "side": args.side, "tta": args.tta, "border": border,
                                         "cores": os.cpu_count(), "machine": machine(),
                                         "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
