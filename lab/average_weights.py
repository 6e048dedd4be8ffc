"""Uniform weight averaging of snapshots along one training run (stochastic weight averaging, Izmailov et al.
2018): floating-point tensors (weights, biases, batch-norm statistics) are averaged, integer counters are
taken from the last snapshot. Snapshots must come from one run (same architecture), so they share a basin.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file


def average_state_dicts(paths: list[Path]) -> dict[str, torch.Tensor]:
    """The uniform average of the safetensors state dicts in `paths` (refuses differing keys or shapes)."""
    if not paths:
        raise ValueError("no snapshots to average")
    first = load_file(str(paths[0]))
    total = {k: v.double() if v.dtype.is_floating_point else v for k, v in first.items()}
    for path in paths[1:]:
        state = load_file(str(path))
        if state.keys() != first.keys():
            raise ValueError(f"{path}: tensors differ from {paths[0].name}'s; snapshots of one run only")
        for name, tensor in state.items():
            if tensor.shape != first[name].shape:
                raise ValueError(f"{path}: {name} has shape {tuple(tensor.shape)}, not {tuple(first[name].shape)}")
            total[name] = total[name] + tensor.double() if tensor.dtype.is_floating_point else tensor
    return {k: (v / len(paths)).to(first[k].dtype) if first[k].dtype.is_floating_point else v
            for k, v in total.items()}
