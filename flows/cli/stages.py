"""`retouch ingest`, `detect`, `adapt`, `inpaint`, `export` and `run`: one stage, or all of them, over the flows."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from flows.cli.common import (
    ADAPT_ADD,
    ADAPT_ADD_LOSS,
    ADAPT_BACKGROUND,
    ADAPT_BASE,
    ADAPT_BESIDE,
    ADAPT_CLAMP_LOSS,
    ADAPT_GATE_LOSS,
    ADAPT_GATE_SIGMA,
    ADAPT_REACH,
    ADAPT_SMOOTH_LOSS,
    ADAPT_SUPPORT_LOSS,
    ADAPT_VETO_BACKGROUND,
    ADAPT_VETO_BACKGROUND_LOSS,
    ADAPT_VETO_JOINED,
    DEFAULT_AGREEMENT_AREA,
    DEFAULT_BORDER,
    DEFAULT_COARSE_LOSS,
    DEFAULT_LOSS_AGREEMENT,
    DEFAULT_MIN_CRACK,
    DEFAULT_PAINT_LIKE,
    DEFAULT_SCALE,
    DEFAULT_SECOND_VIEW,
    DEFAULT_STRAIGHT,
    DEFAULT_TTA,
    DEFAULT_WEIGHTS,
    AddressOpt,
    AgreementAreaOpt,
    BorderOpt,
    CoarseLossOpt,
    DeviceOpt,
    EngineOpt,
    ForceOpt,
    GrainOpt,
    GrainSigmaOpt,
    LossAgreementOpt,
    MinCrackOpt,
    PaintLikeOpt,
    ScaleOpt,
    SecondViewOpt,
    StraightOpt,
    TtaOpt,
    check_second_view,
    check_tta,
    clean_errors,
    console,
    default_out_dir,
    engine_params,
    label,
    print_detect,
    print_export,
    print_ingest,
    print_inpaint,
    print_notes,
    start_flows,
    state_line,
)

if TYPE_CHECKING:
    from flows.params import DetectParams, EngineParams


def register(app: typer.Typer) -> None:
    """Add the stage commands (ingest, detect, adapt, inpaint, export, run) to the `retouch` app."""
    app.command("ingest")(clean_errors(ingest_command))
    app.command("detect")(clean_errors(detect_command))
    app.command("adapt")(clean_errors(adapt_command))
    app.command("inpaint")(clean_errors(inpaint_command))
    app.command("export")(clean_errors(export_command))
    app.command("run")(clean_errors(run_command))


def ingest_command(
    source: Annotated[Path, typer.Argument(help="scan file: TIFF/BigTIFF/OME-TIFF/pyramidal TIFF, PNG, JPEG")],
    store: Annotated[str, typer.Argument(help="output store: a local folder or an fsspec URL")],
    chunk: Annotated[int, typer.Option(help="chunk side in pixels")] = 1024,
    pixel_size_um: Annotated[float | None, typer.Option(help="physical pixel size (micrometres)")] = None,
    shard_chunks: Annotated[int, typer.Option(help="chunks per shard side for levels larger than one shard "
                                                   "(0 = one file per chunk)")] = 4,
    workers: EngineOpt = 0,
    dask_address: AddressOpt = None,
    force: ForceOpt = False,
) -> None:
    """Stream a scan into a chunked OME-Zarr pyramid (never the whole image in memory)."""
    from pipeline.io.sources import open_source

    open_source(source).close()  # bad input fails here, in one line, before any run starts
    start_flows()
    from flows.ingest import ingest_flow
    from flows.params import IngestParams

    result = ingest_flow(str(source), store, IngestParams(chunk=chunk, pixel_size_um=pixel_size_um,
                                                                  shard_chunks=shard_chunks),
                         engine_params(workers, dask_address), force)
    print_ingest(result)


def detect_command(
    store: Annotated[str, typer.Argument(help="an ingested store")],
    weights: Annotated[str | None, typer.Option(help="detector weights name (manifest); default: the store's "
                                                     "adapted weights when `retouch adapt` made some, else "
                                                     f"{DEFAULT_WEIGHTS}")] = None,
    threshold: Annotated[float, typer.Option(help="probability threshold for the label mask")] = 0.5,
    tile: Annotated[int, typer.Option(help="largest model tile side (multiple of 32)")] = 1216,
    precision: Annotated[str, typer.Option(help="auto (bf16 where native), fp32 or bf16")] = "auto",
    batch: Annotated[int, typer.Option(help="model tiles per forward pass (GPU)")] = 1,
    tta: TtaOpt = DEFAULT_TTA,
    second_view: SecondViewOpt = DEFAULT_SECOND_VIEW,
    loss_agreement: LossAgreementOpt = DEFAULT_LOSS_AGREEMENT,
    agreement_area: AgreementAreaOpt = DEFAULT_AGREEMENT_AREA,
    coarse_loss: CoarseLossOpt = DEFAULT_COARSE_LOSS,
    min_crack: MinCrackOpt = DEFAULT_MIN_CRACK,
    straight: StraightOpt = DEFAULT_STRAIGHT,
    paint_like: PaintLikeOpt = DEFAULT_PAINT_LIKE,
    border: BorderOpt = DEFAULT_BORDER,
    scale: ScaleOpt = DEFAULT_SCALE,
    device: DeviceOpt = "cpu",
    workers: EngineOpt = 0,
    dask_address: AddressOpt = None,
    force: ForceOpt = False,
) -> None:
    """Find craquelure and paint loss: writes `damage/` (probabilities + label mask pyramids)."""
    from flows.params import DetectParams

    params = DetectParams(weights=weights, threshold=threshold, tile=tile, precision=precision, batch=batch,
                          tta=check_tta(tta), second_view=check_second_view(second_view),
                          loss_agreement=loss_agreement, agreement_area=agreement_area, coarse_loss=coarse_loss,
                          min_crack=min_crack, straight=straight, paint_like=paint_like, border=border, scale=scale,
                          device=device)
    from pipeline.stages.detect import check_device

    check_device(device)  # before Prefect starts: one line, no flow-run traceback
    start_flows()
    from flows.detect import detect_flow

    print_detect(detect_flow(store, params, engine_params(workers, dask_address), force))


def adapt_command(
    store: Annotated[str, typer.Argument(help="an ingested store (a local folder)")],
    scribbles: Annotated[Path | None, typer.Option(help="PNG/TIFF of the scan's size or a Zarr array, uint8: "
                                                        "0 unlabelled, 1 craquelure, 2 paint loss, 3 clean "
                                                        "(default: the store's scribbles/ from `retouch review`)")]
    = None,
    base: Annotated[str, typer.Option(help="the detector to adapt (manifest name)")] = ADAPT_BASE,
    hidden: Annotated[int, typer.Option(help="hidden units of the per-pixel classifier (0 = linear)", min=0)] = 32,
    steps: Annotated[int, typer.Option(help="optimiser steps of the fit", min=1)] = 300,
    seed: Annotated[int, typer.Option(help="seed of the pixel sampling and the fit")] = 0,
    add: Annotated[float, typer.Option(help="the fitted craquelure head's probability from which it adds a pixel "
                                            "to the base's detections (higher: adds less, flags less intact "
                                            "paint)")] = ADAPT_ADD,
    add_loss: Annotated[float, typer.Option(help="the same for the paint-loss head")] = ADAPT_ADD_LOSS,
    reach: Annotated[int, typer.Option(help="px: the craquelure head only extends the base's cracks, an addition "
                                            "joining them through others within this many px (0 = it may add "
                                            "anywhere)", min=0, max=64)] = ADAPT_REACH,
    beside: Annotated[int, typer.Option(help="px beside a crack the base found, away from its ends, where the "
                                             "craquelure head may not add: it lengthens cracks, it does not "
                                             "thicken them (0 = it may; needs --reach)", min=0, max=8)]
    = ADAPT_BESIDE,
    support_loss: Annotated[float, typer.Option(help="a region the paint-loss head adds counts only where the base "
                                                     "gives one of its pixels at least this probability: the head "
                                                     "completes what the base half saw (0 = every region counts)",
                                                min=0.0, max=0.99)] = ADAPT_SUPPORT_LOSS,
    background: Annotated[float, typer.Option(help="share of the head's negatives taken from random unlabelled "
                                                   "pixels, most of a painting being intact (higher: adds less intact "
                                                   "paint, finds a little less)", min=0.0, max=0.99)]
    = ADAPT_BACKGROUND,
    veto_background: Annotated[float, typer.Option(help="share of the clean strokes' craquelure veto's negatives taken "
                                                        "from the base's detections among unlabelled pixels (lower: "
                                                        "the veto trusts those less and removes more detections like "
                                                        "the ones marked clean)", min=0.0, max=0.99)]
    = ADAPT_VETO_BACKGROUND,
    veto_background_loss: Annotated[float, typer.Option(help="the same for the paint-loss veto", min=0.0, max=0.99)]
    = ADAPT_VETO_BACKGROUND_LOSS,
    veto_joined: Annotated[int, typer.Option(help="per square of strokes, up to this many of the base's cracks that "
                                                  "a craquelure stroke touches are among the craquelure veto's "
                                                  "negatives (it keeps the found cracks the strokes continue; "
                                                  "0 = none)",
                                             min=0, max=100_000)] = ADAPT_VETO_JOINED,
    smooth_loss: Annotated[float, typer.Option(help="Gaussian sigma (px) over which the paint-loss head's pixels "
                                                    "vote together (0 = each alone; small losses the base "
                                                    "misses are found better with less)", min=0.0, max=32.0)]
    = ADAPT_SMOOTH_LOSS,
    clamp_loss: Annotated[float, typer.Option(help="bound of the paint-loss head's logits before the vote (0 = "
                                                   "none; 4 with --smooth-loss 5 --add-loss 0.7 is the measured "
                                                   "regional vote)", min=0.0, max=20.0)] = ADAPT_CLAMP_LOSS,
    gate_loss: Annotated[float, typer.Option(help="the paint-loss head speaks only where it holds at least this share "
                                                  "of the pixels around (0 = everywhere; with the regional vote it "
                                                  "fills large losses without growing isolated pixels into blobs)",
                                             min=0.0, max=0.99)] = ADAPT_GATE_LOSS,
    gate_sigma: Annotated[float, typer.Option(help="Gaussian sigma (px) of that share", min=0.1, max=32.0)]
    = ADAPT_GATE_SIGMA,
    threshold: Annotated[float, typer.Option(help="probability threshold of the detection run after")] = 0.5,
    tta: TtaOpt = DEFAULT_TTA,
    second_view: SecondViewOpt = DEFAULT_SECOND_VIEW,
    loss_agreement: LossAgreementOpt = DEFAULT_LOSS_AGREEMENT,
    agreement_area: AgreementAreaOpt = DEFAULT_AGREEMENT_AREA,
    coarse_loss: CoarseLossOpt = DEFAULT_COARSE_LOSS,
    min_crack: MinCrackOpt = DEFAULT_MIN_CRACK,
    straight: StraightOpt = DEFAULT_STRAIGHT,
    paint_like: PaintLikeOpt = DEFAULT_PAINT_LIKE,
    border: BorderOpt = DEFAULT_BORDER,
    scale: ScaleOpt = DEFAULT_SCALE,
    device: DeviceOpt = "cpu",
    workers: EngineOpt = 0,
    dask_address: AddressOpt = None,
    force: ForceOpt = False,
    undo: Annotated[bool, typer.Option("--undo", help="drop this store's adapted weights (and the map kept before "
                                                       "them), then detect again with the default detector")] = False,
) -> None:
    """Fit the detector to this painting from a conservator's scribbles (`weights/`), then detect again."""
    from flows.params import AdaptParams, DetectParams
    from pipeline.io.scribbles import read_scribbles
    from pipeline.io.store import join, open_complete
    from pipeline.stages.adapt_before import describe_shares, describe_strokes, unlearned
    from pipeline.stages.adapt_weights import weights_dir
    from pipeline.stages.detect import check_device

    for name, value in (("--add", add), ("--add-loss", add_loss)):
        if not 0.0 < value < 1.0:
            raise typer.BadParameter(f"{name} must be in (0, 1), got {value}")
    weights_dir(store)  # a remote store is refused here
    detect = DetectParams(threshold=threshold, tta=check_tta(tta), second_view=check_second_view(second_view),
                          loss_agreement=loss_agreement, agreement_area=agreement_area, coarse_loss=coarse_loss,
                          min_crack=min_crack, straight=straight, paint_like=paint_like, border=border, scale=scale,
                          device=device)
    if undo:
        if scribbles is not None:
            raise typer.BadParameter("--undo fits nothing: it takes no --scribbles")
        return undo_adapt_command(store, detect, engine_params(workers, dask_address))
    source = str(scribbles) if scribbles else join(store, "scribbles")
    _, height, width = open_complete(store, "scan")["0"].shape
    read_scribbles(source, (height, width))  # bad scribbles fail here, in one line, before any run starts
    check_device(device)
    params = AdaptParams(base=base, hidden=hidden, steps=steps, seed=seed, add=add, add_loss=add_loss, reach=reach,
                         beside=beside, support_loss=support_loss, background=background,
                         veto_background=veto_background, veto_background_loss=veto_background_loss,
                         veto_joined=veto_joined,
                         smooth_loss=smooth_loss, clamp_loss=clamp_loss, gate_loss=gate_loss, gate_sigma=gate_sigma,
                         scale=scale, device=device)
    start_flows()
    from flows.adapt import adapt_flow

    results = adapt_flow(store, source, params, detect, engine_params(workers, dask_address), force)
    adapted = results["adapt"]
    s = adapted["summary"]
    sha = adapted["digests"]["adapted.safetensors"]
    console.print(f"weights:    {store}/weights/adapted.safetensors  (sha256 {sha[:16]}…; {state_line(adapted)})")
    console.print(f"            adapted {', '.join(s['adapted_classes'])} from "
                  + ", ".join(f"{k} {v} px" for k, v in s["labelled_pixels"].items()))
    print_notes(adapted)
    print_detect(results["detect"])
    if any(share["before"] is not None for share in results["flagged"].values()):
        console.print(f"changed:    {describe_shares(results['flagged'])} of the scan "
                      f"(where: `retouch review {store}`, map \"changed by adapt\")")
    console.print(f"strokes:    {describe_strokes(results['strokes'])}")
    for line in unlearned(results["strokes"], params.support_loss, params.reach, params.add):
        console.print(label("warning:", "yellow", line))


