"""Paint loss the colour of the paint around it (pipeline.stages.paint_like_loss) and the detect stage's pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from scipy import ndimage

from pipeline.io.store import chunk_grid
from pipeline.stages.paint_like_loss import chunk_colours, like_plan, paint_like_loss


def flood_scene() -> tuple[np.ndarray, np.ndarray]:
    """Grey paint with a paint-loss region over a rectangle of it, and in the rectangle a patch of pale ground."""
    rgb = np.full((120, 140, 3), 0.4, np.float32)
    labels = np.zeros((120, 140), np.uint8)
    labels[30:90, 40:110] = 2
    rgb[50:70, 60:80] = 0.9
    return rgb, labels


def test_the_flood_over_the_paint_goes_and_the_exposed_ground_stays() -> None:
    rgb, labels = flood_scene()
    gone = paint_like_loss(labels, rgb, 8)
    assert not gone[50:70, 60:80].any()  # the ground
    assert gone[30:40, 40:110].all() and gone[80:90, 40:110].all()  # the paint it flooded, away from the ground
    assert not gone[labels != 2].any()
    assert not paint_like_loss(labels, rgb, 0).any()  # off


def test_a_region_without_enough_unflagged_ring_is_kept_whole() -> None:
    rgb, labels = flood_scene()
    labels[labels == 0] = 1  # everything around is craquelure: no ring pixel is unflagged paint
    assert not paint_like_loss(labels, rgb, 8).any()


def random_scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    h, w = 203, 171
    field = ndimage.gaussian_filter(rng.random((h, w)), 4)
    loss = field > np.quantile(field, 0.8)
    labels = np.where(loss, 2, 0).astype(np.uint8)
    labels[(rng.random((h, w)) < 0.03) & ~loss] = 1
    grey = ndimage.gaussian_filter(rng.random((h, w)), 3) * 0.5 + 0.25
    rgb = np.stack([grey] * 3, axis=-1) + rng.normal(0, 0.02, (h, w, 3))
    rgb[loss & (field > np.quantile(field, 0.9))] += 0.3
    return np.clip(rgb, 0, 1).astype(np.float32), labels


@pytest.mark.parametrize("chunk", [7, 32, 50, 256])
def test_judged_chunk_by_chunk_it_drops_what_the_whole_image_drops(chunk: int) -> None:
    rgb, labels = random_scene(1)
    whole = paint_like_loss(labels, rgb, 8)
    shape = labels.shape
    regions = chunk_grid((1, *shape), chunk)

    def read(r: tuple[int, int, int, int]) -> np.ndarray:
        return labels[r[0] : r[1], r[2] : r[3]]

    def read_rgb(r: tuple[int, int, int, int]) -> np.ndarray:
        return rgb[r[0] : r[1], r[2] : r[3]]

    plan = like_plan(read, read_rgb, regions, shape, 8)
    out = np.zeros(shape, bool)
    for r in regions:
        out[r[0] : r[1], r[2] : r[3]] = plan.dropped(r, read(r), chunk_colours(read_rgb, r, shape))
    assert whole.sum() > 500 and np.array_equal(out, whole)


def flagged_grey(model, block, **_):  # noqa: ANN001, ANN003, ANN201
    """A detector that marks as paint loss a block's pale pixels and those whose blue differs from their red."""
    prob = np.zeros((2, *block.shape[:2]), np.float32)
    prob[1] = (block[..., 2] != block[..., 0]) | (block.mean(axis=-1) > 200)
    return prob


def test_the_detect_stage_drops_paint_like_loss_over_the_whole_scan(tmp_path: Path, tiny_weights: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """With 64-px chunks the stage's labels are the whole image's paint loss less its paint-like pixels; the counts
    and the summary say what went, and the setting is part of the stage key."""
    from test_stages import QUIET, make_store

    from pipeline.stages import detect_infer
    from pipeline.stages.detect import DetectConfig, detect

    monkeypatch.setattr(detect_infer, "detect_probabilities", flagged_grey)
    image = np.full((200, 220, 3), 100, np.uint8)
    image[40:160, 30:190, 2] = 101  # flagged, the paint's colour
    image[70:120, 80:130] = 235  # flagged, pale ground
    store = make_store(tmp_path, image, chunk=64)
    plain = detect(store, DetectConfig(tile=128, halo=16, straight=0), QUIET)
    raw = zarr.open_array(f"{store}/scan/labels/damage/0", mode="r")[0]
    result = detect(store, DetectConfig(tile=128, halo=16, straight=0, paint_like=8), QUIET)
    labels = zarr.open_array(f"{store}/scan/labels/damage/0", mode="r")[0]
    gone = paint_like_loss(raw, image.astype(np.float32) / 255.0, 8)
    assert gone.sum() > 10_000 and result.key != plain.key
    assert np.array_equal(labels, np.where(gone, 0, raw))
    assert (labels[75:115, 85:125] == 2).all()  # the ground stays
    assert result.summary["counts"]["paint_loss"] == int((labels == 2).sum())
    assert result.summary["paint_like_dropped"] == {"pixels": int(gone.sum())}
    assert "labels-before-straight" not in zarr.open_group(f"{store}/damage", mode="r")


def test_a_detection_variant_names_the_setting() -> None:
    from pipeline.stages.detect import DetectConfig, variant_fields

    assert variant_fields("NAME+like8")["paint_like"] == 8
    with pytest.raises(ValueError, match="paint_like"):
        DetectConfig(paint_like=300)


def test_a_small_region_is_kept_whole() -> None:
    rgb = np.full((80, 80, 3), 0.4, np.float32)
    labels = np.zeros((80, 80), np.uint8)
    labels[10:19, 10:19] = 2  # 81 px of the paint's colour
    labels[40:52, 40:52] = 2  # 144 px
    gone = paint_like_loss(labels, rgb, 8)
    assert not gone[10:19, 10:19].any() and gone[40:52, 40:52].all()


def test_detect_says_how_much_paint_like_loss_it_left_unlabelled(capsys: pytest.CaptureFixture[str]) -> None:
    from flows.cli.common import print_detect

    result = {"store": "/s.zarr", "skipped": False, "seconds": 1.0, "notes": [],
              "summary": {"area_percent": {"craquelure": 0.5, "paint_loss": 0.1}, "paint_like": 8,
                          "paint_like_dropped": {"pixels": 4_321}}}
    print_detect(result)
    assert "4321 px of paint loss the colour of the paint around it not labelled (--paint-like 8;" in \
        capsys.readouterr().out
    result["summary"]["paint_like_dropped"] = {"pixels": 0}
    print_detect(result)
    assert "paint-like" not in capsys.readouterr().out
