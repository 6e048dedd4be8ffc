"""Prefect flow for the inpaint stage (the work is in `pipeline.stages.inpaint_stage`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task

from flows.common import LOCK_WAIT_SECONDS, RETRY_DELAYS, finish, is_transient, run_name
from flows.params import EngineParams, InpaintParams
from flows.reporting import progress_artifact, report_stage, result_dict
from flows.settings import current_run_id
from pipeline.io.locking import store_lock


@task(name="inpaint-damage", retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=is_transient)
def inpaint_task(store: str, params: InpaintParams, engine: EngineParams, force: bool) -> dict[str, Any]:
    from pipeline.stages.inpaint_stage import inpaint_store

    mask = Path(params.mask) if params.mask else None
    with store_lock(store, timeout=LOCK_WAIT_SECONDS), progress_artifact("inpaint", store):
        result = inpaint_store(store, params.config(), engine.config(), mask=mask, force=force,
                               run_id=current_run_id(), allow_large_mask=params.allow_large_mask,
                               allow_empty_mask=params.allow_empty_mask)
    report_stage(result)
    return result_dict(result)


@flow(name="inpaint", flow_run_name=run_name("inpaint"), log_prints=True)
def inpaint_flow(store: str, params: InpaintParams = InpaintParams(), engine: EngineParams = EngineParams(),
                 force: bool = False) -> Any:
    """Fill the detected (or an edited) damage mask: `restored/`, equal to the scan outside the mask."""
    return finish(inpaint_task(store, params, engine, force))
