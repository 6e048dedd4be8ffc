"""The image border judged twice (pipeline.stages.detect_border): reflection and edge copies must both see a mark."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.stages.detect_border import CONTEXT, at_border, border_strips, edge_filled
from pipeline.stages.detect_infer import detect_probabilities, predict_probabilities


def test_strips_lie_along_the_reflected_sides_only() -> None:
    assert border_strips((300, 400), (0, 300, 0, 400), 16) == []  # no reflection: nothing to do
    assert border_strips((300, 400), (20, 300, 0, 400), 0) == []  # the rule off
    [(strip, band)] = border_strips((300, 400), (20, 300, 0, 400), 16)  # reflected above only
    assert band == (20, 36, 0, 400) and strip == (0, 20 + 16 + CONTEXT, 0, 400)
    pairs = border_strips((300, 400), (20, 280, 30, 370), 16)
    assert len(pairs) == 4
    for (sy0, sy1, sx0, sx1), (by0, by1, bx0, bx1) in pairs:
        assert sy0 <= by0 < by1 <= sy1 and sx0 <= bx0 < bx1 <= sx1  # the band inside its strip
        assert 20 <= by0 and by1 <= 280 and 30 <= bx0 and bx1 <= 370  # and inside the image
        assert min(by1 - by0, bx1 - bx0) == 16
    small = border_strips((40, 40), (8, 32, 8, 32), 16)  # an image smaller than the band: the strip is the block
    assert all(strip == (0, 40, 0, 40) for strip, _ in small)
    with pytest.raises(ValueError, match="not inside"):
        border_strips((300, 400), (0, 301, 0, 400), 16)


def test_edge_filling_copies_the_nearest_image_pixel() -> None:
    block = np.arange(10 * 12 * 3, dtype=np.float32).reshape(10, 12, 3)
    out = edge_filled(block, (2, 8, 3, 9))
    np.testing.assert_array_equal(out[2:8, 3:9], block[2:8, 3:9])
    np.testing.assert_array_equal(out[0, 0], block[2, 3])
    np.testing.assert_array_equal(out[9, 11], block[7, 8])
    np.testing.assert_array_equal(out[5, 0], block[5, 3])


def test_the_band_falls_to_the_second_opinion_and_nothing_else_changes() -> None:
    rng = np.random.default_rng(0)
    padded = rng.random((200, 240, 3)).astype(np.float32)
    real = (10, 200, 0, 240)  # reflected above only
    prob = rng.random((2, 200, 240)).astype(np.float32)
    before = prob.copy()
    seen = []

    def predict(strip: np.ndarray) -> np.ndarray:
        seen.append(strip)
        return np.full((2, *strip.shape[:2]), 0.25, np.float32)

    run = at_border(prob, padded, real, 16, predict)
    [strip] = seen
    assert run == strip.shape[0] * strip.shape[1] == (10 + 16 + CONTEXT) * 240
    np.testing.assert_array_equal(strip[:10], np.broadcast_to(padded[10], (10, 240, 3)))  # edge copies above
    np.testing.assert_array_equal(strip[10:], padded[10 : 10 + 16 + CONTEXT])
    band = prob[:, 10:26]
    np.testing.assert_array_equal(band, np.minimum(before[:, 10:26], 0.25))
    np.testing.assert_array_equal(prob[:, :10], before[:, :10])
    np.testing.assert_array_equal(prob[:, 26:], before[:, 26:])


class _Calls(torch.nn.Module):
    """A small fixed conv net that counts the pixels it is run over."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, padding=2), torch.nn.ReLU(),
                                       torch.nn.Conv2d(8, 2, 5, padding=2))
        self.pixels = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.pixels += x.shape[0] * x.shape[2] * x.shape[3]
        return self.net(x)


def test_the_rule_only_lowers_the_band_and_costs_one_pass_over_the_strips() -> None:
    model = _Calls().eval()
    image = np.random.default_rng(1).random((320, 448, 3)).astype(np.float32)
    with torch.no_grad():
        plain = predict_probabilities(model, image, tile=512, overlap=64, views=2)
        plain_pixels, model.pixels = model.pixels, 0
        ruled = predict_probabilities(model, image, tile=512, overlap=64, views=2, border=16)
    assert (ruled <= plain).all()
    np.testing.assert_array_equal(ruled[:, 16:-16, 16:-16], plain[:, 16:-16, 16:-16])
    assert (ruled[:, :16] < plain[:, :16]).any()
    # one view over four strips of at most (margin + band + CONTEXT) rounded up to 32, across the padded image
    assert plain_pixels < model.pixels <= plain_pixels + 4 * 160 * 512
    # the same block handed over with its reflection already made (the stage's halo): the same answer
    halo = 32
    reflected = np.pad(image, ((halo, halo), (halo, halo), (0, 0)), mode="reflect")
    staged = predict_probabilities(model, reflected, tile=512, overlap=64, views=2, margin=0, border=16,
                                   real=(halo, halo + 320, halo, halo + 448))[:, halo:-halo, halo:-halo]
    np.testing.assert_allclose(staged, ruled, atol=1e-6)


VERSPRONCK = "Johannes_Corenlisz_Verspronck_-_Andries_Stilte_as_a_Standard_Bearer_(1640).jpg"


def test_a_flag_pole_cut_by_the_frame_is_no_longer_taken_for_paint_loss(shared_data: Path) -> None:
    """A VAL painting, intact: the flag pole cut by its left edge, reflected, reads as a blob of paint loss."""
    from models.weights import MANIFEST_PATH, load_model
    from pipeline.io.image_io import as_rgb, read_image, to_float
    from pipeline.stages.detect import DEFAULT_TTA, DEFAULT_WEIGHTS

    path = shared_data / "nga_paintings" / "Dutch" / VERSPRONCK
    if not path.exists():
        pytest.skip(f"{path} is not here")
    crop = to_float(as_rgb(read_image(path)))[864:1056, 0:192]  # the pole at y 944-984, x 0-29
    model, _ = load_model(DEFAULT_WEIGHTS, manifest_path=MANIFEST_PATH)
    with torch.no_grad():
        before = detect_probabilities(model, crop, tile=1216, overlap=64, views=DEFAULT_TTA, border=0)[1] >= 0.5
        after = detect_probabilities(model, crop, tile=1216, overlap=64, views=DEFAULT_TTA, border=16)[1] >= 0.5
    assert before[:, :32].sum() > 200
    assert after.sum() < before.sum() / 4


def test_the_coarse_pass_sees_the_real_part_at_half_size() -> None:
    from pipeline.stages.detect_infer import half_region

    assert half_region((96, 1216, 0, 1216), (608, 608)) == (48, 608, 0, 608)
    assert half_region((1, 2, 0, 3), (1, 1)) == (0, 1, 0, 1)  # never empty
