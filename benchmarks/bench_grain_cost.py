"""What the texture layer (grain) adds to inpaint: the stage timed with `--grain 0` and `--grain 1` in turn.

    python benchmarks/bench_grain_cost.py                   # a 6000-px square scan (36 MP), 3 rounds
    python benchmarks/bench_grain_cost.py --side 10000 --rounds 2 --json out.json

One generated painting-like scan with synthetic damage (bench_restore.make_scan) is ingested once; inpaint then
fills the generator's label mask again and again (`force`), alternating the grain off and on, so that a slow
spell of the machine falls on both. Printed: every run's wall time, the fastest of each setting, their ratio,
and seconds per filled megapixel.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench_restore import labels_path, make_scan

from pipeline.engine.runner import EngineConfig
from pipeline.stages.ingest import IngestConfig, ingest
from pipeline.stages.inpaint_stage import InpaintStageConfig, inpaint_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=6000)
    parser.add_argument("--damage", type=float, default=0.03)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    engine = EngineConfig(progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        scan, store = Path(tmp) / "scan.tif", str(Path(tmp) / "scan.zarr")
        damaged = make_scan(scan, args.side, damage=args.damage, seed=0)
        ingest(scan, store, IngestConfig(), engine)
        rows = []
        for _ in range(args.rounds):
            for grain in (0.0, 1.0):
                start = time.perf_counter()
                result = inpaint_store(store, InpaintStageConfig(grain=grain), engine, mask=labels_path(scan),
                                       force=True)
                rows.append({"grain": grain, "s": time.perf_counter() - start,
                             "filled_px": result.summary["hole_pixels"]})
                print(f"grain {grain:g}: {rows[-1]['s']:.1f} s", flush=True)
    best = {g: min(r["s"] for r in rows if r["grain"] == g) for g in (0.0, 1.0)}
    filled_mp = rows[0]["filled_px"] / 1e6
    report = {"command": "python benchmarks/bench_grain_cost.py " + " ".join(
                  f"--{k} {v}" for k, v in vars(args).items() if k != "json"),
              "side": args.side, "damaged_fraction": damaged, "filled_mp": filled_mp, "rows": rows,
              "fastest_s": {"grain0": best[0.0], "grain1": best[1.0]}, "ratio": best[1.0] / best[0.0],
              "s_per_filled_mp": {"grain0": best[0.0] / filled_mp, "grain1": best[1.0] / filled_mp}}
    print(f"fastest: grain 0 {best[0.0]:.1f} s, grain 1 {best[1.0]:.1f} s, ratio {report['ratio']:.2f}; "
          f"{filled_mp:.2f} MP filled: {report['s_per_filled_mp']['grain0']:.1f} vs "
          f"{report['s_per_filled_mp']['grain1']:.1f} s per filled MP")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
