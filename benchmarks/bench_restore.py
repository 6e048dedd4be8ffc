"""Per-stage throughput and peak RSS of the whole restore, on generated scans with synthetic damage.

    python benchmarks/bench_restore.py                          # 16, 100 and 400 MP (4000, 10000, 20000 px)
    python benchmarks/bench_restore.py --sides 4000 --tta 1     # detect in one pass (default: tile + mirror)
    python benchmarks/bench_restore.py --sides 4000 --efficiency  # detect with 1 vs 2 workers (1 thread each)
    python benchmarks/bench_restore.py --sides 4000 --inpaint-scaling  # inpaint time vs damaged area
    python benchmarks/bench_restore.py --device cuda            # on a GPU machine
    python benchmarks/bench_restore.py --weights detector-resunet18-paint  # another detector (one network)
    python benchmarks/bench_restore.py --sides 10000 --grain 0  # inpaint without its texture layer
    python benchmarks/bench_restore.py --sides 31623 --scans /data/scans --generate-only  # write a 1 GP scan once
    python benchmarks/bench_restore.py --sides 31623 --scans /data/scans  # then time its stages (reused)
    python benchmarks/bench_restore.py --sides 31623 --jobs 16 --device cuda  # draw the scan in 16 processes
    python benchmarks/bench_restore.py --sides 20000 --clustered  # the damaged blocks in one central patch

Scans are painting-like RGB 8-bit tiled BigTIFFs written tile by tile; about `--damage` of the area carries
synthetic craquelure and paint loss (lab.synthesis.synthetic_damage on randomly chosen 1024-px blocks, or with
`--clustered` as many blocks in one patch at the centre), and the generator's labels are written beside the
scan. Each stage runs in its own subprocess, with the default engine (a local Dask cluster of single-threaded
workers, one per core) and the C heap set up as the `retouch` command sets it; its peak RSS is the largest
sum of RSS over that process and all its children (the workers), sampled every 0.1 s. The inpaint stage
fills the generator's label mask (`--mask`), so its cost follows the real damage, not detector errors.
Figures are printed as a table. The detect stage beside MONAI and TIAToolbox: benchmarks/bench_peers.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import tifffile

from pipeline.io.ordered import ordered_map
from pipeline.stages.detect import DEFAULT_TTA, DEFAULT_WEIGHTS, variant_fields

BLOCK = 1024
REPO = Path(__file__).resolve().parents[1]


def painting_block(rng: np.random.Generator, y: int, x: int, side: int) -> np.ndarray:
    yy, xx = np.mgrid[0:BLOCK, 0:BLOCK].astype(np.float32) / BLOCK
    phase = (y * 7 + x * 3) / side
    base = 0.45 + 0.25 * np.sin(6.0 * (yy + phase)) * np.cos(4.0 * (xx - phase))
    rgb = np.stack([base, base * 0.8 + 0.1, base * 0.6 + 0.05], axis=-1)
    rgb += rng.normal(0.0, 0.015, rgb.shape).astype(np.float32)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def make_band(rng: np.random.Generator, by: int, side: int, damage: float,
              chosen: set[int] | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Row `by` of 1024-px blocks: its RGB band, its labels and its damaged pixel count (draws from `rng`)."""
    from lab.synthesis.synthetic_damage import synthesize_damage

    n = -(-side // BLOCK)
    row, row_labels, damaged = [], [], 0
    for bx in range(n):
        block = painting_block(rng, by * BLOCK, bx * BLOCK, side)
        labels = np.zeros((BLOCK, BLOCK), np.uint8)
        hit = (by * n + bx) in chosen if chosen is not None else rng.random() < damage * 6
        if hit:
            block, labels = synthesize_damage(block, seed=int(rng.integers(1 << 30)))
            damaged += int((labels > 0).sum())
        row.append(block)
        row_labels.append(labels)
    return np.concatenate(row, axis=1)[:, :side], np.concatenate(row_labels, axis=1)[:, :side], damaged


def _seeded_band(by: int, seed: int, side: int, damage: float, chosen: set[int] | None):
    return make_band(np.random.default_rng([seed, by]), by, side, damage, chosen)


def make_scan(path: Path, side: int, damage: float = 0.0, seed: int = 0, blocks: int | None = None,
              clustered: bool = False, jobs: int = 1) -> float:
    """Write the scan and `<stem>-labels.tif`; returns the damaged fraction of its area.

    About `damage * 6` of the 1024-px blocks get synthetic damage (a damaged block carries ~1/6 of its area
    as damage), scattered over the scan, or exactly `blocks` of them when given. `clustered`: that share of
    the blocks, rounded, in one square-ish patch at the scan's centre instead. `jobs` > 1 draws the rows of
    blocks in that many processes, each row from its own generator seeded by (`seed`, row): a scan of the
    same kind and damage, not the same bytes as `jobs` 1 (one generator drawn row after row).
    """
    rng = np.random.default_rng(seed)
    n = -(-side // BLOCK)
    chosen = set(rng.choice(n * n, size=min(blocks, n * n), replace=False).tolist()) if blocks is not None else None
    if clustered:
        chosen = centre_blocks(n, round(damage * 6 * n * n))
    damaged_px = [0]
    label_bands: list[np.ndarray] = []

    def drawn():
        if jobs <= 1:
            for by in range(n):
                yield make_band(rng, by, side, damage, chosen)
            return
        band = partial(_seeded_band, seed=seed, side=side, damage=damage, chosen=chosen)
        # a few rows ahead of the writer, not the whole scan
        yield from ordered_map(band, range(n), workers=jobs, ahead=jobs + 1, pool=ProcessPoolExecutor)

    def bands():
        for band, labels, damaged in drawn():
            damaged_px[0] += damaged
            label_bands.append(labels)
            yield band

    def tiles(source, channels: tuple[int, ...]):
        for band in source:
            for ty in range(0, BLOCK, 512):
                for tx in range(0, side, 512):
                    tile = np.zeros((512, 512, *channels), band.dtype)
                    part = band[ty : ty + 512, tx : tx + 512]
                    tile[: part.shape[0], : part.shape[1]] = part
                    yield tile

    tifffile.imwrite(path, tiles(bands(), (3,)), shape=(n * BLOCK, side, 3), dtype=np.uint8, tile=(512, 512),
                     bigtiff=True, photometric="rgb")
    # the labels, cropped to the scan's rows (the last band may run past them)
    labels = np.concatenate(label_bands, axis=0)[: n * BLOCK]
    tifffile.imwrite(labels_path(path), labels, tile=(512, 512), bigtiff=True, photometric="minisblack",
                     compression="zlib")
    return damaged_px[0] / (n * BLOCK * side)


def centre_blocks(n: int, count: int) -> set[int]:
    """Indices (row * n + column) of `count` blocks of an n x n grid, row by row in a square at its centre."""
    k = min(n, max(1, int(np.ceil(np.sqrt(count)))))
    top = left = (n - k) // 2
    square = [(top + i // k) * n + left + i % k for i in range(k * k)]
    return set(square[:count])


def kept_scan(folder: Path, side: int, damage: float, clustered: bool = False, jobs: int = 1) -> tuple[Path, float]:
    """The scan of `side` px in `folder` and its damaged fraction, generated first unless a complete one is
    there (`<stem>.json`, written last, records the side, the damage asked for and the fraction drawn)."""
    folder.mkdir(parents=True, exist_ok=True)
    scan = folder / f"scan-{side}-damage{damage:g}{'-clustered' if clustered else ''}.tif"
    record = scan.with_suffix(".json")
    if record.exists():
        return scan, json.loads(record.read_text())["damaged_fraction"]
    damaged = make_scan(scan, side, damage, clustered=clustered, jobs=jobs)
    record.write_text(json.dumps({"side": side, "damage": damage, "clustered": clustered,
                                  "damaged_fraction": damaged}) + "\n")
    return scan, damaged


def labels_path(scan: Path) -> Path:
    return scan.with_name(f"{scan.stem}-labels.tif")


RSS_SAMPLER = """
import threading, time, psutil
peak = [0]
def _sample():
    me = psutil.Process()
    while True:
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        peak[0] = max(peak[0], total)
        time.sleep(0.1)
threading.Thread(target=_sample, daemon=True).start()
"""

STAGE = RSS_SAMPLER + """
import json, sys
from pipeline.engine.runner import EngineConfig, close_local_clusters, local_cluster
stage, store, workers, threads, device, precision, tta = sys.argv[1:8]
engine = EngineConfig(workers=int(workers), torch_threads=int(threads), progress=False)
if engine.scheduler != "threads":
    local_cluster(engine)  # started before the clock: a `retouch run` starts it once for all its stages
t = time.perf_counter()
if stage == "ingest":
    from pipeline.stages.ingest import ingest
    ingest(sys.argv[8], store, engine=engine)
elif stage == "detect":
    from pipeline.stages.detect import DetectConfig, detect, variant_fields
    fields = {"tta": int(tta), **variant_fields(sys.argv[8])}  # NAME+ttaN overrides --tta
    r = detect(store, DetectConfig(**fields, device=device, precision=precision), engine, force=True)
elif stage == "inpaint":
    from pathlib import Path
    from pipeline.stages.inpaint_stage import InpaintStageConfig, inpaint_store
    settings = json.loads(sys.argv[9]) if len(sys.argv) > 9 else {}  # InpaintStageConfig fields, else its defaults
    r = inpaint_store(store, InpaintStageConfig(device=device, **settings), engine, mask=Path(sys.argv[8]),
                      force=True)
elif stage == "export":
    from pipeline.stages.export import export
    export(store, sys.argv[8], force=True)
seconds = time.perf_counter() - t
extra = {}
if stage == "inpaint":
    extra = {"hole_pixels": r.summary["hole_pixels"], "chunks_inpainted": r.summary["chunks_inpainted"],
             "chunks_total": r.summary["chunks_total"], "inpaint_precision": r.summary["precision"]}
if stage == "detect":
    extra = {"area_percent": r.summary["area_percent"], "precision": r.summary.get("precision"),
             "chunks_run": r.chunks_run,
             "tta": r.summary["tta"], "coarse_loss": r.summary.get("coarse_loss", False),
             "min_crack": r.summary.get("min_crack", 0)}
time.sleep(0.2)
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak[0] / 2**20, **extra}))
close_local_clusters()
"""


def run_stage(stage: str, store: Path, *extra: str, workers: int = 0, threads: int = 0, device: str = "cpu",
              precision: str = "auto", tta: int = DEFAULT_TTA) -> dict:
    """One stage in a subprocess (`tta`: the detect stage's views)."""
    args = [sys.executable, "-c", STAGE, stage, str(store), str(workers), str(threads), device, precision,
            str(tta), *extra]
    result = json_subprocess(stage, args)
    print(f"  {stage} {store.name}: {result['seconds']:.1f} s, peak RSS {result['peak_rss_mb']:.0f} MB",
          file=sys.stderr, flush=True)
    return result


def json_subprocess(name: str, args: list[str], env: dict[str, str] | None = None, **options) -> dict:
    """Run `args` from the repository root; the JSON object on its last stdout line (its stderr tail if it fails).

    Without `env` it runs in this environment plus the C heap settings that the `retouch` command makes first
    thing (`pipeline.engine.memory.ENVIRONMENT`), so that a stage runs here as it runs there."""
    from pipeline.engine.memory import ENVIRONMENT

    env = {**os.environ, **ENVIRONMENT} if env is None else env
    out = subprocess.run(args, capture_output=True, text=True, cwd=REPO, env=env, **options)
    if out.returncode:
        raise RuntimeError(f"{name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sides", type=int, nargs="+", default=[4000, 10000, 20000])
    parser.add_argument("--damage", type=float, default=0.03, help="target damaged fraction of the area")
    parser.add_argument("--clustered", action="store_true",
                        help="the damaged blocks in one patch at the centre instead of scattered")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--tta", type=int, default=DEFAULT_TTA, choices=[1, 2, 4, 8],
                        help=f"detect's test-time augmentation views (default {DEFAULT_TTA}, the stage's)")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, help="detector weights: NAME[+coarse][+minN][+borderN]"
                        "[+scaleS][+ttaN], a manifest name, with the detect stage's coarse paint-loss pass, without "
                        "crack fragments < N px, the border band, the scan resampled by S, N views (over --tta)")
    parser.add_argument("--grain", type=float, default=None, help="inpaint's texture layer (default: the stage's)")
    parser.add_argument("--inpaint-precision", default=None, choices=["auto", "fp32", "bf16"],
                        help="inpaint's network precision (default: the stage's)")
    parser.add_argument("--efficiency", action="store_true", help="detect with 1 and 2 workers on the first size")
    parser.add_argument("--inpaint-scaling", action="store_true",
                        help="inpaint time for 2/4/8 damaged blocks at the first size, and 4 at 2.5x the side")
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--scans", type=Path, default=None,
                        help="keep the generated scans here and reuse them on later runs (generation untimed)")
    parser.add_argument("--jobs", type=int, default=1, help="processes drawing a scan (rows of blocks in "
                        "parallel: a scan of the same kind, not the same bytes as 1)")
    parser.add_argument("--generate-only", action="store_true", help="with --scans: write the scans and stop")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows and notes here")
    args = parser.parse_args()
    try:
        variant_fields(args.weights)
    except ValueError as exc:
        parser.error(str(exc))
    if args.generate_only and not args.scans:
        parser.error("--generate-only needs --scans DIR (where the scans are kept)")
    from pipeline.stages.detect_infer import resolve_precision

    precision = resolve_precision(args.precision, args.device)
    scratch = Path(tempfile.mkdtemp(dir=args.dir, prefix="bench-restore-"))
    rows, notes = [], []
    settings = {k: v for k, v in (("grain", args.grain), ("precision", args.inpaint_precision)) if v is not None}
    inpaint_extra = [json.dumps(settings)] if settings else []
    stage_opts = {"workers": args.workers, "device": args.device, "precision": precision, "tta": args.tta}
    try:
        for side in args.sides:
            scan, damaged = (kept_scan(args.scans, side, args.damage, args.clustered, args.jobs) if args.scans
                             else (None, 0.0))
            if args.generate_only:
                continue
            if scan is None:
                scan = scratch / f"scan-{side}.tif"
                damaged = make_scan(scan, side, args.damage, clustered=args.clustered, jobs=args.jobs)
            store = scratch / f"scan-{side}.zarr"
            mp = side * side / 1e6
            stages = (("ingest", [str(scan)]), ("detect", [args.weights]),
                      ("inpaint", [str(labels_path(scan)), *inpaint_extra]),
                      ("export", [str(scratch / f"export-{side}")]))
            for stage, extra in stages:
                r = run_stage(stage, store, *extra, **stage_opts)
                rows.append({"stage": stage, "mp": mp, "damage %": 100 * damaged,
                             "damage_layout": "clustered" if args.clustered else "scattered", **r})
            if args.efficiency and side == args.sides[0]:
                one = run_stage("detect", store, args.weights, workers=1, threads=1, precision=precision, tta=args.tta)
                two = run_stage("detect", store, args.weights, workers=2, threads=1, precision=precision, tta=args.tta)
                notes.append(f"detect parallel efficiency at {mp:.0f} MP ({precision}): 1 worker "
                             f"{one['seconds']:.1f} s, 2 workers {two['seconds']:.1f} s -> speed-up "
                             f"{one['seconds'] / two['seconds']:.2f}, efficiency "
                             f"{one['seconds'] / (2 * two['seconds']):.2f}")
            if args.inpaint_scaling and side == args.sides[0]:
                notes.extend(inpaint_scaling(scratch, side, stage_opts))
            if not args.scans:
                scan.unlink()
                labels_path(scan).unlink()
            shutil.rmtree(store)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.generate_only:
        return
    print(f"restore stages on {os.cpu_count()} cores, device {args.device}, detect precision {precision}")
    print(f"{'stage':>8} {'MP':>6} {'damage %':>9} {'s':>8} {'MP/s':>7} {'peak RSS MB':>12}  notes")
    for r in rows:
        note = ""
        if r["stage"] == "inpaint":
            note = f"{r['chunks_inpainted']}/{r['chunks_total']} chunks inpainted, {r['hole_pixels']} px filled"
        if r["stage"] == "detect":
            note = f"tta {r['tta']}, found " + ", ".join(f"{k} {v:.2f}%" for k, v in r["area_percent"].items())
        print(f"{r['stage']:>8} {r['mp']:>6.0f} {r['damage %']:>9.2f} {r['seconds']:>8.1f} "
              f"{r['mp'] / r['seconds']:>7.2f} {r['peak_rss_mb']:>12.0f}  {note}")
    for note in notes:
        print(note)
    if args.json:
        command = " ".join(["python", "benchmarks/bench_restore.py", *sys.argv[1:]])
        from machine import machine

        args.json.write_text(json.dumps({"command": command, "weights": args.weights, "cores": os.cpu_count(),
                                         "machine": machine(), "device": args.device, "precision": precision,
                                         "rows": rows, "notes": notes}, indent=1) + "\n")


def inpaint_scaling(scratch: Path, side: int, stage_opts: dict) -> list[str]:
    """Inpaint seconds for 2, 4 and 8 damaged 1024-px blocks at `side`, and 4 blocks at 2.5 x `side`."""
    lines = []
    for n_side, blocks in ((side, 2), (side, 4), (side, 8), (int(side * 2.5), 4)):
        scan = scratch / f"scaling-{n_side}-{blocks}.tif"
        make_scan(scan, n_side, seed=blocks, blocks=blocks)
        store = scratch / f"scaling-{n_side}-{blocks}.zarr"
        run_stage("ingest", store, str(scan), **stage_opts)
        r = run_stage("inpaint", store, str(labels_path(scan)), **stage_opts)
        lines.append(f"inpaint scaling: {n_side * n_side / 1e6:.0f} MP, {blocks} damaged blocks, "
                     f"{r['chunks_inpainted']}/{r['chunks_total']} chunks inpainted, {r['hole_pixels']} px filled: "
                     f"{r['seconds']:.1f} s ({1e6 * r['seconds'] / max(1, r['hole_pixels']):.1f} s per M filled px)")
        scan.unlink()
        labels_path(scan).unlink()
        shutil.rmtree(store)
    return lines


if __name__ == "__main__":
    main()
