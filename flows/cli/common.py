"""What every `retouch` command module shares: the consoles, `clean_errors`, common options, result lines.

Only typer and rich at import time: `retouch --help` loads no Prefect, torch or zarr.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

F = TypeVar("F", bound=Callable[..., Any])
# no markup, no emoji codes: a path such as "scan [v2].png" or "a:b:c.png" prints as it is ("[v2]" is not a style,
# ":b:" is not an emoji); the few coloured labels are Text spans (`label`)
console = Console(soft_wrap=True, markup=False, emoji=False)
err_console = Console(stderr=True, markup=False, emoji=False)


def label(word: str, style: str, rest: str) -> Text:
    """`word` in `style`, a space, then `rest` as it is."""
    return Text.assemble((word, style), " ", rest)


USER_ERRORS = {  # module: the error classes whose message is the one line to print (exit 2)
    "pipeline.errors": ("InputError", "ConfigError"),
    "models.weights": ("WeightsError",),
    "data_catalog.schema": ("CatalogError",),
    "flows.settings": ("PrefectUnreachable",),
    "flows.deployments": ("SweepError",),
}


def _user_error_types() -> tuple[type[BaseException], ...]:
    """The USER_ERRORS classes of the modules already loaded (an error's module was loaded to raise it;
    importing the others here would load torch for `retouch catalog list`)."""
    return tuple(getattr(sys.modules[module], name) for module, names in USER_ERRORS.items()
                 if module in sys.modules for name in names)


def error_line(exc: BaseException) -> tuple[str, int]:
    """The one line a failure prints and the exit code: 2 for what the user can fix (bad input, settings,
    disk full, a path that exists or is not writable), 1 for a bug (the traceback is in the error log)."""
    from pydantic import ValidationError

    if isinstance(exc, _user_error_types()):
        return str(exc), 2
    if isinstance(exc, ValidationError):
        return "; ".join(error_text(e) for e in exc.errors()), 2
    if isinstance(exc, OSError):
        problem = exc.strerror or str(exc) or type(exc).__name__
        if exc.filename is not None:
            problem = f"{exc.filename}: {problem}"
            if exc.filename2 is not None:
                problem += f" (-> {exc.filename2})"
        hints = {errno.ENOSPC: "; free some space or write elsewhere", errno.EEXIST: "; remove it or choose "
                 "another path", errno.EACCES: "; check its permissions", errno.EROFS: "; write elsewhere",
                 errno.ENOTDIR: "; it is a file where a folder (a store, an output folder) is needed: choose "
                 "another path"}
        return problem + hints.get(exc.errno or 0, ""), 2
    return f"{type(exc).__name__}: {exc} (a bug; traceback in {_log_traceback(exc)})", 1


def error_text(error: Any, as_option: bool = False) -> str:
    """'field: message' of one pydantic error ('message' alone for a check of several fields), without pydantic's
    "Value error, " prefix; with `as_option` the field as its option ('--min-crack' for min_crack)."""
    message = str(error["msg"]).removeprefix("Value error, ")
    if not error["loc"]:
        return message
    field = ".".join(map(str, error["loc"]))
    return f"--{field.replace('_', '-')}: {message}" if as_option else f"{field}: {message}"


def _log_traceback(exc: BaseException) -> str:
    """Append `exc`'s traceback to the error log; its path (or 'nowhere' when it cannot be written)."""
    import traceback

    from flows.settings import error_log_path

    path = error_log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as log:
            log.write("".join(traceback.format_exception(exc)))
    except OSError:
        return "nowhere: the log could not be written"
    return str(path)


INTERRUPTED = ("what was finished is kept and nothing half-written is published; the same command goes on "
               "from there")


