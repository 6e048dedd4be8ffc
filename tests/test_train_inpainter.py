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


@pytest.mark.parametrize(("args", "message"), [
    (["--prefill", "telea"], "prefill must be one of none, harmonic, biharmonic, biharmonic-cg"),
    (["--prefill", "biharmonic-cg", "--prefill-iterations", "-1"], "prefill_iterations must be >= 0, got -1"),
    (["--init-weights", "/nonexistent/w.safetensors"], "/nonexistent/w.safetensors: init_weights file not found"),
    (["--tile", "100"], "must be multiples of 2**depth"),
    (["--hole-norm", "pixel"], "hole_norm must be one of image, hole, got 'pixel'"),
    (["--psnr-weight", "-0.1"], "psnr_weight must be >= 0, got -0.1"),
    (["--refine", "-1"], "refine must be >= 0, got -1"),
    (["--refine-only"], "refine_only needs refine > 0 and init_weights"),
])
def test_train_command_refuses_bad_settings_in_one_line(
    args: list[str], message: str, refused_in_one_line: Callable[[list[str], str], None]
) -> None:
    refused_in_one_line(["train", "inpainter", "--no-flow", *args], message)
