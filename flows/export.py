"""Prefect flow for the export stage (the work is in `pipeline.stages.export`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task

from flows.common import LOCK_WAIT_SECONDS, RETRY_DELAYS, finish, is_transient, run_name
from flows.params import ExportParams, default_export_dir
from flows.reporting import report_previews, report_stage, result_dict
from flows.settings import current_run_id
from pipeline.io.locking import store_lock


@task(name="export-deliverables", retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=is_transient)
def export_task(store: str, params: ExportParams, force: bool, title: str | None,
                catalog: dict[str, Any] | None = None) -> dict[str, Any]:
    from pipeline.stages.export import export

    out_dir = Path(params.out_dir or default_export_dir(store))
    with store_lock(store, timeout=LOCK_WAIT_SECONDS):  # export writes its provenance into the store
        result = export(store, out_dir, params.config(), force=force, run_id=current_run_id(), title=title,
                        catalog=catalog)
    outputs = [str(out_dir / name) for name in result.digests]
    report_stage(result, outputs=outputs)
    report_previews(out_dir)
    return {**result_dict(result), "out_dir": str(out_dir)}


@flow(name="export", flow_run_name=run_name("export"), log_prints=True)
def export_flow(store: str, params: ExportParams = ExportParams(), force: bool = False,
                title: str | None = None, catalog: dict[str, Any] | None = None) -> Any:
    """Write the restored pyramidal TIFF, previews, before/after page, damage summary and RO-Crate.

    `catalog`: the scan's catalog entry (title, creator, accession number, licence, ...) for summary.json.
    """
    return finish(export_task(store, params, force, title, catalog))
