"""The coarse paint-loss pass's region rules: anchored to the full-size pass, trimmed to the exposed ground."""

from __future__ import annotations

import numpy as np

from pipeline.stages.coarse_loss import COARSE_RING, ground_only


def test_the_pass_keeps_the_ground_and_drops_its_spill_onto_the_paint_around() -> None:
    rgb = np.zeros((120, 140, 3), np.float32)
    rgb[...] = (0.35, 0.22, 0.12)  # brown paint
    rgb[30:80, 40:100] = (0.92, 0.88, 0.78)  # a loss exposing cream gesso
    rgb[30:80, 40:100] += np.random.default_rng(0).normal(0, 0.02, (50, 60, 1)).astype(np.float32)  # its grain
    coarse = np.zeros((120, 140), np.float32)
    coarse[25:85, 35:105] = 0.9  # the half-size region, 5 px past the loss on every side
    out = ground_only(coarse, np.clip(rgb, 0, 1), np.zeros((120, 140), bool), 0.5)
    np.testing.assert_array_equal(out[30:80, 40:100], coarse[30:80, 40:100])  # the ground, every pixel
    spill = coarse > 0
    spill[30:80, 40:100] = False
    assert out[spill].max() == 0  # the paint it spread onto
    assert out.dtype == np.float32


def test_a_region_the_colour_of_its_surround_is_dropped_and_one_without_a_surround_kept() -> None:
    rgb = np.full((80, 80, 3), 0.5, np.float32)  # one flat colour: nothing exposed
    coarse = np.zeros((80, 80), np.float32)
    coarse[20:50, 20:50] = 0.8
    assert ground_only(coarse, rgb, np.zeros((80, 80), bool), 0.5).max() == 0
    marked = np.ones((80, 80), bool)  # all the surround marked by the full-size pass: no colour to compare with
    np.testing.assert_array_equal(ground_only(coarse, rgb, marked, 0.5), coarse)
    assert COARSE_RING[0] < COARSE_RING[1]
