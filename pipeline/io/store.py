"""The Retouch store: one Zarr v3 hierarchy per scan, addressed by a local path or an fsspec URL.

    <store>/scan/0..N                  ingested pyramid (c, y, x), original dtype   (OME-Zarr 0.5 image, omero)
    <store>/scan/labels/damage/0..N    damage labels (1, y, x) uint8                (OME-Zarr 0.5 label image)
    <store>/damage/probabilities/0..N  damage probabilities (2, y, x) uint8         (OME-Zarr 0.5 image)
    <store>/restored/0..N              restored pyramid                             (OME-Zarr 0.5 image, omero)
    <store>/mask_edited/0..N           a conservator's mask, when one was given     (OME-Zarr 0.5 image)
    <store>/provenance/     PROV-JSON documents (plain files)
    <store>/_progress/      per-chunk ledger of a stage in progress (resume after a crash)

Every image group carries the scan's pixel size; the root's `retouch_store` attribute lists the image
groups (OME-Zarr 0.5 has no collection of named images yet). Large levels are sharded (Zarr v3 sharding,
several chunks per shard file) and written a whole shard per task (`write_regions`).

Each group is complete only when its attributes carry `retouch.complete = true`, written last; readers
check it, so a crash never leaves a group that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from pipeline.errors import InputError
from pipeline.io.ome import NGFF_VERSION, Channel, LabelClass, image_label, multiscales, omero

MARKER_KEY = "retouch"
ROOT_KEY = "retouch_store"
STORE_FORMAT = "Retouch store: OME-Zarr 0.5 image groups in one Zarr v3 hierarchy (one scan)"

SCAN = "scan"
RESTORED = "restored"
DAMAGE = "damage"  # the detect stage's group: its completion marker and probabilities
DAMAGE_PROBABILITIES = f"{DAMAGE}/probabilities"
EDITED_MASK = "mask_edited"


def label_path(image: str, name: str) -> str:
    """Where the label image `name` of `image` lives: `<image>/labels/<name>` (the OME-Zarr labels place)."""
    return f"{image}/labels/{name}"


DAMAGE_LABELS = label_path(SCAN, "damage")
# how a restored/ marker names the detected mask it was made from (the second: stores from before the labels
# moved to the OME-Zarr label image)
DETECTED_MASKS = (DAMAGE_LABELS, f"{DAMAGE}/labels")
IMAGE_DESCRIPTIONS = {
    SCAN: "the ingested scan (original dtype and channels)",
    DAMAGE_PROBABILITIES: "per-class damage probability 0-255: craquelure, paint loss",
    DAMAGE_LABELS: "damage label image: 1 craquelure, 2 paint loss",
    RESTORED: "the restored image: the scan with the damage filled",
    EDITED_MASK: "a conservator's edited damage mask (nonzero = fill)",
}


class StoreError(InputError):
    """A store or group that is missing, incomplete or not what a stage expects."""


@dataclass(frozen=True)
class LevelSpec:
    path: str
    shape: tuple[int, int, int]
    scale: int  # downsampling factor relative to level 0


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def local_path(url: str) -> str:
    return url[len("file://") :] if url.startswith("file://") else url


def fs_and_path(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem of `url` and the path inside it."""
    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


def join(url: str, *parts: str) -> str:
    return "/".join([url.rstrip("/"), *parts])


def level_shapes(height: int, width: int, channels: int, max_side: int = 1024) -> list[LevelSpec]:
    """Level 0 and each half-size level (rounded up) until the largest side is <= max_side."""
    levels = [LevelSpec("0", (channels, height, width), 1)]
    while max(height, width) > max_side and min(height, width) > 1:
        height, width = (height + 1) // 2, (width + 1) // 2
        levels.append(LevelSpec(str(len(levels)), (channels, height, width), levels[-1].scale * 2))
    return levels


def levels_like(group: zarr.Group, channels: int) -> list[LevelSpec]:
    """The level layout of an existing pyramid group, with another channel count (outputs follow the scan)."""
    paths = sorted(group.array_keys(), key=int)
    return [LevelSpec(p, (channels, *group[p].shape[1:]), 2 ** int(p)) for p in paths]


