"""What every `retouch` command module shares: the consoles, `clean_errors`, common options, result lines.

Only typer and rich at import time: `retouch --help` loads no Prefect, torch or zarr.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])
console = Console(soft_wrap=True)
err_console = Console(stderr=True)


def clean_errors(func: F) -> F:
    """Turn the errors users cause (bad or missing files, bad catalog, weights, settings or parameters) into one
    line and exit code 2; every command uses it (the model and operations commands too)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pydantic import ValidationError

        from data_catalog.schema import CatalogError
        from models.weights import WeightsError
        from pipeline.engine.runner import close_local_clusters
        from pipeline.errors import ConfigError, InputError

        try:
            return func(*args, **kwargs)
        except (InputError, CatalogError, WeightsError, ConfigError, FileNotFoundError) as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            err_console.print(f"[bold red]error:[/] {problems}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        finally:
            close_local_clusters()  # the stages' Dask workers, if any were started

    return wrapper  # type: ignore[return-value]


def default_out_dir() -> Path:
    return Path.cwd() / "retouch-out"
EngineOpt = Annotated[int, typer.Option("--workers", help="parallel chunk tasks (0 = one per core)")]
AddressOpt = Annotated[str | None, typer.Option("--dask-address", envvar="RETOUCH_DASK_ADDRESS",
                                                help="run the chunk tasks on this Dask scheduler")]
ForceOpt = Annotated[bool, typer.Option("--force", help="recompute even when inputs, parameters and weights "
                                                        "are unchanged")]
DeviceOpt = Annotated[str, typer.Option(help="'cpu' or 'cuda'")]


def engine_params(workers: int, dask_address: str | None) -> Any:
    from flows.params import EngineParams

    return EngineParams(workers=workers, dask_address=dask_address)


def state_line(result: dict[str, Any]) -> str:
    return "unchanged, skipped" if result["skipped"] else f"{result['seconds']:.1f} s"


def print_ingest(result: dict[str, Any]) -> None:
    c, h, w = result["shape"]
    console.print(f"scan:       {result['store']}/scan  ({w}x{h}, {c} channel(s), {result['dtype']}, "
                  f"{result['levels']} levels; {state_line(result)})")


def print_notes(result: dict[str, Any]) -> None:
    """A stage's notes (e.g. outputs it made stale), one `warning:` line each on stderr."""
    for note in result.get("notes") or ():
        err_console.print(f"[bold yellow]warning:[/] {note}", highlight=False, soft_wrap=True)


def print_detect(result: dict[str, Any]) -> None:
    area = ", ".join(f"{k} {v:.2f} %" for k, v in result["summary"]["area_percent"].items())
    console.print(f"damage:     {result['store']}/damage  ({area}; {state_line(result)})")
    print_notes(result)


def print_inpaint(result: dict[str, Any]) -> None:
    s = result["summary"]
    read = s.get("mask_read")
    if read:
        console.print(f"mask:       {read['file']}  ({read['channels']} channel(s), {read['rule']}: "
                      f"{read['pixels_marked']} px marked, {read['percent_marked']:.2f} %)")
    filled = s.get("pixels_changed", s["hole_pixels"])
    console.print(f"restored:   {result['store']}/restored  ({s['chunks_inpainted']} of {s['chunks_total']} chunks "
                  f"inpainted, {s['hole_pixels']} px in the mask, {filled} px changed; "
                  f"{state_line(result)})")


def print_export(result: dict[str, Any]) -> None:
    out = Path(result["out_dir"])
    console.print(f"export:     {out}  ({state_line(result)})")
    for name in result["digests"]:
        console.print(f"            {out / name}")
    console.print(f"summary:    {out / 'summary.json'}")


TTA_VIEWS = (1, 2, 4, 8)  # pipeline.stages.detect_infer.VIEWS, spelled out so that `--help` does not import torch
DEFAULT_TTA = 2  # pipeline.stages.detect.DEFAULT_TTA, spelled out so that `--help` does not import zarr (a test checks)
TtaOpt = Annotated[int, typer.Option(help="test-time augmentation: run every tile in 1, 2, 4 or 8 flipped "
                                          "orientations and average (that many times slower; 2 = the tile "
                                          "and its mirror, 1 = one pass)")]


def check_tta(tta: int) -> int:
    """The --tta value, or a one-line usage error before anything starts."""
    if tta not in TTA_VIEWS:
        raise typer.BadParameter(f"--tta must be one of {', '.join(map(str, TTA_VIEWS))}, got {tta}")
    return tta
