"""Deployments served from this machine (`retouch serve`): a nightly catalog sweep and on-demand re-runs.

    catalog-sweep/catalog-sweep   cron (default nightly): restore every catalog scan whose file changed
    rerun-detect/rerun-detect     detect again with another threshold or other weights
    rerun-inpaint/rerun-inpaint   inpaint again, e.g. with a conservator's edited mask
    export/export                 write the deliverables again
    adapt/adapt                   fit the detector to one painting from a conservator's scribbles, detect again
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import flow, task

from flows.adapt import adapt_flow, adapt_undo_flow
from flows.common import RETRY_DELAYS, is_transient, run_name
from flows.detect import detect_flow
from flows.export import export_flow
from flows.inpaint import inpaint_flow
from flows.params import DetectParams, EngineParams, ExportParams, IngestParams, InpaintParams, SecondView, Tta
from flows.reporting import report_sweep
from flows.restore import restore_flow
from pipeline.stages.sweep import SweepItem, plan_item

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

NIGHTLY = "0 2 * * *"


class SweepError(RuntimeError):
    """Some scans of a sweep failed (the others were still restored)."""


@task(name="check-source", retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=is_transient)
def check_source(scan_id: str, source: str, out_dir: str) -> SweepItem:
    """The source file's sha256 against the one its store was last made from."""
    return plan_item(scan_id, source, Path(out_dir))


@flow(name="catalog-sweep", log_prints=True)
def catalog_sweep_flow(catalog: str | None = None, out: str | None = None, ingest: IngestParams = IngestParams(),
                       detect: DetectParams = DetectParams(), inpaint: InpaintParams = InpaintParams(),
                       export: ExportParams = ExportParams(), engine: EngineParams = EngineParams()) -> dict[str, str]:
    """Restore every catalog scan whose source file changed (sha256) since its last run; skip the others.

    Args:
        catalog: catalog YAML (default: the bundled catalog)
        out: folder of the stores `<id>.zarr` and exports `<id>-export` (default: ./retouch-out)
    """
    from data_catalog.schema import default_catalog_path, load_catalog

    catalog_path = Path(catalog) if catalog else default_catalog_path()
    out_dir = Path(out) if out else Path.cwd() / "retouch-out"
    outcomes: dict[str, str] = {}
    items: dict[str, SweepItem] = {}
    for entry in load_catalog(catalog_path):
        checked = check_source.with_options(task_run_name=f"check-{entry.id}")(
            entry.id, entry.resolved_source(catalog_path), str(out_dir), return_state=True)
        item = checked.result(raise_on_failure=False)
        if not isinstance(item, SweepItem):
            outcomes[entry.id] = f"failed: {item}"
            continue
        items[entry.id] = item
        if not item.changed:
            outcomes[entry.id] = "unchanged, skipped"
            continue
        run = restore_flow.with_options(flow_run_name=f"restore-{entry.id}")(
            item.source, item.store, ingest, detect, inpaint, export.model_copy(update={"out_dir": item.export_dir}),
            engine, force=item.needs_force, title=f"{entry.creator}, {entry.title}",
            catalog=entry.model_dump(mode="json"), return_state=True)
        failure = None if run.is_completed() else run.result(raise_on_failure=False)
        outcomes[entry.id] = f"restored ({item.reason})" if failure is None else f"failed: {failure}"
    report_sweep(outcomes, items)
    failed = {k: v for k, v in outcomes.items() if v.startswith("failed")}
    if failed:
        raise SweepError(f"{len(failed)} of {len(outcomes)} scans failed: "
                         + "; ".join(f"{k}: {v.removeprefix('failed: ')}" for k, v in failed.items()))
    return outcomes


