"""Image/mask pairs of a labelled set, matched by file stem."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import InputError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
MASK_SUFFIXES = (".png", ".tif", ".tiff")
CRACKFOREST_TEST_EVERY = 4  # every 4th sorted stem (index 3, 7, ...) of CrackForest is held out as TEST


def pair_files(images: Path, masks: Path) -> list[tuple[Path, Path]]:
    """(image, mask) pairs by stem; an image without a mask is an error naming it."""
    for folder in (images, masks):
        if not folder.is_dir():
            raise InputError(folder, "not a folder")
    mask_by_stem = {p.stem: p for p in sorted(masks.iterdir()) if p.suffix.lower() in MASK_SUFFIXES}
    pairs = []
    for image in sorted(images.iterdir()):
        if image.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if image.stem not in mask_by_stem:
            raise InputError(image, f"no mask with the stem {image.stem!r} in {masks}")
        pairs.append((image, mask_by_stem[image.stem]))
    if not pairs:
        raise InputError(images, "no images (PNG/TIFF/JPEG) found")
    return pairs


def crackforest_split(stem: str, stems: list[str]) -> str:
    """'test' for every CRACKFOREST_TEST_EVERY-th of the sorted `stems` (index 3, 7, ...), else 'train'."""
    index = sorted(stems).index(stem)
    return "test" if index % CRACKFOREST_TEST_EVERY == CRACKFOREST_TEST_EVERY - 1 else "train"
