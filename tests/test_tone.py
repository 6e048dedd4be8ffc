"""Scores split by the tone of the paint (lab.eval.tone): dark paint hides dark cracks."""

from __future__ import annotations

import numpy as np

from lab.eval.tone import DARK, add_counts, dark_paint, format_tones, tone_counts, tone_scores


def test_a_crack_on_dark_paint_is_counted_apart_from_one_on_light_paint() -> None:
    image = np.full((60, 120, 3), 0.6, np.float32)
    image[:, :60] = 0.08  # the left half is dark paint
    image[30, 10:50] = 0.02  # a dark crack on it, which darkens its own surround a little only
    image[30, 70:110] = 0.3  # and one on the light half
    dark = dark_paint(image)
    assert dark[:, :50].all() and not dark[:, 70:].any()
    truth = np.zeros((60, 120), bool)
    truth[30, 10:50] = truth[30, 70:110] = True
    pred = np.zeros_like(truth)
    pred[30, 70:110] = True  # the light-paint crack found, the dark-paint one missed
    pred[5, 100:104] = True  # and a false mark on light paint
    counts = tone_counts(pred, truth, dark)
    assert counts == {"dark": [0, 40, 0], "light": [40, 0, 4]}
    scores = tone_scores(add_counts({}, counts))
    assert scores["dark"] == {"pixels": 40, "recall": 0.0, "precision": None}
    assert scores["light"]["recall"] == 1.0 and scores["light"]["precision"] == 40 / 44
    assert scores == tone_scores(add_counts(add_counts({}, counts), tone_counts(pred & False, truth & False, dark)))
    line = format_tones("craquelure", scores)
    assert f"on dark paint (< {DARK:g}) recall 0.000 of 40 px, precision -" in line and "elsewhere recall 1.000" in line


def test_a_grey_image_reads_as_its_own_tone() -> None:
    assert dark_paint(np.full((8, 8), 0.1, np.float32)).all()
    assert not dark_paint(np.full((8, 8), 0.5, np.float32)).any()
