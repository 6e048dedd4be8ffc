"""Inpainting that costs what the damage costs: the network runs on boxes around connected damage only.

The tiled path (`pipeline.stages.inpaint.inpaint_image`) runs every tile of the overlapping grid that holds a
hole pixel, so one small flake costs a whole tile (and a chunk of scattered specks costs nearly every tile).
Here (IOPaint's crop strategy), each connected component of the (dilated) hole, grown by `margin` px of
context on every side, gets a box: its bounding box, grown to a multiple of the network's size multiple and
kept inside the image. Two boxes are merged while the merged box costs no more pixels than the two apart;
boxes may still overlap, and each fills only the pixels of its own components (the others' holes are holes
in its input too). Boxes no larger than `tile` run through the network in batches of equal shape; larger
ones go through `inpaint_image`'s tiled, blended path on the box, so large damage is filled as seamlessly
as before. Outside the hole the image comes back bit for
bit, in its dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from pipeline.io.image_io import colour_channels
from pipeline.stages.inpaint import dilate_hole, inpaint_image, inpaint_tiles

Box = tuple[int, int, int, int]  # y0, y1, x0, x1 (half-open)


@dataclass
class BoxStats:
    """What one call ran: boxes, network calls, and pixels that went through the network (before padding)."""

    boxes: int = 0
    tiled_boxes: int = 0
    network_calls: int = 0
    network_pixels: int = 0


def _fit(start: int, stop: int, multiple: int, length: int) -> tuple[int, int]:
    """[start, stop) grown to a multiple of `multiple` (centred), then kept inside [0, length)."""
    size = -(-(stop - start) // multiple) * multiple
    start -= (size - (stop - start)) // 2
    if size >= length:
        return 0, length
    start = min(max(start, 0), length - size)
    return start, start + size


def _fitted(boxes: np.ndarray, multiple: int, shape: tuple[int, int]) -> np.ndarray:
    """(n, 4) boxes [y0, y1, x0, x1] each grown to `multiple` and kept inside the image (see `_fit`)."""
    return np.array([(*_fit(y0, y1, multiple, shape[0]), *_fit(x0, x1, multiple, shape[1]))
                     for y0, y1, x0, x1 in boxes.tolist()], np.int64).reshape(-1, 4)


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[..., 1] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 2])


def damage_boxes(hole: np.ndarray, margin: int, multiple: int = 1,
                 core: Box | None = None) -> tuple[list[Box], list[list[int]], np.ndarray]:
    """Boxes around the connected damage, the components each one fills, and the component labels.

    hole: (h, w) bool. Each connected component (8-connected) of the hole dilated by `margin` px (a square)
    gets its bounding box, i.e. the damage's box with `margin` px of context (clipped to the image), grown
    to a multiple of `multiple` (inside the image; shorter only where the image is). Two boxes are then
    merged while the merged box costs no more pixels than the two apart, so near and overlapping damage
    shares one network pass, but scattered specks never chain into one large box. Every component belongs
    to exactly one box, which fills its hole pixels. With `core`, boxes that do not reach into that region are
    dropped (their fill would be cropped away). Returns (boxes, component ids per box, (h, w) int32 labels
    of the dilated components).
    """
    grown = hole.astype(np.uint8)
    if margin:  # damage closer than 2 x margin shares a component: one box, and few pairs to weigh below
        grown = cv2.dilate(grown, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    raw = np.array([(y, y + hh, x, x + ww) for x, y, ww, hh in stats[1:n, :4].tolist()], np.int64).reshape(-1, 4)
    boxes, owners = _fitted(raw, multiple, hole.shape), [[i + 1] for i in range(n - 1)]
    k, (h, w) = multiple, hole.shape
    while len(boxes) > 1:  # each round merges a greedy matching of the pairs that merging makes cheaper
        y0, y1 = np.minimum.outer(boxes[:, 0], boxes[:, 0]), np.maximum.outer(boxes[:, 1], boxes[:, 1])
        x0, x1 = np.minimum.outer(boxes[:, 2], boxes[:, 2]), np.maximum.outer(boxes[:, 3], boxes[:, 3])
        cost = np.minimum(-(-(y1 - y0) // k) * k, h) * np.minimum(-(-(x1 - x0) // k) * k, w)  # merged, fitted
        saving = _area(boxes)[:, None] + _area(boxes)[None, :] - cost
        saving[np.tril_indices(len(boxes))] = -1
        pairs = np.argwhere(saving >= 0)
        if not len(pairs):
            break
        used: set[int] = set()
        new_boxes, new_owners = [], []
        for i, j in pairs[np.argsort(-saving[pairs[:, 0], pairs[:, 1]], kind="stable")].tolist():
            if i in used or j in used:
                continue
            used.update((i, j))
            new_boxes.append(_fitted(np.array([[y0[i, j], y1[i, j], x0[i, j], x1[i, j]]]), k, hole.shape)[0])
            new_owners.append(owners[i] + owners[j])
        keep = [n for n in range(len(boxes)) if n not in used]
        boxes = np.concatenate([boxes[keep], np.array(new_boxes, np.int64).reshape(-1, 4)])
        owners = [owners[n] for n in keep] + new_owners
    result = [(tuple(int(v) for v in box), sorted(own)) for box, own in zip(boxes.tolist(), owners, strict=True)]
    if core is not None:
        cy0, cy1, cx0, cx1 = core
        result = [(b, o) for b, o in result if b[0] < cy1 and b[1] > cy0 and b[2] < cx1 and b[3] > cx0]
    result.sort()
    return [b for b, _ in result], [o for _, o in result], labels


def _run_batch(model: torch.nn.Module, crops: list[np.ndarray], holes: list[np.ndarray],
               stats: BoxStats, bf16: bool) -> list[np.ndarray]:
    stats.network_calls += 1
    stats.network_pixels += sum(hole.size for hole in holes)
    return inpaint_tiles(crops, holes, model, bf16)


def inpaint_boxes(image: np.ndarray, hole: np.ndarray, model: torch.nn.Module, *, tile: int = 256,
                  overlap: int = 64, dilate: int = 0, margin: int = 24, batch: int = 8,
                  core: Box | None = None, stats: BoxStats | None = None, bf16: bool = False) -> np.ndarray:
    """The composite of `inpaint_image`, with the network run on damage boxes only (`bf16` as `inpaint_tiles`).

    image: (H, W, C) uint8/uint16, C in 1..4; hole: (H, W) bool. `core`: the region whose pixels matter
    (a chunk inside its halo); boxes outside it are skipped. `stats`, when given, is filled in.
    """
    if image.ndim != 3 or hole.shape != image.shape[:2] or hole.dtype != bool:
        raise ValueError(f"need image (H, W, C) and a bool hole (H, W), got {image.shape} and {hole.shape}")
    if image.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"image must be uint8 or uint16, got {image.dtype}")
    stats = stats if stats is not None else BoxStats()
    hole = dilate_hole(hole, dilate)
    out = image.copy()
    if not hole.any():
        return out
    c = colour_channels(image.shape[2])
    top = float(np.iinfo(image.dtype).max)
    multiple = int(getattr(model, "multiple", 1))
    boxes, owners, labels = damage_boxes(hole, margin, multiple, core)
    stats.boxes += len(boxes)
    small: dict[tuple[int, int], list[int]] = {}
    for n, (y0, y1, x0, x1) in enumerate(boxes):
        if y1 - y0 <= tile and x1 - x0 <= tile:
            small.setdefault((y1 - y0, x1 - x0), []).append(n)
            continue
        stats.tiled_boxes += 1
        filled = inpaint_image(image[y0:y1, x0:x1], hole[y0:y1, x0:x1], _CallCounter(model, stats), tile=tile,
                               overlap=overlap, bf16=bf16)
        mine = np.isin(labels[y0:y1, x0:x1], owners[n]) & hole[y0:y1, x0:x1]
        out[y0:y1, x0:x1][mine] = filled[mine]
    for group in small.values():
        step = max(1, batch)
        for i in range(0, len(group), step):
            part = [boxes[n] for n in group[i : i + step]]
            crops = [image[y0:y1, x0:x1] for y0, y1, x0, x1 in part]
            holes = [hole[y0:y1, x0:x1] for y0, y1, x0, x1 in part]
            fills = _run_batch(model, crops, holes, stats, bf16)
            for n, (y0, y1, x0, x1), fill in zip(group[i : i + step], part, fills, strict=True):
                mine = np.isin(labels[y0:y1, x0:x1], owners[n]) & hole[y0:y1, x0:x1]
                out[y0:y1, x0:x1, :c][mine] = np.clip(np.rint(fill[mine] * top), 0, top).astype(image.dtype)
    return out


class _CallCounter(torch.nn.Module):
    """Counts the network calls and pixels of the tiled path inside a large box."""

    def __init__(self, inner: torch.nn.Module, stats: BoxStats) -> None:
        super().__init__()
        self.inner, self.stats = inner, stats
        self.training = inner.training  # inpaint_tile restores the wrapper's mode onto the inner model
        self.multiple = int(getattr(inner, "multiple", 1))

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        self.stats.network_calls += 1
        self.stats.network_pixels += int(x.shape[0] * x.shape[-2] * x.shape[-1])
        return self.inner(x, m)


STRATEGIES = ("boxes", "tiles")  # where the inpaint stage runs the network: damage boxes, or every holed tile


def check_strategy(strategy: str) -> None:
    """Raise ValueError unless `strategy` is one of STRATEGIES."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be 'boxes' or 'tiles', got {strategy!r}")


def network_fill(image: np.ndarray, hole: np.ndarray, model: torch.nn.Module, *, strategy: str = "boxes",
                 tile: int = 256, overlap: int = 64, dilate: int = 0, margin: int = 24, batch: int = 8,
                 core: Box | None = None, stats: BoxStats | None = None, bf16: bool = False) -> np.ndarray:
    """The network's composite over `hole` as the inpaint stage runs it: on boxes around the damage
    (`inpaint_boxes`, with `margin`, `batch`, `core` and `stats`), or with `strategy` 'tiles' on every tile of the
    overlapping grid that holds a hole pixel (`inpaint_image`)."""
    check_strategy(strategy)
    if strategy == "tiles":
        return inpaint_image(image, hole, model, tile=tile, overlap=overlap, dilate=dilate, bf16=bf16)
    return inpaint_boxes(image, hole, model, tile=tile, overlap=overlap, dilate=dilate, margin=margin, batch=batch,
                         core=core, stats=stats, bf16=bf16)