@flow(name="rerun-detect", flow_run_name=run_name("rerun-detect"), log_prints=True)
def rerun_detect_flow(store: str, threshold: float = DetectParams().threshold,
                      weights: str | None = DetectParams().weights,
                      tta: Tta = DetectParams().tta, second_view: SecondView = DetectParams().second_view,
                      loss_agreement: float = DetectParams().loss_agreement,
                      agreement_area: int = DetectParams().agreement_area,
                      coarse_loss: bool = DetectParams().coarse_loss,
                      min_crack: int = DetectParams().min_crack, straight: int = DetectParams().straight,
                      paint_like: int = DetectParams().paint_like,
                      border: int = DetectParams().border,
                      scale: float = DetectParams().scale,
                      force: bool = False,
                      engine: EngineParams = EngineParams()) -> Any:
    """Detect damage again in an ingested store, with another threshold, other weights or other views.

    Args:
        store: the store (absolute path or fsspec URL) holding scan/
        threshold: probability above which a pixel is labelled damaged
        weights: detector weights (name in the weights manifest); empty: the store's adapted weights when
            `adapt` made some, else the shipped detector
        tta: test-time augmentation: every tile in this many flipped orientations, averaged (that many times
            slower); 2 (default) = the tile and its second view, 1 = one pass
        second_view: the second of two views: "mirror", "half-turn", "quarter-turn", "small-mirror" or
            "small-half-turn" (those two at 13/16 of the tile's side)
        loss_agreement: paint loss is the views' mean only where every view gives it at least this, elsewhere
            the lowest view's (0 = the mean everywhere)
        agreement_area: paint-loss regions of fewer than this many px keep the views' mean (0 = every region)
        coarse_loss: also look for paint loss at half size, where large losses show their edges
        min_crack: drop craquelure fragments of fewer than this many px from the labels (0 = keep all)
        straight: drop craquelure components whose centre line is a straight line (within 1 px RMS) at least
            this many px long (0 = keep all)
        paint_like: drop from the paint-loss labels the pixels whose colour is within this many levels of 255
            of the paint ringing their region (0 = keep all)
        border: within this many px of the image border a mark must also be seen with the border continued
            by edge copies, not only reflected (0 = off)
        scale: the detector sees the scan resampled by this factor (1 = as scanned)
        force: recompute even when scan, parameters and weights are unchanged
    """
    return detect_flow(store, DetectParams(threshold=threshold, weights=weights, tta=tta, second_view=second_view,
                                           loss_agreement=loss_agreement, agreement_area=agreement_area,
                                           coarse_loss=coarse_loss,
                                                min_crack=min_crack, straight=straight, paint_like=paint_like,
                                                border=border,
                                                scale=scale),
                       engine, force)


@flow(name="rerun-inpaint", flow_run_name=run_name("rerun-inpaint"), log_prints=True)
def rerun_inpaint_flow(store: str, mask: str | None = None, weights: str = InpaintParams().weights,
                       dilate: int = InpaintParams().dilate, force: bool = False,
                       engine: EngineParams = EngineParams()) -> Any:
    """Fill the damage again, e.g. with a conservator's edited mask instead of the detected one.

    Args:
        store: the store (absolute path or fsspec URL) holding scan/ and damage/
        mask: an edited mask (PNG/TIFF/Zarr of the scan's size, nonzero = fill); empty: the detected damage
        weights: inpainter weights (name in the weights manifest)
        dilate: grow the mask by this many px before filling
        force: recompute even when scan, mask, parameters and weights are unchanged
    """
    return inpaint_flow(store, InpaintParams(mask=mask or None, weights=weights, dilate=dilate), engine, force)


def build_deployments(cron: str = NIGHTLY, catalog: str | None = None, out: str | None = None,
                      timezone: str = "UTC") -> list[RunnerDeployment]:
    """The six deployments; the sweep's catalog and output folder are fixed here as absolute paths."""
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    sweep_params = {"catalog": str(Path(catalog).resolve()) if catalog else None,
                    "out": str(Path(out or "retouch-out").resolve())}
    common: dict[str, Any] = {"entrypoint_type": EntrypointType.MODULE_PATH, "tags": ["retouch"]}
    return [
        catalog_sweep_flow.to_deployment("catalog-sweep", schedules=[Cron(cron, timezone=timezone)],
                                         parameters=sweep_params, concurrency_limit=1, **common),
        rerun_detect_flow.to_deployment("rerun-detect", **common),
        rerun_inpaint_flow.to_deployment("rerun-inpaint", **common),
        export_flow.to_deployment("export", **common),
        adapt_flow.to_deployment("adapt", **common),
        adapt_undo_flow.to_deployment("adapt-undo", **common),
    ]


def serve_deployments(cron: str = NIGHTLY, catalog: str | None = None, out: str | None = None,
                      timezone: str = "UTC", limit: int | None = None) -> None:
    """Serve the deployments until interrupted (runs execute in subprocesses of this one)."""
    from prefect import serve

    serve(*build_deployments(cron, catalog, out, timezone), limit=limit)
