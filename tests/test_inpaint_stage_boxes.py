"""The inpaint stage with damage boxes: bit-exact outside the fill, counted cost, resume after kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from test_stages import QUIET, REPO, damaged_scan, make_store

from models.weights import load_model
from pipeline.engine.runner import EngineConfig
from pipeline.io.store import group_info
from pipeline.stages.inpaint import dilate_hole
from pipeline.stages.inpaint_stage import InpaintStageConfig, inpaint_store


def specks_mask(tmp_path: Path, shape: tuple[int, int], centres: list[tuple[int, int]]) -> Path:
    mask = np.zeros(shape, np.uint8)
    for y, x in centres:
        mask[y - 2 : y + 3, x - 2 : x + 3] = 255
    path = tmp_path / "specks.tif"
    tifffile.imwrite(path, mask)
    return path


def restored_each_way(tmp_path: Path, dtype: type, field: str, values: tuple[str, ...]
                      ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """A damaged scan's labels, its scan and its restored image per value of one InpaintStageConfig field (each in a
    store of its own); the stage's summary must name the value."""
    image, labels = damaged_scan((200, 260), dtype)
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    restored = {}
    for value in values:
        store = make_store(tmp_path, image, name=value)
        config = InpaintStageConfig(tile=128, overlap=32, dilate=2, **{field: value})
        result = inpaint_store(store, config, QUIET, mask=tmp_path / "labels.tif")
        assert result.summary[field] == value
        root = zarr.open_group(store, mode="r")
        restored[value], scan = root["restored/0"][:], root["scan/0"][:]
    return labels, scan, restored


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_boxes_and_tiles_both_keep_the_scan_outside_the_fill(tmp_path: Path, tiny_weights: Path, dtype: type) -> None:
    labels, scan, restored = restored_each_way(tmp_path, dtype, "strategy", ("boxes", "tiles"))
    hole = dilate_hole(labels > 0, 2)
    for out in restored.values():
        assert out.dtype == dtype and np.array_equal(scan[:, ~hole], out[:, ~hole])
    # heavy damage: boxes merge to the chunk and take the tiled path, so both fill alike
    difference = np.abs(restored["boxes"].astype(float) - restored["tiles"].astype(float))[:, hole]
    assert difference.mean() < 0.02 * np.iinfo(dtype).max


def test_bf16_stage_keeps_the_scan_outside_the_fill_and_says_so(tmp_path: Path, tiny_weights: Path) -> None:
    labels, scan, restored = restored_each_way(tmp_path, np.uint16, "precision", ("fp32", "bf16"))
    hole = dilate_hole(labels > 0, 2)
    assert np.array_equal(scan[:, ~hole], restored["bf16"][:, ~hole])
    difference = np.abs(restored["bf16"].astype(float) - restored["fp32"].astype(float))[:, hole]
    assert 0 < difference.max() and difference.mean() < 0.005 * 65535  # bf16 ran, and filled as fp32 did


def test_scattered_specks_cost_one_small_box_each(tmp_path: Path, tiny_weights: Path) -> None:
    image, _ = damaged_scan((256, 256), np.uint8)
    store = make_store(tmp_path, image, chunk=128)
    mask = specks_mask(tmp_path, (256, 256), [(30, 30), (60, 200), (200, 90)])  # three chunks, one speck each
    config = InpaintStageConfig(tile=128, overlap=32, dilate=0, halo=32, margin=8)
    result = inpaint_store(store, config, QUIET, mask=mask)
    multiple = load_model("inpainter-pconv", tiny_weights)[0].multiple
    box = -(-(5 + 2 * 8) // multiple) * multiple
    assert result.summary["chunks_inpainted"] == 3 and result.summary["boxes"] == 3
    assert result.summary["network_calls"] == 3 and result.summary["network_pixels"] == 3 * box * box
    root = zarr.open_group(store, mode="r")
    hole = tifffile.imread(mask) > 0
    assert np.array_equal(root["scan/0"][:][:, ~hole], root["restored/0"][:][:, ~hole])


KILLABLE = """
import sys
from pathlib import Path
from pipeline.stages.inpaint_stage import InpaintStageConfig, inpaint_store
from models.weights import load_model
from pipeline.engine.runner import EngineConfig
inpaint_store(sys.argv[1], InpaintStageConfig(tile=64, overlap=16, halo=16, margin=8),
              EngineConfig(workers=1, progress=False), mask=Path(sys.argv[2]))
"""


@pytest.mark.slow
def test_inpaint_killed_halfway_resumes_to_the_same_bytes(tmp_path: Path, tiny_weights: Path) -> None:
    image, labels = damaged_scan((384, 384), np.uint8)
    mask = tmp_path / "labels.tif"
    tifffile.imwrite(mask, labels)
    store = make_store(tmp_path, image, chunk=64, name="killed")
    clean_store = make_store(tmp_path, image, chunk=64, name="clean")
    config = InpaintStageConfig(tile=64, overlap=16, halo=16, margin=8)
    one = EngineConfig(workers=1, progress=False)
    reference = inpaint_store(clean_store, config, one, mask=mask)
    env = {**os.environ, "RETOUCH_WEIGHTS_MANIFEST": str(tiny_weights)}
    child = subprocess.Popen([sys.executable, "-c", KILLABLE, store, str(mask)], cwd=REPO, env=env)
    ledger = Path(store) / "_progress" / "inpaint"
    deadline = time.time() + 120
    while len(list(ledger.glob("0-*.done"))) < 4:
        assert child.poll() is None, "the stage finished before it could be killed; use a larger image"
        assert time.time() < deadline
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert group_info(store, "restored") is None  # a killed stage never looks complete
    resumed = inpaint_store(store, config, one, mask=mask)
    assert resumed.chunks_resumed >= 4
    assert resumed.digests == reference.digests
    assert resumed.summary["network_pixels"] == reference.summary["network_pixels"]
