"""The patch discriminator, its hole-weighted losses, and the detector-encoder feature net for the inpainter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from models.patch_disc import PatchDiscriminator, discriminator_loss, generator_loss, patch_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_discriminator_gives_one_spectrally_normalised_logit_per_patch() -> None:
    torch.manual_seed(0)
    disc = PatchDiscriminator(3, channels=8, layers=3)
    out = disc(torch.rand(2, 3, 64, 96), torch.zeros(2, 1, 64, 96))
    assert out.shape == (2, 1, 8, 12)
    assert any(k.endswith("weight_orig") for k in disc.state_dict())  # spectral norm's parametrisation
    with pytest.raises(ValueError, match="channels and layers must be >= 1"):
        PatchDiscriminator(3, channels=8, layers=0)


@pytest.mark.parametrize("kind", ["hinge", "nsgan"])
def test_losses_count_fake_logits_only_where_the_hole_is(kind: str) -> None:
    hole = torch.zeros(1, 1, 32, 32)
    hole[..., :16, :16] = 1.0  # the top-left quarter is filled
    w = patch_weights(hole, (4, 4))
    assert float(w[..., :2, :2].min()) == 1.0 and float(w[..., 2:, :].max()) == 0.0
    fake = torch.randn(1, 1, 4, 4)
    moved = fake.clone()
    moved[..., 2:, 2:] += 5.0  # logits of patches without hole pixels
    assert torch.equal(generator_loss(fake, hole, kind), generator_loss(moved, hole, kind))
    real = torch.randn(1, 1, 4, 4)
    assert torch.equal(discriminator_loss(real, fake, hole, kind), discriminator_loss(real, moved, hole, kind))
    better = fake.clone()
    better[..., :2, :2] += 1.0  # the discriminator finds the fill more real: the inpainter's loss falls
    assert generator_loss(better, hole, kind) < generator_loss(fake, hole, kind)
    with pytest.raises(ValueError, match="adversarial loss must be one of hinge, nsgan"):
        generator_loss(fake, hole, "wgan")


def test_discriminator_learns_to_tell_a_blurred_fill_from_paint() -> None:
    torch.manual_seed(0)
    disc = PatchDiscriminator(3, channels=8, layers=2)
    opt = torch.optim.Adam(disc.parameters(), lr=2e-3, betas=(0.5, 0.999))
    real = torch.rand(4, 3, 32, 32)  # noisy "texture"
    hole = torch.zeros(4, 1, 32, 32)
    hole[..., 8:24, 8:24] = 1.0
    blurred = F.avg_pool2d(real, 5, stride=1, padding=2)
    fake = real * (1 - hole) + blurred * hole  # a smooth fill in the hole
    losses = []
    for _ in range(30):
        loss = discriminator_loss(disc(real, hole), disc(fake, hole), hole, "hinge")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.5  # starts near 2 (chance) and falls
    with torch.no_grad():
        assert generator_loss(disc(fake, hole), hole) > generator_loss(disc(real, hole), hole)


def test_detector_encoder_is_a_frozen_feature_net(tiny_manifest: Path, tmp_path: Path) -> None:
    from models.inpaint_loss import DetectorFeatures, build_feature_net
    from models.registry import create_model
    from models.weights import Tiling, save_weights

    net = DetectorFeatures("detector-resunet18", tiny_manifest)
    net.train()
    assert not net.detector.training and not any(p.requires_grad for p in net.parameters())
    feats = net(torch.rand(2, 3, 64, 64))
    assert [tuple(f.shape[-2:]) for f in feats] == [(32, 32), (16, 16), (8, 8)]
    args = {"members": 2, "decoder_channels": [16, 16, 16, 16, 8]}
    manifest = tmp_path / "manifest.json"
    ensemble = create_model("resunet-max", **args)
    save_weights(ensemble, name="det-ens", architecture="resunet-max", arch_args=args, tiling=Tiling(256, 32),
                 manifest_path=manifest)
    first = DetectorFeatures("det-ens", manifest)  # an ensemble lends its first member's encoder
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(first(x)[0], ensemble.members[0].eval().features(x)[1])
    with pytest.raises(ValueError, match="unknown feature net"):
        build_feature_net("detectors:x")
