"""The image border judged twice: a mark there must survive padding by edge copies as well as by reflection.

Past the image border the detector sees the scan reflected (`detect_infer._pad`, the engine's halo). An object
cut by the border, reflected, becomes a closed symmetric shape (a grey-blue pole cut by the frame becomes a
blob, taken for paint loss); a lighter first column of the scan becomes a line, taken for a crack. Within
`width` px of a reflected side of the image, `at_border` lowers the probability to that of a strip along the side
in which the border is continued by copies of its edge pixels instead (one view, identity; the strip carries
CONTEXT px of image beyond the band). A mark that is there whatever the padding stays; one the mirror made goes.
Probabilities only ever fall, and only in that band; a block with no reflected side is left as it was.
The copies also smear real damage the border cuts (a loss's weave becomes streaks, a crack's end a line), which
is then missed more often: the rule is off by default (`DEFAULT_BORDER`).

Cost: one more network pass over the strips (at most `width` + CONTEXT px of image, plus the padding), nothing
elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

CONTEXT = 96  # px of image the strip carries beyond the band (the detect stage's halo)
DEFAULT_BORDER = 0  # px of the band: off unless asked (`--border 16`; rule docs/rules/2026-12-04p-default-detector.md)
Region = tuple[int, int, int, int]  # (y0, y1, x0, x1)


def border_strips(shape: tuple[int, int], real: Region, width: int) -> list[tuple[Region, Region]]:
    """(strip, band) regions of an (H, W) padded block whose image part is `real`: one pair per reflected side
    (a side where `real` stops short of the block). The band is the image within `width` px of that side, the
    strip the block from its edge to CONTEXT px past the band, across the whole block."""
    h, w = shape
    y0, y1, x0, x1 = real
    if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
        raise ValueError(f"real part {real} is not inside a block of {shape}")
    if width <= 0:
        return []
    pairs = []
    if y0 > 0:
        pairs.append(((0, min(h, y0 + width + CONTEXT), 0, w), (y0, min(y1, y0 + width), x0, x1)))
    if y1 < h:
        pairs.append(((max(0, y1 - width - CONTEXT), h, 0, w), (max(y0, y1 - width), y1, x0, x1)))
    if x0 > 0:
        pairs.append(((0, h, 0, min(w, x0 + width + CONTEXT)), (y0, y1, x0, min(x1, x0 + width))))
    if x1 < w:
        pairs.append(((0, h, max(0, x1 - width - CONTEXT), w), (y0, y1, max(x0, x1 - width), x1)))
    return pairs


def edge_filled(padded: np.ndarray, real: Region) -> np.ndarray:
    """(H, W, C): the block with everything outside `real` replaced by copies of the nearest image edge pixel."""
    h, w = padded.shape[:2]
    y0, y1, x0, x1 = real
    return np.pad(padded[y0:y1, x0:x1], ((y0, h - y1), (x0, w - x1), (0, 0)), mode="edge")


def at_border(prob: np.ndarray, padded: np.ndarray, real: Region, width: int,
              predict: Callable[[np.ndarray], np.ndarray]) -> int:
    """Lower `prob` ((K, H, W) over the padded block, in place) within `width` px of each reflected side of
    `real` to `predict` ((h, w, C) image -> (K, h, w)) of the edge-filled strip along it. Returns the strip
    pixels run (0 when the block has no reflected side)."""
    y0, y1, x0, x1 = real
    run = 0
    for (sy0, sy1, sx0, sx1), (by0, by1, bx0, bx1) in border_strips(padded.shape[:2], real, width):
        # the strip of the edge-filled block, filled from the strip alone (it holds image on every row and column)
        inside = (max(y0, sy0) - sy0, min(y1, sy1) - sy0, max(x0, sx0) - sx0, min(x1, sx1) - sx0)
        second = predict(edge_filled(padded[sy0:sy1, sx0:sx1], inside))  # (K, sh, sw)
        run += (sy1 - sy0) * (sx1 - sx0)
        band = prob[:, by0:by1, bx0:bx1]
        np.minimum(band, second[:, by0 - sy0 : by1 - sy0, bx0 - sx0 : bx1 - sx0], out=band)
    return run
