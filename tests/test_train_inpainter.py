"""The inpainter training loop: resumes from its safetensors checkpoint to the same weights, and ships."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from lab.inpainter_config import InpainterTrainConfig
from lab.train_inpainter import build_model, export_weights, load_checkpoint, train
from models.weights import load_state

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cfg(run_dir: Path, phase1: int, phase2: int) -> InpainterTrainConfig:
    return InpainterTrainConfig(
        tile=32, batch=2, depth=3, base_channels=4, max_channels=16, phase1_steps=phase1, phase2_steps=phase2,
        steps_per_epoch=1, scales=(0.1,), masks_per_bin=1, val_tile=32, val_tiles_per_painting=1,
        val_long_side=64, run_dir=str(run_dir), feature_net="none",
    )


def test_resumed_training_equals_uninterrupted_and_ships(shared_data: Path, tmp_path: Path) -> None:
    from lab.paintings import paintings

    train_set, val_set = paintings("train")[:2], paintings("val")[:1]
    assert not set(train_set) & set(val_set)
    straight = train(_cfg(tmp_path / "a", 3, 1), train_set, val_set)
    train(_cfg(tmp_path / "b", 2, 0), train_set, val_set)  # stopped early ...
    resumed = train(_cfg(tmp_path / "b", 3, 1), train_set, val_set)  # ... and resumed with the full schedule
    a, b = build_model(_cfg(tmp_path, 3, 1)), build_model(_cfg(tmp_path, 3, 1))
    meta, _ = load_checkpoint(straight, a)
    load_checkpoint(resumed, b)
    assert meta["step"] == 4 and meta["phase"] == 2 and len(meta["log"]) == 4
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    with pytest.raises(ValueError, match="other tile"):
        train(replace(_cfg(tmp_path / "b", 3, 1), tile=64), train_set, val_set)
    entry = export_weights(straight, data={"train": [p.name for p in train_set]},
                           manifest_path=tmp_path / "w" / "manifest.json")
    assert entry.architecture == "pconvunet" and "val_psnr" in entry.metrics
    assert set(load_state(entry, tmp_path / "w")) == set(a.state_dict())


def test_prefill_run_starts_from_weights_and_ships_a_loadable_model(shared_data: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from lab.paintings import paintings
    from models.smooth_fill import harmonic_fill
    from models.weights import load_model

    train_set, val_set = paintings("train")[:1], paintings("val")[:1]
    plain = build_model(_cfg(tmp_path, 1, 0))
    save_file({k: v.contiguous() for k, v in plain.state_dict().items()}, str(tmp_path / "plain.safetensors"))
    cfg = replace(_cfg(tmp_path / "h", 0, 0), prefill="harmonic", init_weights=str(tmp_path / "plain.safetensors"))
    untrained = train(cfg, train_set, val_set)  # no steps: the checkpoint holds the starting network
    assert not untrained.exists()  # nothing to save without a step
    ckpt = train(replace(cfg, phase1_steps=2), train_set, val_set)
    entry = export_weights(ckpt, manifest_path=tmp_path / "w" / "manifest.json")
    assert entry.arch_args["prefill"] == "harmonic"
    model, _ = load_model(entry.name, tmp_path / "w" / "manifest.json")
    x, m = torch.rand(1, 3, 32, 32), (torch.rand(1, 1, 32, 32) > 0.4).float()
    with torch.inference_mode():
        out = model(x * m, m)
    assert out.shape == x.shape and not torch.equal(out, harmonic_fill(x, m))  # two steps moved the last layer

    shipped = tmp_path / "w" / entry.file
    refined = train(replace(cfg, run_dir=str(tmp_path / "r"), phase1_steps=2, refine=4, refine_only=True,
                            init_weights=str(shipped)), train_set, val_set)
    entry = export_weights(refined, manifest_path=tmp_path / "w2" / "manifest.json")
    assert entry.arch_args["refine"] == 4
    extended, _ = load_model(entry.name, tmp_path / "w2" / "manifest.json")
    kept = extended.state_dict()
    for name, tensor in model.state_dict().items():  # the refined run changed its branch only
        assert torch.equal(kept[name], tensor), name
    assert any(not torch.equal(t, torch.zeros_like(t)) for k, t in kept.items() if k.startswith("refine.4."))


def test_adversarial_decoder_run_resumes_with_its_discriminator(shared_data: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from lab.paintings import paintings
    from lab.train_inpainter import load_discriminator
    from models.patch_disc import PatchDiscriminator

    train_set, val_set = paintings("train")[:2], paintings("val")[:1]
    start = build_model(_cfg(tmp_path, 1, 0))
    save_file({k: v.contiguous() for k, v in start.state_dict().items()}, str(tmp_path / "start.safetensors"))

    def cfg(run: str, steps: int) -> InpainterTrainConfig:
        return replace(_cfg(tmp_path / run, 0, steps), init_weights=str(tmp_path / "start.safetensors"),
                       decoder_only=True, adv_weight=0.1, disc_channels=4, disc_layers=2, tv_weight=0.0,
                       snapshot_every=2)

    straight = train(cfg("a", 4), train_set, val_set)
    train(cfg("b", 2), train_set, val_set)  # stopped early ...
    resumed = train(cfg("b", 4), train_set, val_set)  # ... and resumed: the discriminator resumes too
    assert (tmp_path / "a" / "checkpoint-step2.safetensors").exists()
    a, b = build_model(_cfg(tmp_path, 1, 0)), build_model(_cfg(tmp_path, 1, 0))
    meta, _ = load_checkpoint(straight, a)
    load_checkpoint(resumed, b)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
        if name.startswith("encoder."):  # decoder_only: the encoder is the start's
            assert torch.equal(pa, start.state_dict()[name]), name
    assert any(not torch.equal(t, start.state_dict()[k]) for k, t in a.state_dict().items() if "decoder" in k)
    da, db = PatchDiscriminator(3, 4, 2), PatchDiscriminator(3, 4, 2)
    assert load_discriminator(straight, da) and load_discriminator(resumed, db)  # with its Adam state
    for (name, ta), tb in zip(da.state_dict().items(), db.state_dict().values(), strict=True):
        assert torch.equal(ta, tb), name
    d_losses = [e["adv_d"] for e in meta["log"]]
    assert len(d_losses) == 4 and len(set(d_losses)) == 4 and all("adv_g" in e for e in meta["log"])
    with pytest.raises(ValueError, match="other adv_weight"):
        train(replace(cfg("b", 4), adv_weight=0.5), train_set, val_set)
    plain = train(_cfg(tmp_path / "c", 1, 0), train_set, val_set)  # a run without a discriminator
    with pytest.raises(ValueError, match="holds no discriminator"):
        load_discriminator(plain, da)


def test_checkpoint_of_a_run_before_the_texture_options_resumes(shared_data: Path, tmp_path: Path) -> None:
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from lab.paintings import paintings

    train_set, val_set = paintings("train")[:1], paintings("val")[:1]
    ckpt = train(_cfg(tmp_path / "old", 1, 0), train_set, val_set)
    with safe_open(str(ckpt), framework="pt") as f:
        meta = json.loads(f.metadata()["meta"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    new = ("decoder_only", "perceptual_weight", "style_weight", "tv_weight", "adv_weight", "adv_loss",
           "disc_channels", "disc_layers", "lr_disc", "snapshot_every")
    meta["config"] = {k: v for k, v in meta["config"].items() if k not in new}  # as an older run wrote it
    save_file(tensors, str(ckpt), metadata={"meta": json.dumps(meta)})
    resumed = train(_cfg(tmp_path / "old", 2, 0), train_set, val_set)
    assert load_checkpoint(resumed, build_model(_cfg(tmp_path, 2, 0)))[0]["step"] == 2


@pytest.mark.parametrize(("args", "message"), [
    (["--prefill", "telea"], "prefill must be one of none, harmonic, biharmonic, biharmonic-cg"),
    (["--prefill", "biharmonic-cg", "--prefill-iterations", "-1"], "prefill_iterations must be >= 0, got -1"),
    (["--init-weights", "/nonexistent/w.safetensors"], "/nonexistent/w.safetensors: init_weights file not found"),
    (["--tile", "100"], "must be multiples of 2**depth"),
    (["--hole-norm", "pixel"], "hole_norm must be one of image, hole, lowpass, got 'pixel'"),
    (["--psnr-weight", "-0.1"], "psnr_weight must be >= 0, got -0.1"),
    (["--refine", "-1"], "refine must be >= 0, got -1"),
    (["--refine-only"], "refine_only needs refine > 0 and init_weights"),
    (["--decoder-only"], "decoder_only needs init_weights"),
    (["--adv-weight", "-1"], "adv_weight must be >= 0, got -1.0"),
    (["--style-weight", "-1"], "style_weight must be >= 0, got -1.0"),
    (["--adv-loss", "wgan"], "adv_loss must be one of hinge, nsgan, got 'wgan'"),
    (["--feature-net", "resnet"], "feature_net must be 'random', 'none'"),
])
def test_train_command_refuses_bad_settings_in_one_line(
    args: list[str], message: str, refused_in_one_line: Callable[[list[str], str], None]
) -> None:
    refused_in_one_line(["train", "inpainter", "--no-flow", *args], message)
