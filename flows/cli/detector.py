"""`retouch train detector`, `train baseline`, `evaluate detect`, `evaluate intact`, `evaluate thin-lines` and
`evaluate adapt`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import (
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
    FLAG,
    AgreementAreaOpt,
    BorderOpt,
    CoarseLossOpt,
    LossAgreementOpt,
    MinCrackOpt,
    PaintLikeOpt,
    ScaleOpt,
    SecondViewOpt,
    StraightOpt,
    TtaOpt,
    check_second_view,
    check_tta,
    clean_errors,
    start_flows,
    write_report,
)


def register(train_app: typer.Typer, evaluate_app: typer.Typer) -> None:
    """Add the detector commands to the `train` and `evaluate` command groups."""
    train_app.command("detector")(clean_errors(train_detector_command))
    train_app.command("baseline")(clean_errors(train_baseline_command))
    evaluate_app.command("detect")(clean_errors(evaluate_detect_command))
    evaluate_app.command("make-detect-set")(clean_errors(make_detect_set_command))
    evaluate_app.command("detect-styles")(clean_errors(detect_styles_command))
    evaluate_app.command("intact")(clean_errors(evaluate_intact_command))
    evaluate_app.command("thin-lines")(clean_errors(evaluate_thin_lines_command))
    evaluate_app.command("adapt")(clean_errors(evaluate_adapt_command))


def train_detector_command(
    steps: Annotated[int | None, typer.Option(help="optimizer steps (default 1800)")] = None,
    tile: Annotated[int | None, typer.Option(help="training tile side, multiple of 32")] = None,
    batch: Annotated[int | None, typer.Option(help="tiles per step")] = None,
    encoder: Annotated[str | None, typer.Option(help="resnet18 or resnet34")] = None,
    lr: Annotated[float | None, typer.Option(help="peak learning rate")] = None,
    threads: Annotated[int | None, typer.Option(help="torch threads")] = None,
    max_minutes: Annotated[float | None, typer.Option(help="stop and ship after this many minutes")] = None,
    run_dir: Annotated[str | None, typer.Option(help="checkpoints and logs (resumes from here)")] = None,
    weights_name: Annotated[str | None, typer.Option(help="manifest name of the shipped weights")] = None,
    refine: Annotated[int | None, typer.Option(help="channels of the full-resolution refinement branch "
                                                     "(0 = none)")] = None,
    init_weights: Annotated[str | None, typer.Option(help="weights file or training checkpoint to start from "
                                                           "(tensors of matching name and shape)")] = None,
    loss: Annotated[str | None, typer.Option(help="dice+bce (default), dice+focal or lovasz+bce")] = None,
    skeleton_weight: Annotated[float | None, typer.Option(help="weight of the craquelure skeleton-recall term "
                                                               "added to the loss (default 0: none)")] = None,
    region_weight: Annotated[float | None, typer.Option(help="weight of the paint-loss region-recall term "
                                                             "added to the loss (default 0: none)")] = None,
    snapshot_every: Annotated[int | None, typer.Option(help="keep the weights every N steps in "
                                                            "<run-dir>/snapshots (0 = none)")] = None,
    average_from: Annotated[int | None, typer.Option(help="ship the uniform average of the snapshots from "
                                                          "this step on, not the best (with --snapshot-every)")] = None,
    free_cracks: Annotated[float | None, typer.Option(help="share of tiles whose cracks are isolated meandering "
                                                          "cracks instead of a network (default 0)")] = None,
    texture: Annotated[float | None, typer.Option(help="share of tiles overlaid with a grainy surface "
                                                      "texture first (default 0)")] = None,
    dark_cracks: Annotated[float | None, typer.Option(help="share of crack networks filled with dark dirt rather "
                                                          "than showing the light ground (default 0.7)")] = None,
    crack_contrast: Annotated[str | None, typer.Option(help="LO,HI: how strongly a crack replaces the paint "
                                                            "(default 0.55,0.95; lower LO teaches faint "
                                                            "cracks)")] = None,
    damage_style: Annotated[str | None, typer.Option(help="the damage generator: classic or realistic "
                                                          "(default classic)")] = None,
    faint_cracks: Annotated[float | None, typer.Option(help="realistic style: share of images whose cracks are "
                                                           "faint (default 0.2)")] = None,
    crack_width: Annotated[str | None, typer.Option(help="realistic style: LO,HI px, the widest crack of a main "
                                                         "network (default 1.2,2.8)")] = None,
    loss_size_of: Annotated[int | None, typer.Option(help="realistic style: draw paint-loss sizes as on an image "
                                                          "with this shorter side, px (default 0: the tile's "
                                                          "own)")] = None,
    stroke_negatives: Annotated[float | None, typer.Option(help="realistic style: share of images that also get "
                                                               "dark brushstrokes 3-6 px wide and birds painted "
                                                               "in, unlabelled (default 0)")] = None,
    real_val_images: Annotated[str | None, typer.Option(help="real crack photos scored (craquelure F1) at every "
                                                           "evaluation; monitoring only, never trained on")] = None,
    real_val_masks: Annotated[str | None, typer.Option(help="their masks (same file stems)")] = None,
    real_val_mask_value: Annotated[int | None, typer.Option(help="only this mask value is a crack "
                                                                 "(UAV75: 255; default any nonzero)")] = None,
    teacher: Annotated[str | None, typer.Option(help="manifest name of a detector to distil into this one: its "
                                                     "probabilities become the training targets")] = None,
    teacher_weight: Annotated[float | None, typer.Option(help="target = w * teacher probability + (1 - w) * "
                                                              "label (default 1)")] = None,
    teacher_views: Annotated[int | None, typer.Option(help="average the teacher's probabilities over 1, 2, 4 or "
                                                           "8 flipped views, as --tta does (default 1)")] = None,
    teacher_classes: Annotated[str | None, typer.Option(help="comma-separated classes whose targets the teacher "
                                                             "mixes into (default all)")] = None,
    real_train: Annotated[list[str] | None, typer.Option(help="IMAGES_DIR:MASKS_DIR[:MASK_VALUE] of real crack "
                                                            "photos to train on (training splits only; "
                                                            "repeatable)")] = None,
    real_fraction: Annotated[float | None, typer.Option(help="share of tiles cropped from the real pairs")] = None,
    clean_fraction: Annotated[float | None, typer.Option(help="share of tiles that are undamaged painting crops "
                                                              "with all-zero targets (intact paint)")] = None,
    no_flow: Annotated[bool, typer.Option("--no-flow", help="run without Prefect", metavar=FLAG)] = False,
) -> None:
    """Train the damage detector (resumable) and ship the best weights to the manifest."""
    overrides = {k: v for k, v in {
        "steps": steps, "tile": tile, "batch": batch, "encoder": encoder, "lr": lr, "threads": threads,
        "max_minutes": max_minutes, "run_dir": run_dir, "weights_name": weights_name, "refine": refine,
        "init_weights": init_weights, "loss": loss, "skeleton_weight": skeleton_weight,
        "region_weight": region_weight, "snapshot_every": snapshot_every,
        "average_from": average_from, "real_val_images": real_val_images, "real_val_masks": real_val_masks,
        "real_val_mask_value": real_val_mask_value, "teacher": teacher,
        "teacher_weight": teacher_weight, "teacher_views": teacher_views,
        "teacher_classes": teacher_classes.split(",") if teacher_classes else None,
        "real_train": list(real_train) if real_train else None, "real_fraction": real_fraction,
        "clean_fraction": clean_fraction}.items() if v is not None}
    from lab.detector_config import config_from_overrides, damage_overrides
    from pipeline.errors import ConfigError

    try:  # refuse bad settings in one line before any work (or flow run) starts
        if damage := damage_overrides(free_cracks, texture, dark_cracks, crack_contrast, damage_style,
                                       faint_cracks, crack_width, loss_size_of, strokes=stroke_negatives):
            overrides["damage"] = damage
        cfg = config_from_overrides(**overrides)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    if cfg.teacher:
        from models.weights import get_entry

        get_entry(cfg.teacher)  # an unknown teacher is refused (WeightsError, one line) before training starts
    if no_flow:
        from lab.train_detector import train_detector

        summary = train_detector(cfg)
    else:
        start_flows()  # before Prefect is imported
        from flows.train import train_detector_flow

        summary = train_detector_flow(overrides)
    typer.echo(json.dumps({k: summary[k] for k in ("steps", "minutes", "shipped") if k in summary}, indent=2))


def train_baseline_command(
    tiles: Annotated[int, typer.Option(help="damaged training tiles for the grid search")] = 24,
    out: Annotated[Path | None, typer.Option(help="parameter file (default models/weights/baseline.json)")] = None,
) -> None:
    """Tune the classical baseline's parameters by grid search on TRAIN paintings only."""
    from lab.eval.baseline import BASELINE_PATH, tune_baseline

    result = tune_baseline(n_tiles=tiles, out=out or BASELINE_PATH)
    typer.echo(json.dumps(result, indent=2))


