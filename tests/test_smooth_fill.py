"""The harmonic and biharmonic fills (Jacobi and conjugate gradients), and the PConv U-Net built on them."""

from __future__ import annotations

import pytest
import torch

from lab.train_inpainter import init_from
from models.pconv import PConvUNet
from models.smooth_fill import biharmonic_cg, biharmonic_fill, harmonic_fill

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _hole(side: int = 64) -> torch.Tensor:
    mask = torch.ones(1, 1, side, side)
    mask[:, :, 20:40, 10:50] = 0  # a wide block
    mask[:, :, 5:60, 30:32] = 0  # a 2-px crack across it
    return mask


def test_known_pixels_unchanged_and_hole_values_ignored() -> None:
    torch.manual_seed(0)
    x, mask = torch.rand(2, 3, 64, 64), _hole().expand(2, -1, -1, -1)
    filled = harmonic_fill(x, mask)
    assert torch.equal(filled * mask, x * mask)
    garbage = x + (1 - mask) * 100 * torch.randn_like(x)
    assert torch.equal(harmonic_fill(garbage, mask), filled)


def test_reproduces_a_linear_ramp_and_a_constant() -> None:
    ramp = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64).contiguous()
    filled = harmonic_fill(ramp, _hole(), iterations=200)
    assert (filled - ramp).abs().max() < 2e-3  # a linear function is harmonic: the exact answer
    flat = torch.full((1, 3, 64, 64), 0.3)
    torch.testing.assert_close(harmonic_fill(flat, _hole()), flat)


def test_fill_stays_within_the_known_range_and_empty_tile_is_grey() -> None:
    torch.manual_seed(1)
    x = torch.rand(1, 3, 48, 80) * 0.5 + 0.25
    mask = (torch.rand(1, 1, 48, 80) > 0.7).float()
    filled = harmonic_fill(x, mask)
    assert filled.min() >= 0.25 - 1e-5 and filled.max() <= 0.75 + 1e-5  # maximum principle
    torch.testing.assert_close(harmonic_fill(x, torch.zeros_like(mask)), torch.full_like(x, 0.5))


def test_beats_a_constant_fill_on_a_smooth_image() -> None:
    yy, xx = torch.meshgrid(torch.linspace(0, 3, 64), torch.linspace(0, 3, 64), indexing="ij")
    img = (0.5 + 0.4 * torch.sin(yy) * torch.cos(xx)).expand(1, 3, 64, 64)
    mask = _hole()
    hole = mask == 0
    err = (harmonic_fill(img, mask) - img).abs().expand(1, 3, 64, 64)[hole.expand(1, 3, 64, 64)].mean()
    mean_fill = (img * mask).sum() / (3 * mask.sum())
    err_const = (mean_fill - img)[hole.expand(1, 3, 64, 64)].abs().mean()
    assert err < 0.25 * err_const


def test_untrained_prefill_network_returns_the_fill_and_ignores_hole_values() -> None:
    torch.manual_seed(0)
    model = PConvUNet(base_channels=4, depth=3, max_channels=16, prefill="harmonic").eval()
    x, mask = torch.rand(1, 3, 64, 64), _hole()
    out = model(x * mask, mask)
    torch.testing.assert_close(out, harmonic_fill(x, mask))
    with torch.no_grad():
        model.decoder[-1].pconv.conv.weight.normal_()  # a "trained" last layer
    a = model(x * mask, mask)
    b = model(x * mask + (1 - mask) * 7.0, mask)
    torch.testing.assert_close(a, b)
    assert model.arch_args()["prefill"] == "harmonic"
    assert "prefill" not in PConvUNet(base_channels=4, depth=3, max_channels=16).arch_args()
    with pytest.raises(ValueError, match="prefill must be one of"):
        PConvUNet(prefill="telea")


