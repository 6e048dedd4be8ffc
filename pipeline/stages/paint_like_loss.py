"""Paint loss that looks like the paint around it: the pixels of a paint-loss region whose colour matches the paint
ringing the region.

Beside dense damage the paint-loss channel also floods flat intact paint (docs/evaluation.md, "What those flags
are"); exposed ground, a fill or plaster differs in colour from the paint it interrupts. For each paint-loss region
(8-connected), the reference is the per-channel median colour of its ring, the pixels LIKE_RING[0]+1 to LIKE_RING[1]
px from it (cross-shaped dilations) that are not labelled damage; a pixel of the region is dropped when every
channel of its colour is within `levels` (of 255) of that median. Colours are the image blurred by a LIKE_BLUR-px
Gaussian (so that the paint's grain does not leave a speckle of the flood) and rounded to 256 levels, and medians
come from histograms, so a region judged over several chunks gets the same reference as on the whole image. A region
of fewer than LIKE_MIN_AREA pixels, or with fewer than LIKE_MIN_RING ring pixels, is kept whole (a small loss's
colour, blurred, is close to the paint around it; the floods are large).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from pipeline.stages.straight_cracks import EIGHT, Region, edge_rows, joined, labelled

LIKE_RING = (4, 12)  # px: the ring is outside the region's dilation by the first, inside by the second
LIKE_BLUR = 1.5  # px: sigma of the Gaussian the colours are read through
LIKE_MIN_RING = 20  # ring pixels below which a region is kept whole
LIKE_MIN_AREA = 100  # px: a paint-loss region smaller than this is kept whole (rule 2026-12-07ad)
BLUR_HALO = int(4.0 * LIKE_BLUR + 0.5)  # px of image around a window that its blurred colours depend on
LOSS = 2  # the label of paint loss


def blurred_levels(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: `rgb` ((H, W, 3) float in [0, 1]) blurred per channel by a LIKE_BLUR-px Gaussian (reflected
    at the borders) and rounded to 256 levels."""
    out = np.empty(rgb.shape[:2] + (3,), np.uint8)
    for c in range(3):
        smooth = ndimage.gaussian_filter(np.asarray(rgb[..., c], np.float32), LIKE_BLUR, mode="reflect", truncate=4.0)
        out[..., c] = np.clip(np.rint(smooth * 255.0), 0, 255).astype(np.uint8)
    return out


def ring_of(region: np.ndarray) -> np.ndarray:
    """(h, w) bool: the pixels more than LIKE_RING[0] and at most LIKE_RING[1] dilation steps from `region`."""
    inner, outer = LIKE_RING
    return ndimage.binary_dilation(region, iterations=outer) & ~ndimage.binary_dilation(region, iterations=inner)


def ring_histograms(components: np.ndarray, own: tuple[int, int, int, int], marked: np.ndarray,
                    colour: np.ndarray) -> dict[int, np.ndarray]:
    """Per component id (>= 0 in `components`, a window's map, -1 elsewhere): (3, 256) int64 counts of the colours
    of its ring pixels that lie in the window's part `own` (y0, y1, x0, x1, window coordinates) and are not
    `marked` (own's shape). `colour` (own's shape, 3) uint8. The window must reach LIKE_RING[1] px past `own`
    wherever the image does."""
    y0, y1, x0, x1 = own
    outer = LIKE_RING[1]
    h, w = components.shape
    inside = components >= 0
    ids = np.unique(components[inside])  # sorting the damage pixels only: most of a window is background
    shifted = np.zeros(components.shape, np.int32)  # 0: background, i + 1: ids[i]
    shifted[inside] = np.searchsorted(ids, components[inside]) + 1
    out: dict[int, np.ndarray] = {}
    for index, box in enumerate(ndimage.find_objects(shifted)):
        if box is None:
            continue
        ys = slice(max(0, box[0].start - outer - 1, y0 - outer), min(h, box[0].stop + outer + 1, y1 + outer))
        xs = slice(max(0, box[1].start - outer - 1, x0 - outer), min(w, box[1].stop + outer + 1, x1 + outer))
        ring = ring_of(shifted[ys, xs] == index + 1)
        # the ring's part in `own`, in own's coordinates
        oy0, oy1 = max(ys.start, y0), min(ys.stop, y1)
        ox0, ox1 = max(xs.start, x0), min(xs.stop, x1)
        if oy0 >= oy1 or ox0 >= ox1:
            continue
        part = ring[oy0 - ys.start : oy1 - ys.start, ox0 - xs.start : ox1 - xs.start]
        part = part & ~marked[oy0 - y0 : oy1 - y0, ox0 - x0 : ox1 - x0]
        if not part.any():
            continue
        values = colour[oy0 - y0 : oy1 - y0, ox0 - x0 : ox1 - x0][part]  # (n, 3)
        out[int(ids[index])] = np.stack([np.bincount(values[:, c], minlength=256) for c in range(3)]).astype(np.int64)
    return out


