"""The detect stage's passes over the whole label map, once every chunk is detected: straight craquelure
(`straight_cracks`) and paint loss the colour of the paint around it (`paint_like_loss`), each judged over the whole
scan and both applied in one copy of the chunks' labels (a scratch array) into the stage's label image."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.stages.straight_cracks import Region

# a chunk's region (image coordinates) and its (h, w) labels -> the bool pixels to set to 0 (None: none)
Edit = Callable[[Region, np.ndarray], np.ndarray | None]


@dataclass
class Rewritten:
    """What `rewrite_labels` wrote: per chunk id, the digest of its labels block and the pixels it set to 0 per
    former label value; and the passes' own figures (`straight_dropped`, `paint_like_dropped`)."""

    digests: dict[str, str]
    dropped: dict[str, dict[int, int]]
    summary: dict[str, Any]


def rewrite_labels(raw: Any, out: Any, chunk: int, edits: list[Edit]) -> Rewritten:
    """Copy the (1, H, W) label map `raw` into `out` with each edit's pixels set to 0, edit after edit, chunk by
    chunk; each of `out`'s write blocks (shard or chunk, `write_side`) written once. A function of `raw` and the
    edits alone, so that a run killed here and run again writes the same bytes."""
    from pipeline.engine.tiling import chunk_id
    from pipeline.io.store import block_digest, chunk_grid, write_side

    _, height, width = raw.shape
    side = write_side(out)
    digests: dict[str, str] = {}
    dropped: dict[str, dict[int, int]] = {}
    for y0 in range(0, height, side):
        for x0 in range(0, width, side):
            y1, x1 = min(height, y0 + side), min(width, x0 + side)
            block = np.asarray(raw[:, y0:y1, x0:x1])
            for region in chunk_grid((1, y1 - y0, x1 - x0), chunk):
                ry0, ry1, rx0, rx1 = region
                here = (ry0 + y0, ry1 + y0, rx0 + x0, rx1 + x0)
                part = block[0, ry0:ry1, rx0:rx1]
                cid = chunk_id(here, chunk)
                dropped[cid] = {}
                for edit in edits:
                    gone = edit(here, part)
                    if gone is not None and gone.any():
                        for value, n in enumerate(np.bincount(part[gone], minlength=256)):
                            if n:
                                dropped[cid][value] = dropped[cid].get(value, 0) + int(n)
                        part[gone] = 0
                digests[cid] = block_digest(block[:, ry0:ry1, rx0:rx1])
            out[:, y0:y1, x0:x1] = block
    return Rewritten(digests, dropped, {})


def detect_label_passes(raw: Any, out: Any, scan: Any, chunk: int, straight: int, paint_like: int) -> Rewritten:
    """The detect stage's passes on its chunks' labels `raw` into `out`: straight craquelure of `straight` px and
    more (0: off), paint loss within `paint_like` levels of the paint around it (0: off; colours read from the
    (C, H, W) `scan`). The summary counts what each dropped."""
    from pipeline.io.store import chunk_grid
    from pipeline.stages.detect_infer import as_rgb_float
    from pipeline.stages.paint_like_loss import LOSS, chunk_colours, like_plan
    from pipeline.stages.straight_cracks import straight_edit, straight_plan

    _, height, width = raw.shape
    regions = chunk_grid(raw.shape, chunk)

    def read(window: Region) -> np.ndarray:
        return np.asarray(raw[0, window[0] : window[1], window[2] : window[3]])

    def read_rgb(window: Region) -> np.ndarray:
        return as_rgb_float(np.moveaxis(np.asarray(scan[:, window[0] : window[1], window[2] : window[3]]), 0, -1))

    edits: list[Edit] = []
    summary: dict[str, Any] = {}
    if straight:
        plan = straight_plan(lambda window: read(window) == 1, regions, (height, width), straight)
        summary["straight_dropped"] = {"components": plan.dropped_components}
        edits.append(straight_edit(plan))
    if paint_like:
        like = like_plan(read, read_rgb, regions, (height, width), paint_like)
        summary["paint_like_dropped"] = {}

        def clear_like_part(region: Region, part: np.ndarray) -> np.ndarray | None:
            if not (part == LOSS).any():
                return None
            return like.dropped(region, part, chunk_colours(read_rgb, region, (height, width)))

        edits.append(clear_like_part)
    result = rewrite_labels(raw, out, chunk, edits)
    for key, value in (("straight_dropped", 1), ("paint_like_dropped", LOSS)):
        if key in summary:
            summary[key]["pixels"] = sum(d.get(value, 0) for d in result.dropped.values())
    result.summary = summary
    return result
