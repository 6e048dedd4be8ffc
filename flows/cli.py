"""The `retouch` command: a thin layer over the flows. Errors come out as one line naming the file."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from flows.cli_detector import DEFAULT_TTA, TtaOpt, check_tta
from flows.settings import configure_prefect

F = TypeVar("F", bound=Callable[..., Any])
console = Console(soft_wrap=True)
err_console = Console(stderr=True)

app = typer.Typer(help="Retouch: find and fill damage in digitized paintings, with provenance.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
catalog_app = typer.Typer(help="The catalog of scans.", no_args_is_help=True)
train_app = typer.Typer(help="Train the models (in the background: they checkpoint and resume).",
                        no_args_is_help=True)
evaluate_app = typer.Typer(help="Measure the shipped models against classical methods.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
app.add_typer(train_app, name="train")
app.add_typer(evaluate_app, name="evaluate")


@app.callback()
def main() -> None:
    configure_prefect()


def clean_errors(func: F) -> F:
    """Turn the errors users cause (bad or missing files, bad catalog, weights, settings or parameters) into one
    line and exit code 2; every command uses it (the model and operations commands too)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pydantic import ValidationError

        from data_catalog.schema import CatalogError
        from models.weights import WeightsError
        from pipeline.engine import close_local_clusters
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


@catalog_app.command("validate")
@clean_errors
def catalog_validate(
    file: Annotated[Path | None, typer.Argument(help="catalog YAML (default: the bundled catalog)")] = None,
) -> None:
    """Check a catalog file; a bad entry is named with its field."""
    from data_catalog.schema import default_catalog_path, load_catalog

    entries = load_catalog(file)
    console.print(f"{file or default_catalog_path()}: {len(entries)} entries, all valid")


@catalog_app.command("list")
@clean_errors
def catalog_list(
    file: Annotated[Path | None, typer.Argument(help="catalog YAML (default: the bundled catalog)")] = None,
) -> None:
    """List the scans in a catalog."""
    from rich.table import Column, Table

    from data_catalog.schema import default_catalog_path, load_catalog

    path = file or default_catalog_path()
    table = Table("title", "creator", "date", "institution", "source")
    table.columns.insert(0, Column("id", no_wrap=True))
    for entry in load_catalog(path):
        table.add_row(entry.id, entry.title, entry.creator, entry.date, entry.institution,
                      entry.resolved_source(path))
    console.print(table)


EngineOpt = Annotated[int, typer.Option("--workers", help="parallel chunk tasks (0 = one per core)")]
AddressOpt = Annotated[str | None, typer.Option("--dask-address", envvar="RETOUCH_DASK_ADDRESS",
                                                help="run the chunk tasks on this Dask scheduler")]
ForceOpt = Annotated[bool, typer.Option("--force", help="recompute even when inputs, parameters and weights "
                                                        "are unchanged")]
DeviceOpt = Annotated[str, typer.Option(help="'cpu' or 'cuda'")]


def _engine(workers: int, dask_address: str | None) -> Any:
    from flows.params import EngineParams

    return EngineParams(workers=workers, dask_address=dask_address)


def _state_line(result: dict[str, Any]) -> str:
    return "unchanged, skipped" if result["skipped"] else f"{result['seconds']:.1f} s"


@app.command("ingest")
@clean_errors
def ingest_command(
    source: Annotated[Path, typer.Argument(help="scan file: TIFF/BigTIFF/OME-TIFF/pyramidal TIFF, PNG, JPEG")],
    store: Annotated[str, typer.Argument(help="output store: a local folder or an fsspec URL")],
    chunk: Annotated[int, typer.Option(help="chunk side in pixels")] = 1024,
    pixel_size_um: Annotated[float | None, typer.Option(help="physical pixel size (micrometres)")] = None,
    workers: EngineOpt = 0,
    dask_address: AddressOpt = None,
    force: ForceOpt = False,
) -> None:
    """Stream a scan into a chunked OME-Zarr pyramid (never the whole image in memory)."""
    from pipeline.sources import open_source

    open_source(source).close()  # bad input fails here, in one line, before any run starts
    from flows.ingest import ingest_flow
    from flows.params import IngestParams

    result = ingest_flow(str(source), store, IngestParams(chunk=chunk, pixel_size_um=pixel_size_um),
                         _engine(workers, dask_address), force)
    _print_ingest(result)


def _print_ingest(result: dict[str, Any]) -> None:
    c, h, w = result["shape"]
    console.print(f"scan:       {result['store']}/scan  ({w}x{h}, {c} channel(s), {result['dtype']}, "
                  f"{result['levels']} levels; {_state_line(result)})")


@app.command("detect")
@clean_errors
def detect_command(
    store: Annotated[str, typer.Argument(help="an ingested store")],
    weights: Annotated[str, typer.Option(help="detector weights name (manifest)")] = "detector-resunet18",
    threshold: Annotated[float, typer.Option(help="probability threshold for the label mask")] = 0.5,
    tile: Annotated[int, typer.Option(help="largest model tile side (multiple of 32)")] = 1216,
    precision: Annotated[str, typer.Option(help="auto (bf16 where native), fp32 or bf16")] = "auto",
    batch: Annotated[int, typer.Option(help="model tiles per forward pass (GPU)")] = 1,
    tta: TtaOpt = DEFAULT_TTA,
    device: DeviceOpt = "cpu",
    workers: EngineOpt = 0,
    dask_address: AddressOpt = None,
    force: ForceOpt = False,
) -> None:
    """Find craquelure and paint loss: writes `damage/` (probabilities + label mask pyramids)."""
    from flows.detect import detect_flow
    from flows.params import DetectParams

    params = DetectParams(weights=weights, threshold=threshold, tile=tile, precision=precision, batch=batch,
                          tta=check_tta(tta), device=device)
    from pipeline.detect import check_device

    check_device(device)  # before Prefect starts: one line, no flow-run traceback
    _print_detect(detect_flow(store, params, _engine(workers, dask_address), force))


