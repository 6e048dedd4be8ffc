"""Averaged detectors (`python -m lab.soup`): the shipped weights are the mean of the sources', loadable and
verified like any weights; sources of another network, or too few, are refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lab.detector_config import DETECTOR_TILING
from lab.soup import main
from models.resunet import ResUNet
from models.weights import get_entry, load_model, load_state, save_weights

ARGS = {"encoder_name": "resnet18", "classes": 2, "decoder_channels": [16, 16, 8, 8, 8]}


def _ship(manifest: Path, name: str, seed: int, **args: object) -> ResUNet:
    torch.manual_seed(seed)
    net = ResUNet(**{**ARGS, **args}).eval()
    save_weights(net, name=name, architecture="resunet", arch_args={**ARGS, **args}, tiling=DETECTOR_TILING,
                 manifest_path=manifest)
    return net


def test_the_average_of_two_detectors_is_shipped_as_a_detector(tmp_path: Path) -> None:
    manifest = tmp_path / "w" / "manifest.json"
    a, b = _ship(manifest, "a", 1), _ship(manifest, "b", 2)
    main(["ab", "a", "b", "--manifest", str(manifest), "--no-validate"])
    state = load_state(get_entry("ab", manifest), manifest.parent)
    name = next(k for k, v in state.items() if v.ndim == 4)
    wa, wb = a.state_dict()[name], b.state_dict()[name]
    assert not torch.equal(wa, wb)
    assert state[name].dtype == torch.float16
    assert torch.allclose(state[name].float(), ((wa.double() + wb.double()) / 2).float(), atol=1e-3)
    sources = get_entry("ab", manifest).training["sources"]
    assert [s["name"] for s in sources] == ["a", "b"]
    assert sources[0]["sha256"] == get_entry("a", manifest).sha256
    model, _ = load_model("ab", manifest_path=manifest)
    with torch.no_grad():
        assert model(torch.rand(1, 3, 32, 32)).shape == (1, 2, 32, 32)


def test_sources_of_another_network_or_too_few_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "w" / "manifest.json"
    _ship(manifest, "a", 1)
    _ship(manifest, "wide", 2, decoder_channels=[32, 16, 8, 8, 8])
    for argv, message in ((["x", "a", "wide"], "'wide' is not the network of 'a'"),
                          (["x", "a"], "at least 2 detectors"),
                          (["x", "a", "gone"], "no weights named 'gone'")):
        with pytest.raises(SystemExit) as exit_:
            main([*argv, "--manifest", str(manifest), "--no-validate"])
        err = capsys.readouterr().err.strip()
        assert exit_.value.code == 2 and message in err and len(err.splitlines()) == 1, err
    assert "x" not in {e["name"] for e in json.loads(manifest.read_text())["weights"]}
