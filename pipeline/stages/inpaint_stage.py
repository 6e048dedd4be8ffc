"""Inpaint stage over a store: `scan/` + a damage mask -> `restored/`, equal to the scan outside the mask.

The mask is the detected label map (`scan/labels/damage`, nonzero = fill) or a conservator's edited mask
(PNG/TIFF/Zarr of the scan's size), which is first written into the store as `mask_edited/` so that it
has a digest and a pyramid like any other stage output. Which chunks hold damage is read from a
low-resolution level of the max-downsampled mask, so undamaged chunks are never read at full resolution
for the decision: they are copied, and only damaged ones run through the network (with a halo).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from pipeline import __version__
from pipeline.engine.ledger import Ledger, resume_group
from pipeline.engine.pyramid import build_pyramid_levels
from pipeline.engine.runner import EngineConfig
from pipeline.engine.tiling import (
    ChunkJob,
    ModelCache,
    regions_with_coverage,
    run_chunk_jobs,
    torch_threads_per_worker,
)
from pipeline.io.ome import colour_channels
from pipeline.io.staging import partial_name, recover, remove, swap_in
from pipeline.io.store import (
    DAMAGE,
    DAMAGE_LABELS,
    chunk_digests,
    create_levels,
    group_info,
    is_local,
    join,
    levels_like,
    local_path,
    mark_complete,
    open_complete,
    open_damage_labels,
    pixel_size_of,
    shard_chunks_of,
    write_regions,
)
from pipeline.provenance import StageRecord, document_url, input_ref, marker_refs, now_iso, weights_ref
from pipeline.stages.detect import STALE_KEY, StageResult, check_device, default_manifest
from pipeline.stages.inpaint_grain import GrainConfig, add_field, grain_field

RESTORED_GROUP = "restored"
EDITED_MASK_GROUP = "mask_edited"


@dataclass(frozen=True)
class InpaintStageConfig:
    """Weights, model tile/overlap inside a chunk, hole dilation (px), chunk halo, device, strategy.

    strategy "boxes" runs the network on boxes around connected damage (`margin` px of context, equal-shape
    boxes `batch` at a time; boxes larger than `tile` are tiled); "tiles" runs every tile of the chunk's
    overlapping grid that holds a hole pixel (the earlier path, kept for comparison).
    `grain` > 0 adds that strength of the copied high-pass texture of the surrounding paint
    (`pipeline.stages.inpaint_grain`, band sigma `grain_sigma` px) to the fill (default 1); 0 leaves it off.
    `precision`: the network in 'fp32', or under 'bf16' autocast, or 'auto' (bf16 on GPUs and on CPUs with native
    bf16, `pipeline.stages.detect_infer.resolve_precision`).
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
    grain: float = 1.0
    grain_sigma: float = 3.0
    precision: str = "fp32"
    manifest: str = field(default_factory=default_manifest)

    def __post_init__(self) -> None:
        from pipeline.stages.inpaint_boxes import check_strategy

        check_strategy(self.strategy)
        if self.margin < 0 or self.batch < 1:
            raise ValueError(f"need margin >= 0 and batch >= 1, got {self.margin} and {self.batch}")
        if self.tile < 32 or not 0 <= self.overlap < self.tile:
            raise ValueError(f"need tile >= 32 and 0 <= overlap < tile, got {self.tile}/{self.overlap}")
        if self.dilate < 0 or self.halo < self.dilate:
            raise ValueError(f"need 0 <= dilate <= halo, got dilate {self.dilate}, halo {self.halo}")
        self.grain_config()  # raises on a bad strength or sigma
        from pipeline.stages.detect_infer import PRECISIONS

        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    @property
    def bf16(self) -> bool:
        """Whether the network runs under bf16 autocast on this machine (`precision` resolved)."""
        from pipeline.stages.detect_infer import resolve_precision

        return resolve_precision(self.precision, self.device) == "bf16"

    def grain_config(self) -> GrainConfig:
        """The texture layer's settings: strength `grain`, band sigma `grain_sigma`, the rest its defaults."""
        return GrainConfig(alpha=self.grain, sigma=self.grain_sigma)

    @property
    def grain_halo(self) -> int:
        """The halo (px) the scan and mask are read with for the grain: all that it reads (`GrainConfig.span`),
        so chunks agree where they meet; the fill itself keeps `halo`."""
        return max(self.halo, self.grain_config().span) if self.grain else self.halo

    def key_params(self) -> dict[str, Any]:
        """The settings that decide `restored/`'s bytes: all but the manifest path, and the grain's only when on
        (so a store restored before the option existed keeps its key), and the precision only when the network
        runs in bf16 (resolved on this machine: fp32 keeps the key it had before the option existed)."""
        params = {k: v for k, v in asdict(self).items() if k not in ("manifest", "precision")}
        if self.bf16:
            params["precision"] = "bf16"
        if not self.grain:
            del params["grain"], params["grain_sigma"]
        else:  # the texture layer's every setting (a changed default changes the bytes)
            params["grain_config"] = asdict(self.grain_config())
        return params


