"""The fine-tune alternative to adapt's head (lab.eval.adapt_tune): it starts as the base, learns a style the base
misses from strokes, and leaves the classes it does not adapt exactly as the base has them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_adapt import CLEAN_SPOTS, LOSSES, _constant_detector, _far_from, plaster_scan, strokes

from lab.eval.adapt_eval import adapted_probabilities
from lab.eval.adapt_tune import TuneConfig, TunedDetector, tuned_builder, tuned_fitter
from pipeline.stages.adapt import AdaptConfig


@pytest.fixture()
def blind_weights(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    return _constant_detector(tmp_path_factory, monkeypatch, "blind-tune", [-6.0, -6.0])


def test_before_fitting_the_tuned_detector_is_its_base() -> None:
    torch.manual_seed(0)
    args = {"decoder_channels": [16, 16, 16, 16, 8]}
    model = TunedDetector(args, [1]).eval()
    with torch.no_grad():
        model.start_from_base()
        x = torch.rand(1, 3, 64, 96)
        assert torch.equal(model(x), model.base(x))
        gated = TunedDetector(args, [1], add=0.9).eval()
        gated.load_state_dict(model.state_dict())
        assert torch.equal(gated(x)[:, 0], model.base(x)[:, 0])
    with pytest.raises(ValueError, match="add must be in"):
        TunedDetector(args, [1], add=1.0)


def test_fine_tune_finds_a_style_the_base_misses_and_keeps_the_other_class(blind_weights: Path) -> None:
    image, loss = plaster_scan()
    marks = strokes(LOSSES[:2], CLEAN_SPOTS)
    tune = TuneConfig(steps=60, lr=3e-3)
    base, after, fit = adapted_probabilities(image, marks, AdaptConfig(background_cells=2), tile=256, tta=1,
                                             build=tuned_builder(tune), fit_with=tuned_fitter(tune))
    far = _far_from(marks)
    before_recall = (base[1] >= 0.5)[far & loss].mean()
    flagged = after[1] >= 0.5
    recall, precision = flagged[far & loss].mean(), loss[far & flagged].mean()
    assert before_recall < 0.05 and recall >= 0.2 and precision >= 0.7, (before_recall, recall, precision)
    assert np.array_equal(after[0], base[0])  # craquelure: no strokes, the base's answer exactly
    assert fit["squares"] >= 1 and not fit["veto_fired"]


def test_the_regional_vote_bounds_each_pixel_and_smooths_only_its_class() -> None:
    from models.adapted import AdaptedDetector

    args = {"decoder_channels": [16, 16, 16, 16, 8]}
    model = AdaptedDetector("resunet", args, [0, 1], hidden=0, smooth=[0.0, 5.0], add=[0.9, 0.7], clamp=[0.0, 4.0])
    out = torch.full((1, 2, 64, 64), -3.0)
    out[:, :, 32, 32] = 1000.0  # one very sure pixel in each class (unbounded, it would outvote its 5-px neighbourhood)

    class Fixed(torch.nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return out[:, :, : z.shape[-2]]

    feats, logits, filters = torch.zeros(1, 8, 64, 64), torch.zeros(1, 2, 64, 64), torch.zeros(1, 21, 64, 64)
    voted = model._per_pixel(Fixed(), feats, logits, filters)
    assert torch.equal(voted[:, 0], out[:, 0])  # craquelure: no smoothing, no bound
    assert voted[0, 1].max() < 0.0  # bounded to 4, one pixel cannot outvote its neighbourhood
    with pytest.raises(ValueError, match="smooth needs one value or one per adapted class"):
        AdaptedDetector("resunet", args, [0, 1], smooth=[1.0, 2.0, 3.0])


def test_the_gate_keeps_the_vote_where_the_head_is_dense_and_closes_it_elsewhere() -> None:
    from models.adapted import GATE_OFF, AdaptedDetector

    args = {"decoder_channels": [16, 16, 16, 16, 8]}
    out = torch.full((1, 1, 96, 96), -6.0)
    out[:, :, 20:44, 20:44] = 6.0  # a loss the head holds densely
    out[:, :, 70, 70] = 6.0  # one isolated pixel the vote would grow into a blob

    class Fixed(torch.nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return out[:, :, : z.shape[-2]]

    feats, logits, filters = torch.zeros(1, 8, 96, 96), torch.zeros(1, 2, 96, 96), torch.zeros(1, 21, 96, 96)
    kwargs = {"hidden": 0, "smooth": 5.0, "add": 0.7, "clamp": 4.0}
    vote = AdaptedDetector("resunet", args, [1], **kwargs)._per_pixel(Fixed(), feats, logits, filters, gated=True)
    gated_model = AdaptedDetector("resunet", args, [1], gate=0.1, gate_sigma=4.0, **kwargs)
    gated = gated_model._per_pixel(Fixed(), feats, logits, filters, gated=True)
    assert torch.equal(gated[0, 0, 32, 32], vote[0, 0, 32, 32])  # inside the dense loss: the vote as it was
    assert (gated[0, 0, 66:75, 66:75] == GATE_OFF).all()  # around the lone pixel: closed
    ungated = gated_model._per_pixel(Fixed(), feats, logits, filters)  # the veto head's path is never gated
    assert torch.equal(ungated, vote)
    with pytest.raises(ValueError, match="gate must be in"):
        AdaptedDetector("resunet", args, [1], gate=1.0)


def test_the_reach_keeps_the_head_s_additions_that_extend_the_base_s_cracks_and_drops_the_others() -> None:
    from models.adapted import GATE_OFF, AdaptedDetector

    args = {"decoder_channels": [16, 16, 16, 16, 8]}
    base = torch.full((1, 2, 64, 128), -5.0)
    base[:, :, 10, 10:31] = 5.0  # a crack the base found, in both classes
    head = torch.full((1, 2, 64, 128), -5.0)
    head[:, :, 10, 31:100] = 3.0  # the head carries it on, 69 px
    head[:, :, 50, 10:60] = 3.0  # and finds a line of its own, joined to nothing
    model = AdaptedDetector("resunet", args, [0, 1], union=True, reach=[32, 0])
    joined = model._joined(head, base)
    crack = joined[0, 0]
    assert (crack[10, 31:63] == 3.0).all()  # 32 steps of growth from the base's end
    assert (crack[10, 63:100] == GATE_OFF).all() and (crack[50, 10:60] == GATE_OFF).all()
    assert torch.equal(crack[base[0, 0] > 0], head[0, 0][base[0, 0] > 0])  # on the base's crack: as it was
    assert torch.equal(joined[:, 1], head[:, 1])  # reach 0: the class as the head has it
    with pytest.raises(ValueError, match="reach must be >= 0 and needs union"):
        AdaptedDetector("resunet", args, [0], reach=8)
    with pytest.raises(ValueError, match="reach must be >= 0"):
        AdaptedDetector("resunet", args, [0], union=True, reach=-1)


def test_the_support_keeps_the_loss_head_s_regions_the_base_half_saw_and_drops_the_others() -> None:
    from models.adapted import AdaptedDetector, supported_probabilities

    base = np.full((2, 64, 128), 0.001, np.float32)
    base[1, 10:20, 10:20] = 0.99  # a loss the base found
    base[1, 40:42, 30:32] = 0.12  # a faint sign of another, no detection
    prob = base.copy()
    prob[:, 10:20, 20:40] = 0.95  # the adapted detector widens the found loss (joined to it: supported by it)
    prob[:, 35:50, 25:45] = 0.95  # and marks the faint one whole
    prob[:, 35:50, 80:100] = 0.95  # and a region where the base saw nothing
    kept = supported_probabilities(prob, base, {1: 0.05})
    assert (kept[1, 10:20, 20:40] == 0.95).all() and (kept[1, 35:50, 25:45] == 0.95).all()
    np.testing.assert_array_equal(kept[1, 35:50, 80:100], base[1, 35:50, 80:100])  # dropped: the base's answer
    np.testing.assert_array_equal(kept[0], prob[0])  # a class without a support: as the adapted detector has it
    strict = supported_probabilities(prob, base, {1: 0.2})[1]  # 0.12 is under 0.2: the faint one goes
    assert (strict[35:50, 25:45] < 0.5).all() and (strict[10:20, 20:40] == 0.95).all()
    args = {"decoder_channels": [16, 16, 16, 16, 8]}
    assert AdaptedDetector("resunet", args, [0, 1], union=True, support=[0.0, 0.05]).support_levels == {1: 0.05}
    with pytest.raises(ValueError, match="support must be in \\[0, 1\\) and needs union"):
        AdaptedDetector("resunet", args, [1], support=0.05)
    with pytest.raises(ValueError, match="support must be in"):
        AdaptedDetector("resunet", args, [1], union=True, support=1.0)


def test_detection_reads_the_support_from_the_base_beside_the_adapted_detector_coarse_pass_included() -> None:
    """The support acts on the whole block as detection sees it: the adapted detector's probabilities and its
    base's, each with the coarse paint-loss pass, from one run of the base (`forward_with_base`)."""
    from models.adapted import AdaptedDetector, supported_probabilities
    from pipeline.stages.detect_infer import detect_probabilities

    torch.manual_seed(3)
    args = {"decoder_channels": [16, 16, 16, 16, 8]}
    plain = AdaptedDetector("resunet", args, [1], hidden=0, union=True, add=0.6).eval()
    with torch.no_grad():
        plain.head.net.weight.mul_(8.0)  # a head whose logits vary enough to add regions here and there
        plain.head.net.bias.fill_(0.0)
    held = AdaptedDetector("resunet", args, [1], hidden=0, union=True, add=0.6, support=0.45).eval()
    held.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        both = held.forward_with_base(x)
        np.testing.assert_array_equal(both[:, :2].numpy(), held(x).numpy())
        np.testing.assert_array_equal(both[:, 2:].numpy(), held.base(x).numpy())
    rng = np.random.default_rng(0)
    image = rng.random((150, 170, 3)).astype(np.float32)
    image[40:110, 50:120] = 0.9  # a wide pale patch, so the coarse pass has something to see
    options = {"tile": 128, "overlap": 32, "views": 2, "coarse_loss": True}
    adapted = detect_probabilities(plain, image, **options)
    base = detect_probabilities(plain.base, image, **options)
    out = detect_probabilities(held, image, **options)
    np.testing.assert_allclose(out, supported_probabilities(adapted, base, {1: 0.45}), atol=1e-6)
    adds = (adapted[1] >= 0.5) & (base[1] < 0.5)
    assert adds.any() and (out[1][adds] < 0.5).any() and (out[1][adds] >= 0.5).any()  # some kept, some dropped


