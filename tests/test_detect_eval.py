"""Metrics with known answers, seamless tiled inference, baseline, and `retouch evaluate detect` end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

import models  # noqa: F401
from lab.eval.baseline import BaselineParams, baseline_predict
from lab.eval.detect_eval import EvalOptions, evaluate_detect, truth_maps
from lab.eval.metrics import binary_scores, confusion
from models.resunet import ResUNet
from models.weights import Tiling, save_weights
from pipeline.errors import InputError
from pipeline.io.image_io import read_mask, write_png
from pipeline.stages.detect_infer import predict_probabilities


def test_strict_scores_on_a_known_case() -> None:
    true = np.zeros((10, 10), bool)
    true[2:6, 2:6] = True  # 16 px
    pred = np.zeros((10, 10), bool)
    pred[4:8, 4:6] = True  # 8 px, 4 of them correct
    s = binary_scores(pred, true)
    assert s["precision"] == pytest.approx(0.5)
    assert s["recall"] == pytest.approx(0.25)
    assert s["f1"] == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    assert s["iou"] == pytest.approx(4 / 20)
    assert s["pixel_accuracy"] == pytest.approx((100 - 16) / 100)


def test_tolerance_forgives_a_one_pixel_shift_of_a_thin_crack() -> None:
    true = np.zeros((20, 20), bool)
    true[:, 10] = True
    pred = np.zeros((20, 20), bool)
    pred[:, 11] = True
    assert binary_scores(pred, true)["f1"] == 0.0
    assert binary_scores(pred, true, tolerance=1.0)["f1"] == pytest.approx(1.0)
    assert binary_scores(pred, true, tolerance=2.0)["f1"] == pytest.approx(1.0)
    far = np.zeros((20, 20), bool)
    far[:, 15] = True
    assert binary_scores(far, true, tolerance=2.0)["f1"] == 0.0
    with pytest.raises(ValueError, match="shape"):
        confusion(pred[:5], true)


class _Pointwise(torch.nn.Module):
    """A 1x1 convolution: any correct tiling must give exactly its untiled output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-1] % 32 == 0 and x.shape[-2] % 32 == 0
        return self.conv(x)


@pytest.mark.parametrize("shape", [(70, 45, 3), (300, 257, 1), (129, 200, 4)])
def test_tiled_prediction_is_seamless_and_any_size(shape) -> None:
    torch.manual_seed(0)
    model = _Pointwise().eval()
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    tiled = predict_probabilities(model, image, tile=64, overlap=16)
    rgb = image[:, :, :1].repeat(3, 2) if shape[2] == 1 else image[:, :, :3]
    with torch.no_grad():
        direct = torch.sigmoid(model.conv(torch.from_numpy(rgb.transpose(2, 0, 1))[None]))[0].numpy()
    assert tiled.shape == (2, *shape[:2]) and tiled.dtype == np.float32
    assert np.allclose(tiled, direct, atol=1e-5)


def test_tiled_equals_untiled_for_a_real_network_when_the_image_fits_one_tile() -> None:
    torch.manual_seed(0)
    model = ResUNet(decoder_channels=(16, 16, 8, 8, 8)).eval()
    image = np.random.default_rng(1).random((96, 64, 3)).astype(np.float32)
    a = predict_probabilities(model, image, tile=512, overlap=32)
    b = predict_probabilities(model, (image * 65535).astype(np.uint16), tile=512, overlap=32)
    assert a.shape == (2, 96, 64)
    assert np.allclose(a, b, atol=1e-3)  # 16-bit input is scaled to [0, 1] the same way


def test_baseline_finds_a_dark_crack_and_a_white_loss() -> None:
    image = np.full((128, 128, 3), 110, np.uint8)
    image[:, 60:62] = 20  # a dark 2-px crack
    image[20:36, 20:36] = 240  # a bright flake of exposed gesso (smaller than half the median window)
    pred = baseline_predict(image, BaselineParams())
    assert pred.shape == (2, 128, 128) and pred.dtype == bool
    assert pred[0][:, 60:62].mean() > 0.9 and pred[0][:, :50].mean() < 0.05
    assert pred[1][22:34, 22:34].mean() > 0.9 and pred[1][:, 60:62].mean() < 0.05


def test_mask_conventions() -> None:
    labels = np.array([[0, 1, 2]], np.uint8)
    both = truth_maps(labels, EvalOptions(), Path("m.png"))
    assert both["craquelure"].tolist() == [[False, True, False]]
    assert both["paint_loss"].tolist() == [[False, False, True]]
    uav = np.array([[0, 204, 255]], np.uint8)
    crack = truth_maps(uav, EvalOptions(classes=("craquelure",), mask_value=255), Path("m.png"))
    assert crack["craquelure"].tolist() == [[False, False, True]]
    with pytest.raises(InputError, match="not labels"):
        truth_maps(uav, EvalOptions(), Path("m.png"))