def downsample2(block: np.ndarray, mode: str = "mean") -> np.ndarray:
    """(C, h, w) -> (C, ceil(h/2), ceil(w/2)): rounded 2x2 mean, or max for label maps; edges replicated."""
    c, h, w = block.shape
    if h % 2 or w % 2:
        block = np.pad(block, ((0, 0), (0, h % 2), (0, w % 2)), mode="edge")
    quads = block.reshape(c, block.shape[1] // 2, 2, block.shape[2] // 2, 2)
    if mode == "max":
        return quads.max(axis=(2, 4))
    # accumulated in the smallest type that holds 4 * max + 2 (no widened copy of the whole block)
    summed = quads.sum(axis=(2, 4), dtype=np.uint16 if block.dtype.itemsize == 1 else np.uint32)
    return ((summed + 2) // 4).astype(block.dtype)


def chunk_grid(shape: tuple[int, int, int], chunk: int) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) of every chunk of a (c, y, x) array, row by row."""
    _, h, w = shape
    return [
        (y0, min(y0 + chunk, h), x0, min(x0 + chunk, w))
        for y0 in range(0, h, chunk)
        for x0 in range(0, w, chunk)
    ]


def block_digest(block: np.ndarray) -> str:
    """sha256 of a block's shape, dtype and C-order bytes."""
    digest = hashlib.sha256(f"{block.shape}{block.dtype.str}".encode())
    digest.update(np.ascontiguousarray(block).tobytes())
    return digest.hexdigest()


def chunk_digests(block: np.ndarray, region: tuple[int, int, int, int], chunk: int) -> dict[str, str]:
    """{'cy-cx': block_digest} of every `chunk`-px chunk of `block`, the (C, h, w) pixels of `region`
    (y0, y1, x0, x1), which is made of whole chunks (edge chunks may be partial)."""
    y0, _, x0, _ = region
    return {f"{cy0 // chunk}-{cx0 // chunk}": block_digest(block[:, cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0])
            for cy0, cy1, cx0, cx1 in chunks_in(region, chunk)}


def combine_digests(digests: dict[str, str]) -> str:
    """One digest for a whole array from its per-chunk digests (order independent of execution)."""
    total = hashlib.sha256()
    for key in sorted(digests):
        total.update(f"{key}:{digests[key]}\n".encode())
    return total.hexdigest()


def shard_side(chunk: int, shard_chunks: int, height: int, width: int) -> int | None:
    """Side of the square shards of a level (`shard_chunks` chunks per side), or None to leave it unsharded.

    Only an array larger than one shard is sharded: a small one would gain nothing and only pay the shard
    index. `shard_chunks` 0 or 1 turns sharding off.
    """
    side = chunk * shard_chunks
    if shard_chunks < 2 or height * width <= side * side:
        return None
    return side


def write_side(array: zarr.Array) -> int:
    """The side of the blocks a task must write whole: the shard where the array is sharded, else the chunk.

    Writes to parts of a shard from concurrent tasks lose data (zarr-python issue 3514), so every writer
    splits its work on this grid.
    """
    return array.shards[1] if array.shards else array.chunks[1]


def shard_chunks_of(array: zarr.Array) -> int:
    """Chunks per shard side of `array` (0 when unsharded): outputs take the layout of the scan they follow."""
    return array.shards[1] // array.chunks[1] if array.shards else 0


def write_regions(array: zarr.Array) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) of each block of `array` that one task writes whole (see `write_side`)."""
    return chunk_grid(array.shape, write_side(array))


def chunks_in(region: tuple[int, int, int, int], chunk: int) -> list[tuple[int, int, int, int]]:
    """The chunk regions inside a chunk-aligned `region`, row by row."""
    y0, y1, x0, x1 = region
    return [(cy, min(cy + chunk, y1), cx, min(cx + chunk, x1))
            for cy in range(y0, y1, chunk) for cx in range(x0, x1, chunk)]


def create_pyramid(
    root: zarr.Group,
    name: str,
    levels: list[LevelSpec],
    dtype: np.dtype,
    chunk: int,
    pixel_size_um: float | None = None,
    compression_level: int = 3,
    downsampling: str = "mean",
    channels: Sequence[Channel] | None = None,
    shard_chunks: int = 0,
) -> zarr.Group:
    """Create group `name` with one array per level and its OME-Zarr 0.5 metadata, not yet marked complete.

    `downsampling` names how levels 1..N are made ('mean' or 'max'), `channels` adds the `omero` rendering
    block, `shard_chunks` > 1 puts levels larger than one shard into shards of that many chunks per side.
    """
    group = root.create_group(name, overwrite=True)
    create_levels(group, name, levels, dtype, chunk, pixel_size_um, compression_level, downsampling, channels,
                  shard_chunks)
    return group


def chunk_codec(level: int = 3) -> ZstdCodec:
    """How every array of a store compresses its chunks: zstd frames with a content checksum (a corrupt chunk
    fails to decode instead of giving wrong pixels)."""
    return ZstdCodec(level=level, checksum=True)


def create_chunked(group: zarr.Group, name: str, shape: tuple[int, ...], chunk: int, dtype: np.dtype,
                   shard_chunks: int = 0, compression_level: int = 3,
                   dimension_names: list[str] | None = None) -> zarr.Array:
    """One (C, H, W) array `name` in `group`, as every array of a store is laid out: `chunk`-px chunks holding every
    channel, square shards of `shard_chunks` chunks per side where the array is larger than one (`shard_side`),
    `chunk_codec`, fill 0. An image level (`create_levels`) or a stage's scratch array (no image metadata)."""
    shard = shard_side(chunk, shard_chunks, *shape[1:])
    return group.create_array(name, shape=shape, chunks=(shape[0], chunk, chunk),
                              shards=(shape[0], shard, shard) if shard else None, dtype=dtype,
                              compressors=chunk_codec(compression_level), fill_value=0,
                              dimension_names=dimension_names)