def undo_adapt_command(store: str, detect: DetectParams, engine: EngineParams) -> None:
    """`retouch adapt STORE --undo`: refused in one line, before any flow starts, without adapted weights."""
    from pipeline.stages.adapt_undo import undoable

    undoable(store)
    start_flows()
    from flows.adapt import adapt_undo_flow

    results = adapt_undo_flow(store, detect, engine)
    undone = results["undo"]["summary"]
    console.print(f"undone:     the adapted weights (sha256 {undone['undone'][:16]}…, fitted on {undone['base']}) "
                  "and the map kept before them are gone; detection uses the default detector again")
    print_detect(results["detect"])


def inpaint_command(
    store: Annotated[str, typer.Argument(help="a store with scan/ (and damage/ unless --mask)")],
    mask: Annotated[Path | None, typer.Option(help="edited mask (PNG/TIFF/Zarr, the scan's size; "
                                                   "nonzero = fill) instead of the detected damage")] = None,
    weights: Annotated[str, typer.Option(help="inpainter weights name (manifest)")] = "inpainter-pconv",
    dilate: Annotated[int, typer.Option(help="grow the mask by this many px")] = 2,
    strategy: Annotated[Literal["boxes", "tiles"], typer.Option(
        help="run the network on boxes around the damage, or on every damaged tile (the earlier path)")] = "boxes",
    margin: Annotated[int, typer.Option(help="context around each damage box, px (--strategy boxes)", min=0)] = 24,
    grain: GrainOpt = 1.0,
    grain_sigma: GrainSigmaOpt = 3.0,
    precision: Annotated[Literal["auto", "fp32", "bf16"], typer.Option(
        help="the network in fp32, under bf16 autocast, or auto (bf16 where native)")] = "fp32",
    allow_large_mask: Annotated[bool, typer.Option("--allow-large-mask", help="accept an edited mask that marks "
                                                   "more than half the image")] = False,
    allow_empty_mask: Annotated[bool, typer.Option("--allow-empty-mask", help="accept an edited mask that marks "
                                                   "no pixel (restored/ = the scan)")] = False,
    device: DeviceOpt = "cpu",
    workers: EngineOpt = 0,
    dask_address: AddressOpt = None,
    force: ForceOpt = False,
) -> None:
    """Fill the damage: writes `restored/`, equal to the scan bit for bit outside the mask."""
    from flows.params import InpaintParams

    params = InpaintParams(weights=weights, mask=str(mask) if mask else None, dilate=dilate, device=device,
                           strategy=strategy, margin=margin, grain=grain, grain_sigma=grain_sigma,
                           precision=precision, allow_large_mask=allow_large_mask,
                           allow_empty_mask=allow_empty_mask)
    from pipeline.stages.detect import check_device

    check_device(device)
    start_flows()
    from flows.inpaint import inpaint_flow

    print_inpaint(inpaint_flow(store, params, engine_params(workers, dask_address), force))


