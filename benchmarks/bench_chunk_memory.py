"""What detect chunks leave behind: RSS and free heap at the start of each chunk, run through the chunk engine.

    PYTHONPATH=. python benchmarks/bench_chunk_memory.py --store S.zarr    # 2 x 8 chunks of S.zarr's scan/0
    PYTHONPATH=/other/checkout:. python benchmarks/bench_chunk_memory.py --store S.zarr  # that checkout's engine

The store is one written by `retouch ingest` (1024-px chunks in 4096-px shards, at least 8192 px wide).
`--per-shard` chunks of each of two shards go through the detector (two tasks, one per worker of the
default local cluster, one torch thread each) into scratch arrays. Before each chunk the process's RSS and
glibc's `mallinfo2` (heap bytes in use, and free bytes the heap keeps) are recorded: what the chunks before
it left behind. Figures are printed, one line per chunk, and the summary as JSON.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import json
import tempfile
import threading
import time
from typing import Any

import numpy as np
import psutil
import zarr


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


def snapshot() -> dict[str, float]:
    """RSS, heap in use and free heap kept (MB) of this process now."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return {"time": time.time(), "rss_mb": psutil.Process().memory_info().rss / 2**20,
            "heap_in_use_mb": info.uordblks / 2**20, "heap_free_mb": info.fordblks / 2**20}


SNAPSHOTS: list[dict[str, float]] = []
_LOCK = threading.Lock()


class Measured:
    """A chunk function that records a snapshot before calling the wrapped one."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __call__(self, block: np.ndarray) -> Any:
        taken = snapshot()
        with _LOCK:
            SNAPSHOTS.append(taken)
        return self.fn(block)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True)
    parser.add_argument("--per-shard", type=int, default=8)
    parser.add_argument("--weights", default="detector-resunet18-paint")
    parser.add_argument("--json", default=None, help="also write the summary here")
    args = parser.parse_args()
    from pipeline.engine.ledger import Ledger
    from pipeline.engine.runner import EngineConfig, close_local_clusters, local_cluster
    from pipeline.engine.tiling import ChunkJob, run_chunks
    from pipeline.stages.detect import DetectConfig, _DetectChunk

    # this file imported as a module: its Measured is pickled by reference (as __main__ it would be by value)
    here = importlib.import_module("benchmarks.bench_chunk_memory")
    engine = EngineConfig(workers=2, progress=False, torch_threads=1)
    local_cluster(engine)
    scan = zarr.open_group(args.store, mode="r")["scan/0"]
    scratch = tempfile.mkdtemp(prefix="bench-chunk-memory-")
    root = zarr.open_group(scratch, mode="w")
    size = scan.shape[1:]
    probs = root.create_array("p", shape=(2, *size), dtype=np.uint8, chunks=(2, 1024, 1024), shards=(2, 4096, 4096))
    labels = root.create_array("l", shape=(1, *size), dtype=np.uint8, chunks=(1, 1024, 1024), shards=(1, 4096, 4096))
    config = DetectConfig(weights=args.weights).resolved()
    job = ChunkJob([scan], [probs, labels], here.Measured(_DetectChunk(config, 1)), config.halo, 1024)
    regions = []
    for x0 in (0, 4096):  # two shards side by side: one task each
        cells = [(y, x) for y in range(0, 4096, 1024) for x in range(x0, x0 + 4096, 1024)][: args.per_shard]
        regions += [(y, y + 1024, x, x + 1024) for y, x in cells]
    ledger = Ledger(scratch, "bench", "chunks")
    started = time.time()
    run_chunks(job, regions, ledger, ledger.start(), "bench", engine)
    after = snapshot()
    close_local_clusters()
    rows = sorted(here.SNAPSHOTS, key=lambda s: s["time"])
    for i, row in enumerate(rows):
        print(f"chunk {i:2d} at {row['time'] - started:6.1f} s: RSS {row['rss_mb']:6.0f} MB, heap in use "
              f"{row['heap_in_use_mb']:5.0f} MB, free heap kept {row['heap_free_mb']:5.0f} MB")
    later = rows[2:]  # from the third chunk on: every worker has run at least one chunk before
    summary = {"chunks": len(rows), "seconds": after["time"] - started, "weights": args.weights,
               "rss_mb_at_chunk_start": {"min": min(r["rss_mb"] for r in later),
                                         "max": max(r["rss_mb"] for r in later),
                                         "mean": sum(r["rss_mb"] for r in later) / len(later)},
               "rss_mb_after": after["rss_mb"]}
    print(json.dumps(summary))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**summary, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
