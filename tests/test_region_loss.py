import pytest
import torch

from lab.detector_config import DetectorTrainConfig, make_loss
from lab.region_loss import region_labels, region_recall, region_rim, rim_labels


def _two_losses() -> torch.Tensor:
    target = torch.zeros(2, 2, 64, 64)
    target[0, 1, 4:44, 4:44] = 1.0  # a 1,600-px lacuna
    target[1, 1, 50:54, 50:54] = 1.0  # a 16-px flake in the other tile
    return target


def test_regions_are_numbered_over_the_batch():
    labels, count = region_labels(_two_losses(), 1)
    assert count == 2 and set(labels.unique().tolist()) == {0, 1, 2}


def test_a_missed_flake_costs_as_much_as_a_missed_lacuna():
    target = _two_losses()
    found_lacuna = torch.where(target > 0, 20.0, -20.0)
    found_lacuna[1] = -20.0  # the flake is missed whole
    found_flake = torch.where(target > 0, 20.0, -20.0)
    found_flake[0] = -20.0  # the lacuna is missed whole
    assert region_recall(found_lacuna, target).item() == pytest.approx(0.5, abs=1e-4)
    assert region_recall(found_flake, target).item() == pytest.approx(0.5, abs=1e-4)
    assert region_recall(torch.where(target > 0, 20.0, -20.0), target).item() == pytest.approx(0.0, abs=1e-4)


def test_no_loss_in_the_batch_gives_zero_and_a_gradient():
    target = torch.zeros(1, 2, 32, 32)
    logits = torch.zeros_like(target, requires_grad=True)
    value = region_recall(logits, target)
    value.backward()
    assert value.item() == 0.0 and logits.grad is not None


def test_the_training_loss_adds_the_term_only_when_weighted():
    target = _two_losses()
    logits = torch.full_like(target, -2.0)
    plain, weighted = make_loss("dice+bce")(logits, target), make_loss("dice+bce", 0.0, 3.0)(logits, target)
    assert weighted.item() == pytest.approx(plain.item() + 3.0 * region_recall(logits, target).item(), rel=1e-5)
    with pytest.raises(ValueError, match="region_weight"):
        DetectorTrainConfig(region_weight=-0.5)


def test_the_rim_costs_a_loss_found_wider_than_it_is():
    target = _two_losses()
    exact = torch.where(target > 0, 20.0, -20.0)
    wider = exact.clone()
    wider[1, 1, 48:56, 48:56] = 20.0  # the flake found 2 px wider all round
    assert region_rim(exact, target).item() == pytest.approx(0.0, abs=1e-4)
    # the flake's ring is wholly flagged, the lacuna's not at all: each region counts the same
    assert region_rim(wider, target).item() == pytest.approx(0.5, abs=1e-4)
    assert region_recall(wider, target).item() == pytest.approx(0.0, abs=1e-4)


def test_the_rim_leaves_out_pixels_another_channel_marks():
    target = torch.zeros(1, 2, 32, 32)
    target[0, 1, 10:14, 10:14] = 1.0
    target[0, 0, 8:16, 8:16] = 1.0  # a crack all round the flake
    labels, _ = region_labels(target, 1)
    assert not bool((rim_labels(labels, target, 2) > 0).any())
    assert region_rim(torch.full_like(target, 20.0), target).item() == 0.0


def test_the_training_loss_adds_the_rim_terms_per_channel():
    target = _two_losses()
    target[0, 0, 50:52, :] = 1.0  # a crack across the first tile
    logits = torch.full_like(target, -1.0)
    plain = make_loss("dice+bce")(logits, target).item()
    both = make_loss("dice+bce", rim_weight=2.0, crack_rim_weight=3.0)(logits, target).item()
    expected = plain + 2.0 * region_rim(logits, target, 1).item() + 3.0 * region_rim(logits, target, 0).item()
    assert both == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="crack_rim_weight"):
        DetectorTrainConfig(crack_rim_weight=-1.0)


def test_a_wider_rim_ring_reaches_flags_further_from_the_loss():
    target = _two_losses()
    logits = torch.where(target > 0, 20.0, -20.0)
    logits[1, 1, 44:46, 44:60] = 20.0  # a band 4-5 px above the flake: outside a 2-px ring, inside a 6-px one
    narrow = make_loss("dice+bce", rim_weight=1.0)(logits, target).item()
    wide = make_loss("dice+bce", rim_weight=1.0, rim_width=6)(logits, target).item()
    assert region_rim(logits, target, 1, width=2).item() == pytest.approx(0.0, abs=1e-4)
    assert region_rim(logits, target, 1, width=6).item() > 0.02
    assert wide > narrow
    with pytest.raises(ValueError, match="rim_width"):
        DetectorTrainConfig(rim_width=0)
