"""Detect, inpaint and export over a store: outputs, composites, skipping, resume after kill -9, locking."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from pipeline.engine.runner import EngineConfig
from pipeline.engine.tiling import read_with_halo, regions_with_coverage
from pipeline.errors import InputError
from pipeline.io.locking import StoreBusyError, store_lock
from pipeline.io.store import StoreError, group_info
from pipeline.stages.detect import DetectConfig, detect
from pipeline.stages.export import export
from pipeline.stages.ingest import IngestConfig, ingest
from pipeline.stages.inpaint import dilate_hole
from pipeline.stages.inpaint_stage import InpaintStageConfig, inpaint_store

QUIET = EngineConfig(workers=2, progress=False)
REPO = Path(__file__).resolve().parents[1]


def damaged_scan(shape: tuple[int, int], dtype: type, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    from lab.synthesis.synthetic_damage import synthesize_damage

    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]] / max(shape)
    base = np.stack([0.5 + 0.3 * np.sin(5 * yy + c) * np.cos(4 * xx) for c in range(3)], axis=-1)
    clean = np.clip((base + rng.normal(0, 0.02, base.shape)) * top, 0, top).astype(dtype)
    return synthesize_damage(clean, seed=seed)


def make_store(tmp_path: Path, image: np.ndarray, chunk: int = 128, name: str = "s") -> str:
    src = tmp_path / f"{name}.tif"
    tifffile.imwrite(src, image, photometric="rgb", tile=(64, 64), iccprofile=b"\x00\x00\x01\x00icc" * 20)
    store = str(tmp_path / f"{name}.zarr")
    ingest(src, store, IngestConfig(chunk=chunk, top_level_max_side=128), QUIET)
    return store


def test_read_with_halo_takes_neighbours_inside_and_reflects_at_border() -> None:
    array = np.arange(3 * 10 * 12, dtype=np.uint16).reshape(3, 10, 12)
    inner = read_with_halo(array, (4, 8, 4, 8), 2)
    assert np.array_equal(inner, array[:, 2:10, 2:10])
    corner = read_with_halo(array, (0, 4, 0, 4), 2)
    assert np.array_equal(corner, np.pad(array[:, :6, :6], ((0, 0), (2, 0), (2, 0)), mode="reflect"))
    tiny = read_with_halo(array[:, :3, :3], (0, 3, 0, 3), 5)  # halo larger than the image
    assert tiny.shape == (3, 13, 13)


def test_coverage_selects_exactly_the_chunks_holding_damage() -> None:
    coverage = np.zeros((8, 8), np.uint8)  # a level downsampled by 16 of a 128x128 mask, chunks of 32
    coverage[1, 1] = 1
    coverage[5, 7] = 2
    hit, miss = regions_with_coverage(coverage, 16, (1, 128, 128), 32)
    assert sorted(hit) == [(0, 32, 0, 32), (64, 96, 96, 128)]
    assert len(miss) == 14


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_restored_equals_scan_outside_mask_bit_for_bit(tmp_path: Path, tiny_weights: Path, dtype: type) -> None:
    image, _ = damaged_scan((300, 260), dtype)
    store = make_store(tmp_path, image)
    detect(store, DetectConfig(tile=256), QUIET)
    result = inpaint_store(store, InpaintStageConfig(tile=128, overlap=32, dilate=2), QUIET)
    root = zarr.open_group(store, mode="r")
    scan, restored = root["scan/0"][:], root["restored/0"][:]
    hole = dilate_hole(root["scan/labels/damage/0"][0] > 0, 2)
    assert restored.dtype == dtype
    assert np.array_equal(scan[:, ~hole], restored[:, ~hole])
    assert result.summary["hole_pixels"] == int((root["scan/labels/damage/0"][0] > 0).sum())
    assert result.summary["pixels_changed"] == int((restored != scan).any(axis=0).sum())
    assert [restored.shape for restored in (root[f"restored/{i}"] for i in range(2))] == [(3, 300, 260),
                                                                                             (3, 150, 130)]


def test_only_damaged_chunks_run_and_clean_chunks_are_copies(tmp_path: Path, tiny_weights: Path) -> None:
    image, _ = damaged_scan((256, 256), np.uint8)
    store = make_store(tmp_path, image, chunk=64)
    mask = np.zeros((256, 256), np.uint8)
    mask[10:20, 10:30] = 255  # one chunk (0, 0) only
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    result = inpaint_store(store, InpaintStageConfig(tile=64, overlap=16, dilate=0, halo=16), QUIET,
                           mask=tmp_path / "mask.tif")
    assert result.summary["chunks_inpainted"] == 1 and result.summary["chunks_copied"] == 15
    root = zarr.open_group(store, mode="r")
    scan, restored = root["scan/0"][:], root["restored/0"][:]
    assert np.array_equal(scan[:, 64:, :], restored[:, 64:, :])
    assert not np.array_equal(scan[:, 10:20, 10:30], restored[:, 10:20, 10:30])


def test_edited_mask_of_wrong_size_is_refused_naming_the_file(tmp_path: Path, tiny_weights: Path) -> None:
    image, _ = damaged_scan((128, 128), np.uint8)
    store = make_store(tmp_path, image)
    tifffile.imwrite(tmp_path / "mask.tif", np.zeros((100, 128), np.uint8))
    with pytest.raises(InputError, match=r"mask\.tif.*scan is 128x128"):
        inpaint_store(store, InpaintStageConfig(), QUIET, mask=tmp_path / "mask.tif")


def test_stage_needs_complete_inputs(tmp_path: Path, tiny_weights: Path) -> None:
    image, _ = damaged_scan((128, 128), np.uint8)
    store = make_store(tmp_path, image)
    with pytest.raises(StoreError, match=f"damage: not there yet: run `retouch detect {store}` first"):
        inpaint_store(store, InpaintStageConfig(), QUIET)
    with pytest.raises(StoreError, match="nothing.zarr: no such store"):
        detect(str(tmp_path / "nothing.zarr"), DetectConfig(), QUIET)


def test_unchanged_stage_is_skipped_and_force_or_new_parameters_recompute(tmp_path: Path,
                                                                          tiny_weights: Path) -> None:
    image, _ = damaged_scan((200, 200), np.uint8)
    store = make_store(tmp_path, image)
    first = detect(store, DetectConfig(tile=256), QUIET)
    again = detect(store, DetectConfig(tile=256), QUIET)
    assert again.skipped and again.key == first.key and again.digests == first.digests
    forced = detect(store, DetectConfig(tile=256), QUIET, force=True)
    assert not forced.skipped and forced.digests == first.digests
    other = detect(store, DetectConfig(tile=256, threshold=0.3), QUIET)
    assert not other.skipped and other.key != first.key
    views = detect(store, DetectConfig(tile=256, tta=4), QUIET)
    assert not views.skipped and views.key not in (first.key, other.key) and views.summary["tta"] == 4
    assert first.summary["tta"] == 2  # the default: the tile and its mirror
    single = detect(store, DetectConfig(tile=256, tta=1), QUIET)
    assert not single.skipped and single.summary["tta"] == 1 and single.key != first.key


def test_export_writes_pyramidal_tiff_with_icc_previews_and_summary(tmp_path: Path, tiny_weights: Path) -> None:
    image, _ = damaged_scan((300, 260), np.uint8)
    store = make_store(tmp_path, image)
    detect(store, DetectConfig(tile=256), QUIET)
    inpaint_store(store, InpaintStageConfig(tile=128, overlap=32), QUIET)
    result = export(store, tmp_path / "out")
    with tifffile.TiffFile(tmp_path / "out" / "restored.tif") as tif:
        series = tif.series[0]
        assert series.shape == (300, 260, 3) and len(series.levels) == 3 and tif.pages[0].is_tiled
        assert tif.pages[0].tags["InterColorProfile"].value == b"\x00\x00\x01\x00icc" * 20
        restored = series.asarray()
        description = tif.pages[0].description
        xmp = tif.pages[0].tags["XMP"].value
        assert len(tif.pages) == 3 and not tif.pages[0].subifds  # levels as top-level IFDs, not SubIFDs
    assert np.array_equal(restored, np.moveaxis(zarr.open_group(store, mode="r")["restored/0"][:], 0, -1))
    scan_sha = group_info(store, "scan")["source_sha256"]
    assert description.startswith("Digital restoration made by Retouch") and f"source_sha256: {scan_sha}" in description
    assert b"<dc:source>sha256:" + scan_sha.encode() in bytes(xmp) and b"inpainter-pconv" in bytes(xmp)
    import openslide

    with openslide.OpenSlide(tmp_path / "out" / "restored.tif") as slide:  # a pyramid to slide viewers too
        assert slide.level_count == 3 and slide.level_dimensions[0] == (260, 300)
        assert slide.properties["tiff.ImageDescription"] == description
    if shutil.which("vipsheader"):  # libvips (Debian libvips-tools) sees the three levels as pages
        pages = subprocess.run(["vipsheader", "-f", "n-pages", str(tmp_path / "out" / "restored.tif")],
                               capture_output=True, text=True, check=True).stdout
        assert pages.strip() == "3"
    for name in ("scan", "restored", "damage"):  # static IIIF level-0 tiles beside the page
        info = json.loads((tmp_path / "out" / "iiif" / name / "info.json").read_text())
        assert (info["width"], info["height"], info["profile"]) == (260, 300, "level0")
        fmt = "png" if name == "damage" else "jpg"  # 300 x 260 < one 512 tile: each level is one whole image
        assert (tmp_path / "out" / "iiif" / name / "full" / "max" / "0" / f"default.{fmt}").is_file()
        assert (tmp_path / "out" / "iiif" / name / "full" / "130,150" / "0" / f"default.{fmt}").is_file()
    assert "openseadragon.min.js" in (tmp_path / "out" / "before-after.html").read_text()
    assert (tmp_path / "out" / "openseadragon-LICENSE.txt").is_file()
    from PIL import Image

    for name in ("preview-scan.png", "preview-overlay.png", "preview-restored.png"):
        with Image.open(tmp_path / "out" / name) as preview:
            assert preview.info["icc_profile"] == b"\x00\x00\x01\x00icc" * 20
    for name in ("preview-scan.png", "preview-overlay.png", "preview-restored.png", "before-after.html"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary["damage"]["area_percent"]) == {"craquelure", "paint_loss"}
    assert summary["files_sha256"] == result.digests
    assert export(store, tmp_path / "out").skipped


def test_a_second_writer_of_a_store_fails_clearly(tmp_path: Path) -> None:
    store = str(tmp_path / "s.zarr")
    code = f"from pipeline.io.locking import store_lock\nimport time\nwith store_lock({store!r}):\n    time.sleep(30)\n"
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
    try:
        deadline = time.time() + 20
        while not Path(f"{store}.lock").exists() or not Path(f"{store}.lock").read_text():
            assert time.time() < deadline
            time.sleep(0.1)
        with pytest.raises(StoreBusyError, match="another Retouch run is writing this store"):
            with store_lock(store, timeout=0.5, poll=0.1):
                pass
    finally:
        holder.kill()
        holder.wait()
    with store_lock(store, timeout=5):  # the OS released the dead holder's lock
        pass


KILLABLE = """
import sys
from pipeline.stages.detect import DetectConfig, detect
from pipeline.engine.runner import EngineConfig
detect(sys.argv[1], DetectConfig(tile=96, overlap=0, halo=16), EngineConfig(workers=1, progress=False))
"""


def test_detect_killed_halfway_resumes_missing_chunks_to_the_same_bytes(tmp_path: Path, tiny_weights: Path) -> None:
    image, _ = damaged_scan((256, 320), np.uint8)
    store = make_store(tmp_path, image, chunk=64, name="killed")
    clean_store = make_store(tmp_path, image, chunk=64, name="clean")
    assert zarr.open_array(f"{store}/scan/0", mode="r").shards == (3, 256, 256)  # resume works shard by shard
    config = DetectConfig(tile=96, overlap=0, halo=16)  # one model pass per 64-px chunk with its halo
    one = EngineConfig(workers=1, progress=False)
    reference = detect(clean_store, config, one)
    env = {**os.environ, "RETOUCH_WEIGHTS_MANIFEST": str(tiny_weights)}
    child = subprocess.Popen([sys.executable, "-c", KILLABLE, store], cwd=REPO, env=env)
    ledger = Path(store) / "_progress" / "detect"
    deadline = time.time() + 120
    while len(list(ledger.glob("0-*.done"))) < 4:
        assert child.poll() is None, "the stage finished before it could be killed; use a larger image"
        assert time.time() < deadline
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert group_info(store, "damage") is None  # a killed stage never looks complete
    resumed = detect(store, config, one)
    assert resumed.chunks_resumed >= 4 and resumed.chunks_run + resumed.chunks_resumed == 20
    assert resumed.digests == reference.digests


def test_dropping_small_crack_fragments_does_not_depend_on_the_chunking(tmp_path: Path, tiny_weights: Path) -> None:
    """Each chunk judges a fragment with its halo: the stage's labels equal the filter run on the whole stored map."""
    from pipeline.stages.detect import probabilities_and_labels

    image, _ = damaged_scan((300, 260), np.uint8)
    store = make_store(tmp_path, image)
    detect(store, DetectConfig(tile=256, min_crack=16, threshold=0.45), QUIET)
    root = zarr.open_group(store, mode="r")
    prob8 = root["damage/probabilities/0"][:]
    (_, whole), _ = probabilities_and_labels(prob8.astype(np.float32) / 255.0, 0.45, 0, min_crack=16)
    labels = root["scan/labels/damage/0"][:]
    (_, unfiltered), _ = probabilities_and_labels(prob8.astype(np.float32) / 255.0, 0.45, 0)
    assert (unfiltered == 1).sum() > (whole == 1).sum() > 0  # there were fragments to drop, and cracks to keep
    assert np.array_equal(labels, whole)