def clean_errors(func: F) -> F:
    """Turn every failure into one `error:` line (exit 2 for what the user can fix, 1 for a bug): bad or
    missing files, catalog, weights, settings or parameters, a full disk, an unreachable Prefect API. Every
    command uses it. Tracebacks go to the error log (`flows.settings.error_log_path`), not the terminal."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            if type(exc).__module__.startswith(("click", "typer")):  # usage errors, Exit, Abort: typer's own
                raise
            line, code = error_line(exc)
            line = " ".join(line.splitlines())  # one line, whatever the message holds
            err_console.print(label("error:", "bold red", line), highlight=False, soft_wrap=True)
            raise typer.Exit(code) from None
        except KeyboardInterrupt:  # Ctrl-C: one line, as the shell's own 130; the workers' cancellations unsaid
            logging.getLogger("distributed").setLevel(logging.ERROR)
            err_console.print(label("interrupted:", "bold yellow", INTERRUPTED), highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None
        finally:
            if "pipeline.engine.runner" in sys.modules:
                sys.modules["pipeline.engine.runner"].close_local_clusters()  # the stages' Dask workers

    return wrapper  # type: ignore[return-value]


def start_flows() -> None:
    """Before a command's first flow run: the configured Prefect API must answer (one line if not), and
    Prefect's console keeps failures out (the command prints one line; the log file keeps the rest)."""
    from flows.settings import check_prefect_api, quiet_failures_on_console

    check_prefect_api()
    quiet_failures_on_console()


def default_out_dir() -> Path:
    return Path.cwd() / "retouch-out"
EngineOpt = Annotated[int, typer.Option("--workers", help="parallel chunk tasks (0 = one per core)")]
AddressOpt = Annotated[str | None, typer.Option("--dask-address", envvar="RETOUCH_DASK_ADDRESS",
                                                help="run the chunk tasks on this Dask scheduler")]
FLAG = ""  # metavar of boolean options: help shows `--force`, not `--force <bool>`
ForceOpt = Annotated[bool, typer.Option("--force", metavar=FLAG, help="recompute even when inputs, parameters and "
                                                                      "weights are unchanged")]
DeviceOpt = Annotated[str, typer.Option(help="'cpu' or 'cuda'")]
GrainOpt = Annotated[float, typer.Option(help="inpaint: add this strength of the surrounding paint's copied "
                                              "high-pass texture to the fill (0 = off; 1 = its full amplitude)",
                                         min=0.0, max=4.0)]
GrainSigmaOpt = Annotated[float, typer.Option(help="inpaint: the texture layer's high-pass Gaussian sigma, px",
                                              min=0.5, max=32.0)]


def engine_params(workers: int, dask_address: str | None) -> Any:
    from flows.params import EngineParams

    return EngineParams(workers=workers, dask_address=dask_address)


def state_line(result: dict[str, Any]) -> str:
    return "unchanged, skipped" if result["skipped"] else f"{result['seconds']:.1f} s"


def print_ingest(result: dict[str, Any]) -> None:
    c, h, w = result["shape"]
    console.print(f"scan:       {result['store']}/scan  ({w}x{h}, {c} channel(s), {result['dtype']}, "
                  f"{result['levels']} levels; {state_line(result)})")


def print_notes(result: dict[str, Any]) -> None:
    """A stage's notes (e.g. outputs it made stale), one `warning:` line each on stderr."""
    for note in result.get("notes") or ():
        err_console.print(label("warning:", "bold yellow", note), highlight=False, soft_wrap=True)


def print_detect(result: dict[str, Any]) -> None:
    area = ", ".join(f"{k} {v:.2f} %" for k, v in result["summary"]["area_percent"].items())
    console.print(f"damage:     {result['store']}/damage  ({area}; {state_line(result)})")
    dropped = result["summary"].get("straight_dropped") or {}
    if dropped.get("components"):
        console.print(f"            {dropped['components']} long straight line(s) not labelled craquelure "
                      f"({dropped['pixels']} px; painted lines, not cracks, as a rule; --straight 0 keeps them)")
    like = result["summary"].get("paint_like_dropped") or {}
    if like.get("pixels"):
        console.print(f"            {like['pixels']} px of paint loss the colour of the paint around it not labelled "
                      f"(--paint-like {result['summary'].get('paint_like')}; --paint-like 0 keeps them)")
    print_notes(result)


def print_inpaint(result: dict[str, Any]) -> None:
    s = result["summary"]
    read = s.get("mask_read")
    if read:
        console.print(f"mask:       {read['file']}  ({read['channels']} channel(s), {read['rule']}: "
                      f"{read['pixels_marked']} px marked, {read['percent_marked']:.2f} %)")
    filled = s.get("pixels_changed", s["hole_pixels"])
    console.print(f"restored:   {result['store']}/restored  ({s['chunks_inpainted']} of {s['chunks_total']} chunks "
                  f"inpainted, {s['hole_pixels']} px in the mask, {filled} px changed; "
                  f"{state_line(result)})")
    if s.get("grain"):
        console.print(f"            texture layer: grain {s['grain']['alpha']:g}, sigma {s['grain']['sigma']:g} px")


