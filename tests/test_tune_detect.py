"""benchmarks/tune_detect.py reads tuning data only (never a reported set) and scores a variant as detect runs it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from benchmark_module import benchmark_module

from pipeline.io.image_io import write_png


def _tool():
    return benchmark_module("tune_detect")


def test_the_tuning_sets_hold_no_reported_image(shared_data: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.eval import detect_eval
    from lab.paintings import paintings
    from lab.pairs import pair_files
    from lab.real_cracks import split_pairs

    tool = _tool()
    made = {}

    def fake_set(out: Path, **kwargs: object) -> list[Path]:  # the realistic set: which paintings, which seed
        made.update(kwargs)
        for sub in ("images", "masks"):
            write_png(out / sub / "a_0.png", np.zeros((4, 4), np.uint8))
        return [out / "images" / "a_0.png"]

    monkeypatch.setattr(detect_eval, "make_synthetic_set", fake_set)
    folder = tmp_path / f"realistic-train-{tool.SEED}"
    assert tool.set_pairs("realistic", shared_data, tmp_path, 100) == [(folder / "images" / "a_0.png",
                                                                        folder / "masks" / "a_0.png")]
    assert made["split"] == "train" and made["seed"] >= 10**9
    val = {p.name for p in paintings("val")}
    intact = [image for image, _ in tool.set_pairs("intact", shared_data, tmp_path, 100)]
    assert len(intact) == len(paintings("train")) > 0 and not val & {p.name for p in intact}
    cf = shared_data / "crackforest_cfd" / "images"
    cf_test = {i for i, _ in split_pairs(pair_files(cf, shared_data / "crackforest_cfd" / "masks"), cf, "test")}
    cf_tune = {i for i, _ in tool.set_pairs("crackforest", shared_data, tmp_path, 100)}
    assert cf_tune and not cf_tune & cf_test
    for name, folder in (("uav75", "val"), ("deepcrack", "train")):
        images = [i for i, _ in tool.set_pairs(name, shared_data, tmp_path, 7)]
        assert images and all(i.parent.parent.name == folder for i in images)
    assert len(tool.set_pairs("deepcrack", shared_data, tmp_path, 7)) == 7


def test_a_variant_is_scored_as_detect_runs_it(shared_data: Path, tmp_path: Path) -> None:
    tool = _tool()
    figures = tool.score_variant("detector-resunet18-paint7+tta1+nocoarse", ["deepcrack"], shared_data, tmp_path, 2)
    assert 0.3 < figures["deepcrack"]["craquelure_f1"] <= 1.0  # DeepCrack's clear cracks are found
    assert "deepcrack 0." in tool.row("v", figures)
    with pytest.raises(ValueError, match="unknown detection option"):
        tool.score_variant("detector-resunet18-paint7+sideways", ["deepcrack"], shared_data, tmp_path, 1)


def test_the_intact_figures_name_each_painting_and_the_worst(shared_data: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    tool = _tool()
    two = tool.set_pairs("intact", shared_data, tmp_path, 100)[:2]
    monkeypatch.setattr(tool, "set_pairs", lambda *args: two)
    intact = tool.score_variant("detector-resunet18-paint7+tta1+nocoarse", ["intact"], shared_data, tmp_path,
                                100)["intact"]
    assert set(intact["per_painting"]) == {image.stem for image, _ in two}
    assert intact["per_painting"][intact["worst_painting"]] == intact["worst"] == max(intact["per_painting"].values())
    assert intact["mean"] == pytest.approx(float(np.mean(list(intact["per_painting"].values()))))


def test_the_realistic_figures_count_intact_paint_flagged_beside_the_damage(shared_data: Path, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.stages.detect import DetectConfig

    tool = _tool()
    mask = np.zeros((64, 64), np.uint8)
    mask[10:20, 10:20] = 2  # a loss
    prob = np.zeros((2, 64, 64), np.float32)
    prob[1, 9:21, 9:21] = 0.9  # found 1 px wide: within 3 px, not counted
    prob[0, 50:55, 40:45] = 0.9  # a 5x5 mark on intact paint far from it
    write_png(tmp_path / "a_0.png", np.full((64, 64, 3), 128, np.uint8))
    write_png(tmp_path / "m_0.png", mask)
    monkeypatch.setattr(tool, "set_pairs", lambda *args: [(tmp_path / "a_0.png", tmp_path / "m_0.png")])
    monkeypatch.setattr(DetectConfig, "image_probabilities", lambda self, model, image: prob)
    figures = tool.score_variant("detector-resunet18-paint7", ["realistic"], shared_data, tmp_path, 100)
    far = figures["realistic"]["far_from_damage"]
    assert far["flagged"] == 25 and far["marks"] == 1
    assert far["largest"][0]["image"] == "a_0" and far["largest"][0]["area"] == 25
    assert 0 < far["share"] == pytest.approx(25 / far["far_pixels"])
    assert "far 0." in tool.row("v", figures)
