"""The detect stage side by side with MONAI's sliding_window_inference and TIAToolbox 2.x's SemanticSegmentor:
the same network, tile, step, views and precision on the same generated scan; wall time, CPU time, peak RSS.

    python benchmarks/bench_peers.py --side 2048 --repeats 1 --png /tmp/peers.png        # a quick check
    python benchmarks/bench_peers.py --side 20000 --dir /scratch --json benchmarks/results/DATE-bench_peers.json

The scan is a painting-like RGB 8-bit tiled BigTIFF of `--side` px written tile by tile with synthetic damage
(bench_restore.make_scan), then ingested (not timed); `--reuse` takes the scan of this side and damage from
`--dir` when its record says it is complete (bench_restore.kept_scan), and its store when its ingest
completed. Each method runs in its own fresh subprocess, `--repeats` times
(benchmarks/peer_methods.py says what each one runs and writes): peak RSS is per method, the largest sum
of RSS over the subprocess and its children (Dask workers) sampled every 0.1 s. Ours runs in this
interpreter; the peers in `--peer-python`, a separate venv (monai and tiatoolbox are no dependency of the
repository). All methods get `--threads` cores: ours as that many single-threaded Dask workers (the stage's
default layout), the peers as that many torch threads; every subprocess is pinned to the first `--threads`
cores when the machine has more. `--tta` views (default: the stage's) are run by every method, so the
number of forward passes is the same. Ours runs with the C heap settings the `retouch` command makes first thing
(`pipeline.engine.memory`: freed activations reused, not faulted in again); the peers with glibc's defaults, as
they ship, or with the same settings (`--peer-heap kept`). After the runs (`--compare`, default on), each peer's
probability map is compared with ours (max and mean absolute difference, per class, over the whole scan, read by
row bands); `--png` writes the three craquelure maps side by side, downsampled.

Peer venv (tiatoolbox 2.1.3 pins torch<2.13, so it is installed without its dependencies on top of the
project's venv and its torch; the few modules it imports are added):

    /work/main/.venv/bin/python -m venv /work/venv-peers
    SP=$(/work/venv-peers/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    echo /work/main/.venv/lib/python3.11/site-packages > $SP/main-venv.pth
    /work/main/.venv/bin/pip freeze | grep -v -e '^-e' -e '@' > /tmp/main-pins.txt
    /work/venv-peers/bin/pip install --no-deps monai==1.6.1 tiatoolbox==2.1.3
    /work/venv-peers/bin/pip install -c /tmp/main-pins.txt umap-learn matplotlib pandas shapely SimpleITK \\
        defusedxml universal-pathlib transformers
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

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.bench_restore import json_subprocess, kept_scan, make_scan, run_stage  # noqa: E402
from benchmarks.peer_methods import METHODS  # noqa: E402
from pipeline.engine.memory import ENVIRONMENT  # noqa: E402
from pipeline.io.store import group_info  # noqa: E402
from pipeline.stages.detect import DEFAULT_COARSE_LOSS, DEFAULT_TTA  # noqa: E402

PEER_PYTHON = "/work/venv-peers/bin/python"


def run_method(method: str, scan: Path, store: Path, out: Path, threads: int, tta: int, python: str,
               peer_heap: str = "default", coarse_loss: bool = DEFAULT_COARSE_LOSS) -> dict:
    """One run of `method` in a fresh subprocess pinned to `threads` cores; its JSON row.

    Ours runs with the C heap settings the `retouch` command makes (`pipeline.engine.memory`); a peer with
    glibc's defaults, as it ships (`peer_heap` "default"), or with the same settings ("kept"). `coarse_loss`
    is ours only (the peers run no coarse pass)."""
    exe = sys.executable if method == "ours" else python
    out.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT}
    heap = "kept" if method == "ours" else peer_heap
    env = {**base, "PYTHONPATH": str(REPO), **(ENVIRONMENT if heap == "kept" else {})}
    cores = sorted(os.sched_getaffinity(0))[:threads]
    pin = None if len(cores) == len(os.sched_getaffinity(0)) else (lambda: os.sched_setaffinity(0, cores))
    args = [exe, "-m", "benchmarks.peer_methods", method, str(scan), str(store), str(out), str(threads), str(tta),
            "coarse" if coarse_loss else "plain"]
    row = json_subprocess(method, args, env=env, preexec_fn=pin) | {"heap": heap}
    print(f"  {method}: {row['seconds']:.1f} s, CPU {row['cpu_s']:.1f} s, peak RSS {row['peak_rss_mb']:.0f} MB",
          file=sys.stderr, flush=True)
    return row


def open_probabilities(path: str):
    """A (2, H, W) view of a method's probabilities as uint8-scaled floats: ours and MONAI's (2, H, W) uint8,
    TIAToolbox's (H, W, 2) float32 in [0, 1]."""
    import zarr

    array = zarr.open_array(path, mode="r")
    if array.dtype == np.uint8:
        return array, lambda a: a.astype(np.float32) / 255.0
    return array, lambda a: np.moveaxis(a, -1, 0).astype(np.float32)


