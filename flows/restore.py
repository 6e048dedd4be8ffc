"""The parent flow: ingest -> detect -> inpaint -> export as subflows (a DAG the Prefect UI draws)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import run_name
from flows.detect import detect_flow
from flows.export import export_flow
from flows.ingest import ingest_flow
from flows.inpaint import inpaint_flow
from flows.params import DetectParams, EngineParams, ExportParams, IngestParams, InpaintParams


@flow(name="restore", flow_run_name=run_name("restore"), log_prints=True)
def restore_flow(source: str, store: str, ingest: IngestParams = IngestParams(),
                 detect: DetectParams = DetectParams(), inpaint: InpaintParams = InpaintParams(),
                 export: ExportParams = ExportParams(), engine: EngineParams = EngineParams(),
                 force: bool = False, title: str | None = None,
                 catalog: dict[str, Any] | None = None) -> dict[str, Any]:
    """ingest -> detect -> inpaint -> export, each a subflow; unchanged stages are skipped."""
    results = {"ingest": ingest_flow(source, store, ingest, engine, force)}
    results["detect"] = detect_flow(store, detect, engine, force)
    results["inpaint"] = inpaint_flow(store, inpaint, engine, force)
    results["export"] = export_flow(store, export, force, title, catalog)
    return results
