"""Cost of the detect stage's straight-crack pass (`straight_cracks.clear_straight`) on a large label map.

    python benchmarks/bench_straight.py --json benchmarks/results/DATE-bench_straight-100mp-cpu2.json
    python benchmarks/bench_straight.py --megapixels 400 --chunk 1024

A (1, H, W) uint8 label map of about `--megapixels` MP, square, is written to a Zarr store on disk in `--chunk`-px
chunks (zstd, as the detect stage writes its labels): real craquelure shapes (`../shared/data/nga_craquelure_maps`,
1,788 crack maps of 256 px, laid edge to edge, each thinned to a 3-px band around its skeleton so that it stays a
network) as craquelure, a 3 % square block of paint loss per map, and one long straight 2-px line per 8 maps along
each row of maps, its cracks cleared 6 px around it (a painted line's stand-in). In a fresh subprocess the pass
reads that map and writes the label image without the straight components (L = `--straight`, sharded output as the
stage's); its wall time, CPU time and peak RSS (the process's, from getrusage) are recorded with the map's size, its
components and what was dropped.
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
from pipeline.stages.straight_cracks import clear_straight
store, chunk, straight = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
root = zarr.open_group(store, mode="a")
raw, out = root["raw"], root["out"]
c, t = cpu(), time.perf_counter()
result = clear_straight(raw, out, chunk, straight)
print(json.dumps({"seconds": time.perf_counter() - t, "cpu_seconds": cpu() - c,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "straight_components": result.components, "dropped_px": sum(result.dropped.values())}))
"""


def write_map(store: Path, side: int, chunk: int) -> dict[str, int]:
    """The label map (see the module docstring), written band by band of 256 px; its pixel counts."""
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
        counts["craquelure"] += int((band == 1).sum())
        counts["paint_loss"] += int((band == 2).sum())
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megapixels", type=float, default=100.0)
    parser.add_argument("--chunk", type=int, default=1024, help="the stage's chunk side (a multiple of 256)")
    parser.add_argument("--straight", type=int, default=60, help="skeleton px from which a straight line is dropped")
    parser.add_argument("--json", type=Path, help="write the record here")
    args = parser.parse_args()
    if args.chunk % 256:
        raise SystemExit(f"error: --chunk {args.chunk}: must be a multiple of 256")
    side = int(round((args.megapixels * 1e6) ** 0.5 / 256)) * 256
    sys.path.insert(0, str(REPO))
    from benchmarks.machine import machine

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "labels.zarr"
        counts = write_map(store, side, args.chunk)
        done = subprocess.run([sys.executable, "-c", RUN, str(store), str(args.chunk), str(args.straight)],
                              cwd=REPO, capture_output=True, text=True, check=True)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    record = {"command": "python " + " ".join(sys.argv), "side": side, "megapixels": side * side / 1e6,
              "chunk": args.chunk, "straight": args.straight, "counts": counts, **figures,
              "megapixels_per_second": side * side / 1e6 / figures["seconds"], "machine": machine()}
    print(json.dumps(record, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
