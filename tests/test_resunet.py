"""Res-UNet shapes, backward, bad input size; training lowers the loss and resumes; weights refuse tampering."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file as load_file_

import models  # noqa: F401
from lab.checkpoint import load_checkpoint, save_checkpoint
from lab.detector_config import DetectorTrainConfig, make_loss
from lab.train_detector import train_detector
from models.registry import create_model
from models.resunet import ResUNet
from models.weights import Tiling, WeightsError, load_model, save_weights

TINY = {"decoder_channels": (16, 16, 8, 8, 8)}


@pytest.mark.parametrize("encoder", ["resnet18", "resnet34"])
def test_forward_shape_and_backward(encoder: str) -> None:
    model = create_model("resunet", encoder_name=encoder, **TINY)
    x = torch.rand(2, 3, 64, 96, requires_grad=True)
    out = model(x)
    assert out.shape == (2, 2, 64, 96)
    out.mean().backward()
    assert x.grad is not None and all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_bad_input_size_proposes_padding() -> None:
    model = ResUNet(**TINY)
    with pytest.raises(ValueError, match=r"multiples of 32.*\(64, 96\)"):
        model(torch.rand(1, 3, 50, 70))
    with pytest.raises(ValueError, match="expected a"):
        model(torch.rand(1, 1, 64, 64))
    with pytest.raises(ValueError, match="unknown encoder"):
        ResUNet(encoder_name="vgg11")


def test_encoder_features_are_exposed() -> None:
    model = ResUNet(**TINY)
    feats = model.features(torch.rand(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [64, 32, 16, 8, 4, 2]
    assert model.encoder is model.net.encoder


@pytest.mark.parametrize("loss_name", ["dice+bce", "lovasz+bce"])
def test_a_few_steps_lower_the_loss(loss_name: str) -> None:
    torch.manual_seed(0)
    model = ResUNet(**TINY)
    x = torch.rand(2, 3, 64, 64)
    y = torch.zeros(2, 2, 64, 64)
    y[:, 0, :, 30:33] = 1  # a vertical crack
    y[:, 1, 10:20, 10:20] = 1  # a square loss
    x[:, :, :, 30:33] *= 0.2
    x[:, :, 10:20, 10:20] = 0.95
    loss_fn = make_loss(loss_name)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]


def test_checkpoint_round_trip_restores_model_and_optimizer(tmp_path: Path) -> None:
    model = ResUNet(**TINY)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.rand(2, 3, 64, 64)).mean().backward()
    opt.step()
    save_checkpoint(tmp_path / "c.safetensors", model, opt, 7, {"best": 0.5})
    model2 = ResUNet(**TINY)
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-3)
    step, extra = load_checkpoint(tmp_path / "c.safetensors", model2, opt2)
    assert step == 7 and extra == {"best": 0.5}
    for a, b in zip(model.state_dict().values(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    s1, s2 = opt.state_dict()["state"][0], opt2.state_dict()["state"][0]
    assert torch.equal(s1["exp_avg"], s2["exp_avg"])


def test_manifest_refuses_a_tampered_file(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    model = ResUNet(**TINY)
    args = {"encoder_name": "resnet18", "classes": 2, "decoder_channels": list(TINY["decoder_channels"])}
    entry = save_weights(model.half(), name="tiny", architecture="resunet", arch_args=args,
                         tiling=Tiling(tile=64, halo=8), manifest_path=manifest)
    loaded, _ = load_model("tiny", manifest_path=manifest)
    assert next(loaded.parameters()).dtype == torch.float32  # fp16 file, fp32 network
    path = tmp_path / entry.file
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        load_model("tiny", manifest_path=manifest)


def test_tiny_training_run_resumes_and_ships(shared_data: Path, tmp_path: Path) -> None:
    run_dir, manifest = tmp_path / "run", tmp_path / "w" / "manifest.json"
    common = dict(tile=64, batch=2, eval_every=4, checkpoint_every=2, val_tiles=2, warmup=1,
                  run_dir=str(run_dir), decoder_channels=TINY["decoder_channels"])
    train_detector(DetectorTrainConfig(steps=4, ship=False, **common), manifest_path=manifest, echo=None)
    summary = train_detector(DetectorTrainConfig(steps=6, **common), manifest_path=manifest, echo=None)
    assert summary["steps"] == 6
    assert "resumed at step 4" in (run_dir / "train.log").read_text()
    entry = json.loads(manifest.read_text())["weights"][0]
    assert entry["name"] == "detector-resunet18" and entry["training"]["data"]["val_paintings"]
    assert set(entry["metrics"]["validation"]["craquelure"]) >= {"precision", "recall", "f1", "iou"}
    assert not set(entry["training"]["data"]["train_paintings"]) & set(entry["training"]["data"]["val_paintings"])
    model, _ = load_model("detector-resunet18", manifest_path=manifest)
    assert model(torch.from_numpy(np.zeros((1, 3, 32, 32), np.float32))).shape == (1, 2, 32, 32)


def test_snapshots_are_kept_and_their_average_is_shipped(shared_data: Path, tmp_path: Path) -> None:
    from lab.average_weights import average_state_dicts
    from models.weights import get_entry, load_state

    run_dir, manifest = tmp_path / "run", tmp_path / "w" / "manifest.json"
    cfg = DetectorTrainConfig(steps=6, tile=64, batch=2, eval_every=3, checkpoint_every=3, val_tiles=2, warmup=1,
                              run_dir=str(run_dir), decoder_channels=TINY["decoder_channels"], snapshot_every=2,
                              average_from=4, store_half=False)
    summary = train_detector(cfg, manifest_path=manifest, echo=None)
    snaps = sorted((run_dir / "snapshots").glob("*.safetensors"))
    assert [p.stem for p in snaps] == ["step-000002", "step-000004", "step-000006"]
    assert summary["selected"] == "uniform average of 2 snapshots, steps 4-6 every 2"
    shipped = load_state(get_entry("detector-resunet18", manifest), manifest.parent)
    expected = average_state_dicts(snaps[1:])
    name = next(k for k, v in expected.items() if v.dtype.is_floating_point and v.ndim == 4)
    assert torch.allclose(shipped[name], expected[name])
    a, b = (load_file_(p)[name] for p in snaps[1:])
    assert torch.allclose(expected[name], (a + b) / 2) and not torch.equal(a, b)
    with pytest.raises(ValueError, match="needs snapshot_every"):
        DetectorTrainConfig(average_from=4)


def test_averaging_refuses_snapshots_of_different_networks(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from lab.average_weights import average_state_dicts

    save_file({"w": torch.ones(2, 2)}, str(tmp_path / "a.safetensors"))
    save_file({"w": torch.ones(3, 2)}, str(tmp_path / "b.safetensors"))
    save_file({"v": torch.ones(2, 2)}, str(tmp_path / "c.safetensors"))
    with pytest.raises(ValueError, match="shape"):
        average_state_dicts([tmp_path / "a.safetensors", tmp_path / "b.safetensors"])
    with pytest.raises(ValueError, match="tensors differ"):
        average_state_dicts([tmp_path / "a.safetensors", tmp_path / "c.safetensors"])
    with pytest.raises(ValueError, match="no snapshots"):
        average_state_dicts([])


def test_refine_branch_starts_as_the_plain_network_and_learns(tmp_path: Path) -> None:
    from lab.checkpoint import init_from

    torch.manual_seed(0)
    plain = ResUNet(**TINY).eval()
    opt = torch.optim.AdamW(plain.parameters())
    save_checkpoint(tmp_path / "c.safetensors", plain, opt, 3, {})  # a training checkpoint: model/... tensors
    refined = ResUNet(refine=8, **TINY)
    fresh = init_from(refined, tmp_path / "c.safetensors")
    assert fresh and all(k.startswith("refine.") for k in fresh)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(refined.eval()(x), plain(x))  # zero last layer: the same answer
    refined.train()
    y = torch.zeros(2, 2, 64, 64)
    y[:, 0, :, 31] = 1  # a 1-px crack, dark in the image
    x[:, :, :, 31] *= 0.1
    loss_fn = make_loss("dice+bce")
    opt = torch.optim.AdamW(refined.refine.parameters(), lr=1e-2)  # only the branch learns
    first = None
    for _ in range(15):
        loss = loss_fn(refined(x), y)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.9 * first
    with pytest.raises(ValueError, match="refine must be >= 0"):
        ResUNet(refine=-1)
    with pytest.raises(ValueError, match="no tensor matches"):
        init_from(refined, _other_file(tmp_path))


def test_relative_input_starts_as_the_rgb_network_and_sees_dark_cracks_as_light_ones(tmp_path: Path) -> None:
    from lab.checkpoint import init_from

    torch.manual_seed(0)
    rgb = ResUNet(**TINY).eval()
    save_checkpoint(tmp_path / "c.safetensors", rgb, torch.optim.AdamW(rgb.parameters()), 3, {})
    wide = ResUNet(relative=True, **TINY).eval()
    assert init_from(wide, tmp_path / "c.safetensors") == []  # the first convolution widened, not left at init
    x = torch.rand(2, 3, 64, 64) * 0.3
    with torch.no_grad():
        torch.testing.assert_close(wide(x), rgb(x))  # zero weights on the extra channels: the same answer
    # A crack darkening the paint by a third reads nearly alike on dark and light paint (not quite: the 0.05 that
    # keeps black from dividing by zero), though it changes the dark paint by an eighth as much in absolute terms.
    dark, light = torch.full((1, 3, 64, 64), 0.08), torch.full((1, 3, 64, 64), 0.6)
    for paint in (dark, light):
        paint[:, :, :, 31] *= 2 / 3
    contrast = [wide._encoder_input(wide._check(p))[0, 3:, 32, 31] for p in (dark, light)]
    assert float(contrast[1].mean()) < -0.25 and float(contrast[0].mean()) < 0.6 * float(contrast[1].mean())
    assert float((dark[0, :, 32, 31] - 0.08).abs().mean()) < 0.2 * float((light[0, :, 32, 31] - 0.6).abs().mean())
    # The relative input is kept with the weights and comes back from the manifest.
    save_weights(wide, name="rel", architecture="resunet", arch_args={"relative": True, **TINY},
                 tiling=Tiling(tile=64, halo=16), manifest_path=tmp_path / "w" / "manifest.json")
    loaded, _ = load_model("rel", tmp_path / "w" / "manifest.json")
    assert loaded.relative
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), wide(x), atol=2e-3, rtol=0)


def test_box_mean_is_the_2d_box_mean_with_the_border_replicated() -> None:
    from models.resunet import box_mean

    torch.manual_seed(0)
    x = torch.rand(2, 3, 40, 37).to(memory_format=torch.channels_last)
    padded = torch.nn.functional.pad(x, [7] * 4, mode="replicate")
    reference = torch.nn.functional.avg_pool2d(padded, 15, stride=1)
    torch.testing.assert_close(box_mean(x, 15), reference, atol=1e-5, rtol=0)  # float rounding
    # by hand at a corner: the replicated border counts as many times as it is repeated
    rows = x[0, 0, torch.clamp(torch.arange(-7, 8), 0, 39)]
    corner = rows[:, torch.clamp(torch.arange(-7, 8), 0, 36)].mean()
    assert abs(float(box_mean(x, 15)[0, 0, 0, 0]) - float(corner)) < 1e-5


def test_init_from_takes_one_member_of_an_int8_ensemble(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from lab.checkpoint import init_from
    from models.ensemble import MaxResUNet
    from models.quantize import dequantize, quantize_state

    torch.manual_seed(0)
    stored = quantize_state(MaxResUNet(members=2, **TINY).state_dict())
    save_file(stored, str(tmp_path / "ens.safetensors"))
    shipped = dequantize(stored)  # what the ensemble itself runs with
    for k in range(2):
        single = ResUNet(**TINY)
        assert init_from(single, Path(f"{tmp_path / 'ens.safetensors'}#{k}")) == []
        for name, tensor in single.state_dict().items():
            torch.testing.assert_close(tensor, shipped[f"members.{k}.{name}"].to(tensor.dtype))
        assert not torch.equal(single.state_dict()["net.segmentation_head.0.weight"],
                               shipped[f"members.{1 - k}.net.segmentation_head.0.weight"])
    with pytest.raises(ValueError, match="no tensor matches"):
        init_from(ResUNet(**TINY), Path(f"{tmp_path / 'ens.safetensors'}#5"))


def _other_file(tmp_path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    return tmp_path / "other.safetensors"


def test_refined_detector_trains_from_weights_and_loads_from_the_manifest(shared_data: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "w" / "manifest.json"
    common = dict(tile=64, batch=2, eval_every=2, checkpoint_every=2, val_tiles=2, warmup=1,
                  decoder_channels=TINY["decoder_channels"])
    train_detector(DetectorTrainConfig(steps=2, ship=False, run_dir=str(tmp_path / "a"), **common),
                   manifest_path=manifest, echo=None)
    cfg = DetectorTrainConfig(steps=2, refine=8, init_weights=str(tmp_path / "a" / "checkpoint.safetensors"),
                              run_dir=str(tmp_path / "b"), **common)
    train_detector(cfg, manifest_path=manifest, echo=None)
    assert "left at their init: refine." in (tmp_path / "b" / "train.log").read_text()
    entry = json.loads(manifest.read_text())["weights"][0]
    assert entry["arch_args"]["refine"] == 8
    model, _ = load_model("detector-resunet18", manifest_path=manifest)
    assert model.refine is not None and model(torch.zeros(1, 3, 32, 32)).shape == (1, 2, 32, 32)
    with pytest.raises(ValueError, match="init_weights file not found"):
        DetectorTrainConfig(init_weights=str(tmp_path / "missing.safetensors"))


def test_perfect_logits_score_near_zero_and_wrong_ones_high() -> None:
    target = torch.zeros(1, 2, 16, 16)
    target[:, 0, :, 7:9] = 1
    for name in ("dice+bce", "dice+focal", "lovasz+bce"):
        loss_fn = make_loss(name)
        assert float(loss_fn(target * 20 - 10, target)) < 0.01
        assert float(loss_fn(10 - target * 20, target)) > 1.0


def test_command_line_opts_into_real_crack_styles_and_can_skip_shipping(monkeypatch: pytest.MonkeyPatch) -> None:
    import lab.train_detector as td

    seen = {}
    monkeypatch.setattr(td, "train_detector", lambda cfg: seen.setdefault("cfg", cfg) and {"steps": 0})
    td.main(["--steps", "3", "--free-cracks", "0.3", "--texture", "0.2", "--dark-cracks", "0.5", "--no-ship"])
    cfg = seen["cfg"]
    assert (cfg.damage.p_free_cracks, cfg.damage.p_texture, cfg.ship, cfg.steps) == (0.3, 0.2, False, 3)
    assert cfg.damage.p_dark_cracks == 0.5
    assert cfg.damage.crack_contrast == DetectorTrainConfig().damage.crack_contrast
    assert cfg.damage.p_craquelure == DetectorTrainConfig().damage.p_craquelure
    seen.clear()
    td.main(["--steps", "3"])
    assert seen["cfg"].damage == DetectorTrainConfig().damage and seen["cfg"].ship
    seen.clear()
    td.main(["--steps", "3", "--crack-contrast", "0.2,0.9"])
    assert seen["cfg"].damage.crack_contrast == (0.2, 0.9)
    assert seen["cfg"].damage.p_texture == DetectorTrainConfig().damage.p_texture
    seen.clear()
    td.main(["--steps", "3", "--faint-cracks", "0.45", "--crack-width", "1.0,2.0"])
    assert (seen["cfg"].damage.p_faint_cracks, seen["cfg"].damage.crack_width) == (0.45, (1.0, 2.0))
    assert seen["cfg"].damage.p_strokes == 0.0
    seen.clear()
    td.main(["--steps", "3", "--damage-style", "realistic", "--stroke-negatives", "0.5"])
    assert seen["cfg"].damage.p_strokes == 0.5


@pytest.mark.parametrize(("args", "message"), [
    (["--average-from", "5"], "average_from needs snapshot_every"),
    (["--loss", "l2"], "loss must be one of"),
    (["--free-cracks", "1.5"], "p_free_cracks must be in [0, 1]"),
    (["--dark-cracks", "-0.1"], "p_dark_cracks must be in [0, 1]"),
    (["--crack-contrast", "0.2"], "crack contrast must be two numbers LO,HI, got '0.2'"),
    (["--crack-contrast", "0.9,0.2"], "crack_contrast must be an increasing range"),
    (["--crack-width", "2"], "crack width must be two numbers LO,HI, got '2'"),
    (["--stroke-negatives", "2"], "p_strokes must be in [0, 1]"),
    (["--real-val-images", "."], "real_val_images and real_val_masks go together"),
    (["--real-val-images", ".", "--real-val-masks", "no-such-folder"], "no-such-folder: real validation folder"),
])
def test_train_detector_command_refuses_bad_settings_in_one_line(
    args: list[str], message: str, refused_in_one_line: Callable[[list[str], str], None]
) -> None:
    refused_in_one_line(["train", "detector", "--no-flow", *args], message)


def _crack_photos(root: Path, n: int = 2) -> tuple[Path, Path]:
    """Grey 64x64 'photos' with a dark vertical crack (mask 255) beside a light distractor block (mask 204)."""
    from pipeline.io.image_io import write_png

    for i in range(n):
        image = np.full((64, 64), 200, np.uint8)
        mask = np.zeros((64, 64), np.uint8)
        image[:, 20 + i : 23 + i] = 20
        mask[:, 20 + i : 23 + i] = 255
        mask[40:56, 40:56] = 204  # e.g. UAV75's planking: labelled, but not a crack
        write_png(root / "images" / f"p{i}.png", image)
        write_png(root / "masks" / f"p{i}.png", mask)
    return root / "images", root / "masks"


class _DarkIsCrack(torch.nn.Module):
    """Craquelure wherever the image is dark: an oracle for _crack_photos."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit = (0.5 - x[:, :1]) * 40.0
        return torch.cat([logit, -torch.ones_like(logit) * 10], dim=1)


