"""Per-style craquelure scores: forced crack styles, the breakdown's bookkeeping, and the command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lab.eval.detect_styles import CONTRASTS, DEFAULT_SEED, FILLS, _crop, contrast_cases, style_breakdown, style_cases
from lab.synthesis.cracks import CRACK_KINDS
from lab.synthesis.cracks import sample_style as _sample_style
from lab.synthesis.synthetic_damage import DamageConfig, synthesize_damage
from pipeline.stages.detect import DEFAULT_WEIGHTS


def _paintings(n: int = 2, size: int = 96) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [(rng.uniform(0.3, 0.8, (size, size + 16, 3)) * 255).astype(np.uint8) for _ in range(n)]


def test_crack_kinds_pick_the_style_and_bad_kinds_are_refused() -> None:
    for seed in range(6):
        assert _sample_style(np.random.default_rng(seed), ("wide",)).partial == 0.1  # only "wide" has 0.1
        assert _sample_style(np.random.default_rng(seed), ("panel",)).partial == 0.25
    assert DamageConfig(crack_kinds=["fine"]).crack_kinds == ("fine",)  # JSON lists become tuples
    with pytest.raises(ValueError, match="crack_kinds"):
        DamageConfig(crack_kinds=("spiral",))
    with pytest.raises(ValueError, match="crack_kinds"):
        DamageConfig(crack_kinds=())


def test_default_kinds_keep_the_random_stream() -> None:
    image = _paintings(1)[0]
    a = synthesize_damage(image, 11)
    b = synthesize_damage(image, 11, DamageConfig(crack_kinds=CRACK_KINDS))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_style_cases_are_seeded_and_the_fill_changes_the_crack_colour() -> None:
    images = _paintings()
    dark = style_cases(images, "canvas", "dark", copies=2, crop=64)
    again = style_cases(images, "canvas", "dark", copies=2, crop=64)
    light = style_cases(images, "canvas", "light", copies=2, crop=64)
    assert len(dark) == 4 and all(d.shape[:2] == t.shape == (64, 64) for d, t in dark)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(dark, again, strict=True))
    for (d, t), (lt, t2) in zip(dark, light, strict=True):
        assert t.any() and np.array_equal(t, t2)  # same network, other fill
        assert d[t].mean() < lt[t].mean()  # dirt is darker than the ground showing through
    with pytest.raises(ValueError, match="kind must be one of"):
        style_cases(images, "spiral", "dark")


def test_contrast_bands_draw_the_same_cracks_fainter() -> None:
    images = _paintings()
    bands = {band: contrast_cases(images, band, copies=1, crop=64) for band in CONTRASTS}
    change = {}
    for band, cases in bands.items():
        for (_, mask), (_, default_mask) in zip(cases, bands["default"], strict=True):
            assert mask.any() and np.array_equal(mask, default_mask)  # same network, other contrast
        clean = [_crop(image, 64, np.random.default_rng(DEFAULT_SEED + 100 * i)) for i, image in enumerate(images)]
        change[band] = np.mean([np.abs(d.astype(float) - c.astype(float))[m].mean()
                                for c, (d, m) in zip(clean, cases, strict=True)])
    assert 0 < change["faint"] < change["medium"] < change["default"]
    with pytest.raises(ValueError, match="band must be one of"):
        contrast_cases(images, "invisible")


def test_breakdown_scores_an_oracle_perfectly_and_an_empty_map_at_zero_recall() -> None:
    images = _paintings()
    truth = {}
    for kind in CRACK_KINDS:
        for fill in FILLS:
            for damaged, mask in style_cases(images, kind, fill, copies=1, crop=64):
                truth[damaged.tobytes()] = mask
    for band in CONTRASTS:
        for damaged, mask in contrast_cases(images, band, copies=1, crop=64):
            truth[damaged.tobytes()] = mask
    oracle = style_breakdown(lambda img: truth[img.tobytes()], images, copies=1, crop=64)
    assert set(oracle) == ({f"{k}/{f}" for k in CRACK_KINDS for f in FILLS} | {"all"}
                           | {f"contrast/{b}" for b in CONTRASTS})
    assert all(row["f1"] == pytest.approx(1.0) for row in oracle.values())
    empty = style_breakdown(lambda img: np.zeros(img.shape[:2]), images, copies=1, crop=64)
    assert all(row["recall"] == 0.0 for row in empty.values())


def test_detect_styles_command_writes_the_table(tmp_path: Path, tiny_weights: Path, shared_data: Path,
                                                one_torch_thread: None) -> None:
    from flows.cli import app

    out = tmp_path / "styles.json"
    result = CliRunner().invoke(app, ["evaluate", "detect-styles", "--copies", "1", "--crop", "64",
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert set(report["model"]) == set(report["baseline"]) and "wide/light" in report["model"]
    assert "wide/light" in result.output and report["weights"]["name"] == DEFAULT_WEIGHTS
