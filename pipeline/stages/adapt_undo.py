"""Undoing adapt: the store's adapted weights dropped, so that detection takes its default detector again.

A conservator who sees in the review ("changed by adapt") that adapting did more harm than good goes back with
`retouch adapt STORE --undo`, which drops `weights/` and the map kept for the comparison (`damage_before_adapt/`) and
then detects again (flows.adapt.adapt_undo_flow). The PROV document of the undo names the weights it invalidated.
"""

from __future__ import annotations

import time
from typing import Any

from pipeline.errors import InputError
from pipeline.io.staging import partial_name, remove
from pipeline.io.store import join
from pipeline.provenance import StageRecord, marker_refs, now_iso
from pipeline.stages.adapt_before import BEFORE_ADAPT
from pipeline.stages.adapt_weights import WEIGHTS_GROUP, adapted_info, weights_dir
from pipeline.stages.detect import StageResult


def undoable(store: str) -> dict[str, Any]:
    """The store's adapted weights' marker; refused in one line when it has none (or is remote)."""
    folder = weights_dir(store)  # refuses a remote store
    existing = adapted_info(store)
    if existing is None:
        raise InputError(folder, "no adapted weights in this store: nothing to undo")
    return existing


def undo_adapt(store: str, run_id: str | None = None) -> StageResult:
    """Drop the store's adapted weights and the map kept before them; its provenance first (the weights it
    invalidates), then the groups. Refused in one line when the store has no adapted weights (`undoable`)."""
    started, prov_started = time.perf_counter(), now_iso()
    existing = undoable(store)
    record = StageRecord("adapt", store, {"undo": True, "weights_sha256": existing["sha256"]}, run_id=run_id,
                         started=prov_started)
    record.invalidate(marker_refs(existing))
    prov = record.write()
    for name in (partial_name(WEIGHTS_GROUP), WEIGHTS_GROUP, partial_name(BEFORE_ADAPT), BEFORE_ADAPT):
        remove(store, name)
    summary = {"undone": existing["sha256"], "base": existing.get("base"),
               "adapted_classes": existing.get("summary", {}).get("adapted_classes", [])}
    return StageResult("adapt", store, False, "undo", {}, summary, join(store, prov), time.perf_counter() - started)
