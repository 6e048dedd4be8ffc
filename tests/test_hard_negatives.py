"""Hard-negative mining (lab.hard_negatives) and clean training crops centred on the mined places."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lab.detector_data import AugmentConfig, make_batch, make_clean_tile, make_tile
from lab.hard_negatives import far_from_damage, flagged_regions, load_hotspots
from lab.synthesis.synthetic_damage import DamageConfig
from lab.train_detector import DetectorTrainConfig


def test_flagged_regions_lists_each_region_largest_first() -> None:
    prob = np.zeros((2, 60, 80), np.float32)
    prob[0, 10:14, 10:14] = 0.9  # 16 px, craquelure
    prob[1, 40:50, 60:70] = 0.6  # 100 px, paint loss
    prob[0, 30, 30] = 0.2  # below the threshold
    rows = flagged_regions(prob, 0.3, limit=10)
    assert [r[:3] for r in rows] == [[44, 64, 100], [12, 12, 16]]  # centroids 44.5, 64.5, 11.5 rounded half to even
    assert rows[0][3] == pytest.approx(0.6) and rows[1][3] == pytest.approx(0.9)
    assert len(flagged_regions(prob, 0.3, limit=1)) == 1
    assert flagged_regions(prob, 0.95, limit=10) == []


def _record(tmp_path: Path, paintings: dict[str, list[list[float]]]) -> Path:
    path = tmp_path / "hard.json"
    path.write_text(json.dumps({"weights": {"name": "w", "sha256": "0"}, "threshold": 0.3, "paintings": paintings}))
    return path


def test_hotspots_follow_the_training_list_and_refuse_other_paintings(tmp_path: Path) -> None:
    train = [tmp_path / "a.jpg", tmp_path / "b.jpg"]
    spots = load_hotspots(_record(tmp_path, {"b.jpg": [[5, 6, 10, 0.5], [7, 8, 3, 0.4]], "a.jpg": []}), train)
    assert spots[0].shape == (0, 2) and spots[1].tolist() == [[5, 6], [7, 8]]
    with pytest.raises(ValueError, match="outside the training list: \\['val.jpg'\\]"):
        load_hotspots(_record(tmp_path, {"val.jpg": [[1, 1, 1, 0.9]]}), train)


def test_hard_crops_hold_the_flagged_place_and_plain_clean_tiles_are_unchanged() -> None:
    rng = np.random.default_rng(0)
    paintings = [(rng.random((300, 260, 3)) * 100).astype(np.uint8) for _ in range(2)]
    paintings[1][200:203, 40:43] = 255  # the flagged place: the only bright pixels
    spots = [np.zeros((0, 2), np.int64), np.array([[201, 41]])]
    for seed in range(12):
        img, target = make_clean_tile(paintings, 64, np.random.default_rng(seed), None, spots, 1.0)
        assert not target.any() and img.max() == pytest.approx(1.0)  # the bright place is in every crop
    aug = AugmentConfig()
    plain = make_batch(paintings, 64, 6, 4, DamageConfig(), aug, clean_fraction=0.5)
    off = make_batch(paintings, 64, 6, 4, DamageConfig(), aug, clean_fraction=0.5, hotspots=spots,
                     hard_fraction=0.0)
    assert np.array_equal(plain[0], off[0])  # no hard crops: the old random stream
    on = make_batch(paintings, 64, 6, 4, DamageConfig(), aug, clean_fraction=0.5, hotspots=spots, hard_fraction=1.0)
    assert np.array_equal(on[0], make_batch(paintings, 64, 6, 4, DamageConfig(), aug, clean_fraction=0.5,
                                            hotspots=spots, hard_fraction=1.0)[0])  # deterministic
    assert not np.array_equal(on[0], plain[0])


def test_config_needs_the_file_and_clean_tiles_for_hard_negatives(tmp_path: Path) -> None:
    path = _record(tmp_path, {})
    with pytest.raises(ValueError, match="go together"):
        DetectorTrainConfig(hard_fraction=0.5, clean_fraction=0.3)
    with pytest.raises(ValueError, match="go together"):
        DetectorTrainConfig(hard_negatives=str(path), hard_fraction=0.5)
    with pytest.raises(ValueError, match="not found"):
        DetectorTrainConfig(hard_negatives=str(tmp_path / "missing.json"), hard_fraction=0.5, clean_fraction=0.3)
    DetectorTrainConfig(hard_negatives=str(path), hard_fraction=0.5, clean_fraction=0.3)


def test_only_what_is_flagged_far_from_the_damage_is_kept() -> None:
    prob = np.zeros((2, 40, 40), np.float32)
    prob[1, 5:9, 8:10] = 0.9  # beside the damage: within 3 px of it
    prob[1, 25:35, 25:35] = 0.8  # intact paint far from it
    labels = np.zeros((40, 40), np.uint8)
    labels[5:8, 10:12] = 2
    kept = far_from_damage(prob, labels)
    assert kept[1, 5:9, 8:10].max() == 0.0 and kept[1, 25:35, 25:35].min() == pytest.approx(0.8)
    assert [r[:3] for r in flagged_regions(kept, 0.3, limit=10)] == [[30, 30, 100]]
    assert np.array_equal(far_from_damage(prob, np.zeros((40, 40), np.uint8)), prob)  # no damage: all far


def test_flood_crops_hold_the_place_with_damage_drawn_and_plain_tiles_are_unchanged() -> None:
    rng = np.random.default_rng(1)
    paintings = [(rng.random((300, 260, 3)) * 100).astype(np.uint8) for _ in range(2)]
    paintings[0][100:103, 200:203] = 255  # the flooded place: the only bright pixels
    floods = [np.array([[101, 201]]), np.zeros((0, 2), np.int64)]
    damage = DamageConfig(style="realistic")
    held = 0
    for seed in range(6):
        img, target = make_tile(paintings, 64, np.random.default_rng(seed), damage, None, floods, 1.0)
        assert img.shape == (3, 64, 64) and target.shape == (2, 64, 64)
        held += int(img.max() > 0.9)
    assert held >= 5  # the place is in the crop (damage may cover it)
    aug = AugmentConfig()
    plain = make_batch(paintings, 64, 4, 7, damage, aug)
    off = make_batch(paintings, 64, 4, 7, damage, aug, floods=floods, flood_fraction=0.0)
    assert np.array_equal(plain[0], off[0]) and np.array_equal(plain[1], off[1])  # no flood crops: the old stream
    on = make_batch(paintings, 64, 4, 7, damage, aug, floods=floods, flood_fraction=1.0)
    assert np.array_equal(on[0], make_batch(paintings, 64, 4, 7, damage, aug, floods=floods,
                                            flood_fraction=1.0)[0])  # deterministic
    assert not np.array_equal(on[0], plain[0])


def test_config_needs_the_file_for_flood_places(tmp_path: Path) -> None:
    path = _record(tmp_path, {})
    with pytest.raises(ValueError, match="go together"):
        DetectorTrainConfig(flood_fraction=0.3)
    with pytest.raises(ValueError, match="go together"):
        DetectorTrainConfig(flood_places=str(path))
    with pytest.raises(ValueError, match="not found"):
        DetectorTrainConfig(flood_places=str(tmp_path / "missing.json"), flood_fraction=0.3)
    with pytest.raises(ValueError, match="flood_fraction must be in"):
        DetectorTrainConfig(flood_places=str(path), flood_fraction=1.5)
    DetectorTrainConfig(flood_places=str(path), flood_fraction=0.3)
