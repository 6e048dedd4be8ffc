"""The clean public-domain paintings in ../shared/data and their fixed train/validation split.

The split is by whole painting and fixed by the file name (a hash), so no painting is ever in both and
adding a painting never moves another one between splits.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

SHARED_DATA_ENV = "RETOUCH_SHARED_DATA"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}
VALIDATION_FRACTION_OUT_OF_100 = 20


def shared_data_dir() -> Path:
    """../shared/data beside the repository, or $RETOUCH_SHARED_DATA."""
    env = os.environ.get(SHARED_DATA_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def painting_files(root: Path | None = None) -> list[Path]:
    """All NGA painting images, sorted."""
    base = (root or shared_data_dir()) / "nga_paintings"
    if not base.is_dir():
        return []
    return sorted(p for p in base.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def split_of(path: Path) -> str:
    """'val' for about a fifth of the paintings chosen by a hash of the file name, else 'train'."""
    bucket = int(hashlib.sha256(path.name.encode()).hexdigest(), 16) % 100
    return "val" if bucket < VALIDATION_FRACTION_OUT_OF_100 else "train"


def paintings(split: str, root: Path | None = None) -> list[Path]:
    """The paintings of one split ('train' or 'val')."""
    if split not in ("train", "val"):
        raise ValueError(f"unknown split {split!r}; use 'train' or 'val'")
    return [p for p in painting_files(root) if split_of(p) == split]
