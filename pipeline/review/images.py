"""The images a review serves from one store, cut from the pyramid level that fits each request.

    scan, restored                    the pyramids as stored (16-bit shown as 8-bit: v >> 8, as the previews)
    damage                            detected labels as an RGBA overlay: craquelure red, paint loss cyan
    damage-craquelure, -paint_loss    one class each (the page shows each with its own toggle and opacity)
    mask_edited[-<class>]             the conservator's corrected map, the same colours, when it exists
    scribbles                         the strokes for `adapt`: craquelure red, paint loss cyan, clean green
    adapt_changes[-<class>|-removed]  the detected map against the one before adapt's last fit: what adapting
                                      added (craquelure red, paint loss cyan) and removed (yellow), when both exist

A name may carry a version after `~` (`mask_edited~1a2b`): ignored here, it gives the page new tile URLs
after a save, so no cached tile of the old map is shown.

A request reads only the window of one level (at most about twice the output side per axis, see
`iiif.choose_level`), so memory per request is bounded by the output size, not by the image size.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass

import numpy as np
import zarr
from PIL import Image

from pipeline.io.store import StoreError, group_info, open_complete, open_damage_labels
from pipeline.review.iiif import IIIFError, Request, choose_level, level_window
from pipeline.stages.adapt_before import BEFORE_ADAPT
from pipeline.stages.detect import CLASSES, DAMAGE_GROUP
from pipeline.stages.export import OVERLAY_COLOURS
from pipeline.stages.iiif_static import to_rgb8
from pipeline.stages.inpaint_stage import EDITED_MASK_GROUP

LABEL_SOURCES = {"damage": DAMAGE_GROUP, "mask_edited": EDITED_MASK_GROUP}
SCRIBBLE_GROUP = "scribbles"
REMOVED = 4  # adapt_changes: flagged before adapt's last fit, no longer flagged
COLOURS = {**OVERLAY_COLOURS, 3: (60, 200, 80), REMOVED: (240, 200, 40)}  # 3 = clean (scribbles only)
CHANGES = "adapt_changes"


def label_pyramid(store: str, name: str) -> zarr.Group:
    """The label pyramid (arrays 0..N of (1, y, x) uint8: 0 none, 1 craquelure, 2 paint loss) of `name`
    (`damage` = the detected map, `mask_edited` = the corrected one). Every label read goes through here,
    so moving the labels changes this one function: the detected map is the OME-Zarr label image
    `scan/labels/damage` (pipeline.io.store.open_damage_labels)."""
    if name == "damage":
        return open_damage_labels(store)
    if name == "mask_edited":
        return open_complete(store, EDITED_MASK_GROUP)
    raise StoreError(store, f"no label map called '{name}'")


def label_digest(store: str, name: str) -> str | None:
    """The level-0 digest of a label map (its version: a save names the one it started from)."""
    if name == "damage":
        info = group_info(store, DAMAGE_GROUP)
        return info["digests"]["labels/0"] if info else None
    info = group_info(store, EDITED_MASK_GROUP)
    return info["digests"]["0"] if info else None


@dataclass(frozen=True)
class ImageSource:
    """One servable image: its pyramid arrays (finest first), their factors, and how to render a window."""

    arrays: tuple[zarr.Array, ...]
    scales: tuple[int, ...]
    overlay_classes: tuple[int, ...]  # () for a photograph; label values to colour for an overlay
    previous: tuple[zarr.Array, ...] = ()  # an earlier map of the same levels: the overlay shows what changed

    @property
    def width(self) -> int:
        return int(self.arrays[0].shape[2])

    @property
    def height(self) -> int:
        return int(self.arrays[0].shape[1])


def _pyramid(group: zarr.Group) -> tuple[tuple[zarr.Array, ...], tuple[int, ...]]:
    paths = sorted(group.array_keys(), key=int)
    return tuple(group[p] for p in paths), tuple(2 ** int(p) for p in paths)


class ReviewImages:
    """The store's servable images, opened once and reopened after an edit is saved."""

    def __init__(self, store: str) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._sources: dict[str, ImageSource] = {}
        open_complete(store, "scan")  # refuse a store without a complete scan up front
        self.reload()

    def reload(self) -> None:
        """Open every image the store has now (after a save, `mask_edited` appears or changes)."""
        sources: dict[str, ImageSource] = {}
        for name in ("scan", "restored"):
            if group_info(self.store, name) is not None:
                arrays, scales = _pyramid(open_complete(self.store, name))
                sources[name] = ImageSource(arrays, scales, ())
        for name in LABEL_SOURCES:
            if label_digest(self.store, name) is None:
                continue
            arrays, scales = _pyramid(label_pyramid(self.store, name))
            sources[name] = ImageSource(arrays, scales, (1, 2))
            for value, cls in enumerate(CLASSES, start=1):
                sources[f"{name}-{cls}"] = ImageSource(arrays, scales, (value,))
        before = group_info(self.store, BEFORE_ADAPT)
        if before is not None and "damage" in sources:
            previous, _ = _pyramid(open_complete(self.store, BEFORE_ADAPT))
            current = sources["damage"]
            if [a.shape for a in previous] == [a.shape for a in current.arrays]:
                sources[CHANGES] = ImageSource(current.arrays, current.scales, (1, 2, REMOVED), previous)
                for value, kind in (*enumerate(CLASSES, start=1), (REMOVED, "removed")):
                    sources[f"{CHANGES}-{kind}"] = ImageSource(current.arrays, current.scales, (value,), previous)
        if group_info(self.store, SCRIBBLE_GROUP) is not None:
            arrays, scales = _pyramid(open_complete(self.store, SCRIBBLE_GROUP))
            sources[SCRIBBLE_GROUP] = ImageSource(arrays, scales, (1, 2, 3))
        with self._lock:
            self._sources = sources

    def names(self) -> list[str]:
        with self._lock:
            return list(self._sources)

    def get(self, name: str) -> ImageSource | None:
        with self._lock:
            return self._sources.get(name.split("~", 1)[0])