def test_real_validation_honours_the_mask_value(tmp_path: Path) -> None:
    from lab.detector_validation import load_real_val, score_real

    images, masks = _crack_photos(tmp_path)
    pairs = load_real_val(DetectorTrainConfig(real_val_images=str(images), real_val_masks=str(masks),
                                              real_val_mask_value=255))
    assert len(pairs) == 2 and pairs[0][0].dtype == np.float32 and pairs[0][1].sum() == 3 * 64
    assert score_real(_DarkIsCrack(), pairs)["f1"] == pytest.approx(1.0)
    anything = load_real_val(DetectorTrainConfig(real_val_images=str(images), real_val_masks=str(masks)))
    assert score_real(_DarkIsCrack(), anything)["recall"] < 0.5  # the distractor block counts as crack
    assert load_real_val(DetectorTrainConfig()) == []


def test_training_scores_real_photos_at_every_evaluation(shared_data: Path, tmp_path: Path) -> None:
    images, masks = _crack_photos(tmp_path / "real")
    run_dir, manifest = tmp_path / "run", tmp_path / "w" / "manifest.json"
    cfg = DetectorTrainConfig(steps=4, tile=64, batch=2, eval_every=2, checkpoint_every=2, val_tiles=2, warmup=1,
                              run_dir=str(run_dir), decoder_channels=TINY["decoder_channels"],
                              real_val_images=str(images), real_val_masks=str(masks), real_val_mask_value=255)
    train_detector(cfg, manifest_path=manifest, echo=None)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    assert all(set(r["real_val"]) >= {"precision", "recall", "f1"} for r in records)
    assert "real val step 4 (2 photos) craquelure F1" in (run_dir / "train.log").read_text()
    real = json.loads(manifest.read_text())["weights"][0]["metrics"]["real_validation"]
    assert real["photos"] == 2 and 0.0 <= real["craquelure"]["f1"] <= 1.0