@dataclass(frozen=True)
class _InpaintChunk:
    config: InpaintStageConfig  # precision resolved (inpaint_store): 'fp32' or 'bf16'
    threads: int

    def __call__(self, scan: np.ndarray, mask: np.ndarray, *context: np.ndarray,
                 origin: tuple[int, int] = (0, 0)) -> tuple[list[np.ndarray], dict[str, Any]]:
        """Fill one chunk (`scan`, `mask` read with `halo`); with the grain on, `context` is the scan and mask
        read with `grain_halo`, and `origin` the image position of `scan`'s first pixel."""
        from pipeline.stages.inpaint_boxes import BoxStats, network_fill

        cfg = self.config
        bf16 = cfg.precision == "bf16"
        model, _ = ModelCache.get(cfg.weights, cfg.manifest, cfg.device, self.threads)
        image = np.moveaxis(scan, 0, -1)  # (h, w, C), scan dtype
        hole = mask[0] > 0  # (h, w)
        halo = cfg.halo
        core = (halo, hole.shape[0] - halo, halo, hole.shape[1] - halo)
        facts: dict[str, Any] = {"hole_pixels": int(hole[core[0] : core[1], core[2] : core[3]].sum())}
        stats = BoxStats()
        out = network_fill(image, hole, model, strategy=cfg.strategy, tile=cfg.tile, overlap=cfg.overlap,
                           dilate=cfg.dilate, margin=cfg.margin, batch=cfg.batch, core=core, stats=stats, bf16=bf16)
        if cfg.strategy == "boxes":
            facts.update(boxes=stats.boxes, network_calls=stats.network_calls,
                         network_pixels=stats.network_pixels)
        if cfg.grain:
            from pipeline.stages.inpaint import dilate_hole

            wide_scan, wide_mask = context
            extra = cfg.grain_halo - halo
            where = np.zeros(wide_mask.shape[1:], bool)  # the chunk itself
            gh = cfg.grain_halo
            where[gh : where.shape[0] - gh, gh : where.shape[1] - gh] = True
            field = grain_field(np.moveaxis(wide_scan, 0, -1), dilate_hole(wide_mask[0] > 0, cfg.dilate),
                                cfg.grain_config(), (origin[0] - extra, origin[1] - extra), where)
            field = field[extra : extra + hole.shape[0], extra : extra + hole.shape[1]]
            out = add_field(out, dilate_hole(hole, cfg.dilate), field)
        changed = (out != image).any(axis=-1)[core[0] : core[1], core[2] : core[3]]
        facts["changed_pixels"] = int(changed.sum())
        return [np.ascontiguousarray(np.moveaxis(out, -1, 0))], facts


def _copy_chunk(scan: np.ndarray, mask: np.ndarray) -> tuple[list[np.ndarray], dict[str, Any]]:
    """An undamaged chunk: the scan's pixels, unchanged."""
    return [scan], {"hole_pixels": 0, "changed_pixels": 0}


MAX_MASK_FRACTION = 0.5  # an edited mask marking more than this share of the image is refused unless allowed


