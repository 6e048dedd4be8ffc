"""Prefect flow for the adapt stage (the work is in `pipeline.stages.adapt`), then detect with the adapted weights."""

from __future__ import annotations

from typing import Any

from prefect import flow, task

from flows.common import LOCK_WAIT_SECONDS, RETRY_DELAYS, finish, is_transient, run_name
from flows.detect import detect_flow
from flows.params import AdaptParams, DetectParams, EngineParams
from flows.reporting import report_flagged_shares, report_stage, result_dict
from flows.settings import current_run_id
from pipeline.io.locking import store_lock


@task(name="adapt-detector", retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=is_transient)
def adapt_task(store: str, scribbles: str, params: AdaptParams, force: bool) -> dict[str, Any]:
    from pipeline.stages.adapt import adapt

    with store_lock(store, timeout=LOCK_WAIT_SECONDS):
        result = adapt(store, scribbles, params.config(), force=force, run_id=current_run_id())
    report_stage(result)
    return result_dict(result)


@flow(name="adapt-fit", flow_run_name=run_name("adapt-fit"), log_prints=True)
def adapt_fit_flow(store: str, scribbles: str, params: AdaptParams, force: bool) -> Any:
    """Fit the store's adapted detector (`weights/`) on the scribbles."""
    return finish(adapt_task(store, scribbles, params, force))


@flow(name="adapt", flow_run_name=run_name("adapt"), log_prints=True)
def adapt_flow(store: str, scribbles: str, params: AdaptParams = AdaptParams(), detect: DetectParams = DetectParams(),
               engine: EngineParams = EngineParams(), force: bool = False) -> dict[str, Any]:
    """Fit the detector to this painting from a conservator's scribbles, then detect again with it.

    Args:
        store: the store (a local folder) holding scan/
        scribbles: PNG/TIFF of the scan's size or a Zarr array (e.g. <store>/scribbles), uint8: 0 unlabelled,
            1 craquelure, 2 paint loss, 3 clean
        params: the fit (base weights, head size, steps, seed, device)
        detect: the detection run after the fit (weights left empty: the adapted ones)
        force: fit again even when scan, scribbles, base weights and parameters are unchanged

    Returns the two stages' results and, per class, the share of the scan flagged before the fit and now
    ("flagged"; also a table artifact): where it moved, the review page's map "changed by adapt" shows; and per
    damage class with strokes, the share of its stroke pixels the new map flags ("strokes").
    """
    from pipeline.stages.adapt_before import flagged_shares, strokes_flagged

    adapted = adapt_fit_flow(store, scribbles, params, force)
    detected = detect_flow(store, detect, engine, False)
    flagged = flagged_shares(store, detected["summary"]["area_percent"])
    report_flagged_shares(flagged)
    return {"adapt": adapted, "detect": detected, "flagged": flagged, "strokes": strokes_flagged(store, scribbles)}


@task(name="adapt-undo")
def adapt_undo_task(store: str) -> dict[str, Any]:
    from pipeline.stages.adapt_undo import undo_adapt

    with store_lock(store, timeout=LOCK_WAIT_SECONDS):
        result = undo_adapt(store, run_id=current_run_id())
    report_stage(result)
    return result_dict(result)


@flow(name="adapt-undo", flow_run_name=run_name("adapt-undo"), log_prints=True)
def adapt_undo_flow(store: str, detect: DetectParams = DetectParams(),
                    engine: EngineParams = EngineParams()) -> dict[str, Any]:
    """Drop the store's adapted weights (and the map kept before them), then detect again with the default detector.

    Args:
        store: the store (a local folder) holding weights/ from `retouch adapt`
        detect: the detection run after it (weights left empty: the default detector)
    """
    undone = adapt_undo_task(store)
    return {"undo": undone, "detect": detect_flow(store, detect, engine, False)}
