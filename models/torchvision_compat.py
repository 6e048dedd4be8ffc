"""Make `import torchvision` work beside a CPU-only torch.

The registry's torchvision 0.28.0 is a CUDA build: its compiled ops (`_C.so`) cannot load next to the CPU
torch, and its meta registrations then fail with "operator torchvision::nms does not exist". We try to load
the compiled library; if that fails we define the two op schemas it registers fake kernels for (`nms`,
`qnms`) with a small pure-torch NMS, so models and transforms import. Where the ops load, nothing changes.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

_LIBRARY: torch.library.Library | None = None  # kept alive: dropping it unregisters the ops


def _torchvision_ops_present() -> bool:
    try:
        torch.ops.torchvision.nms.default  # noqa: B018
        return True
    except (AttributeError, RuntimeError):
        return False


def _nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression; returns kept indices by decreasing score."""
    order = scores.argsort(descending=True)
    keep: list[int] = []
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    for pos, idx in enumerate(order.tolist()):
        if suppressed[pos]:
            continue
        keep.append(idx)
        rest = order[pos + 1 :]
        w = (torch.minimum(x2[idx], x2[rest]) - torch.maximum(x1[idx], x1[rest])).clamp(min=0)
        h = (torch.minimum(y2[idx], y2[rest]) - torch.maximum(y1[idx], y1[rest])).clamp(min=0)
        inter = w * h
        iou = inter / (areas[idx] + areas[rest] - inter + 1e-12)
        suppressed[pos + 1 :] |= iou > iou_threshold
    return torch.tensor(keep, dtype=torch.int64)


def ensure_torchvision_importable() -> None:
    """Load torchvision's compiled ops, or define stand-ins for the two it needs at import time."""
    global _LIBRARY
    if _LIBRARY is not None or _torchvision_ops_present():
        return
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return
    for so_file in sorted(Path(spec.origin).parent.glob("_C*.so")):
        try:
            torch.ops.load_library(str(so_file))
        except (OSError, RuntimeError):
            continue
        if _torchvision_ops_present():
            return
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define(
        "qnms(Tensor dets, Tensor scores, float iou_threshold, float scale, int zero_point) -> Tensor"
    )
    lib.impl("nms", _nms, "CPU")
    _LIBRARY = lib