def write_edited_mask(store: str, mask_path: Path, height: int, width: int, chunk: int, engine: EngineConfig,
                      record: StageRecord, allow_large: bool = False,
                      allow_empty: bool = False) -> tuple[str, dict[str, Any]]:
    """Store a conservator's mask as `mask_edited/` (labels pyramid, nonzero = fill); its digest and what
    was read (channels, threshold rule, pixels marked). `record` (the inpaint run) reads the mask file and
    generates the `mask_edited/` arrays.

    It is written aside and swapped in only once read whole and accepted: a mask that marks no pixel, or
    more than half the image (an inverted or blank-white mask), is refused in one line naming the file
    unless `allow_empty` / `allow_large`, and the previous `mask_edited/` then stays as it was."""
    from pipeline.io.edited_mask import EditedMask

    mask = EditedMask(mask_path, (height, width))  # InputError names the file on a bad mask
    record.invalidate(marker_refs(group_info(store, EDITED_MASK_GROUP)))
    if mask_path.is_file():
        record.use_file("mask file", mask_path)
    else:  # a Zarr folder: named, its content digested below as mask_edited/0
        record.use("mask file", {"id": f"store:input/mask@{record.activity}", "attrs": {"file": mask_path.name}})
    root = zarr.open_group(store, mode="a")
    scan = open_complete(store, "scan")
    levels = levels_like(scan, 1)
    staging = partial_name(EDITED_MASK_GROUP)
    group = root.create_group(staging, overwrite=True)
    create_levels(group, EDITED_MASK_GROUP, levels, np.uint8, chunk, pixel_size_of(scan), downsampling="max",
                  shard_chunks=shard_chunks_of(scan["0"]))
    level0 = group["0"]
    digests = {}
    marked = 0
    try:
        # one write block (shard, or chunk) at a time, written whole: memory ~ one block, whatever the scan
        for y0, y1, x0, x1 in write_regions(level0):
            block = mask.hole(y0, y1, x0, x1)[None].astype(np.uint8)
            marked += int(block.sum())
            level0[:, y0:y1, x0:x1] = block
            digests.update(chunk_digests(block, (y0, y1, x0, x1), chunk))
        read = {"file": str(mask_path), "channels": mask.channels, "rule": mask.rule,
                "pixels_marked": marked, "percent_marked": 100.0 * marked / (height * width)}
        _check_coverage(mask_path, read, allow_large, allow_empty)
    except BaseException:
        remove(store, staging)
        raise
    finally:
        mask.close()
    ledger = Ledger(store, "mask-edited", "pyramid")
    per_level = build_pyramid_levels(group, levels, chunk, ledger, ledger.start(), engine, "edited mask", "max")
    ledger.clear()
    path0 = f"{EDITED_MASK_GROUP}/0"
    digest = record.generated_array(level0, path0, digests, ["mask file"], stored_at=f"{staging}/0")
    for path, level_digests in per_level.items():
        record.generated_array(group[path], f"{EDITED_MASK_GROUP}/{path}", level_digests, [path0],
                               stored_at=f"{staging}/{path}")
    mark_complete(group, {"stage": "mask-edited", "source": mask_path.name, "digests": {"0": digest},
                          "read": read, "prov": record.marker(record.document_path)})
    swap_in(store, EDITED_MASK_GROUP)
    return digest, read


def _check_coverage(path: Path, read: dict[str, Any], allow_large: bool, allow_empty: bool) -> None:
    """Refuse a mask that marks nothing or most of the image, unless the user said so."""
    from pipeline.errors import InputError

    seen = f"{read['channels']} channel(s), {read['rule']}"
    if read["pixels_marked"] == 0 and not allow_empty:
        raise InputError(path, f"mask marks no pixel ({seen}): restored/ would be a copy of the scan; "
                               "pass --allow-empty-mask if that is what you want")
    if read["percent_marked"] > 100 * MAX_MASK_FRACTION and not allow_large:
        raise InputError(path, f"mask marks {read['percent_marked']:.1f} % of the image ({seen}), more than "
                               f"{100 * MAX_MASK_FRACTION:.0f} %: inverted or blank? pass --allow-large-mask "
                               "if you mean it")


def is_store_edited_mask(store: str, mask: Path) -> bool:
    """Whether `mask` is this store's own complete `mask_edited/` (used in place, never rewritten from itself)."""
    if not is_local(store) or group_info(store, EDITED_MASK_GROUP) is None:
        return False
    own = Path(local_path(store)) / EDITED_MASK_GROUP
    return mask.exists() and mask.resolve() == own.resolve()


