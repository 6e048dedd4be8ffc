"""No seam at chunk borders in `restored/`: the fill's jump across a border is no larger than beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from models.weights import MANIFEST_PATH, load_manifest
from pipeline.engine.runner import EngineConfig
from pipeline.engine.tiling import fill_seam_jumps
from pipeline.io.image_io import read_image
from pipeline.stages.ingest import IngestConfig, ingest
from pipeline.stages.inpaint import dilate_hole
from pipeline.stages.inpaint_stage import InpaintStageConfig, inpaint_store

SAMPLE = Path(__file__).resolve().parents[1] / "data_catalog" / "samples"
SHIPPED = "inpainter-pconv" in load_manifest(MANIFEST_PATH)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def seam_excess(image: np.ndarray, fill: np.ndarray, chunk: int) -> float:
    """Border jump minus the jump beside the borders, in standard errors of that difference."""
    border, inside = fill_seam_jumps(image, fill, chunk)
    se = np.sqrt(border.var() / len(border) + inside.var() / len(inside))
    return float((border.mean() - inside.mean()) / se)


def test_fill_seam_jumps_see_a_step_along_a_chunk_border_inside_the_fill() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(100, 5, (3, 256, 256))
    fill = np.zeros((256, 256), bool)
    fill[40:220, 30:90] = True  # crosses the row border at 128
    fill[100:110, 20:240] = True  # crosses the column border at 128
    border, inside = fill_seam_jumps(image, fill, 128, near=8)
    assert len(border) == 60 + 10 and len(inside) == 16 * 60 + 16 * 10
    assert abs(seam_excess(image, fill, 128)) < 3
    seamed = image.copy()
    seamed[:, 128:, :] += 12.0  # a step between chunks, everywhere (also inside the fill)
    assert seam_excess(seamed, fill, 128) > 5
    outside = image.copy()
    outside[:, 128:, 100:] += 12.0  # a step where nothing was filled does not count
    assert abs(seam_excess(outside, fill, 128) - seam_excess(image, fill, 128)) < 0.5


@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED, reason="no shipped inpainter weights in the manifest")
def test_restored_has_no_seam_where_damage_crosses_chunk_borders(tmp_path: Path) -> None:
    image = read_image(SAMPLE / "leyster-self-portrait-simulated-damage.png")[320:704, 256:640]  # 384 x 384
    labels = read_image(SAMPLE / "leyster-self-portrait-simulated-damage-labels.png")[320:704, 256:640, 0]
    tifffile.imwrite(tmp_path / "crop.tif", image, photometric="rgb")
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    store = str(tmp_path / "crop.zarr")
    quiet = EngineConfig(progress=False, workers=1)
    ingest(tmp_path / "crop.tif", store, IngestConfig(chunk=128), quiet)
    config = InpaintStageConfig()
    inpaint_store(store, config, quiet, mask=tmp_path / "labels.tif")
    restored = zarr.open_group(store, mode="r")["restored/0"][:]  # (3, 384, 384)
    fill = dilate_hole(labels > 0, config.dilate)
    border, inside = fill_seam_jumps(restored, fill, 128)
    assert len(border) >= 100  # the damage crosses the borders
    # no larger than beside the borders, up to two standard errors of the difference (a seam is many)
    assert seam_excess(restored, fill, 128) < 2.0