def _print_detect(result: dict[str, Any]) -> None:
    area = ", ".join(f"{k} {v:.2f} %" for k, v in result["summary"]["area_percent"].items())
    console.print(f"damage:     {result['store']}/damage  ({area}; {_state_line(result)})")


@app.command("inpaint")
@clean_errors
def inpaint_command(
    store: Annotated[str, typer.Argument(help="a store with scan/ (and damage/ unless --mask)")],
    mask: Annotated[Path | None, typer.Option(help="edited mask (PNG/TIFF/Zarr, the scan's size; "
                                                   "nonzero = fill) instead of the detected damage")] = None,
    weights: Annotated[str, typer.Option(help="inpainter weights name (manifest)")] = "inpainter-pconv",
    dilate: Annotated[int, typer.Option(help="grow the mask by this many px")] = 2,
    device: DeviceOpt = "cpu",
    workers: EngineOpt = 0,
    dask_address: AddressOpt = None,
    force: ForceOpt = False,
) -> None:
    """Fill the damage: writes `restored/`, equal to the scan bit for bit outside the mask."""
    from flows.inpaint import inpaint_flow
    from flows.params import InpaintParams

    params = InpaintParams(weights=weights, mask=str(mask) if mask else None, dilate=dilate, device=device)
    from pipeline.detect import check_device

    check_device(device)
    _print_inpaint(inpaint_flow(store, params, _engine(workers, dask_address), force))


def _print_inpaint(result: dict[str, Any]) -> None:
    s = result["summary"]
    console.print(f"restored:   {result['store']}/restored  ({s['chunks_inpainted']} of {s['chunks_total']} chunks "
                  f"inpainted, {s['hole_pixels']} px filled; {_state_line(result)})")


@app.command("export")
@clean_errors
def export_command(
    store: Annotated[str, typer.Argument(help="a store with scan/, damage/ and restored/")],
    outdir: Annotated[Path, typer.Argument(help="folder for the TIFF, previews, page and summary")],
    preview_max_side: Annotated[int, typer.Option(help="longest side of the PNG previews")] = 2048,
    force: ForceOpt = False,
) -> None:
    """Write the restored pyramidal TIFF, PNG previews, a before/after page and the damage summary."""
    from flows.export import export_flow
    from flows.params import ExportParams

    params = ExportParams(out_dir=str(outdir), preview_max_side=preview_max_side)
    _print_export(export_flow(store, params, force))


def _print_export(result: dict[str, Any]) -> None:
    out = Path(result["out_dir"])
    console.print(f"export:     {out}  ({_state_line(result)})")
    for name in result["digests"]:
        console.print(f"            {out / name}")
    console.print(f"summary:    {out / 'summary.json'}")


@app.command("run")
@clean_errors
def run_command(
    source: Annotated[Path | None, typer.Argument(help="scan file (default: the bundled sample)")] = None,
    catalog: Annotated[Path | None, typer.Option(help="catalog YAML to take --id from")] = None,
    id: Annotated[str | None, typer.Option("--id", help="catalog entry id")] = None,  # noqa: A002
    out: Annotated[Path | None, typer.Option(help="output folder (default: ./retouch-out)")] = None,
    tta: TtaOpt = DEFAULT_TTA,
    workers: EngineOpt = 0,
    dask_address: AddressOpt = None,
    force: ForceOpt = False,
) -> None:
    """Restore a scan end to end (no argument: the bundled sample) and print where each output is."""
    from data_catalog.schema import find_entry
    from pipeline.sources import open_source

    check_tta(tta)
    if source is not None and (catalog or id):
        raise typer.BadParameter("give either SOURCE or --catalog/--id, not both")
    title, pixel_size_um = None, None
    if source is None:
        entry, catalog_path = find_entry(id or DEFAULT_SAMPLE_ID, catalog)
        source_str, name, title = entry.resolved_source(catalog_path), entry.id, f"{entry.creator}, {entry.title}"
        pixel_size_um = entry.pixel_size_um
    else:
        source_str, name = str(source), source.stem
    open_source(source_str).close()
    out_dir = out or default_out_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    store = str(out_dir / f"{name}.zarr")
    console.print(f"[bold]Restoring[/] {source_str}")
    from flows.params import DetectParams, ExportParams, IngestParams
    from flows.restore import restore_flow

    results = restore_flow(source_str, store, ingest=IngestParams(pixel_size_um=pixel_size_um),
                           detect=DetectParams(tta=tta),
                           export=ExportParams(out_dir=str(out_dir / f"{name}-export")),
                           engine=_engine(workers, dask_address), force=force, title=title)
    _print_ingest(results["ingest"])
    _print_detect(results["detect"])
    _print_inpaint(results["inpaint"])
    _print_export(results["export"])
    console.print(f"provenance: {store}/provenance/")


DEFAULT_SAMPLE_ID = "leyster-self-portrait-simulated-damage"


def _register_model_commands() -> None:
    from flows import cli_detector, cli_inpainter

    cli_detector.register(train_app, evaluate_app)
    cli_inpainter.register(train_app, evaluate_app)


_register_model_commands()


def _register_ops_commands() -> None:
    from flows import cli_ops

    cli_ops.register(app)


_register_ops_commands()
