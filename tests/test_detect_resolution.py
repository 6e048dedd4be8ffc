"""A scan much larger than the paintings the detectors learned on, detected at scale 1, is told to look at its
cracks' width and how to detect it at another scale; the note reaches the command line and the Prefect artifact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from pipeline.engine.runner import EngineConfig
from pipeline.stages.detect import LARGE_SCAN, TRAINED_SIDE, DetectConfig, detect, resolution_note
from pipeline.stages.ingest import IngestConfig, ingest

QUIET = EngineConfig(workers=1, progress=False)
FAST_DETECT = {"tile": 96, "overlap": 0, "halo": 16, "tta": 1}


def test_the_note_is_for_a_large_scan_at_scale_1_only() -> None:
    side = int(LARGE_SCAN * TRAINED_SIDE)
    assert resolution_note(TRAINED_SIDE, TRAINED_SIDE, 1.0) is None
    assert resolution_note(side - 1, 100, 1.0) is None
    note = resolution_note(100, 3 * TRAINED_SIDE, 1.0)
    assert note is not None and f"{3 * TRAINED_SIDE:,} px across, 3.0 times" in note and "--scale 0.5" in note
    assert resolution_note(100, 3 * TRAINED_SIDE, 0.5) is None  # a scale was chosen


def test_detect_tells_a_large_scan_to_check_its_cracks_width_run_or_skipped(tmp_path: Path,
                                                                          tiny_weights: Path) -> None:
    src = tmp_path / "wide.tif"
    rng = np.random.default_rng(1)
    tifffile.imwrite(src, rng.integers(0, 256, (32, int(LARGE_SCAN * TRAINED_SIDE), 3), np.uint8), photometric="rgb")
    store = str(tmp_path / "wide.zarr")
    ingest(src, store, IngestConfig(chunk=256, top_level_max_side=64), QUIET)
    ran = detect(store, DetectConfig(**FAST_DETECT), QUIET)
    skipped = detect(store, DetectConfig(**FAST_DETECT), QUIET)
    assert not ran.skipped and skipped.skipped
    for result in (ran, skipped):
        assert sum("look at a crack at 100 %" in note for note in result.notes) == 1


def test_the_stage_artifact_lists_the_notes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.reporting as reporting
    from pipeline.stages.detect import StageResult

    written: list[str] = []
    monkeypatch.setattr(reporting, "create_markdown_artifact", lambda text, **_: written.append(text))
    result = StageResult("detect", str(tmp_path / "s.zarr"), True, "k" * 64, {}, {}, "prov.json", 0.1,
                         notes=("restored/ is now stale",))
    text = reporting.report_stage(result)
    assert written == [text] and text.endswith("## Warnings\n\n- restored/ is now stale")
    quiet = reporting.report_stage(StageResult("detect", str(tmp_path / "s.zarr"), True, "k" * 64, {}, {},
                                               "prov.json", 0.1))
    assert "Warnings" not in quiet


def test_trained_side_is_the_longer_side_of_the_train_paintings() -> None:
    """The stage cannot import lab (layers); the figure it warns with must still be the TRAIN paintings' own."""
    from PIL import Image

    from lab.paintings import paintings

    try:
        paths = paintings("train")
    except FileNotFoundError:
        pytest.skip("../shared/data is absent")
    if not paths:
        pytest.skip("../shared/data is absent")
    sides = set()
    for path in paths:
        with Image.open(path) as im:
            sides.add(max(im.size))
    assert max(sides) == TRAINED_SIDE
