"""benchmarks/threshold_headroom.py: strict F1 per threshold, each image's best, and the 2-px tolerant F1."""

from __future__ import annotations

import numpy as np
import pytest
from benchmark_module import benchmark_module


def _tool():
    return benchmark_module("threshold_headroom")


def test_each_image_s_best_threshold_and_the_edge_tolerance() -> None:
    tool = _tool()
    truth = np.zeros((40, 40), bool)
    truth[20, 5:35] = True  # a 1-px crack
    faint = np.where(truth, 0.35, 0.0)  # found only from a threshold of 0.3 down
    shifted = np.zeros((40, 40))
    shifted[21, 5:35] = 0.9  # found 1 px off its label
    rows = [tool.image_row(faint, truth), tool.image_row(shifted, truth)]
    assert rows[0]["f1"][tool.THRESHOLDS.index(0.3)] == pytest.approx(1.0)
    assert rows[0]["f1"][tool.THRESHOLDS.index(0.5)] == 0.0
    assert rows[1]["f1"] == [0.0] * len(tool.THRESHOLDS)
    assert rows[1]["tolerant_f1"] == pytest.approx(1.0) and rows[0]["tolerant_f1"] == 0.0
    summary = tool.set_summary(rows)
    assert summary["at_half"] == 0.0 and summary["per_image_best"] == pytest.approx(0.5)
    assert summary["best_single"] == pytest.approx(0.5) and summary["best_single_threshold"] in (0.1, 0.2, 0.3)
    assert summary["tolerant_at_half"] == pytest.approx(0.5)
