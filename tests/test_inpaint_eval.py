"""Evaluation: seeded masks per kind and bin, the classical baselines, the JSON layout, --masks, --save."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from lab.eval.inpaint_eval import METHODS, EvalConfig, cases, classical_fill, compare, evaluate, score
from lab.synthesis.masks import BINS, KINDS, bin_name, mask_in_bin
from models.pconv import PConvUNet
from pipeline.io.image_io import read_image, write_png

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _image(h: int = 48, w: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 3, yy * 4, (xx + yy) * 2], axis=2).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind", KINDS)
def test_masks_land_in_their_bin_and_are_seeded(kind: str) -> None:
    for lo, hi in BINS:
        m = mask_in_bin(kind, (64, 64), lo, hi, seed=7)
        assert max(lo, 0.01) <= m.mean() <= hi, (kind, lo, hi, m.mean())
    assert np.array_equal(mask_in_bin(kind, (64, 64), 0.2, 0.3, 5), mask_in_bin(kind, (64, 64), 0.2, 0.3, 5))


@pytest.mark.parametrize("method", ["telea", "ns", "biharmonic", "harmonic", "fast_biharmonic"])
def test_classical_baselines_run_and_keep_known_pixels(method: str) -> None:
    image = _image()
    hole = mask_in_bin("irregular", image.shape[:2], 0.1, 0.2, seed=1)
    out = classical_fill(method, image, hole)
    assert out.dtype == np.uint8 and np.array_equal(out[~hole], image[~hole])
    assert score(image, out, hole)["psnr"] > 20  # a smooth ramp is easy to fill


def test_evaluate_reports_every_method_kind_and_bin(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", _image())
    torch.manual_seed(0)
    model = PConvUNet(base_channels=4, depth=3, max_channels=16).eval()
    cfg = EvalConfig(kinds=("irregular",), tile=32, overlap=8)
    result = evaluate([tmp_path / "a.png"], model, cfg, save_dir=tmp_path / "out")
    for method in METHODS:
        assert set(result[method]) == {f"irregular/{bin_name(lo, hi)}" for lo, hi in BINS}
        for fig in result[method].values():
            assert {"psnr", "ssim", "l1_hole"} <= set(fig)
    assert set(compare(result)) == set(result["model"])
    assert read_image(tmp_path / "out" / "irregular" / "0-10" / "a.png").shape == (48, 64, 3)


def test_masks_per_bin_pools_consecutive_seeds_with_standard_errors(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", _image())
    images = [tmp_path / "a.png"]
    pooled = cases(images, None, EvalConfig(kinds=("paint_loss",), masks_per_bin=2))
    seed0 = cases(images, None, EvalConfig(kinds=("paint_loss",), seed=0))
    seed1 = cases(images, None, EvalConfig(kinds=("paint_loss",), seed=1))
    assert len(pooled) == 2 * len(BINS)
    for (_, key, _, hole), (_, key_b, _, hole_b) in zip(pooled, seed0 + seed1, strict=True):
        assert key == key_b and np.array_equal(hole, hole_b)
    assert {c[0] for c in pooled} == {"a", "a-mask1"}  # --save writes both without overwriting
    with pytest.raises(ValueError, match="masks_per_bin"):
        EvalConfig(masks_per_bin=0)

    result = evaluate(images, None, EvalConfig(kinds=("paint_loss",), methods=("biharmonic", "telea"),
                                               masks_per_bin=2))
    for key, fig in result["biharmonic"].items():
        rows = [c["psnr"] for c in result["cases"]["biharmonic"][key]]
        assert fig["n"] == 2 and len(rows) == 2
        assert fig["psnr"] == pytest.approx(np.mean(rows))
        assert fig["psnr_se"] == pytest.approx(abs(rows[0] - rows[1]) / 2)  # sd/sqrt(2) of two values


def test_compare_gives_the_paired_standard_error_of_the_margin() -> None:
    def fig(values: list[float]) -> dict:
        return {"psnr": float(np.mean(values)), "ssim": 0.5}

    model, telea = [30.0, 40.0, 35.0], [29.0, 38.0, 35.0]  # differences 1, 2, 0
    result = {
        "model": {"k/0-10": fig(model)},
        "telea": {"k/0-10": fig(telea)},
        "cases": {"model": {"k/0-10": [{"psnr": v, "ssim": 0.5} for v in model]},
                  "telea": {"k/0-10": [{"psnr": v, "ssim": 0.5} for v in telea]}},
    }
    margin = compare(result)["k/0-10"]
    assert margin["psnr"] == pytest.approx(1.0)
    assert margin["psnr_se"] == pytest.approx(1.0 / np.sqrt(3))  # sd of (1, 2, 0) is 1
    assert margin["ssim"] == 0 and margin["ssim_se"] == 0


def test_cli_with_given_masks_pairs_by_stem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.cli import inpainter as cli_inpainter

    images, masks = tmp_path / "images", tmp_path / "masks"
    write_png(images / "a.png", _image())
    hole = np.zeros((48, 64), np.uint8)
    hole[10:20, 10:30] = 255
    write_png(masks / "a.png", hole)
    torch.manual_seed(0)
    monkeypatch.setattr(
        cli_inpainter, "_load_model", lambda name: PConvUNet(base_channels=4, depth=3, max_channels=16).eval()
    )
    train_app, evaluate_app = typer.Typer(), typer.Typer()
    cli_inpainter.register(train_app, evaluate_app)
    root = typer.Typer()
    root.add_typer(evaluate_app, name="evaluate")
    root.add_typer(train_app, name="train")
    args = ["evaluate", "inpaint", "--images", str(images), "--masks", str(masks), "--json",
            str(tmp_path / "r.json"), "--save", str(tmp_path / "filled"), "--tile", "32", "--overlap", "8"]
    res = CliRunner().invoke(root, args)
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "r.json").read_text())
    assert list(result["biharmonic"]) == ["given/0-10"]
    from models.weights import get_entry

    assert result["weights"]["sha256"] == get_entry("inpainter-pconv").sha256  # what was scored
    filled = read_image(tmp_path / "filled" / "a.png")
    assert np.array_equal(filled[hole == 0], _image()[hole == 0])


def test_cli_default_methods_are_all_methods() -> None:
    from flows.cli.inpainter import DEFAULT_METHODS

    assert tuple(DEFAULT_METHODS.split(",")) == METHODS


def test_evaluate_with_boxes_scores_the_stage_path_and_says_so(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", _image(96, 96))
    torch.manual_seed(0)
    model = PConvUNet(base_channels=4, depth=3, max_channels=16).eval()
    runs = {s: evaluate([tmp_path / "a.png"], model, EvalConfig(kinds=("craquelure",), methods=("model",), tile=32,
                                                                 overlap=8, strategy=s, margin=4))
            for s in ("tiles", "boxes")}
    assert runs["boxes"]["settings"]["strategy"] == "boxes" and runs["boxes"]["settings"]["margin"] == 4
    small = "craquelure/0-10"  # thin cracks on 10% of the area: boxes smaller than the tile grid
    assert runs["boxes"]["model"][small]["psnr"] != runs["tiles"]["model"][small]["psnr"]
    with pytest.raises(ValueError, match="strategy"):
        EvalConfig(strategy="whole")
