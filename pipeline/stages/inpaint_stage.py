"""Inpaint stage over a store: `scan/` + a damage mask -> `restored/`, equal to the scan outside the mask.

The mask is the detected label map (`damage/labels`, nonzero = fill) or a conservator's edited mask
(PNG/TIFF/Zarr of the scan's size), which is first written into the store as `mask_edited/` so that it
has a digest and a pyramid like any other stage output. Which chunks hold damage is read from a
low-resolution level of the max-downsampled mask, so undamaged chunks are never read at full resolution
for the decision: they are copied, and only damaged ones run through the network (with a halo).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from pipeline import __version__
from pipeline.engine.ledger import Ledger
from pipeline.engine.pyramid import build_pyramid_levels
from pipeline.engine.runner import EngineConfig
from pipeline.engine.tiling import ChunkJob, ModelCache, regions_with_coverage, run_chunks, torch_threads_per_worker
from pipeline.io.store import (
    block_digest,
    combine_digests,
    create_pyramid,
    group_info,
    levels_like,
    mark_complete,
    open_complete,
)
from pipeline.provenance import StageRecord, file_entity
from pipeline.stages.detect import StageResult, check_device, default_manifest

RESTORED_GROUP = "restored"
EDITED_MASK_GROUP = "mask_edited"


@dataclass(frozen=True)
class InpaintStageConfig:
    """Weights, model tile/overlap inside a chunk, hole dilation (px), chunk halo, device, strategy.

    strategy "boxes" runs the network on boxes around connected damage (`margin` px of context, equal-shape
    boxes `batch` at a time; boxes larger than `tile` are tiled); "tiles" runs every tile of the chunk's
    overlapping grid that holds a hole pixel (the earlier path, kept for comparison).
    """

    weights: str = "inpainter-pconv"
    tile: int = 256
    overlap: int = 64
    dilate: int = 2
    halo: int = 64
    device: str = "cpu"
    strategy: str = "boxes"
    margin: int = 24
    batch: int = 8
    manifest: str = field(default_factory=default_manifest)

    def __post_init__(self) -> None:
        if self.strategy not in ("boxes", "tiles"):
            raise ValueError(f"strategy must be 'boxes' or 'tiles', got {self.strategy!r}")
        if self.margin < 0 or self.batch < 1:
            raise ValueError(f"need margin >= 0 and batch >= 1, got {self.margin} and {self.batch}")
        if self.tile < 32 or not 0 <= self.overlap < self.tile:
            raise ValueError(f"need tile >= 32 and 0 <= overlap < tile, got {self.tile}/{self.overlap}")
        if self.dilate < 0 or self.halo < self.dilate:
            raise ValueError(f"need 0 <= dilate <= halo, got dilate {self.dilate}, halo {self.halo}")


@dataclass(frozen=True)
class _InpaintChunk:
    config: InpaintStageConfig
    threads: int

    def __call__(self, scan: np.ndarray, mask: np.ndarray) -> tuple[list[np.ndarray], dict[str, Any]]:
        from pipeline.stages.inpaint import inpaint_image
        from pipeline.stages.inpaint_boxes import BoxStats, inpaint_boxes

        cfg = self.config
        model, _ = ModelCache.get(cfg.weights, cfg.manifest, cfg.device, self.threads)
        image = np.moveaxis(scan, 0, -1)  # (h, w, C), scan dtype
        hole = mask[0] > 0  # (h, w)
        halo = cfg.halo
        core = (halo, hole.shape[0] - halo, halo, hole.shape[1] - halo)
        facts: dict[str, Any] = {"hole_pixels": int(hole[core[0] : core[1], core[2] : core[3]].sum())}
        if cfg.strategy == "tiles":
            out = inpaint_image(image, hole, model, tile=cfg.tile, overlap=cfg.overlap, dilate=cfg.dilate)
        else:
            stats = BoxStats()
            out = inpaint_boxes(image, hole, model, tile=cfg.tile, overlap=cfg.overlap, dilate=cfg.dilate,
                                margin=cfg.margin, batch=cfg.batch, stats=stats, core=core)
            facts.update(boxes=stats.boxes, network_calls=stats.network_calls,
                         network_pixels=stats.network_pixels)
        return [np.ascontiguousarray(np.moveaxis(out, -1, 0))], facts


def _copy_chunk(scan: np.ndarray, mask: np.ndarray) -> tuple[list[np.ndarray], dict[str, Any]]:
    """An undamaged chunk: the scan's pixels, unchanged."""
    return [scan], {"hole_pixels": 0}