def evaluate_detect_command(
    images: Annotated[Path, typer.Option(help="folder of images (PNG/TIFF/JPEG, 8/16 bit, grey or colour)")],
    masks: Annotated[Path, typer.Option(help="folder of masks with the same file stems")],
    classes: Annotated[str, typer.Option(help="classes to score, comma-separated")] = "craquelure,paint_loss",
    json_out: Annotated[Path | None, typer.Option("--json", help="write the figures here")] = None,
    save: Annotated[Path | None, typer.Option(help="write predicted 0/255 maps per class here")] = None,
    tolerance: Annotated[float, typer.Option(help="also score with this distance tolerance (px)")] = 2.0,
    weights: Annotated[str, typer.Option(help="manifest name of the detector weights")] = DEFAULT_WEIGHTS,
    bf16: Annotated[bool, typer.Option(help="bf16 autocast inference", metavar=FLAG)] = False,
    mask_value: Annotated[int | None, typer.Option(help="only this mask value is damage (e.g. 255)")] = None,
    no_baseline: Annotated[bool, typer.Option("--no-baseline", help="skip the classical baseline",
                                              metavar=FLAG)] = False,
    tta: TtaOpt = DEFAULT_TTA,
    second_view: SecondViewOpt = DEFAULT_SECOND_VIEW,
    loss_agreement: LossAgreementOpt = DEFAULT_LOSS_AGREEMENT,
    agreement_area: AgreementAreaOpt = DEFAULT_AGREEMENT_AREA,
    coarse_loss: CoarseLossOpt = DEFAULT_COARSE_LOSS,
    min_crack: MinCrackOpt = DEFAULT_MIN_CRACK,
    straight: StraightOpt = DEFAULT_STRAIGHT,
    paint_like: PaintLikeOpt = DEFAULT_PAINT_LIKE,
    border: BorderOpt = DEFAULT_BORDER,
    scale: ScaleOpt = DEFAULT_SCALE,
    split: Annotated[str, typer.Option(help="all, or train/test of a set whose split is fixed in code "
                                            "(CrackForest: lab.real_cracks.crackforest_split)")] = "all",
) -> None:
    """Score the shipped detector and the classical baseline against masks (strict and tolerant)."""
    from lab.eval.detect_eval import EvalOptions, evaluate_detect, format_report

    opts = EvalOptions(classes=tuple(c.strip() for c in classes.split(",") if c.strip()),
                       tolerance=tolerance, weights=weights, bf16=bf16, mask_value=mask_value,
                       baseline=not no_baseline, save_dir=save, tta=check_tta(tta), split=split,
                       second_view=check_second_view(second_view), loss_agreement=loss_agreement,
                       agreement_area=agreement_area,
                       coarse_loss=coarse_loss, min_crack=min_crack, straight=straight, paint_like=paint_like,
                       border=border,
                       scale=scale)
    report = evaluate_detect(images, masks, opts)
    typer.echo(format_report(report))
    write_report(json_out, report)


