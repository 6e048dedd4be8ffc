"""Record an evaluation's JSON output, with the command that produced it, beside the shipped weights.

    python -m lab.eval_record detector-resunet18 synthetic_heldout_fp32 runs/eval/synth_fp32.json \\
        "retouch evaluate detect --images ... --json runs/eval/synth_fp32.json"

writes `models/weights/<weights>.eval.json` -> runs -> <name> = {command, result, date}. The result is the
evaluation's own JSON, copied unchanged except for the per-block counts of `retouch evaluate detect` (bulk
that the command regenerates); the weights' sha256 in it must match the shipped file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from models.weights import MANIFEST_PATH, get_entry


def record(weights: str, name: str, result_path: Path, command: str, manifest: Path = MANIFEST_PATH) -> Path:
    """Merge one run into `<weights>.eval.json`; refuses results made with other weights."""
    result = json.loads(result_path.read_text())
    result.pop("blocks", None)
    entry = get_entry(weights, manifest)
    used = result.get("weights", {}).get("sha256")
    if used is not None and used != entry.sha256:
        raise ValueError(f"{result_path}: made with weights {used[:12]}, but {weights} is now {entry.sha256[:12]}")
    out = manifest.parent / f"{weights}.eval.json"
    data = json.loads(out.read_text()) if out.exists() else {"weights": weights, "runs": {}}
    if data.get("sha256") != entry.sha256:  # new weights: the old runs no longer describe them
        data = {"weights": weights, "sha256": entry.sha256, "notes": data.get("notes", ""), "runs": {}}
    data["date"] = dt.date.today().isoformat()
    data["runs"][name] = {"command": command, "result": result, "date": dt.datetime.now().isoformat(timespec="seconds")}
    out.write_text(json.dumps(data, indent=1) + "\n")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights")
    parser.add_argument("name")
    parser.add_argument("result", type=Path)
    parser.add_argument("command")
    args = parser.parse_args(argv)
    print(record(args.weights, args.name, args.result, args.command))


if __name__ == "__main__":
    main()
