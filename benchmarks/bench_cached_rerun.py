"""Wall time of a cached re-run: `retouch run` of the bundled sample when every stage is already done.

    python benchmarks/bench_cached_rerun.py --out /tmp/bench-out            # this checkout, 3 timed re-runs
    python benchmarks/bench_cached_rerun.py --out /tmp/bench-out --code ../main --label before

The first call restores the sample into `--out` if it is not there yet (not timed); each timed re-run is a
fresh `retouch run --out DIR` process, as a user types it, so the figure includes Python's imports, Prefect's
temporary server (or the one `PREFECT_API_URL` names) and the skip checks of the four stages. `--code` runs
another checkout of Retouch with the same interpreter (to compare before/after on the same machine and store).
Figures are printed and written to benchmarks/results/<date>-bench_cached_rerun-<label>-cpu<N>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(code: Path, out: Path, home: Path) -> tuple[float, str]:
    """One `retouch run --out OUT` in a fresh process; (seconds, its stdout)."""
    env = {**os.environ, "PYTHONPATH": str(code), "PREFECT_HOME": str(home)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", "from flows.cli import app; app()", "run", "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=code, check=False)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"error: retouch run failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder of the sample's restoration")
    parser.add_argument("--code", type=Path, default=REPO, help="the Retouch checkout to time")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--label", default="after")
    args = parser.parse_args()
    home = args.out / "prefect-home"
    first, _ = run(args.code.resolve(), args.out, home)  # restores the sample, or is already a cached re-run
    times = []
    for _ in range(args.repeat):
        seconds, stdout = run(args.code.resolve(), args.out, home)
        if stdout.count("unchanged, skipped") != 4:
            sys.exit(f"error: a re-run did not skip all four stages:\n{stdout}")
        times.append(seconds)
    result = {"label": args.label, "code": str(args.code.resolve()), "cores": os.cpu_count(),
              "load_1min": os.getloadavg()[0], "first_seconds": round(first, 2),
              "rerun_seconds": [round(t, 2) for t in times], "median_seconds": round(statistics.median(times), 2),
              "prefect_api_url": os.environ.get("PREFECT_API_URL")}
    print(json.dumps(result, indent=2))
    name = f"{dt.date.today()}-bench_cached_rerun-{args.label}-cpu{os.cpu_count()}.json"
    (REPO / "benchmarks" / "results" / name).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