def print_export(result: dict[str, Any]) -> None:
    out = Path(result["out_dir"])
    console.print(f"export:     {out}  ({state_line(result)})")
    for name in result["digests"]:
        console.print(f"            {out / name}")
    console.print(f"summary:    {out / 'summary.json'}")


TTA_VIEWS = (1, 2, 4, 8)  # pipeline.stages.detect_infer.VIEWS, spelled out so that `--help` does not import torch
DEFAULT_TTA = 2  # pipeline.stages.detect.DEFAULT_TTA, spelled out so that `--help` does not import zarr (a test checks)
DEFAULT_WEIGHTS = "detector-resunet18-soup729"  # pipeline.stages.detect.DEFAULT_WEIGHTS, likewise (a test checks)
ADAPT_BASE = DEFAULT_WEIGHTS  # pipeline.stages.adapt.ADAPT_BASE: detect's own detector (a test checks)
ADAPT_ADD = 0.9  # pipeline.stages.adapt.ADD, likewise (a test checks)
ADAPT_ADD_LOSS = 0.9  # pipeline.stages.adapt.ADD_LOSS, likewise (a test checks)
ADAPT_SMOOTH_LOSS = 1.5  # pipeline.stages.adapt.SMOOTH_LOSS, likewise (a test checks)
ADAPT_CLAMP_LOSS = 0.0  # pipeline.stages.adapt.CLAMP_LOSS, likewise (a test checks)
ADAPT_GATE_LOSS = 0.0  # pipeline.stages.adapt.GATE_LOSS, likewise (a test checks)
ADAPT_GATE_SIGMA = 4.0  # pipeline.stages.adapt.GATE_SIGMA, likewise (a test checks)
ADAPT_REACH = 32  # pipeline.stages.adapt.REACH, likewise (a test checks)
ADAPT_BESIDE = 2  # pipeline.stages.adapt.BESIDE, likewise (a test checks)
ADAPT_SUPPORT_LOSS = 0.02  # pipeline.stages.adapt.SUPPORT_LOSS, likewise (a test checks)
ADAPT_VETO_BACKGROUND = 0.1  # pipeline.stages.adapt.VETO_BACKGROUND, likewise (a test checks)
ADAPT_VETO_BACKGROUND_LOSS = 0.3  # pipeline.stages.adapt.VETO_BACKGROUND_LOSS, likewise (a test checks)
ADAPT_BACKGROUND = 0.6  # pipeline.stages.adapt.BACKGROUND, likewise (a test checks)
ADAPT_VETO_JOINED = 200  # pipeline.stages.adapt.VETO_JOINED, likewise (a test checks)
DEFAULT_COARSE_LOSS = True  # pipeline.stages.detect.DEFAULT_COARSE_LOSS, likewise (a test checks)
DEFAULT_SECOND_VIEW = "mirror"  # pipeline.stages.detect.DEFAULT_SECOND_VIEW, likewise (a test checks)
DEFAULT_LOSS_AGREEMENT = 0.0  # pipeline.stages.detect.DEFAULT_LOSS_AGREEMENT, likewise (a test checks)
DEFAULT_AGREEMENT_AREA = 0  # pipeline.stages.detect.DEFAULT_AGREEMENT_AREA, likewise (a test checks)
# pipeline.stages.detect_infer.SECOND_VIEWS (a test checks)
SECOND_VIEWS = ("mirror", "half-turn", "quarter-turn", "small-mirror", "small-half-turn")
DEFAULT_MIN_CRACK = 0  # pipeline.stages.detect.DEFAULT_MIN_CRACK, likewise (a test checks)
DEFAULT_STRAIGHT = 60  # pipeline.stages.detect.DEFAULT_STRAIGHT, likewise (a test checks)
DEFAULT_PAINT_LIKE = 0  # pipeline.stages.detect.DEFAULT_PAINT_LIKE, likewise (a test checks)
DEFAULT_BORDER = 0  # pipeline.stages.detect.DEFAULT_BORDER, likewise (a test checks)
DEFAULT_SCALE = 1.0  # pipeline.stages.detect.DEFAULT_SCALE, likewise (a test checks)
ScaleOpt = Annotated[float, typer.Option(help="the detector sees the scan resampled by this factor (1 = as "
                                              "scanned). It learned cracks 1-3 px wide: a scan at a higher "
                                              "resolution, whose cracks are wider, is detected at 0.5 (cracks "
                                              "2-6 px wide) or lower, at scale**2 of the work; at 1 most of "
                                              "its damage is missed", min=0.1, max=2.0)]
