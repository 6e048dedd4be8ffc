"""Shipped weights: safetensors files pinned by sha256 in `models/weights/manifest.json`.

A manifest entry carries everything a stage needs to use the weights: the architecture and its
arguments, the tiling it expects, how it was trained and what it scored. The safetensors file also
holds the architecture and arguments in its metadata, so the one file rebuilds the network.
Weights are never unpickled.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST_PATH = WEIGHTS_DIR / "manifest.json"


def write_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write `tensors` to `path` atomically (a `.tmp` beside it, then a rename), the metadata keys in sorted order.

    safetensors orders the metadata keys by a hash that differs from one process to the next, so the same tensors
    would be other bytes (another sha256) in another run; with the keys sorted they are the same file."""
    blob = safetensors_bytes(tensors, metadata=metadata)
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + size])
    meta = header.pop("__metadata__", None)
    ordered = ({"__metadata__": dict(sorted(meta.items()))} if meta else {}) | header
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(len(text).to_bytes(8, "little"))
        fh.write(text)
        fh.write(memoryview(blob)[8 + size:])
    tmp.replace(path)


class WeightsError(RuntimeError):
    """Weights missing, unknown, or not matching their manifest digest."""


@dataclass(frozen=True)
class Tiling:
    """How the network expects its input: tile side, halo, channels and value range."""

    tile: int
    halo: int
    channels: int = 3
    value_range: tuple[float, float] = (0.0, 1.0)
    multiple_of: int = 32


@dataclass(frozen=True)
class WeightsEntry:
    name: str
    file: str
    sha256: str
    architecture: str
    arch_args: dict[str, Any]
    tiling: Tiling
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    date: str = ""

    def path(self, weights_dir: Path = WEIGHTS_DIR) -> Path:
        return weights_dir / self.file

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["tiling"]["value_range"] = list(self.tiling.value_range)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WeightsEntry:
        tiling = dict(data["tiling"])
        tiling["value_range"] = tuple(tiling.get("value_range", (0.0, 1.0)))
        return cls(**{**data, "tiling": Tiling(**tiling)})


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_manifest(manifest_path: Path = MANIFEST_PATH) -> dict[str, WeightsEntry]:
    """All manifest entries by name; an absent manifest is empty."""
    if not manifest_path.exists():
        return {}
    try:
        raw = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{manifest_path}: not valid JSON ({exc})") from exc
    return {item["name"]: WeightsEntry.from_json(item) for item in raw.get("weights", [])}


def get_entry(name: str, manifest_path: Path = MANIFEST_PATH, kind: str | None = None) -> WeightsEntry:
    """Manifest entry `name`; with `kind` ('detector', 'inpainter') it must be weights of that kind."""
    from models.registry import KINDS

    entries = load_manifest(manifest_path)
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise WeightsError(f"{manifest_path}: no weights named {name!r} (known: {known})")
    entry = entries[name]
    actual = KINDS.get(entry.architecture.lower())
    if kind is not None and actual != kind:
        known = ", ".join(sorted(n for n, e in entries.items() if KINDS.get(e.architecture.lower()) == kind))
        raise WeightsError(f"{manifest_path}: {name!r} holds {actual or 'unknown'} weights ({entry.architecture}), "
                           f"not {'an' if kind[0] in 'aeiou' else 'a'} {kind} (the {kind}s: {known or 'none'})")
    return entry


def save_weights(
    model: torch.nn.Module,
    *,
    name: str,
    architecture: str,
    arch_args: dict[str, Any],
    tiling: Tiling,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    manifest_path: Path = MANIFEST_PATH,
    int8: bool = False,
) -> WeightsEntry:
    """Write `model` as `<name>.safetensors` beside the manifest and record (or replace) its entry.

    `int8` stores the kernels as int8 with per-output-channel scales (models.quantize); loading restores them."""
    weights_dir = manifest_path.parent
    weights_dir.mkdir(parents=True, exist_ok=True)
    file_name = f"{name}.safetensors"
    target = weights_dir / file_name
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"architecture": architecture, "arch_args": json.dumps(arch_args)}
    if int8:
        from models.quantize import quantize_state

        state = quantize_state(state)
        metadata["storage"] = "int8 kernels, per-output-channel scales (models.quantize)"
    write_safetensors(state, target, metadata)
    entry = WeightsEntry(
        name=name,
        file=file_name,
        sha256=sha256_file(target),
        architecture=architecture,
        arch_args=arch_args,
        tiling=tiling,
        training=training or {},
        metrics=metrics or {},
        date=dt.date.today().isoformat(),
    )
    entries = load_manifest(manifest_path)
    entries[name] = entry
    payload = {"weights": [e.to_json() for e in sorted(entries.values(), key=lambda e: e.name)]}
    tmp_manifest = manifest_path.with_suffix(".json.tmp")
    tmp_manifest.write_text(json.dumps(payload, indent=2) + "\n")
    tmp_manifest.replace(manifest_path)
    return entry


def verify_weights(entry: WeightsEntry, weights_dir: Path | None = None) -> Path:
    """The weights file of `entry`, refused (WeightsError) when missing or not matching its sha256.

    Stages call it before they touch their output, so bad weights never cost a good result."""
    path = entry.path(weights_dir or WEIGHTS_DIR)
    if not path.exists():
        raise WeightsError(f"{path}: weights file for {entry.name!r} is missing")
    actual = sha256_file(path)
    if actual != entry.sha256:
        raise WeightsError(
            f"{path}: sha256 {actual[:16]}… does not match the manifest's {entry.sha256[:16]}… "
            f"for {entry.name!r}; refusing to load (re-train or restore the file)"
        )
    return path


def load_state(entry: WeightsEntry, weights_dir: Path | None = None) -> dict[str, torch.Tensor]:
    """The verified state dict of `entry`: refuses a missing file or a sha256 mismatch."""
    path = verify_weights(entry, weights_dir)
    from models.quantize import dequantize

    try:
        return dequantize(load_file(str(path)))
    except ValueError as exc:
        raise WeightsError(f"{path}: {exc}") from None


def load_model(
    name: str, manifest_path: Path = MANIFEST_PATH, device: str | torch.device = "cpu", kind: str | None = None
) -> tuple[torch.nn.Module, WeightsEntry]:
    """Rebuild the network of manifest entry `name` (of `kind`, when given), load its verified weights, put it in
    eval mode."""
    from models.registry import create_model

    entry = get_entry(name, manifest_path, kind)
    model = create_model(entry.architecture, **entry.arch_args)
    model.load_state_dict(load_state(entry, manifest_path.parent))
    return model.to(device).eval(), entry