def test_beside_keeps_a_crack_s_lengthening_and_drops_its_thickening() -> None:
    from models.adapted import GATE_OFF, AdaptedDetector

    args = {"decoder_channels": [16, 16, 16, 16, 8]}
    base = torch.full((1, 1, 64, 128), -5.0)
    base[:, :, 30:33, 20:61] = 5.0  # a crack the base found, 3 px wide, from x 20 to 60
    head = torch.full((1, 1, 64, 128), -5.0)
    head[:, :, 30:33, 61:90] = 3.0  # the head lengthens it
    head[:, :, 33:35, 30:50] = 3.0  # and thickens it by 2 px below, along its middle
    model = AdaptedDetector("resunet", args, [0], union=True, reach=32, beside=2)
    crack = model._joined(head, base)[0, 0]
    assert (crack[30:33, 61:90] == 3.0).all()  # lengthened: kept
    assert (crack[33:35, 30:50] == GATE_OFF).all()  # thickened: dropped
    thick = AdaptedDetector("resunet", args, [0], union=True, reach=32)._joined(head, base)[0, 0]
    assert (thick[33:35, 30:50] == 3.0).all()  # without `beside` the head may thicken
    with pytest.raises(ValueError, match="beside must be >= 0 and needs a reach"):
        AdaptedDetector("resunet", args, [0], union=True, beside=2)