def make_detect_set_command(
    out: Annotated[Path, typer.Argument(help="folder to write images/ and masks/ into")],
    split: Annotated[str, typer.Option(help="paintings to damage: val (held out) or train")] = "val",
    copies: Annotated[int, typer.Option(help="damaged versions of each painting")] = 3,
    seed: Annotated[int, typer.Option(help="seed (the training never uses seeds >= 10**9)")] = 1_000_000_007,
    style: Annotated[str, typer.Option(help="damage generator: classic (the recorded sets) or realistic")] = "classic",
    enlarge: Annotated[float, typer.Option(help="write the set as a scan at this many times the paintings' "
                                                "resolution shows it (bicubic; labels nearest)", min=1.0,
                                           max=8.0)] = 1.0,
) -> None:
    """Write a held-out synthetic evaluation set: damaged paintings + 0/1/2 label masks."""
    from lab.eval.detect_eval import make_synthetic_set

    if style not in ("classic", "realistic"):
        raise typer.BadParameter(f"unknown damage style {style!r}; use classic or realistic", param_hint="--style")
    paths = make_synthetic_set(out, split=split, copies=copies, seed=seed, style=style, enlarge=enlarge)
    typer.echo(f"wrote {len(paths)} images to {out}/images and label masks to {out}/masks")