def export_command(
    store: Annotated[str, typer.Argument(help="a store with scan/, damage/ and restored/")],
    outdir: Annotated[Path, typer.Argument(help="folder for the TIFF, previews, page and summary")],
    preview_max_side: Annotated[int, typer.Option(help="longest side of the PNG previews")] = 2048,
    iiif_base_url: Annotated[str | None, typer.Option(help="URL where OUTDIR/iiif/ will be published (the "
                                                           "info.json ids; default: relative to the page)")] = None,
    force: ForceOpt = False,
) -> None:
    """Write the restored pyramidal TIFF, PNG previews, static IIIF tiles, a deep-zoom before/after page and
    the damage summary."""
    from flows.params import ExportParams

    params = ExportParams(out_dir=str(outdir), preview_max_side=preview_max_side, iiif_base_url=iiif_base_url)
    start_flows()
    from flows.export import export_flow

    print_export(export_flow(store, params, force))


def scan_name(source: Path) -> str:
    """The name of a scan's store and export: the file name without its extension, nor ".ome" for an OME-TIFF
    ("panel.ome.tif" -> "panel")."""
    stem = source.stem
    return stem[:-4] if stem.lower().endswith(".ome") and len(stem) > 4 else stem


def run_command(
    source: Annotated[Path | None, typer.Argument(help="scan file (default: the bundled sample)")] = None,
    catalog: Annotated[Path | None, typer.Option(help="catalog YAML to take --id from")] = None,
    id: Annotated[str | None, typer.Option("--id", help="catalog entry id")] = None,  # noqa: A002
    out: Annotated[Path | None, typer.Option(help="output folder (default: ./retouch-out)")] = None,
    weights: Annotated[str | None, typer.Option(help="detector weights name (manifest); default: the store's "
                                                     "adapted weights when `retouch adapt` made some, else "
                                                     f"{DEFAULT_WEIGHTS}")] = None,
    tta: TtaOpt = DEFAULT_TTA,
    second_view: SecondViewOpt = DEFAULT_SECOND_VIEW,
    loss_agreement: LossAgreementOpt = DEFAULT_LOSS_AGREEMENT,
    agreement_area: AgreementAreaOpt = DEFAULT_AGREEMENT_AREA,
    coarse_loss: CoarseLossOpt = DEFAULT_COARSE_LOSS,
    min_crack: MinCrackOpt = DEFAULT_MIN_CRACK,
    straight: StraightOpt = DEFAULT_STRAIGHT,
    paint_like: PaintLikeOpt = DEFAULT_PAINT_LIKE,
    border: BorderOpt = DEFAULT_BORDER,
    scale: ScaleOpt = DEFAULT_SCALE,
    grain: GrainOpt = 1.0,
    grain_sigma: GrainSigmaOpt = 3.0,
    workers: EngineOpt = 0,
    dask_address: AddressOpt = None,
    force: ForceOpt = False,
) -> None:
    """Restore a scan end to end (no argument: the bundled sample) and print where each output is."""
    from data_catalog.schema import find_entry
    from pipeline.io.sources import open_source

    check_tta(tta)
    check_second_view(second_view)
    if weights:
        from models.weights import get_entry

        get_entry(weights, kind="detector")  # an unknown name is refused before anything is read or written
    if source is not None and (catalog or id):
        raise typer.BadParameter("give either SOURCE or --catalog/--id, not both")
    title, pixel_size_um, catalog_entry = None, None, None
    if source is None:
        entry, catalog_path = find_entry(id or DEFAULT_SAMPLE_ID, catalog)
        source_str, name, title = entry.resolved_source(catalog_path), entry.id, f"{entry.creator}, {entry.title}"
        pixel_size_um, catalog_entry = entry.pixel_size_um, entry.model_dump(mode="json")
    else:
        source_str, name = str(source), scan_name(source)
    open_source(source_str).close()
    out_dir = out or default_out_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    store = str(out_dir / f"{name}.zarr")
    console.print(label("Restoring", "bold", source_str))
    from flows.params import DetectParams, ExportParams, IngestParams, InpaintParams

    params = {"ingest": IngestParams(pixel_size_um=pixel_size_um),
              "detect": DetectParams(weights=weights, tta=tta, second_view=second_view, loss_agreement=loss_agreement,
                                     agreement_area=agreement_area,
                                     coarse_loss=coarse_loss, min_crack=min_crack, straight=straight,
                                     paint_like=paint_like, border=border,
                                     scale=scale),
              "inpaint": InpaintParams(grain=grain, grain_sigma=grain_sigma),
              "export": ExportParams(out_dir=str(out_dir / f"{name}-export"))}
    results = None
    if not force:  # every stage current: the results, without starting Prefect (most of a re-run's time)
        from pipeline.stages.cached import cached_restore

        results = cached_restore(source_str, store, params["export"].out_dir,
                                 *(p.config() for p in params.values()))
    if results is None:
        start_flows()
        from flows.restore import restore_flow

        results = restore_flow(source_str, store, **params, engine=engine_params(workers, dask_address),
                               force=force, title=title,
                               catalog=catalog_entry)
    else:
        console.print("(every stage unchanged: nothing to run, no flow run recorded; --force recomputes)")
    print_ingest(results["ingest"])
    print_detect(results["detect"])
    print_inpaint(results["inpaint"])
    print_export(results["export"])
    console.print(f"provenance: {store}/provenance/")


DEFAULT_SAMPLE_ID = "leyster-self-portrait-simulated-damage"
