"""Tile fitting and batching of detector inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pipeline.stages.detect_infer import fit_tiles, predict_probabilities, resolve_precision, tile_probabilities


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
    import pipeline.stages.detect_infer as infer

    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    monkeypatch.setattr(infer, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(infer, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    assert resolve_precision("auto", "cuda") == "bf16"


def _conv_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(8, 2, 3, padding=1)).eval()


@pytest.mark.parametrize("shape", [(64, 64), (64, 96)])
def test_tta_averages_the_flipped_predictions_mapped_back(shape: tuple[int, int]) -> None:
    model = _conv_net()
    x = torch.rand(2, 3, *shape)
    with torch.inference_mode():
        views = [model(x), model(x.flip(-1)).flip(-1), model(x.flip(-2)).flip(-2), model(x.flip(-2, -1)).flip(-2, -1)]
        views += [model(x.transpose(-2, -1).flip(d)).flip(d).transpose(-2, -1) for d in [(-1,), (-2,), (-2, -1)]]
        views.insert(4, model(x.transpose(-2, -1)).transpose(-2, -1))
        probs = [torch.sigmoid(v) for v in views]
        for n in (1, 2, 4, 8):
            torch.testing.assert_close(tile_probabilities(model, x, views=n), sum(probs[:n]) / n)
    assert not torch.allclose(probs[0], probs[1])  # the net is not flip-invariant: the views differ


@pytest.mark.parametrize("shape", [(64, 64), (64, 96)])
def test_the_second_view_is_the_turned_tile_and_paint_loss_needs_every_view(shape: tuple[int, int]) -> None:
    from pipeline.stages.detect_infer import Views

    model = _conv_net()
    x = torch.rand(2, 3, *shape)
    with torch.inference_mode():
        one = torch.sigmoid(model(x))
        half = torch.sigmoid(model(x.flip(-2, -1))).flip(-2, -1)
        quarter = torch.sigmoid(model(x.transpose(-2, -1).flip(-1))).flip(-1).transpose(-2, -1)
        for turned, name in ((half, "half-turn"), (quarter, "quarter-turn")):
            mean = (one + turned) / 2
            torch.testing.assert_close(tile_probabilities(model, x, views=Views(2, name)), mean)
            fused = tile_probabilities(model, x, views=Views(2, name, 0.5))
            low = torch.minimum(one[:, 1], turned[:, 1])
            agreed = low >= 0.5
            assert agreed.any() and (~agreed).any()
            torch.testing.assert_close(fused[:, 0], mean[:, 0])  # craquelure: the mean
            torch.testing.assert_close(fused[:, 1][agreed], mean[:, 1][agreed])  # loss seen in both: the mean
            torch.testing.assert_close(fused[:, 1][~agreed], low[~agreed])  # else the lower view
        assert torch.equal(tile_probabilities(model, x, views=Views(2, "mirror", 0.0)),
                           tile_probabilities(model, x, views=2))
        mirrored = lambda t: model(t.flip(-1)).flip(-1)  # noqa: E731
        beside = lambda t: torch.cat([model(t), mirrored(t)], 1)  # noqa: E731  (an adapted net and its base)
        plan = Views(2, "half-turn", 0.5)
        fused = tile_probabilities(beside, x, views=plan)  # each network's loss channel fused on its own
        torch.testing.assert_close(fused, torch.cat([tile_probabilities(model, x, views=plan),
                                                     tile_probabilities(mirrored, x, views=plan)], 1))
    for bad in ({"count": 3}, {"count": 2, "second": "sideways"}, {"count": 2, "loss_agreement": 1.0}):
        with pytest.raises(ValueError, match="must be"):
            Views(**bad)
    assert Views(2, "quarter-turn").indices() == (0, 5) and Views(4, "quarter-turn").indices() == (0, 1, 2, 3)


@pytest.mark.parametrize("shape", [(128, 128), (96, 160)])
def test_a_small_second_view_is_the_shrunk_mirror_or_half_turn_scaled_back(shape: tuple[int, int]) -> None:
    import torch.nn.functional as F

    from pipeline.stages.detect_infer import SMALL_VIEW, Views, small_size

    model = _conv_net()
    x = torch.rand(2, 3, *shape)
    size = (small_size(shape[0], SMALL_VIEW), small_size(shape[1], SMALL_VIEW))
    assert all(n % 32 == 0 and n < m for n, m in zip(size, shape, strict=True))
    with torch.inference_mode():
        one = torch.sigmoid(model(x))
        for name, dims in (("small-mirror", (-1,)), ("small-half-turn", (-2, -1))):
            shrunk = F.interpolate(x.flip(dims), size=size, mode="area")
            back = F.interpolate(model(shrunk), size=shape, mode="bilinear", align_corners=False)
            second = torch.sigmoid(back).flip(dims)
            torch.testing.assert_close(tile_probabilities(model, x, views=Views(2, name)), (one + second) / 2)
            assert not torch.allclose(second, torch.sigmoid(model(x.flip(dims))).flip(dims))  # not the full view
    assert Views(2, "small-mirror").sides() == (1.0, SMALL_VIEW) and Views(2, "mirror").sides() == (1.0, 1.0)
    assert Views(4, "small-mirror").sides() == (1.0,) * 4  # only a second of two views is small
    assert small_size(512, SMALL_VIEW) == 416 and small_size(20, SMALL_VIEW) == 32


def test_small_loss_regions_keep_the_mean_of_the_views_under_the_agreement() -> None:
    from pipeline.stages.detect_infer import AREA_THRESHOLD, Views, small_regions

    mask = np.zeros((1, 1, 12, 12), bool)
    mask[0, 0, 1:3, 1:3] = True  # 4 px
    mask[0, 0, 5:10, 5:10] = True  # 25 px
    mask[0, 0, 10, 10] = True  # touches the block diagonally: 26 px, one region (8-connected)
    small = small_regions(mask, 5)
    assert small[0, 0, 1:3, 1:3].all() and small.sum() == 4
    assert not small_regions(mask, 0).any() and small_regions(mask, 27).sum() == 30
    model = _conv_net()
    with torch.inference_mode():
        x = torch.rand(2, 3, 64, 64)
        mean = tile_probabilities(model, x, views=Views(2, "mirror"))
        trimmed = tile_probabilities(model, x, views=Views(2, "mirror", 0.5))
        kept = tile_probabilities(model, x, views=Views(2, "mirror", 0.5, 40))
        small = torch.from_numpy(small_regions(mean[:, 1:2].numpy() > AREA_THRESHOLD, 40))[:, 0]
        assert small.any() and (~small & (trimmed[:, 1] != mean[:, 1])).any()
        assert (small & (trimmed[:, 1] != mean[:, 1])).any()  # the agreement alone trims a small region
        torch.testing.assert_close(kept[:, 1][small], mean[:, 1][small])
        torch.testing.assert_close(kept[:, 1][~small], trimmed[:, 1][~small])
        torch.testing.assert_close(kept[:, 0], mean[:, 0])
    with pytest.raises(ValueError, match="agreement area must be"):
        Views(2, "mirror", 0.5, -1)


def test_tta_keeps_a_pointwise_model_unchanged_through_the_tiling() -> None:
    model = torch.nn.Conv2d(3, 2, 1).eval()  # a per-pixel model gives the same answer in every orientation
    image = np.random.default_rng(0).random((150, 210, 3), dtype=np.float32)
    one = predict_probabilities(model, image, tile=64, overlap=16)
    for n in (2, 8):
        np.testing.assert_allclose(predict_probabilities(model, image, tile=64, overlap=16, views=n), one, atol=1e-6)
    with pytest.raises(ValueError, match="views must be one of"):
        predict_probabilities(model, image, views=3)


def test_tta_setting_is_checked_everywhere(tmp_path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app
    from flows.cli.common import DEFAULT_TTA, DEFAULT_WEIGHTS, TTA_VIEWS
    from lab.eval.detect_eval import EvalOptions
    from pipeline.stages import detect
    from pipeline.stages.detect import DetectConfig
    from pipeline.stages.detect_infer import VIEWS

    assert TTA_VIEWS == VIEWS
    assert DEFAULT_TTA == detect.DEFAULT_TTA == DetectConfig().tta == EvalOptions().tta == 2
    assert DEFAULT_WEIGHTS == detect.DEFAULT_WEIGHTS == EvalOptions().weights
    from flows.cli.common import DEFAULT_COARSE_LOSS, DEFAULT_MIN_CRACK
    from flows.params import DetectParams

    assert DEFAULT_COARSE_LOSS == detect.DEFAULT_COARSE_LOSS == DetectConfig().coarse_loss == EvalOptions().coarse_loss
    assert DEFAULT_COARSE_LOSS == DetectParams().coarse_loss
    assert DEFAULT_MIN_CRACK == detect.DEFAULT_MIN_CRACK == DetectConfig().min_crack == EvalOptions().min_crack
    assert DEFAULT_MIN_CRACK == DetectParams().min_crack
    from flows.cli.common import DEFAULT_STRAIGHT

    assert DEFAULT_STRAIGHT == detect.DEFAULT_STRAIGHT == DetectConfig().straight == EvalOptions().straight
    assert DEFAULT_STRAIGHT == DetectParams().straight
    from flows.cli.common import DEFAULT_PAINT_LIKE

    assert DEFAULT_PAINT_LIKE == detect.DEFAULT_PAINT_LIKE == DetectConfig().paint_like == EvalOptions().paint_like
    assert DEFAULT_PAINT_LIKE == DetectParams().paint_like
    from flows.cli.common import DEFAULT_BORDER

    assert DEFAULT_BORDER == detect.DEFAULT_BORDER == DetectConfig().border == EvalOptions().border
    assert DEFAULT_BORDER == DetectParams().border
    from flows.cli.common import DEFAULT_SCALE

    assert DEFAULT_SCALE == detect.DEFAULT_SCALE == DetectConfig().scale == EvalOptions().scale == DetectParams().scale
    from flows.cli.common import DEFAULT_LOSS_AGREEMENT, DEFAULT_SECOND_VIEW, SECOND_VIEWS
    from pipeline.stages import detect_infer

    assert SECOND_VIEWS == tuple(detect_infer.SECOND_VIEWS)
    from typing import get_args

    from flows.params import SecondView

    assert get_args(SecondView) == tuple(detect_infer.SECOND_VIEWS)  # the flows' parameter type names the same views
    assert DEFAULT_SECOND_VIEW == detect.DEFAULT_SECOND_VIEW == DetectConfig().second_view == EvalOptions().second_view
    assert DEFAULT_SECOND_VIEW == DetectParams().second_view
    assert DEFAULT_LOSS_AGREEMENT == detect.DEFAULT_LOSS_AGREEMENT == DetectConfig().loss_agreement
    assert DEFAULT_LOSS_AGREEMENT == EvalOptions().loss_agreement == DetectParams().loss_agreement
    from flows.cli.common import DEFAULT_AGREEMENT_AREA

    assert DEFAULT_AGREEMENT_AREA == detect.DEFAULT_AGREEMENT_AREA == DetectConfig().agreement_area
    assert DEFAULT_AGREEMENT_AREA == EvalOptions().agreement_area == DetectParams().agreement_area
    with pytest.raises(ValueError, match="second view must be one of"):
        DetectConfig(second_view="sideways")
    with pytest.raises(ValueError, match="loss agreement must be in"):
        EvalOptions(loss_agreement=1.5)
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        EvalOptions(tolerance=-1.0)
    with pytest.raises(ValueError, match="mask_value selects one class"):
        EvalOptions(mask_value=255)
    with pytest.raises(ValueError, match="scale must be in"):
        DetectConfig(scale=3.0)
    with pytest.raises(ValueError, match="border must be >= 0"):
        DetectConfig(border=-1)
    with pytest.raises(ValueError, match="tta must be one of"):
        DetectConfig(tta=3)
    for args in (["detect", str(tmp_path / "x.zarr"), "--tta", "3"],
                 ["evaluate", "detect", "--images", str(tmp_path), "--masks", str(tmp_path), "--tta", "5"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and "--tta must be one of 1, 2, 4, 8" in result.output
    result = CliRunner().invoke(app, ["detect", str(tmp_path / "x.zarr"), "--second-view", "sideways"])
    assert result.exit_code == 2 and "--second-view must be one of mirror, half-turn" in result.output


def test_the_default_detection_runs_the_network_twice_over_a_pixel_and_a_quarter_more_where_a_loss_is_marked(
) -> None:
    """Issue 21's limit is 2 passes per pixel; the default detection takes 2 (two views of one network, counted
    with forward hooks on the shipped weights, not read from the manifest) and, in a block where the full-size pass
    marks a loss, the coarse pass's one view at half size on top: 2 + 1/4 there (rule 2026-12-05d takes that
    knowingly)."""
    from models.resunet import ResUNet
    from models.weights import MANIFEST_PATH, load_model
    from pipeline.stages.detect import DEFAULT_COARSE_LOSS, DEFAULT_SECOND_VIEW, DEFAULT_TTA, DEFAULT_WEIGHTS
    from pipeline.stages.detect_infer import COARSE_SCALE, SMALL_VIEW, Views, detect_probabilities, small_size

    def passes(model: torch.nn.Module, image: np.ndarray, networks: type,
               views: Views = Views(DEFAULT_TTA, DEFAULT_SECOND_VIEW)) -> float:
        pixels = []
        for module in model.modules():
            if isinstance(module, networks):
                module.register_forward_hook(lambda _m, args, _o: pixels.append(args[0].shape[-2:].numel()))
        detect_probabilities(model, image, tile=128, overlap=16, views=views, coarse_loss=DEFAULT_COARSE_LOSS)
        return sum(pixels) / 128**2  # the image and its margin fill one 128-px tile

    assert DEFAULT_SECOND_VIEW == "mirror"
    model, _ = load_model(DEFAULT_WEIGHTS, manifest_path=MANIFEST_PATH)
    assert passes(model, np.full((96, 96, 3), 0.5, np.float32), ResUNet) == 2  # no loss marked: no coarse pass
    lossy = np.zeros((96, 96, 3), np.float32)
    lossy[30:70, 30:70] = 1.0  # the stand-in marks it as loss, so the coarse pass runs
    assert DEFAULT_COARSE_LOSS and passes(_BrightIsLoss(), lossy, _BrightIsLoss) == 2 + 1 / COARSE_SCALE**2
    small = passes(_BrightIsLoss(), lossy, _BrightIsLoss, Views(2, "small-half-turn"))  # the smaller second view
    assert small == 1 + (small_size(128, SMALL_VIEW) / 128) ** 2 + 1 / COARSE_SCALE**2 and small <= 2


class _BrightIsLoss(torch.nn.Module):
    """Craquelure logit from the red channel, paint-loss logit high where the pixel is bright (a stand-in whose
    output is known pixel by pixel)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(20.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bright = x.mean(dim=1, keepdim=True)
        return torch.cat([x[:, :1] - 0.5, bright - 0.5], dim=1) * self.scale


def test_the_coarse_loss_pass_keeps_wide_losses_and_drops_thin_lines_and_leaves_craquelure_alone() -> None:
    from pipeline.stages.coarse_loss import anchored, ground_only
    from pipeline.stages.detect_infer import COARSE_OPENING, coarse_loss_probability, detect_probabilities

    image = np.zeros((160, 192, 3), np.float32)
    image[40:100, 40:110] = 1.0  # a loss 60 x 70 px
    image[130:133, 10:180] = 1.0  # a painted line 3 px wide
    image[5:9, 150:154] = 1.0  # a flake 4 px across
    model = _BrightIsLoss()
    coarse = coarse_loss_probability(model, image, tile=128, overlap=32)[0]
    assert coarse.shape == (160, 192)
    assert coarse[50:90, 50:100].min() > 0.9  # the loss's core
    assert coarse[126:137, :].max() < 0.5 and coarse[0:14, 145:160].max() < 0.5  # narrower than COARSE_OPENING
    assert COARSE_OPENING > 4
    plain = predict_probabilities(model, image, tile=128, overlap=32, views=2)
    both = detect_probabilities(model, image, tile=128, overlap=32, views=2, coarse_loss=True)
    np.testing.assert_array_equal(detect_probabilities(model, image, tile=128, overlap=32, views=2), plain)
    np.testing.assert_array_equal(both[0], plain[0])
    kept = ground_only(anchored(coarse, plain[1], 0.5), image, (plain >= 0.5).any(axis=0), 0.5)
    np.testing.assert_array_equal(both[1], np.maximum(plain[1], kept))
    assert (both[1][40:100, 40:110] >= 0.5).all()  # the loss, marked in part at full size, is kept whole


def test_the_coarse_pass_keeps_only_regions_the_full_size_pass_marks_in_part() -> None:
    from pipeline.stages.coarse_loss import anchored

    coarse = np.zeros((60, 90), np.float32)
    coarse[5:30, 5:35] = 0.9  # a large loss seen whole at half size
    coarse[35:55, 50:85] = 0.8  # a white flower that looks like one at half size
    coarse[40:45, 5:10] = 0.3  # below the threshold: never a region
    loss = np.zeros_like(coarse)
    loss[6:9, 30:34] = 0.7  # its chipped edge, marked at full size
    loss[50, 60] = 0.4  # under the threshold: no anchor
    out = anchored(coarse, loss, 0.5)
    np.testing.assert_array_equal(out[5:30, 5:35], coarse[5:30, 5:35])
    assert out[30:, :].max() == 0 and out.dtype == np.float32
    assert anchored(coarse, np.zeros_like(loss), 0.5).max() == 0


def test_the_coarse_pass_adds_only_regions_the_full_size_pass_marks_in_part(monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.stages.detect_infer as infer

    seen = np.zeros((96, 128), np.float32)
    seen[10:40, 10:50] = 0.95  # what the half-size pass calls a loss: a bright flower at full size
    seen[50:90, 60:120] = 0.95  # and a real loss, whose bright edge the full-size pass marks
    monkeypatch.setattr(infer, "coarse_loss_probability", lambda *args: seen[None].copy())
    image = np.zeros((96, 128, 3), np.float32)
    image[50:90, 60:120] = 0.45  # the exposed ground: unlike the paint around it, under the threshold at full size
    image[50:52, 60:120] = 1.0  # its bright edge: marked as loss at full size
    model = _BrightIsLoss()
    plain = infer.detect_probabilities(model, image, tile=128, overlap=32)
    both = infer.detect_probabilities(model, image, tile=128, overlap=32, coarse_loss=True)
    np.testing.assert_array_equal(both[0], plain[0])
    assert (both[1][50:90, 60:120] >= 0.95).all()  # the loss, whole (the pass's region ends at its edge here)
    np.testing.assert_array_equal(both[1][:45], plain[1][:45])  # the flower: nothing added
    dark = np.zeros_like(image)  # no loss at full size: the pass adds nothing at all
    np.testing.assert_array_equal(infer.detect_probabilities(model, dark, tile=128, overlap=32, coarse_loss=True),
                                  infer.detect_probabilities(model, dark, tile=128, overlap=32))


def test_the_coarse_loss_pass_reads_an_integer_scan_as_its_float_copy() -> None:
    from pipeline.stages.detect_infer import coarse_loss_probability

    rng = np.random.default_rng(1)
    image = (rng.random((96, 130, 3)) > 0.5).astype(np.float32)
    image[20:80, 20:90] = 1.0
    model = _BrightIsLoss()
    eight = coarse_loss_probability(model, (image * 255).astype(np.uint8), tile=128, overlap=32)
    np.testing.assert_allclose(eight, coarse_loss_probability(model, image, tile=128, overlap=32), atol=1e-5)


def test_the_coarse_loss_min_crack_and_border_settings_enter_the_stage_key_only_when_on() -> None:
    """Stores detected before the settings existed keep their key (no recompute) while they are off."""
    import dataclasses
    import hashlib
    import json

    from pipeline import __version__
    from pipeline.stages.detect import DetectConfig, detect_key

    off = DetectConfig(coarse_loss=False, min_crack=0, straight=0, second_view="mirror", loss_agreement=0.0,
                       agreement_area=0)
    on = dataclasses.replace(off, coarse_loss=True)
    before = {k: v for k, v in dataclasses.asdict(off).items()
              if k not in ("manifest", "coarse_loss", "min_crack", "straight", "paint_like", "border", "scale",
                           "second_view", "loss_agreement", "agreement_area")}
    payload = json.dumps({"scan": "s", "config": before, "weights": "w", "version": __version__}, sort_keys=True)
    assert detect_key("s", off, "w") == hashlib.sha256(payload.encode()).hexdigest()
    assert detect_key("s", on, "w") != detect_key("s", off, "w")
    assert detect_key("s", DetectConfig(border=16), "w") != detect_key("s", off, "w")
    assert detect_key("s", DetectConfig(straight=60), "w") != detect_key("s", off, "w")
    assert detect_key("s", DetectConfig(paint_like=8), "w") != detect_key("s", off, "w")
    assert detect_key("s", DetectConfig(scale=1.4), "w") != detect_key("s", off, "w")
    assert detect_key("s", dataclasses.replace(off, second_view="quarter-turn"), "w") != detect_key("s", off, "w")
    assert detect_key("s", dataclasses.replace(off, loss_agreement=0.25), "w") != detect_key("s", off, "w")
    agreed = dataclasses.replace(off, loss_agreement=0.25)
    assert detect_key("s", dataclasses.replace(agreed, agreement_area=100), "w") != detect_key("s", agreed, "w")
    unanchored = {**before, "coarse_loss": True}  # a store detected with the coarse pass before it was anchored
    payload = json.dumps({"scan": "s", "config": unanchored, "weights": "w", "version": __version__}, sort_keys=True)
    assert detect_key("s", on, "w") != hashlib.sha256(payload.encode()).hexdigest()  # is detected again


def test_small_crack_fragments_are_dropped_and_long_cracks_kept() -> None:
    from pipeline.stages.detect_infer import drop_small_fragments, without_small_cracks

    mask = np.zeros((40, 60), bool)
    mask[10, 5:50] = True  # a crack 45 px long
    mask[30:33, 30:33] = True  # a speck of 9 px
    mask[20, 20] = mask[21, 21] = True  # 2 px touching diagonally: one 8-connected fragment
    kept = drop_small_fragments(mask, 10)
    assert kept[10, 5:50].all() and not kept[30:33, 30:33].any() and not kept[20, 20]
    assert drop_small_fragments(mask, 9)[30:33, 30:33].all() and not drop_small_fragments(mask, 3)[21, 21]
    assert drop_small_fragments(mask, 0) is not None and (drop_small_fragments(mask, 0) == mask).all()
    prob = np.zeros((2, 40, 60), np.float32)
    prob[0][mask] = 0.9
    prob[1, 0:5, 0:5] = 0.8  # paint loss is never touched
    out = without_small_cracks(prob, 0.5, 10)
    assert (out[0] > 0.5).sum() == 45 and (out[1] == prob[1]).all() and out[0][10, 5] == np.float32(0.9)
    assert without_small_cracks(prob, 0.5, 0) is prob


def test_the_stage_labels_drop_small_crack_fragments_within_the_halo() -> None:
    from pipeline.stages.detect import DetectConfig, detect_key, probabilities_and_labels

    prob = np.zeros((2, 64, 64), np.float32)
    prob[0, 30, 5:60] = 0.9  # a crack through the core
    prob[0, 40:42, 40:42] = 0.9  # a 4-px speck in the core
    prob[1, 10:20, 10:20] = 0.9
    (_, labels), info = probabilities_and_labels(prob, 0.5, 8, min_crack=16)
    assert (labels[0, 30, 5:60] == 1).all() and (labels[0, 40:42, 40:42] == 0).all()
    assert (labels[0, 10:20, 10:20] == 2).all() and info["counts"]["craquelure"] == 48  # the core's 48 crack px
    (_, plain), _ = probabilities_and_labels(prob, 0.5, 8)
    assert (plain[0, 40:42, 40:42] == 1).all()
    assert detect_key("s", DetectConfig(min_crack=16), "w") != detect_key("s", DetectConfig(), "w")
    with pytest.raises(ValueError, match="min_crack must be in"):
        DetectConfig(min_crack=200)


def test_a_benchmark_detection_variant_reads_as_the_stage_settings() -> None:
    from pipeline.stages.detect import DetectConfig, variant_fields

    assert variant_fields("detector-x") == {"weights": "detector-x"}
    assert DetectConfig(**variant_fields("detector-x+coarse+min16")) == DetectConfig(
        weights="detector-x", coarse_loss=True, min_crack=16)
    assert variant_fields("detector-x+border0") == {"weights": "detector-x", "border": 0}
    assert variant_fields("detector-x+straight60") == {"weights": "detector-x", "straight": 60}
    assert variant_fields("detector-x+scale1.4+tta1") == {"weights": "detector-x", "scale": 1.4, "tta": 1}
    assert variant_fields("detector-x+quarter-turn+agree0.25+area100") == {"weights": "detector-x",
                                                                            "second_view": "quarter-turn",
                                                                            "loss_agreement": 0.25,
                                                                            "agreement_area": 100}
    for bad in ("detector-x+fine", "detector-x+min", "detector-x+min1.5", "detector-x+border", "detector-x+scale",
                "detector-x+scale1.4.1", "detector-x+tta", "detector-x+straight", "detector-x+straight-1",
                "detector-x+turn", "detector-x+agree", "detector-x+agree-1", "detector-x+area"):
        with pytest.raises(ValueError, match="unknown detection option"):
            variant_fields(bad)


def test_a_scaled_detection_keeps_the_image_size_and_shows_the_network_a_wider_crack() -> None:
    from pipeline.stages.detect_infer import detect_probabilities, scaled_input

    image = np.full((100, 90, 3), 0.6, np.float32)
    image[:, 45] = 0.1  # a 1-px dark crack
    up, real = scaled_input(image, 1.5, (0, 100, 10, 90))
    assert up.shape == (150, 135, 3) and real == (0, 150, 15, 135)
    assert ((up[75, :, 0] < 0.4).sum()) >= 2  # the network sees it wider than 1 px
    assert np.all((up >= 0) & (up <= 1))  # bicubic overshoot clipped

    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 2, 1).eval()  # per pixel: scaling only resamples what it sees
    flat = np.random.default_rng(0).uniform(0.3, 0.7, (1, 1, 3)).astype(np.float32) * np.ones((70, 80, 1), np.float32)
    once = detect_probabilities(model, flat, tile=64, overlap=16, margin=0)
    scaled = detect_probabilities(model, flat, tile=64, overlap=16, margin=0, scale=1.4)
    assert scaled.shape == once.shape == (2, 70, 80)
    np.testing.assert_allclose(scaled, once, atol=1e-5)
    same = detect_probabilities(model, image, tile=64, overlap=16, margin=0, scale=1.0)
    np.testing.assert_array_equal(same, detect_probabilities(model, image, tile=64, overlap=16, margin=0))


def test_an_enlarged_set_keeps_its_label_values_and_dtype() -> None:
    from lab.eval.detect_eval import enlarged

    labels = np.zeros((40, 30), np.uint8)
    labels[10:12, :] = 1
    labels[20:30, 5:15] = 2
    big = enlarged(labels, 2.0, nearest=True)
    assert big.shape == (80, 60) and set(np.unique(big)) == {0, 1, 2}
    assert (big == 2).sum() == 4 * (labels == 2).sum()
    image = np.random.default_rng(0).integers(0, 65536, (40, 30, 3)).astype(np.uint16)
    out = enlarged(image, 1.5)
    assert out.shape == (60, 45, 3) and out.dtype == np.uint16