def lines_scan() -> tuple[np.ndarray, np.ndarray]:
    """A light scan with dark lines (uint8 RGB) and the lines: one long straight, one short, a ring."""
    from skimage.draw import circle_perimeter, line

    lines = np.zeros((300, 260), bool)
    lines[line(10, 10, 280, 240)] = True  # crosses many chunks: straight
    lines[line(40, 200, 40, 250)] = True  # 51 px: too short
    lines[circle_perimeter(200, 60, 40)] = True  # a ring: not straight
    image = np.full((300, 260, 3), 230, np.uint8)
    image[lines] = 20
    return image, lines


def dark_is_crack(model, block, **_):  # noqa: ANN001, ANN003, ANN201
    """A detector that marks a block's dark pixels as craquelure."""
    prob = np.zeros((2, *block.shape[:2]), np.float32)
    prob[0] = block.mean(axis=-1) < 128
    return prob


def test_straight_cracks_are_judged_over_the_whole_scan_not_per_chunk(tmp_path: Path, tiny_weights: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """With 64-px chunks the stage's labels are the dark lines less the straight components of the whole map; the
    scratch array is gone from the complete store, and the counts and the pyramid are those of the labels."""
    from pipeline.stages import detect_infer
    from pipeline.stages.straight_cracks import straight_components

    monkeypatch.setattr(detect_infer, "detect_probabilities", dark_is_crack)
    image, lines = lines_scan()
    store = make_store(tmp_path, image, chunk=64)
    result = detect(store, DetectConfig(tile=128, halo=16, straight=60), QUIET)
    labels = zarr.open_array(f"{store}/scan/labels/damage/0", mode="r")[:]
    expected = lines & ~straight_components(lines, 60)
    assert expected.sum() < lines.sum() and np.array_equal(labels[0] == 1, expected)
    assert result.summary["counts"]["craquelure"] == int(expected.sum())
    assert result.summary["straight_dropped"] == {"components": 1, "pixels": int(lines.sum() - expected.sum())}
    assert "labels-before-straight" not in zarr.open_group(f"{store}/damage", mode="r")
    level1 = zarr.open_array(f"{store}/scan/labels/damage/1", mode="r")[0]
    assert not level1[140, 120]  # the straight line's pixels (y 140, x 130) are not in the pyramid either


def test_a_detect_that_fails_in_the_straight_pass_resumes_to_the_same_bytes(tmp_path: Path, tiny_weights: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The pass reads the chunks' labels from a scratch array and writes the label image: failing there, the run
    keeps its chunks and the next one writes the same bytes; without the scratch array it starts afresh."""
    from pipeline.stages import detect_infer, label_passes

    monkeypatch.setattr(detect_infer, "detect_probabilities", dark_is_crack)
    image, _ = lines_scan()
    config = DetectConfig(tile=128, halo=16, straight=60)
    reference = detect(make_store(tmp_path, image, chunk=64, name="clean"), config, QUIET)
    store = make_store(tmp_path, image, chunk=64)
    real = label_passes.detect_label_passes

    def fails(raw, out, *args):  # noqa: ANN001, ANN002, ANN202
        out[:, :64, :] = 1  # half-written
        raise OSError("disk gone")

    monkeypatch.setattr(label_passes, "detect_label_passes", fails)
    with pytest.raises(OSError):
        detect(store, config, QUIET)
    assert group_info(store, "damage") is None
    monkeypatch.setattr(label_passes, "detect_label_passes", real)
    resumed = detect(store, config, QUIET)
    assert (resumed.chunks_resumed, resumed.chunks_run) == (25, 0) and resumed.digests == reference.digests
    with pytest.raises(OSError):  # again, and now the scratch array is lost too
        monkeypatch.setattr(label_passes, "detect_label_passes", fails)
        detect(store, config, QUIET, force=True)
    del zarr.open_group(f"{store}/damage.partial", mode="a")["labels-before-straight"]
    monkeypatch.setattr(label_passes, "detect_label_passes", real)
    afresh = detect(store, config, QUIET, force=True)
    assert (afresh.chunks_resumed, afresh.chunks_run) == (0, 25) and afresh.digests == reference.digests