BorderOpt = Annotated[int, typer.Option(help="within this many px of the image border a mark must also be seen with "
                                             "the border continued by edge copies, not only reflected: an object "
                                             "cut by the frame, mirrored, is not taken for damage; it also misses "
                                             "more real damage cut by the border (0 = off; 16 is the measured "
                                             "setting; one more pass over strips along the border)", min=0, max=96)]
MinCrackOpt = Annotated[int, typer.Option(help="drop craquelure fragments of fewer than this many px (8-connected) "
                                               "from the labels: isolated specks are more often paint than crack "
                                               "(0 = keep all)", min=0, max=96)]
StraightOpt = Annotated[int, typer.Option(help="drop craquelure components whose centre line is a straight line "
                                                "(within 1 px RMS) at least this many px long: a ship's rigging, a "
                                                "flag pole or a drawn contour is more often one long straight line "
                                                "than craquelure is; a real straight crack (a stretcher-bar crack) "
                                                "is dropped too (0 = keep all)", min=0, max=100_000)]
PaintLikeOpt = Annotated[int, typer.Option(help="drop from the paint-loss labels the pixels whose colour (blurred "
                                                 "1.5 px) is within this many levels of 255 of the paint ringing "
                                                 "their region (4-12 px around it; regions of 100 px and more): "
                                                 "beside dense damage the loss channel floods intact paint "
                                                 "(0 = keep all)", min=0, max=255)]
CoarseLossOpt = Annotated[bool, typer.Option("--coarse-loss/--no-coarse-loss",
                                             help="also look for paint loss at half size, where large losses "
                                                  "show their edges, kept where the full-size pass marks part of "
                                                  "them (a quarter more network passes where a loss is marked)")]
TtaOpt = Annotated[int, typer.Option(help="test-time augmentation: run every tile in 1, 2, 4 or 8 flipped "
                                          "orientations and average (that many times slower; 2 = the tile "
                                          "and its second view, 1 = one pass)")]
SecondViewOpt = Annotated[str, typer.Option(help="the second of two views: the tile's mirror image ('mirror'), or "
                                                 "the tile turned by a 'half-turn' or a 'quarter-turn', or "
                                                 "the mirror or half turn seen at 13/16 of the tile's side "
                                                 "('small-mirror', 'small-half-turn': 0.66 of a pass)")]
LossAgreementOpt = Annotated[float, typer.Option(help="paint loss is the views' mean only where every view gives it "
                                                      "at least this probability, elsewhere the lowest view's: a "
                                                      "loss seen one way only is not taken (0 = the mean "
                                                      "everywhere)", min=0.0, max=0.99)]
AgreementAreaOpt = Annotated[int, typer.Option(help="paint-loss regions (the views' mean above 0.5, within a tile) "
                                                    "of fewer than this many px keep the views' mean: the loss "
                                                    "agreement trims only larger ones, so small flakes keep their "
                                                    "rims (0 = every region)", min=0, max=1_000_000)]


def check_second_view(second_view: str) -> str:
    """The --second-view value, or a one-line usage error before anything starts."""
    if second_view not in SECOND_VIEWS:
        raise typer.BadParameter(f"--second-view must be one of {', '.join(SECOND_VIEWS)}, got {second_view!r}")
    return second_view


def check_tta(tta: int) -> int:
    """The --tta value, or a one-line usage error before anything starts."""
    if tta not in TTA_VIEWS:
        raise typer.BadParameter(f"--tta must be one of {', '.join(map(str, TTA_VIEWS))}, got {tta}")
    return tta


def write_report(json_out: Path | None, report: dict[str, Any]) -> None:
    """Write figures as indented JSON to `json_out` (its folder made) and say so; nothing without one."""
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2) + "\n")
        typer.echo(f"wrote {json_out}")