def detect_styles_command(
    weights: Annotated[str, typer.Option(help="manifest name of the detector weights")] = DEFAULT_WEIGHTS,
    copies: Annotated[int, typer.Option(min=1, help="seeded crops per VAL painting, style and fill")] = 2,
    crop: Annotated[int, typer.Option(min=64, help="crop side (px)")] = 512,
    seed: Annotated[int, typer.Option(help="first seed")] = 7_000_000,
    no_baseline: Annotated[bool, typer.Option("--no-baseline", help="skip the classical baseline",
                                              metavar=FLAG)] = False,
    tta: TtaOpt = DEFAULT_TTA,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the figures here")] = None,
) -> None:
    """Craquelure scores per crack style (canvas, panel, fine, isotropic, wide), fill (dark, light) and crack
    contrast (faint, medium, default)."""
    from lab.detector_data import load_paintings
    from lab.eval.detect_eval import EvalOptions, _load_model
    from lab.eval.detect_styles import format_styles, style_breakdown
    from lab.paintings import paintings
    from pipeline.io.image_io import to_float
    from pipeline.stages.detect_infer import predict_probabilities

    images = load_paintings(paintings("val"))  # as training sees them: RGB, alpha dropped
    if not images:
        raise FileNotFoundError("no VAL paintings found (is ../shared/data present?)")
    opts = EvalOptions(weights=weights, tta=check_tta(tta))
    model, weights_info = _load_model(opts)
    report: dict = {"weights": weights_info, "copies": copies, "crop": crop, "seed": seed, "tta": tta}

    def model_map(image):  # noqa: ANN001, ANN202
        return predict_probabilities(model, to_float(image), tile=opts.tile, overlap=opts.overlap, views=tta)[0]

    report["model"] = style_breakdown(model_map, images, copies, crop, seed)
    typer.echo(f"model {weights_info['name']} ({weights_info['sha256'][:12]})\n" + format_styles(report["model"]))
    if not no_baseline:
        from lab.eval.baseline import baseline_predict, load_baseline

        params = load_baseline()
        report["baseline"] = style_breakdown(lambda image: baseline_predict(image, params)[0], images, copies, crop,
                                             seed)
        typer.echo("classical baseline\n" + format_styles(report["baseline"]))
    write_report(json_out, report)


