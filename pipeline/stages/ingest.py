"""Ingest: stream a scan file into the store's `scan/` OME-Zarr pyramid, chunk by chunk.

Peak memory is set by the chunk size and the number of workers, not by the image: level 0 is copied one
chunk (or, for striped TIFFs, one row of chunks) per task, a whole shard (row of shards) where level 0 is
sharded, and every further level is made from the level
before it, one output chunk per task. A local store is written under `<store>.partial` and renamed on
success; any store's `scan/` group is marked complete only at the end. Bad input removes the partial
output; a crash leaves it to be resumed by the next run.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dask
import zarr

from pipeline import __version__
from pipeline.engine.ledger import Ledger
from pipeline.engine.pyramid import build_pyramid_levels
from pipeline.engine.runner import EngineConfig, run_tasks
from pipeline.errors import InputError
from pipeline.io.ome import colour_channels
from pipeline.io.sources import ScanSource, open_source
from pipeline.io.store import (
    StoreError,
    chunk_digests,
    chunk_grid,
    create_pyramid,
    fs_and_path,
    group_info,
    is_local,
    join,
    level_shapes,
    local_path,
    mark_complete,
    write_side,
)
from pipeline.provenance import (
    STORE_ATTR,
    StageRecord,
    document_url,
    marker_refs,
    now_iso,
    read_history,
    restore_history,
    sha256_file,
)

SCAN_GROUP = "scan"


@dataclass(frozen=True)
class IngestConfig:
    """Chunk side (px on y and x), largest side of the smallest level, zstd level, optional pixel size,
    chunks per shard side for levels larger than one shard (0 = no sharding: one file per chunk)."""

    chunk: int = 1024
    top_level_max_side: int = 1024
    compression_level: int = 1  # zstd 1: ~2.5x faster than 3 on noisy scans, a few % larger
    pixel_size_um: float | None = None
    shard_chunks: int = 4

    def __post_init__(self) -> None:
        if not 64 <= self.chunk <= 8192 or self.chunk % 16:
            raise ValueError(f"chunk must be a multiple of 16 in [64, 8192], got {self.chunk}")
        if self.top_level_max_side < 16:
            raise ValueError(f"top_level_max_side must be >= 16, got {self.top_level_max_side}")
        if not 1 <= self.compression_level <= 22:
            raise ValueError(f"compression_level must be in [1, 22], got {self.compression_level}")
        if self.pixel_size_um is not None and not 0 < self.pixel_size_um < math.inf:  # the JSON has no inf, nan
            raise ValueError(f"pixel_size_um must be a positive finite number, got {self.pixel_size_um}")
        if not 0 <= self.shard_chunks <= 64:
            raise ValueError(f"shard_chunks must be in [0, 64], got {self.shard_chunks}")


@dataclass(frozen=True)
class IngestResult:
    store: str
    skipped: bool
    shape: tuple[int, int, int]
    dtype: str
    levels: int
    digest: str
    key: str
    provenance: str | None = None
    seconds: float = 0.0
    resumed_tasks: int = 0
    source_metadata: dict[str, Any] = field(default_factory=dict)


_SOURCES: dict[str, ScanSource] = {}
_SOURCES_LOCK = threading.Lock()


def _cached_source(path: str) -> ScanSource:
    """One open source per process (tasks may run on Dask workers, which open it themselves)."""
    with _SOURCES_LOCK:
        if path not in _SOURCES:
            _SOURCES[path] = open_source(path)
        return _SOURCES[path]


def _copy_level0(path: str, array: zarr.Array, region: tuple[int, int, int, int], chunk: int,
                 ledger: Ledger, task_id: str) -> dict[str, str]:
    """Copy source pixels of `region` (a chunk or shard, or a row of them) into level 0; digest each chunk."""
    y0, y1, x0, x1 = region
    block = _cached_source(path).read(y0, y1, x0, x1)  # (C, h, w)
    array[:, y0:y1, x0:x1] = block
    digests = chunk_digests(block, region, chunk)
    ledger.record(task_id, json.dumps(digests))
    return digests


def ingest_key(file_sha256: str, config: IngestConfig) -> str:
    """What determines the ingest output: the file's bytes, the parameters, the stage's version."""
    payload = json.dumps({"file": file_sha256, "config": asdict(config), "version": __version__},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _level0_regions(src: ScanSource, array: zarr.Array) -> list[tuple[int, int, int, int]]:
    """Write blocks (chunks, or shards) for random-access sources; whole rows of them for striped TIFFs
    (each strip decoded once)."""
    side = write_side(array)
    if src.striped:
        _, h, w = array.shape
        return [(y0, min(y0 + side, h), 0, w) for y0 in range(0, h, side)]
    return chunk_grid(array.shape, side)


def ingest(source: str | Path, store: str, config: IngestConfig | None = None,
           engine: EngineConfig | None = None, force: bool = False, run_id: str | None = None) -> IngestResult:
    """Stream `source` into `<store>/scan/`; skip when the store already holds this exact ingest."""
    config = config or IngestConfig()
    engine = engine or EngineConfig()
    started = time.perf_counter()
    prov_started = now_iso()  # the activity starts before the file is read
    source = Path(source)
    src = open_source(source)  # validates before anything is written
    try:
        refuse_foreign_folder(store)
        file_sha = sha256_file(source)
        key = ingest_key(file_sha, config)
        existing = group_info(store, SCAN_GROUP)
        if existing is not None and not force:
            if existing.get("key") == key:
                return _skipped_result(store, existing)
            raise StoreError(store, "already holds a different scan (another file or other parameters): write "
                                    "elsewhere (`retouch run SCAN --out DIR`, or another STORE) or pass --force "
                                    "to replace it")
        previous = _previous_store(store)
        if is_local(store):
            work = f"{local_path(store).rstrip('/')}.partial"
        else:
            work = store
            if existing is not None:  # force on a remote store: start from nothing, keeping the history
                fs, path = fs_and_path(store)
                fs.rm(path, recursive=True)
        record = StageRecord("ingest", work, {**asdict(config), "source": source.name}, run_id=run_id,
                             started=prov_started)
        record.invalidate(previous.get("refs", {}))
        restore_history(work, previous.get("history", {}))
        result = _write_scan(src, source, work, key, file_sha, config, engine, record, previous.get("uuid"))
    except InputError:
        _discard_partial(store)
        raise
    finally:
        src.close()
        _close_cached_sources()
    if is_local(store):
        target = Path(local_path(store))
        if target.exists():
            shutil.rmtree(target)
        Path(work).rename(target)
    return IngestResult(**{**asdict(result), "store": store, "provenance": join(store, result.provenance or ""),
                           "seconds": time.perf_counter() - started})


def refuse_foreign_folder(store: str) -> None:
    """A local STORE path that exists must be an empty folder or a Retouch store (its root group's attributes hold
    STORE_ATTR, or it holds a `scan/` group): ingest replaces the store when it is done, so any other folder (a
    folder of photographs named by mistake) or a file would be deleted. Nor may it lie inside another Retouch
    store. StoreError otherwise, before anything is written."""
    if not is_local(store):
        return
    target = Path(local_path(store))
    outer = next((p for p in target.resolve().parents if _is_retouch_store(p)), None)
    if outer is not None:
        raise StoreError(store, f"lies inside the Retouch store {outer}: a store is never written into another "
                                "(choose a path beside it)")
    if not target.exists():
        return
    if not target.is_dir():
        raise StoreError(store, "is a file, not a store folder: choose another path")
    if not any(target.iterdir()) or (target / SCAN_GROUP / "zarr.json").is_file():
        return
    if not _is_retouch_store(target):
        raise StoreError(store, "is a folder that is not a Retouch store and not empty: ingest would replace it "
                                "whole; choose another path (a new or empty folder)")


def _is_retouch_store(folder: Path) -> bool:
    """True for a folder whose root group's attributes hold STORE_ATTR."""
    try:
        attributes = json.loads((folder / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(attributes, dict) and STORE_ATTR in attributes


def _previous_store(store: str) -> dict[str, Any]:
    """What a forced re-ingest keeps of the store it replaces: its UUID, its history, the outputs it invalidates."""
    try:
        attrs = dict(zarr.open_group(store, mode="r").attrs.get(STORE_ATTR) or {})
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        attrs = {}
    refs: dict[str, Any] = {}
    for group in ("scan", "damage", "mask_edited", "restored"):
        refs.update(marker_refs(group_info(store, group)))
    return {"uuid": attrs.get("uuid"), "history": read_history(store), "refs": refs}


def _write_scan(src: ScanSource, source: Path, work: str, key: str, file_sha: str, config: IngestConfig,
                engine: EngineConfig, record: StageRecord, store_uuid: str | None) -> IngestResult:
    height, width, channels = src.shape
    levels = level_shapes(height, width, channels, config.top_level_max_side)
    ledger = Ledger(work, "ingest", key)
    done = ledger.start()
    root = zarr.open_group(work, mode="a")
    uuid_now = (root.attrs.get(STORE_ATTR) or {}).get("uuid")  # a resumed ingest keeps the UUID it minted
    root.attrs[STORE_ATTR] = {**root.attrs.get(STORE_ATTR, {}), "version": __version__,
                              "uuid": store_uuid or uuid_now or str(uuid.uuid4())}
    record.use_file("source", source, file_sha, format=src.format)
    if done and SCAN_GROUP in root:
        group = root[SCAN_GROUP]
    else:
        group = create_pyramid(root, SCAN_GROUP, levels, src.dtype, config.chunk,
                               pixel_size_um=config.pixel_size_um,
                               compression_level=config.compression_level,
                               channels=colour_channels(channels), shard_chunks=config.shard_chunks)
    level0: dict[str, str] = {}
    tasks = []
    for region in _level0_regions(src, group["0"]):
        task_id = f"0-{region[0] // config.chunk}-{region[2] // config.chunk}"
        if task_id in done:
            level0.update(json.loads(done[task_id]))
            continue
        tasks.append(dask.delayed(_copy_level0, pure=False)(
            str(source), group["0"], region, config.chunk, ledger, task_id, dask_key_name=f"copy-{task_id}"))
    for result in run_tasks(tasks, f"ingest {source.name}", engine, cleanup=_close_cached_sources):
        level0.update(result)
    digests = {"0": level0, **build_pyramid_levels(group, levels, config.chunk, ledger, done, engine,
                                                   f"ingest {source.name}")}
    combined = {level.path: record.generated_array(group[level.path], f"{SCAN_GROUP}/{level.path}",
                                                   digests[level.path],
                                                   ["source"] if level.path == "0" else [f"{SCAN_GROUP}/0"])
                for level in levels}
    prov_doc = record.write()
    info = {
        "stage": "ingest",
        "key": key,
        "source": str(source.resolve()),
        "source_sha256": file_sha,
        "source_format": src.format,
        "source_metadata": src.metadata,
        "digests": combined,
        "chunk": config.chunk,
        "params": asdict(config),
        "version": __version__,
    }
    mark_complete(group, {**info, "provenance": prov_doc, "prov": record.marker(prov_doc)})
    ledger.clear()
    return IngestResult(store=work, skipped=False, shape=levels[0].shape, dtype=str(src.dtype),
                        levels=len(levels), digest=combined["0"], key=key, provenance=prov_doc,
                        resumed_tasks=len(done), source_metadata=src.metadata)


def _skipped_result(store: str, info: dict[str, Any]) -> IngestResult:
    group = zarr.open_group(store, mode="r", path=SCAN_GROUP)
    level0 = group["0"]
    return IngestResult(store=store, skipped=True, shape=tuple(level0.shape), dtype=str(level0.dtype),
                        levels=len(info.get("digests", {})), digest=info["digests"]["0"], key=info["key"],
                        provenance=document_url(store, info.get("provenance")),
                        source_metadata=info.get("source_metadata", {}))


def _discard_partial(store: str) -> None:
    """Bad input: remove what this run wrote, so nothing is left behind."""
    if is_local(store):
        partial = Path(f"{local_path(store).rstrip('/')}.partial")
        if partial.exists():
            shutil.rmtree(partial)


def _close_cached_sources() -> None:
    with _SOURCES_LOCK:
        for src in _SOURCES.values():
            src.close()
        _SOURCES.clear()
