"""Max-ensemble detector: the union of its members, one manifest entry, loads and refuses like any weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from lab.ensemble import ensemble_from_files, main
from models.ensemble import MaxResUNet
from models.resunet import ResUNet
from models.weights import WeightsError, load_model

ARGS = {"encoder_name": "resnet18", "classes": 2, "decoder_channels": [16, 16, 8, 8, 8]}


def _member(path: Path, seed: int) -> ResUNet:
    torch.manual_seed(seed)
    net = ResUNet(**ARGS).eval()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return net


def test_logits_are_the_per_pixel_maximum_of_the_members(tmp_path: Path) -> None:
    a, b = _member(tmp_path / "a.safetensors", 1), _member(tmp_path / "b.safetensors", 2)
    ensemble = ensemble_from_files([tmp_path / "a.safetensors", tmp_path / "b.safetensors"], ARGS)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        la, lb, le = a(x), b(x), ensemble(x)
    assert torch.equal(le, torch.maximum(la, lb))
    assert (la > lb).any() and (lb > la).any()  # both members decide somewhere


def test_shipped_ensemble_loads_from_the_manifest_and_refuses_tampering(tmp_path: Path) -> None:
    a, b = _member(tmp_path / "a.safetensors", 1), _member(tmp_path / "b.safetensors", 2)
    manifest = tmp_path / "w" / "manifest.json"
    main(["tiny-max", str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"), "--decoder",
          "16,16,8,8,8", "--note", "two seeds", "--manifest", str(manifest), "--no-validate"])
    entry = json.loads(manifest.read_text())["weights"][0]
    assert entry["architecture"] == "resunet-max" and entry["arch_args"]["members"] == 2
    assert set(entry["training"]["data"]) >= {"train_paintings", "val_paintings"}
    assert [m["file"] for m in entry["training"]["members"]] == [str(tmp_path / "a.safetensors"),
                                                                  str(tmp_path / "b.safetensors")]
    model, _ = load_model("tiny-max", manifest_path=manifest)
    assert isinstance(model, MaxResUNet)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():  # stored as fp16, loaded back to fp32: the union of the fp16-rounded members
        expected = torch.maximum(a.half().float()(x), b.half().float()(x))
        assert torch.allclose(model(x), expected, atol=1e-4)
    data = bytearray((manifest.parent / "tiny-max.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (manifest.parent / "tiny-max.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        load_model("tiny-max", manifest_path=manifest)


def test_members_of_another_shape_or_missing_are_refused(tmp_path: Path) -> None:
    _member(tmp_path / "a.safetensors", 1)
    torch.manual_seed(0)
    wide = ResUNet(**{**ARGS, "decoder_channels": [32, 16, 8, 8, 8]})
    save_file({k: v.contiguous() for k, v in wide.state_dict().items()}, str(tmp_path / "wide.safetensors"))
    with pytest.raises(ValueError, match="wide.safetensors: not a Res-UNet"):
        ensemble_from_files([tmp_path / "a.safetensors", tmp_path / "wide.safetensors"], ARGS)
    with pytest.raises(FileNotFoundError, match="gone.safetensors"):
        ensemble_from_files([tmp_path / "a.safetensors", tmp_path / "gone.safetensors"], ARGS)
    with pytest.raises(ValueError, match="at least 2 members"):
        ensemble_from_files([tmp_path / "a.safetensors"], ARGS)


def test_detect_probabilities_of_an_ensemble_cover_each_member(tmp_path: Path) -> None:
    from pipeline.stages.detect_infer import predict_probabilities

    a, b = _member(tmp_path / "a.safetensors", 1), _member(tmp_path / "b.safetensors", 2)
    ensemble = ensemble_from_files([tmp_path / "a.safetensors", tmp_path / "b.safetensors"], ARGS)
    image = np.random.default_rng(0).random((80, 100, 3)).astype(np.float32)
    pe, pa, pb = (predict_probabilities(m, image, tile=64, overlap=16) for m in (ensemble, a, b))
    assert pe.shape == (2, 80, 100)
    assert (pe >= np.maximum(pa, pb) - 1e-5).all()  # blended tiles: at least each member, everywhere


def test_shipped_ensemble_records_its_validation_scores(shared_data: Path, tmp_path: Path) -> None:
    from lab.ensemble import ship_ensemble

    _member(tmp_path / "a.safetensors", 1)
    _member(tmp_path / "b.safetensors", 2)
    manifest = tmp_path / "w" / "manifest.json"
    entry = ship_ensemble("tiny-max", [tmp_path / "a.safetensors", tmp_path / "b.safetensors"], ARGS,
                          {"note": "test"}, manifest)
    val = entry.metrics["validation"]
    assert val["tiles"] == 48 and set(val["craquelure"]) >= {"precision", "recall", "f1"}
    assert 0.0 <= val["mean_f1"] <= 1.0


def test_int8_ensemble_is_half_the_file_and_stays_the_union(tmp_path: Path) -> None:
    a, b = _member(tmp_path / "a.safetensors", 1), _member(tmp_path / "b.safetensors", 2)
    manifest = tmp_path / "w" / "manifest.json"
    for name, extra in (("half", []), ("q", ["--int8"])):
        main([name, str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"), "--decoder", "16,16,8,8,8",
              "--manifest", str(manifest), "--no-validate", *extra])
    sizes = {n: (manifest.parent / f"{n}.safetensors").stat().st_size for n in ("half", "q")}
    assert sizes["q"] < 0.6 * sizes["half"], sizes
    entries = {e["name"]: e for e in json.loads(manifest.read_text())["weights"]}
    assert entries["q"]["training"]["stored_dtype"].startswith("int8")
    model, _ = load_model("q", manifest_path=manifest)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected = torch.maximum(a(x), b(x))
        assert float((model(x) - expected).abs().max()) < 0.05 * float(expected.abs().max())


def test_member_thresholds_decide_each_member_at_its_own_probability(tmp_path: Path) -> None:
    a, b = _member(tmp_path / "a.safetensors", 1), _member(tmp_path / "b.safetensors", 2)
    paths = [tmp_path / "a.safetensors", tmp_path / "b.safetensors"]
    plain = ensemble_from_files(paths, ARGS)
    shifted = ensemble_from_files(paths, ARGS, thresholds=[0.6, 0.45])
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        pa, pb, le = torch.sigmoid(a(x)), torch.sigmoid(b(x)), shifted(x)
        assert torch.equal(plain(x), torch.maximum(a(x), b(x)))  # default: no shift
    decided = (pa > 0.6) | (pb > 0.45)
    near = ((pa - 0.6).abs() < 1e-4) | ((pb - 0.45).abs() < 1e-4)  # float rounding at the boundary
    assert torch.equal((le > 0)[~near], decided[~near])
    assert ((pa > 0.5) & (pa <= 0.6)).any()  # the test covers a pixel that the shift turns off
    assert ((pb > 0.45) & (pb <= 0.5)).any()  # and one that it turns on


def test_member_thresholds_are_kept_in_the_entry_and_checked(tmp_path: Path) -> None:
    _member(tmp_path / "a.safetensors", 1)
    _member(tmp_path / "b.safetensors", 2)
    manifest = tmp_path / "w" / "manifest.json"
    members = [str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors")]
    main(["t", *members, "--decoder", "16,16,8,8,8", "--manifest", str(manifest), "--no-validate",
          "--thresholds", "0.7,0.5"])
    assert json.loads(manifest.read_text())["weights"][0]["arch_args"]["thresholds"] == [0.7, 0.5]
    model, _ = load_model("t", manifest_path=manifest)
    assert model.thresholds == [0.7, 0.5]
    for bad in ([0.5], [0.5, 1.0], [0.0, 0.5]):
        with pytest.raises(ValueError, match="thresholds must be 2 numbers in"):
            ensemble_from_files([Path(m) for m in members], ARGS, thresholds=bad)
    with pytest.raises(SystemExit):
        main(["t", *members, "--manifest", str(manifest), "--thresholds", "0.7;0.5"])
