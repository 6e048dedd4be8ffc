"""Partial convolution properties, PConv U-Net shapes, the loss, and short training runs."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from models.inpaint_loss import InpaintingLoss, LossWeights, RandomFeatures, build_feature_net, composite_psnr
from models.pconv import PartialConv2d, PConvUNet

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _layer(cin: int = 2, cout: int = 3, k: int = 3, stride: int = 1) -> PartialConv2d:
    torch.manual_seed(0)
    layer = PartialConv2d(cin, cout, k, stride=stride)
    with torch.no_grad():
        layer.bias.normal_()
    return layer


def test_output_ignores_masked_input_values() -> None:
    layer = _layer()
    x = torch.randn(1, 2, 9, 9)
    mask = (torch.rand(1, 1, 9, 9) > 0.4).float()
    y1, m1 = layer(x, mask)
    x2 = x + (1 - mask) * torch.randn_like(x) * 100  # change only masked pixels
    y2, m2 = layer(x2, mask)
    assert torch.equal(y1, y2) and torch.equal(m1, m2)


def test_renormalisation_and_mask_update_rule() -> None:
    layer = _layer(k=3)
    x = torch.randn(1, 2, 6, 7)
    mask = (torch.rand(1, 1, 6, 7) > 0.5).float()
    y, new_mask = layer(x, mask)
    ones = torch.ones(1, 1, 3, 3)
    valid = F.conv2d(mask, ones, padding=1)  # padding counts as invalid (image borders)
    expected_mask = (valid > 0).float()
    raw = F.conv2d(x * mask, layer.conv.weight, padding=1)
    expected = torch.where(valid > 0, raw * 9 / valid.clamp(min=1) + layer.bias.view(1, -1, 1, 1), 0.0)
    assert torch.equal(new_mask, expected_mask)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)


def test_border_window_renormalised_by_valid_count() -> None:
    layer = _layer(cin=1, cout=1, k=3)
    with torch.no_grad():
        layer.conv.weight.fill_(0.1)
    x = torch.ones(1, 1, 5, 5)
    y, m = layer(x, torch.ones(1, 1, 5, 5))
    # a constant image gives the same output at the corner (4 valid of 9) as in the centre (9 of 9)
    torch.testing.assert_close(y[0, 0, 0, 0], y[0, 0, 2, 2])
    assert m.min() == 1


def test_fully_masked_window_gives_zero_output_and_zero_mask() -> None:
    layer = _layer(k=3)
    x = torch.randn(1, 2, 9, 9)
    mask = torch.ones(1, 1, 9, 9)
    mask[..., 2:7, 2:7] = 0  # the 3x3 window around (4, 4) is entirely masked
    y, m = layer(x, mask)
    assert m[0, 0, 4, 4] == 0 and torch.all(y[0, :, 4, 4] == 0)
    assert m[0, 0, 2, 2] == 1  # windows that touch a valid pixel stay valid


def test_multichannel_mask_counts_each_channel() -> None:
    layer = _layer(cin=2, cout=1, k=1)
    x = torch.ones(1, 2, 1, 1)
    mask = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)
    y, m = layer(x, mask)
    expected = layer.conv.weight[0, 0, 0, 0] * 2 + layer.bias[0]  # 1 valid of 2 -> ratio 2
    torch.testing.assert_close(y[0, 0, 0, 0], expected)
    assert m.item() == 1


@pytest.mark.parametrize("depth,base", [(3, 8), (5, 4)])
def test_unet_shapes_backward_and_bad_size(depth: int, base: int) -> None:
    model = PConvUNet(base_channels=base, depth=depth, max_channels=32)
    side = 2**depth * 2
    x = torch.rand(2, 3, side, side + 2**depth)
    m = (torch.rand(2, 1, side, side + 2**depth) > 0.3).float()
    out = model(x * m, m)
    assert out.shape == x.shape
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match=f"multiples of {2**depth}.*consider padding"):
        model(torch.rand(1, 3, side + 1, side), torch.ones(1, 1, side + 1, side))


def test_unet_kernels_and_norms_follow_the_paper() -> None:
    model = PConvUNet(base_channels=4, depth=6, max_channels=16)
    assert [b.pconv.kernel_size for b in model.encoder] == [7, 5, 5, 3, 3, 3]
    assert model.encoder[0].bn is None and all(b.bn is not None for b in model.encoder[1:])
    assert model.decoder[-1].bn is None and model.decoder[-1].pconv.conv.out_channels == 3


def test_freeze_encoder_bn_survives_train() -> None:
    model = PConvUNet(base_channels=4, depth=3, max_channels=16)
    model.freeze_encoder_bn()
    model.train()
    assert all(not b.bn.training for b in model.encoder[1:])
    assert all(b.bn.training for b in model.decoder[:-1])
    assert all(not p.requires_grad for b in model.encoder[1:] for p in b.bn.parameters())


def test_random_feature_net_is_deterministic() -> None:
    a, b = RandomFeatures(seed=3), RandomFeatures(seed=3)
    x = torch.rand(1, 3, 16, 16)
    assert all(torch.equal(fa, fb) for fa, fb in zip(a(x), b(x), strict=True))
    assert build_feature_net("none") is None
    with pytest.raises(ValueError, match="unknown feature net"):
        build_feature_net("resnet")
    with pytest.raises(FileNotFoundError, match="VGG16 weight file not found"):
        build_feature_net("vgg16:/nonexistent/vgg16.safetensors")


def test_local_vgg16_file_is_loaded_into_torchvision_vgg16(tmp_path) -> None:
    from safetensors.torch import save_file
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    reference = make_layers(cfgs["D"][:10], batch_norm=False)  # vgg16 features up to pool3
    save_file({f"features.{k}": v for k, v in reference.state_dict().items()}, str(tmp_path / "vgg16.safetensors"))
    net = build_feature_net(f"vgg16:{tmp_path / 'vgg16.safetensors'}")
    x = torch.rand(1, 3, 32, 32)
    feats = net(x)
    assert [f.shape[1] for f in feats] == [64, 128, 256]
    expected = reference((x - net.mean) / net.std)
    torch.testing.assert_close(feats[-1], expected)
    save_file({"classifier.0.weight": torch.zeros(1)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match="not a torchvision VGG16 state dict"):
        build_feature_net(f"vgg16:{tmp_path / 'bad.safetensors'}")


@pytest.mark.parametrize("feature_net", ["random", "none"])
def test_tiny_training_lowers_the_loss(feature_net: str) -> None:
    torch.manual_seed(0)
    model = PConvUNet(base_channels=4, depth=3, max_channels=16)
    features = RandomFeatures(seed=0, widths=(8, 16, 32)) if feature_net == "random" else None
    criterion = InpaintingLoss(features)
    x = torch.rand(2, 3, 32, 32)
    x = F.avg_pool2d(x, 5, stride=1, padding=2)  # some structure to learn
    m = (torch.rand(2, 1, 32, 32) > 0.3).float()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(15):
        loss, terms = criterion(model(x * m, m), x, m)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]
    assert ("style_out" in terms) == (feature_net == "random")
    json.dumps(terms)  # logged terms are plain floats


def test_hole_norm_weighs_every_image_by_its_own_hole() -> None:
    target = torch.zeros(2, 3, 16, 16)
    pred = torch.full_like(target, 0.5)  # the same error everywhere
    mask = torch.ones(2, 1, 16, 16)
    mask[0, :, :2, :] = 0  # 12.5 % hole
    mask[1, :, :8, :] = 0  # 50 % hole
    _, paper = InpaintingLoss(None)(pred, target, mask)
    _, per_hole = InpaintingLoss(None, hole_norm="hole")(pred, target, mask)
    assert paper["hole"] == pytest.approx(0.5 * (0.125 + 0.5) / 2)
    assert per_hole["hole"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="hole_norm"):
        InpaintingLoss(None, hole_norm="pixel")


def test_lowpass_hole_norm_leaves_the_fills_fine_band_free_and_holds_its_colour() -> None:
    target = torch.full((1, 3, 32, 32), 0.5)
    mask = torch.ones(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 0  # a 16-px hole
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 0.2 - 0.1  # zero-mean, 1-px period
    grain = target + checker  # texture of the right mean
    shifted = target + 0.1  # the wrong colour
    lowpass = InpaintingLoss(None, hole_norm="lowpass")
    plain = InpaintingLoss(None, hole_norm="hole")
    _, grain_terms = lowpass(grain, target, mask)
    _, shifted_terms = lowpass(shifted, target, mask)
    assert grain_terms["hole"] < 0.01 < 0.05 < shifted_terms["hole"]  # the fine band is free, the colour is not
    assert plain(grain, target, mask)[1]["hole"] == pytest.approx(0.1)  # the plain L1 punishes the texture


def test_psnr_term_is_minus_the_composites_psnr() -> None:
    target = torch.zeros(2, 3, 8, 8)
    pred = torch.full_like(target, 0.1)
    mask = torch.ones(2, 1, 8, 8)
    mask[0, :, :4, :] = 0  # half the image: MSE 0.005, PSNR 23.01 dB
    mask[1, :, :, :] = 1  # no hole: the composite is the target, PSNR capped at 60 dB
    psnr = composite_psnr(mask * target + (1 - mask) * pred, target)
    assert psnr.tolist() == pytest.approx([-10 * math.log10(0.005 + 1e-6), 60.0], abs=1e-4)
    plain, plain_terms = InpaintingLoss(None, hole_norm="hole")(pred, target, mask)
    total, terms = InpaintingLoss(None, LossWeights(psnr=0.05), hole_norm="hole")(pred, target, mask)
    assert "psnr" not in plain_terms and terms["psnr"] == pytest.approx(float(psnr.mean()))
    assert float(total) == pytest.approx(float(plain) - 0.05 * terms["psnr"], abs=1e-5)
    pred.requires_grad_(True)
    loss, _ = InpaintingLoss(None, LossWeights(valid=0, hole=0, tv=0, psnr=1.0))(pred, target, mask)
    loss.backward()
    assert pred.grad[0, :, :4].gt(0).all() and pred.grad[1].eq(0).all()  # pushes the hole towards the target


def test_refine_branch_starts_as_the_network_it_extends_and_trains_alone() -> None:
    torch.manual_seed(0)
    base = PConvUNet(base_channels=8, depth=3, max_channels=16, prefill="harmonic")
    torch.nn.init.normal_(base.decoder[-1].pconv.conv.weight, std=0.1)  # a "trained" last layer
    ext = PConvUNet(base_channels=8, depth=3, max_channels=16, prefill="harmonic", refine=4)
    assert ext.arch_args()["refine"] == 4 and "refine" not in base.arch_args()
    missing = ext.load_state_dict(base.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("refine.") for k in missing)
    x, m = torch.rand(2, 3, 16, 16), (torch.rand(2, 1, 16, 16) > 0.3).float()
    base.eval(), ext.eval()
    with torch.no_grad():
        assert torch.equal(ext(x * m, m), base(x * m, m))  # the branch's last layer starts at zero
    ext.freeze_base()
    ext.train()
    before = {k: v.clone() for k, v in ext.state_dict().items()}
    opt = torch.optim.Adam([p for p in ext.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        loss = (ext(x * m, m) - x).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    changed = {k for k, v in ext.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("refine.") for k in changed)  # weights and BN statistics kept
    with pytest.raises(ValueError, match="refine"):
        base.freeze_base()
    with pytest.raises(ValueError, match="refine must be >= 0"):
        PConvUNet(refine=-1)
