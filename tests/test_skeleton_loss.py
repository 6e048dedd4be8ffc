import pytest
import torch

from lab.detector_config import DetectorTrainConfig, make_loss
from lab.skeleton_loss import skeleton_recall, tubed_skeletons


def _crack(width: int) -> torch.Tensor:
    target = torch.zeros(1, 2, 48, 48)
    target[0, 0, 20 : 20 + width, 4:44] = 1.0  # a horizontal crack of `width` px in the craquelure channel
    return target


def test_a_prediction_on_the_centre_line_recalls_the_whole_skeleton():
    target = _crack(5)
    centre = tubed_skeletons(target, (0,))  # (1, 1, H, W): a line about 3 px wide inside the 5-px crack
    assert 0 < centre.sum() < 0.7 * target[:, 0].sum()
    logits = torch.full_like(target, -20.0)
    logits[:, :1] = torch.where(centre > 0, 20.0, -20.0)
    assert skeleton_recall(logits, target).item() == pytest.approx(0.0, abs=1e-4)


def test_missing_half_the_length_costs_half_whatever_the_width():
    for width in (1, 3, 7):
        target = _crack(width)
        logits = torch.where(target > 0, 20.0, -20.0)
        logits[0, 0, :, 24:] = -20.0  # the right half of the crack is missed
        assert skeleton_recall(logits, target).item() == pytest.approx(0.5, abs=0.08), width


def test_no_crack_in_the_batch_gives_zero_and_a_gradient():
    target = torch.zeros(2, 2, 32, 32)
    target[:, 1, 8:20, 8:20] = 1.0  # paint loss only: the craquelure term has nothing to recall
    logits = torch.zeros_like(target, requires_grad=True)
    value = skeleton_recall(logits, target)
    value.backward()
    assert value.item() == 0.0 and logits.grad is not None


def test_the_skeleton_stays_inside_the_target():
    target = _crack(1)
    skeleton = tubed_skeletons(target, (0,))
    assert skeleton.sum() > 0 and bool((skeleton <= target[:, :1]).all())


def test_the_training_loss_adds_the_term_only_when_weighted():
    target = _crack(3)
    logits = torch.full_like(target, -3.0)
    plain, weighted = make_loss("dice+bce")(logits, target), make_loss("dice+bce", 2.0)(logits, target)
    assert weighted.item() == pytest.approx(plain.item() + 2.0 * skeleton_recall(logits, target).item(), rel=1e-5)
    with pytest.raises(ValueError, match="skeleton_weight"):
        DetectorTrainConfig(skeleton_weight=-1.0)
