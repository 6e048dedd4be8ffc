"""Zoomed detector training tiles: damage drawn small, then enlarged, so cracks are as wide as on a finer scan."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.morphology import skeletonize

from lab.detector_config import DetectorTrainConfig, augment_overrides
from lab.detector_data import SHRUNK_COVER, AugmentConfig, make_tile, resized_tile
from lab.synthesis.synthetic_damage import CRAQUELURE, PAINT_LOSS, DamageConfig
from lab.train_detector import main


def _paintings() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.random((2, 300, 320, 3)), axis=2)
    return [(p / p.max() * 200 + 30).astype(np.uint8) for p in smooth]


def test_an_enlarged_tile_widens_its_labels_by_the_factor_and_keeps_their_values() -> None:
    image = np.full((32, 32, 3), 200, np.uint8)
    labels = np.zeros((32, 32), np.uint8)
    labels[:, 10] = CRAQUELURE
    labels[20:26, 20:26] = PAINT_LOSS
    image[labels > 0] = 40
    img, out = resized_tile(image, labels, 96)
    assert img.shape == (96, 96, 3) and img.dtype == np.uint8 and out.dtype == labels.dtype
    assert set(np.unique(out)) == {0, CRAQUELURE, PAINT_LOSS}
    assert (out == CRAQUELURE).sum(axis=1).mean() == pytest.approx(3, abs=0.5)  # a 1-px crack becomes 3 px
    assert (out == PAINT_LOSS).sum() == pytest.approx(18 * 18, rel=0.15)


def test_a_shrunk_tile_keeps_a_thinned_crack_labelled_and_its_losses_at_their_area() -> None:
    image = np.full((128, 128, 3), 200, np.uint8)
    labels = np.zeros((128, 128), np.uint8)
    labels[:, 41] = CRAQUELURE  # 1 px, thinned to 0.75 px and off the new grid
    labels[60:100, 60:100] = PAINT_LOSS
    image[labels > 0] = 40
    img, out = resized_tile(image, labels, 96)
    assert img.shape == (96, 96, 3) and img.dtype == np.uint8
    crack = out == CRAQUELURE
    assert crack.any(axis=1).all() and crack.sum(axis=1).max() <= 2  # kept on every row, at most 2 px wide
    assert (img[..., 0][crack] < 200).all()  # where labelled, the faint trace shows
    assert (out == PAINT_LOSS).sum() == pytest.approx(30 * 30, rel=0.1)
    assert 0 < SHRUNK_COVER < 0.5


def _crack_width(tiles: list[np.ndarray]) -> float:
    cracks = [t[0] > 0 for t in tiles]
    return sum(c.sum() for c in cracks) / max(1, sum(skeletonize(c).sum() for c in cracks))


def test_zoomed_tiles_carry_wider_cracks_and_no_zoom_draws_nothing() -> None:
    paintings = _paintings()
    damage = DamageConfig(p_craquelure=1.0, p_paint_loss=0.0, style="realistic")
    plain, zoomed = AugmentConfig(), AugmentConfig(p_zoom=1.0, zoom=(3.0, 3.0))
    tiles = {name: [make_tile(paintings, 128, np.random.default_rng(s), damage, aug)[1] for s in range(4)]
             for name, aug in (("plain", plain), ("zoomed", zoomed))}
    assert _crack_width(tiles["zoomed"]) > 1.8 * _crack_width(tiles["plain"])
    shrunk = [make_tile(paintings, 96, np.random.default_rng(s), damage, AugmentConfig(p_zoom=1.0, zoom=(0.75, 0.75)))
              for s in range(2)]
    assert all(img.shape == (3, 96, 96) and tgt.shape == (2, 96, 96) and tgt[0].any() for img, tgt in shrunk)
    # p_zoom 0 with another zoom range draws the same tiles as the default (no draw is made for it)
    other = AugmentConfig(zoom=(2.0, 4.0))
    for s in range(2):
        a = make_tile(paintings, 64, np.random.default_rng(s), damage, plain)
        b = make_tile(paintings, 64, np.random.default_rng(s), damage, other)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_zoom_options_reach_the_config_and_bad_ranges_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    assert augment_overrides() is None
    assert augment_overrides(zoom_fraction=0.5, zoom="1,2.5") == {"p_zoom": 0.5, "zoom": [1.0, 2.5]}
    cfg = DetectorTrainConfig(augment=AugmentConfig(**augment_overrides(0.3, 0.5, "1,2.5")))
    assert cfg.augment.zoom == (1.0, 2.5) and cfg.augment.p_edge == 0.3
    for bad in ({"zoom": (0.4, 2.0)}, {"zoom": (3.0, 2.0)}, {"p_zoom": 1.5}):
        with pytest.raises(ValueError, match="zoom"):
            AugmentConfig(**bad)
    with pytest.raises(ValueError, match="zoom must be two numbers"):
        augment_overrides(zoom="2")
    seen = {}
    monkeypatch.setattr("lab.train_detector.train_detector", lambda cfg, **kw: seen.setdefault("cfg", cfg) and {})
    main(["--zoom-fraction", "0.4", "--zoom", "1,3", "--steps", "1"])
    assert seen["cfg"].augment.p_zoom == 0.4 and seen["cfg"].augment.zoom == (1.0, 3.0)