def compare(ours: str, theirs: str, side: int, border: int = 192, band: int = 1024) -> dict:
    """Per class over the scan, read band by band: max and mean |p_ours - p_theirs| (the uint8 rounding of
    ours and MONAI's, up to 1/255, is part of it), the max farther than `border` px from the image edge, the
    fraction of pixels differing by more than 0.1, and the fraction whose label (p >= 0.5) differs."""
    a, fa = open_probabilities(ours)
    b, fb = open_probabilities(theirs)
    tia_layout = b.dtype != np.uint8
    worst, inner, total, over, flips = (np.zeros(2) for _ in range(5))
    for y in range(0, side, band):
        pa = fa(a[:, y : y + band, :side])
        pb = fb(b[y : y + band, :side, :2] if tia_layout else b[:, y : y + band, :side])
        diff = np.abs(pa - pb)
        worst = np.maximum(worst, diff.reshape(2, -1).max(1))
        rows = slice(max(0, border - y), max(0, min(pa.shape[1], side - border - y)))
        if rows.stop > rows.start:
            inner = np.maximum(inner, diff[:, rows, border : side - border].reshape(2, -1).max(1))
        total += diff.reshape(2, -1).sum(1)
        over += (diff > 0.1).reshape(2, -1).sum(1)
        flips += ((pa >= 0.5) != (pb >= 0.5)).reshape(2, -1).sum(1)
    n = side * side
    return {"classes": ["craquelure", "paint_loss"], "max_abs": worst.round(3).tolist(),
            f"max_abs_beyond_{border}px_of_edge": inner.round(3).tolist(), "mean_abs": (total / n).round(5).tolist(),
            "frac_over_0.1": (over / n).round(5).tolist(), "labels_differ": (flips / n).round(5).tolist()}


