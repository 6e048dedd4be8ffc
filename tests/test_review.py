"""The review server: IIIF Image API 3 from the store's pyramids, and saving brush strokes (mask_edited, scribbles)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from PIL import Image
from review_store import HEIGHT, WIDTH, damage_labels, make_store, write_damage
from starlette.testclient import TestClient

from pipeline.io.store import downsample2, group_info
from pipeline.review.app import create_app
from pipeline.review.edits import Stroke, stroke_coverage
from pipeline.review.iiif import IIIFError, Request, choose_level, parse_region, parse_size
from pipeline.review.images import read_window


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_store(tmp_path_factory.mktemp("review"))


@pytest.fixture()
def client(store: str) -> TestClient:
    return TestClient(create_app(store))


def _image(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)))


def test_info_json_describes_the_pyramid(client: TestClient) -> None:
    info = client.get("/iiif/scan/info.json").json()
    assert info["type"] == "ImageService3" and info["profile"] == "level1"
    assert info["protocol"] == "http://iiif.io/api/image"
    assert info["id"].endswith("/iiif/scan")
    assert (info["width"], info["height"]) == (WIDTH, HEIGHT)
    assert info["tiles"][0]["scaleFactors"] == [1, 2, 4, 8]
    assert {"width": 88, "height": 63} in info["sizes"] and {"width": WIDTH, "height": HEIGHT} in info["sizes"]
    assert client.get("/iiif/damage/info.json").json()["preferredFormats"] == ["png"]
    assert client.get("/iiif/nothing/info.json").status_code == 404


def test_sixteen_bit_scan_is_shown_in_eight_bits(client: TestClient) -> None:
    pixels = _image(client.get("/iiif/scan/full/max/0/default.png"))
    assert pixels.shape == (HEIGHT, WIDTH, 3) and pixels.dtype == np.uint8
    assert (pixels[:, :, 0] == 255).all() and pixels[:, :, 1].max() > 200 and pixels[:, :, 1].min() < 50


def test_region_and_size_arithmetic_at_the_borders() -> None:
    assert parse_region("full", WIDTH, HEIGHT) == (0, 0, WIDTH, HEIGHT)
    assert parse_region("600,400,200,200", WIDTH, HEIGHT) == (600, 400, 100, 100)  # clipped at the border
    assert parse_region("pct:50,50,100,100", WIDTH, HEIGHT) == (350, 250, 350, 250)
    assert parse_region("square", WIDTH, HEIGHT) == (100, 0, 500, 500)
    assert parse_size("50,", 100, 100) == (50, 50)
    assert parse_size(",25", 100, 50) == (50, 25)
    assert parse_size("pct:50", 700, 500) == (350, 250)
    assert parse_size("!100,100", 700, 500) == (100, 71)
    assert parse_size("max", 700, 500) == (700, 500)
    assert parse_size("^1400,", 700, 500) == (1400, 1000)
    for region in ("700,0,10,10", "0,0,0,10", "a,b,c,d", "pct:x"):
        with pytest.raises(IIIFError):
            parse_region(region, WIDTH, HEIGHT)
    for size in ("800,", "0,", ",", "pct:0", "!100,", "big", "^9000,"):
        with pytest.raises(IIIFError):
            parse_size(size, 700, 500)


def test_border_tile_has_the_clipped_size(client: TestClient) -> None:
    assert _image(client.get("/iiif/scan/512,256,512,512/94,/0/default.png")).shape == (122, 94, 3)
    assert _image(client.get("/iiif/damage/512,256,512,512/94,/0/default.png")).shape == (122, 94, 4)


def test_bad_requests_are_answered_400_with_the_reason(client: TestClient) -> None:
    cases = {"full/max/90/default.jpg": "rotation", "full/max/0/gray.jpg": "quality",
             "full/max/0/default.gif": "format", "full/9999,/0/default.jpg": "larger than the region",
             "800,0,10,10/max/0/default.jpg": "outside", "full/abc/0/default.jpg": "size"}
    for path, reason in cases.items():
        response = client.get(f"/iiif/scan/{path}")
        assert response.status_code == 400 and reason in response.text, (path, response.text)


def test_zoomed_out_requests_read_a_coarse_level_only(client: TestClient) -> None:
    source = client.app.state.images.get("scan")
    scales = list(source.scales)
    request = Request(0, 0, WIDTH, HEIGHT, 88, 63, "default", "jpg")
    assert choose_level(scales, request) == 3
    assert choose_level(scales, Request(0, 0, 512, 512, 200, 200, "default", "jpg")) == 1  # 2.56 -> factor 2
    assert choose_level(scales, Request(0, 0, 512, 512, 512, 512, "default", "jpg")) == 0
    for out in (88, 175, 300, 700):  # the window read is never more than twice the output per side
        block, _ = read_window(source, Request(0, 0, WIDTH, HEIGHT, out, round(out * HEIGHT / WIDTH), "d", "jpg"))
        assert block.shape[2] <= 2 * out


def test_damage_overlay_is_red_and_cyan_on_transparent(client: TestClient) -> None:
    rgba = _image(client.get("/iiif/damage/full/max/0/default.png"))
    assert tuple(rgba[100, 300]) == (230, 40, 40, 255) and tuple(rgba[320, 320]) == (40, 210, 230, 255)
    assert rgba[200, 200, 3] == 0
    only_loss = _image(client.get("/iiif/damage-paint_loss/full/max/0/default.png"))
    assert only_loss[100, 300, 3] == 0 and only_loss[320, 320, 3] == 255
    small = _image(client.get("/iiif/damage/full/88,/0/default.png"))  # a 1-px crack survives downsampling
    assert (small[:, :, 3] > 0).sum(axis=1).max() >= 70


def test_adapt_changes_show_what_the_detection_gained_and_lost_since_adapt_fitted(tmp_path: Path) -> None:
    from pipeline.stages.adapt_before import BEFORE_ADAPT, keep_detection_before

    store = make_store(tmp_path)
    client = TestClient(create_app(store))
    assert "adapt_changes" not in client.get("/api/meta").json()["images"]  # nothing to compare yet
    kept = keep_detection_before(store)  # what adapt does before detection runs with its weights
    assert kept["labels_digest"] == group_info(store, "damage")["digests"]["labels/0"]
    np.testing.assert_array_equal(zarr.open_group(store, mode="r", path=BEFORE_ADAPT)["0"][0], damage_labels())
    now = damage_labels()
    now[40:60, 40:70] = 2  # a loss the adapted detector adds
    now[100, 50:200] = 0  # part of the crack it no longer flags
    write_damage(store, now)
    assert "adapt_changes" in client.get("/api/meta").json()["images"]  # a page loaded now offers the comparison
    rgba = _image(client.get("/iiif/adapt_changes/full/max/0/default.png"))
    assert tuple(rgba[50, 50]) == (40, 210, 230, 255)  # added: paint loss, cyan
    assert tuple(rgba[100, 100]) == (240, 200, 40, 255)  # removed: yellow
    assert rgba[100, 300, 3] == 0 and rgba[320, 320, 3] == 0  # flagged before and now: not a change
    assert rgba[200, 200, 3] == 0


def _save(client: TestClient, target: str, strokes: list[dict], version: str | None = None):
    version = version or client.get("/api/meta").json()["versions"][target]
    return client.post("/api/save", json={"target": target, "base_version": version, "strokes": strokes})


def test_save_writes_mask_edited_exactly_under_the_stroke(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    client = TestClient(create_app(store))
    damage_before = group_info(store, "damage")["digests"]["labels/0"]
    stroke = {"value": 2, "radius": 6, "points": [[100, 200], [260, 230], [400, 205]]}
    response = _save(client, "mask_edited", [stroke, {"value": 1, "erase": True, "radius": 20, "points": [[600, 100]]}])
    assert response.status_code == 200, response.text
    edited = zarr.open_group(store, mode="r", path="mask_edited")
    expected = damage_labels()
    expected[stroke_coverage(Stroke(2, False, 6, tuple(map(tuple, stroke["points"]))), 0, HEIGHT, 0, WIDTH)] = 2
    erased = stroke_coverage(Stroke(1, True, 20, ((600.0, 100.0),)), 0, HEIGHT, 0, WIDTH)
    expected[erased & (expected == 1)] = 0
    np.testing.assert_array_equal(edited["0"][0], expected)
    assert expected[100, 590:611].max() == 0 and expected[100, 570] == 1  # the eraser took only its disc
    level = expected[None]
    for path in ("1", "2", "3"):  # the pyramid is rebuilt under the strokes as the stages build it
        level = downsample2(level, "max")
        np.testing.assert_array_equal(edited[path][:], level)
    assert group_info(store, "damage")["digests"]["labels/0"] == damage_before  # damage/ untouched
    marker = group_info(store, "mask_edited")
    assert marker["base_digest"] == damage_before and marker["base"] == "scan/labels/damage"
    assert marker["pixels_changed"]["paint_loss"]["added"] == int((expected == 2).sum() - (damage_labels() == 2).sum())
    assert marker["pixels_changed"]["craquelure"]["removed"] > 30
    assert (Path(store) / marker["provenance"]).is_file()  # relative to the store
    assert _image(client.get("/iiif/mask_edited/full/max/0/default.png"))[230, 260, 3] == 255


def test_a_save_from_an_old_version_is_refused_409(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    client = TestClient(create_app(store))
    start = client.get("/api/meta").json()["versions"]["mask_edited"]
    assert _save(client, "mask_edited", [{"value": 1, "radius": 3, "points": [[10, 10]]}], start).status_code == 200
    first = zarr.open_group(store, mode="r", path="mask_edited")["0"][:]
    second = _save(client, "mask_edited", [{"value": 2, "radius": 3, "points": [[50, 50]]}], start)
    assert second.status_code == 409 and "changed since" in second.text
    np.testing.assert_array_equal(zarr.open_group(store, mode="r", path="mask_edited")["0"][:], first)
    forged = client.post("/api/save", content=b'{"target": "mask_edited"}', headers={"content-type": "text/plain"})
    assert forged.status_code == 415  # what another site's page could send without a preflight
    bad = _save(client, "mask_edited", [{"value": 3, "radius": 3, "points": [[5, 5]]}])
    assert bad.status_code == 400 and "value 3" in bad.text


@pytest.mark.parametrize(("stroke", "reason"), [
    ({"value": 1, "radius": 3, "points": [[float("nan"), 5]]}, "finite"),
    ({"value": 1, "radius": 3, "points": [[5, float("inf")]]}, "finite"),
    ({"value": 1, "radius": float("nan"), "points": [[5, 5]]}, "finite"),
    ({"value": 1.7, "radius": 3, "points": [[5, 5]]}, "value 1.7"),
    ({"value": True, "radius": 3, "points": [[5, 5]]}, "value True"),
])
def test_a_stroke_of_non_numbers_is_refused_400_and_nothing_saved(tmp_path: Path, stroke: dict, reason: str) -> None:
    # NaN and Infinity are valid to Python's JSON reader: they ended in a 500 from deep in the save
    store = make_store(tmp_path)
    client = TestClient(create_app(store))
    body = {"target": "scribbles", "base_version": client.get("/api/meta").json()["versions"]["scribbles"],
            "strokes": [stroke]}
    response = client.post("/api/save", content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code == 400 and reason in response.text, response.text
    assert group_info(store, "scribbles") is None


def test_scribbles_hold_the_adapt_labels(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    client = TestClient(create_app(store))
    strokes = [{"value": 3, "radius": 2, "points": [[20, 400], [200, 400]]},
               {"value": 1, "radius": 1, "points": [[300, 100], [320, 100]]}]
    assert _save(client, "scribbles", strokes).status_code == 200
    scribbles = zarr.open_group(store, mode="r", path="scribbles")["0"][0]
    assert set(np.unique(scribbles)) == {0, 1, 3} and scribbles[400, 100] == 3 and scribbles[100, 310] == 1
    assert group_info(store, "mask_edited") is None


def test_tiles_of_a_gigapixel_store_stay_within_bounded_memory(tmp_path: Path) -> None:
    """A 40000 x 40000 RGB store (4.8 GB at level 0, unwritten chunks read as fill): a whole-image view and a
    deep-zoom tile each allocate a few MB, because each reads one window of the level that fits."""
    import tracemalloc

    from pipeline.io.store import create_pyramid, level_shapes, mark_complete

    store = str(tmp_path / "big.zarr")
    root = zarr.open_group(store, mode="w")
    levels = level_shapes(40_000, 40_000, 3)
    mark_complete(create_pyramid(root, "scan", levels, np.uint8, 1024), {"digests": {"0": "x"}})
    client = TestClient(create_app(store))
    assert client.get("/iiif/scan/info.json").json()["tiles"][0]["scaleFactors"][-1] == 64
    for path in ("full/1024,/0/default.jpg", "20000,20000,512,512/512,/0/default.jpg",
                 "pct:10,10,50,50/1024,/0/default.jpg"):
        tracemalloc.start()
        response = client.get(f"/iiif/scan/{path}")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert response.status_code == 200, response.text
        assert peak < 64 * 2**20, (path, peak)


def test_review_command_refuses_a_store_without_a_scan_in_one_line(tmp_path: Path, refused_in_one_line) -> None:
    refused_in_one_line(["review", str(tmp_path / "nothing.zarr")],
                        "nothing.zarr: no such store (ingest a scan into it first")


def test_provenance_documents_are_served_and_nothing_else(client: TestClient, store: str) -> None:
    documents = client.get("/api/meta").json()["runs"]
    name = documents[0]["document"]
    assert client.get(f"/provenance/{name}").json()["activity"]
    assert client.get("/provenance/..%2Fzarr.json").status_code == 404
    assert client.get("/provenance/zarr.json").status_code == 404


def test_meta_names_the_catalog_entry_of_the_ingested_file(store: str, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    source = Path(store).parent / "scan.tif"
    catalog.write_text(f"scans:\n  - {{id: test-scan, source: {source}, title: A Title, creator: A Painter, "
                       "date: '1630', institution: A Museum, accession_number: '1.2.3', licence: CC0}\n")
    meta = TestClient(create_app(store, catalog)).get("/api/meta").json()
    assert meta["catalog"]["title"] == "A Title" and meta["catalog"]["accession_number"] == "1.2.3"
    assert meta["stages"]["damage"]["weights"] == "test" and meta["runs"][0]["stage"] == "ingest"
    assert TestClient(create_app(store)).get("/api/meta").json()["catalog"] is None  # not in the bundled one


def test_static_iiif_tiles_are_what_the_server_answers_for_the_same_urls(store: str, client: TestClient,
                                                                        tmp_path: Path) -> None:
    from pipeline.stages.iiif_static import write_static_iiif

    damage = zarr.open_group(store, mode="r", path="scan/labels/damage")
    info = write_static_iiif(damage, tmp_path, "damage", tile=128, overlay=True)
    assert info["profile"] == "level0" and info["id"] == "iiif/damage"
    assert info["tiles"][0]["scaleFactors"] == [1, 2, 4, 8]
    tiles = sorted((tmp_path / "iiif" / "damage").glob("*/*/0/default.png"))
    assert len(tiles) == 24 + 6 + 2 + 1  # 6x4 at full size, 3x2, 2x1, and one whole image at 88x63
    for path in tiles:
        region, size = path.parts[-4], path.parts[-3]
        served = _image(client.get(f"/iiif/damage/{region}/{size}/0/default.png"))
        np.testing.assert_array_equal(np.asarray(Image.open(path)), served, err_msg=str(path))


def test_meta_carries_detect_s_warning_of_a_scan_finer_than_the_detector_learned(
        store: str, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page shows (in its status line, as a warning) what `retouch detect` warned of: a scan at least twice as
    large as the paintings the detector learned on, detected at scale 1."""
    import pipeline.stages.detect as detect_stage

    assert client.get("/api/meta").json()["warnings"] == []  # 700 px across: no warning
    monkeypatch.setattr(detect_stage, "TRAINED_SIDE", 300)  # as if the detector had learned on 300-px paintings
    warnings = client.get("/api/meta").json()["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith("this scan is 700 px across, 2.3 times")


def test_a_chunk_that_cannot_be_decoded_is_answered_500_with_the_reason(tmp_path: Path) -> None:
    # a corrupt chunk ended in a bare "Internal Server Error" and a traceback in the server's log
    store = make_store(tmp_path)
    client = TestClient(create_app(store))
    chunk = next(p for p in sorted((Path(store) / "scan" / "0").rglob("*")) if p.is_file() and p.name != "zarr.json")
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    response = client.get("/iiif/scan/full/max/0/default.png")
    assert response.status_code == 500 and "cannot be read" in response.text and "retouch verify" in response.text
