"""Evaluation: seeded masks per kind and bin, the classical baselines, the JSON layout, --masks, --save."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from lab.eval.inpaint_eval import (
    METHODS,
    EvalConfig,
    cases,
    classical_fill,
    compare,
    evaluate,
    result_methods,
    score,
)
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

    images, masks = tmp_path / "images", tmp_path / "masks"
    write_png(images / "a.png", _image())
    hole = np.zeros((48, 64), np.uint8)
    hole[10:20, 10:30] = 255
    write_png(masks / "a.png", hole)
    root = _cli_with_tiny_model(monkeypatch)
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


def _texture(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    """A painted-looking RGB8 image: a ramp plus fine random texture (so gradients are everywhere)."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 25, (h, w, 1))
    return np.clip(_image(h, w).astype(np.float64) * 0.5 + 60 + noise, 0, 255).astype(np.uint8)


def test_texture_measures_on_known_cases() -> None:
    import cv2

    from lab.eval.texture_metrics import GMSD_C, gmsd, gradient_ratio

    truth = _texture()
    hole = np.zeros(truth.shape[:2], bool)
    hole[16:48, 16:48] = True
    assert gradient_ratio(truth, truth, hole) == pytest.approx(1.0)
    assert gmsd(truth, truth, hole) == pytest.approx(0.0, abs=1e-7)
    blurred = truth.copy()
    blurred[hole] = cv2.GaussianBlur(truth, (0, 0), 2.0)[hole]
    assert gradient_ratio(blurred, truth, hole) < 0.6  # a blur loses texture energy
    assert gmsd(blurred, truth, hole) > 0.05
    assert GMSD_C == pytest.approx(170 / 255**2)  # Xue et al. 2014's c = 170 for 0..255, on [0, 1]
    flat = np.full_like(truth, 128)
    assert gradient_ratio(flat, flat, hole) == pytest.approx(1.0)  # flat fill of a flat truth is right


def test_score_reports_texture_measures_and_a_copy_is_perfect() -> None:
    truth = _texture()
    hole = np.zeros(truth.shape[:2], bool)
    hole[20:40, 20:40] = True
    fig = score(truth, truth.copy(), hole)
    assert fig["grad_ratio"] == pytest.approx(1.0) and fig["gmsd"] == 0.0 and fig["haarpsi"] == 1.0
    smooth = classical_fill("biharmonic", truth, hole)
    fig = score(truth, smooth, hole)
    assert fig["grad_ratio"] < 1.0 and fig["gmsd"] > 0 and 0 < fig["haarpsi"] < 1


@pytest.mark.parametrize("method", ["fsr", "fsr_best"])
def test_fsr_fills_the_hole_and_keeps_known_pixels(method: str) -> None:
    image = _image(32, 32)
    hole = np.zeros((32, 32), bool)
    hole[10:18, 12:20] = True
    damaged = image.copy()
    damaged[hole] = (255, 0, 255)  # the fill must not see these: xphoto's mask marks KNOWN pixels
    out = classical_fill(method, damaged, hole)
    assert np.array_equal(out[~hole], image[~hole])
    assert np.abs(out[hole].astype(int) - image[hole].astype(int)).mean() < 10  # a ramp is easy


def test_save_writes_a_contact_sheet_per_case(tmp_path: Path) -> None:
    from lab.eval.contact_sheet import GAP, LABEL_H

    write_png(tmp_path / "a.png", _image())
    evaluate([tmp_path / "a.png"], None, EvalConfig(kinds=("paint_loss",), methods=("telea", "fsr")),
             save_dir=tmp_path / "out")
    sheets = sorted((tmp_path / "out" / "sheets").rglob("*.png"))
    assert len(sheets) == len(BINS)
    sheet = read_image(sheets[0])
    assert sheet.shape == (2 * LABEL_H + 48, 4 * 64 + 3 * GAP, 3)  # masked input, telea, fsr, truth
    assert np.array_equal(sheet[2 * LABEL_H:, -64:], _image())  # truth is the last panel


