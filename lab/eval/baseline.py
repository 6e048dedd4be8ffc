"""Classical damage detection baseline, tuned by grid search on TRAIN paintings only.

Craquelure: morphological black-top-hat (dark cracks; optionally also white-top-hat for light cracks) of
the luminance with a disk of radius `radius`, thresholded at `threshold`, small components removed.
Paint loss: colour outlier against a local median background (max |RGB - median_k(RGB)| > threshold), opened
with a disk of radius `open_radius` so that thin cracks drop out, small components removed.
The parameters live in `models/weights/baseline.json` with the grid, the tuning tiles and their scores.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lab.eval.metrics import Counts, confusion
from models.weights import WEIGHTS_DIR
from pipeline.stages.detect_infer import as_rgb_float

BASELINE_PATH = WEIGHTS_DIR / "baseline.json"


@dataclass(frozen=True)
class CrackParams:
    radius: int = 3
    polarity: str = "dark"  # "dark" or "both"
    threshold: float = 0.08
    min_size: int = 8

    def __post_init__(self) -> None:
        if self.polarity not in ("dark", "both"):
            raise ValueError(f"polarity must be 'dark' or 'both', got {self.polarity!r}")


@dataclass(frozen=True)
class LossParams:
    ksize: int = 41  # median window (odd)
    threshold: float = 0.15
    open_radius: int = 2
    min_size: int = 30

    def __post_init__(self) -> None:
        if self.ksize % 2 == 0 or self.ksize < 3:
            raise ValueError(f"ksize must be odd and >= 3, got {self.ksize}")


@dataclass(frozen=True)
class BaselineParams:
    craquelure: CrackParams = CrackParams()
    paint_loss: LossParams = LossParams()


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def luminance(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 luminance in [0, 1] of any supported image."""
    rgb = as_rgb_float(image)
    return (rgb @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.float32)


def _remove_small(mask: np.ndarray, min_size: int) -> np.ndarray:
    if min_size <= 1 or not mask.any():
        return mask
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_size
    keep[0] = False
    return keep[labels]


def crack_response(lum: np.ndarray, radius: int, polarity: str) -> np.ndarray:
    """Top-hat ridge response (H, W) float32."""
    se = _disk(radius)
    resp = cv2.morphologyEx(lum, cv2.MORPH_BLACKHAT, se)
    if polarity == "both":
        resp = np.maximum(resp, cv2.morphologyEx(lum, cv2.MORPH_TOPHAT, se))
    return resp


def loss_response(rgb: np.ndarray, ksize: int) -> np.ndarray:
    """Colour outlier: max over channels of |RGB - local median RGB|, (H, W) float32.

    The median runs on 8-bit values, which OpenCV allows for large windows.
    """
    rgb8 = np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)
    background = cv2.medianBlur(rgb8, ksize).astype(np.float32) / 255
    return np.abs(rgb - background).max(axis=2)


def detect_cracks(lum: np.ndarray, p: CrackParams) -> np.ndarray:
    return _remove_small(crack_response(lum, p.radius, p.polarity) > p.threshold, p.min_size)


def detect_loss(rgb: np.ndarray, p: LossParams) -> np.ndarray:
    mask = (loss_response(rgb, p.ksize) > p.threshold).astype(np.uint8)
    if p.open_radius > 0:
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _disk(p.open_radius))
    return _remove_small(mask.astype(bool), p.min_size)


def baseline_predict(image: np.ndarray, params: BaselineParams) -> np.ndarray:
    """(2, H, W) bool maps (craquelure, paint loss) for an (H, W, C) image."""
    rgb = as_rgb_float(image)
    lum = luminance(rgb)
    return np.stack([detect_cracks(lum, params.craquelure), detect_loss(rgb, params.paint_loss)])


