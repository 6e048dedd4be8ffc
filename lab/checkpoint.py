"""Resumable training checkpoints in safetensors only: model weights, optimizer state, step, extra JSON.

The optimizer's tensors are stored under `optim/<param index>/<name>` and its param groups as JSON in the
file metadata, so nothing is ever pickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from models.weights import write_safetensors


def save_checkpoint(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int, extra: dict[str, Any]
) -> None:
    """Write model + optimizer state atomically to `path` (a .safetensors file)."""
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for name, value in state.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"optim/{index}/{name}"] = tensor.detach().cpu().contiguous()
    meta = {"step": str(step), "param_groups": json.dumps(opt["param_groups"]), "extra": json.dumps(extra)}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(tensors, path, meta)


def load_checkpoint(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> tuple[int, dict[str, Any]]:
    """Restore `model` (and `optimizer`) from `path`; returns (step, extra)."""
    model_state: dict[str, torch.Tensor] = {}
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        for key in fh.keys():
            kind, _, rest = key.partition("/")
            if kind == "model":
                model_state[rest] = fh.get_tensor(key)
            elif kind == "optim":
                index, _, name = rest.partition("/")
                opt_state.setdefault(int(index), {})[name] = fh.get_tensor(key)
    model.load_state_dict(model_state)
    if optimizer is not None and opt_state:
        optimizer.load_state_dict({"state": opt_state, "param_groups": json.loads(meta["param_groups"])})
    return int(meta.get("step", 0)), json.loads(meta.get("extra", "{}"))


def init_from(model: torch.nn.Module, path: Path) -> list[str]:
    """Copy every tensor of a weights file (or a training checkpoint's `model/...` tensors, or with `FILE#K`
    member K of an ensemble's weights, its int8 kernels dequantized) whose name and shape match `model`'s;
    returns the names left at their init. Refuses a file that matches nothing."""
    from safetensors.torch import load_file

    from models.quantize import dequantize
    from models.resunet import widen_input

    file, _, member = str(path).partition("#")
    theirs = load_file(file)
    if any(k.startswith("model/") for k in theirs):
        theirs = {k.removeprefix("model/"): v for k, v in theirs.items() if k.startswith("model/")}
    if member:
        prefix = f"members.{member}."
        theirs = dequantize({k.removeprefix(prefix): v for k, v in theirs.items() if k.startswith(prefix)})
    own = model.state_dict()
    theirs = widen_input(own, theirs)
    take = {k: v.to(own[k].dtype) for k, v in theirs.items() if k in own and own[k].shape == v.shape}
    if not take:
        raise ValueError(f"{path}: no tensor matches this network ({type(model).__name__}); "
                         "is it the same architecture and widths?")
    model.load_state_dict(take, strict=False)
    return sorted(k for k in own if k not in take)