def test_init_from_copies_matching_layers(tmp_path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    plain = PConvUNet(base_channels=4, depth=3, max_channels=16)
    save_file({k: v.contiguous() for k, v in plain.state_dict().items()}, str(tmp_path / "w.safetensors"))
    model = PConvUNet(base_channels=4, depth=3, max_channels=16, prefill="harmonic")
    fresh = init_from(model, tmp_path / "w.safetensors")
    assert fresh == ["decoder.2.pconv.conv.weight"]  # the last layer has 3 more input channels
    torch.testing.assert_close(model.encoder[0].pconv.conv.weight, plain.encoder[0].pconv.conv.weight)
    save_file({"other": torch.zeros(2)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match="no tensor matches"):
        init_from(model, tmp_path / "bad.safetensors")


def test_biharmonic_fill_keeps_known_pixels_and_carries_slopes() -> None:
    torch.manual_seed(0)
    x, mask = torch.rand(1, 3, 64, 64), _hole()
    filled = biharmonic_fill(x, mask)
    assert torch.equal(filled * mask, x * mask)
    assert torch.equal(biharmonic_fill(x + (1 - mask) * 50, mask), filled)
    # a quadratic is biharmonic but not harmonic: converged, the biharmonic fill of a band is exact
    band = torch.ones(1, 1, 48, 48)
    band[:, :, 20:26, 8:40] = 0
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 48), indexing="ij")
    bowl = (0.2 + 0.6 * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2)).expand(1, 3, 48, 48).contiguous()
    hole = (band == 0).expand(1, 3, 48, 48)
    err_harm = (harmonic_fill(bowl, band) - bowl).abs()[hole].max()
    err_16 = (biharmonic_fill(bowl, band) - bowl).abs()[hole].max()
    err_converged = (biharmonic_fill(bowl, band, iterations=1500) - bowl).abs()[hole].max()
    assert err_converged < 5e-4 < err_16 <= err_harm


FILLS = {"harmonic": harmonic_fill, "biharmonic": biharmonic_fill, "biharmonic-cg": biharmonic_cg}


@pytest.mark.parametrize("prefill", list(FILLS))
def test_each_prefill_network_starts_as_its_fill(prefill: str) -> None:
    torch.manual_seed(0)
    model = PConvUNet(base_channels=4, depth=3, max_channels=16, prefill=prefill).eval()
    x, mask = torch.rand(1, 3, 64, 64), _hole()
    torch.testing.assert_close(model(x * mask, mask), FILLS[prefill](x, mask))


def test_cg_fill_keeps_known_pixels_and_handles_holeless_and_empty_tiles() -> None:
    torch.manual_seed(0)
    x, mask = torch.rand(2, 3, 64, 64), _hole().expand(2, -1, -1, -1).clone()
    mask[1] = 1  # the second tile has no hole: nothing to solve, no division by zero
    filled = biharmonic_cg(x, mask)
    assert torch.equal(filled * mask, x * mask)
    assert torch.equal(filled[1], x[1])
    assert torch.equal(biharmonic_cg(x + (1 - mask) * 50, mask), filled)
    assert torch.isfinite(biharmonic_cg(x, torch.zeros_like(mask))).all()


def test_cg_fill_converges_to_scikit_image_biharmonic() -> None:
    from skimage.restoration import inpaint_biharmonic

    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 4, 48), torch.linspace(0, 4, 48), indexing="ij")
    img = (0.5 + 0.3 * torch.sin(yy + xx ** 1.5) + 0.05 * torch.rand(48, 48)).expand(1, 3, 48, 48).contiguous()
    mask = torch.ones(1, 1, 48, 48)
    mask[:, :, 14:30, 12:34] = 0
    mask[:, :, 4:44, 22:24] = 0
    hole = mask[0, 0] == 0
    ref = torch.from_numpy(inpaint_biharmonic(img[0].permute(1, 2, 0).double().numpy(), hole.numpy(),
                                              channel_axis=-1)).permute(2, 0, 1).float()

    def gap(fill: torch.Tensor) -> float:  # mean distance to scikit-image's solution over the hole
        return float((fill[0] - ref).abs().amax(0)[hole].mean())

    converged = biharmonic_cg(img, mask, iterations=400)[0]
    assert float((converged - ref).abs().max()) < 1e-4
    gap_16, gap_32 = gap(biharmonic_cg(img, mask, iterations=16)), gap(biharmonic_cg(img, mask, iterations=32))
    assert gap_32 < gap_16 < gap(harmonic_fill(img, mask))
    # faster than damped Jacobi: closer at equal steps, and 32 CG steps (cheaper) closer than 64 Jacobi steps
    assert gap_16 < gap(biharmonic_fill(img, mask, iterations=16))
    assert gap_32 < gap(biharmonic_fill(img, mask, iterations=64))


def test_prefill_iterations_are_used_and_recorded() -> None:
    torch.manual_seed(0)
    model = PConvUNet(base_channels=4, depth=3, max_channels=16, prefill="biharmonic", prefill_iterations=40)
    x, mask = torch.rand(1, 3, 64, 64), _hole()
    torch.testing.assert_close(model.eval()(x * mask, mask), biharmonic_fill(x, mask, iterations=40))
    assert model.arch_args()["prefill_iterations"] == 40
    assert "prefill_iterations" not in PConvUNet(base_channels=4, depth=3, max_channels=16,
                                                 prefill="biharmonic").arch_args()
    with pytest.raises(ValueError, match="prefill_iterations must be >= 0"):
        PConvUNet(prefill="biharmonic", prefill_iterations=-1)
