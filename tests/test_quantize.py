"""Int8 weight storage: per-channel error bound, what stays float, half the file, loads (and refuses) as weights do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from models.quantize import SCALE_SUFFIX, dequantize, quantize_state
from models.resunet import ResUNet
from models.weights import Tiling, WeightsError, get_entry, load_model, load_state, save_weights

ARGS = {"encoder_name": "resnet18", "classes": 2, "decoder_channels": [16, 16, 8, 8, 8]}


def test_kernels_round_trip_within_half_a_step_and_the_rest_is_untouched() -> None:
    torch.manual_seed(0)
    state = {"conv.weight": torch.randn(16, 8, 3, 3) * torch.linspace(0.01, 3.0, 16).view(16, 1, 1, 1),
             "conv.bias": torch.randn(8), "bn.num_batches_tracked": torch.tensor(5),
             "small.weight": torch.randn(4, 4)}
    stored = quantize_state(state)
    assert stored["conv.weight"].dtype == torch.int8 and stored["conv.weight" + SCALE_SUFFIX].shape == (16,)
    assert stored["conv.bias"] is state["conv.bias"] and stored["small.weight"] is state["small.weight"]
    back = dequantize(stored)
    assert set(back) == set(state)
    step = state["conv.weight"].abs().flatten(1).amax(1) / 127  # per output channel, so small channels stay exact
    err = (back["conv.weight"] - state["conv.weight"]).abs().flatten(1).amax(1)
    assert bool((err <= step / 2 + 1e-7).all()) and float(err[0]) < 1e-3
    assert torch.equal(back["bn.num_batches_tracked"], torch.tensor(5))
    assert dequantize(state) is state  # nothing quantised: as is


def test_reserved_names_and_mismatched_scales_are_refused() -> None:
    with pytest.raises(ValueError, match="reserved suffix"):
        quantize_state({"x" + SCALE_SUFFIX: torch.ones(64, 64)})
    stored = quantize_state({"w": torch.randn(64, 32)})
    with pytest.raises(ValueError, match="do not match"):
        dequantize({**stored, "w" + SCALE_SUFFIX: torch.ones(3)})


def test_int8_weights_are_half_the_fp16_file_and_load_close_to_the_network(tmp_path: Path) -> None:
    torch.manual_seed(1)
    net = ResUNet(**ARGS).eval()
    manifest = tmp_path / "manifest.json"
    tiling = Tiling(tile=64, halo=8)
    save_weights(net.half(), name="fp16", architecture="resunet", arch_args=ARGS, tiling=tiling, manifest_path=manifest)
    net = net.float()
    save_weights(net, name="int8", architecture="resunet", arch_args=ARGS, tiling=tiling, manifest_path=manifest,
                 int8=True)
    sizes = {n: (tmp_path / f"{n}.safetensors").stat().st_size for n in ("fp16", "int8")}
    assert sizes["int8"] < 0.6 * sizes["fp16"], sizes
    loaded, _ = load_model("int8", manifest_path=manifest)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref, got = net(x), loaded(x)
    assert float((ref - got).abs().max()) < 0.05 * float(ref.abs().max())
    assert next(loaded.parameters()).dtype == torch.float32
    assert json.loads(manifest.read_text())["weights"][1]["name"] == "int8"


def test_a_corrupt_int8_file_with_a_matching_digest_is_refused_naming_it(tmp_path: Path) -> None:
    """A file re-written with a broken scale (and its digest updated by hand) fails with the file's name."""
    manifest = tmp_path / "manifest.json"
    save_weights(ResUNet(**ARGS), name="q", architecture="resunet", arch_args=ARGS, tiling=Tiling(tile=64, halo=8),
                 manifest_path=manifest, int8=True)
    path = tmp_path / "q.safetensors"
    state = load_file(str(path))
    key = next(k for k in state if k.endswith(SCALE_SUFFIX))
    save_file({**state, key: torch.ones(1)}, str(path))
    from models.weights import sha256_file

    raw = json.loads(manifest.read_text())
    raw["weights"][0]["sha256"] = sha256_file(path)
    manifest.write_text(json.dumps(raw))
    with pytest.raises(WeightsError, match="q.safetensors.*do not match"):
        load_state(get_entry("q", manifest), tmp_path)
