"""Distilling a detector (e.g. the two-member ensemble) into one Res-UNet: soft targets, training, the record."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import models  # noqa: F401
from lab.detector_config import DetectorTrainConfig
from lab.distill import distilled_targets
from lab.train_detector import train_detector
from models.resunet import ResUNet
from models.weights import Tiling, save_weights

TINY = {"encoder_name": "resnet18", "classes": 2, "decoder_channels": [16, 16, 8, 8, 8]}


class _Constant(torch.nn.Module):
    """Logits (3, -3) everywhere: a teacher whose probabilities are known."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        return torch.tensor([3.0, -3.0]).view(1, 2, 1, 1).expand(b, 2, h, w)


def test_targets_mix_teacher_probabilities_and_labels_linearly() -> None:
    x = torch.rand(2, 3, 8, 8)
    labels = (torch.rand(2, 2, 8, 8) > 0.5).float()
    p = torch.sigmoid(torch.tensor([3.0, -3.0])).view(1, 2, 1, 1)
    assert torch.allclose(distilled_targets(_Constant(), x, labels, 1.0), p.expand(2, 2, 8, 8))
    assert torch.equal(distilled_targets(_Constant(), x, labels, 0.0), labels)
    mixed = distilled_targets(_Constant(), x, labels, 0.8)
    assert torch.allclose(mixed, 0.8 * p + 0.2 * labels)
    # where the teacher is sure (p = 0.95 > 0.5 / 0.8) the target stays positive even on a 0 label
    assert bool((mixed[:, 0] > 0.5).all()) and not mixed.requires_grad


def test_a_teacher_for_one_class_leaves_the_other_classes_labels() -> None:
    x = torch.rand(2, 3, 8, 8)
    labels = (torch.rand(2, 2, 8, 8) > 0.5).float()
    p = torch.sigmoid(torch.tensor([3.0, -3.0])).view(1, 2, 1, 1)
    cracks_only = DetectorTrainConfig(teacher="t", teacher_classes=("craquelure",)).teacher_channels()
    assert cracks_only == [0] and DetectorTrainConfig(teacher="t").teacher_channels() is None
    out = distilled_targets(_Constant(), x, labels, 0.5, channels=cracks_only)
    assert torch.allclose(out[:, 0], (0.5 * p + 0.5 * labels)[:, 0]) and torch.equal(out[:, 1], labels[:, 1])
    assert torch.equal(labels, (labels > 0.5).float())  # the labels themselves were not written to
    with pytest.raises(ValueError, match="unknown class 'dust'"):
        DetectorTrainConfig(teacher="t", teacher_classes=("dust",))