def reference(histogram: np.ndarray) -> np.ndarray | None:
    """(3,) int: the per-channel lower median of a (3, 256) histogram; None under LIKE_MIN_RING pixels."""
    n = int(histogram[0].sum())
    if n < LIKE_MIN_RING:
        return None
    return np.array([int(np.searchsorted(np.cumsum(row), (n + 1) // 2)) for row in histogram])


def like_pixels(components: np.ndarray, colour: np.ndarray, references: np.ndarray, levels: int) -> np.ndarray:
    """(H, W) bool: the pixels of components (ids >= 0; -1 none) whose colour ((H, W, 3) uint8) is within `levels`
    of their component's reference in every channel; `references` (count, 3) int16, -1 where a component is kept."""
    inside = components >= 0
    out = np.zeros(components.shape, bool)
    if not inside.any():
        return out
    ref = references[components[inside]].astype(np.int16)  # (n, 3)
    near = np.abs(colour[inside].astype(np.int16) - ref).max(axis=1) <= levels
    out[inside] = near & (ref[:, 0] >= 0)
    return out


def paint_like_loss(labels: np.ndarray, rgb: np.ndarray, levels: int) -> np.ndarray:
    """(H, W) bool: the paint-loss pixels of `labels` ((H, W), 2 paint loss, 0 none, other values other damage)
    that look like the paint around their region (the whole image judged as one chunk); `rgb` (H, W, 3) float in
    [0, 1]. Nothing when `levels` is 0."""
    loss = labels == LOSS
    if levels <= 0 or not loss.any():
        return np.zeros(labels.shape, bool)
    pieces, count = ndimage.label(loss, structure=EIGHT)
    components = pieces.astype(np.int64) - 1
    colour = blurred_levels(rgb)
    histograms = ring_histograms(components, (0, labels.shape[0], 0, labels.shape[1]), labels > 0, colour)
    references = np.full((count, 3), -1, np.int16)
    area = np.bincount(pieces.ravel(), minlength=count + 1)[1:]
    for index, histogram in histograms.items():
        ref = reference(histogram)
        if ref is not None and area[index] >= LIKE_MIN_AREA:
            references[index] = ref
    return like_pixels(components, colour, references, levels)


def without_paint_like_loss(prob: np.ndarray, rgb: np.ndarray, threshold: float, levels: int) -> np.ndarray:
    """(2, H, W) probabilities with the paint-loss probability set to 0 on the paint-like pixels of the label map they
    give (paint loss where its probability reaches `threshold`, craquelure elsewhere where its does), so that
    thresholding gives the stage's labels; `prob` itself when `levels` is 0."""
    if levels <= 0:
        return prob
    labels = np.where(prob[1] >= threshold, LOSS, np.where(prob[0] >= threshold, 1, 0)).astype(np.uint8)
    gone = paint_like_loss(labels, rgb, levels)
    if not gone.any():
        return prob
    out = prob.copy()
    out[1][gone] = 0.0
    return out


LabelReader = Callable[[Region], np.ndarray]  # a window of the image -> its (h, w) uint8 labels
ColourReader = Callable[[Region], np.ndarray]  # a window of the image -> its (h, w, 3) float colours in [0, 1]


def chunk_colours(read_rgb: ColourReader, region: Region, shape: tuple[int, int]) -> np.ndarray:
    """(h, w, 3) uint8: `blurred_levels` of a chunk, read with BLUR_HALO px around it (within the image), so that it
    equals the whole image's."""
    y0, y1, x0, x1 = region
    wy0, wx0 = max(0, y0 - BLUR_HALO), max(0, x0 - BLUR_HALO)
    wide = read_rgb((wy0, min(shape[0], y1 + BLUR_HALO), wx0, min(shape[1], x1 + BLUR_HALO)))
    return blurred_levels(wide)[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0]


@dataclass
class LikePlan:
    """Per chunk (its region) the number of its first paint-loss piece across all chunks; each piece's component;
    each component's reference colour ((count, 3) int16, -1: kept whole); the levels."""

    first: dict[Region, int]
    component: np.ndarray
    references: np.ndarray
    levels: int

    def components(self, region: Region, labels: np.ndarray) -> np.ndarray:
        """(h, w) int64: the component of each paint-loss pixel of the chunk `region` (its `labels`), -1 elsewhere."""
        pieces = labelled(labels == LOSS)
        out = np.full(labels.shape, -1, np.int64)
        inside = pieces > 0
        out[inside] = self.component[self.first[region] + pieces[inside] - 1]
        return out

    def dropped(self, region: Region, labels: np.ndarray, colour: np.ndarray) -> np.ndarray:
        """(h, w) bool: the chunk's paint-like paint-loss pixels; `colour` its `chunk_colours`."""
        return like_pixels(self.components(region, labels), colour, self.references, self.levels)


def border_strips(pieces: np.ndarray, width: int) -> dict[str, np.ndarray | None]:
    """A chunk's piece numbers within `width` px of each of its sides ("top", "bottom", "left", "right"), None where
    a strip holds no piece: what a neighbour's window (the neighbour's chunk and `width` px around it) sees of it."""
    h, w = pieces.shape
    strips = {"top": pieces[:width], "bottom": pieces[max(0, h - width):], "left": pieces[:, :width],
              "right": pieces[:, max(0, w - width):]}
    return {side: strip.copy() if strip.any() else None for side, strip in strips.items()}


def strip_part(strips: dict[str, np.ndarray | None], other: Region, own: Region,
               part: Region) -> np.ndarray | None:
    """The piece numbers of chunk `other` in `part` (image coordinates), a rectangle of `own`'s window that lies in
    `other`, read from other's `border_strips` (the side facing `own`); None where that strip holds no piece."""
    side = ("bottom" if other[1] <= own[0] else "top" if other[0] >= own[1]
            else "right" if other[3] <= own[2] else "left")
    strip = strips[side]
    if strip is None:
        return None
    top = other[0] + (other[1] - other[0] - strip.shape[0] if side == "bottom" else 0)
    left = other[2] + (other[3] - other[2] - strip.shape[1] if side == "right" else 0)
    return strip[part[0] - top : part[1] - top, part[2] - left : part[3] - left]


def like_plan(read: LabelReader, read_rgb: ColourReader, regions: list[Region], shape: tuple[int, int],
              levels: int) -> LikePlan:
    """The reference colour of every paint-loss region of the whole label map, reading it chunk by chunk (`regions`
    row by row, as `chunk_grid` gives them): its pieces are numbered and joined across chunk borders, then each
    chunk adds the ring pixels it holds to the histograms of the regions within LIKE_RING[1] px (its neighbours'
    pieces there kept from the first reading, `border_strips`), and a region's histogram becomes its reference once
    the chunk rows below its last row plus LIKE_RING[1] are reached. Each chunk is read twice; memory grows with the
    regions and the border strips that hold paint loss, not with the area."""
    outer = LIKE_RING[1]
    first: dict[Region, int] = {}
    edges: dict[Region, dict[str, np.ndarray]] = {}
    strips: dict[Region, dict[str, np.ndarray | None]] = {}
    last_rows: list[np.ndarray] = []
    areas: list[np.ndarray] = []
    total = 0
    for region in regions:
        pieces = labelled(read(region) == LOSS)
        count = int(pieces.max()) if pieces.size else 0
        first[region] = total
        number = np.concatenate([[-1], total + np.arange(count)])
        edges[region] = {side: number[row] for side, row in edge_rows(pieces).items()}
        strips[region] = border_strips(pieces, outer)
        areas.append(np.bincount(pieces.ravel(), minlength=count + 1)[1:])
        last_rows.append(np.array([box[0].stop - 1 + region[0] for box in ndimage.find_objects(pieces)], np.int64))
        total += count
    count, component = joined(regions, edges, total)
    last_row = np.full(count, -1, np.int64)
    area = np.zeros(count, np.int64)
    if total:
        np.maximum.at(last_row, component, np.concatenate(last_rows))
        area = np.bincount(component, np.concatenate(areas), count).astype(np.int64)
    plan = LikePlan(first, component, np.full((count, 3), -1, np.int16), levels)
    open_histograms: dict[int, np.ndarray] = {}
    for index, region in enumerate(regions):
        y0, y1, x0, x1 = region
        window = (max(0, y0 - outer), min(shape[0], y1 + outer), max(0, x0 - outer), min(shape[1], x1 + outer))
        components = np.full((window[1] - window[0], window[3] - window[2]), -1, np.int64)
        labels = read(region)
        components[y0 - window[0] : y1 - window[0], x0 - window[2] : x1 - window[2]] = plan.components(region, labels)
        for other in strips:
            part = (max(other[0], window[0]), min(other[1], window[1]), max(other[2], window[2]),
                    min(other[3], window[3]))
            if other == region or part[0] >= part[1] or part[2] >= part[3]:
                continue
            seen = strip_part(strips[other], other, region, part)
            if seen is not None:
                inside = seen > 0
                components[part[0] - window[0] : part[1] - window[0], part[2] - window[2] : part[3] - window[2]][
                    inside] = component[first[other] + seen[inside] - 1]
        own = (y0 - window[0], y1 - window[0], x0 - window[2], x1 - window[2])
        histograms = ring_histograms(components, own, labels > 0, chunk_colours(read_rgb, region, shape))
        for key, histogram in histograms.items():
            if key in open_histograms:
                open_histograms[key] += histogram
            else:
                open_histograms[key] = histogram
        following = regions[index + 1][0] if index + 1 < len(regions) else shape[0] + outer + 1
        if following != y0:  # a new chunk row next: the regions whose rings end above it are complete
            for key in [k for k in open_histograms if last_row[k] + outer < following]:
                ref = reference(open_histograms.pop(key))
                if ref is not None and area[key] >= LIKE_MIN_AREA:
                    plan.references[key] = ref
            for other in [r for r in strips if r[1] + outer <= following]:  # no later window reaches it
                del strips[other]
    return plan