def coverage_level(group: zarr.Group, chunk: int) -> tuple[np.ndarray, int]:
    """The smallest pyramid level whose downsampling factor still divides the chunk, read whole."""
    scale, path = 1, "0"
    for level in sorted(group.array_keys(), key=int):
        factor = 2 ** int(level)
        if chunk % factor == 0:
            scale, path = factor, level
    return np.asarray(group[path][0]), scale


def inpaint_key(scan_digest: str, mask_digest: str, config: InpaintStageConfig, weights_sha: str) -> str:
    payload = json.dumps({"scan": scan_digest, "mask": mask_digest, "config": config.key_params(),
                          "weights": weights_sha,
                          "version": __version__}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def inpaint_store(store: str, config: InpaintStageConfig | None = None, engine: EngineConfig | None = None,
                  mask: Path | None = None, force: bool = False, run_id: str | None = None,
                  allow_large_mask: bool = False, allow_empty_mask: bool = False) -> StageResult:
    """Fill the damage of `<store>/scan/` into `<store>/restored/` (detected mask, or the edited `mask`).

    A recompute writes `restored.partial/` and swaps it in when complete: until then the previous
    `restored/` stays as it was (weights are checked before anything is written)."""
    from models.weights import get_entry, verify_weights

    config = config or InpaintStageConfig()
    check_device(config.device)
    config = replace(config, precision="bf16" if config.bf16 else "fp32")  # 'auto' decided for this machine
    engine = engine or EngineConfig()
    started = time.perf_counter()
    params = {k: v for k, v in asdict(config).items() if k != "manifest"}
    record = StageRecord("inpaint", store, {**params, "mask": Path(mask).name if mask else DAMAGE_LABELS},
                         run_id=run_id, started=now_iso())
    for name in (RESTORED_GROUP, EDITED_MASK_GROUP):
        recover(store, name)
    scan = open_complete(store, "scan")
    scan_info = group_info(store, "scan")
    level0 = scan["0"]
    c, height, width = level0.shape
    chunk = level0.chunks[1]
    entry = get_entry(config.weights, Path(config.manifest), kind="inpainter")
    mask_read = None
    if mask is not None and is_store_edited_mask(store, Path(mask)):  # corrected in `retouch review`: as is
        mask_digest = group_info(store, EDITED_MASK_GROUP)["digests"]["0"]
        mask_group, mask_name = open_complete(store, EDITED_MASK_GROUP), EDITED_MASK_GROUP
    elif mask is not None:
        verify_weights(entry, Path(config.manifest).parent)  # a new mask is swapped in: not for bad weights
        mask_digest, mask_read = write_edited_mask(store, Path(mask), height, width, chunk, engine, record,
                                                   allow_large_mask, allow_empty_mask)
        mask_group, mask_name = open_complete(store, EDITED_MASK_GROUP), EDITED_MASK_GROUP
        mask_ref = record.outputs[f"{EDITED_MASK_GROUP}/0"]
    else:
        damage_info = group_info(store, DAMAGE)
        mask_group, mask_name = open_damage_labels(store), DAMAGE_LABELS
        mask_digest = damage_info["digests"]["labels/0"]
        mask_ref = input_ref(damage_info, f"{DAMAGE_LABELS}/0", mask_digest)
    key = inpaint_key(scan_info["digests"]["0"], mask_digest, config, entry.sha256)
    existing = group_info(store, RESTORED_GROUP)
    if existing and existing.get("key") == key and not force and not existing.get(STALE_KEY):
        if mask is not None:  # the edited mask was written again: its record says so
            record.write()
        return StageResult("inpaint", store, True, key, existing["digests"], existing["summary"],
                           document_url(store, existing.get("provenance")), time.perf_counter() - started)
    if mask_read is None:  # (a new edited mask had them checked before it was stored)
        verify_weights(entry, Path(config.manifest).parent)  # before anything is written
    record.invalidate(marker_refs(existing))
    record.use("scan/0", input_ref(scan_info, "scan/0", scan_info["digests"]["0"]))
    if mask is None:
        record.use("mask", mask_ref)
    record.use("weights", weights_ref(entry.name, entry.sha256, entry.architecture, entry.file))
    ledger = Ledger(store, "inpaint", key)
    levels = levels_like(scan, c)
    group, done, fresh = resume_group(store, RESTORED_GROUP, ledger)
    if fresh:
        create_levels(group, RESTORED_GROUP, levels, level0.dtype, chunk, pixel_size_of(scan),
                      channels=colour_channels(c), shard_chunks=shard_chunks_of(level0))
    # dilation reaches `dilate` px beyond the mask: a chunk next to damage may change too
    coverage, scale = coverage_level(mask_group, chunk)
    if config.dilate:
        from pipeline.stages.inpaint import dilate_hole

        coverage = dilate_hole(coverage > 0, -(-config.dilate // scale)).astype(np.uint8)
    damaged, clean = regions_with_coverage(coverage, scale, level0.shape, chunk)
    threads = torch_threads_per_worker(engine)
    inputs, halos = [level0, mask_group["0"]], [config.halo] * 2
    if config.grain:  # the grain reads the scan and mask further than the fill
        inputs, halos = inputs * 2, halos + [config.grain_halo] * 2
    fill = ChunkJob(inputs, [group["0"]], _InpaintChunk(config, threads), config.halo, chunk, origin=True,
                    halos=halos)
    copy = ChunkJob([level0, mask_group["0"]], [group["0"]], _copy_chunk, 0, chunk)
    # one call: a shard can hold both damaged and clean chunks, and only one task may write it
    records = run_chunk_jobs([(fill, damaged), (copy, clean)], ledger, done,
                             f"inpaint ({len(damaged)} damaged, {len(clean)} clean chunks)", engine)
    mask_source = f"{EDITED_MASK_GROUP}/0" if mask is not None else "mask"
    chunk_digests0 = {cid: r["digests"][0] for cid, r in records.items()}
    staged = partial_name(RESTORED_GROUP)  # sidecars beside the arrays, swapped in with them
    digests = {"0": record.generated_array(group["0"], "restored/0", chunk_digests0,
                                           ["scan/0", mask_source, "weights"], stored_at=f"{staged}/0")}
    for path, level_digests in build_pyramid_levels(group, levels, chunk, ledger, done, engine,
                                                    "inpaint pyramid").items():
        digests[path] = record.generated_array(group[path], f"{RESTORED_GROUP}/{path}", level_digests, ["restored/0"],
                                               stored_at=f"{staged}/{path}")
    summary = {"chunks_total": len(damaged) + len(clean), "chunks_inpainted": len(damaged),
               "chunks_copied": len(clean), "mask": mask_name,
               "hole_pixels": sum(r["facts"]["hole_pixels"] for r in records.values()),
               # the pixels restored/ really changed: the dilated mask, less those the network left as they were
               "pixels_changed": sum(r["facts"].get("changed_pixels", 0) for r in records.values()),
               "strategy": config.strategy, "precision": config.precision}
    if config.grain:
        summary["grain"] = {"alpha": config.grain, "sigma": config.grain_sigma}
    if config.strategy == "boxes":  # what the network ran: boxes, calls, and pixels (before padding)
        for name in ("boxes", "network_calls", "network_pixels"):
            summary[name] = sum(r["facts"].get(name, 0) for r in records.values())
    if mask_read is not None:
        summary["mask_read"] = mask_read
    prov = record.write()
    mark_complete(group, {"stage": "inpaint", "key": key, "digests": digests, "summary": summary,
                          "weights": entry.name, "weights_sha256": entry.sha256, "mask": mask_name,
                          "mask_digest": mask_digest, "provenance": prov, "prov": record.marker(prov),
                          "inpainted_chunks": sorted(f"{r[0] // chunk}-{r[2] // chunk}" for r in damaged),
                          "params": params})
    swap_in(store, RESTORED_GROUP)
    ledger.clear()
    ModelCache.clear()
    resumed = sum(1 for task_id in done if task_id.startswith("0-"))
    return StageResult("inpaint", store, False, key, digests, summary, join(store, prov),
                       time.perf_counter() - started,
                       chunks_run=len(damaged) - resumed, chunks_resumed=resumed, chunks_copied=len(clean))
