"""`retouch train inpainter` and `retouch evaluate inpaint`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from flows.cli.common import FLAG, clean_errors, start_flows, write_report
from pipeline.errors import InputError

# lab.eval.inpaint_eval.METHODS, spelled out so that `--help` does not import torch (a test keeps them equal)
DEFAULT_METHODS = "model,telea,ns,biharmonic,fsr,harmonic,fast_biharmonic"

if TYPE_CHECKING:
    import torch


def register(train_app: typer.Typer, evaluate_app: typer.Typer) -> None:
    """Add the inpainter commands to the `train` and `evaluate` command groups."""
    train_app.command("inpainter")(train_inpainter_command)
    evaluate_app.command("inpaint")(evaluate_inpaint_command)
    evaluate_app.command("ghost")(evaluate_ghost_command)
    evaluate_app.command("restored")(clean_errors(evaluate_restored_command))


def train_inpainter_command(
    phase1_steps: Annotated[int | None, typer.Option(help="steps with batch norm training (default 3000)")] = None,
    phase2_steps: Annotated[int | None, typer.Option(help="fine-tune steps, encoder BN frozen (default 1000)")] = None,
    tile: Annotated[int | None, typer.Option(help="training tile side, multiple of 2**depth")] = None,
    batch: Annotated[int | None, typer.Option(help="tiles per step")] = None,
    depth: Annotated[int | None, typer.Option(help="U-Net depth (encoder layers)")] = None,
    base_channels: Annotated[int | None, typer.Option(help="channels of the first layer")] = None,
    feature_net: Annotated[
        str | None, typer.Option(help="'none' (default: L1 + TV only), 'random', 'vgg16:FILE.safetensors' or "
                                      "'detector:NAME' (a detector's encoder from the weights manifest)")
    ] = None,
    prefill: Annotated[
        str | None, typer.Option(help="'none' (the paper's network), or 'harmonic', 'biharmonic' (Jacobi) or "
                                      "'biharmonic-cg' (conjugate gradients): predict a correction to that fill")
    ] = None,
    prefill_iterations: Annotated[
        int | None,
        typer.Option(help="iterations of the prefill (default: the fill's own: 16 biharmonic, 32 biharmonic-cg)"),
    ] = None,
    init_weights: Annotated[
        str | None, typer.Option(help="safetensors file to start from (tensors of matching name and shape)")
    ] = None,
    hole_norm: Annotated[
        str | None, typer.Option(help="'image' (the paper's L_hole) or 'hole' (each image's hole L1 averaged over "
                                      "its own hole, so small holes and thin cracks weigh as much as large ones)")
    ] = None,
    refine: Annotated[
        int | None, typer.Option(help="channels of a full-resolution refinement branch (default 0: none)")
    ] = None,
    refine_only: Annotated[
        bool, typer.Option("--refine-only", help="train that branch only, the rest kept as --init-weights",
                           metavar=FLAG)
    ] = False,
    psnr_weight: Annotated[
        float | None, typer.Option(help="weight of minus each composite's PSNR (dB) in the loss (default 0: off)")
    ] = None,
    decoder_only: Annotated[
        bool, typer.Option("--decoder-only", help="train the decoder and refinement branch, the encoder kept as "
                           "--init-weights", metavar=FLAG)
    ] = False,
    perceptual_weight: Annotated[float | None, typer.Option(help="perceptual loss weight (default 0.05)")] = None,
    style_weight: Annotated[float | None, typer.Option(help="style (Gram) loss weight (default 120)")] = None,
    tv_weight: Annotated[float | None, typer.Option(help="total-variation weight (default 0.1)")] = None,
    adv_weight: Annotated[
        float | None, typer.Option(help="weight of the patch discriminator's adversarial term (default 0: none)")
    ] = None,
    adv_loss: Annotated[str | None, typer.Option(help="'hinge' (default) or 'nsgan' (non-saturating)")] = None,
    threads: Annotated[int | None, typer.Option(help="torch threads")] = None,
    run_dir: Annotated[str | None, typer.Option(help="checkpoints and log (resumes from here)")] = None,
    ship: Annotated[bool, typer.Option(help="save the final weights to the manifest as inpainter-pconv",
                                       metavar=FLAG)] = True,
    no_flow: Annotated[bool, typer.Option("--no-flow", help="run without Prefect", metavar=FLAG)] = False,
) -> None:
    """Train the partial-convolution U-Net inpainter (resumable) and ship its weights."""
    overrides = {
        k: v
        for k, v in {
            "phase1_steps": phase1_steps, "phase2_steps": phase2_steps, "tile": tile, "batch": batch,
            "depth": depth, "base_channels": base_channels, "feature_net": feature_net, "prefill": prefill,
            "prefill_iterations": prefill_iterations, "init_weights": init_weights, "threads": threads,
            "run_dir": run_dir, "hole_norm": hole_norm, "psnr_weight": psnr_weight, "refine": refine,
            "refine_only": refine_only or None, "decoder_only": decoder_only or None,
            "perceptual_weight": perceptual_weight, "style_weight": style_weight, "tv_weight": tv_weight,
            "adv_weight": adv_weight, "adv_loss": adv_loss,
        }.items()
        if v is not None
    }
    @clean_errors
    def run() -> None:
        from lab.inpainter_config import InpainterTrainConfig

        InpainterTrainConfig(**overrides)  # a bad setting fails here, in one line, before Prefect starts
        if no_flow:
            from flows.train import run_inpainter_training

            summary = run_inpainter_training(overrides, ship)
        else:
            start_flows()  # before Prefect is imported
            from flows.train import train_inpainter_flow

            summary = train_inpainter_flow(overrides, ship)
        typer.echo(json.dumps(summary, indent=2))

    run()


def _load_model(name: str) -> torch.nn.Module:
    from pipeline.stages.inpaint import load_inpainter

    return load_inpainter(name)


def _checkpoint_model(path: Path) -> torch.nn.Module:
    from lab.train_inpainter import model_from_checkpoint
    from pipeline.errors import InputError

    if not path.exists():
        raise InputError(path, "checkpoint not found")
    return model_from_checkpoint(path)


def evaluate_inpaint_command(
    images: Annotated[Path | None, typer.Option(help="folder of clean images (PNG/TIFF/JPEG)")] = None,
    split: Annotated[
        str | None, typer.Option(help="instead of --images: the 'val' (held-out) or 'train' paintings")
    ] = None,
    masks: Annotated[
        Path | None, typer.Option(help="folder of hole masks paired by file stem (default: seeded masks)")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the generated masks")] = 0,
    masks_per_bin: Annotated[
        int, typer.Option(help="generated masks per image, kind and bin (mask r uses seed + r)", min=1)
    ] = 1,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the figures here")] = None,
    save: Annotated[
        Path | None, typer.Option(help="write the model's composites (PNG, by stem) and a contact sheet per case "
                                       "(sheets/: masked input, each method, truth) here")
    ] = None,
    weights: Annotated[str, typer.Option(help="manifest name of the inpainter weights")] = "inpainter-pconv",
    checkpoint: Annotated[
        Path | None, typer.Option(help="evaluate a training checkpoint (safetensors) instead of --weights")
    ] = None,
    long_side: Annotated[int, typer.Option(help="downscale images to this long side first (px)")] = 512,
    tile: Annotated[int, typer.Option(help="inference tile side")] = 512,
    overlap: Annotated[int, typer.Option(help="overlap of inference tiles")] = 64,
    strategy: Annotated[Literal["tiles", "boxes"], typer.Option(
        help="the model on every tile, or on boxes around the damage as the inpaint stage runs it")] = "tiles",
    margin: Annotated[int, typer.Option(help="context around each damage box, px (--strategy boxes)", min=0)] = 24,
    kinds: Annotated[str, typer.Option(help="mask kinds, comma-separated")] = "irregular,craquelure,paint_loss",
    methods: Annotated[
        str, typer.Option(help="methods, comma-separated (also: fsr_best, FSR's slow variant, 20-130 s per case; "
                               "grain, the model's fill plus the copied texture layer, one per --grain-alpha)")
    ] = DEFAULT_METHODS,
    grain_alpha: Annotated[str, typer.Option(help="method grain: texture strengths, comma-separated")] = "0.5,1",
    grain_sigma: Annotated[float, typer.Option(help="method grain: high-pass Gaussian sigma, px", min=0.5,
                                               max=32.0)] = 3.0,
    threads: Annotated[int, typer.Option(help="torch threads for the model (0: torch's default)")] = 0,
    bf16: Annotated[bool, typer.Option("--bf16", help="the model under bf16 autocast (the inpaint stage's "
                                                      "--precision bf16)", metavar=FLAG)] = False,
) -> None:
    """Score the inpainter against Telea/NS/FSR (OpenCV), biharmonic (skimage) and our two fast fills, per kind/bin.

    Figures: PSNR, SSIM, L1 in the hole, and the texture measures gradient ratio (fill / truth in the hole),
    GMSD (hole + 2 px) and HaarPSI, each a mean over the cases with its standard error.
    """
    from lab.eval.inpaint_eval import EvalConfig, compare, evaluate, write_json

    @clean_errors
    def run() -> None:
        if threads > 0:
            import torch

            torch.set_num_threads(threads)
        from lab.eval.inpaint_eval import CLASSICAL, OPTIONAL
        from lab.synthesis.masks import KINDS

        cfg = EvalConfig(seed=seed, masks_per_bin=masks_per_bin, long_side=long_side, tile=tile, overlap=overlap,
                         strategy=strategy, margin=margin, kinds=_names(kinds, KINDS, "--kinds"),
                         methods=_names(methods, ("model", *CLASSICAL, *OPTIONAL), "--methods"),
                         grain_alphas=_floats(grain_alpha, "--grain-alpha", 0.0, 4.0), grain_sigma=grain_sigma,
                         bf16=bf16)
        model = None
        if "model" in cfg.methods or "grain" in cfg.methods:
            model = _checkpoint_model(checkpoint) if checkpoint else _load_model(weights)
        result = evaluate(_image_list(images, split), model, cfg, masks_dir=masks, save_dir=save)
        if model is not None:
            result["weights"] = _weights_info(weights, checkpoint)
        typer.echo(format_table(result, compare(result)))
        typer.echo(format_texture_table(result))
        if json_out:
            write_json(result, json_out)
            typer.echo(f"wrote {json_out}")

    run()


def evaluate_ghost_command(
    images: Annotated[Path | None, typer.Option(help="folder of clean images (PNG/TIFF/JPEG)")] = None,
    split: Annotated[str | None, typer.Option(help="instead of --images: the 'val' or 'train' paintings")] = None,
    rules: Annotated[
        str, typer.Option(help="fill regions, comma-separated: 'dilate:N' (the stage's --dilate N; default 2) or "
                               "'width:R' (craquelure grown by its half-width + R, paint loss by R + 1)")
    ] = "dilate:2,width:1",
    copies: Annotated[int, typer.Option(help="damaged copies per image (held-out seeds)", min=1)] = 2,
    long_side: Annotated[int, typer.Option(help="downscale images to this long side first (px)")] = 768,
    weights: Annotated[str, typer.Option(help="manifest name of the inpainter weights")] = "inpainter-pconv",
    json_out: Annotated[Path | None, typer.Option("--json", help="write the figures here")] = None,
    threads: Annotated[int, typer.Option(help="torch threads for the model (0: torch's default)")] = 0,
    style: Annotated[Literal["classic", "realistic"], typer.Option(
        help="the damage generator (DamageConfig.style): 'realistic' is the one the detector trains on and the "
             "bundled sample shows; 'classic' the one of the 2026-12-02 records")] = "realistic",
    strategy: Annotated[Literal["boxes", "tiles"], typer.Option(
        help="the network on boxes around the damage, as the inpaint stage runs it, or on every tile holding a "
             "hole (the stage's --strategy)")] = "boxes",
    tile: Annotated[int, typer.Option(help="network tile side (the inpaint stage's: 256)", min=32)] = 256,
    grain: Annotated[float, typer.Option(help="the copied texture layer's strength (the inpaint stage's --grain; "
                                              "0: the network's fill alone)", min=0.0, max=4.0)] = 1.0,
) -> None:
    """Ghost contrast: mean |restored - clean| in the 3 px band beside synthetic damage, per fill-region rule,
    with the fill of the inpaint stage at its defaults (boxes, texture layer) unless told otherwise."""

    @clean_errors
    def run() -> None:
        import numpy as np

        from lab.eval.ghost import evaluate_ghost, fill_region, stage_fill
        from lab.eval.inpaint_eval import write_json

        rule_list = tuple(r.strip() for r in rules.split(",") if r.strip())
        for rule in rule_list:  # a bad rule fails here, in one line, before any work
            try:
                fill_region(np.zeros((1, 1), np.uint8), rule)
            except ValueError as exc:
                raise typer.BadParameter(str(exc)) from None
        if threads > 0:
            import torch

            torch.set_num_threads(threads)
        model = _load_model(weights)
        fill = stage_fill(model, strategy=strategy, tile=tile, grain=grain)
        result = evaluate_ghost(_image_list(images, split), fill, rule_list, copies=copies, long_side=long_side,
                                style=style)
        result["settings"].update(strategy=strategy, tile=tile, grain=grain)
        result["weights"] = _weights_info(weights, None)
        typer.echo(format_ghost_table(result))
        if json_out:
            write_json(result, json_out)
            typer.echo(f"wrote {json_out}")

    run()


def evaluate_restored_command(
    store: Annotated[str, typer.Argument(help="a store restored by `retouch run` (or detect and inpaint)")],
    clean: Annotated[Path | None, typer.Option(help="the clean picture, photographed as the scan was")] = None,
    labels: Annotated[Path | None, typer.Option(help="the true damage labels (0 none, 1 craquelure, 2 loss)")] = None,
    sample: Annotated[bool, typer.Option(help="the store holds the bundled sample: its clean picture and labels "
                                              "are made again by the damage generator")] = False,
    visible: Annotated[float, typer.Option(help="a change of at least this (max over channels, of 1) is visible",
                                           min=0.001, max=1.0)] = 0.06,
    save: Annotated[Path | None, typer.Option(help="write residual-map.png here (unfilled visible damage in "
                                                   "magenta, intact paint painted over in yellow)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the figures here")] = None,
) -> None:
    """What the restoration left and what it painted over, against the clean picture: per damage class and
    contrast band the share left unfilled, and the intact paint the fill replaced."""
    from lab.eval.residual import contrast, format_residual, read_restored_store, residual_map, residual_report
    from pipeline.io.image_io import read_image, read_mask, write_png

    given = (clean is not None, labels is not None)
    if (sample and any(given)) or (not sample and not all(given)):
        raise typer.BadParameter("give --sample, or both --clean and --labels")
    scan, restored, _, fill, params = read_restored_store(store)
    if sample:
        from lab.make_samples import DAMAGED, LABELS, sample_truth

        clean_image, truth = sample_truth()
        clean, labels = DAMAGED, LABELS  # the clean picture is made at the damaged one's size
    else:
        clean_image, truth = read_image(clean), read_mask(labels)
    for path, shape in ((clean, clean_image.shape[:2]), (labels, truth.shape)):
        if shape != scan.shape[:2]:
            raise InputError(path, f"is {shape[1]}x{shape[0]} but the store's scan is {scan.shape[1]}x{scan.shape[0]}")
    dilate = int(params.get("dilate", 0))
    report = residual_report(scan, restored, clean_image, truth, fill, dilate=dilate, visible=visible)
    report.update({"store": store, "inpaint_params": params,
                   "truth": "sample" if sample else {"clean": str(clean), "labels": str(labels)}})
    typer.echo(format_residual(report))
    if save is not None:
        out = save / "residual-map.png"
        write_png(out, residual_map(scan, truth, fill, contrast(scan, clean_image), dilate, visible))
        report["map"] = str(out)
        typer.echo(f"wrote {out}")
    write_report(json_out, report)


def format_ghost_table(result: dict) -> str:
    """One line per rule: ghost contrast (x 1000, [0, 1] scale) beside the damage, by class, beside the fill."""
    keys = ("ghost", "ghost_craquelure", "ghost_paint_loss", "ghost_outside_fill")
    lines = [f"{'rule':<12}" + "".join(f"{k:>24}" for k in keys) + f"{'PSNR dB':>16}{'filled':>9}{'n':>4}"
             + "   (ghost: mean |restored - clean| x 1000 in the 3 px band, +- se)"]
    for rule, f in result.items():
        if rule in ("settings", "weights", "cases"):
            continue
        row = f"{rule:<12}" + "".join(f"{1000 * f[k]:>15.2f} +- {1000 * f[k + '_se']:5.2f}" for k in keys)
        lines.append(row + f"{f['psnr']:>9.2f}+-{f['psnr_se']:.2f}{f['fill_ratio']:>9.2%}{f['n']:>4}")
    return "\n".join(lines)


def _weights_info(weights: str, checkpoint: Path | None) -> dict[str, str]:
    """What was scored: the checkpoint file, or the manifest entry (name, file, sha256) of the weights."""
    from models.weights import get_entry

    if checkpoint is not None:
        return {"checkpoint": str(checkpoint)}
    entry = get_entry(weights)
    return {"name": entry.name, "file": entry.file, "sha256": entry.sha256}


def _floats(text: str, option: str, low: float = -math.inf, high: float = math.inf) -> tuple[float, ...]:
    """Comma-separated finite numbers in [low, high]; anything else is a usage error."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(f"{option}: comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(v) and low <= v <= high for v in values):
        raise typer.BadParameter(f"{option}: numbers in [{low:g}, {high:g}], got {text!r}")
    return values


