"""The review page in a real browser (headless Chromium over DevTools): load, zoom, toggle the overlay, paint
a stroke, save; mask_edited/ must then differ from the detected map exactly under the stroke."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import uvicorn
import zarr
from cdp import Browser, chromium_path
from review_store import HEIGHT, WIDTH, damage_labels, make_store, write_damage

from pipeline.io.store import group_info
from pipeline.review.app import create_app

# ~14 s on 2 cores (chromium's start and the tiles): under the 20 s a test may take before it is marked slow
pytestmark = pytest.mark.skipif(chromium_path() is None, reason="no chromium (apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def served(tmp_path: Path):
    store = make_store(tmp_path)
    shutil.copytree(Path(store) / "scan", Path(store) / "restored")  # an "after" image for the swipe
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(store), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    browser = Browser(tmp_path / "profile")
    yield store, f"http://127.0.0.1:{port}/", browser
    browser.close()
    server.should_exit = True
    thread.join(10)


def _distance_to_polyline(points: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    best = np.full(ys.shape, np.inf)
    segments = list(zip(points[:-1], points[1:], strict=False)) or [(points[0], points[0])]
    for (ax, ay), (bx, by) in segments:
        dx, dy = bx - ax, by - ay
        t = np.clip(((xs - ax) * dx + (ys - ay) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
        best = np.minimum(best, np.hypot(xs - (ax + t * dx), ys - (ay + t * dy)))
    return best


def test_paint_a_stroke_and_save_it_in_the_browser(served) -> None:
    store, url, browser = served
    browser.send("Page.navigate", url=url)
    browser.wait_for("window.reviewReady === true")
    browser.wait_for("review.before.world.getItemCount() === 4 && "  # scan, restored, 2 overlays
                     "[...Array(4).keys()].every(i => review.before.world.getItemAt(i).getFullyLoaded())")
    assert "Retouch review" in browser.js("document.title")
    rect = browser.js("(() => { const r = document.getElementById('before').getBoundingClientRect();"
                      " return [r.left, r.top, r.width, r.height]; })()")
    cx, cy = rect[0] + rect[2] / 2, rect[1] + rect[3] / 2
    zoom = browser.js("review.before.viewport.getZoom()")
    for _ in range(3):  # zoom in with the wheel (x 1.2 a notch; OpenSeadragon drops notches < 50 ms apart)
        browser.mouse("mouseWheel", cx, cy, deltaX=0, deltaY=-120)
        time.sleep(0.2)
    browser.wait_for(f"review.before.viewport.getZoom(true) > {zoom} * 1.5")
    browser.wait_for("Math.abs(review.after.viewport.getZoom() - review.before.viewport.getZoom()) < 1e-6")

    browser.js("document.getElementById('show-craquelure').click()")  # overlay off, then on again
    assert browser.js("review.state.overlays[1].getOpacity()") == 0
    browser.js("document.getElementById('show-craquelure').click()")
    assert browser.js("review.state.overlays[1].getOpacity()") > 0

    browser.js("(() => { for (const [id, v] of [['tool', 'brush'], ['class', '2']]) { const el ="
               " document.getElementById(id); el.value = v; el.dispatchEvent(new Event('change')); } })()")
    path = [(cx - 120, cy - 40), (cx - 40, cy - 10), (cx + 60, cy + 20), (cx + 140, cy + 5)]
    browser.mouse("mouseMoved", *path[0])
    browser.mouse("mousePressed", *path[0], buttons=1)
    for (x0, y0), (x1, y1) in zip(path, path[1:], strict=False):
        for f in (0.25, 0.5, 0.75, 1.0):  # intermediate positions, as a hand gives them
            browser.mouse("mouseMoved", x0 + f * (x1 - x0), y0 + f * (y1 - y0), buttons=1)
    browser.mouse("mouseReleased", *path[-1], buttons=1)
    strokes = browser.wait_for("review.state.strokes.length === 1 && review.state.strokes")
    stroke = strokes[0]
    assert stroke["value"] == 2 and len(stroke["points"]) >= 2 and stroke["radius"] > 0.5
    browser.js("document.getElementById('save').click()")
    browser.wait_for("document.getElementById('status').textContent.startsWith('saved')")
    if os.environ.get("REVIEW_SCREENSHOT"):
        browser.wait_for("[...Array(review.before.world.getItemCount()).keys()]"
                         ".every(i => review.before.world.getItemAt(i).getFullyLoaded())")
        browser.screenshot(Path(os.environ["REVIEW_SCREENSHOT"]))

    edited = zarr.open_group(store, mode="r", path="mask_edited")["0"][0]
    before = damage_labels()
    changed = edited != before
    assert changed.sum() > 100 and (edited[changed] == 2).all()
    # exactly under the stroke: every pixel whose centre is within the brush radius of the path the page sent
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH] + 0.5
    covered = _distance_to_polyline(np.asarray(stroke["points"]), ys, xs) <= stroke["radius"]
    np.testing.assert_array_equal(changed, covered & (before != 2))
    assert group_info(store, "damage")["digests"]["labels/0"] != group_info(store, "mask_edited")["digests"]["0"]


def test_the_page_shows_what_adapt_changed(served) -> None:
    from pipeline.stages.adapt_before import keep_detection_before

    store, url, browser = served
    keep_detection_before(store)  # as adapt keeps it, then its detection replaces the map
    now = damage_labels()
    now[40:60, 40:70] = 2
    now[100, 50:200] = 0
    write_damage(store, now)
    restored = zarr.open_group(store, mode="r+", path="restored")  # as detect marks it after a new map
    restored.attrs["retouch"] = {**restored.attrs["retouch"], "stale": {"reason": "damage/ was recomputed"}}
    browser.send("Page.navigate", url=url)
    browser.wait_for("window.reviewReady === true")
    assert "stale" in browser.js("document.getElementById('caption-after').textContent")
    assert "changed by adapt" in browser.js("document.getElementById('map').textContent")
    assert browser.js("document.getElementById('legend-removed').hidden")
    browser.js("review.setMap('adapt_changes')")
    browser.wait_for("Object.keys(review.state.overlays).length === 3 && "
                     "Object.values(review.state.overlays).every(item => item.getFullyLoaded())")
    assert not browser.js("document.getElementById('legend-removed').hidden")
    assert browser.js("review.state.overlays.removed.getOpacity()") > 0
    browser.js("document.getElementById('show-removed').click()")
    assert browser.js("review.state.overlays.removed.getOpacity()") == 0
    assert browser.js("review.state.overlays[2].getOpacity()") > 0  # the other kinds keep their own toggles


def test_the_page_warns_of_a_scan_finer_than_the_detector_learned(served,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.stages.detect as detect_stage

    _, url, browser = served
    monkeypatch.setattr(detect_stage, "TRAINED_SIDE", 300)  # the 700-px store is then "2.3 times" as large
    browser.send("Page.navigate", url=url)
    browser.wait_for("window.reviewReady === true")
    assert browser.js("document.getElementById('status').className") == "warn"
    assert browser.js("document.getElementById('status').textContent").startswith(
        "warning: this scan is 700 px across, 2.3 times the paintings the detector learned on")


def test_the_exported_deep_zoom_page_works_from_file(tmp_path: Path) -> None:
    """The export's static IIIF tiles and its before/after block, opened from file:// with no server: every
    tile OpenSeadragon asks for exists (no failed load) at the whole view and zoomed in; swipe and overlay."""
    from pipeline.stages.iiif_static import deep_zoom_section, write_static_iiif

    store = make_store(tmp_path)
    out = tmp_path / "export"
    out.mkdir()
    infos = {name: write_static_iiif(zarr.open_group(store, mode="r", path=path), out, name, tile=128,
                                     overlay=name == "damage")
             for name, path in (("scan", "scan"), ("restored", "scan"), ("damage", "scan/labels/damage"))}
    (out / "page.html").write_text(f"<!doctype html><html><body>{deep_zoom_section(infos, out)}</body></html>")
    browser = Browser(tmp_path / "profile")
    try:
        browser.send("Page.navigate", url=(out / "page.html").as_uri())
        browser.wait_for("typeof A === 'object' && typeof items === 'object'")
        browser.js("window.fails = 0; for (const v of [A, B]) v.addHandler('tile-load-failed', () => fails++); 0")
        loaded = "Object.keys(items).length === 4 && Object.values(items).every(i => i.getFullyLoaded())"
        browser.wait_for(loaded)
        browser.js("A.viewport.zoomTo(6, null, true); 0")
        time.sleep(0.5)
        browser.wait_for(loaded)
        assert browser.js("fails") == 0 and browser.js("B.viewport.getZoom()") == 6
        browser.js("document.getElementById('dz-swipe').click(); 0")
        assert browser.js("items.restoredA.getOpacity()") == 1 and browser.js("items.damageA.getOpacity()") > 0
    finally:
        browser.close()
