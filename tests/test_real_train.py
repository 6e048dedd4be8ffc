"""Real crack photos and clean (undamaged) painting crops in detector training: tiles, splits, config, record."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from lab.detector_data import AugmentConfig, make_batch, make_tile
from lab.real_cracks import RealSpec, crackforest_split, load_real_set, split_pairs
from lab.synthesis.synthetic_damage import DamageConfig
from lab.train_detector import DetectorTrainConfig, train_detector
from pipeline.errors import InputError
from pipeline.io.image_io import write_png

TINY_DECODER = (16, 16, 8, 8, 8)


def _real_set_dirs(root: Path, n: int = 3, value: int = 255) -> tuple[Path, Path]:
    """n grey 96x80 'photos' with dark vertical cracks every 16 px and masks marking them `value` (and a
    distractor 204)."""
    images, masks = root / "images", root / "masks"
    for i in range(n):
        image = np.full((80, 96, 3), 180, np.uint8)
        mask = np.zeros((80, 96), np.uint8)
        for x in range(8 + i, 96, 16):
            image[:, x : x + 3] = 30
            mask[:, x : x + 3] = value
        mask[:5, :5] = 204  # UAV75-style distractor value: not a crack when value is given
        write_png(images / f"p{i}.png", image)
        write_png(masks / f"p{i}.png", mask)
    return images, masks


def _paintings() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(rng.random((120, 140, 3)) * 255).astype(np.uint8) for _ in range(2)]


def test_spec_parsing_and_held_out_folders_are_refused(tmp_path: Path) -> None:
    images, masks = _real_set_dirs(tmp_path / "train")
    spec = RealSpec.parse(f"{images}:{masks}:255")
    assert spec == RealSpec(images, masks, 255) and RealSpec.parse(f"{images}:{masks}").mask_value is None
    spec.check()
    for bad in (f"{images}", f"{images}:{masks}:x", f"{images}:{masks}:0", f"{images}:{masks}:1:2"):
        with pytest.raises(ValueError, match="real training set"):
            RealSpec.parse(bad)
    for held in ("test", "val", "uav75/test"):
        i, m = _real_set_dirs(tmp_path / held / "x", n=1)
        with pytest.raises(ValueError, match="never trained on"):
            RealSpec.parse(f"{i}:{m}").check()
    with pytest.raises(ValueError, match="not found"):
        RealSpec.parse(f"{tmp_path / 'nope'}:{masks}").check()


def test_crackforest_split_is_fixed_every_fourth_sorted_stem_and_used_when_training(
        tmp_path: Path, refused_in_one_line: Callable[[list[str], str], None]) -> None:
    stems = [f"{i:03d}" for i in range(1, 119)]  # CrackForest's 118 stems
    splits = [crackforest_split(s, stems[::-1]) for s in stems]  # order given does not matter
    assert splits.count("test") == 29 and splits.count("train") == 89
    assert [s for s, k in zip(stems, splits, strict=True) if k == "test"][:3] == ["004", "008", "012"]
    images, masks = _real_set_dirs(tmp_path / "crackforest_cfd", n=8)
    loaded = load_real_set(RealSpec.parse(f"{images}:{masks}:255"))
    assert loaded.stems == ["p0", "p1", "p2", "p4", "p5", "p6"]  # p3, p7 are TEST
    assert loaded.record()["pairs"] == 6 and "CrackForest TRAIN" in loaded.record()["split"]
    pairs = [(images / f"p{i}.png", masks / f"p{i}.png") for i in range(8)]
    assert [i.stem for i, _ in split_pairs(pairs, images, "test")] == ["p3", "p7"]
    other, _ = _real_set_dirs(tmp_path / "other", n=2)
    with pytest.raises(InputError, match="no split is defined"):
        split_pairs(pairs, other, "test")
    refused_in_one_line(["evaluate", "detect", "--no-baseline", "--images", str(other), "--masks",
                         str(other.parent / "masks"), "--split", "test"], f"{other}: no split is defined")


def test_real_tiles_carry_the_crack_as_craquelure_and_no_paint_loss(tmp_path: Path) -> None:
    images, masks = _real_set_dirs(tmp_path / "set")
    real = [load_real_set(RealSpec.parse(f"{images}:{masks}:255"))]
    assert not real[0].masks[0][:5, :5].any()  # 204 is not a crack with mask value 255
    x, y = make_batch(_paintings(), 64, 6, 5, DamageConfig(), AugmentConfig(), real, real_fraction=1.0)
    assert x.shape == (6, 3, 64, 64) and y.shape == (6, 2, 64, 64)
    assert not y[:, 1].any()  # paint loss channel 0
    assert all(y[i, 0].mean() > 0.01 for i in range(6))  # every crop crosses a crack
    dark = x[:, :, :, :].mean(axis=1) < x.mean(axis=(1, 2, 3))[:, None, None]
    assert (dark & (y[:, 0] > 0)).sum() > 0.8 * y[:, 0].sum()  # the label sits on the dark crack pixels
    again = make_batch(_paintings(), 64, 6, 5, DamageConfig(), AugmentConfig(), real, real_fraction=1.0)
    assert np.array_equal(x, again[0]) and np.array_equal(y, again[1])  # a pure function of the seed


def test_clean_tiles_are_undamaged_crops_with_zero_targets_and_default_batches_are_unchanged() -> None:
    paintings, aug = _paintings(), AugmentConfig()
    x, y = make_batch(paintings, 64, 4, 3, DamageConfig(p_craquelure=1.0, p_paint_loss=1.0), aug,
                      clean_fraction=1.0)
    assert not y.any() and x.std() > 0.05
    # without real or clean tiles the batch is exactly the old synthetic one (resume, validation set)
    rng = np.random.default_rng(11)
    old = [make_tile(paintings, 64, rng, DamageConfig(), aug) for _ in range(3)]
    new = make_batch(paintings, 64, 3, 11, DamageConfig(), aug)
    assert np.array_equal(np.stack([o[0] for o in old]), new[0])
    # a mix draws each kind: some all-zero tiles, some with damage
    _, mixed = make_batch(paintings, 64, 16, 2, DamageConfig(p_craquelure=1.0, p_paint_loss=1.0), aug,
                          clean_fraction=0.5)
    empty = [not t.any() for t in mixed]
    assert 0 < sum(empty) < 16
    with pytest.raises(ValueError, match="sum to at most 1"):
        make_batch(paintings, 64, 2, 0, DamageConfig(), aug, clean_fraction=0.7, real_fraction=0.5)
    with pytest.raises(ValueError, match="needs real training pairs"):
        make_batch(paintings, 64, 2, 0, DamageConfig(), aug, real_fraction=0.5)


def test_config_refuses_mismatched_real_options(tmp_path: Path) -> None:
    images, masks = _real_set_dirs(tmp_path / "set")
    with pytest.raises(ValueError, match="go together"):
        DetectorTrainConfig(real_fraction=0.3)
    with pytest.raises(ValueError, match="go together"):
        DetectorTrainConfig(real_train=(f"{images}:{masks}",))
    with pytest.raises(ValueError, match="at most 1"):
        DetectorTrainConfig(real_train=(f"{images}:{masks}",), real_fraction=0.6, clean_fraction=0.6)
    i, m = _real_set_dirs(tmp_path / "uav75" / "test", n=1)
    with pytest.raises(ValueError, match="never trained on"):
        DetectorTrainConfig(real_train=(f"{i}:{m}:255",), real_fraction=0.3)
    i, m = _real_set_dirs(tmp_path / "uav75" / "val", n=1)  # UAV75's only non-test split: allowed
    DetectorTrainConfig(real_train=(f"{i}:{m}:255",), real_fraction=0.3)


def test_training_with_real_and_clean_tiles_records_them_resumes_only_alike_and_ships_later(
    shared_data: Path, tmp_path: Path
) -> None:
    images, masks = _real_set_dirs(tmp_path / "set")
    manifest = tmp_path / "w" / "manifest.json"
    common = dict(tile=64, batch=2, eval_every=2, checkpoint_every=2, val_tiles=2, warmup=1,
                  run_dir=str(tmp_path / "run"), decoder_channels=TINY_DECODER, bf16=False,
                  real_train=(f"{images}:{masks}:255",), real_fraction=0.5, clean_fraction=0.25,
                  snapshot_every=2, average_from=2, weights_name="real-test")
    train_detector(DetectorTrainConfig(steps=2, ship=False, **common), manifest_path=manifest, echo=None)
    assert not manifest.exists()
    log = (tmp_path / "run" / "train.log").read_text()
    assert "real training pairs 3" in log and "clean tiles: fraction 0.25" in log
    for other in ({"real_fraction": 0.4}, {"clean_fraction": 0.0}):
        with pytest.raises(ValueError, match="another configuration"):
            train_detector(DetectorTrainConfig(steps=4, **{**common, **other}), manifest_path=manifest, echo=None)
    summary = train_detector(DetectorTrainConfig(steps=50, **common), manifest_path=manifest, echo=None,
                             ship_only=True)
    assert summary["steps"] == 2 and "uniform average of 1 snapshots" in summary["selected"]
    entry = {e["name"]: e for e in json.loads(manifest.read_text())["weights"]}["real-test"]
    data = entry["training"]["data"]
    assert data["real_train"]["fraction"] == 0.5 and data["real_train"]["sets"][0]["pairs"] == 3
    assert data["real_train"]["sets"][0]["mask_value"] == 255 and data["clean_tiles"]["fraction"] == 0.25
    with pytest.raises(ValueError, match="ship_only needs"):
        train_detector(DetectorTrainConfig(steps=2, **{**common, "run_dir": str(tmp_path / "none")}),
                       manifest_path=manifest, echo=None, ship_only=True)


def test_command_line_takes_repeated_real_sets_and_fractions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lab.train_detector as td

    a, am = _real_set_dirs(tmp_path / "a")
    b, bm = _real_set_dirs(tmp_path / "b")
    seen: dict = {}
    monkeypatch.setattr(td, "train_detector", lambda cfg, **kw: seen.update(cfg=cfg, **kw) or {"steps": 0})
    td.main(["--steps", "3", "--real-train", f"{a}:{am}:255", "--real-train", f"{b}:{bm}", "--real-fraction",
             "0.3", "--clean-fraction", "0.15", "--weights-name", "x", "--ship-only"])
    cfg = seen["cfg"]
    assert cfg.real_train == (f"{a}:{am}:255", f"{b}:{bm}") and (cfg.real_fraction, cfg.clean_fraction) == (0.3, 0.15)
    assert cfg.weights_name == "x" and seen["ship_only"] is True


def test_damage_style_option_selects_the_generator_and_refuses_others() -> None:
    from lab.detector_config import config_from_overrides, damage_overrides

    assert damage_overrides() is None
    cfg = config_from_overrides(damage=damage_overrides(style="realistic"))
    assert cfg.damage.style == "realistic"
    with pytest.raises(ValueError, match="style"):
        config_from_overrides(damage=damage_overrides(style="cartoon"))


def test_core_contrast_reaches_the_generator_and_keys_a_checkpoint_only_when_on() -> None:
    from lab.detector_config import config_from_overrides, damage_overrides
    from lab.train_detector import _config_key

    on = config_from_overrides(damage=damage_overrides(style="realistic", core_contrast=0.05))
    off = config_from_overrides(damage=damage_overrides(style="realistic"))
    assert on.damage.core_contrast == 0.05 and off.damage.core_contrast == 0.0
    assert _config_key(on)["damage"]["core_contrast"] == 0.05
    assert "core_contrast" not in _config_key(off)["damage"]  # runs started before the field still resume


@pytest.mark.parametrize(("field", "value"), [("lr", float("nan")), ("region_weight", float("inf")),
                                              ("real_fraction", float("nan"))])
def test_training_configs_refuse_numbers_that_are_not_finite(field: str, value: float) -> None:
    # a NaN passed every "< 0" check: `retouch train detector --lr nan` failed inside torch, reported as a bug
    from lab.inpainter_config import InpainterTrainConfig

    with pytest.raises(ValueError, match=f"{field} must be a finite number"):
        DetectorTrainConfig(**{field: value})
    with pytest.raises(ValueError, match="tv_weight must be a finite number"):
        InpainterTrainConfig(tv_weight=value)
