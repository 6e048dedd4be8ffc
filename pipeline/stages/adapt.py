"""Adapt stage: fit the detector to one painting from a conservator's scribbles, into `<store>/weights/`.

The scribbles (pipeline.io.scribbles: 0 unlabelled, 1 craquelure, 2 paint loss, 3 clean) are checked first.
The base detector (shipped weights) stays frozen; it runs only on the squares of the scan around labelled
pixels, and at those pixels its decoder features, its logits and the pixel's colour feed a small per-pixel
classifier per damage class that has strokes (models.adapted), fitted against the clean strokes
(pipeline.stages.adapt_fit). A damage class without strokes keeps the base detector's answer.
The whole adapted network is written as safetensors with its manifest entry beside it in `weights.partial/`
and swapped in when complete (pipeline.stages.adapt_weights). Detection is then run again by the caller
(the `adapt` flow): `detect` takes the store's adapted weights when none are named.
Skipped when the scan, the scribbles, the base weights and the parameters are unchanged.
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
from pipeline.errors import ConfigError
from pipeline.io.scribbles import CLASS_NAMES, Scribbles, read_scribbles
from pipeline.io.staging import partial_name, remove, swap_in
from pipeline.io.store import DAMAGE, DAMAGE_LABELS, group_info, join, mark_complete, open_complete
from pipeline.provenance import StageRecord, document_url, input_ref, marker_refs, now_iso, weights_ref
from pipeline.stages.adapt_before import BEFORE_ADAPT, keep_detection_before
from pipeline.stages.adapt_weights import (
    ADAPTED_FILE,
    ADAPTED_NAME,
    MANIFEST_FILE,
    WEIGHTS_GROUP,
    adapted_info,
    weights_dir,
)
from pipeline.stages.detect import DEFAULT_SCALE, DEFAULT_WEIGHTS, StageResult, check_device, default_manifest

# the detector adapt fits to a painting by default: detect's own, so that a class without strokes keeps what detect
# showed (docs/rules/2026-12-06h-adapt-base.md)
ADAPT_BASE = DEFAULT_WEIGHTS
ADD = 0.9  # the craquelure head's probability from which it adds a pixel to the base's detections
ADD_LOSS = 0.9  # the same for the paint-loss head, whose logits may be bounded to +-CLAMP_LOSS and smoothed
SMOOTH_LOSS = 1.5  # (Gaussian sigma, px); a regional vote (5 px, bound 4, adding from 0.7) is opt-in
CLAMP_LOSS = 0.0
GATE_LOSS = 0.0  # > 0: the paint-loss head speaks only where it holds that share of the pixels around (opt-in)
GATE_SIGMA = 4.0  # px: the Gaussian over which that share is taken
REACH = 32  # px: the craquelure head only extends the base's cracks, its additions joining them within this (0 = off)
BESIDE = 2  # px beside a base crack, away from its ends, where the craquelure head may not add (0 = off; with a reach)
# a region the paint-loss head adds counts only where the base gives a pixel of it this much (0 = off;
# docs/rules/2026-12-06i-adapt-support-paint7.md)
SUPPORT_LOSS = 0.02
# the veto's weak negatives (the base's detections among unlabelled pixels) as a share of its negatives' half, for
# craquelure (0.3 before docs/rules/2026-12-06k-adapt-veto-background.md) and for paint loss
VETO_BACKGROUND = 0.1
VETO_BACKGROUND_LOSS = 0.3
# the head's weak negatives (random unlabelled pixels) as a share of its negatives' half (0.3 before
# docs/rules/2026-12-06l-adapt-background.md)
BACKGROUND = 0.6
# a weak negative of a class is kept only where the base gives that class less than this (1 = every unlabelled
# sample; docs/rules/2026-12-06m-adapt-background-below.md)
BACKGROUND_BELOW = 1.0
# the head fitted again without the weak negatives its first fit gives a class at least this (0 = one fit)
RELABEL = 0.0
# per square of strokes, the base's cracks a craquelure stroke touches taken as the craquelure veto's negatives
# (0 = none; docs/rules/2026-12-07am-adapt-veto-joined-craquelure.md)
VETO_JOINED = 200


@dataclass(frozen=True)
class AdaptConfig:
    """Base weights (shipped manifest), the head (`hidden` units per class; 0 = linear), its fit (Adam steps, learning
    rate, weight decay, seed), the squares run through the base (`cell` px + `context` px around), the most labelled
    pixels used per class, the filter scales, the Gaussian smoothing of the head's logits (sigma in px, 0 = none:
    `smooth` for craquelure, `smooth_loss` for paint loss, whose logits are first bounded to +-`clamp_loss`; with
    `gate_loss` > 0 the paint-loss head counts only where, lightly smoothed, it holds at least that share of the pixels
    around, Gaussian sigma `gate_sigma` px), whether the adapted class keeps what the base found (`union`: the maximum
    of the two logits), the head's probability from which it adds a pixel to the base's (`add` for craquelure,
    `add_loss` for paint loss), how far the craquelure head's additions may reach from the base's cracks (`reach` px of
    8-connected growth through other additions; an addition that joins none is dropped, 0 = no such rule; with `union`
    only) and how far beside a base crack, away from its ends, it may not add (`beside` px, 0 = it may; with a reach
    only), the base's probability that one pixel of a region the paint-loss head adds must reach for the region to count
    (`support_loss`, 0 = no such rule; with `union` only), whether the clean strokes veto the base's detections they
    cover and the ones like them (`veto`, fitted when they cover at least `veto_min_pixels` of them; the share of the
    veto's negatives taken from the base's detections among the unlabelled pixels, `veto_background` for craquelure and
    `veto_background_loss` for paint loss; with `veto_joined` > 0 up to that many of the base's craquelure that a
    craquelure stroke touches, per square of strokes, among the craquelure veto's negatives too), the share of the
    head's negatives taken from unlabelled pixels (`background`, drawn from `background_cells` random squares,
    `background_per_cell` each; of a class, only those the base gives less than `background_below` of it; with `relabel`
    > 0, fitted a second time without the weak negatives the first fit gives the class at least that and the base does
    not flag), the factor by which the network sees the scan resampled (`scale`, as `retouch detect --scale`: the fit
    and every detection with the adapted weights see the scan at it, and every size above is in the network's pixels)
    and the device."""

    base: str = ADAPT_BASE
    hidden: int = 32
    steps: int = 300
    lr: float = 1e-2
    weight_decay: float = 1e-3
    cell: int = 256
    context: int = 64
    max_points: int = 20_000
    scales: tuple[float, ...] = (1.0, 2.0, 4.0)
    smooth: float = 1.5
    smooth_loss: float = SMOOTH_LOSS
    clamp_loss: float = CLAMP_LOSS
    gate_loss: float = GATE_LOSS
    gate_sigma: float = GATE_SIGMA
    union: bool = True
    add: float = ADD
    add_loss: float = ADD_LOSS
    reach: int = REACH
    beside: int = BESIDE
    support_loss: float = SUPPORT_LOSS
    veto: bool = True
    veto_min_pixels: int = 20
    veto_background: float = VETO_BACKGROUND
    veto_background_loss: float = VETO_BACKGROUND_LOSS
    veto_joined: int = VETO_JOINED
    background: float = BACKGROUND
    background_cells: int = 8
    background_per_cell: int = 500
    background_below: float = BACKGROUND_BELOW
    relabel: float = RELABEL
    seed: int = 0
    scale: float = DEFAULT_SCALE
    device: str = "cpu"
    manifest: str = field(default_factory=default_manifest)

    def __post_init__(self) -> None:
        from pipeline.stages.detect_infer import SCALES

        if not SCALES[0] <= self.scale <= SCALES[1]:
            raise ValueError(f"scale must be in [{SCALES[0]}, {SCALES[1]}], got {self.scale}")
        if self.hidden < 0 or self.steps < 1 or self.lr <= 0 or self.weight_decay < 0 or self.max_points < 1:
            raise ValueError("hidden >= 0, steps >= 1, lr > 0, weight_decay >= 0 and max_points >= 1 are required")
        shares = (self.background, self.veto_background, self.veto_background_loss)
        if not all(0.0 <= v < 1.0 for v in shares) or min(
                self.smooth, self.smooth_loss, self.clamp_loss) < 0 or self.background_cells < 0:
            raise ValueError("background, veto_background and veto_background_loss must be in [0, 1), smooth, "
                             "smooth_loss and clamp_loss >= 0 and background_cells >= 0")
        if not (0.0 < self.add < 1.0 and 0.0 < self.add_loss < 1.0) or self.veto_min_pixels < 1:
            raise ValueError(f"add and add_loss must be in (0, 1) and veto_min_pixels >= 1, got {self.add}, "
                             f"{self.add_loss}, {self.veto_min_pixels}")
        if self.reach < 0 or self.beside < 0:
            raise ValueError(f"reach and beside must be >= 0, got {self.reach}, {self.beside}")
        if self.veto_joined < 0:
            raise ValueError(f"veto_joined must be >= 0, got {self.veto_joined}")
        if not 0.0 < self.background_below <= 1.0:
            raise ValueError(f"background_below must be in (0, 1], got {self.background_below}")
        if not 0.0 <= self.relabel < 1.0:
            raise ValueError(f"relabel must be in [0, 1), got {self.relabel}")
        if not 0.0 <= self.support_loss < 1.0:
            raise ValueError(f"support_loss must be in [0, 1), got {self.support_loss}")
        if not 0.0 <= self.gate_loss < 1.0 or self.gate_sigma <= 0:
            raise ValueError(f"gate_loss must be in [0, 1) and gate_sigma > 0, got {self.gate_loss}, {self.gate_sigma}")
        if self.cell < 32 or self.context < 0 or (self.cell + 2 * self.context) % 32:
            raise ValueError(f"cell + 2 * context must be a multiple of 32 (cell >= 32), got {self.cell}, "
                             f"{self.context}")

    def per_class(self, adapted: list[int]) -> dict[str, list[float]]:
        """The smoothing, adding threshold and logit bound of each adapted class channel (0 craquelure, 1 paint
        loss)."""
        return {"smooth": [self.smooth_loss if c == 1 else self.smooth for c in adapted],
                "add": [self.add_loss if c == 1 else self.add for c in adapted],
                "clamp": [self.clamp_loss if c == 1 else 0.0 for c in adapted]}

    def veto_backgrounds(self, adapted: list[int]) -> list[float]:
        """The veto's share of weak negatives of each adapted class channel (0 craquelure, 1 paint loss)."""
        return [self.veto_background_loss if c == 1 else self.veto_background for c in adapted]

    def veto_joined_counts(self, adapted: list[int]) -> list[int]:
        """Per adapted class channel, how many of the base's detections its strokes touch the veto takes as negatives
        per square: `veto_joined` for craquelure, none for paint loss."""
        return [0 if c == 1 else self.veto_joined for c in adapted]

    def gate_args(self, adapted: list[int]) -> dict[str, Any]:
        """The gate's arguments of the adapted detector, none when it is off (the weights then read as before)."""
        if not self.gate_loss:
            return {}
        return {"gate": [self.gate_loss if c == 1 else 0.0 for c in adapted], "gate_sigma": self.gate_sigma}

    @property
    def reaches(self) -> bool:
        """Whether the reach is on: it takes a union (without one the head alone decides)."""
        return bool(self.reach and self.union)

    def reach_args(self, adapted: list[int]) -> dict[str, Any]:
        """The adapted detector's `reach` and `beside` (craquelure only), none when off (the weights read as before);
        `beside` only with a reach."""
        if not self.reaches:
            return {}
        args = {"reach": [0 if c == 1 else self.reach for c in adapted]}
        return {**args, "beside": [0 if c == 1 else self.beside for c in adapted]} if self.beside else args

    def support_args(self, adapted: list[int]) -> dict[str, Any]:
        """The adapted detector's `support` (paint loss only), none when off (the weights then read as before)."""
        if not (self.support_loss and self.union):
            return {}
        return {"support": [self.support_loss if c == 1 else 0.0 for c in adapted]}

    def key_params(self) -> dict[str, Any]:
        """The settings that decide the adapted weights: all but the manifest path and device, the gate's, the
        reach's and the support's only when on, the veto's shares of weak negatives only where they differ from the
        head's (so a store adapted before they existed keeps its key)."""
        params = {k: v for k, v in asdict(self).items() if k not in ("manifest", "device")}
        if not self.gate_loss:
            del params["gate_loss"], params["gate_sigma"]
        if not self.reaches:
            del params["reach"]
        if not (self.beside and self.reaches):
            del params["beside"]
        if not self.support_args([1]):
            del params["support_loss"]
        if self.scale == DEFAULT_SCALE:
            del params["scale"]
        if self.background_below == 1.0:  # every unlabelled sample, as before the level existed
            del params["background_below"]
        if not self.relabel:  # one fit, as before the refit existed
            del params["relabel"]
        if not self.veto_joined:  # as before the joined negatives existed
            del params["veto_joined"]
        for name in ("veto_background", "veto_background_loss"):
            if params[name] == self.background:  # one share for head and veto, as before the veto had its own
                del params[name]
        return params


def adapt_key(scan_digest: str, scribbles_digest: str, config: AdaptConfig, base_sha: str) -> str:
    payload = json.dumps({"scan": scan_digest, "scribbles": scribbles_digest, "config": config.key_params(),
                          "base": base_sha, "version": __version__}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def build_adapted(base_name: str, manifest: Path, adapted: list[int], hidden: int, device: str = "cpu",
                  scales: tuple[float, ...] = (1.0, 2.0, 4.0), smooth: float | list[float] = 0.0,
                  union: bool = False, add: float | list[float] = 0.5, veto: bool = False,
                  clamp: float | list[float] = 0.0, **options: Any) -> Any:
    """An AdaptedDetector over the verified base weights (heads not fitted) and the base's manifest entry;
    `options` (the gate's, the reach, the support) go to it as they are."""
    from models.adapted import BASES, AdaptedDetector
    from models.weights import get_entry, load_state

    entry = get_entry(base_name, manifest)
    if entry.architecture not in BASES:
        raise ConfigError(f"{manifest}: {base_name!r} is a {entry.architecture!r}; adapt takes a detector "
                          f"({', '.join(sorted(BASES))})")
    model = AdaptedDetector(entry.architecture, entry.arch_args, adapted, hidden, scales, smooth, union, add, veto,
                            clamp, **options)
    model.base.load_state_dict(load_state(entry, manifest.parent))
    return model.to(device).eval(), entry


def build_for(config: AdaptConfig, adapted: list[int]) -> Any:
    """The AdaptedDetector `config` describes over its base weights, for the class channels `adapted`."""
    per_class = config.per_class(adapted)
    model, _ = build_adapted(config.base, Path(config.manifest), adapted, config.hidden, config.device,
                             config.scales, per_class["smooth"], config.union, per_class["add"],
                             config.veto and config.union, per_class["clamp"], **config.gate_args(adapted),
                             **config.reach_args(adapted), **config.support_args(adapted))
    return model


def fit_adapted(model: Any, scan: Any, marks: dict[int, np.ndarray], config: AdaptConfig) -> dict[str, Any]:
    """Fit the head (and the veto head) of `model` on the labelled points `marks` (value -> (n, 2) (y, x)) of
    `scan` (C, H, W) with unlabelled points as `config` says, the network seeing the scan at `config.scale`; the
    fit's report, with the samples under "samples"."""
    from pipeline.stages.adapt_fit import background_points, collect_features, fit_head, fit_veto, source_side

    points = dict(marks)
    _, height, width = scan.shape
    if config.background and config.background_cells:
        points[0] = background_points((height, width), marks, config.background_cells, config.background_per_cell,
                                      source_side(config.cell, config.scale), np.random.default_rng(config.seed))
    samples = collect_features(model, scan, points, config.cell, config.context, config.scale,
                               config.veto_joined_counts(model.adapted) if model.veto is not None else (), config.seed)
    fit: dict[str, Any] = fit_head(model, samples, config.steps, config.lr, config.weight_decay, config.seed,
                                   config.background, config.background_below, config.relabel)
    if model.veto is not None:
        fit.update(fit_veto(model, samples, config.veto_min_pixels, config.steps, config.lr, config.weight_decay,
                            config.seed, config.veto_backgrounds(model.adapted)))
    return {**fit, "samples": samples}


def adapt(store: str, scribbles: str | Path, config: AdaptConfig | None = None, force: bool = False,
          run_id: str | None = None) -> StageResult:
    """Fit the store's adapted detector on `scribbles`; skipped when nothing it depends on changed.

    Bad scribbles and bad base weights are refused before anything is written; the previous weights stay
    until the new ones are complete."""
    import torch

    config = config or AdaptConfig()
    check_device(config.device)
    started, prov_started = time.perf_counter(), now_iso()
    folder = weights_dir(store)  # refuses a remote store
    existing = adapted_info(store)
    scan = open_complete(store, "scan")
    scan_info = group_info(store, "scan")
    assert scan_info is not None
    level0 = scan["0"]
    _, height, width = level0.shape
    marks = read_scribbles(scribbles, (height, width), max_points=config.max_points, seed=config.seed)
    from models.weights import get_entry

    base_entry = get_entry(config.base, Path(config.manifest), kind="detector")
    scan_digest = scan_info["digests"]["0"]
    key = adapt_key(scan_digest, marks.digest, config, base_entry.sha256)
    if existing and existing.get("key") == key and not force:
        return StageResult("adapt", store, True, key, {ADAPTED_FILE: existing["sha256"]}, existing["summary"],
                           document_url(store, existing.get("provenance")), time.perf_counter() - started)
    params = {k: v for k, v in asdict(config).items() if k != "manifest"}
    record = StageRecord("adapt", store, {**params, "base_sha256": base_entry.sha256,
                                          "scribbles_digest": marks.digest}, run_id=run_id, started=prov_started)
    record.invalidate(marker_refs(existing))
    adapted = [c - 1 for c in marks.damage_classes]  # class channels: 0 craquelure, 1 paint loss
    torch.manual_seed(config.seed)  # before the build: a veto head left unfitted keeps a seeded start
    model = build_for(config, adapted)
    fit = fit_adapted(model, level0, marks.points, config)
    samples = fit.pop("samples")
    base_recall = {CLASS_NAMES[c + 1]: float((samples.base_prob[samples.labels == c + 1, c] >= 0.5).mean())
                   for c in adapted}
    model = model.cpu()
    remove(store, partial_name(WEIGHTS_GROUP))  # leftovers of a killed fit
    staged = zarr.open_group(store, mode="w", path=partial_name(WEIGHTS_GROUP))
    staged_dir = folder.with_name(partial_name(WEIGHTS_GROUP))
    entry = _save(model, base_entry, adapted, config, marks, staged_dir)
    summary = {"adapted_classes": [CLASS_NAMES[c + 1] for c in adapted], "labelled_pixels": marks.counts,
               "pixels_fitted": int(np.isin(samples.labels, (1, 2, 3)).sum()),
               "unlabelled_fitted": int((samples.labels == 0).sum()), "base_recall_on_strokes": base_recall, "fit": fit}
    record.use("scan/0", input_ref(scan_info, "scan/0", scan_digest))
    record.use("scribbles", _scribbles_ref(marks, record.activity))
    record.use("base weights", weights_ref(base_entry.name, base_entry.sha256, base_entry.architecture,
                                           base_entry.file))
    path = f"{WEIGHTS_GROUP}/{ADAPTED_FILE}"
    record.generated(path, ["scan/0", "scribbles", "base weights"], name=ADAPTED_NAME, sha256=entry.sha256,
                     architecture=entry.architecture, base=base_entry.name, base_sha256=base_entry.sha256,
                     scribbles_digest=marks.digest,
                     **{f"labelled_{name}": count for name, count in marks.counts.items()})
    before = keep_detection_before(store)  # the map adapting is about to replace, for the review's comparison
    if before is not None:
        record.use("detected labels", input_ref(group_info(store, DAMAGE) or {}, f"{DAMAGE_LABELS}/0",
                                                before["labels_digest"]))
        record.generated(f"{BEFORE_ADAPT}/0", ["detected labels"], digest=before["labels_digest"])
    prov = record.write()
    mark_complete(staged, {"stage": "adapt", "key": key, "name": ADAPTED_NAME, "file": ADAPTED_FILE,
                           "manifest": MANIFEST_FILE, "sha256": entry.sha256, "base": base_entry.name,
                           "base_sha256": base_entry.sha256, "scan_digest": scan_digest,
                           "scribbles": {"file": str(scribbles), "digest": marks.digest, "counts": marks.counts},
                           "summary": summary, "params": params, "provenance": prov, "prov": record.marker(prov)})
    swap_in(store, WEIGHTS_GROUP)
    return StageResult("adapt", store, False, key, {ADAPTED_FILE: entry.sha256}, summary, join(store, prov),
                       time.perf_counter() - started)


def _save(model: Any, base_entry: Any, adapted: list[int], config: AdaptConfig, marks: Scribbles,
          folder: Path) -> Any:
    from models.adapted import ARCHITECTURE
    from models.weights import save_weights

    arch_args = {"base": base_entry.architecture, "base_args": base_entry.arch_args, "adapted": adapted,
                 "hidden": config.hidden, "scales": list(config.scales), **config.per_class(adapted),
                 **config.gate_args(adapted), **config.reach_args(adapted), **config.support_args(adapted),
                 "union": config.union, "veto": config.veto and config.union}
    training = {"base": base_entry.name, "base_sha256": base_entry.sha256, "scribbles_digest": marks.digest,
                "labelled_pixels": marks.counts, "fit": {k: v for k, v in asdict(config).items()
                                                         if k not in ("manifest", "device", "base")}}
    return save_weights(model, name=ADAPTED_NAME, architecture=ARCHITECTURE, arch_args=arch_args,
                        tiling=base_entry.tiling, training=training, manifest_path=folder / MANIFEST_FILE)


def _scribbles_ref(marks: Scribbles, activity: str) -> dict[str, Any]:
    counts = {f"labelled_{name}": count for name, count in marks.counts.items()}
    return {"id": f"store:input/scribbles@{activity}",
            "attrs": {"file": Path(marks.path).name, "digest": marks.digest, "digest_algorithm": "sha256 of the "
                      "uint8 labels row by row", "height": marks.shape[0], "width": marks.shape[1], **counts}}


def describe(result: StageResult) -> list[str]:
    """Lines for the command line: what was fitted on what."""
    s = result.summary
    counts = ", ".join(f"{k} {v} px" for k, v in s["labelled_pixels"].items())
    return [f"scribbles: {counts}", f"adapted:   {', '.join(s['adapted_classes'])} (base recall on the strokes: "
            + ", ".join(f"{k} {v:.2f}" for k, v in s["base_recall_on_strokes"].items()) + ")"]

