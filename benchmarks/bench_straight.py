"""Cost of the detect stage's passes over the whole label map (`label_passes.detect_label_passes`: straight
craquelure, and with `--paint-like N` paint loss the colour of the paint around it) on a large label map.

    python benchmarks/bench_straight.py --json benchmarks/results/DATE-bench_straight-100mp-cpu2.json
    python benchmarks/bench_straight.py --megapixels 400 --chunk 1024
    python benchmarks/bench_straight.py --paint-like 8 --json benchmarks/results/DATE-bench_straight-100mp-like8.json

A (1, H, W) uint8 label map of about `--megapixels` MP, square, is written to a Zarr store on disk in `--chunk`-px
chunks (zstd, as the detect stage writes its labels): real craquelure shapes (`../shared/data/nga_craquelure_maps`,
1,788 crack maps of 256 px, laid edge to edge, each thinned to a 3-px band around its skeleton so that it stays a
network) as craquelure, a 3 % square block of paint loss per map, and one long straight 2-px line per 8 maps along
each row of maps, its cracks cleared 6 px around it (a painted line's stand-in). In a fresh subprocess the pass
reads that map and writes the label image without the straight components (L = `--straight`, sharded output as the
stage's); its wall time, CPU time and peak RSS (the process's, from getrusage) are recorded with the map's size, its
components and what was dropped. With `--paint-like N` a (3, H, W) uint8 scan is written beside it (grey paint with a
gentle gradient; the upper half of each loss block pale ground, the lower half the paint's colour, as a flood) and
the pass reads its colours too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAPS = REPO.parent / "shared" / "data" / "nga_craquelure_maps" / "maps"

RUN = """
import json, resource, sys, time
import zarr
from benchmarks.cpu_time import process_cpu_seconds as cpu
from pipeline.stages.label_passes import detect_label_passes
store, chunk, straight, like = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
root = zarr.open_group(store, mode="a")
raw, out = root["raw"], root["out"]
scan = root["scan"] if like else None
c, t = cpu(), time.perf_counter()
result = detect_label_passes(raw, out, scan, chunk, straight, like)
straight_dropped = result.summary.get("straight_dropped", {})
print(json.dumps({"seconds": time.perf_counter() - t, "cpu_seconds": cpu() - c,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "straight_components": straight_dropped.get("components", 0),
                  "dropped_px": straight_dropped.get("pixels", 0),
                  "paint_like_dropped_px": result.summary.get("paint_like_dropped", {}).get("pixels", 0)}))
"""


def write_map(store: Path, side: int, chunk: int, scan: bool = False) -> dict[str, int]:
    """The label map (see the module docstring), written band by band of 256 px, and with `scan` the scan beside it;
    its pixel counts."""
    import numpy as np
    import zarr
    from PIL import Image
    from scipy.ndimage import binary_dilation
    from skimage.draw import line
    from skimage.morphology import dilation, skeletonize

    from pipeline.io.store import create_chunked

    files = sorted(MAPS.glob("*.png"))
    if not files:
        raise SystemExit(f"error: {MAPS}: no crack maps (is ../shared/data present?)")
    root = zarr.open_group(str(store), mode="w")
    raw = create_chunked(root, "raw", (1, side, side), chunk, np.dtype(np.uint8))
    create_chunked(root, "out", (1, side, side), chunk, np.dtype(np.uint8), shard_chunks=4)
    colours = create_chunked(root, "scan", (3, side, side), chunk, np.dtype(np.uint8)) if scan else None
    counts, index = {"craquelure": 0, "paint_loss": 0}, 0
    for y0 in range(0, side, chunk):  # a band of chunks at a time
        y1 = min(side, y0 + chunk)
        band = np.zeros((y1 - y0, side), np.uint8)
        for by in range(0, y1 - y0, 256):  # a row of maps
            for x0 in range(0, side, 256):
                crack = np.asarray(Image.open(files[index % len(files)]).convert("L")) > 127
                crack = dilation(skeletonize(crack), np.ones((3, 3), bool))
                index += 1
                h, w = min(crack.shape[0], y1 - y0 - by), min(crack.shape[1], side - x0)  # a few maps are 255 px
                tile = band[by : by + h, x0 : x0 + w]
                tile[crack[:h, :w]] = 1
                tile[: h // 6, : w // 6] = 2
            for x0 in range(0, side - 2040, 2048):  # a straight line across 8 maps, clear of their cracks
                stroke = np.zeros_like(band, bool)
                rr, cc = line(by + 100, x0, by + 140, x0 + 2040)
                keep = rr < y1 - y0 - 1
                stroke[rr[keep], cc[keep]] = stroke[rr[keep] + 1, cc[keep]] = True
                band[binary_dilation(stroke, iterations=6) & (band == 1)] = 0
                band[stroke] = 1
        raw[0, y0:y1] = band
        if colours is not None:
            grey = (110 + 40 * np.arange(side) / side).astype(np.uint8)[None, :].repeat(y1 - y0, axis=0)
            pale = (band == 2) & ((np.arange(y1 - y0)[:, None] % 256) < 256 // 12)  # the upper half of a loss block
            grey[pale] = 230
            colours[:, y0:y1] = np.broadcast_to(grey, (3, *grey.shape))
        counts["craquelure"] += int((band == 1).sum())
        counts["paint_loss"] += int((band == 2).sum())
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megapixels", type=float, default=100.0)
    parser.add_argument("--chunk", type=int, default=1024, help="the stage's chunk side (a multiple of 256)")
    parser.add_argument("--straight", type=int, default=60, help="skeleton px from which a straight line is dropped")
    parser.add_argument("--paint-like", type=int, default=0, help="levels of the paint-like loss pass (0: off)")
    parser.add_argument("--json", type=Path, help="write the record here")
    args = parser.parse_args()
    if args.chunk % 256:
        raise SystemExit(f"error: --chunk {args.chunk}: must be a multiple of 256")
    side = int(round((args.megapixels * 1e6) ** 0.5 / 256)) * 256
    sys.path.insert(0, str(REPO))
    from benchmarks.machine import machine

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "labels.zarr"
        counts = write_map(store, side, args.chunk, scan=bool(args.paint_like))
        done = subprocess.run([sys.executable, "-c", RUN, str(store), str(args.chunk), str(args.straight),
                               str(args.paint_like)],
                              cwd=REPO, capture_output=True, text=True, check=True)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    record = {"command": "python " + " ".join(sys.argv), "side": side, "megapixels": side * side / 1e6,
              "chunk": args.chunk, "straight": args.straight, "paint_like": args.paint_like, "counts": counts,
              **figures,
              "megapixels_per_second": side * side / 1e6 / figures["seconds"], "machine": machine()}
    print(json.dumps(record, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