def write_edited_mask(store: str, mask_path: Path, height: int, width: int, chunk: int,
                      engine: EngineConfig) -> str:
    """Store a conservator's mask as `mask_edited/` (labels pyramid, nonzero = fill); returns its digest."""
    from pipeline.io.edited_mask import EditedMask

    mask = EditedMask(mask_path, (height, width))  # InputError names the file on a bad mask
    root = zarr.open_group(store, mode="a")
    levels = levels_like(open_complete(store, "scan"), 1)
    group = create_pyramid(root, EDITED_MASK_GROUP, levels, np.uint8, chunk)
    level0 = group["0"]
    digests = {}
    try:
        for y0 in range(0, height, chunk):  # one band of chunk rows at a time: memory ~ chunk x width
            band = mask.hole(y0, min(y0 + chunk, height), 0, width)[None].astype(np.uint8)
            level0[:, y0 : y0 + band.shape[1], :] = band
            for x0 in range(0, width, chunk):
                digests[f"{y0 // chunk}-{x0 // chunk}"] = block_digest(band[:, :, x0 : x0 + chunk])
    finally:
        mask.close()
    ledger = Ledger(store, "mask-edited", "pyramid")
    build_pyramid_levels(group, levels, chunk, ledger, ledger.start(), engine, "edited mask", "max")
    ledger.clear()
    digest = combine_digests(digests)
    mark_complete(group, {"stage": "mask-edited", "source": str(mask_path), "digests": {"0": digest},
                          "source_file": file_entity(mask_path) if mask_path.is_file() else str(mask_path)})
    return digest


def coverage_level(group: zarr.Group, chunk: int) -> tuple[np.ndarray, int]:
    """The smallest pyramid level whose downsampling factor still divides the chunk, read whole."""
    scale, path = 1, "0"
    for level in sorted(group.array_keys(), key=int):
        factor = 2 ** int(level)
        if chunk % factor == 0:
            scale, path = factor, level
    return np.asarray(group[path][0]), scale