def test_ghost_contrast_on_a_constructed_crack() -> None:
    from lab.eval.ghost import band_outside, fill_region, ghost_contrast, width_aware_region
    from lab.synthesis.synthetic_damage import CRAQUELURE

    clean = np.full((40, 40, 3), 100, np.uint8)
    labels = np.zeros((40, 40), np.uint8)
    labels[:, 19:22] = CRAQUELURE  # a 3-px crack
    damaged = clean.copy()
    damaged[:, 17:24] = 40  # visible damage 2 px wider on each side than the label
    band = band_outside(labels > 0, 3)
    assert band[:, 16:19].all() and band[:, 22:25].all() and not band[:, 19:22].any() and not band[:, :16].any()
    # unfilled rim: 2 of the 3 band columns on each side keep the dark damage (60 / 255)
    assert ghost_contrast(damaged, clean, labels > 0) == pytest.approx(2 / 3 * 60 / 255)
    restored = damaged.copy()
    region = fill_region(labels, "dilate:2")
    restored[region] = 100  # a perfect fill of the dilated region removes the ghost
    assert ghost_contrast(restored, clean, labels > 0) == 0.0
    assert ghost_contrast(restored, clean, region) == 0.0
    assert fill_region(labels, "dilate:0").sum() == (labels > 0).sum()
    wide = width_aware_region(labels, rim=1)  # centre 2 px from the background (distance transform) + 1 px rim
    assert wide[:, 16:25].all() and not wide[:, :16].any() and not wide[:, 25:].any()
    with pytest.raises(ValueError, match="fill rule"):
        fill_region(labels, "grow:2")


def test_cli_ghost_reports_each_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:

    write_png(tmp_path / "images" / "a.png", _texture(96, 96))
    root = _cli_with_tiny_model(monkeypatch)
    args = ["evaluate", "ghost", "--images", str(tmp_path / "images"), "--copies", "3", "--rules", "dilate:2,width:1",
            "--json", str(tmp_path / "g.json")]
    res = CliRunner().invoke(root, args)
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "g.json").read_text())
    assert {"none", "dilate:2", "width:1"} <= set(result)
    assert result["dilate:2"]["fill_ratio"] > result["none"]["fill_ratio"]
    assert {k: result["settings"][k] for k in ("style", "strategy", "tile", "grain")} == {
        "style": "realistic", "strategy": "boxes", "tile": 256, "grain": 1.0}  # the stage's defaults
    res = CliRunner().invoke(root, [*args[:-4], "--rules", "grow:2"])
    assert res.exit_code != 0 and "fill rule" in res.output
    res = CliRunner().invoke(root, [*args, "--style", "classic", "--strategy", "tiles", "--grain", "0"])
    assert res.exit_code == 0, res.output
    settings = json.loads((tmp_path / "g.json").read_text())["settings"]
    assert (settings["style"], settings["strategy"], settings["grain"]) == ("classic", "tiles", 0.0)


def test_the_ghost_fill_is_the_stages_network_fill_plus_its_texture_layer() -> None:
    from lab.eval.ghost import stage_fill
    from pipeline.stages.inpaint_boxes import inpaint_boxes
    from pipeline.stages.inpaint_grain import GrainConfig, add_grain

    torch.manual_seed(0)
    model = PConvUNet(base_channels=4, depth=3, max_channels=16).eval()
    image = _texture(96, 96)
    region = np.zeros((96, 96), bool)
    region[30:70, 20:80] = True  # a wide loss: the texture layer's full strength
    plain = stage_fill(model, grain=0)(image, region)
    np.testing.assert_array_equal(plain, inpaint_boxes(image, region, model, tile=256, overlap=64, margin=24))
    textured = stage_fill(model)(image, region)
    np.testing.assert_array_equal(textured, add_grain(plain, image, region, GrainConfig(alpha=1.0)))
    np.testing.assert_array_equal(textured[~region], image[~region])
    assert (textured[region] != plain[region]).mean() > 0.5
    with pytest.raises(ValueError, match="strategy"):
        stage_fill(model, strategy="whole")


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


