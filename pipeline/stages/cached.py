"""Whether a whole restoration is already done: the four stages' skip checks, without running any stage.

`retouch run` asks this before it starts Prefect: when every stage would be skipped, it prints the results
from the store without a flow run (starting Prefect's temporary server was most of a cached re-run's time).
The checks are the stages' own (their key functions over the same inputs, and their completion markers), so
this says "done" only where each stage would say "unchanged, skipped"; anything else runs the flows.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipeline.io.store import group_info
from pipeline.provenance import document_url, sha256_file
from pipeline.stages.detect import (
    STALE_KEY,
    DetectConfig,
    StageResult,
    detect_key,
    labels_current,
    resolve_weights,
)
from pipeline.stages.export import ExportConfig, export_key
from pipeline.stages.ingest import IngestConfig, _skipped_result, ingest_key
from pipeline.stages.inpaint_stage import InpaintStageConfig, inpaint_key


def cached_restore(source: str | Path, store: str, out_dir: str | Path, ingest: IngestConfig, detect: DetectConfig,
                   inpaint: InpaintStageConfig, export: ExportConfig) -> dict[str, dict[str, Any]] | None:
    """The four stages' results (as their flows return them, all skipped) when each is current; else None.

    Only the detected mask is considered (an edited mask is a re-run, never a cached one).
    """
    from models.weights import get_entry

    scan = group_info(store, "scan")
    if scan is None or scan.get("key") != ingest_key(sha256_file(Path(source)), ingest):
        return None
    scan_digest = scan["digests"]["0"]
    detect, _ = resolve_weights(store, detect.resolved())
    assert detect.weights is not None
    damage = group_info(store, "damage")
    if damage is None or damage.get("key") != detect_key(
            scan_digest, detect, get_entry(detect.weights, Path(detect.manifest)).sha256):
        return None
    if not labels_current(store, damage):  # detect's own skip condition: the label image of the same run
        return None
    restored = group_info(store, "restored")
    if restored is None or restored.get("key") != inpaint_key(
            scan_digest, damage["digests"]["labels/0"], inpaint,
            get_entry(inpaint.weights, Path(inpaint.manifest)).sha256):
        return None
    if restored.get(STALE_KEY) or restored.get("mask_digest") != damage["digests"]["labels/0"]:
        return None  # inpaint recomputes a stale restored/ (and export refuses it)
    summary_path = Path(out_dir) / "summary.json"
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError):
        return None
    if summary.get("key") != export_key(restored["digests"]["0"], damage["digests"]["labels/0"], export):
        return None
    results: dict[str, dict[str, Any]] = {"ingest": asdict(_skipped_result(store, scan))}
    for stage, info in (("detect", damage), ("inpaint", restored)):
        results[stage] = asdict(StageResult(stage, store, True, info["key"], info["digests"], info["summary"],
                                            document_url(store, info.get("provenance")), 0.0))
    results["export"] = {**asdict(StageResult("export", store, True, summary["key"], summary["files_sha256"],
                                              summary, document_url(store, summary.get("provenance_document")),
                                              0.0)), "out_dir": str(out_dir)}
    return results