def _tiny_manifest(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    manifest = tmp_path / "w" / "manifest.json"
    args = {"encoder_name": "resnet18", "classes": 2, "decoder_channels": [16, 16, 8, 8, 8]}
    save_weights(ResUNet(**args), name="tiny", architecture="resunet", arch_args=args,
                 tiling=Tiling(tile=64, halo=8), manifest_path=manifest)
    return manifest


def _dataset(tmp_path: Path) -> tuple[Path, Path]:
    from lab.synthesis.synthetic_damage import DamageConfig, synthesize_damage

    rng = np.random.default_rng(0)
    for i, (shape, dtype) in enumerate([((80, 100, 3), np.uint8), ((64, 64, 1), np.uint16)]):
        image = (rng.random(shape) * 0.3 + 0.4) * np.iinfo(dtype).max
        damaged, labels = synthesize_damage(image.astype(dtype), i, DamageConfig(p_craquelure=1, p_paint_loss=1))
        write_png(tmp_path / "images" / f"img{i}.png", damaged)
        write_png(tmp_path / "masks" / f"img{i}.png", labels)
    return tmp_path / "images", tmp_path / "masks"


def test_evaluate_detect_figures_match_the_saved_predictions(tmp_path: Path) -> None:
    images, masks = _dataset(tmp_path)
    opts = EvalOptions(weights="tiny", manifest=_tiny_manifest(tmp_path), save_dir=tmp_path / "pred",
                       tile=64, overlap=16)
    report = evaluate_detect(images, masks, opts)
    assert set(report["model"]) == set(report["baseline"]) == {"craquelure", "paint_loss"}
    for method in ("model", "baseline"):
        for scores in report[method].values():
            assert set(scores) == {"precision", "recall", "f1", "iou", "pixel_accuracy"}
            assert all(0.0 <= v <= 1.0 for v in scores.values())
    # Anyone can re-score the saved 0/255 maps and get the same figures.
    from lab.eval.metrics import Counts

    for c, label in (("craquelure", 1), ("paint_loss", 2)):
        counts = Counts()
        for i in range(2):
            pred = read_mask(tmp_path / "pred" / c / f"img{i}.png") == 255
            counts += confusion(pred, read_mask(masks / f"img{i}.png") == label)
        assert counts.scores() == pytest.approx(report["model"][c])


def test_missing_mask_is_named(tmp_path: Path) -> None:
    images, masks = _dataset(tmp_path)
    (masks / "img1.png").unlink()
    with pytest.raises(InputError, match="img1.png: no mask"):
        evaluate_detect(images, masks, EvalOptions(weights="tiny", manifest=_tiny_manifest(tmp_path)))


def test_cli_commands_register(tmp_path: Path) -> None:
    from flows.cli.detector import register

    train_app, evaluate_app = typer.Typer(), typer.Typer()
    register(train_app, evaluate_app)
    runner = CliRunner()
    result = runner.invoke(evaluate_app, ["detect", "--help"])
    assert result.exit_code == 0 and "--tolerance" in result.output
    assert runner.invoke(train_app, ["detector", "--help"]).exit_code == 0
    assert runner.invoke(train_app, ["baseline", "--help"]).exit_code == 0


def test_eval_record_keeps_the_command_and_refuses_results_of_other_weights(tmp_path: Path,
                                                                            tiny_manifest: Path) -> None:
    import json

    from lab.eval_record import record
    from models.weights import get_entry

    sha = get_entry("detector-resunet18", tiny_manifest).sha256
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"model": {"craquelure": {"f1": 0.5}}, "weights": {"sha256": sha}}))
    out = record("detector-resunet18", "set_a", good, "retouch evaluate detect ...", tiny_manifest)
    data = json.loads(out.read_text())
    assert data["sha256"] == sha and data["runs"]["set_a"]["command"] == "retouch evaluate detect ..."
    assert data["runs"]["set_a"]["result"]["model"]["craquelure"]["f1"] == 0.5
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps({"model": {}, "weights": {"sha256": "0" * 64}}))
    with pytest.raises(ValueError, match="stale.json"):
        record("detector-resunet18", "set_b", stale, "x", tiny_manifest)


def test_shipped_eval_record_describes_the_shipped_detector_at_the_default_tta() -> None:
    """The README's detector figures come from this record: its runs must be of the shipped file, and the runs
    named *_default (commands without --tta) must have been made at today's default, so changing the default
    without measuring it again fails here."""
    import json

    from models.weights import MANIFEST_PATH, get_entry
    from pipeline.stages.detect import DEFAULT_TTA, DEFAULT_WEIGHTS

    entry = get_entry(DEFAULT_WEIGHTS, MANIFEST_PATH)
    data = json.loads((MANIFEST_PATH.parent / f"{DEFAULT_WEIGHTS}.eval.json").read_text())
    assert data["sha256"] == entry.sha256
    defaults = {name: run for name, run in data["runs"].items() if name.endswith("_default")}
    assert len(defaults) >= 2
    for name, run in defaults.items():
        assert "--tta" not in run["command"] and "--weights" not in run["command"], name
        assert run["result"]["tta"] == DEFAULT_TTA and run["result"]["weights"]["sha256"] == entry.sha256, name
