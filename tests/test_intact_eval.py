"""The intact-paint check (`retouch evaluate intact`): flagged share of undamaged paintings, worst one."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import models  # noqa: F401
from lab.eval.intact_eval import (
    BORDER,
    TARGET_FRACTION,
    border_fraction,
    evaluate_intact,
    flagged_fractions,
    intact_report,
)
from models.resunet import ResUNet
from models.weights import Tiling, save_weights
from pipeline.io.image_io import read_image, write_png

TINY = {"encoder_name": "resnet18", "classes": 2, "decoder_channels": [16, 16, 8, 8, 8]}


def _paintings(root: Path) -> list[Path]:
    rng = np.random.default_rng(1)
    paths = []
    for i, (h, w) in enumerate(((60, 80), (70, 50))):
        path = root / f"painting{i}.png"
        write_png(path, (rng.random((h, w, 3)) * 255).astype(np.uint8))
        paths.append(path)
    return paths


def test_fractions_per_class_and_either() -> None:
    prob = np.zeros((2, 10, 10), np.float32)
    prob[0, :2] = 0.9  # 20% craquelure
    prob[1, 1:4] = 0.6  # 30% paint loss, overlapping one row
    fractions, flags = flagged_fractions(prob)
    assert fractions == pytest.approx({"craquelure": 0.2, "paint_loss": 0.3, "any": 0.4})
    assert flags.shape == (2, 10, 10) and flagged_fractions(prob, 0.95)[0]["any"] == 0.0


def test_border_share_counts_only_flags_near_the_image_border() -> None:
    side = 4 * BORDER
    flags = np.zeros((2, side, side), bool)
    flags[0, :, 0] = True  # the first column: all at the border
    flags[1, side // 2, side // 2] = True  # one pixel in the middle
    assert border_fraction(flags) == pytest.approx(side / side**2)
    flags[0, BORDER - 1, BORDER:-BORDER] = True  # the last row inside the band
    flags[0, BORDER, BORDER:-BORDER] = True  # the first row outside it
    assert border_fraction(flags) == pytest.approx((side + side - 2 * BORDER) / side**2)
    assert border_fraction(np.ones((2, 10, 12), bool)) == 1.0  # smaller than two bands: all border


def test_report_finds_the_worst_painting_and_the_target(tmp_path: Path) -> None:
    paths = _paintings(tmp_path / "p")

    def flags_wide(image: np.ndarray) -> np.ndarray:  # flags everything on the wider painting only
        p = 0.99 if image.shape[1] > image.shape[0] else 0.01
        return np.full((2, *image.shape[:2]), p, np.float32)

    report = intact_report(flags_wide, paths, save_dir=tmp_path / "out")
    assert [r["any"] for r in report["paintings"]] == [1.0, 0.0]
    assert [r["any_border"] for r in report["paintings"]] == [1.0, 0.0]  # 60 px high: all within 32 px
    assert report["worst"] == "painting0.png" and report["max_any"] == 1.0 and not report["meets_target"]
    overlay = read_image(Path(report["overlay"]))
    assert overlay.shape == (60, 80, 3) and (overlay[:, :, 2] == 255).all()  # loss colour drawn last
    nothing = intact_report(lambda im: np.zeros((2, *im.shape[:2]), np.float32), paths)
    assert nothing["meets_target"] and nothing["max_any"] == 0.0 and TARGET_FRACTION == 0.0005
    twice = intact_report(flags_wide, paths, enlarge=2.0)  # each painting as a scan at twice its resolution
    assert [(r["width"], r["height"]) for r in twice["paintings"]] == [(160, 120), (100, 140)]
    assert [r["any_border"] for r in twice["paintings"]][0] < 1.0  # 120 px high: not all within 32 px
    with pytest.raises(ValueError, match="enlarge must be in"):
        intact_report(flags_wide, paths, enlarge=0.5)


def _detector(manifest: Path, name: str, bias: tuple[float, float]) -> None:
    model = ResUNet(**TINY)
    head = model.net.segmentation_head[0]
    torch.nn.init.zeros_(head.weight)
    with torch.no_grad():
        head.bias.copy_(torch.tensor(bias))
    save_weights(model, name=name, architecture="resunet", arch_args=TINY, tiling=Tiling(tile=64, halo=8),
                 manifest_path=manifest)


def test_a_detector_that_flags_everything_fails_and_one_that_flags_nothing_passes(tmp_path: Path) -> None:
    manifest = tmp_path / "w" / "manifest.json"
    _detector(manifest, "all", (4.0, -4.0))
    _detector(manifest, "none", (-4.0, -4.0))
    paths = _paintings(tmp_path / "p")
    bad = evaluate_intact("all", paths=paths, manifest=manifest)
    assert bad["max_any"] == 1.0 and bad["paintings"][0]["craquelure"] == 1.0 and not bad["meets_target"]
    assert bad["tta"] == 2 and bad["tile"] == 1216  # as `retouch detect` runs by default
    good = evaluate_intact("none", paths=paths, manifest=manifest, tta=1)
    assert good["max_any"] == 0.0 and good["meets_target"]
    json.dumps(good)  # the --json output is plain JSON


def test_evaluate_intact_command_help_and_refusal(refused_in_one_line: Callable[[list[str], str], None]) -> None:
    refused_in_one_line(["evaluate", "intact", "--tta", "3"], "--tta must be one of")
