"""A contact sheet of one inpainting case, so that a person can look: masked input, each method's fill, truth.

One row of equally sized panels, each with its label on a strip above it (PIL's built-in font, no font file),
and a title line. The masked input shows the hole in magenta, so every hole pixel is visible.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HOLE_COLOUR = (255, 0, 255)
GAP = 4  # px between panels
LABEL_H = 16  # px label strip


def masked_input(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 copy of `image` with the hole painted HOLE_COLOUR."""
    out = np.ascontiguousarray(image[:, :, :3]).copy()
    out[hole] = HOLE_COLOUR
    return out


def contact_sheet(panels: list[tuple[str, np.ndarray]], title: str = "") -> np.ndarray:
    """(H', W', 3) uint8: the (label, (H, W, 3) uint8 image) panels side by side, labels above, title on top."""
    if not panels:
        raise ValueError("contact_sheet needs at least one panel")
    h, w = panels[0][1].shape[:2]
    top = LABEL_H if title else 0
    sheet = Image.new("RGB", (len(panels) * (w + GAP) - GAP, top + LABEL_H + h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((2, 2), title, fill=(0, 0, 0))
    for i, (label, image) in enumerate(panels):
        if image.shape[:2] != (h, w):
            raise ValueError(f"panel {label!r} is {image.shape[:2]}, expected {(h, w)}")
        x = i * (w + GAP)
        draw.text((x + 2, top + 2), label, fill=(0, 0, 0))
        sheet.paste(Image.fromarray(np.ascontiguousarray(image[:, :, :3])), (x, top + LABEL_H))
    return np.asarray(sheet)


def write_contact_sheet(
    path: Path, clean: np.ndarray, hole: np.ndarray, fills: Mapping[str, np.ndarray], title: str = ""
) -> Path:
    """Write the sheet of one case as PNG: 'masked input', each method's composite (by name), 'truth'."""
    panels = [("masked input", masked_input(clean, hole)), *fills.items(), ("truth", clean)]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(contact_sheet(panels, title)).save(path)
    return path