def test_cli_strategy_boxes_is_recorded_and_a_bad_one_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:

    write_png(tmp_path / "images" / "a.png", _image())
    root = _cli_with_tiny_model(monkeypatch)
    args = ["evaluate", "inpaint", "--images", str(tmp_path / "images"), "--kinds", "paint_loss", "--methods",
            "model", "--tile", "32", "--overlap", "8", "--json", str(tmp_path / "r.json")]
    res = CliRunner().invoke(root, [*args, "--strategy", "boxes", "--margin", "4"])
    assert res.exit_code == 0, res.output
    settings = json.loads((tmp_path / "r.json").read_text())["settings"]
    assert settings["strategy"] == "boxes" and settings["margin"] == 4
    res = CliRunner().invoke(root, [*args, "--strategy", "whole"])
    assert res.exit_code != 0 and "whole" in res.output


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--methods", "model,nosuch", "--methods: unknown 'nosuch'"),
    ("--methods", ",", "--methods: no name given"),
    ("--kinds", "lacuna", "--kinds: unknown 'lacuna'"),
    ("--split", "test", "--split must be 'val' or 'train'"),
    ("--grain-alpha", "0.5,nan", "--grain-alpha: numbers in [0, 4]"),  # was reported as a bug, exit 1
    ("--grain-sigma", "100", "Invalid value for '--grain-sigma'"),
])
def test_cli_refuses_unknown_names_before_any_work(tmp_path: Path, option: str, value: str, message: str) -> None:
    from flows.cli import app

    write_png(tmp_path / "images" / "a.png", _image())
    source = [] if option == "--split" else ["--images", str(tmp_path / "images")]
    res = CliRunner().invoke(app, ["evaluate", "inpaint", *source, option, value, "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 2 and message in " ".join(res.output.replace("│", " ").split()), res.output
    assert "Traceback" not in res.output and not (tmp_path / "r.json").exists()


def _cli_with_tiny_model(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    """`retouch train|evaluate` of flows.cli.inpainter with a small untrained PConv in place of the shipped one."""
    from flows.cli import inpainter as cli_inpainter

    torch.manual_seed(0)
    monkeypatch.setattr(
        cli_inpainter, "_load_model", lambda name: PConvUNet(base_channels=4, depth=3, max_channels=16).eval()
    )
    train_app, evaluate_app = typer.Typer(), typer.Typer()
    cli_inpainter.register(train_app, evaluate_app)
    root = typer.Typer()
    root.add_typer(evaluate_app, name="evaluate")
    root.add_typer(train_app, name="train")
    return root


def test_grain_method_scores_each_strength_on_the_model_fill(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", _texture(64, 64))
    torch.manual_seed(0)
    model = PConvUNet(base_channels=4, depth=3, max_channels=16).eval()
    cfg = EvalConfig(kinds=("paint_loss",), methods=("model", "grain", "telea"), tile=32, overlap=8,
                     grain_alphas=(0.0, 1.0))
    result = evaluate([tmp_path / "a.png"], model, cfg, save_dir=tmp_path / "out")
    assert result_methods(result) == ["model", "grain0", "grain1", "telea"]
    assert result["settings"]["grain"] == {"alphas": [0.0, 1.0], "sigma": 3.0}
    for key, fig in result["model"].items():  # strength 0 is the model's fill itself
        assert result["grain0"][key]["psnr"] == fig["psnr"]
    big = [k for k in result["model"] if k != "paint_loss/0-10"]
    assert np.mean([result["grain1"][k]["grad_ratio"] - result["model"][k]["grad_ratio"] for k in big]) > 0
    with pytest.raises(ValueError, match="alpha"):
        EvalConfig(grain_alphas=(-1.0,))


def test_cli_grain_strengths_are_parsed_and_bad_ones_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_png(tmp_path / "images" / "a.png", _image())
    root = _cli_with_tiny_model(monkeypatch)
    args = ["evaluate", "inpaint", "--images", str(tmp_path / "images"), "--kinds", "paint_loss", "--methods",
            "grain,telea", "--tile", "32", "--overlap", "8", "--json", str(tmp_path / "r.json")]
    res = CliRunner().invoke(root, [*args, "--grain-alpha", "0.5,1", "--grain-sigma", "2"])
    assert res.exit_code == 0, res.output
    assert "grain0.5" in res.output and "grain1" in res.output
    assert json.loads((tmp_path / "r.json").read_text())["settings"]["grain"] == {"alphas": [0.5, 1.0], "sigma": 2.0}
    res = CliRunner().invoke(root, [*args, "--grain-alpha", "x"])
    assert res.exit_code != 0 and "--grain-alpha" in res.output


def test_realistic_ghosts_are_scored_against_the_clean_picture_photographed_alike(tmp_path: Path) -> None:
    """The realistic generator photographs the whole picture again (varnish, light, noise): scored against the
    clean painting, paint far from any damage would read as a ghost; against the clean picture photographed
    alike it does not."""
    from lab.eval.ghost import evaluate_ghost

    write_png(tmp_path / "a.png", _texture(160, 160))
    result = evaluate_ghost([tmp_path / "a.png"], lambda image, region: image, ("dilate:8",), copies=3,
                            long_side=160, style="realistic")
    assert result["settings"]["style"] == "realistic" and result["none"]["n"] == 3
    far = result["dilate:8"]["ghost_outside_fill"]  # 8-11 px from the damage, nothing filled: no ghost there
    assert far < 0.005 and result["none"]["ghost"] > 2 * far  # right beside the damage, the unfilled damage
