"""Re-running inpainting on the corrected map: in place through the stage, and from the page's button."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from review_store import make_store
from starlette.testclient import TestClient

from flows.review import review_jobs
from pipeline.io.store import group_info
from pipeline.review.app import create_app
from pipeline.stages.inpaint_stage import InpaintStageConfig, inpaint_store

STROKE = {"value": 2, "radius": 8, "points": [[150, 420], [260, 440]]}


def _saved_store(tmp_path: Path) -> tuple[str, TestClient]:
    store = make_store(tmp_path)
    client = TestClient(create_app(store, jobs=review_jobs(store)))
    version = client.get("/api/meta").json()["versions"]["mask_edited"]
    saved = client.post("/api/save", json={"target": "mask_edited", "base_version": version, "strokes": [STROKE]})
    assert saved.status_code == 200, saved.text
    return store, client


@pytest.mark.slow  # ~8 s of inpainting on 2 cores
def test_inpaint_uses_the_stores_own_edited_mask_in_place(tmp_path: Path, tiny_weights: Path) -> None:
    store, _ = _saved_store(tmp_path)
    edited_before = group_info(store, "mask_edited")
    mask = zarr.open_group(store, mode="r", path="mask_edited")["0"][0]
    result = inpaint_store(store, InpaintStageConfig(tile=128), mask=Path(store) / "mask_edited")
    assert result.summary["mask"] == "mask_edited"
    assert group_info(store, "mask_edited") == edited_before  # read as is, not rewritten from itself
    restored = group_info(store, "restored")
    assert restored["mask_digest"] == edited_before["digests"]["0"]
    scan = zarr.open_group(store, mode="r", path="scan")["0"][:]
    out = zarr.open_group(store, mode="r", path="restored")["0"][:]
    changed = (scan != out).any(axis=0)
    assert changed[mask > 0].mean() > 0.5  # the holes were filled
    ys, xs = np.nonzero(changed)  # only inside the mask, dilated by the stage's 2 px
    near = np.zeros_like(mask, bool)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            near |= np.roll(np.roll(mask > 0, dy, 0), dx, 1)
    assert near[ys, xs].all()


@pytest.mark.slow
def test_the_page_reruns_inpainting_on_the_edited_map(tmp_path: Path, tiny_weights: Path,
                                                      prefect_harness: None) -> None:
    store, client = _saved_store(tmp_path)
    job = client.post("/api/inpaint", json={}).json()
    assert job["status"] == "running"
    second = client.post("/api/inpaint", json={})  # one at a time
    assert second.status_code == 409 and "already going" in second.text
    deadline = time.time() + 300
    while (state := client.get(f"/api/jobs/{job['id']}").json())["status"] == "running":
        assert time.time() < deadline
        time.sleep(0.5)
    assert state["status"] == "done", state
    assert group_info(store, "restored")["mask"] == "mask_edited"
    assert client.get("/iiif/restored/info.json").status_code == 200


def test_the_page_adapts_the_detector_to_its_saved_scribbles_and_undoes_it(tmp_path: Path, tiny_weights: Path,
                                                             prefect_harness: None) -> None:
    from pipeline.stages.adapt_before import BEFORE_ADAPT
    from pipeline.stages.adapt_weights import adapted_info

    store = make_store(tmp_path)
    client = TestClient(create_app(store, jobs=review_jobs(store)))
    refused = client.post("/api/adapt", json={})
    assert refused.status_code == 409 and "no scribbles/ yet" in refused.text
    detected = group_info(store, "damage")["digests"]["labels/0"]
    version = client.get("/api/meta").json()["versions"]["scribbles"]
    strokes = [{"value": 2, "radius": 3, "points": [[305, 320], [335, 320]]},  # across the review store's loss
               {"value": 3, "radius": 3, "points": [[40, 420], [240, 420]]}]
    saved = client.post("/api/save", json={"target": "scribbles", "base_version": version, "strokes": strokes})
    assert saved.status_code == 200, saved.text
    job = client.post("/api/adapt", json={}).json()
    assert job["status"] == "running" and job["stage"] == "adapt"
    assert client.post("/api/inpaint", json={}).status_code == 409  # one re-run at a time
    deadline = time.time() + 300
    while (state := client.get(f"/api/jobs/{job['id']}").json())["status"] == "running":
        assert time.time() < deadline
        time.sleep(0.5)
    assert state["status"] == "done", state
    assert state["summary"].startswith("adapted paint_loss") and "flagged" in state["summary"]
    assert adapted_info(store) is not None and group_info(store, "damage")["weights"] == "adapted"
    assert group_info(store, BEFORE_ADAPT)["labels_digest"] == detected  # the map the page showed before
    meta = client.get("/api/meta").json()
    assert "adapt_changes" in meta["images"] and meta["versions"]["damage"]
    assert client.get("/iiif/adapt_changes-removed/info.json").status_code == 200
    undo = client.post("/api/undo", json={}).json()  # and back: the adapted weights dropped, the default detects
    while (state := client.get(f"/api/jobs/{undo['id']}").json())["status"] == "running":
        assert time.time() < deadline
        time.sleep(0.5)
    assert state["status"] == "done" and state["summary"].startswith("adapted weights dropped"), state
    assert adapted_info(store) is None and group_info(store, "damage")["weights"] != "adapted"
    assert "adapt_changes" not in client.get("/api/meta").json()["images"]
    again = client.post("/api/undo", json={})
    assert again.status_code == 409 and "nothing to undo" in again.text
