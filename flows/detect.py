"""Prefect flow for the detect stage (the work is in `pipeline.stages.detect`)."""

from __future__ import annotations

from typing import Any

from prefect import flow, task

from flows.common import LOCK_WAIT_SECONDS, RETRY_DELAYS, finish, is_transient, run_name
from flows.params import DetectParams, EngineParams
from flows.reporting import progress_artifact, report_damage_table, report_stage, result_dict
from flows.settings import current_run_id
from pipeline.io.locking import store_lock


@task(name="detect-damage", retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=is_transient)
def detect_task(store: str, params: DetectParams, engine: EngineParams, force: bool) -> dict[str, Any]:
    from pipeline.stages.detect import detect

    with store_lock(store, timeout=LOCK_WAIT_SECONDS), progress_artifact("detect", store):
        result = detect(store, params.config(), engine.config(), force=force, run_id=current_run_id())
    report_stage(result)
    report_damage_table(result.summary)
    return result_dict(result)


@flow(name="detect", flow_run_name=run_name("detect"), log_prints=True)
def detect_flow(store: str, params: DetectParams = DetectParams(), engine: EngineParams = EngineParams(),
                force: bool = False) -> Any:
    """Find craquelure and paint loss in an ingested store (`damage/`)."""
    return finish(detect_task(store, params, engine, force))
