"""Real crack photos with pixel masks (../shared/data) as detector TRAINING data, and their fixed splits.

A real training set is given as `IMAGES_DIR:MASKS_DIR[:MASK_VALUE]` (`--real-train`, repeatable): images and
masks pair by file stem (lab.pairs.pair_files); a pixel is a crack where the mask equals MASK_VALUE,
or is nonzero without one. Only training splits may be used:

- DeepCrack: `deepcrack/train/{images,masks}` (its test split is held out).
- CrackForest (`crackforest_cfd`) has no official split. Ours is fixed here, `crackforest_split`: the stems
  sorted, every 4th (index 3, 7, 11, ...) is TEST, the rest TRAIN (89 train / 29 test of its 118 pairs).
  Training on a CrackForest folder takes only its TRAIN stems; `retouch evaluate detect --split test`
  scores only its TEST stems.
- UAV75 has only val/test splits here. Its val split (10 images, `uav75/val/{images,labels}`, crack = 255,
  planking = 204 a distractor) is the set's only non-test data and may be trained on; its test split is held out.

A folder whose path names a test or validation split (a `test`, `val`, `valid` or `validation` component) is
refused as training data, except UAV75's `val`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lab.pairs import CRACKFOREST_TEST_EVERY, crackforest_split, pair_files  # noqa: F401  (re-exported)
from pipeline.errors import InputError
from pipeline.io.image_io import as_rgb, read_image, read_mask

HELD_OUT_PARTS = {"test", "val", "valid", "validation"}
SPLITS = ("all", "train", "test")


def is_crackforest(folder: Path) -> bool:
    """True for a folder of the CrackForest set (a path component starts with crackforest: crackforest_cfd)."""
    return any(part.lower().startswith("crackforest") for part in Path(folder).resolve().parts)


def split_pairs(pairs: list[tuple[Path, Path]], images_dir: Path, split: str) -> list[tuple[Path, Path]]:
    """The (image, mask) pairs of `split` ('all', 'train', 'test'). Sets with an official split (folders
    named train/test) are kept whole; CrackForest is split by `crackforest_split`. A split asked of another
    set without one is an error, so that nobody believes a held-out figure that is not."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "all":
        return pairs
    if is_crackforest(images_dir):
        stems = [image.stem for image, _ in pairs]
        return [(i, m) for i, m in pairs if crackforest_split(i.stem, stems) == split]
    raise InputError(images_dir, "no split is defined for this set (only CrackForest's); "
                                 "use its own train/test folders")


@dataclass(frozen=True)
class RealSpec:
    """One `--real-train` value: images folder, masks folder, crack mask value (None = any nonzero)."""

    images: Path
    masks: Path
    mask_value: int | None = None

    @classmethod
    def parse(cls, spec: str) -> RealSpec:
        parts = spec.split(":")
        if len(parts) not in (2, 3) or not all(parts[:2]):
            raise ValueError(f"real training set must be IMAGES_DIR:MASKS_DIR[:MASK_VALUE], got {spec!r}")
        value = None
        if len(parts) == 3:
            try:
                value = int(parts[2])
            except ValueError:
                raise ValueError(f"real training set {spec!r}: MASK_VALUE must be an integer") from None
            if not 0 < value <= 65535:
                raise ValueError(f"real training set {spec!r}: MASK_VALUE must be in 1..65535")
        return cls(Path(parts[0]), Path(parts[1]), value)

    def check(self) -> None:
        """Refuse missing folders and held-out splits (test/val folders, UAV75 test) in one line."""
        for folder in (self.images, self.masks):
            if not folder.is_dir():
                raise ValueError(f"{folder}: real training folder not found")
            parts = [p.lower() for p in folder.resolve().parts]
            held = HELD_OUT_PARTS.intersection(parts)
            if any(p.startswith("uav75") for p in parts):
                held -= {"val"}  # UAV75's only non-test split (see the module docstring)
            if held:
                raise ValueError(f"{folder}: a held-out split ({sorted(held)[0]}) is never trained on")


@dataclass(frozen=True)
class RealSet:
    """One loaded real training set: uint8/uint16 RGB images and bool crack masks, plus its record."""

    spec: RealSpec
    images: list[np.ndarray]
    masks: list[np.ndarray]
    stems: list[str]

    def record(self) -> dict:
        """What the manifest keeps about it: folders, mask value, split rule, count and a digest of the stems."""
        digest = hashlib.sha256("\n".join(self.stems).encode()).hexdigest()
        rule = (f"CrackForest TRAIN split (sorted stems, every {CRACKFOREST_TEST_EVERY}th held out as TEST)"
                if is_crackforest(self.spec.images) else "the whole folder (a training split)")
        return {"images": str(self.spec.images), "masks": str(self.spec.masks),
                "mask_value": self.spec.mask_value, "pairs": len(self.stems), "split": rule,
                "stems_sha256": digest}


def load_real_set(spec: RealSpec) -> RealSet:
    """The TRAIN pairs of one real set (CrackForest: its TRAIN stems), checked and read into memory."""
    spec.check()
    pairs = pair_files(spec.images, spec.masks)
    if is_crackforest(spec.images):
        pairs = split_pairs(pairs, spec.images, "train")
    images, masks, stems = [], [], []
    for image_path, mask_path in pairs:
        image, mask = read_image(image_path), read_mask(mask_path)
        if mask.shape != image.shape[:2]:
            raise InputError(mask_path, f"mask is {mask.shape[1]}x{mask.shape[0]} but the image "
                                        f"{image_path.name} is {image.shape[1]}x{image.shape[0]}")
        images.append(as_rgb(image))
        masks.append(mask == spec.mask_value if spec.mask_value is not None else mask > 0)
        stems.append(image_path.stem)
    if not images:
        raise ValueError(f"{spec.images}: no training image/mask pairs")
    return RealSet(spec, images, masks, stems)