def read_window(source: ImageSource, request: Request) -> tuple[np.ndarray, int]:
    """The request's region from the level that fits it, as stored ((c, h, w)), and that level's index."""
    index = choose_level(list(source.scales), request)
    array = source.arrays[index]
    x0, y0, x1, y1 = level_window(request, source.scales[index], int(array.shape[2]), int(array.shape[1]))
    block = np.asarray(array[:, y0:y1, x0:x1])
    if source.previous:
        block = changes(block, np.asarray(source.previous[index][:, y0:y1, x0:x1]))
    return block, index


def changes(now: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Label blocks compared: 0 where unchanged, the class now where a pixel is flagged now and was not flagged
    as that class before, REMOVED where it was flagged before and is not now."""
    return np.where(now == before, 0, np.where(now > 0, now, REMOVED)).astype(np.uint8)


def render(source: ImageSource, request: Request) -> bytes:
    """The encoded image answering `request` (JPEG or PNG bytes)."""
    block, _ = read_window(source, request)
    size = (request.width, request.height)
    if source.overlay_classes:
        rgba = np.zeros((request.height, request.width, 4), np.uint8)
        for value in source.overlay_classes:  # box-filtered coverage > 0: a 1-px crack stays visible
            present = Image.fromarray(np.where(block[0] == value, 255, 0).astype(np.uint8))
            rgba[np.asarray(present.resize(size, Image.Resampling.BOX)) > 0] = (*COLOURS[value], 255)
        image = Image.fromarray(rgba, "RGBA")
        if request.format == "jpg":  # JPEG has no transparency: the overlay on black
            image = image.convert("RGB")
    else:
        rgb = to_rgb8(block)
        image = Image.fromarray(rgb, "RGB")
        if image.size != size:
            image = image.resize(size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if request.format == "jpg":
        image.save(out, "JPEG", quality=88)
    elif request.format == "png":
        image.save(out, "PNG", compress_level=1)
    else:
        raise IIIFError(f"format '{request.format}' is not supported")
    return out.getvalue()