def load_baseline(path: Path = BASELINE_PATH) -> BaselineParams:
    """The tuned parameters; a missing file says how to make it."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no tuned baseline; run `retouch train baseline` first")
    data = json.loads(path.read_text())["params"]
    return BaselineParams(CrackParams(**data["craquelure"]), LossParams(**data["paint_loss"]))


CRACK_GRID = {"radius": [1, 2, 3, 4, 6], "polarity": ["dark", "both"],
              "threshold": [0.02, 0.03, 0.05, 0.08, 0.12, 0.16, 0.22], "min_size": [0, 8, 24, 64]}
LOSS_GRID = {"ksize": [21, 41, 81, 121], "threshold": [0.06, 0.1, 0.15, 0.2, 0.28, 0.36],
             "open_radius": [0, 1, 2, 3, 4], "min_size": [0, 30, 100, 300]}


def tune_baseline(
    n_tiles: int = 24, tile: int = 384, seed: int = 7, out: Path | None = BASELINE_PATH
) -> dict[str, Any]:
    """Grid-search both classes' parameters for best F1 on synthetic damage over TRAIN paintings only."""
    from lab.detector_data import load_paintings, make_batch
    from lab.paintings import paintings
    from lab.synthesis.synthetic_damage import DamageConfig

    train_paths = paintings("train")
    if not train_paths:
        raise FileNotFoundError("no training paintings found (is ../shared/data present?)")
    images, targets = make_batch(load_paintings(train_paths), tile, n_tiles, seed, DamageConfig(), None)
    rgbs = [np.ascontiguousarray(img.transpose(1, 2, 0)) for img in images]
    lums = [luminance(rgb) for rgb in rgbs]
    truth = targets > 0.5  # (N, 2, T, T)

    best_crack, crack_table = _search(CRACK_GRID, ("radius", "polarity"), lambda key: [
        crack_response(lum, *key) for lum in lums], lambda resp, p: _remove_small(
        resp > p["threshold"], p["min_size"]), truth[:, 0])
    best_loss, loss_table = _search(LOSS_GRID, ("ksize",), lambda key: [
        loss_response(rgb, *key) for rgb in rgbs], lambda resp, p: detect_loss_from_response(
        resp, p), truth[:, 1])
    params = BaselineParams(CrackParams(**best_crack["params"]), LossParams(**best_loss["params"]))
    result = {
        "params": asdict(params),
        "tuning": {
            "method": "exhaustive grid search, best pixel F1 per class (strict), micro-averaged",
            "data": f"{n_tiles} tiles of {tile}px, synthetic damage (seed {seed}) on TRAIN paintings only",
            "train_paintings": [p.name for p in train_paths],
            "grid": {"craquelure": CRACK_GRID, "paint_loss": LOSS_GRID},
            "scores": {"craquelure": best_crack["scores"], "paint_loss": best_loss["scores"]},
            "combinations": {"craquelure": len(crack_table), "paint_loss": len(loss_table)},
        },
        "date": dt.date.today().isoformat(),
    }
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        tmp.replace(out)
    return result


def detect_loss_from_response(resp: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    mask = (resp > p["threshold"]).astype(np.uint8)
    if p["open_radius"] > 0:
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _disk(p["open_radius"]))
    return _remove_small(mask.astype(bool), p["min_size"])


def _search(grid, response_keys, responses, decide, truth) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Try every combination of `grid`; responses are computed once per value of `response_keys`."""
    names = list(grid)
    table = []
    cache: dict[tuple, list[np.ndarray]] = {}
    for values in itertools.product(*(grid[n] for n in names)):
        p = dict(zip(names, values, strict=True))
        key = tuple(p[k] for k in response_keys)
        if key not in cache:
            cache[key] = responses(key)
        counts = Counts()
        for resp, true in zip(cache[key], truth, strict=True):
            counts += confusion(decide(resp, p), true)
        table.append({"params": p, "scores": counts.scores()})
    best = max(table, key=lambda row: row["scores"]["f1"])
    return best, table
