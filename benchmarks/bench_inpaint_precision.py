"""The inpaint stage with its network in fp32 and under bf16 autocast, timed in turn on one scan.

    python benchmarks/bench_inpaint_precision.py                 # a 6000-px square scan (36 MP), 2 rounds
    python benchmarks/bench_inpaint_precision.py --side 10000 --rounds 2 --json out.json

One generated painting-like scan with synthetic damage (bench_restore.make_scan) is ingested once; the inpaint stage
then fills the generator's label mask again and again (`force`, each run in a fresh process with the C heap settings
of the `retouch` command, bench_restore.run_stage), alternating the precision, so that a slow spell of the machine
falls on both. Printed: every run's wall time and peak memory, the fastest of each precision and their ratio, and
seconds per filled megapixel. The last run of each precision keeps its restored image, and the two are compared:
pixels that differ and the largest difference, in levels of the scan's dtype.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import zarr
from bench_restore import labels_path, make_scan, run_stage

PRECISIONS = ("fp32", "bf16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=6000)
    parser.add_argument("--damage", type=float, default=0.03)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scan, store = Path(tmp) / "scan.tif", Path(tmp) / "scan.zarr"
        damaged = make_scan(scan, args.side, damage=args.damage, seed=0)
        run_stage("ingest", store, str(scan))
        rows, kept = [], {}
        for _ in range(args.rounds):
            for precision in PRECISIONS:
                r = run_stage("inpaint", store, str(labels_path(scan)), json.dumps({"precision": precision}))
                rows.append({"precision": precision, "s": r["seconds"], "peak_rss_mb": r["peak_rss_mb"],
                             "filled_px": r["hole_pixels"], "ran_as": r["inpaint_precision"]})
                print(f"{precision}: {r['seconds']:.1f} s, peak {r['peak_rss_mb']:.0f} MB", flush=True)
                kept[precision] = Path(tmp) / f"restored-{precision}"
                shutil.rmtree(kept[precision], ignore_errors=True)
                shutil.copytree(store / "restored" / "0", kept[precision])
        a, b = (np.asarray(zarr.open_array(str(kept[p]), mode="r")[:]).astype(np.int32) for p in PRECISIONS)
    differ = (a != b).any(axis=0)
    best = {p: min(r["s"] for r in rows if r["precision"] == p) for p in PRECISIONS}
    filled_mp = rows[0]["filled_px"] / 1e6
    report = {"command": "python benchmarks/bench_inpaint_precision.py " + " ".join(
                  f"--{k} {v}" for k, v in vars(args).items() if k != "json"),
              "side": args.side, "damaged_fraction": damaged, "filled_mp": filled_mp, "rows": rows,
              "fastest_s": best, "bf16_over_fp32": best["bf16"] / best["fp32"],
              "s_per_filled_mp": {p: best[p] / filled_mp for p in PRECISIONS},
              "restored_pixels_differing": int(differ.sum()), "restored_max_level_difference": int(np.abs(a - b).max())}
    print(f"fastest: fp32 {best['fp32']:.1f} s, bf16 {best['bf16']:.1f} s, ratio {report['bf16_over_fp32']:.2f}; "
          f"{filled_mp:.2f} MP filled: {report['s_per_filled_mp']['fp32']:.1f} vs "
          f"{report['s_per_filled_mp']['bf16']:.1f} s per filled MP; restored images differ in "
          f"{report['restored_pixels_differing']} px, by at most {report['restored_max_level_difference']} levels")
    if args.json:
        from machine import machine

        args.json.write_text(json.dumps({**report, "machine": machine()}, indent=1) + "\n")


if __name__ == "__main__":
    main()
