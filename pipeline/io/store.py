"""The Retouch store: one Zarr v3 hierarchy per scan, addressed by a local path or an fsspec URL.

    <store>/scan/0..N       ingested pyramid (c, y, x), original dtype     (OME-Zarr 0.5 multiscales)
    <store>/damage/...      detection output
    <store>/restored/0..N   restored pyramid
    <store>/provenance/     PROV-JSON documents (plain files)
    <store>/_progress/      per-chunk ledger of a stage in progress (resume after a crash)

Each group is complete only when its attributes carry `retouch.complete = true`, written last; readers
check it, so a crash never leaves a group that looks complete.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from pipeline.errors import InputError

MARKER_KEY = "retouch"


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
    summed = quads.astype(np.uint32).sum(axis=(2, 4))
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


def combine_digests(digests: dict[str, str]) -> str:
    """One digest for a whole array from its per-chunk digests (order independent of execution)."""
    total = hashlib.sha256()
    for key in sorted(digests):
        total.update(f"{key}:{digests[key]}\n".encode())
    return total.hexdigest()


def create_pyramid(
    root: zarr.Group,
    name: str,
    levels: list[LevelSpec],
    dtype: np.dtype,
    chunk: int,
    axes_units: str | None = None,
    pixel_size_um: float | None = None,
    compression_level: int = 3,
) -> zarr.Group:
    """Create group `name` with one array per level, OME-Zarr 0.5 metadata, not yet marked complete."""
    group = root.create_group(name, overwrite=True)
    create_levels(group, name, levels, dtype, chunk, pixel_size_um, compression_level)
    return group


def create_levels(group: zarr.Group, ome_name: str, levels: list[LevelSpec], dtype: np.dtype, chunk: int,
                  pixel_size_um: float | None = None, compression_level: int = 3) -> None:
    """One array per level inside `group` and its OME metadata (named `ome_name`).

    Chunks are zstd frames with a content checksum: a corrupt chunk fails to decode instead of giving
    wrong pixels."""
    for level in levels:
        group.create_array(
            level.path,
            shape=level.shape,
            chunks=(level.shape[0], chunk, chunk),
            dtype=dtype,
            compressors=ZstdCodec(level=compression_level, checksum=True),
            fill_value=0,
            dimension_names=["c", "y", "x"],
        )
    group.attrs["ome"] = ome_multiscales(ome_name, levels, pixel_size_um)


def ome_multiscales(name: str, levels: list[LevelSpec], pixel_size_um: float | None) -> dict[str, Any]:
    """NGFF 0.5 `ome` attribute: axes (c, y, x) and a scale transform per level."""
    size = pixel_size_um or 1.0
    space: dict[str, Any] = {"type": "space"}
    if pixel_size_um:
        space["unit"] = "micrometer"
    return {
        "version": "0.5",
        "multiscales": [
            {
                "name": name,
                "axes": [{"name": "c", "type": "channel"}, {"name": "y", **space}, {"name": "x", **space}],
                "datasets": [
                    {
                        "path": lv.path,
                        "coordinateTransformations": [
                            {"type": "scale", "scale": [1.0, size * lv.scale, size * lv.scale]}
                        ],
                    }
                    for lv in levels
                ],
                "type": "mean",
            }
        ],
    }


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
