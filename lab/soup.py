"""The uniform average of shipped detectors, shipped as a detector of its own: a network and its own fine-tune lie in
one basin, and the straight line between their weights is a family of detectors between them (WiSE-FT, Wortsman et
al. 2022, "Robust fine-tuning of zero-shot models").

    python -m lab.soup NAME SOURCE SOURCE [...] [--manifest M] [--no-validate]
"""

from __future__ import annotations

from pathlib import Path

from lab.average_weights import average_state_dicts
from lab.detector_validation import validation_metrics
from models.registry import create_model
from models.weights import MANIFEST_PATH, WeightsEntry, WeightsError, get_entry, save_weights, verify_weights


def ship_average(name: str, sources: list[str], manifest_path: Path = MANIFEST_PATH,
                 validate: bool = True) -> WeightsEntry:
    """Store the uniform average of the shipped detectors `sources` (manifest names; one architecture, e.g. a
    network and its own fine-tune) as manifest entry `name`, fp16, with its scores on the detector training's
    VALIDATION tiles (computed on the weights as they will load)."""
    if len(sources) < 2:
        raise ValueError(f"an average needs at least 2 detectors, got {len(sources)}")
    entries = [get_entry(s, manifest_path) for s in sources]
    for entry in entries[1:]:
        if (entry.architecture, entry.arch_args) != (entries[0].architecture, entries[0].arch_args):
            raise ValueError(f"{manifest_path}: {entry.name!r} is not the network of {entries[0].name!r}")
    paths = [verify_weights(e, manifest_path.parent) for e in entries]
    model = create_model(entries[0].architecture, **entries[0].arch_args)
    model.load_state_dict(average_state_dicts(paths))
    model = model.half()
    metrics = None
    if validate:
        check = create_model(entries[0].architecture, **entries[0].arch_args)  # fp32: loading casts the fp16
        check.load_state_dict(model.state_dict())
        metrics = {"validation": validation_metrics(check)}
    training = {"selected": f"uniform average of {len(sources)} shipped detectors",
                "sources": [{"name": e.name, "file": e.file, "sha256": e.sha256} for e in entries],
                "stored_dtype": "float16"}
    return save_weights(model, name=name, architecture=entries[0].architecture, arch_args=entries[0].arch_args,
                        tiling=entries[0].tiling, training=training, metrics=metrics, manifest_path=manifest_path)


def main(argv: list[str] | None = None) -> None:
    """`python -m lab.soup NAME SOURCE SOURCE [...] [--manifest M] [--no-validate]`: ship the uniform average of
    shipped detectors (a network and its fine-tunes) as manifest entry NAME."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("name")
    parser.add_argument("sources", nargs="+", help="manifest names of the detectors to average")
    parser.add_argument("--manifest", type=Path, default=MANIFEST_PATH)
    parser.add_argument("--no-validate", action="store_true", help="skip the VALIDATION-tile scores")
    args = parser.parse_args(argv)
    try:
        entry = ship_average(args.name, args.sources, args.manifest, not args.no_validate)
    except (ValueError, WeightsError) as exc:
        parser.exit(2, f"{exc}\n")
    print(json.dumps({"name": entry.name, "file": entry.file, "sha256": entry.sha256}, indent=2))


if __name__ == "__main__":
    main()
