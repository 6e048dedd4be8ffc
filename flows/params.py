"""Typed flow parameters: the Prefect UI shows each model as a form with defaults and descriptions."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.engine.runner import MAX_WORKERS_PER_CORE, EngineConfig, local_cores
from pipeline.stages.adapt import (
    ADAPT_BASE,
    ADD,
    ADD_LOSS,
    BACKGROUND,
    BESIDE,
    CLAMP_LOSS,
    GATE_LOSS,
    GATE_SIGMA,
    REACH,
    SMOOTH_LOSS,
    SUPPORT_LOSS,
    VETO_BACKGROUND,
    VETO_BACKGROUND_LOSS,
    VETO_JOINED,
    AdaptConfig,
)
from pipeline.stages.detect import (
    DEFAULT_AGREEMENT_AREA,
    DEFAULT_BORDER,
    DEFAULT_COARSE_LOSS,
    DEFAULT_LOSS_AGREEMENT,
    DEFAULT_MIN_CRACK,
    DEFAULT_PAINT_LIKE,
    DEFAULT_SCALE,
    DEFAULT_SECOND_VIEW,
    DEFAULT_STRAIGHT,
    DEFAULT_TTA,
    DEFAULT_WEIGHTS,
    DetectConfig,
)
from pipeline.stages.export import ExportConfig
from pipeline.stages.ingest import IngestConfig
from pipeline.stages.inpaint_stage import InpaintStageConfig

Tta = Literal[1, 2, 4, 8]  # test-time augmentation views (pipeline.stages.detect_infer.VIEWS)
# pipeline.stages.detect_infer.SECOND_VIEWS (a test checks)
SecondView = Literal["mirror", "half-turn", "quarter-turn", "small-mirror", "small-half-turn"]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # every value is written to JSON, which has neither


class _Tiled(_Params):
    """Parameters of a stage that runs its network in overlapping tiles."""

    @model_validator(mode="after")
    def _overlap_within_tile(self) -> _Tiled:
        tile, overlap = getattr(self, "tile"), getattr(self, "overlap")  # noqa: B009  (fields of the subclasses)
        if overlap >= tile:
            raise ValueError(f"overlap ({overlap}) must be smaller than tile ({tile})")
        return self


class EngineParams(_Params):
    workers: int = Field(0, ge=0, description="parallel chunk tasks on this machine (0 = one per core)")
    dask_address: str | None = Field(None, description="address of an existing Dask scheduler to run on")
    progress: bool = Field(True, description="show progress bars in the terminal")

    @field_validator("workers")
    @classmethod
    def _not_beyond_this_machine(cls, workers: int) -> int:
        cores = local_cores()
        if workers > MAX_WORKERS_PER_CORE * cores:  # hundreds of in-process workers never start: the run hangs
            raise ValueError(f"{workers} workers is more than {MAX_WORKERS_PER_CORE} per core of this machine "
                             f"({cores} cores), and every worker holds a model and its chunks in memory; "
                             "0 runs one per core")
        return workers

    def config(self) -> EngineConfig:
        return EngineConfig(workers=self.workers, address=self.dask_address, progress=self.progress)


class IngestParams(_Params):
    chunk: int = Field(1024, ge=64, le=8192, multiple_of=16, description="Zarr chunk side in pixels (y and x)")
    pixel_size_um: float | None = Field(None, gt=0, description="physical pixel size, if known (micrometres)")
    shard_chunks: int = Field(4, ge=0, le=64, description="chunks per shard side for levels larger than one "
                                                          "shard (0 = one file per chunk)")

    def config(self) -> IngestConfig:
        return IngestConfig(chunk=self.chunk, pixel_size_um=self.pixel_size_um, shard_chunks=self.shard_chunks)


class DetectParams(_Tiled):
    weights: str | None = Field(None, description="detector weights (name in the weights manifest); empty: the "
                                                  "store's adapted weights when `adapt` made some, else "
                                                  f"{DEFAULT_WEIGHTS}")
    threshold: float = Field(0.5, gt=0, lt=1, description="probability above which a pixel is labelled damaged")
    tile: int = Field(1216, ge=64, multiple_of=32, description="largest model tile side in px; the default "
                                               "takes a 1024-px chunk and its 96-px halo in one pass")
    overlap: int = Field(64, ge=0, description="overlap between model tiles, blended with a Gaussian window")
    halo: int = Field(96, ge=0, description="context read from neighbouring chunks, px")
    device: str = Field("cpu", description="'cpu' or 'cuda'")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 on GPUs and CPUs with native bf16 (same held-out F1), else fp32")
    batch: int = Field(1, ge=1, le=256,
                       description="model tiles per forward pass (use > 1 on a GPU with a smaller tile)")
    tta: Tta = Field(DEFAULT_TTA, description="test-time augmentation: run every tile in this many flipped "
                                              "orientations and average (slower by that factor, steadier "
                                              "thin-crack maps); 2 = the tile and its second view, 1 = one pass")
    second_view: SecondView = Field(DEFAULT_SECOND_VIEW, description="the second of two views: the tile's mirror "
                                                                     "image, or the tile turned a half or a quarter "
                                                                     "turn, or ('small-') the mirror or half turn "
                                                                     "seen at 13/16 of the tile's side")
    loss_agreement: float = Field(DEFAULT_LOSS_AGREEMENT, ge=0.0, lt=1.0, description=(
        "paint loss is the views' mean only where every view gives it at least this probability, elsewhere the "
        "lowest view's (0 = the mean everywhere)"))
    agreement_area: int = Field(DEFAULT_AGREEMENT_AREA, ge=0, le=1_000_000, description=(
        "paint-loss regions (the views' mean above 0.5) of fewer than this many px keep the mean: the agreement "
        "trims only larger regions (0 = every region)"))
    coarse_loss: bool = Field(DEFAULT_COARSE_LOSS, description=(
        "also look for paint loss at half size (one view), where large losses show their edges, kept where the "
        "full-size pass marks part of them and in the exposed ground's colour; a quarter more network passes where "
        "a loss is marked"))
    min_crack: int = Field(DEFAULT_MIN_CRACK, ge=0, le=96, description="drop craquelure fragments of fewer than this "
                                                                       "many px (8-connected) from the labels")
    straight: int = Field(DEFAULT_STRAIGHT, ge=0, le=100_000, description="drop craquelure components whose "
                          "centre line is a straight line (within 1 px RMS) at least this many px long (0 = keep all)")
    paint_like: int = Field(DEFAULT_PAINT_LIKE, ge=0, le=255, description="drop from the paint-loss labels the "
                            "pixels whose colour is within this many levels of 255 of the paint ringing their region "
                            "(0 = keep all)")
    border: int = Field(DEFAULT_BORDER, ge=0, le=96, description="within this many px of the image border a mark must "
                                                                 "also be seen with the border continued by edge "
                                                                 "copies, not only reflected (0 = off)")
    scale: float = Field(DEFAULT_SCALE, ge=0.1, le=2.0, description="the detector sees the scan resampled by this "
                                                                    "factor (1 = as scanned; 0.5 for a scan whose "
                                                                    "cracks are 2-6 px wide)")

    def config(self) -> DetectConfig:
        return DetectConfig(**self.model_dump())


class AdaptParams(_Params):
    base: str = Field(ADAPT_BASE, description="the detector to adapt (name in the weights manifest)")
    hidden: int = Field(32, ge=0, le=256, description="hidden units of the per-pixel classifier per class "
                                                      "(0 = a linear classifier)")
    steps: int = Field(300, ge=1, le=10000, description="optimiser steps of the fit")
    seed: int = Field(0, description="seed of the pixel sampling and the fit")
    add: float = Field(ADD, gt=0.0, lt=1.0, description="the fitted craquelure head's probability from which it "
                                                        "adds a pixel to the base's detections (higher: adds "
                                                        "less, flags less intact paint)")
    add_loss: float = Field(ADD_LOSS, gt=0.0, lt=1.0, description="the same for the paint-loss head")
    reach: int = Field(REACH, ge=0, le=64, description="px: the craquelure head only extends the base's cracks, "
                       "an addition joining them through others within this many px (0 = it may add anywhere)")
    beside: int = Field(BESIDE, ge=0, le=8, description="px beside a crack the base found, away from its ends, "
                        "where the craquelure head may not add: it lengthens cracks, it does not thicken them "
                        "(0 = it may; needs a reach)")
    support_loss: float = Field(SUPPORT_LOSS, ge=0.0, lt=1.0, description="a region the paint-loss head adds "
                                "counts only where the base gives one of its pixels at least this probability "
                                "(0 = every region counts)")
    background: float = Field(BACKGROUND, ge=0.0, lt=1.0, description="share of the head's negatives taken from "
                              "random unlabelled pixels, most of a painting being intact (higher: adds less intact "
                              "paint, finds a little less)")
    veto_background: float = Field(VETO_BACKGROUND, ge=0.0, lt=1.0, description="share of the clean strokes' "
                                   "craquelure veto's negatives taken from the base's detections among unlabelled "
                                   "pixels (lower: the veto trusts those detections less and removes more like the "
                                   "marked ones)")
    veto_background_loss: float = Field(VETO_BACKGROUND_LOSS, ge=0.0, lt=1.0, description="the same for the "
                                        "paint-loss veto")
    veto_joined: int = Field(VETO_JOINED, ge=0, le=100_000, description="per square of strokes, up to this many of "
                             "the base's cracks that a craquelure stroke touches are among the craquelure veto's "
                             "negatives, so that it keeps the found cracks the strokes continue (0 = none)")
    smooth_loss: float = Field(SMOOTH_LOSS, ge=0.0, le=32.0, description="Gaussian sigma (px) over which the "
                               "paint-loss head's pixels vote together (0 = each pixel alone)")
    clamp_loss: float = Field(CLAMP_LOSS, ge=0.0, le=20.0, description="bound of the paint-loss head's logits "
                              "before the vote (0 = none)")
    gate_loss: float = Field(GATE_LOSS, ge=0.0, lt=1.0, description="the paint-loss head speaks only where it "
                             "holds at least this share of the pixels around (0 = everywhere)")
    gate_sigma: float = Field(GATE_SIGMA, gt=0.0, le=32.0, description="Gaussian sigma (px) of that share")
    scale: float = Field(DEFAULT_SCALE, ge=0.1, le=2.0, description="the network sees the scan "
                         "resampled by this factor, in the fit and in every detection with the adapted weights (as "
                         "detect's scale: 0.5 for a scan whose cracks are twice as wide as the detector's)")
    device: str = Field("cpu", description="'cpu' or 'cuda'")

    def config(self) -> AdaptConfig:
        return AdaptConfig(**self.model_dump())


class InpaintParams(_Tiled):
    weights: str = Field("inpainter-pconv", description="inpainter weights (name in the weights manifest)")
    mask: str | None = Field(None, description="an edited mask (PNG/TIFF/Zarr of the scan's size) to use "
                                               "instead of the detected damage; nonzero = fill")
    tile: int = Field(256, ge=32, description="model tile side in px")
    overlap: int = Field(64, ge=0, description="overlap between model tiles, blended")
    dilate: int = Field(2, ge=0, le=32, description="grow the mask by this many px before filling")
    halo: int = Field(64, ge=0, description="context read from neighbouring chunks, px")
    device: str = Field("cpu", description="'cpu' or 'cuda'")
    allow_large_mask: bool = Field(False, description="accept an edited mask marking more than half the image "
                                                      "(refused by default: usually an inverted or blank mask)")
    allow_empty_mask: bool = Field(False, description="accept an edited mask marking no pixel (restored/ is "
                                                      "then a copy of the scan)")
    strategy: Literal["boxes", "tiles"] = Field("boxes", description="network on boxes around the damage, or "
                                                                     "on every damaged tile (the earlier path)")
    margin: int = Field(24, ge=0, description="context around each damage box, px")
    grain: float = Field(1.0, ge=0, le=4, description="strength of the texture layer added to the fill (the "
                                                      "surrounding paint's high-pass, copied block by block; 0 = off)")
    grain_sigma: float = Field(3.0, ge=0.5, le=32, description="the texture layer's high-pass Gaussian sigma, px")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "fp32", description="the network in fp32, under bf16 autocast, or auto (bf16 where native)")

    def config(self) -> InpaintStageConfig:
        return InpaintStageConfig(**self.model_dump(exclude={"mask", "allow_large_mask", "allow_empty_mask"}))


class ExportParams(_Params):
    out_dir: str | None = Field(None, description="folder for the TIFF, previews and summary "
                                                  "(default: beside the store, '<store>-export')")
    preview_max_side: int = Field(2048, ge=64, description="longest side of the PNG previews")
    compression: str = Field("zlib", description="TIFF compression: zlib, zstd, lzw or none")
    iiif_base_url: str | None = Field(None, description="URL where <out_dir>/iiif/ will be published (the IIIF "
                                                        "ids; default: relative to the before/after page)")

    def config(self) -> ExportConfig:
        return ExportConfig(preview_max_side=self.preview_max_side, compression=self.compression,
                            iiif_base_url=self.iiif_base_url)


def default_export_dir(store: str) -> str:
    return f"{store.rstrip('/').removesuffix('.zarr')}-export"
