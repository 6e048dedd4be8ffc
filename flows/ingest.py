"""Prefect flow for the ingest stage (the work is in `pipeline.stages.ingest`)."""

from __future__ import annotations

from typing import Any

from prefect import flow, task

from flows.common import LOCK_WAIT_SECONDS, RETRY_DELAYS, finish, is_transient, run_name
from flows.params import EngineParams, IngestParams
from flows.reporting import progress_artifact, report_stage
from flows.settings import current_run_id
from pipeline.io.locking import store_lock


@task(name="ingest-scan", retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=is_transient)
def ingest_task(source: str, store: str, params: IngestParams, engine: EngineParams, force: bool) -> dict[str, Any]:
    from dataclasses import asdict

    from pipeline.stages.detect import StageResult
    from pipeline.stages.ingest import ingest

    with store_lock(store, timeout=LOCK_WAIT_SECONDS), progress_artifact("ingest", store):
        result = ingest(source, store, params.config(), engine.config(), force=force, run_id=current_run_id())
    report_stage(StageResult("ingest", store, result.skipped, result.key, {"scan/0": result.digest},
                             {"levels": result.levels, "dtype": result.dtype}, result.provenance, result.seconds),
                 shape=list(result.shape))
    return asdict(result)


@flow(name="ingest", flow_run_name=run_name("ingest"), log_prints=True)
def ingest_flow(source: str, store: str, params: IngestParams = IngestParams(),
                engine: EngineParams = EngineParams(), force: bool = False) -> Any:
    """Stream a scan file into the store's `scan/` OME-Zarr pyramid."""
    return finish(ingest_task(source, store, params, engine, force))
