"""Score inpainting against the classical methods on clean images with known holes.

For every image and every mask (seeded masks of each kind and hole-ratio bin, or given masks paired by file
stem), each method fills the hole and is scored on the composite against the clean image:
PSNR and SSIM (scikit-image, whole image, 8-bit, as the papers score) and L1 over the hole (mean absolute
error on the [0, 1] scale), and what PSNR misses (`lab.eval.texture_metrics`): the gradient-magnitude ratio
inside the hole (fill / truth, 1 = same texture energy, a blur is below 1), GMSD over the hole widened by 2 px
(Xue et al. 2014, lower is better) and HaarPSI of the whole composite (piq; higher is better).
Methods: the PConv model, OpenCV Telea and Navier-Stokes (radius 3), scikit-image `inpaint_biharmonic`,
OpenCV's frequency-selective reconstruction (`cv2.xphoto.inpaint`, opencv-contrib): `fsr` is INPAINT_FSR_FAST;
`fsr_best` (INPAINT_FSR_BEST) is available but not run by default, as it is many times slower than the fast
variant, and two fills of `models.smooth_fill`: `harmonic` and `fast_biharmonic` (`biharmonic_cg`, 64
conjugate-gradient steps: the starting point of the shipped model, built with `prefill="biharmonic-cg"`, so
the table shows what the network adds).
`grain` (optional) is the model's fill with the copied high-pass texture layer of
`pipeline.stages.inpaint_grain` added, once per strength in `grain_alphas` (reported as `grain<alpha>`, e.g.
`grain0.5`; it reuses the model's fill when `model` runs too, and its seconds are the texture layer's only).
With `save_dir`, the model's composite and the mask of each case are written, and a contact sheet per case
(`sheets/<kind>/<bin>/<stem>.png`: masked input, each method's composite, truth, labelled).
A bin of a few images is a noisy figure, so
`masks_per_bin` draws several masks per image, kind and bin (mask r uses seed `seed + r`, so
`masks_per_bin=N` pools the runs of seeds seed..seed+N-1), and every figure carries its standard error
over the cases (`psnr_se`, `ssim_se`, `l1_hole_se`) and their count `n`.
Images are downscaled (INTER_AREA) so the long side is at most `long_side` px (default 512): biharmonic
solves a sparse system per hole region, and at full size it would take minutes per image; all methods see
the same downscaled image and mask.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.restoration import inpaint_biharmonic

from lab.eval.contact_sheet import write_contact_sheet
from lab.eval.texture_metrics import gmsd, gradient_ratio, haarpsi
from lab.paintings import IMAGE_SUFFIXES
from lab.synthesis.masks import BINS, KINDS, bin_name, mask_in_bin
from models.smooth_fill import biharmonic_cg, harmonic_fill
from pipeline.errors import InputError
from pipeline.io.image_io import from_float, read_image, write_png
from pipeline.stages.inpaint import dilate_hole, load_edited_mask
from pipeline.stages.inpaint_boxes import check_strategy, network_fill
from pipeline.stages.inpaint_grain import GrainConfig, add_grain

CLASSICAL = ("telea", "ns", "biharmonic", "fsr", "harmonic", "fast_biharmonic")
METHODS = ("model", *CLASSICAL)  # the default set
OPTIONAL = ("fsr_best", "grain")  # run only when asked for (fsr_best: slow; grain: one per grain strength)
ALL_METHODS = (*METHODS, *OPTIONAL)
FIGURES = ("psnr", "ssim", "l1_hole", "grad_ratio", "gmsd", "haarpsi")
GMSD_WIDEN = 2  # px: GMSD is scored over the hole dilated by this much (the fill's border counts)
CV2_RADIUS = 3
FAST_BIHARMONIC_STEPS = 64  # the shipped inpainter's prefill_iterations


@dataclass(frozen=True)
class EvalConfig:
    seed: int = 0
    long_side: int = 512
    tile: int = 512
    overlap: int = 64
    kinds: tuple[str, ...] = KINDS
    methods: tuple[str, ...] = METHODS
    masks_per_bin: int = 1
    strategy: str = "tiles"  # "boxes": the model runs on boxes around the damage, as the inpaint stage does
    margin: int = 24  # the boxes' context margin (px)
    grain_alphas: tuple[float, ...] = (0.5, 1.0)  # method `grain`: one result per strength
    grain_sigma: float = 3.0  # method `grain`: the high-pass band's Gaussian sigma (px)
    bf16: bool = False  # the model under bf16 autocast, as the inpaint stage's precision bf16

    def __post_init__(self) -> None:
        for alpha in self.grain_alphas:
            GrainConfig(alpha=alpha, sigma=self.grain_sigma)  # raises on a bad strength or sigma
        check_strategy(self.strategy)
        if self.masks_per_bin < 1:
            raise ValueError(f"masks_per_bin must be >= 1, got {self.masks_per_bin}")


def as_rgb8(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 for scoring: 16-bit scaled down, grey replicated, alpha dropped."""
    if image.dtype == np.uint16:
        image = np.rint(image.astype(np.float32) / 257.0).astype(np.uint8)
    if image.shape[2] in (1, 2):
        image = np.repeat(image[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def downscale(image: np.ndarray, long_side: int, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    h, w = image.shape[:2]
    scale = long_side / max(h, w)
    if scale >= 1:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=interpolation)


def classical_fill(method: str, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Composite of a classical method: (H, W, 3) uint8 image, (H, W) bool hole -> (H, W, 3) uint8."""
    if method in ("telea", "ns"):
        flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
        filled = cv2.inpaint(image, hole.astype(np.uint8) * 255, CV2_RADIUS, flag)
    elif method == "biharmonic":
        filled = from_float(inpaint_biharmonic(image.astype(np.float64) / 255.0, hole, channel_axis=-1), np.uint8)
    elif method in ("fsr", "fsr_best"):
        flag = cv2.xphoto.INPAINT_FSR_FAST if method == "fsr" else cv2.xphoto.INPAINT_FSR_BEST
        filled = np.zeros_like(image)
        cv2.xphoto.inpaint(image, (~hole).astype(np.uint8) * 255, filled, flag)  # xphoto's mask: non-zero = KNOWN
    elif method in ("harmonic", "fast_biharmonic"):
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0  # (1, 3, H, W)
        known = torch.from_numpy(~hole)[None, None].float()  # (1, 1, H, W)
        fill = harmonic_fill(x, known) if method == "harmonic" else biharmonic_cg(x, known, FAST_BIHARMONIC_STEPS)
        filled = from_float(fill[0].permute(1, 2, 0).numpy(), np.uint8)
    else:
        raise ValueError(f"unknown classical method {method!r}; use {', '.join((*CLASSICAL, *OPTIONAL))}")
    out = image.copy()
    out[hole] = filled[hole]
    return out


def grain_name(alpha: float) -> str:
    """The result key of method `grain` at strength `alpha`: 'grain0.5', 'grain1'."""
    return f"grain{alpha:g}"


def result_methods(result: dict[str, Any]) -> list[str]:
    """The methods of an `evaluate` result, in table order (model, its grain variants, the classical ones)."""
    grains = sorted((k for k in result if k.startswith("grain")), key=lambda k: float(k[5:]))
    order = ["model", *grains, *CLASSICAL, "fsr_best"]
    return [m for m in order if m in result]


def _model_fill(model: torch.nn.Module, clean: np.ndarray, hole: np.ndarray, cfg: EvalConfig) -> np.ndarray:
    return network_fill(clean, hole, model, strategy=cfg.strategy, tile=cfg.tile, overlap=cfg.overlap,
                        margin=cfg.margin, bf16=cfg.bf16)


def score(clean: np.ndarray, filled: np.ndarray, hole: np.ndarray) -> dict[str, float]:
    """PSNR, SSIM and HaarPSI of the whole composite, L1 over the hole ([0, 1] scale), gradient ratio inside the
    hole and GMSD over the hole widened by GMSD_WIDEN px (`lab.eval.texture_metrics`); 8-bit RGB inputs."""
    identical = np.array_equal(clean, filled)
    psnr = 100.0 if identical else float(peak_signal_noise_ratio(clean, filled, data_range=255))
    ssim = float(structural_similarity(clean, filled, channel_axis=2, data_range=255))
    diff = np.abs(clean.astype(np.float32) - filled.astype(np.float32)) / 255.0
    l1 = float(diff[hole].mean()) if hole.any() else 0.0
    return {"psnr": min(psnr, 100.0), "ssim": ssim, "l1_hole": l1,
            "grad_ratio": gradient_ratio(filled, clean, hole),
            "gmsd": gmsd(filled, clean, dilate_hole(hole, GMSD_WIDEN)),
            "haarpsi": 1.0 if identical else haarpsi(filled, clean)}


def mask_seed(seed: int, stem: str, kind: str, lo: float) -> int:
    digest = hashlib.sha256(f"{seed}/{stem}/{kind}/{lo:.2f}".encode()).hexdigest()
    return int(digest[:8], 16)


def ratio_bin(ratio: float) -> str:
    """The hole-ratio bin name ('0-10' ... '50-60', or '60-100') of a ratio."""
    for lo, hi in BINS:
        if ratio < hi:
            return bin_name(lo, hi)
    return "60-100"


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError(folder, "images folder not found")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(folder, "no images (png, jpg, tif) in folder")
    return files


def cases(
    images: Sequence[Path], masks_dir: Path | None, cfg: EvalConfig
) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(stem, 'kind/bin', clean RGB8 image, hole) for every image and mask to score."""
    out = []
    mask_files = {}
    if masks_dir is not None:
        mask_files = {p.stem: p for p in list_images(masks_dir)}
    for path in images:
        original = read_image(path)
        clean = downscale(as_rgb8(original), cfg.long_side)
        if masks_dir is not None:
            if path.stem not in mask_files:
                raise InputError(path, f"no mask with stem {path.stem!r} in {masks_dir}")
            hole = load_edited_mask(mask_files[path.stem], original.shape[:2])
            if clean.shape[:2] != hole.shape:
                small = cv2.resize(hole.astype(np.uint8), clean.shape[1::-1], interpolation=cv2.INTER_NEAREST)
                hole = small.astype(bool)
            out.append((path.stem, f"given/{ratio_bin(float(hole.mean()))}", clean, hole))
            continue
        for r in range(cfg.masks_per_bin):
            name = path.stem if r == 0 else f"{path.stem}-mask{r}"
            for kind in cfg.kinds:
                for lo, hi in BINS:
                    hole = mask_in_bin(kind, clean.shape[:2], lo, hi, mask_seed(cfg.seed + r, path.stem, kind, lo))
                    out.append((name, f"{kind}/{bin_name(lo, hi)}", clean, hole))
    return out


def evaluate(
    images: Sequence[Path],
    model: torch.nn.Module | None,
    cfg: EvalConfig = EvalConfig(),
    masks_dir: Path | None = None,
    save_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """{method: {'kind/bin': {figure, figure_se for each of FIGURES, n}}} over the cases, 'cases', 'settings'."""
    methods = [m for m in cfg.methods if m not in ("model", "grain") or model is not None]
    names = [n for m in methods for n in ([grain_name(a) for a in cfg.grain_alphas] if m == "grain" else [m])]
    per: dict[str, dict[str, list[dict[str, float]]]] = {m: {} for m in names}
    seconds = {m: 0.0 for m in names}
    for stem, key, clean, hole in cases(images, masks_dir, cfg):
        fills: dict[str, np.ndarray] = {}
        for method in methods:
            t0 = time.perf_counter()
            if method == "grain":
                net = fills["model"] if "model" in fills else _model_fill(model, clean, hole, cfg)
                for alpha in cfg.grain_alphas:
                    t1 = time.perf_counter()
                    filled = add_grain(net, clean, hole, GrainConfig(alpha=alpha, sigma=cfg.grain_sigma))
                    seconds[grain_name(alpha)] += time.perf_counter() - t1
                    per[grain_name(alpha)].setdefault(key, []).append(score(clean, filled, hole) | {"image": stem})
                    fills[grain_name(alpha)] = filled
                continue
            filled = _model_fill(model, clean, hole, cfg) if method == "model" else classical_fill(method, clean, hole)
            seconds[method] += time.perf_counter() - t0
            per[method].setdefault(key, []).append(score(clean, filled, hole) | {"image": stem})
            fills[method] = filled
            if save_dir is not None and method == "model":
                sub = save_dir if masks_dir is not None else save_dir / key
                write_png(sub / f"{stem}.png", filled)
                if masks_dir is None:
                    write_png(save_dir / "masks" / key / f"{stem}.png", hole.astype(np.uint8) * 255)
        if save_dir is not None:
            sheet = save_dir / "sheets" / (f"{stem}.png" if masks_dir is not None else f"{key}/{stem}.png")
            write_contact_sheet(sheet, clean, hole, fills, title=f"{stem}  {key}  hole {hole.mean():.1%}")
        if progress:
            progress(f"{stem} {key} done")
    result: dict[str, Any] = {m: {key: summary(rows) for key, rows in sorted(per[m].items())} for m in names}
    result["cases"] = {m: dict(sorted(per[m].items())) for m in names}  # every case's figures, for pairing
    result["settings"] = {
        "images": [p.name for p in images],
        "masks_dir": str(masks_dir) if masks_dir else None,
        "seed": cfg.seed,
        "masks_per_bin": cfg.masks_per_bin if masks_dir is None else None,
        "long_side": cfg.long_side,
        "tile": cfg.tile,
        "overlap": cfg.overlap,
        "strategy": cfg.strategy,
        "margin": cfg.margin if cfg.strategy == "boxes" else None,
        "grain": ({"alphas": list(cfg.grain_alphas), "sigma": cfg.grain_sigma} if "grain" in methods else None),
        "seconds": seconds,
    }
    return result


def standard_error(values: Sequence[float]) -> float:
    """Standard error of the mean of `values` (sample sd / sqrt(n)); 0 for a single value."""
    a = np.asarray(values, np.float64)
    return float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else 0.0


def summary(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean of each figure over the cases, its standard error (0 for one case) and the count `n`."""
    out: dict[str, float] = {}
    for k in FIGURES:
        if not all(k in r for r in rows):
            continue
        values = [r[k] for r in rows]
        out[k] = float(np.mean(values))
        out[f"{k}_se"] = standard_error(values)
    return out | {"n": len(rows)}


def compare(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per 'kind/bin': model minus the best classical method on PSNR and SSIM (positive = model wins).

    With the per-case figures of `evaluate` at hand, also the standard error of that margin over the paired
    cases (`psnr_se`, `ssim_se`: same image and mask for both methods, so image difficulty cancels).
    """
    classical = [m for m in (*CLASSICAL, *OPTIONAL) if m in result]
    out: dict[str, dict[str, float]] = {}
    if not classical:
        return out
    cases = result.get("cases", {})
    for key, fig in result.get("model", {}).items():
        out[key] = {}
        for metric in ("psnr", "ssim"):
            best = max(classical, key=lambda m: result[m][key][metric])
            out[key][metric] = fig[metric] - result[best][key][metric]
            if "model" in cases and best in cases:
                pairs = zip(cases["model"][key], cases[best][key], strict=True)
                out[key][f"{metric}_se"] = standard_error([a[metric] - b[metric] for a, b in pairs])
    return out


def write_json(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
