"""What the review page shows beside the images: the catalog entry, weights, parameters, run times, documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.io.store import fs_and_path, group_info, join
from pipeline.provenance import list_documents
from pipeline.review.edits import current_version
from pipeline.review.images import SCRIBBLE_GROUP, label_digest
from pipeline.stages.detect import STALE_KEY, resolution_note
from pipeline.stages.inpaint_stage import EDITED_MASK_GROUP

STAGE_GROUPS = ("scan", "damage", "restored", EDITED_MASK_GROUP, SCRIBBLE_GROUP)
CATALOG_FIELDS = ("title", "creator", "date", "institution", "accession_number", "licence")


def catalog_entry(scan_source: str | None, scan_sha256: str | None, catalog: Path | None) -> dict[str, Any] | None:
    """The catalog entry whose source is the ingested file (same path, else same sha256 of a local file)."""
    from data_catalog.schema import CatalogError, default_catalog_path, load_catalog

    path = catalog or default_catalog_path()
    try:
        entries = load_catalog(path)
    except CatalogError:
        return None
    for entry in entries:
        source = entry.resolved_source(path)
        if scan_source and Path(source).resolve() == Path(scan_source).resolve():
            return {"id": entry.id, **{k: getattr(entry, k) for k in CATALOG_FIELDS}}
    if scan_sha256:
        from pipeline.provenance import sha256_file

        for entry in entries:
            source = Path(entry.resolved_source(path))
            if source.is_file() and sha256_file(source) == scan_sha256:
                return {"id": entry.id, **{k: getattr(entry, k) for k in CATALOG_FIELDS}}
    return None


def run_times(store: str) -> list[dict[str, Any]]:
    """Start, end and stage of every provenance document of the store (oldest first)."""
    rows = []
    for url in list_documents(store):
        fs, path = fs_and_path(url)
        try:
            with fs.open(path, "r") as fh:
                doc = json.load(fh)
        except (OSError, ValueError):
            continue
        for activity in doc.get("activity", {}).values():
            rows.append({"stage": activity.get("retouch:stage"), "start": activity.get("prov:startTime"),
                         "end": activity.get("prov:endTime"), "document": path.rsplit("/", 1)[-1]})
    return sorted(rows, key=lambda r: r["start"] or "")


def store_meta(store: str, catalog: Path | None, images: list[str]) -> dict[str, Any]:
    """Everything the page needs apart from the pixels, as one JSON-able dict."""
    markers = {name: group_info(store, name) for name in STAGE_GROUPS}
    scan = markers["scan"] or {}
    stages = {}
    for name, info in markers.items():
        if info is None:
            continue
        stages[name] = {k: info[k] for k in ("stage", "weights", "weights_sha256", "params", "summary", "base",
                                              "base_digest", "pixels_changed", "time", STALE_KEY) if k in info}
    return {
        "store": store,
        "images": images,
        "catalog": catalog_entry(scan.get("source"), scan.get("source_sha256"), catalog),
        "source": {k: scan.get(k) for k in ("source", "source_sha256", "source_format")},
        "stages": stages,
        "runs": run_times(store),
        "versions": {EDITED_MASK_GROUP: current_version(store, EDITED_MASK_GROUP) if markers["damage"] else None,
                     SCRIBBLE_GROUP: current_version(store, SCRIBBLE_GROUP),
                     "damage": label_digest(store, "damage") if markers["damage"] else None},
        "provenance_dir": join(store, "provenance"),
        "warnings": detect_warnings(store, markers["damage"]),
    }


def detect_warnings(store: str, damage: dict[str, Any] | None) -> list[str]:
    """What `retouch detect` warned of that the damage map still carries: a scan much larger than the paintings
    the detector learned on, detected at scale 1 (`resolution_note`); none without a damage map."""
    import zarr

    if damage is None:
        return []
    _, height, width = zarr.open_group(store, mode="r")["scan"]["0"].shape
    note = resolution_note(height, width, float((damage.get("params") or {}).get("scale", 1.0)))
    return [note] if note else []