def _names(value: str, allowed: tuple[str, ...], option: str) -> tuple[str, ...]:
    """A comma-separated choice, checked before any work: a name not in `allowed` is a usage error."""
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        what = f"unknown {', '.join(map(repr, unknown))}" if unknown else "no name given"
        raise typer.BadParameter(f"{option}: {what}; choose from {', '.join(allowed)}")
    return names


def _image_list(images: Path | None, split: str | None) -> list[Path]:
    from lab.eval.inpaint_eval import list_images
    from lab.paintings import paintings

    if (images is None) == (split is None):
        raise typer.BadParameter("give exactly one of --images DIR and --split val|train")
    if images is not None:
        return list_images(images)
    if split not in ("val", "train"):
        raise typer.BadParameter(f"--split must be 'val' or 'train', got {split!r}")
    files = paintings(split)
    if not files:
        raise typer.BadParameter(f"no {split!r} paintings found (is ../shared/data there?)")
    return files


def format_table(result: dict, margins: dict) -> str:
    """One line per kind/bin: PSNR / SSIM / L1-hole of each method and the model's margin over the best."""
    from lab.eval.inpaint_eval import result_methods

    methods = result_methods(result)
    head = "   margin dPSNR  dSSIM  (paired standard error)"
    lines = [f"{'kind/bin':<22}" + "".join(f"{m:>24}" for m in methods) + head]
    for key in result[methods[0]]:
        row = f"{key:<22}"
        for m in methods:
            f = result[m][key]
            row += f"{f['psnr']:>9.2f} {f['ssim']:.4f} {f['l1_hole']:.4f}"
        if key in margins:
            m = margins[key]
            row += f"   {m['psnr']:+8.2f} {m['ssim']:+.4f}"
            if "psnr_se" in m:
                row += f"  (se {m['psnr_se']:.2f} dB, {m['ssim_se']:.4f}; n {result['model'][key]['n']})"
        lines.append(row)
    return "\n".join(lines)


def format_texture_table(result: dict) -> str:
    """One line per kind/bin: each method's gradient ratio (fill / truth, 1 is right) and GMSD (lower is better)."""
    from lab.eval.inpaint_eval import result_methods

    methods = result_methods(result)
    lines = ["texture: gradient ratio +- se / GMSD +- se (hole + 2 px)",
             f"{'kind/bin':<22}" + "".join(f"{m:>28}" for m in methods)]
    for key in result[methods[0]]:
        row = f"{key:<22}"
        for m in methods:
            f = result[m][key]
            row += f"  {f['grad_ratio']:5.2f}+-{f['grad_ratio_se']:.2f} {f['gmsd']:.3f}+-{f['gmsd_se']:.3f}"
        lines.append(row)
    return "\n".join(lines)
