"""`retouch evaluate restored`: damage left unfilled by contrast band, and intact paint painted over."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_stages import QUIET, make_store

from lab.eval.residual import contrast, intact_paint, residual_map, residual_report
from pipeline.stages.detect import DetectConfig, detect
from pipeline.stages.inpaint import dilate_hole
from pipeline.stages.inpaint_stage import InpaintStageConfig, inpaint_store


def case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A clean 8-bit picture, a copy with a dark crack along row 20 (contrast 0.4) and a faint one along row 60
    (contrast ~0.02) and a white loss at rows 40-49, columns 40-49, and the labels."""
    rng = np.random.default_rng(0)
    clean = rng.integers(100, 140, (80, 100, 3)).astype(np.uint8)
    scan, labels = clean.copy(), np.zeros((80, 100), np.uint8)
    scan[20, 10:90] = clean[20, 10:90] - 100
    labels[20, 10:90] = 1
    scan[60, 10:90] = clean[60, 10:90] - 5
    labels[60, 10:90] = 1
    scan[40:50, 40:50] = 250
    labels[40:50, 40:50] = 2
    return clean, scan, labels


def test_a_perfect_fill_of_the_loss_leaves_the_cracks_unfilled_and_paints_over_nothing() -> None:
    clean, scan, labels = case()
    fill = dilate_hole(labels == 2, 2)
    restored = np.where(fill[..., None], clean, scan)
    report = residual_report(scan, restored, clean, labels, fill, dilate=2)
    loss, crack = report["classes"]["paint_loss"], report["classes"]["craquelure"]
    assert loss["visible_unfilled"] == 0.0 and loss["visible_left"] == 0.0 and loss["visible_pixels"] == 100
    assert crack["visible_unfilled"] == 1.0 and crack["visible_left"] == 1.0 and crack["visible_pixels"] == 80
    faint, strong = crack["bands"][0], crack["bands"][-1]
    assert faint["pixels"] == 80 and faint["unfilled"] == 1.0 and faint["before"] == pytest.approx(5 / 255, abs=1e-6)
    assert strong["pixels"] == 80 and strong["after"] == pytest.approx(100 / 255, abs=1e-6)
    assert report["intact"]["painted_over"] == 0.0 and report["intact"]["painted_over_pieces"] == 0


def test_a_fill_away_from_the_damage_is_intact_paint_painted_over() -> None:
    clean, scan, labels = case()
    fill = dilate_hole(labels > 0, 2)
    fill[5:8, 60:64] = True  # 12 px far from any damage
    fill[22:24, 30:32] = True  # beside the crack, within the stage's dilation plus the margin: not counted
    restored = np.where(fill[..., None], clean, scan)
    restored[5:8, 60:64] = 0  # the stage invented something there
    report = residual_report(scan, restored, clean, labels, fill, dilate=2)
    assert report["intact"]["painted_over_pixels"] == 12 and report["intact"]["painted_over_pieces"] == 1
    assert report["intact"]["changed"] == pytest.approx(12 / report["intact"]["pixels"])
    assert report["classes"]["craquelure"]["visible_unfilled"] == 0.0
    image = residual_map(scan, labels, fill, contrast(scan, clean), dilate=2)
    assert image.shape == (80, 100, 3) and tuple(image[6, 61]) == (255, 255, 0)
    assert not intact_paint(labels, 2)[20 + 5, 50] and intact_paint(labels, 2)[20 + 6, 50]


def test_sixteen_bit_pictures_score_as_their_eight_bit_copies() -> None:
    clean, scan, labels = case()
    fill = dilate_hole(labels == 2, 2)
    restored = np.where(fill[..., None], clean, scan)
    eight = residual_report(scan, restored, clean, labels, fill, dilate=2)
    wide = [a.astype(np.uint16) * 257 for a in (scan, restored, clean)]
    assert residual_report(*wide, labels, fill, dilate=2) == eight


def test_sizes_that_differ_are_refused() -> None:
    clean, scan, labels = case()
    with pytest.raises(ValueError, match="sizes differ"):
        residual_report(scan, scan, clean[:-1], labels, labels > 0)


def test_the_generator_still_makes_the_bundled_sample() -> None:
    from lab.make_samples import DAMAGED, sample_truth
    from pipeline.io.image_io import read_image

    clean, labels = sample_truth()
    damaged = read_image(DAMAGED)
    assert clean.shape == damaged.shape and labels.shape == damaged.shape[:2]
    change = contrast(damaged, clean)  # the clean picture is photographed alike: the damage alone differs
    assert (change[labels == 0] <= 0.03 + 1 / 255).mean() > 0.98 and np.median(change[labels == 2]) > 0.1


def test_evaluate_restored_on_a_store(tmp_path: Path, tiny_weights: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app
    from pipeline.io.image_io import write_png

    clean, scan, labels = case()
    store = make_store(tmp_path, scan)
    detect(store, DetectConfig(tile=256), QUIET)
    inpaint_store(store, InpaintStageConfig(tile=128, overlap=32, dilate=2), QUIET)
    write_png(tmp_path / "clean.png", clean)
    write_png(tmp_path / "labels.png", labels)
    args = ["evaluate", "restored", store, "--clean", str(tmp_path / "clean.png"), "--labels",
            str(tmp_path / "labels.png"), "--json", str(tmp_path / "r.json"), "--save", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "left unfilled" in result.output and (tmp_path / "out" / "residual-map.png").is_file()
    assert '"painted_over"' in (tmp_path / "r.json").read_text()


def test_evaluate_restored_refuses_a_store_not_restored_and_half_a_truth(
        tmp_path: Path, tiny_weights: Path, refused_in_one_line) -> None:  # noqa: ANN001
    from pipeline.io.image_io import write_png

    clean, scan, labels = case()
    store = make_store(tmp_path, scan)
    write_png(tmp_path / "clean.png", clean)
    refused_in_one_line(["evaluate", "restored", store, "--sample"], "not there yet")
    refused_in_one_line(["evaluate", "restored", store, "--clean", str(tmp_path / "clean.png")],
                        "give --sample, or both --clean and --labels")


def test_evaluate_restored_refuses_a_store_whose_damage_changed_since_it_was_filled(
        tmp_path: Path, tiny_weights: Path, refused_in_one_line) -> None:  # noqa: ANN001
    from pipeline.io.image_io import write_png

    clean, scan, labels = case()
    store = make_store(tmp_path, scan)
    detect(store, DetectConfig(tile=256), QUIET)
    inpaint_store(store, InpaintStageConfig(tile=128, overlap=32, dilate=2), QUIET)
    detect(store, DetectConfig(tile=256, threshold=0.3), QUIET)  # new labels; restored/ is from the old ones
    write_png(tmp_path / "clean.png", clean)
    write_png(tmp_path / "labels.png", labels)
    refused_in_one_line(["evaluate", "restored", store, "--clean", str(tmp_path / "clean.png"), "--labels",
                         str(tmp_path / "labels.png")], "run `retouch inpaint` again")
