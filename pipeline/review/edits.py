"""Saving a conservator's brush strokes: `mask_edited/` (the corrected damage map) and `scribbles/` (for adapt).

    mask_edited/0..N   (1, y, x) uint8: 0 none, 1 craquelure, 2 paint loss; starts as a copy of the detected
                       map (the label image `scan/labels/damage`), max-downsampled like it, in the same
                       chunk and shard layout
    scribbles/0..N     (1, y, x) uint8: 0 unlabelled, 1 craquelure, 2 paint loss, 3 clean (what `adapt` takes)

A save names the version (level-0 digest) it started from; when the target changed since (another tab
saved), it is refused with `EditConflict` and nothing is written. The new pyramid is built beside the old
one (`_<name>.new`: a copy of the base's chunk files, then only the chunks under the strokes rewritten) and
swapped in when complete, so a failed save never destroys the last good map; `damage/` is never touched.
Local stores only (the swap is a directory rename).
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from pipeline.io.digests import ALGORITHM
from pipeline.io.locking import store_lock
from pipeline.io.store import (
    DAMAGE_LABELS,
    StoreError,
    block_digest,
    combine_digests,
    create_pyramid,
    downsample2,
    group_info,
    is_local,
    levels_like,
    local_path,
    mark_complete,
    open_complete,
    pixel_size_of,
    shard_chunks_of,
    write_regions,
)
from pipeline.provenance import StageRecord, input_ref, now_iso
from pipeline.review.images import SCRIBBLE_GROUP, label_digest, label_pyramid
from pipeline.stages.detect import CLASSES
from pipeline.stages.inpaint_stage import EDITED_MASK_GROUP

TARGET_VALUES = {EDITED_MASK_GROUP: (1, 2), SCRIBBLE_GROUP: (1, 2, 3)}
SCRIBBLE_NAMES = {1: "craquelure", 2: "paint_loss", 3: "clean"}
MAX_POINTS = 200_000  # one save; a stroke's points are its pointer positions, far fewer in practice


class EditConflict(Exception):
    """The map changed since the page loaded it (HTTP 409)."""


class EditError(ValueError):
    """A malformed save request (HTTP 400); the message says what is wrong."""


@dataclass(frozen=True)
class Stroke:
    """Label `value` painted (or erased, only where the map holds `value`) along `points` (level-0 px)
    with a round brush of `radius` level-0 px."""

    value: int
    erase: bool
    radius: float
    points: tuple[tuple[float, float], ...]

    def bbox(self) -> tuple[int, int, int, int]:
        xs, ys = [p[0] for p in self.points], [p[1] for p in self.points]
        r = self.radius + 1
        return int(min(ys) - r), int(max(ys) + r) + 1, int(min(xs) - r), int(max(xs) + r) + 1


def parse_strokes(payload: Any, target: str) -> list[Stroke]:
    """The strokes of a JSON save request, checked; EditError names the first problem."""
    if target not in TARGET_VALUES:
        raise EditError(f"unknown target '{target}' (mask_edited or scribbles)")
    if not isinstance(payload, list) or not payload:
        raise EditError("'strokes' must be a non-empty list")
    strokes, total = [], 0
    for i, item in enumerate(payload):
        try:
            value, erase = item["value"], bool(item.get("erase", False))
            radius = float(item["radius"])
            points = tuple((float(x), float(y)) for x, y in item["points"])
        except (KeyError, TypeError, ValueError) as exc:
            raise EditError(f"stroke {i}: needs value, radius and points [[x, y], ...] ({exc})") from None
        if not all(math.isfinite(v) for point in points for v in point) or not math.isfinite(radius):
            raise EditError(f"stroke {i}: radius and points must be finite numbers (no NaN or Infinity)")
        if type(value) is not int or value not in TARGET_VALUES[target]:  # not 1.7, not true
            raise EditError(f"stroke {i}: value {value} is not one of {TARGET_VALUES[target]} for {target}")
        if not 0.5 <= radius <= 10_000 or not points:
            raise EditError(f"stroke {i}: radius must be in [0.5, 10000] px and points non-empty")
        total += len(points)
        strokes.append(Stroke(value, erase, radius, points))
    if total > MAX_POINTS:
        raise EditError(f"{total} points in one save (at most {MAX_POINTS}); save more often")
    return strokes


def stroke_coverage(stroke: Stroke, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """(y1-y0, x1-x0) bool: the pixels of the window whose centre lies within `radius` of the stroke's path.

    Pixel (y, x) spans [x, x+1) x [y, y+1) (as OpenSeadragon's image coordinates), so its centre is
    (x + 0.5, y + 0.5); the test is exact and independent of the window, so chunk borders show no seam.
    """
    covered = np.zeros((y1 - y0, x1 - x0), bool)
    r = stroke.radius
    points = stroke.points if len(stroke.points) > 1 else stroke.points * 2
    for (ax, ay), (bx, by) in zip(points[:-1], points[1:], strict=False):
        wy0, wy1 = max(y0, int(np.floor(min(ay, by) - r)) - 1), min(y1, int(np.ceil(max(ay, by) + r)) + 1)
        wx0, wx1 = max(x0, int(np.floor(min(ax, bx) - r)) - 1), min(x1, int(np.ceil(max(ax, bx) + r)) + 1)
        if wy0 >= wy1 or wx0 >= wx1:
            continue
        ys = np.arange(wy0, wy1, dtype=np.float64)[:, None] + 0.5
        xs = np.arange(wx0, wx1, dtype=np.float64)[None, :] + 0.5
        dx, dy = bx - ax, by - ay
        t = np.clip(((xs - ax) * dx + (ys - ay) * dy) / max(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
        near = np.hypot(xs - (ax + t * dx), ys - (ay + t * dy)) <= r
        covered[wy0 - y0 : wy1 - y0, wx0 - x0 : wx1 - x0] |= near
    return covered


def apply_strokes(block: np.ndarray, strokes: list[Stroke], y0: int, x0: int) -> np.ndarray:
    """A (h, w) label block with the strokes applied in order (a copy)."""
    out = block.copy()
    h, w = out.shape
    for stroke in strokes:
        covered = stroke_coverage(stroke, y0, y0 + h, x0, x0 + w)
        if stroke.erase:
            out[covered & (out == stroke.value)] = 0
        else:
            out[covered] = stroke.value
    return out


def current_version(store: str, target: str) -> str | None:
    """The version a page edits from: the target's level-0 digest, or (first edit) the detected map's."""
    if target == EDITED_MASK_GROUP:
        return label_digest(store, EDITED_MASK_GROUP) or label_digest(store, "damage")
    info = group_info(store, SCRIBBLE_GROUP)
    return info["digests"]["0"] if info else "empty"


def save_strokes(store: str, target: str, strokes: list[Stroke], base_version: str) -> dict[str, Any]:
    """Write `target` = its current state (or the base) with `strokes` applied; returns the new marker.

    EditConflict when the target's version is no longer `base_version`; StoreError on a remote store.
    """
    if not is_local(store):
        raise StoreError(store, "edits are saved to local stores only")
    with store_lock(store, timeout=30):
        if current_version(store, target) != base_version:
            raise EditConflict(f"{target} changed since this page loaded it (another tab or run saved); "
                               "reload to see the newest version, then redo the edit")
        return _write(store, target, strokes, base_version)


def _base_group(store: str, target: str) -> tuple[zarr.Group | None, str]:
    if target == EDITED_MASK_GROUP:
        if group_info(store, EDITED_MASK_GROUP):
            return label_pyramid(store, EDITED_MASK_GROUP), EDITED_MASK_GROUP
        return label_pyramid(store, "damage"), DAMAGE_LABELS
    return (open_complete(store, SCRIBBLE_GROUP), SCRIBBLE_GROUP) if group_info(store, SCRIBBLE_GROUP) else \
        (None, "empty")


def _write(store: str, target: str, strokes: list[Stroke], base_version: str) -> dict[str, Any]:
    started, started_iso = time.time(), now_iso()
    root_dir = Path(local_path(store))
    scan = open_complete(store, "scan")
    levels = levels_like(scan, 1)
    chunk = int(scan["0"].chunks[1])
    base, base_name = _base_group(store, target)
    new_name = f"_{target}.new"
    new_dir = root_dir / new_name
    if new_dir.exists():
        shutil.rmtree(new_dir)  # the leftover of a save that failed: never complete, never read
    root = zarr.open_group(store, mode="a")
    create_pyramid(root, new_name, levels, np.uint8, chunk, pixel_size_of(scan), downsampling="max",
                   shard_chunks=shard_chunks_of(scan["0"]))
    group = zarr.open_group(store, mode="a", path=new_name)
    if base is not None:
        for level in levels:
            _copy_level(base[level.path], group[level.path], root_dir / base.path / level.path / "c",
                        new_dir / level.path / "c")
    changed = _paint_level0(group["0"], strokes, chunk, TARGET_VALUES[target])
    _rebuild_levels(group, levels, strokes, chunk)
    digest = _level0_digest(group["0"], chunk)
    names = SCRIBBLE_NAMES if target == SCRIBBLE_GROUP else dict(enumerate(CLASSES, start=1))
    changed_named = {names[v]: counts for v, counts in changed.items()}
    record = StageRecord(f"review-{target}", store, {"strokes": len(strokes), "base": base_name}, started=started_iso)
    record.use(base_name, input_ref({}, base_name, base_version))
    record.generated(f"{target}/0", derived_from=[base_name], digest=digest, digest_algorithm=ALGORITHM,
                     **{f"pixels_{name}_{kind}": n for name, counts in changed_named.items()
                        for kind, n in counts.items()})
    prov = record.write()
    marker = {"stage": f"review-{target}", "digests": {"0": digest}, "base": base_name,
              "base_digest": base_version, "pixels_changed": changed_named, "strokes": len(strokes),
              "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": time.time() - started,
              "provenance": prov}
    mark_complete(group, marker)
    _swap(root_dir, new_name, target)
    return marker


def _same_layout(a: zarr.Array, b: zarr.Array) -> bool:
    """Whether two arrays store their chunks identically on disk (shape, chunk and shard grid, codecs)."""
    meta_a, meta_b = a.metadata.to_dict(), b.metadata.to_dict()
    keys = ("shape", "data_type", "chunk_grid", "chunk_key_encoding", "codecs", "fill_value")
    return all(meta_a.get(k) == meta_b.get(k) for k in keys)


def _copy_level(source: zarr.Array, target: zarr.Array, source_dir: Path, target_dir: Path) -> None:
    """The base's level into the new pyramid: its chunk (or shard) files as they are where both arrays lay
    them out alike (a copy, no decoding); otherwise (a base from before sharding or checksums) decoded and
    written again, a whole shard per write."""
    if _same_layout(source, target):
        if source_dir.exists():
            shutil.copytree(source_dir, target_dir)
        return
    for y0, y1, x0, x1 in write_regions(target):
        target[:, y0:y1, x0:x1] = np.asarray(source[:, y0:y1, x0:x1])


def _paint_level0(array: zarr.Array, strokes: list[Stroke], chunk: int,
                  values: tuple[int, ...]) -> dict[int, dict[str, int]]:
    """Rewrite the level-0 chunks under the strokes; per label value, pixels added and removed."""
    _, height, width = array.shape
    changed = {v: {"added": 0, "removed": 0} for v in values}
    chunks: set[tuple[int, int]] = set()
    for stroke in strokes:
        y0, y1, x0, x1 = stroke.bbox()
        for cy in range(max(0, y0) // chunk, min(height - 1, y1) // chunk + 1):
            for cx in range(max(0, x0) // chunk, min(width - 1, x1) // chunk + 1):
                chunks.add((cy, cx))
    for cy, cx in sorted(chunks):
        y0, x0 = cy * chunk, cx * chunk
        block = np.asarray(array[0, y0 : y0 + chunk, x0 : x0 + chunk])
        edited = apply_strokes(block, strokes, y0, x0)
        for v in values:
            changed[v]["added"] += int(((edited == v) & (block != v)).sum())
            changed[v]["removed"] += int(((block == v) & (edited != v)).sum())
        if not np.array_equal(edited, block):
            array[0, y0 : y0 + chunk, x0 : x0 + chunk] = edited
    return changed


def _rebuild_levels(group: zarr.Group, levels: list, strokes: list[Stroke], chunk: int) -> None:
    """Recompute, level by level (max of 2x2), only the chunks over the strokes' bounding boxes."""
    boxes = [stroke.bbox() for stroke in strokes]
    for prev, level in zip(levels, levels[1:], strict=False):
        source, target = group[prev.path], group[level.path]
        _, height, width = level.shape
        chunks: set[tuple[int, int]] = set()
        for y0, y1, x0, x1 in boxes:
            s = level.scale
            for cy in range(max(0, y0 // s) // chunk, min(height - 1, y1 // s) // chunk + 1):
                for cx in range(max(0, x0 // s) // chunk, min(width - 1, x1 // s) // chunk + 1):
                    chunks.add((cy, cx))
        for cy, cx in chunks:
            y0, x0 = cy * chunk, cx * chunk
            y1, x1 = min(y0 + chunk, height), min(x0 + chunk, width)
            block = np.asarray(source[:, 2 * y0 : 2 * y1, 2 * x0 : 2 * x1])
            target[:, y0:y1, x0:x1] = downsample2(block, "max")[:, : y1 - y0, : x1 - x0]


def _level0_digest(array: zarr.Array, chunk: int) -> str:
    """The level-0 digest as the stages compute it (per chunk, combined), one band of chunks at a time."""
    _, height, width = array.shape
    digests = {}
    for y0 in range(0, height, chunk):
        band = np.asarray(array[:, y0 : y0 + chunk, :])
        for x0 in range(0, width, chunk):
            digests[f"{y0 // chunk}-{x0 // chunk}"] = block_digest(band[:, :, x0 : x0 + chunk])
    return combine_digests(digests)


def _swap(root_dir: Path, new_name: str, target: str) -> None:
    """Put the completed `_<target>.new` in place of `<target>` (the old one removed only after)."""
    final, old = root_dir / target, root_dir / f"_{target}.old"
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    (root_dir / new_name).rename(final)
    if old.exists():
        shutil.rmtree(old)