def write_png(path: Path, outputs: dict[str, str], side: int, width: int = 768) -> None:
    """The craquelure probability of each method, downsampled to `width` px, side by side (grey, white = 1)."""
    import cv2

    panels = []
    for method, where in outputs.items():
        array, scale = open_probabilities(where)
        step = max(1, side // width)
        grid = array[0, :side:step, :side:step] if array.dtype == np.uint8 else array[:side:step, :side:step, 0]
        image = scale(grid if array.dtype == np.uint8 else grid[..., None]) * 255
        image = np.ascontiguousarray(np.squeeze(image).astype(np.uint8))
        cv2.putText(image, method, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 255, 2)
        panels.append(np.pad(image, 4, constant_values=128))
    cv2.imwrite(str(path), np.concatenate(panels, axis=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=2048)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--threads", type=int, default=2, help="cores for every method (default 2)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--tta", type=int, default=DEFAULT_TTA, choices=[1, 2, 4, 8],
                        help=f"views per tile for every method (default {DEFAULT_TTA}, the stage's)")
    parser.add_argument("--damage", type=float, default=0.03, help="damaged fraction of the generated scan")
    parser.add_argument("--peer-python", default=PEER_PYTHON, help="the venv with monai and tiatoolbox")
    parser.add_argument("--peer-heap", choices=["default", "kept"], default="default",
                        help="the peers' C heap: glibc's defaults (as they ship) or ours (pipeline.engine.memory)")
    parser.add_argument("--coarse-loss", action=argparse.BooleanOptionalAction, default=DEFAULT_COARSE_LOSS,
                        help="ours with the stage's coarse paint-loss pass (default: the stage's default); "
                             "--no-coarse-loss runs the network passes the peers run")
    parser.add_argument("--dir", type=Path, default=None, help="where the scan, store and outputs go")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the complete scan and store of this side and damage in --dir")
    parser.add_argument("--no-compare", dest="compare", action="store_false")
    parser.add_argument("--png", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.reuse and args.dir is None:
        parser.error("--reuse needs --dir")
    if args.threads > len(os.sched_getaffinity(0)):
        parser.error(f"--threads {args.threads} > the {len(os.sched_getaffinity(0))} cores this process may use")
    scratch = args.dir or Path(tempfile.mkdtemp(prefix="bench-peers-"))
    scratch.mkdir(parents=True, exist_ok=True)
    if args.reuse:  # a scan counts once its record is written (bench_restore.kept_scan), a store once ingested
        scan, _ = kept_scan(scratch, args.side, args.damage)
    else:
        scan = scratch / f"scan-{args.side}.tif"
        make_scan(scan, args.side, args.damage)
    store = scan.with_suffix(".zarr")
    if not (args.reuse and group_info(str(store), "scan")):
        run_stage("ingest", store, str(scan), workers=args.threads, threads=1)
    rows, outputs = {}, {}
    for method in args.methods:
        runs = [run_method(method, scan, store, scratch / "out", args.threads, args.tta, args.peer_python,
                           args.peer_heap, args.coarse_loss) for _ in range(args.repeats)]
        best = min(runs, key=lambda r: r["seconds"])
        outputs[method] = best["output"]
        rows[method] = {"runs": runs, "seconds_min": best["seconds"],
                        "seconds_median": statistics.median(r["seconds"] for r in runs),
                        "cpu_s_min": min(r["cpu_s"] for r in runs),
                        "peak_rss_mb_max": max(r["peak_rss_mb"] for r in runs),
                        "mp_per_s": args.side**2 / 1e6 / best["seconds"]}
    if "ours" in rows:
        for method, row in rows.items():
            if method != "ours":
                row["ours_over_peer_time"] = rows["ours"]["seconds_min"] / row["seconds_min"]
                row["ours_over_peer_rss"] = rows["ours"]["peak_rss_mb_max"] / row["peak_rss_mb_max"]
                if args.compare:
                    row["vs_ours"] = compare(outputs["ours"], outputs[method], args.side)
    if args.png:
        write_png(args.png, outputs, args.side)
    print(f"{args.side} px ({args.side**2 / 1e6:.0f} MP), {args.threads} cores, tta {args.tta}")
    for method, row in rows.items():
        line = (f"{method:>11}: {row['seconds_min']:7.1f} s  {row['mp_per_s']:6.2f} MP/s  CPU {row['cpu_s_min']:7.1f} s"
                f"  peak RSS {row['peak_rss_mb_max']:7.0f} MB")
        if "ours_over_peer_time" in row:
            line += f"  ours/peer time {row['ours_over_peer_time']:.2f} RSS {row['ours_over_peer_rss']:.2f}"
        if "vs_ours" in row:
            v = row["vs_ours"]
            line += (f"\n{'':13}vs ours |dp| max {v['max_abs']} mean {v['mean_abs']} >0.1 {v['frac_over_0.1']} "
                     f"labels differ {v['labels_differ']}")
        print(line)
    if args.json:
        args.json.write_text(json.dumps({
            "command": shlex.join(["benchmarks/bench_peers.py", *sys.argv[1:]]), "side": args.side,
            "mp": args.side**2 / 1e6, "threads": args.threads, "tta": args.tta, "coarse_loss": args.coarse_loss,
            "cores": os.cpu_count(),
            "load_average": os.getloadavg(), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
