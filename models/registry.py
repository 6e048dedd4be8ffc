"""One factory for every network: lower-case names map to classes (never a dotted import string)."""

from __future__ import annotations

from typing import Any

import torch.nn as nn

import models  # noqa: F401  (torchvision import fix before smp)
from models.adapted import AdaptedDetector
from models.ensemble import MaxResUNet
from models.pconv import PConvUNet
from models.resunet import ResUNet

MODELS: dict[str, type[nn.Module]] = {
    "resunet": ResUNet,
    "resunet-max": MaxResUNet,
    "pconvunet": PConvUNet,
    "resunet-adapted": AdaptedDetector,
}


KINDS: dict[str, str] = {  # what each network does: a stage takes only weights of its own kind
    "resunet": "detector",
    "resunet-max": "detector",
    "resunet-adapted": "detector",
    "pconvunet": "inpainter",
}


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the network registered under `name` with `kwargs`; an unknown name lists the valid ones."""
    try:
        cls = MODELS[name.lower()]
    except KeyError:
        valid = ", ".join(sorted(MODELS))
        raise KeyError(f"unknown model {name!r}; valid names: {valid}") from None
    return cls(**kwargs)