def evaluate_intact_command(
    weights: Annotated[str, typer.Option(help="manifest name of the detector weights")] = DEFAULT_WEIGHTS,
    tta: TtaOpt = DEFAULT_TTA,
    second_view: SecondViewOpt = DEFAULT_SECOND_VIEW,
    loss_agreement: LossAgreementOpt = DEFAULT_LOSS_AGREEMENT,
    agreement_area: AgreementAreaOpt = DEFAULT_AGREEMENT_AREA,
    threshold: Annotated[float, typer.Option(help="probability above which a pixel is flagged")] = 0.5,
    bf16: Annotated[bool, typer.Option(help="bf16 autocast inference")] = False,
    coarse_loss: CoarseLossOpt = DEFAULT_COARSE_LOSS,
    min_crack: MinCrackOpt = DEFAULT_MIN_CRACK,
    straight: StraightOpt = DEFAULT_STRAIGHT,
    paint_like: PaintLikeOpt = DEFAULT_PAINT_LIKE,
    border: BorderOpt = DEFAULT_BORDER,
    scale: ScaleOpt = DEFAULT_SCALE,
    enlarge: Annotated[float, typer.Option(help="check each painting as a scan at this many times its resolution "
                                                "would show it (bicubic)", min=1.0, max=8.0)] = 1.0,
    save: Annotated[Path | None, typer.Option(help="write an overlay PNG of the worst painting here")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the figures here")] = None,
) -> None:
    """Intact paint: the share of each VAL painting (no damage drawn) that the detector flags as damage,
    run as `retouch detect` runs it; the worst painting and the 0.05% target of issue 21."""
    from lab.eval.intact_eval import evaluate_intact, format_intact

    check_flag_threshold(threshold)
    report = evaluate_intact(weights=weights, tta=check_tta(tta), threshold=threshold, save_dir=save, bf16=bf16,
                              second_view=check_second_view(second_view), loss_agreement=loss_agreement,
                              agreement_area=agreement_area,
                              coarse_loss=coarse_loss, min_crack=min_crack, straight=straight, paint_like=paint_like,
                       border=border,
                              scale=scale,
                              enlarge=enlarge)
    typer.echo(weights_line(report))
    typer.echo(format_intact(report))
    if save is not None:
        typer.echo(f"wrote {report['overlay']}")
    write_report(json_out, report)


def evaluate_thin_lines_command(
    weights: Annotated[str, typer.Option(help="manifest name of the detector weights")] = DEFAULT_WEIGHTS,
    tta: TtaOpt = DEFAULT_TTA,
    second_view: SecondViewOpt = DEFAULT_SECOND_VIEW,
    loss_agreement: LossAgreementOpt = DEFAULT_LOSS_AGREEMENT,
    agreement_area: AgreementAreaOpt = DEFAULT_AGREEMENT_AREA,
    threshold: Annotated[float, typer.Option(help="probability above which a pixel is flagged")] = 0.5,
    copies: Annotated[int, typer.Option(help="seeded crops per VAL painting and kind")] = 2,
    coarse_loss: CoarseLossOpt = DEFAULT_COARSE_LOSS,
    min_crack: MinCrackOpt = DEFAULT_MIN_CRACK,
    straight: StraightOpt = DEFAULT_STRAIGHT,
    paint_like: PaintLikeOpt = DEFAULT_PAINT_LIKE,
    border: BorderOpt = DEFAULT_BORDER,
    scale: ScaleOpt = DEFAULT_SCALE,
    save: Annotated[Path | None, typer.Option(help="write the worst case (crop | flagged in red) here")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the figures here")] = None,
) -> None:
    """Thin painted lines (rigging, contours, hatching, lace, highlights, inscriptions) painted into crops of
    the VAL paintings, no damage: the share of the lines' pixels the detector flags, per kind."""
    from lab.eval.thin_lines import evaluate_thin_lines, format_thin_lines

    check_flag_threshold(threshold)
    if copies < 1:
        raise typer.BadParameter(f"--copies must be >= 1, got {copies}")
    report = evaluate_thin_lines(weights=weights, tta=check_tta(tta), threshold=threshold, copies=copies,
                                 second_view=check_second_view(second_view), loss_agreement=loss_agreement,
                                 agreement_area=agreement_area,
                                 save_dir=save, coarse_loss=coarse_loss,
                                 min_crack=min_crack, straight=straight, paint_like=paint_like, border=border,
                                 scale=scale)
    typer.echo(weights_line(report))
    typer.echo(format_thin_lines(report))
    if save is not None:
        typer.echo(f"wrote {report['worst_case']}")
    write_report(json_out, report)


def evaluate_adapt_command(
    sets: Annotated[str, typer.Option(help="comma-separated: held-out (realistic paint loss on lime plaster, "
                                           "VAL paintings), deepcrack, crackforest, uav75")]
    = "held-out,deepcrack,crackforest,uav75",
    copies: Annotated[int, typer.Option(help="held-out crops per VAL painting", min=1)] = 2,
    crop: Annotated[int, typer.Option(help="held-out crop side, px", min=128)] = 768,
    limit: Annotated[int, typer.Option(help="images per real set, evenly spread (0 = all)", min=0)] = 20,
    seed: Annotated[int, typer.Option(help="seed of the crops, the damage and the strokes")] = 22_000_000,
    strokes: Annotated[str, typer.Option(help="blind (drawn from the true masks alone) or informed (also from "
                                              "the base's detections: clean strokes on its false alarms, damage "
                                              "strokes on what it missed)")] = "blind",
    rounds: Annotated[int, typer.Option(help="with informed strokes, 2 or 3: the strokes in rounds, each after "
                                             "the detections of the detector adapted on the rounds before",
                                        min=1, max=3)] = 1,
    hidden: Annotated[int, typer.Option(help="hidden units of the adapted head (0 = linear)", min=0)] = 32,
    background: Annotated[float | None, typer.Option(help="share of the negatives drawn from unlabelled pixels "
                                                          "(default: adapt's)")] = None,
    background_below: Annotated[float | None, typer.Option(help="a weak negative of a class only where the base gives "
                                                                "it less than this (1 = all; default: adapt's)",
                                                           min=0.01, max=1.0)] = None,
    relabel: Annotated[float | None, typer.Option(help="fit the head again without the weak negatives its first fit "
                                                       "gives at least this and the base does not flag (0 = once; "
                                                       "default: adapt's)", min=0.0, max=0.99)] = None,
    base: Annotated[str | None, typer.Option(help="the detector to adapt (manifest name; default: adapt's)")]
    = None,
    add: Annotated[float | None, typer.Option(help="the craquelure head's probability from which it adds a pixel "
                                                   "to the base's detections (default: adapt's)")] = None,
    add_loss: Annotated[float | None, typer.Option(help="the same for the paint-loss head (default: adapt's)")]
    = None,
    reach: Annotated[int | None, typer.Option(help="px the craquelure head's additions may reach from the base's "
                                                   "cracks (0 = anywhere; default: adapt's)", min=0)] = None,
    beside: Annotated[int | None, typer.Option(help="px beside a base crack, away from its ends, where the "
                                                    "craquelure head may not add (0 = it may; default: adapt's)",
                                               min=0)] = None,
    support_loss: Annotated[float | None, typer.Option(help="a region the paint-loss head adds counts only where "
                                                            "the base gives a pixel of it this probability (0 = "
                                                            "every region; default: adapt's)", min=0.0, max=0.99)]
    = None,
    smooth_loss: Annotated[float | None, typer.Option(help="sigma (px) of the paint-loss head's vote (default: "
                                                           "adapt's)", min=0.0)] = None,
    clamp_loss: Annotated[float | None, typer.Option(help="bound of the paint-loss head's logits before the vote "
                                                          "(0 = none; default: adapt's)", min=0.0)] = None,
    gate_loss: Annotated[float | None, typer.Option(help="the paint-loss head speaks only where it holds this share "
                                                         "of the pixels around (0 = everywhere; default: adapt's)",
                                                    min=0.0, max=0.99)] = None,
    gate_sigma: Annotated[float | None, typer.Option(help="Gaussian sigma (px) of that share (default: adapt's)",
                                                     min=0.1)] = None,
    veto: Annotated[bool, typer.Option(help="the clean strokes veto the base's detections like those they "
                                            "cover")] = True,
    veto_background: Annotated[float | None, typer.Option(help="share of the craquelure veto's negatives taken from "
                                                               "the base's detections among unlabelled pixels "
                                                               "(default: adapt's)", min=0.0, max=0.99)] = None,
    veto_background_loss: Annotated[float | None, typer.Option(help="the same for the paint-loss veto (default: "
                                                                    "adapt's)", min=0.0, max=0.99)] = None,
    veto_joined: Annotated[int | None, typer.Option(help="per square of strokes, the base's cracks a craquelure "
                                                         "stroke touches among the craquelure veto's negatives "
                                                         "(default: adapt's)",
                                                    min=0, max=100_000)] = None,
    union: Annotated[bool, typer.Option(help="keep the base's detections (off: the head alone decides)")] = True,
    default: Annotated[bool, typer.Option(help="also score detect's default detector when the base is another "
                                               "(what the painting showed before adapting)")] = True,
    tta: TtaOpt = DEFAULT_TTA,
    second_view: SecondViewOpt = DEFAULT_SECOND_VIEW,
    loss_agreement: LossAgreementOpt = DEFAULT_LOSS_AGREEMENT,
    agreement_area: AgreementAreaOpt = DEFAULT_AGREEMENT_AREA,
    coarse_loss: CoarseLossOpt = DEFAULT_COARSE_LOSS,
    straight: StraightOpt = DEFAULT_STRAIGHT,
    scale: ScaleOpt = DEFAULT_SCALE,
    enlarge: Annotated[float, typer.Option(help="score every image as a scan at this many times the resolution "
                                                "would show it (bicubic; labels nearest), the strokes drawn there",
                                           min=1.0, max=4.0)] = 1.0,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the figures here")] = None,
) -> None:
    """Recall and precision on pixels more than 8 px from 10 simulated strokes, before and after adapt; with
    `--scale`, adapt and every detector scored see the images resampled by it; every detection runs the coarse
    paint-loss pass as detect and adapt do (`--no-coarse-loss`: without it, as before 2026-12-05), and drops long
    straight craquelure as they do since 2026-12-06 (`--straight 0`: keeps it, as before)."""
    import dataclasses
    import sys

    from lab.eval.adapt_eval import (
        REAL_SETS,
        StrokePlan,
        enlarged_cases,
        evaluate_cases,
        format_adapt,
        held_out_cases,
        real_cases,
    )
    from lab.paintings import shared_data_dir
    from pipeline.errors import ConfigError
    from pipeline.stages.adapt import AdaptConfig
    from pipeline.stages.detect_infer import Views

    if strokes not in ("blind", "informed"):
        raise ConfigError(f"--strokes must be blind or informed, got {strokes!r}")
    names = [n.strip() for n in sets.split(",") if n.strip()]
    unknown = [n for n in names if n != "held-out" and n not in REAL_SETS]
    if unknown or not names:
        raise typer.BadParameter(f"unknown set(s) {unknown}; choose from held-out, {', '.join(REAL_SETS)}")
    for name, value in (("--add", add), ("--add-loss", add_loss)):
        if value is not None and not 0.0 < value < 1.0:
            raise typer.BadParameter(f"{name} must be in (0, 1), got {value}")
    config = AdaptConfig(hidden=hidden, veto=veto, union=union, scale=scale)
    views = Views(check_tta(tta), check_second_view(second_view), loss_agreement, agreement_area)
    changes = {"background": background, "background_below": background_below, "relabel": relabel, "base": base,
               "add": add, "add_loss": add_loss, "reach": reach, "beside": beside, "support_loss": support_loss,
               "smooth_loss": smooth_loss, "clamp_loss": clamp_loss, "gate_loss": gate_loss, "gate_sigma": gate_sigma,
               "veto_background": veto_background, "veto_background_loss": veto_background_loss,
               "veto_joined": veto_joined}
    config = dataclasses.replace(config, **{k: v for k, v in changes.items() if v is not None})
    try:
        plan = StrokePlan(informed=strokes == "informed", rounds=rounds)
    except ValueError as exc:
        raise ConfigError(f"--rounds: {exc}") from None
    report: dict = {"command": "retouch " + " ".join(sys.argv[1:]),
                    "config": {k: v for k, v in dataclasses.asdict(config).items() if k != "manifest"},
                    "strokes": strokes, "plan": dataclasses.asdict(plan), "seed": seed, "tta": check_tta(tta),
                    "second_view": check_second_view(second_view), "loss_agreement": loss_agreement,
                    "agreement_area": agreement_area,
                    "coarse_loss": coarse_loss, "straight": straight, "enlarge": enlarge, "sets": {}}
    for name in names:
        if name == "held-out":
            cases, channel = held_out_cases(copies, crop, seed), 1
            report["held_out"] = {"copies": copies, "crop": crop, "style": "realistic paint loss, lime plaster"}
        else:
            cases, channel = real_cases(name, shared_data_dir(), limit), 0
        report["sets"][name] = evaluate_cases(enlarged_cases(cases, enlarge), channel, config, plan, seed, views,
                                              default, coarse_loss, straight)
        typer.echo(format_adapt({"sets": {name: report["sets"][name]}}))
    write_report(json_out, report)


def check_flag_threshold(threshold: float) -> None:
    """Refuse a flagging threshold outside (0, 1) in one line."""
    if not 0.0 < threshold < 1.0:
        raise typer.BadParameter(f"--threshold must be in (0, 1), got {threshold}")


def weights_line(report: dict) -> str:
    """`weights NAME (SHA12), tta N` of an evaluation report."""
    return f"weights {report['weights']['name']} ({report['weights']['sha256'][:12]}), tta {report['tta']}"