def create_levels(group: zarr.Group, ome_name: str, levels: list[LevelSpec], dtype: np.dtype, chunk: int,
                  pixel_size_um: float | None = None, compression_level: int = 3, downsampling: str = "mean",
                  channels: Sequence[Channel] | None = None, shard_chunks: int = 0) -> None:
    """One array per level inside `group` and its OME-Zarr 0.5 metadata (the image named `ome_name`; `group`
    may be a recompute's `<name>.partial`, swapped in whole later).

    Each level is laid out by `create_chunked`. `downsampling` names how levels 1..N are made ('mean' or 'max'),
    `channels` adds the `omero` rendering block, `shard_chunks` > 1 puts levels larger than one shard into
    shards of that many chunks per side."""
    for level in levels:
        create_chunked(group, level.path, level.shape, chunk, dtype, shard_chunks, compression_level, ["c", "y", "x"])
    ome: dict[str, Any] = {
        "version": NGFF_VERSION,
        "multiscales": [multiscales(ome_name.rsplit("/", 1)[-1], [lv.path for lv in levels],
                                    [lv.scale for lv in levels], pixel_size_um, downsampling)],
    }
    if channels is not None:
        ome["omero"] = omero(channels, np.dtype(dtype))
    group.attrs["ome"] = ome
    _register(group)


def create_labels(
    root: zarr.Group,
    image: str,
    name: str,
    levels: list[LevelSpec],
    chunk: int,
    classes: Sequence[LabelClass],
    pixel_size_um: float | None = None,
    shard_chunks: int = 0,
    staged: bool = False,
) -> zarr.Group:
    """Create the label image `<image>/labels/<name>` (uint8, max-pooled levels) where OME-Zarr readers look
    for an image's labels, listed in `<image>/labels` and pointing back to `<image>`; not yet complete.

    `staged`: create it as `<name>.partial` (a recompute aside, swapped in by pipeline.io.staging), listed
    under its final name."""
    labels = root[image].require_group("labels")
    names = [n for n in labels.attrs.get("ome", {}).get("labels", []) if n != name]
    labels.attrs["ome"] = {"version": NGFF_VERSION, "labels": [*names, name]}
    group = labels.create_group(f"{name}.partial" if staged else name, overwrite=True)
    create_levels(group, name, levels, np.uint8, chunk, pixel_size_um, downsampling="max",
                  shard_chunks=shard_chunks)
    group.attrs["ome"] = {**group.attrs["ome"], "image-label": image_label(classes)}
    return group


def pixel_size_of(group: zarr.Group) -> float | None:
    """The physical pixel size (micrometres) of level 0 of an image group, or None where it is not known."""
    try:
        multiscale = group.attrs["ome"]["multiscales"][0]
        if multiscale["axes"][-1].get("unit") != "micrometer":
            return None
        return float(multiscale["datasets"][0]["coordinateTransformations"][0]["scale"][-1])
    except (KeyError, IndexError, TypeError):
        return None


def _register(group: zarr.Group) -> None:
    """List an image group in the store root's attributes, so that the store says what it holds."""
    root = zarr.open_group(store=group.store, mode="a")
    info = dict(root.attrs.get(ROOT_KEY, {}))
    # a group written aside (a recompute's `<name>.partial`, a review save's `_<name>.new`) is listed by the
    # name it will have once swapped in
    path = re.sub(r"(^|/)_([^/]+)\.new$", r"\1\2", re.sub(r"\.partial(?=/|$)", "", group.path))
    images = {**info.get("images", {}), path: IMAGE_DESCRIPTIONS.get(path, "")}
    root.attrs[ROOT_KEY] = {**info, "format": STORE_FORMAT, "ome_zarr": NGFF_VERSION,
                            "images": dict(sorted(images.items()))}


def store_images(url: str) -> dict[str, str]:
    """The image groups a store lists in its root attributes (path -> what it holds)."""
    return dict(open_root(url).attrs.get(ROOT_KEY, {}).get("images", {}))


