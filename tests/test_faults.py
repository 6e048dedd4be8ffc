"""Fault injection (issue 25): a refused or failed recompute keeps the last good output; extreme masks,
16-bit PNGs, corrupt tiles and chunks, another scan's export folder, stale outputs, lock files."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
import zarr

from models.weights import WeightsError
from pipeline.engine.runner import EngineConfig
from pipeline.errors import InputError
from pipeline.io.locking import store_lock
from pipeline.io.store import DAMAGE_LABELS, StoreError, group_info
from pipeline.stages import detect as detect_module
from pipeline.stages.detect import DEFAULT_WEIGHTS, DetectConfig, detect
from pipeline.stages.export import export
from pipeline.stages.ingest import IngestConfig, ingest
from pipeline.stages.inpaint_stage import InpaintStageConfig, inpaint_store

QUIET = EngineConfig(workers=1, progress=False)
FAST_DETECT = {"tile": 96, "overlap": 0, "halo": 16, "tta": 1}  # one model pass per 64-px chunk
SHAPE = (64, 128)  # two chunks: the machine is shared, tests stay small
FAST_INPAINT = InpaintStageConfig(tile=64, overlap=16, dilate=1, halo=16)


def _image(seed: int = 1, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]] / 128.0
    base = np.stack([0.5 + 0.3 * np.sin(4 * yy + c + seed) * np.cos(3 * xx) for c in range(3)], axis=-1)
    return np.clip((base + rng.normal(0, 0.02, base.shape)) * 255, 0, 255).astype(np.uint8)


def _store(tmp_path: Path, name: str = "s", seed: int = 1, shape: tuple[int, int] = SHAPE) -> str:
    src = tmp_path / f"{name}.tif"
    tifffile.imwrite(src, _image(seed, shape), photometric="rgb")
    store = str(tmp_path / f"{name}.zarr")
    ingest(src, store, IngestConfig(chunk=64, top_level_max_side=64), QUIET)
    return store


def _restored_store(tmp_path: Path, name: str = "s", seed: int = 1) -> str:
    store = _store(tmp_path, name, seed)
    detect(store, DetectConfig(**FAST_DETECT), QUIET)
    inpaint_store(store, FAST_INPAINT, QUIET)
    return store


def _bad_manifest(tiny_weights: Path, tmp_path: Path, stem: str) -> Path:
    """A copy of the tiny weights whose file `stem` no longer matches its sha256."""
    folder = tmp_path / "bad-weights"
    shutil.copytree(tiny_weights.parent, folder)
    weights = folder / f"{stem}.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    return folder / "manifest.json"


def _snapshot(store: str, group: str, array: str) -> tuple[dict, np.ndarray]:
    """The group's marker and the pixels of `array` (the damage labels: the label image `scan/labels/damage`)."""
    path = f"{DAMAGE_LABELS}/0" if (group, array) == ("damage", "labels/0") else f"{group}/{array}"
    return group_info(store, group), zarr.open_group(store, mode="r")[path][:]


def _assert_unchanged(store: str, group: str, array: str, before: tuple[dict, np.ndarray]) -> None:
    info, pixels = _snapshot(store, group, array)
    assert info == before[0] and np.array_equal(pixels, before[1])


def test_recompute_with_bad_weights_keeps_damage_and_restored(tmp_path: Path, tiny_weights: Path) -> None:
    store = _restored_store(tmp_path)
    damage, restored = _snapshot(store, "damage", "labels/0"), _snapshot(store, "restored", "0")
    bad_detector = _bad_manifest(tiny_weights, tmp_path / "d", DEFAULT_WEIGHTS)
    with pytest.raises(WeightsError, match=rf"{DEFAULT_WEIGHTS}\.safetensors: sha256 .* does not match"):
        detect(store, DetectConfig(**FAST_DETECT, threshold=0.3, manifest=str(bad_detector)), QUIET, force=True)
    _assert_unchanged(store, "damage", "labels/0", damage)
    bad_inpainter = _bad_manifest(tiny_weights, tmp_path / "i", "inpainter-pconv")
    config = dataclasses.replace(FAST_INPAINT, manifest=str(bad_inpainter))
    with pytest.raises(WeightsError, match=r"inpainter-pconv\.safetensors: sha256"):
        inpaint_store(store, config, QUIET, force=True)
    mask = np.zeros(SHAPE, np.uint8)
    mask[5:20, 5:30] = 255
    with pytest.raises(WeightsError, match="sha256"):  # a new mask too: refused before it is stored
        inpaint_store(store, config, QUIET, mask=_mask_file(tmp_path / "m.png", mask))
    _assert_unchanged(store, "restored", "0", restored)
    assert group_info(store, "mask_edited") is None
    assert not any(Path(store).glob("*.partial"))


