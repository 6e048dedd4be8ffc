"""`retouch verify` and `retouch lineage`: check a store's chunk digests, and say what produced a region.

Both only read the store. Imports stay inside the commands: `retouch --help` loads no zarr.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from flows.cli.common import clean_errors, console


def register(app: typer.Typer) -> None:
    """Add the verify and lineage commands to the `retouch` app."""
    app.command("verify")(clean_errors(verify_command))
    app.command("lineage")(clean_errors(lineage_command))


def verify_command(
    store: Annotated[str, typer.Argument(help="the store (folder or fsspec URL)")],
    workers: Annotated[int, typer.Option(help="reader threads (0: up to 8, one per core)")] = 0,
) -> None:
    """Recompute every chunk digest and compare with the sidecars and the provenance; exit 1 on any mismatch."""
    from pipeline.audit.verify import verify_store

    report = verify_store(store, workers)
    if report.ok:
        console.print(f"all {report.chunks} chunks of {report.arrays} arrays match their recorded digests")
        return
    for problem in report.problems:
        console.print(problem.line(), highlight=False)
    bad = sum(1 for p in report.problems if p.chunk is not None)
    console.print(f"{len(report.problems)} problems: {bad} of {report.chunks} chunks do not match "
                  f"({report.arrays} arrays)")
    raise typer.Exit(1)


def lineage_command(
    store: Annotated[str, typer.Argument(help="the store (folder or fsspec URL)")],
    region: Annotated[str, typer.Option(help="X,Y,W,H in level-0 pixels")],
    image: Annotated[str, typer.Option(help="restored, damage or scan")] = "restored",
    as_json: Annotated[bool, typer.Option("--json", help="the full answer as JSON")] = False,
) -> None:
    """Which scan chunks, mask chunks (detected or edited), weights, parameters and runs produced a region."""
    from pipeline.audit.lineage import lineage, parse_region, readable

    answer = lineage(store, parse_region(region), image)
    if as_json:
        print(json.dumps(answer, indent=2))
        return
    for line in readable(answer):
        console.print(line, highlight=False)