def mark_complete(group: zarr.Group, info: dict[str, Any]) -> None:
    """Write the completion marker (last step of a stage)."""
    group.attrs[MARKER_KEY] = {**info, "complete": True}


def open_root(url: str, mode: str = "r") -> zarr.Group:
    try:
        return zarr.open_group(url, mode=mode)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as exc:
        raise StoreError(url, "no Retouch store here (run `retouch ingest` first)") from exc


def group_info(url: str, name: str) -> dict[str, Any] | None:
    """The completion marker of group `name`, or None when absent or incomplete."""
    try:
        group = zarr.open_group(url, mode="r", path=name)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
        return None
    info = group.attrs.get(MARKER_KEY)
    return info if isinstance(info, dict) and info.get("complete") else None


WRITTEN_BY = {"scan": "ingest", "damage": "detect", "restored": "inpaint"}  # group -> the stage writing it


def open_complete(url: str, name: str) -> zarr.Group:
    """Group `name` of the store, refusing one that is missing or was never completed; the message says
    which command writes it (a store that does not exist at all is named as such)."""
    if group_info(url, name) is not None:
        return zarr.open_group(url, mode="r", path=name)
    stage = WRITTEN_BY.get(name)
    command = f"`retouch {stage} {'SCAN ' if stage == 'ingest' else ''}{url}`" if stage else "the stage that writes it"
    try:
        zarr.open_group(url, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
        raise StoreError(url, "no such store (ingest a scan into it first: `retouch ingest SCAN STORE`, "
                              "or `retouch run SCAN`)") from None
    try:
        zarr.open_group(url, mode="r", path=name)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
        raise StoreError(join(url, name), f"not there yet: run {command} first") from None
    raise StoreError(join(url, name), f"incomplete (the stage was interrupted?): run {command} again")


def write_json(url: str, data: dict[str, Any]) -> None:
    """Write a JSON file through fsspec, via a temporary name where the filesystem can rename."""
    fs, path = fs_and_path(url)
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    text = json.dumps(data, indent=2, sort_keys=True)
    tmp = path + ".tmp"
    with fs.open(tmp, "w") as fh:
        fh.write(text)
    fs.mv(tmp, path)


def read_json(url: str) -> dict[str, Any]:
    fs, path = fs_and_path(url)
    with fs.open(path, "r") as fh:
        return json.load(fh)


def array_url(array: zarr.Array) -> str:
    """Where `array` lives, for messages (a local path without `file://`)."""
    return local_path(str(array.store_path))


def read_region(array: zarr.Array, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """array[:, y0:y1, x0:x1]; a chunk that fails to decode is a StoreError naming the array and the chunk."""
    try:
        return np.asarray(array[:, y0:y1, x0:x1])
    except Exception as exc:  # codec errors come in many types
        raise corrupt_chunk_error(array, (y0, y1, x0, x1), exc) from exc


def corrupt_chunk_error(array: zarr.Array, region: tuple[int, int, int, int], exc: Exception) -> StoreError:
    """The error for a failed read of `region`: the first chunk inside it that does not decode, by index and
    position (a region spans several chunks; the failure itself does not say which)."""
    y0, y1, x0, x1 = region
    cy, cx = array.chunks[1], array.chunks[2]
    for ty in range(y0 // cy * cy, y1, cy):
        for tx in range(x0 // cx * cx, x1, cx):
            try:
                array[:, ty : ty + cy, tx : tx + cx]
            except Exception as chunk_exc:  # noqa: BLE001 - any codec failure marks the chunk
                return StoreError(array_url(array), f"chunk {ty // cy}-{tx // cx} (y={ty}, x={tx}) is corrupt "
                                                    f"and cannot be decoded ({_first_line(chunk_exc)}); "
                                                    "re-run the stage that writes it with --force")
    return StoreError(array_url(array), f"cannot read y={y0}:{y1}, x={x0}:{x1} ({_first_line(exc)})")


def _first_line(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]


def open_damage_labels(url: str) -> zarr.Group:
    """The damage label image (`scan/labels/damage`), refusing it unless the detect stage completed."""
    open_complete(url, DAMAGE)
    try:
        group = zarr.open_group(url, mode="r", path=DAMAGE_LABELS)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as exc:
        raise StoreError(join(url, DAMAGE_LABELS), "missing (a store written before labels moved there); "
                                                   "re-run `retouch detect --force`") from exc
    labels_key = (group.attrs.get(MARKER_KEY) or {}).get("key")
    if labels_key is not None and labels_key != (group_info(url, DAMAGE) or {}).get("key"):
        raise StoreError(join(url, DAMAGE_LABELS), "written by another detect run than damage/ (an interrupted "
                                                   "recompute); run `retouch detect` again")
    return group
