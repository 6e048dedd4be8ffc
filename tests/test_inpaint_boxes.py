"""Inpainting on boxes around connected damage: coverage, composite, cost, agreement with the tiled path."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from models.pconv import PConvUNet
from pipeline.stages.inpaint import dilate_hole, inpaint_image, tiles_to_run
from pipeline.stages.inpaint_boxes import BoxStats, damage_boxes, inpaint_boxes

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model() -> PConvUNet:
    torch.manual_seed(0)
    return PConvUNet(base_channels=4, depth=3, max_channels=16, prefill="biharmonic-cg").eval()


class Counting(torch.nn.Module):
    """The network, counting its calls and the pixels it is given."""

    def __init__(self, inner: PConvUNet) -> None:
        super().__init__()
        self.inner, self.calls, self.pixels = inner, 0, 0
        self.multiple, self.training = inner.multiple, inner.training

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.pixels += x.shape[0] * x.shape[-2] * x.shape[-1]
        return self.inner(x, m)


def specks(shape: tuple[int, int], centres: list[tuple[int, int]], radius: int = 3) -> np.ndarray:
    hole = np.zeros(shape, np.uint8)
    for y, x in centres:
        cv2.circle(hole, (x, y), radius, 1, -1)
    return hole > 0


def scattered(shape: tuple[int, int], n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hole = specks(shape, [tuple(int(v) for v in rng.integers(0, shape, 2)) for _ in range(n)], 2)
    y, x = (int(v) for v in rng.integers(20, 60, 2))
    hole[y : y + 2, x : x + 50] = True  # one thin crack
    return hole


def image_of(shape: tuple[int, int], dtype: type, channels: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    return rng.integers(0, top, size=(*shape, channels), endpoint=True).astype(dtype)


@pytest.mark.parametrize("margin,multiple", [(0, 1), (5, 8), (12, 32)])
def test_boxes_cover_every_damaged_pixel_with_the_margin(margin: int, multiple: int) -> None:
    hole = scattered((150, 130), 25, seed=margin)
    boxes, owners, labels = damage_boxes(hole, margin, multiple)
    assert sorted(c for own in owners for c in own) == list(range(1, labels.max() + 1))  # each in one box
    h, w = hole.shape
    for (y0, y1, x0, x1), own in zip(boxes, owners, strict=True):
        assert (y1 - y0) % multiple == 0 or (y0, y1) == (0, h)
        assert (x1 - x0) % multiple == 0 or (x0, x1) == (0, w)
        ys, xs = np.nonzero(np.isin(labels, own) & hole)
        assert y0 <= max(0, ys.min() - margin) and y1 >= min(h, ys.max() + 1 + margin)
        assert x0 <= max(0, xs.min() - margin) and x1 >= min(w, xs.max() + 1 + margin)


def test_boxes_outside_the_core_are_dropped() -> None:
    hole = specks((200, 200), [(10, 10), (100, 100)], 2)
    boxes, _, _ = damage_boxes(hole, 4, 8, core=(50, 150, 50, 150))
    assert len(boxes) == 1 and boxes[0][0] < 100 < boxes[0][1]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_restored_equals_scan_outside_the_fill_region(model: PConvUNet, dtype: type, channels: int) -> None:
    image = image_of((90, 77), dtype, channels)
    hole = scattered((90, 77), 8, seed=2)
    hole[40:80, 10:70] = True  # one box larger than the tile: the tiled path inside it
    stats = BoxStats()
    out = inpaint_boxes(image, hole, model, tile=32, overlap=8, dilate=1, margin=4, stats=stats)
    grown = dilate_hole(hole, 1)
    assert out.dtype == image.dtype and np.array_equal(out[~grown], image[~grown])
    assert stats.tiled_boxes >= 1 and stats.boxes > stats.tiled_boxes
    assert not np.array_equal(out[grown][:, :1], image[grown][:, :1])
    if channels == 4:
        assert np.array_equal(out[:, :, 3], image[:, :, 3])


def test_scattered_damage_runs_the_network_on_the_boxes_only(model: PConvUNet) -> None:
    shape = (256, 256)
    image = image_of(shape, np.uint8, 3)
    hole = specks(shape, [(20, 20), (20, 200), (130, 120), (230, 40), (240, 240)], 3)
    boxes, _, _ = damage_boxes(hole, 8, model.multiple)
    counting = Counting(model)
    stats = BoxStats()
    inpaint_boxes(image, hole, counting, tile=64, overlap=16, margin=8, batch=1, stats=stats)
    assert counting.calls == stats.network_calls == len(boxes) == 5
    assert counting.pixels == stats.network_pixels == sum((b[1] - b[0]) * (b[3] - b[2]) for b in boxes)
    assert counting.pixels == 5 * 24 * 24  # 7-px specks + 2 x 8 margin -> 23 px, fitted to 24
    tiled = Counting(model)
    inpaint_image(image, hole, tiled, tile=64, overlap=16)
    assert tiled.calls == len(tiles_to_run(hole, 64, 16)) == 6 and tiled.pixels == 6 * 64 * 64 > 8 * counting.pixels
    batched = Counting(model)
    inpaint_boxes(image, hole, batched, tile=64, overlap=16, margin=8, batch=8)
    assert batched.calls == 1 and batched.pixels == counting.pixels  # five equal boxes, one batch


def test_near_specks_share_a_box_far_ones_do_not() -> None:
    hole = specks((300, 300), [(50, 50), (50, 58), (250, 250)], 2)
    boxes, _, labels = damage_boxes(hole, 8, 8)
    assert len(boxes) == 2 and labels[50, 50] == labels[50, 58] != labels[250, 250]
    assert any(y0 <= 50 < y1 and x0 <= 50 and 58 < x1 for y0, y1, x0, x1 in boxes)


def test_same_bytes_as_the_tiled_path_where_one_box_is_one_tile(model: PConvUNet) -> None:
    # damage spread over the whole 64-px image: one box, the whole image, exactly the tiled path's one tile
    image = image_of((64, 64), np.uint16, 3)
    hole = scattered((64, 64), 12, seed=3)
    tiled = inpaint_image(image, hole, model, tile=64, overlap=16, dilate=1)
    boxed = inpaint_boxes(image, hole, model, tile=64, overlap=16, dilate=1, margin=64)
    assert np.array_equal(tiled, boxed)


def test_fill_close_to_the_tiled_path_on_scattered_damage(model: PConvUNet) -> None:
    """Tolerance: mean |difference| over the fill under 2% of full scale, on a smooth painting-like image."""
    yy, xx = np.mgrid[0:192, 0:192] / 192
    image = np.stack([0.5 + 0.3 * np.sin(5 * yy + c) * np.cos(4 * xx) for c in range(3)], -1)
    image = (image * 255).astype(np.uint8)
    hole = scattered((192, 192), 10, seed=4)
    tiled = inpaint_image(image, hole, model, tile=64, overlap=16).astype(float)
    boxed = inpaint_boxes(image, hole, model, tile=64, overlap=16, margin=16).astype(float)
    assert np.array_equal(tiled[~hole], boxed[~hole])
    assert np.abs(tiled - boxed)[hole].mean() < 0.02 * 255


class ConvDtypes(torch.nn.Module):
    """The network, noting the dtypes its convolutions returned."""

    def __init__(self, inner: PConvUNet) -> None:
        super().__init__()
        self.inner, self.dtypes = inner, set()
        self.multiple, self.training = inner.multiple, inner.training
        for conv in inner.modules():
            if isinstance(conv, torch.nn.Conv2d):
                conv.register_forward_hook(lambda _m, _i, out: self.dtypes.add(out.dtype))

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return self.inner(x, m)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_bf16_runs_the_convolutions_in_bf16_keeps_the_scan_and_stays_near_fp32(dtype: type) -> None:
    torch.manual_seed(0)
    inner = PConvUNet(base_channels=4, depth=3, max_channels=16, prefill="biharmonic-cg").eval()
    image = image_of((96, 112), dtype, 3)
    hole = scattered((96, 112), 6, seed=3)
    ref = inpaint_boxes(image, hole, ConvDtypes(inner), dilate=1, margin=8)
    net = ConvDtypes(inner)
    out = inpaint_boxes(image, hole, net, dilate=1, margin=8, bf16=True)
    assert net.dtypes == {torch.bfloat16}
    assert out.dtype == dtype
    region = dilate_hole(hole, 1)
    assert np.array_equal(out[~region], image[~region])
    top = float(np.iinfo(dtype).max)
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))[region] / top
    assert diff.max() < 0.02  # bf16 rounding of the correction, not another fill
    tiled = inpaint_image(image, hole, ConvDtypes(inner), tile=64, overlap=16, dilate=1, bf16=True)
    assert np.array_equal(tiled[~region], image[~region])
