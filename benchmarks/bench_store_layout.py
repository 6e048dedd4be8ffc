"""Store layout: file count, size and write/read speed of the scan pyramid, sharded (4x4 chunks per shard
file) against one file per chunk, on a generated painting-like RGB scan.

    python benchmarks/bench_store_layout.py                 # 8192 x 8192 (67 MP), quick on 2 cores
    python benchmarks/bench_store_layout.py --side 32768    # 1 gigapixel, by hand (needs ~10 GB of disk)

Each layout is ingested by `retouch ingest`'s own code (level 0 from a tiled TIFF, then the pyramid) on the
threads scheduler, `--repeats` times, alternating the layouts (`--layouts` sets the order); then level 0
is read back whole. The result
goes to benchmarks/results/<date>-bench_store_layout-<side>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import zarr  # noqa: E402
from bench_ingest import make_scan  # noqa: E402

from pipeline.engine.runner import EngineConfig  # noqa: E402
from pipeline.stages.ingest import IngestConfig, ingest  # noqa: E402

LAYOUTS = {"sharded-4x4": 4, "chunk-files": 0}


def files_and_bytes(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def measure(scan: Path, work: Path, shard_chunks: int, engine: EngineConfig) -> dict:
    store = work / f"s{shard_chunks}.zarr"
    shutil.rmtree(store, ignore_errors=True)
    started = time.perf_counter()
    ingest(scan, str(store), IngestConfig(shard_chunks=shard_chunks), engine)
    seconds = time.perf_counter() - started
    level0 = zarr.open_array(str(store / "scan" / "0"), mode="r")
    started = time.perf_counter()
    level0[:]
    read_seconds = time.perf_counter() - started
    files0, bytes0 = files_and_bytes(store / "scan" / "0")
    files, size = files_and_bytes(store / "scan")
    raw_mb = level0.nbytes / 2**20
    return {"ingest_seconds": seconds, "ingest_raw_mb_per_s": raw_mb / seconds, "read_level0_seconds": read_seconds,
            "level0_files": files0, "level0_mb": bytes0 / 2**20, "scan_files": files, "scan_mb": size / 2**20,
            "shards": list(level0.shards) if level0.shards else None, "chunks": list(level0.chunks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None, help="where the scan and stores go (a temp dir)")
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help="which layouts, in this order each repeat")
    args = parser.parse_args()
    engine = EngineConfig(workers=args.workers, progress=False, scheduler="threads")
    order = args.layouts.split(",")
    if not order or set(order) - set(LAYOUTS):
        parser.error(f"--layouts takes names from {', '.join(LAYOUTS)}")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        scan = work / "scan.tif"
        make_scan(scan, args.side, "uint8")
        runs: dict[str, list[dict]] = {name: [] for name in order}
        for _ in range(args.repeats):
            for name in order:
                runs[name].append(measure(scan, work, LAYOUTS[name], engine))
                print(name, json.dumps(runs[name][-1]), flush=True)
    summary = {}
    for name, results in runs.items():
        summary[name] = {**results[-1], **{key: statistics.median(r[key] for r in results)
                                           for key in ("ingest_seconds", "ingest_raw_mb_per_s",
                                                       "read_level0_seconds")}}
    record = {"benchmark": "bench_store_layout", "date": date.today().isoformat(), "side": args.side,
              "channels": 3, "dtype": "uint8", "chunk": 1024, "repeats": args.repeats, "workers": args.workers,
              "cpus": os.cpu_count(), "command": " ".join(["python", "benchmarks/bench_store_layout.py",
                                                           *sys.argv[1:]]),
              "order": order, "median_of_repeats": summary, "runs": runs}
    out = ROOT / "benchmarks" / "results" / f"{record['date']}-bench_store_layout-{args.side}.json"
    n = 2
    while out.exists():  # keep earlier runs of the day
        out = out.with_name(f"{record['date']}-bench_store_layout-{args.side}-{n}.json")
        n += 1
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