def test_recompute_failing_midway_keeps_damage_then_resumes_and_swaps(tmp_path: Path, tiny_weights: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(tmp_path, shape=(128, 128))  # four chunks
    first = detect(store, DetectConfig(**FAST_DETECT), QUIET)
    before = _snapshot(store, "damage", "labels/0")
    real, calls = detect_module.probabilities_and_labels, [0]

    def dies_on_third_chunk(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls[0] += 1
        if calls[0] == 3:
            raise OSError("simulated disk failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(detect_module, "probabilities_and_labels", dies_on_third_chunk)
    changed = DetectConfig(**FAST_DETECT, threshold=0.3)
    with pytest.raises(OSError, match="simulated disk failure"):
        detect(store, changed, QUIET)
    _assert_unchanged(store, "damage", "labels/0", before)
    assert (Path(store) / "damage.partial").is_dir()  # kept for the resume
    monkeypatch.setattr(detect_module, "probabilities_and_labels", real)
    resumed = detect(store, changed, QUIET)
    assert resumed.chunks_resumed == 2 and resumed.chunks_run == 2
    assert group_info(store, "damage")["key"] == resumed.key != first.key
    assert not (Path(store) / "damage.partial").exists() and not (Path(store) / "_progress" / "detect").exists()


def _mask_file(path: Path, mask: np.ndarray) -> Path:
    if path.suffix == ".jpg":
        path.write_bytes(imagecodecs.jpeg8_encode(mask, level=90))
    else:
        path.write_bytes(imagecodecs.png_encode(mask))
    return path


@pytest.mark.parametrize(("value", "flag", "message"), [
    (255, "allow_large_mask", r"full\.png: mask marks 100\.0 % of the image .*--allow-large-mask"),
    (0, "allow_empty_mask", r"full\.png: mask marks no pixel .*--allow-empty-mask"),
])
def test_blank_or_full_masks_are_refused_unless_allowed(tmp_path: Path, tiny_weights: Path, value: int,
                                                        flag: str, message: str) -> None:
    store = _restored_store(tmp_path)
    restored = _snapshot(store, "restored", "0")
    mask = _mask_file(tmp_path / "full.png", np.full(SHAPE, value, np.uint8))
    with pytest.raises(InputError, match=message):
        inpaint_store(store, FAST_INPAINT, QUIET, mask=mask)
    _assert_unchanged(store, "restored", "0", restored)
    assert group_info(store, "mask_edited") is None and not (Path(store) / "mask_edited.partial").exists()
    result = inpaint_store(store, FAST_INPAINT, QUIET, mask=mask, **{flag: True})
    assert result.summary["mask_read"]["pixels_marked"] == (SHAPE[0] * SHAPE[1] if value else 0)
    if not value:  # an allowed empty mask: restored/ is the scan
        root = zarr.open_group(store, mode="r")
        assert np.array_equal(root["restored/0"][:], root["scan/0"][:]) and result.summary["pixels_changed"] == 0


def test_colour_jpeg_mask_is_thresholded_and_changed_pixels_counted(tmp_path: Path, tiny_weights: Path) -> None:
    store = _store(tmp_path)
    drawn = np.zeros((*SHAPE, 3), np.uint8)
    drawn[10:50, 20:70] = 255  # 40 x 50 = 2000 px
    mask = _mask_file(tmp_path / "mask.jpg", drawn)
    noisy = int((imagecodecs.jpeg8_decode(mask.read_bytes()) > 0).any(axis=-1).sum())
    result = inpaint_store(store, FAST_INPAINT, QUIET, mask=mask)
    read = result.summary["mask_read"]
    assert read["channels"] == 3 and "> 127" in read["rule"]
    assert abs(read["pixels_marked"] - 2000) <= 20 < noisy - 2000  # JPEG noise does not grow the mask
    root = zarr.open_group(store, mode="r")
    changed = int((root["restored/0"][:] != root["scan/0"][:]).any(axis=0).sum())
    assert result.summary["pixels_changed"] == changed > 0


def test_a_grey_mask_in_a_jpeg_compressed_tiff_is_thresholded_as_a_jpeg_is(tmp_path: Path) -> None:
    from pipeline.io.edited_mask import EditedMask

    drawn = np.zeros(SHAPE, np.uint8)
    drawn[10:50, 20:70] = 255
    lossy, lossless = tmp_path / "mask-jpeg.tif", tmp_path / "mask-lzw.tif"
    tifffile.imwrite(lossy, drawn, compression="jpeg")
    tifffile.imwrite(lossless, drawn, compression="lzw")
    noisy = tifffile.imread(lossy)
    assert ((noisy > 0) & (drawn == 0)).any()  # JPEG ringing outside the mark
    mask = EditedMask(lossy, SHAPE)
    assert "> 127" in mask.rule
    assert abs(int(mask.hole(0, SHAPE[0], 0, SHAPE[1]).sum()) - 2000) <= 20
    assert EditedMask(lossless, SHAPE).rule == "nonzero = hole"


def test_16bit_rgb_png_is_ingested_at_full_depth(tmp_path: Path) -> None:
    image = (np.arange(40 * 30 * 3, dtype=np.uint32).reshape(40, 30, 3) * 17 % 65536).astype(np.uint16)
    source = tmp_path / "deep.png"
    source.write_bytes(imagecodecs.png_encode(image))
    store = str(tmp_path / "deep.zarr")
    ingest(source, store, IngestConfig(chunk=64), QUIET)
    scan = zarr.open_group(store, mode="r")["scan/0"][:]
    assert scan.dtype == np.uint16 and scan.max() > 255
    assert np.array_equal(np.moveaxis(scan, 0, -1), image)


def test_corrupt_tile_is_reported_at_its_position(tmp_path: Path) -> None:
    source = tmp_path / "tiled.tif"
    tifffile.imwrite(source, _image(2, (512, 512)), photometric="rgb", tile=(128, 128), compression="zlib")
    with tifffile.TiffFile(source) as tif:
        offset, count = tif.pages[0].dataoffsets[8], tif.pages[0].databytecounts[8]  # row 2, column 0
    data = bytearray(source.read_bytes())
    data[offset : offset + count] = bytes(count)
    source.write_bytes(bytes(data))
    store = tmp_path / "t.zarr"
    with pytest.raises(InputError, match=r"tiled\.tif: corrupt image data in the 128x128 tile at y=256, x=0"):
        ingest(source, str(store), IngestConfig(chunk=1024), QUIET)
    assert not store.exists() and not Path(f"{store}.partial").exists()


def _flip_byte(chunk_file: Path) -> None:
    data = bytearray(chunk_file.read_bytes())
    data[len(data) // 2] ^= 0x5A
    chunk_file.write_bytes(bytes(data))


def test_corrupt_restored_chunk_fails_export_naming_it_and_keeps_old_export(tmp_path: Path,
                                                                             tiny_weights: Path) -> None:
    store = _restored_store(tmp_path)
    out = tmp_path / "out"
    export(store, out)
    summary = (out / "summary.json").read_text()
    _flip_byte(Path(store) / "restored" / "0" / "c" / "0" / "0" / "1")
    with pytest.raises(StoreError, match=r"restored/0: chunk 0-1 \(y=0, x=64\) is corrupt and cannot be decoded"):
        export(store, out, force=True)
    assert (out / "summary.json").read_text() == summary


def test_export_digests_what_it_reads(tmp_path: Path, tiny_weights: Path) -> None:
    store = _restored_store(tmp_path)
    restored = zarr.open_group(store, mode="r+")["restored/0"]
    restored[:, 30:32, 70:74] = restored[:, 30:32, 70:74] ^ 1  # decodes fine, but not what inpaint wrote
    with pytest.raises(StoreError, match=r"restored/0: pixels differ from the digest recorded"):
        export(store, tmp_path / "out")
    assert not (tmp_path / "out" / "summary.json").exists()


def test_export_into_another_scans_folder_needs_force(tmp_path: Path, tiny_weights: Path) -> None:
    first, second = _restored_store(tmp_path, "a", seed=1), _restored_store(tmp_path, "b", seed=2)
    out = tmp_path / "out"
    export(first, out)
    summary = (out / "summary.json").read_text()
    with pytest.raises(InputError, match=r"out: holds the export of another scan .*a\.tif.*--force"):
        export(second, out)
    assert (out / "summary.json").read_text() == summary
    export(second, out, force=True)
    replaced = json.loads((out / "summary.json").read_text())  # summary schema 2: the store relative to out/
    assert replaced["store"] == "../b.zarr"
    assert replaced["digests"]["scan/0"] == group_info(second, "scan")["digests"]["0"]


def test_rerun_detect_marks_restored_stale_until_inpainted_again(tmp_path: Path, tiny_weights: Path) -> None:
    store = _restored_store(tmp_path)
    old = group_info(store, "damage")["digests"]["labels/0"]
    rerun = detect(store, DetectConfig(**FAST_DETECT, threshold=0.3), QUIET)
    assert rerun.digests["labels/0"] != old
    assert any("restored/ is now stale" in note for note in rerun.notes)
    assert group_info(store, "restored")["stale"]["damage_labels_digest"] == rerun.digests["labels/0"]
    with pytest.raises(StoreError, match=r"restored: stale: damage/ was recomputed .*retouch inpaint"):
        export(store, tmp_path / "out")
    again = inpaint_store(store, FAST_INPAINT, QUIET)
    assert not again.skipped and "stale" not in group_info(store, "restored")
    export(store, tmp_path / "out")
    back = detect(store, DetectConfig(**FAST_DETECT), QUIET)  # the labels restored/ was not made from
    assert group_info(store, "restored").get("stale") and back.notes


def test_no_lock_file_is_left_after_a_run(tmp_path: Path) -> None:
    store = str(tmp_path / "s.zarr")
    with store_lock(store):
        assert Path(f"{store}.lock").exists()
    assert not Path(f"{store}.lock").exists()
    with store_lock(store, timeout=1):  # and it can be taken again
        pass
    assert list(tmp_path.iterdir()) == []


def test_mask_rules_keep_label_maps_and_count_any_colour(tmp_path: Path) -> None:
    from pipeline.io.edited_mask import load_edited_mask

    labels = np.zeros((20, 30), np.uint8)
    labels[2:5, 3:9], labels[10:12, 10:20] = 1, 2  # a detect-style label map: nonzero = fill
    assert np.array_equal(load_edited_mask(_mask_file(tmp_path / "labels.png", labels), (20, 30)), labels > 0)
    painted = np.zeros((20, 30, 3), np.uint8)
    painted[5:9, 5:15] = (255, 0, 0)  # a red stroke
    painted[15:18, 0:30] = (40, 40, 40)  # soft grey, below half range
    hole = load_edited_mask(_mask_file(tmp_path / "painted.png", painted), (20, 30))
    assert int(hole.sum()) == 40 and hole[5:9, 5:15].all()


def test_rerun_takes_the_mask_flags() -> None:
    from flows.cli.ops import Stage, stage_params

    params = stage_params(Stage.inpaint, ["--mask", "m.png", "--allow-large-mask", "--allow-empty-mask"])
    assert params.allow_large_mask and params.allow_empty_mask
    assert "allow_large_mask" not in params.config().__dict__


def test_a_swap_interrupted_between_its_renames_is_finished_at_the_next_start(tmp_path: Path) -> None:
    from pipeline.io.staging import partial_name, recover
    from pipeline.io.store import LevelSpec, create_pyramid, mark_complete

    store = str(tmp_path / "s.zarr")
    root = zarr.open_group(store, mode="w")
    for name, version in (("damage.old", 1), (partial_name("damage"), 2)):  # crashed after the first rename
        group = create_pyramid(root, name, [LevelSpec("0", (1, 8, 8), 1)], np.uint8, 8)
        mark_complete(group, {"version": version})
    recover(store, "damage")
    assert group_info(store, "damage")["version"] == 2
    assert sorted(p.name for p in Path(store).iterdir()) == ["damage", "zarr.json"]
