"""Int8 storage of weights: per-output-channel symmetric quantisation of conv/linear kernels.

Each floating tensor with at least 2 dimensions and `MIN_ELEMENTS` elements (the kernels, which are almost all
of a U-Net's bytes) is stored as int8 `q` with a float32 scale per output channel, `s = max|w| / 127`, under
`<key>` and `<key>` + SCALE_SUFFIX; `w ~= q * s`, off by at most s / 2. Everything else (biases, batch-norm
statistics, counters) is kept as given. Loading (`dequantize`) multiplies back to float32, so the network runs
exactly as a float one would with those weights: the file is half the size of fp16, inference is unchanged.
"""

from __future__ import annotations

import torch

SCALE_SUFFIX = ".int8_scale"
MIN_ELEMENTS = 1024


def _quantizable(tensor: torch.Tensor) -> bool:
    return tensor.is_floating_point() and tensor.ndim >= 2 and tensor.numel() >= MIN_ELEMENTS


def quantize_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` with its kernels as int8 plus per-output-channel scales; other tensors unchanged."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key.endswith(SCALE_SUFFIX):
            raise ValueError(f"tensor name {key!r} ends with the reserved suffix {SCALE_SUFFIX!r}")
        if not _quantizable(tensor):
            out[key] = tensor
            continue
        w = tensor.detach().float()
        scale = w.abs().flatten(1).amax(dim=1).clamp_min(1e-12) / 127.0  # (C_out,)
        shape = (-1,) + (1,) * (w.ndim - 1)
        out[key] = torch.round(w / scale.view(shape)).clamp_(-127, 127).to(torch.int8)
        out[key + SCALE_SUFFIX] = scale
    return out


def dequantize(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Float32 kernels back from `quantize_state`'s output; a state without int8 kernels is returned as is."""
    scales = {k[: -len(SCALE_SUFFIX)]: v for k, v in state.items() if k.endswith(SCALE_SUFFIX)}
    if not scales:
        return state
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key.endswith(SCALE_SUFFIX):
            continue
        if key in scales:
            if tensor.dtype != torch.int8 or scales[key].shape != tensor.shape[:1]:
                raise ValueError(f"{key}: int8 kernel and its scale do not match "
                                 f"({tensor.dtype}, {tuple(tensor.shape)} vs {tuple(scales[key].shape)})")
            out[key] = tensor.float() * scales[key].float().view((-1,) + (1,) * (tensor.ndim - 1))
        else:
            out[key] = tensor
    missing = set(scales) - set(state)
    if missing:
        raise ValueError(f"scales without kernels: {sorted(missing)[:3]}")
    return out

