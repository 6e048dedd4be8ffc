"""The thin-line check (retouch evaluate thin-lines): cases, figures, and the CLI on a tiny detector."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from lab.eval.thin_lines import ALL_KINDS, THIN_KINDS, WIDE_KINDS, format_thin_lines, thin_line_cases, thin_line_report
from lab.synthesis.negatives import paint_negatives


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = np.full((200, 240, 3), 0.6, np.float32) + rng.normal(0, 0.01, (200, 240, 3)).astype(np.float32)
    return [np.clip(base, 0, 1), np.clip(base[::-1] * 0.8, 0, 1)]


def test_cases_paint_one_kind_only_where_the_lines_are_and_are_seeded() -> None:
    for kind in ALL_KINDS:
        cases = thin_line_cases(_images(), kind, copies=1, crop=128)
        again = thin_line_cases(_images(), kind, copies=1, crop=128)
        assert len(cases) == 2
        for (plain, painted, lines), (_, painted2, _) in zip(cases, again, strict=True):
            assert plain.shape == painted.shape == (128, 128, 3) and lines.shape == (128, 128)
            assert np.array_equal(painted, painted2)
            assert lines.any(), kind
            changed = np.abs(painted - plain).max(axis=2) > 1e-6
            assert changed[lines].mean() > 0.9  # the line pixels were painted ...
    with pytest.raises(ValueError, match="kind"):
        thin_line_cases(_images(), "wood")
    with pytest.raises(ValueError, match="unknown negative"):
        paint_negatives(_images()[0], np.random.default_rng(0), kinds=("scratch",))


def test_report_counts_flagged_line_pixels_and_area() -> None:
    def nothing(image: np.ndarray) -> np.ndarray:
        return np.zeros((2, *image.shape[:2]), np.float32)

    def changed_pixels(image: np.ndarray) -> np.ndarray:  # flags whatever differs from the flat paint
        dev = np.abs(image - np.median(image, axis=(0, 1))).max(axis=2) > 0.05
        return np.stack([dev, np.zeros_like(dev)]).astype(np.float32)

    quiet = thin_line_report(nothing, _images(), copies=1, crop=128)
    assert all(v["line_flagged"] == 0 and v["area_flagged"] == 0 for v in quiet["kinds"].values())
    loud = thin_line_report(changed_pixels, _images(), copies=1, crop=128)
    assert loud["kinds"]["rigging"]["line_flagged"] > 0.5
    assert all(v["area_flagged"] > v["area_flagged_plain"] for v in loud["kinds"].values())
    assert loud["worst_kind"] in THIN_KINDS and "worst kind" in format_thin_lines(loud)
    # The wide strokes and birds are reported apart; the thin kinds' mean is theirs alone.
    assert set(loud["kinds"]) == set(THIN_KINDS) and set(loud["wide_kinds"]) == set(WIDE_KINDS)
    assert loud["line_flagged_mean"] == pytest.approx(np.mean([v["line_flagged"] for v in loud["kinds"].values()]))
    assert loud["wide_flagged_mean"] > 0.5 and quiet["wide_flagged_mean"] == 0
    assert "wide strokes and birds" in format_thin_lines(loud)


def test_evaluate_thin_lines_with_a_detector_that_flags_everything(tmp_path: Path) -> None:
    from test_intact_eval import _detector, _paintings

    from lab.eval.thin_lines import evaluate_thin_lines

    manifest = tmp_path / "w" / "manifest.json"
    _detector(manifest, "all", (4.0, -4.0))
    report = evaluate_thin_lines("all", tta=1, copies=1, crop=48, paths=_paintings(tmp_path / "p")[:1],
                                 manifest=manifest, save_dir=tmp_path / "out", tile=128)
    assert all(v["line_flagged"] == 1.0 and v["area_flagged"] == 1.0 for v in report["kinds"].values())
    assert Path(report["worst_case"]).is_file()
    json.dumps(report)


def test_evaluate_thin_lines_command_refuses_bad_options(refused_in_one_line: Callable[[list[str], str], None]) -> None:
    refused_in_one_line(["evaluate", "thin-lines", "--copies", "0"], "--copies must be >= 1")
    refused_in_one_line(["evaluate", "thin-lines", "--threshold", "1.5"], "--threshold must be in")
