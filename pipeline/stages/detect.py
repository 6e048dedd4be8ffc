"""Detect stage: the Res-UNet over the scan, chunk by chunk with a halo, into the store's `damage/` group.

    damage/probabilities/0..N     (2, y, x) uint8 0-255: craquelure, paint loss (mean-downsampled pyramid)
    scan/labels/damage/0..N       (1, y, x) uint8: 0 none, 1 craquelure, 2 paint loss (max-downsampled, so
                                  a low level shows exactly which chunks hold damage): an OME-Zarr label
                                  image of the scan, with each class's name and colour
The completion marker (digests keyed `probabilities/N` and `labels/N`) is on `damage/`.

Each chunk is read with `halo` px of its neighbours (reflected at the image border) and keeps only its own
pixels. By default the chunk and its halo (1024 + 2 x 96) go through the model in one 1216-px tile (1.41
input px per output px). The halo decides how well chunk borders match an untiled run: the larger, the
closer; 96 is the default.
With a smaller `tile` (a GPU batch), the tiles inside a chunk overlap and are blended with a Gaussian
window (`detect_infer`).
Precision 'auto' takes bf16 where the hardware runs it natively.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from pipeline import __version__
from pipeline.engine.ledger import Ledger, resume_group
from pipeline.engine.pyramid import build_pyramid_levels
from pipeline.engine.runner import EngineConfig
from pipeline.engine.tiling import ChunkJob, ModelCache, all_regions, run_chunks, torch_threads_per_worker
from pipeline.errors import InputError
from pipeline.io.ome import Channel, LabelClass
from pipeline.io.staging import partial_name, recover, swap_in
from pipeline.io.store import (
    DAMAGE,
    DAMAGE_LABELS,
    DETECTED_MASKS,
    MARKER_KEY,
    SCAN,
    create_chunked,
    create_labels,
    create_pyramid,
    group_info,
    join,
    levels_like,
    mark_complete,
    open_complete,
    pixel_size_of,
    shard_chunks_of,
)
from pipeline.provenance import StageRecord, document_url, input_ref, marker_refs, now_iso, weights_ref
from pipeline.stages import detect_border, label_passes, straight_cracks

if TYPE_CHECKING:
    from pipeline.stages.detect_infer import Views

DAMAGE_GROUP = DAMAGE
CLASSES = ("craquelure", "paint_loss")
# The label image's classes and display colours (alpha 166 = the export overlay's 65 % opacity).
LABEL_CLASSES = (LabelClass(1, "craquelure", (230, 40, 40, 166)), LabelClass(2, "paint_loss", (40, 210, 230, 166)))
PROBABILITY_CHANNELS = (Channel("craquelure", "E62828"), Channel("paint_loss", "28D2E6"))


MANIFEST_ENV = "RETOUCH_WEIGHTS_MANIFEST"
DEFAULT_WEIGHTS = "detector-resunet18-soup729"

# Test-time augmentation by default: every tile and its mirror image, averaged, for twice the compute; it
# scores higher on the held-out sets (models/weights/detector-resunet18.eval.json). `tta=1` is the single pass.
DEFAULT_TTA = 2
DEFAULT_SECOND_VIEW = "mirror"  # the second of two views (pipeline.stages.detect_infer.SECOND_VIEWS)
DEFAULT_LOSS_AGREEMENT = 0.0  # paint loss where the views agree (detect_infer.Views; 0: their mean)
DEFAULT_AGREEMENT_AREA = 0  # loss regions under this many px keep the views' mean (detect_infer.Views)
DEFAULT_COARSE_LOSS = True  # the coarse paint-loss pass, anchored and trimmed (rule 2026-12-05d)
DEFAULT_MIN_CRACK = 0  # craquelure fragments under this many px are dropped (rule 2026-12-03k)
DEFAULT_PAINT_LIKE = 0  # paint loss the colour of the paint around it stays labelled (off)
DEFAULT_STRAIGHT = straight_cracks.DEFAULT_STRAIGHT  # straight craquelure this long is dropped (rule 2026-12-06n)
DEFAULT_BORDER = detect_border.DEFAULT_BORDER  # px along the image border judged with edge padding too
DEFAULT_SCALE = 1.0  # the network sees the scan resampled by this factor (1: as scanned)
TRAINED_SIDE = 1200  # px: the longer side of the paintings the detectors learned on (lab.paintings, TRAIN)
LARGE_SCAN = 2.0  # times TRAINED_SIDE: a scan this large, detected at scale 1, gets `resolution_note`
RAW_LABELS = "labels-before-straight"  # scratch array of `damage.partial/`, deleted before it is marked complete
ADAPTED_ARCHITECTURE = "resunet-adapted"  # models.adapted: run at the scale it was fitted at


def default_manifest() -> str:
    """The shipped weights manifest, or the one $RETOUCH_WEIGHTS_MANIFEST names (a lab's own weights)."""
    import os

    from models.weights import MANIFEST_PATH

    return os.environ.get(MANIFEST_ENV) or str(MANIFEST_PATH)


@dataclass(frozen=True)
class DetectConfig:
    """Weights, decision threshold per class, model tile/overlap, chunk halo, device, precision and
    test-time augmentation (`tta` orientations of every tile, averaged: 1, 2, 4 or 8; with two, the tile and its
    `second_view`: "mirror", "half-turn", "quarter-turn", or "small-mirror" / "small-half-turn" (seen at 13/16 of the
    tile's side, `detect_infer.SMALL_VIEW`); with `loss_agreement` > 0 a pixel's paint loss is the
    views' mean only where each view gives at least that, else the lowest, except in loss regions of fewer than
    `agreement_area` px: `detect_infer.Views`), and the coarse paint-loss pass (`coarse_loss`: the block also at
    half size, for large losses; detect_infer), and the
    smallest craquelure fragment labelled (`min_crack` px, 8-connected; smaller ones are dropped from the labels),
    and the skeleton length from which a craquelure component whose centre line is straight is dropped from the labels
    (`straight` px, judged over the whole scan after every chunk is detected; 0: off; pipeline.stages.straight_cracks),
    and the paint loss dropped from the labels where its colour matches the paint around its region (`paint_like`:
    within that many levels of 255 in every channel, judged over the whole scan; 0: off;
    pipeline.stages.paint_like_loss),
    and the band along the image border judged with edge padding as well as reflection (`border` px; 0: off;
    pipeline.stages.detect_border), and the factor by which the network sees the scan resampled (`scale`: 0.5
    shows it a 4-px crack 2 px wide, at a quarter of the pixels; the probabilities are taken back to the scan's
    size).

    `weights` None: the store's adapted weights when `adapt` made some (`resolve_weights`), else the default."""

    weights: str | None = None
    threshold: float = 0.5
    tile: int = 1216
    overlap: int = 64
    halo: int = 96
    device: str = "cpu"
    precision: str = "auto"
    batch: int = 1
    tta: int = DEFAULT_TTA
    second_view: str = DEFAULT_SECOND_VIEW
    loss_agreement: float = DEFAULT_LOSS_AGREEMENT
    agreement_area: int = DEFAULT_AGREEMENT_AREA
    coarse_loss: bool = DEFAULT_COARSE_LOSS
    min_crack: int = DEFAULT_MIN_CRACK
    straight: int = DEFAULT_STRAIGHT
    paint_like: int = DEFAULT_PAINT_LIKE
    border: int = DEFAULT_BORDER
    scale: float = DEFAULT_SCALE
    manifest: str = field(default_factory=default_manifest)

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.tile % 32 or self.tile < 64:
            raise ValueError(f"tile must be a multiple of 32 and >= 64, got {self.tile}")
        if not 0 <= self.overlap < self.tile:
            raise ValueError(f"overlap must be in [0, tile), got {self.overlap}")
        if self.halo < 0:
            raise ValueError(f"halo must be >= 0, got {self.halo}")
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")
        if self.straight < 0:
            raise ValueError(f"straight must be >= 0, got {self.straight}")
        if not 0 <= self.paint_like <= 255:
            raise ValueError(f"paint_like must be in [0, 255], got {self.paint_like}")
        if self.border < 0:
            raise ValueError(f"border must be >= 0, got {self.border}")
        from pipeline.stages.detect_infer import SCALES

        if not SCALES[0] <= self.scale <= SCALES[1]:
            raise ValueError(f"scale must be in [{SCALES[0]}, {SCALES[1]}], got {self.scale}")
        if self.min_crack < 0 or (self.halo and self.min_crack > self.halo):
            raise ValueError(f"min_crack must be in [0, halo = {self.halo}] (a fragment is judged within the halo), "
                             f"got {self.min_crack}")
        from pipeline.stages.detect_infer import PRECISIONS, VIEWS

        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.tta not in VIEWS:
            raise ValueError(f"tta must be one of {VIEWS}, got {self.tta}")
        self.views()  # second_view and loss_agreement checked

    def views(self) -> Views:
        """The test-time augmentation: `tta`, `second_view`, `loss_agreement`, `agreement_area`."""
        from pipeline.stages.detect_infer import Views

        return Views.of(self)

    def given(self, **settings: Any) -> DetectConfig:
        """This config with every one of `settings` that is not None put in (a command's options over the stage's
        defaults); checked as any config is."""
        return dataclasses.replace(self, **{k: v for k, v in settings.items() if v is not None})

    def inference_record(self) -> dict[str, Any]:
        """The settings that decide what the network's passes give (for an evaluation's record)."""
        return {"tta": self.tta, "coarse_loss": self.coarse_loss, "min_crack": self.min_crack,
                "straight": self.straight, "paint_like": self.paint_like, "second_view": self.second_view,
                "loss_agreement": self.loss_agreement,
                "agreement_area": self.agreement_area, "border": self.border, "scale": self.scale}

    def image_probabilities(self, model: Any, image: np.ndarray, threshold: float | None = None,
                            bf16: bool = False) -> np.ndarray:
        """(2, H, W) float32: a whole (H, W, C) image detected with these settings as the stage detects a scan
        (`detect_infer.detect_probabilities`: views, coarse pass, border, scale, and the small and straight
        craquelure and the paint-like loss dropped at `threshold`, default this config's), for the evaluations run
        as the stage runs."""
        from pipeline.stages.detect_infer import detect_probabilities

        return detect_probabilities(model, image, tile=self.tile, overlap=self.overlap, bf16=bf16, views=self.views(),
                                    coarse_loss=self.coarse_loss, min_crack=self.min_crack, straight=self.straight,
                                    paint_like=self.paint_like,
                                    threshold=self.threshold if threshold is None else threshold,
                                    border=self.border, scale=self.scale)

    def resolved(self) -> DetectConfig:
        """This config with device checked and precision 'auto' decided for this machine."""
        from pipeline.stages.detect_infer import resolve_precision

        check_device(self.device)
        return dataclasses.replace(self, precision=resolve_precision(self.precision, self.device))


def variant_fields(text: str) -> dict[str, Any]:
    """`NAME[+coarse|+nocoarse][+minN][+straightN][+likeN][+borderN][+scaleS][+ttaN][+mirror|+half-turn|+quarter-turn|
    +small-mirror|+small-half-turn][+agreeA][+areaN]` (how the benchmarks name a detection setting) as DetectConfig
    fields: the weights,
    `coarse_loss` on with `+coarse` and off with `+nocoarse`, `min_crack` N with `+minN`, `straight` N with
    `+straightN`, `paint_like` N with `+likeN`, `border` N with `+borderN`, `scale` S with `+scaleS` (e.g. `+scale1.4`),
    `tta` N with `+ttaN`, `second_view` with its name, `loss_agreement` A with `+agreeA` (e.g. `+agree0.25`),
    `agreement_area` N with `+areaN`; anything else is a ValueError naming it."""
    from pipeline.stages.detect_infer import SECOND_VIEWS

    name, *options = text.split("+")
    fields: dict[str, Any] = {"weights": name}
    for option in options:
        if option in ("coarse", "nocoarse"):
            fields["coarse_loss"] = option == "coarse"
        elif option.startswith("min") and option[3:].isdigit():
            fields["min_crack"] = int(option[3:])
        elif option.startswith("straight") and option[8:].isdigit():
            fields["straight"] = int(option[8:])
        elif option.startswith("like") and option[4:].isdigit():
            fields["paint_like"] = int(option[4:])
        elif option.startswith("border") and option[6:].isdigit():
            fields["border"] = int(option[6:])
        elif option.startswith("scale") and option[5:].replace(".", "", 1).isdigit():
            fields["scale"] = float(option[5:])
        elif option.startswith("tta") and option[3:].isdigit():
            fields["tta"] = int(option[3:])
        elif option in SECOND_VIEWS:
            fields["second_view"] = option
        elif option.startswith("agree") and option[5:].replace(".", "", 1).isdigit():
            fields["loss_agreement"] = float(option[5:])
        elif option.startswith("area") and option[4:].isdigit():
            fields["agreement_area"] = int(option[4:])
        else:
            raise ValueError(f"{text}: unknown detection option {option!r} (NAME[+coarse|+nocoarse][+minN][+straightN]"
                             "[+likeN][+borderN][+scaleS][+ttaN][+mirror|+half-turn|+quarter-turn|+small-mirror|+small-half-turn]"
                             "[+agreeA][+areaN])")
    return fields


def check_device(device: str) -> None:
    """Refuse a device torch cannot use here, in one line (before any chunk runs)."""
    if device == "cpu":
        return
    from pipeline.errors import ConfigError

    if not device.startswith("cuda"):
        raise ConfigError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but this torch build sees no CUDA GPU")


def resolve_weights(store: str, config: DetectConfig) -> tuple[DetectConfig, str | None]:
    """`config` with its weights decided: named weights stay; none named takes the store's adapted weights
    (`<store>/weights/`, fitted on this scan) when there are some, else DEFAULT_WEIGHTS. The one line saying
    which store weights were taken (or why not), else None."""
    from models.weights import get_entry
    from pipeline.stages.adapt_weights import ADAPTED_NAME, adapted_info, fitted_scale, store_manifest

    if config.weights is not None:
        return config, None
    info = adapted_info(store)
    if info is None:
        return dataclasses.replace(config, weights=DEFAULT_WEIGHTS), None
    scan = group_info(store, SCAN) or {}
    if info.get("scan_digest") != (scan.get("digests") or {}).get("0"):
        return dataclasses.replace(config, weights=DEFAULT_WEIGHTS), (
            f"this store's adapted weights were fitted on another scan than its scan/ now: using {DEFAULT_WEIGHTS} "
            "(run `retouch adapt` again)")
    note = (f"using this store's adapted weights (weights/{info['file']}, sha256 {info['sha256'][:12]}…, fitted "
            f"on {info['base']} with {info['scribbles']['counts']} scribbled px); --weights NAME overrides")
    config = dataclasses.replace(config, weights=ADAPTED_NAME, manifest=str(store_manifest(store)))
    fitted = fitted_scale(get_entry(ADAPTED_NAME, Path(config.manifest)))
    if config.scale == DEFAULT_SCALE and fitted != DEFAULT_SCALE:  # run as they were fitted unless told otherwise
        config = dataclasses.replace(config, scale=fitted)
        note += f"; at --scale {fitted:g}, the scale they were fitted at"
    return config, note


@dataclass(frozen=True)
class StageResult:
    """What a stage run did (shared by detect, inpaint and export)."""

    stage: str
    store: str
    skipped: bool
    key: str
    digests: dict[str, str]
    summary: dict[str, Any]
    provenance: str | None
    seconds: float
    chunks_run: int = 0
    chunks_resumed: int = 0
    chunks_copied: int = 0
    notes: tuple[str, ...] = ()  # what the user should know (e.g. outputs now stale), one line each


@dataclass(frozen=True)
class _DetectChunk:
    """Picklable per-chunk function: probabilities and labels for one block with halo."""

    config: DetectConfig
    threads: int
    shape: tuple[int, int] | None = None  # the image's (height, width): the reflected part of a block lies beyond

    def __call__(self, block: np.ndarray, origin: tuple[int, int] = (0, 0)) -> tuple[list[np.ndarray], dict[str, Any]]:
        from pipeline.stages.detect_infer import detect_probabilities

        model, _ = ModelCache.get(self.config.weights, self.config.manifest, self.config.device, self.threads)
        image = np.moveaxis(block, 0, -1)  # (h, w, C) in the scan's dtype
        real = None
        if self.shape is not None:  # the block's own pixels, without the reflection past the image border
            (y, x), (h, w) = origin, self.shape
            real = (max(0, -y), min(block.shape[1], h - y), max(0, -x), min(block.shape[2], w - x))
        prob = detect_probabilities(model, image, tile=self.config.tile, overlap=self.config.overlap,
                                    bf16=self.config.precision == "bf16", margin=0 if self.config.halo else None,
                                    batch=self.config.batch, views=self.config.views(),
                                    coarse_loss=self.config.coarse_loss, threshold=self.config.threshold,
                                    border=self.config.border,
                                    real=real, scale=self.config.scale)  # (2, h, w) float32
        return probabilities_and_labels(prob, self.config.threshold, self.config.halo, self.config.min_crack, real)


def probabilities_and_labels(prob: np.ndarray, threshold: float, halo: int, min_crack: int = 0,
                             real: tuple[int, int, int, int] | None = None) -> tuple[list[np.ndarray], dict]:
    """uint8 probabilities, the label map (paint loss wins where both fire; craquelure fragments of fewer than
    `min_crack` px dropped) and per-class pixel counts. `real` (y0, y1, x0, x1): the part of the block that is
    image, not reflection past its border; fragments are measured there only."""
    from pipeline.stages.detect_infer import drop_small_fragments

    prob8 = np.clip(np.rint(prob * 255.0), 0, 255).astype(np.uint8)  # (2, h, w)
    cut = int(np.ceil(threshold * 255.0))
    labels = np.zeros((1, *prob.shape[1:]), np.uint8)
    crack = prob8[0] >= cut
    if min_crack and real is not None:
        inside = np.zeros_like(crack)
        inside[real[0] : real[1], real[2] : real[3]] = True
        crack &= inside
    labels[0][drop_small_fragments(crack, min_crack)] = 1
    labels[0][prob8[1] >= cut] = 2
    core = labels[0, halo : labels.shape[1] - halo or None, halo : labels.shape[2] - halo or None]
    counts = {name: int((core == value).sum()) for value, name in enumerate(CLASSES, start=1)}
    return [prob8, labels], {"counts": counts}


def resolution_note(height: int, width: int, scale: float) -> str | None:
    """What to tell whoever detects a scan at least LARGE_SCAN times as large as the paintings the detectors
    learned on at scale 1: its cracks may be wider than any they learned, and then most of its damage is missed
    (docs/evaluation.md, "Scans at another resolution"). None for a smaller scan or another scale (chosen)."""
    side = max(height, width)
    if scale != DEFAULT_SCALE or side < LARGE_SCAN * TRAINED_SIDE:
        return None
    return (f"this scan is {side:,} px across, {side / TRAINED_SIDE:.1f} times the paintings the detector learned "
            f"on, whose cracks were 1-3 px wide: look at a crack at 100 %; if it is wider than about 3 px, most of "
            f"the damage is missed at this size: detect with --scale 0.5 for cracks of 2-6 px or 0.33 for 3-9 px "
            f"(README: \"Your own scan: its resolution\")")


# DetectConfig fields added after stores were first detected, and the value each had before it existed
KEY_OFF: dict[str, Any] = {"coarse_loss": False, "min_crack": 0, "straight": 0, "paint_like": 0, "border": 0,
                           "scale": DEFAULT_SCALE, "second_view": "mirror", "loss_agreement": 0.0, "agreement_area": 0}


def detect_key(scan_digest: str, config: DetectConfig, weights_sha: str) -> str:
    # a setting at its KEY_OFF value stays out of the key, so stores detected before it existed keep their key
    params = {k: v for k, v in asdict(config).items() if k != "manifest" and not (k in KEY_OFF and v == KEY_OFF[k])}
    if config.straight:
        params["straight_rms"] = straight_cracks.STRAIGHT_RMS
    if config.paint_like:
        from pipeline.stages.paint_like_loss import LIKE_BLUR, LIKE_MIN_AREA, LIKE_MIN_RING, LIKE_RING

        params["paint_like_ring"] = [*LIKE_RING, LIKE_MIN_RING, LIKE_BLUR, LIKE_MIN_AREA]
    if config.coarse_loss:  # the coarse pass keeps only the regions the full-size pass marks in part, and in them
        params["coarse_anchored"] = True  # only the ground's colour (2026-12-05)
        from pipeline.stages.coarse_loss import COARSE_RING, COARSE_TRIM

        params["coarse_trim"] = [*COARSE_RING, COARSE_TRIM]
    payload = json.dumps({"scan": scan_digest, "config": params, "weights": weights_sha,
                          "version": __version__}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def detect(store: str, config: DetectConfig | None = None, engine: EngineConfig | None = None,
           force: bool = False, run_id: str | None = None) -> StageResult:
    """Find craquelure and paint loss in `<store>/scan/`; skipped when scan, parameters and weights are unchanged.

    A recompute writes `damage.partial/` and swaps it in when complete: until then the previous `damage/`
    stays as it was, whatever fails (bad weights are refused before anything is written)."""
    from models.weights import get_entry, verify_weights
    from pipeline.stages.adapt_weights import fitted_scale

    engine = engine or EngineConfig()
    started, prov_started = time.perf_counter(), now_iso()
    recover_detect(store)
    scan = open_complete(store, "scan")
    scan_info = group_info(store, "scan")
    config, weights_note = resolve_weights(store, (config or DetectConfig()).resolved())
    assert config.weights is not None
    entry = get_entry(config.weights, Path(config.manifest), kind="detector")
    if entry.architecture == ADAPTED_ARCHITECTURE and config.scale != fitted_scale(entry):
        raise InputError(config.weights if weights_note is None else join(store, "weights"),
                         f"adapted weights are fitted to the scan seen at --scale {fitted_scale(entry):g}: detect "
                         f"with them at that scale, not {config.scale:g} (or name other weights with --weights)")
    key = detect_key(scan_info["digests"]["0"], config, entry.sha256)
    existing = group_info(store, DAMAGE_GROUP)
    level0 = scan["0"]
    _, height, width = level0.shape
    notes = [note for note in (weights_note, resolution_note(height, width, config.scale)) if note]
    if existing and existing.get("key") == key and not force and labels_current(store, existing):
        return StageResult("detect", store, True, key, existing["digests"], existing["summary"],
                           document_url(store, existing.get("provenance")), time.perf_counter() - started,
                           notes=tuple(notes))
    params = {k: v for k, v in asdict(config).items() if k != "manifest"}
    record = StageRecord("detect", store, {**params, "weights_sha256": entry.sha256}, run_id=run_id,
                         started=prov_started)
    record.invalidate(marker_refs(existing))  # the outputs this run replaces
    verify_weights(entry, Path(config.manifest).parent)  # before anything is written
    chunk = level0.chunks[1]
    ledger = Ledger(store, "detect", key)
    root = zarr.open_group(store, mode="a")
    group, done, fresh = resume_group(store, DAMAGE_GROUP, ledger)
    staged_labels = partial_name(DAMAGE_LABELS)
    passes = bool(config.straight or config.paint_like)  # the whole-scan passes over the labels (label_passes)
    # the label image's partial is gone, or the labels before the whole-scan passes: start afresh
    if not fresh and (staged_labels not in root or (passes and RAW_LABELS not in group)):
        ledger.clear()
        group, done, fresh = resume_group(store, DAMAGE_GROUP, ledger)
    if fresh:
        size, shards = pixel_size_of(scan), shard_chunks_of(level0)
        create_pyramid(group, "probabilities", levels_like(scan, 2), np.uint8, chunk, size,
                       channels=PROBABILITY_CHANNELS, shard_chunks=shards)
        create_labels(root, SCAN, "damage", levels_like(scan, 1), chunk, LABEL_CLASSES, size, shards, staged=True)
        if passes:
            create_chunked(group, RAW_LABELS, (1, height, width), chunk, np.dtype(np.uint8))
    outputs = {"probabilities": group["probabilities"], "labels": root[staged_labels]}
    probs, labels = outputs["probabilities"], outputs["labels"]
    # with a whole-scan pass the chunks' labels go to a scratch array first: the pass judges them whole
    chunk_labels = group[RAW_LABELS] if passes else labels["0"]
    record.use("scan/0", input_ref(scan_info, "scan/0", scan_info["digests"]["0"]))
    record.use("weights", weights_input(store, entry))
    job = ChunkJob(inputs=[level0], outputs=[probs["0"], chunk_labels],
                   fn=_DetectChunk(config, torch_threads_per_worker(engine), (height, width)), halo=config.halo,
                   chunk=chunk, origin=True)
    records = run_chunks(job, all_regions(level0.shape, chunk), ledger, done, "detect", engine)
    resumed = sum(1 for task_id in done if task_id.startswith("0-"))
    rewritten = None
    if passes:
        rewritten = label_passes.detect_label_passes(chunk_labels, labels["0"], level0, chunk, config.straight,
                                                     config.paint_like)
        for cid, chunk_record in records.items():
            chunk_record["digests"][1] = rewritten.digests[cid]
            for value, name in enumerate(CLASSES, start=1):
                chunk_record["facts"]["counts"][name] -= rewritten.dropped[cid].get(value, 0)
    counts = {name: sum(r["facts"]["counts"][name] for r in records.values()) for name in CLASSES}
    digests = {}
    # entity paths are where each array is read (the labels: the OME-Zarr label image); the sidecars are
    # written beside the arrays in their `.partial` groups and swapped in with them
    where = {"probabilities": (f"{DAMAGE_GROUP}/probabilities", f"{partial_name(DAMAGE_GROUP)}/probabilities"),
             "labels": (DAMAGE_LABELS, staged_labels)}
    for index, (name, mode) in enumerate((("probabilities", "mean"), ("labels", "max"))):
        final, staged = where[name]
        path0 = f"{final}/0"
        digests[f"{name}/0"] = record.generated_array(
            outputs[name]["0"], path0, {cid: r["digests"][index] for cid, r in records.items()}, ["scan/0", "weights"],
            stored_at=f"{staged}/0")
        levels = levels_like(scan, 2 if name == "probabilities" else 1)
        for path, chunk_digests in build_pyramid_levels(outputs[name], levels, chunk, ledger, done, engine,
                                                        f"detect {name}", mode, prefix=name).items():
            digests[f"{name}/{path}"] = record.generated_array(outputs[name][path], f"{final}/{path}",
                                                               chunk_digests, [path0], stored_at=f"{staged}/{path}")
    total = height * width
    summary = {"pixels": total, "counts": counts,
               "area_percent": {k: 100.0 * v / total for k, v in counts.items()},
               "threshold": config.threshold, "precision": config.precision, "device": config.device,
               "tta": config.tta, "second_view": config.second_view, "loss_agreement": config.loss_agreement,
               "agreement_area": config.agreement_area,
               "coarse_loss": config.coarse_loss, "min_crack": config.min_crack,
               "straight": config.straight, "paint_like": config.paint_like, "border": config.border}
    if rewritten is not None:
        summary.update(rewritten.summary)
        del group[RAW_LABELS]
    prov = record.write()
    mark_complete(labels, {"stage": "detect", "key": key})  # pairs the label image with damage/'s marker
    mark_complete(group, {"stage": "detect", "key": key, "digests": digests, "summary": summary,
                          "weights": entry.name, "weights_sha256": entry.sha256, "provenance": prov,
                          "prov": record.marker(prov), "scan_digest": scan_info["digests"]["0"],
                          "classes": list(CLASSES), "params": params})
    swap_in(store, DAMAGE_LABELS)  # the label image first: damage/'s marker, swapped last, names its key
    swap_in(store, DAMAGE_GROUP)
    ledger.clear()
    ModelCache.clear()
    notes += mark_dependents_stale(store, digests["labels/0"],
                                   existing["digests"]["labels/0"] if existing else None)
    return StageResult("detect", store, False, key, digests, summary, join(store, prov),
                       time.perf_counter() - started,
                       chunks_run=len(records) - resumed, chunks_resumed=resumed, notes=tuple(notes))


def weights_input(store: str, entry: Any) -> dict[str, Any]:
    """The weights as a PROV input: the store's adapted weights as the entity their adapt run generated (so
    the lineage reaches the scribbles), shipped weights by their sha256."""
    from pipeline.stages.adapt_weights import ADAPTED_FILE, WEIGHTS_GROUP, adapted_info

    ref = weights_ref(entry.name, entry.sha256, entry.architecture, entry.file)
    info = adapted_info(store) if entry.file == ADAPTED_FILE else None
    generated = marker_refs(info).get(f"{WEIGHTS_GROUP}/{ADAPTED_FILE}")
    if info and info.get("sha256") == entry.sha256 and generated:
        return {"id": generated["id"], "attrs": {**generated["attrs"], **ref["attrs"]}}
    return ref


def labels_current(store: str, damage_info: dict[str, Any] | None) -> bool:
    """Whether the label image is the one `damage/`'s marker describes (written by the same detect run)."""
    labels_info = group_info(store, DAMAGE_LABELS)
    return bool(damage_info and labels_info and labels_info.get("key") == damage_info.get("key"))


def recover_detect(store: str) -> None:
    """Finish a detect swap a crash interrupted: the label image and `damage/` are swapped in one after the
    other; when the new labels are in and `damage/` still the old one, the complete `damage.partial` of the
    same run follows them."""
    recover(store, DAMAGE_LABELS)
    recover(store, DAMAGE_GROUP)
    staged = group_info(store, partial_name(DAMAGE_GROUP))
    labels_info = group_info(store, DAMAGE_LABELS)
    if staged and labels_info and labels_info.get("key") == staged.get("key"):
        swap_in(store, DAMAGE_GROUP)


STALE_KEY = "stale"


def mark_dependents_stale(store: str, labels_digest: str, previous_digest: str | None) -> list[str]:
    """After `damage/` was recomputed: mark `restored/` stale in the store when it was made from other
    labels (cleared when the labels are those it was made from again); what is now stale, one line each."""
    info = group_info(store, "restored")
    notes = []
    if info is not None and info.get("mask") in DETECTED_MASKS:
        marker = {k: v for k, v in info.items() if k != STALE_KEY}
        if info.get("mask_digest") != labels_digest:
            marker[STALE_KEY] = {"reason": "damage/ was recomputed after restored/ was made from it",
                                 "damage_labels_digest": labels_digest}
            notes.append("restored/ is now stale (made from the previous damage/) until `retouch inpaint` (or "
                         "`retouch run`) recomputes it; export it again after that")
        zarr.open_group(store, mode="r+", path="restored").attrs[MARKER_KEY] = marker
    if labels_digest != previous_digest and info is not None and not notes:
        notes.append("the export of this store is now stale (its damage overlay and figures come from the "
                     "previous damage/): run `retouch export` again")
    return notes
