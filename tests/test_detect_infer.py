"""Tile fitting and batching of detector inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pipeline.detect_infer import fit_tiles, predict_probabilities, resolve_precision


@given(length=st.integers(1, 5000), max_tile=st.sampled_from([64, 96, 512, 1216]),
       overlap=st.sampled_from([0, 16, 32, 64]))
def test_fitted_tiles_cover_the_length_with_the_overlap_and_are_fewest(length: int, max_tile: int,
                                                                       overlap: int) -> None:
    if overlap >= max_tile:
        with pytest.raises(ValueError, match="overlap"):
            fit_tiles(length, max_tile, overlap)
        return
    tile, starts = fit_tiles(length, max_tile, overlap)
    assert tile % 32 == 0 and tile <= max(max_tile, 32) and starts[0] == 0
    assert starts[-1] + tile >= length  # covered
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:], strict=False))  # overlap kept
    # fewest: one tile fewer of the largest size could not cover the length with that overlap
    n = len(starts)
    assert n == 1 or (n - 1) * max_tile - (n - 2) * overlap < length


def test_whole_chunk_with_halo_is_one_tile() -> None:
    assert fit_tiles(1024 + 2 * 96, 1216, 64) == (1216, [0])
    tile, starts = fit_tiles(1216, 512, 64)  # a GPU batch: three 448-px tiles per side, not three 512-px ones
    assert tile == 448 and len(starts) == 3


def test_batched_tiles_equal_one_at_a_time() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 2, 3, padding=1)).eval()
    image = np.random.default_rng(0).random((200, 170, 3)).astype(np.float32)
    one = predict_probabilities(model, image, tile=96, overlap=32, batch=1)
    many = predict_probabilities(model, image, tile=96, overlap=32, batch=5)
    assert one.shape == (2, 200, 170)
    np.testing.assert_allclose(many, one, atol=1e-6)
    # with the caller's own context (margin 0) the result has the input's size too
    assert predict_probabilities(model, image, tile=96, overlap=32, margin=0).shape == (2, 200, 170)


def test_precision_auto_is_bf16_only_where_the_hardware_has_it(monkeypatch) -> None:
    import pipeline.detect_infer as infer

    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    monkeypatch.setattr(infer, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(infer, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    assert resolve_precision("auto", "cuda") == "bf16"
