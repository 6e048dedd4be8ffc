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
from safetensors.torch import save_file


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
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


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