def inpaint_key(scan_digest: str, mask_digest: str, config: InpaintStageConfig, weights_sha: str) -> str:
    params = {k: v for k, v in asdict(config).items() if k != "manifest"}
    payload = json.dumps({"scan": scan_digest, "mask": mask_digest, "config": params, "weights": weights_sha,
                          "version": __version__}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def inpaint_store(store: str, config: InpaintStageConfig | None = None, engine: EngineConfig | None = None,
                  mask: Path | None = None, force: bool = False, run_id: str | None = None) -> StageResult:
    """Fill the damage of `<store>/scan/` into `<store>/restored/` (detected mask, or the edited `mask`)."""
    from models.weights import get_entry

    config = config or InpaintStageConfig()
    check_device(config.device)
    engine = engine or EngineConfig()
    started = time.perf_counter()
    scan = open_complete(store, "scan")
    scan_info = group_info(store, "scan")
    level0 = scan["0"]
    c, height, width = level0.shape
    chunk = level0.chunks[1]
    if mask is not None:
        mask_digest = write_edited_mask(store, Path(mask), height, width, chunk, engine)
        mask_group, mask_name = open_complete(store, EDITED_MASK_GROUP), EDITED_MASK_GROUP
    else:
        damage = open_complete(store, "damage")
        mask_digest = group_info(store, "damage")["digests"]["labels/0"]
        mask_group, mask_name = damage["labels"], "damage/labels"
    entry = get_entry(config.weights, Path(config.manifest))
    key = inpaint_key(scan_info["digests"]["0"], mask_digest, config, entry.sha256)
    existing = group_info(store, RESTORED_GROUP)
    if existing and existing.get("key") == key and not force:
        return StageResult("inpaint", store, True, key, existing["digests"], existing["summary"],
                           existing.get("provenance"), time.perf_counter() - started)
    ledger = Ledger(store, "inpaint", key)
    done = ledger.start()
    root = zarr.open_group(store, mode="a")
    levels = levels_like(scan, c)
    if done and RESTORED_GROUP in root:
        group = root[RESTORED_GROUP]
    else:
        group = create_pyramid(root, RESTORED_GROUP, levels, level0.dtype, chunk)
    # dilation reaches `dilate` px beyond the mask: a chunk next to damage may change too
    coverage, scale = coverage_level(mask_group, chunk)
    if config.dilate:
        from pipeline.stages.inpaint import dilate_hole

        coverage = dilate_hole(coverage > 0, -(-config.dilate // scale)).astype(np.uint8)
    damaged, clean = regions_with_coverage(coverage, scale, level0.shape, chunk)
    threads = torch_threads_per_worker(engine)
    fill = ChunkJob([level0, mask_group["0"]], [group["0"]], _InpaintChunk(config, threads), config.halo, chunk)
    copy = ChunkJob([level0, mask_group["0"]], [group["0"]], _copy_chunk, 0, chunk)
    records = run_chunks(fill, damaged, ledger, done, "inpaint (damaged chunks)", engine)
    records.update(run_chunks(copy, clean, ledger, done, "inpaint (copy clean chunks)", engine))
    digests = {"0": combine_digests({cid: r["digests"][0] for cid, r in records.items()})}
    for path, chunk_digests in build_pyramid_levels(group, levels, chunk, ledger, done, engine,
                                                    "inpaint pyramid").items():
        digests[path] = combine_digests(chunk_digests)
    summary = {"chunks_total": len(damaged) + len(clean), "chunks_inpainted": len(damaged),
               "chunks_copied": len(clean), "mask": mask_name,
               "hole_pixels": sum(r["facts"]["hole_pixels"] for r in records.values()),
               "strategy": config.strategy}
    if config.strategy == "boxes":
        for name in ("boxes", "network_calls", "network_pixels"):
            summary[name] = sum(r["facts"].get(name, 0) for r in records.values())
    record = StageRecord("inpaint", {**asdict(config), "weights_sha256": entry.sha256,
                                     "mask": str(mask) if mask else mask_name}, run_id=run_id)
    record.used("scan/0", path="scan/0", sha256_chunks=scan_info["digests"]["0"])
    record.used(f"{mask_name}/0", path=f"{mask_name}/0", sha256_chunks=mask_digest)
    record.used(f"weights/{entry.name}", file=entry.file, sha256=entry.sha256, architecture=entry.architecture)
    record.generated("restored/0", path="restored/0", sha256_chunks=digests["0"], shape=list(level0.shape),
                     dtype=str(level0.dtype))
    prov = record.write(store)
    mark_complete(group, {"stage": "inpaint", "key": key, "digests": digests, "summary": summary,
                          "weights": entry.name, "weights_sha256": entry.sha256, "mask": mask_name,
                          "mask_digest": mask_digest, "provenance": prov,
                          "params": {k: v for k, v in asdict(config).items() if k != "manifest"}})
    ledger.clear()
    ModelCache.clear()
    resumed = sum(1 for task_id in done if task_id.startswith("0-"))
    return StageResult("inpaint", store, False, key, digests, summary, prov, time.perf_counter() - started,
                       chunks_run=len(damaged) - resumed, chunks_resumed=resumed, chunks_copied=len(clean))