class _LeftToRight(torch.nn.Module):
    """Logits that grow with the red value's rise to the right: not mirror-symmetric, so a view changes them."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rise = torch.nn.functional.pad(x[:, :1, :, 1:] - x[:, :1, :, :-1], (0, 1))
        return torch.cat([4.0 * rise, -4.0 * rise], dim=1)


def test_targets_of_a_teacher_seen_in_several_views_are_its_tta_average() -> None:
    x = torch.rand(2, 3, 8, 8)
    labels = (torch.rand(2, 2, 8, 8) > 0.5).float()
    teacher = _LeftToRight()
    mirrored = torch.sigmoid(teacher(x.flip(-1))).flip(-1)
    expected = (torch.sigmoid(teacher(x)) + mirrored) / 2
    one, two = (distilled_targets(teacher, x, labels, 0.6, views=v) for v in (1, 2))
    assert torch.allclose(two, 0.6 * expected + 0.4 * labels, atol=1e-6)
    assert not torch.allclose(one, two, atol=1e-3)  # the mirror view changed the targets
    with pytest.raises(ValueError, match="teacher_views must be one of"):
        DetectorTrainConfig(teacher_views=3)


def _teacher(manifest: Path, bias: tuple[float, float]) -> str:
    """A tiny Res-UNet in `manifest` whose output is the constant logits `bias` (head weights zeroed)."""
    model = ResUNet(**TINY)
    head = model.net.segmentation_head[0]
    torch.nn.init.zeros_(head.weight)
    with torch.no_grad():
        head.bias.copy_(torch.tensor(bias))
    save_weights(model, name="teacher", architecture="resunet", arch_args=TINY, tiling=Tiling(tile=64, halo=8),
                 manifest_path=manifest)
    return "teacher"


def _student_prob(run_dir: Path) -> torch.Tensor:
    from safetensors.torch import load_file

    model = ResUNet(**TINY)
    model.load_state_dict(load_file(str(run_dir / "best.safetensors")))
    with torch.no_grad():
        return torch.sigmoid(model.eval()(torch.rand(2, 3, 64, 64))).mean(dim=(0, 2, 3))


def test_student_learns_the_teacher_not_the_labels_and_the_teacher_is_recorded(
    shared_data: Path, tmp_path: Path
) -> None:
    """A teacher that calls every pixel craquelure (p 0.98) pulls the student's craquelure probability up;
    the labels alone (sparse cracks) pull it down. The manifest entry names the teacher by sha256."""
    manifest = tmp_path / "w" / "manifest.json"
    name = _teacher(manifest, (4.0, -4.0))
    common = dict(steps=12, tile=64, batch=2, eval_every=12, checkpoint_every=12, val_tiles=2, warmup=1, lr=1e-2,
                  decoder_channels=tuple(TINY["decoder_channels"]), bf16=False)
    train_detector(DetectorTrainConfig(run_dir=str(tmp_path / "labels"), ship=False, **common),
                   manifest_path=manifest, echo=None)
    train_detector(DetectorTrainConfig(run_dir=str(tmp_path / "distil"), teacher=name, weights_name="student",
                                       **common), manifest_path=manifest, echo=None)
    taught, labelled = _student_prob(tmp_path / "distil"), _student_prob(tmp_path / "labels")
    assert taught[0] > 0.7 and taught[0] > labelled[0] + 0.3 and taught[1] < labelled[1], (taught, labelled)
    entries = {e["name"]: e for e in json.loads(manifest.read_text())["weights"]}
    record = entries["student"]["training"]["teacher"]
    assert record["sha256"] == entries["teacher"]["sha256"] and record["weight"] == 1.0 and record["views"] == 1
    assert entries["student"]["training"]["config"]["teacher"] == "teacher"


def test_resuming_with_another_teacher_is_refused(shared_data: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "w" / "manifest.json"
    name = _teacher(manifest, (1.0, -1.0))
    common = dict(tile=64, batch=2, eval_every=2, checkpoint_every=2, val_tiles=2, warmup=1, ship=False,
                  run_dir=str(tmp_path / "run"), decoder_channels=tuple(TINY["decoder_channels"]), teacher=name)
    train_detector(DetectorTrainConfig(steps=2, **common), manifest_path=manifest, echo=None)
    for other in ({"teacher_weight": 0.5}, {"teacher_views": 2}, {"teacher_classes": ("craquelure",)}):
        with pytest.raises(ValueError, match="another configuration"):
            train_detector(DetectorTrainConfig(steps=4, **other, **common), manifest_path=manifest, echo=None)


@pytest.mark.parametrize(("args", "message"), [
    (["--teacher", "no-such-detector"], "no-such-detector"),
    (["--teacher", "detector-resunet18", "--teacher-weight", "1.5"], "teacher_weight must be in [0, 1]"),
    (["--teacher", "detector-resunet18", "--teacher-views", "3"], "teacher_views must be one of 1, 2, 4, 8"),
    (["--teacher", "detector-resunet18", "--teacher-classes", "craquelure,dust"], "unknown class 'dust'"),
])
def test_train_detector_command_refuses_a_bad_teacher_in_one_line(
    args: list[str], message: str, refused_in_one_line: Callable[[list[str], str], None]
) -> None:
    refused_in_one_line(["train", "detector", "--no-flow", "--steps", "1", *args], message)
