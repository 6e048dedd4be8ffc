"""`retouch serve`, `retouch server` and `retouch rerun`: running Retouch as a Prefect service.

Imports stay inside the commands: `retouch --help` loads no Prefect.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flows.cli.common import (
    FLAG,
    clean_errors,
    console,
    error_text,
    print_detect,
    print_export,
    print_inpaint,
    start_flows,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

LOCALHOST = "127.0.0.1"
DEFAULT_PORT = 4200
NIGHTLY = "0 2 * * *"  # the same default as flows.deployments.NIGHTLY (not imported: it loads Prefect)


class Stage(StrEnum):
    detect = "detect"
    inpaint = "inpaint"
    export = "export"


def register(app: typer.Typer) -> None:
    """Add the serve, server and rerun commands to the `retouch` app."""
    app.command("serve")(clean_errors(serve_command))
    app.command("server")(clean_errors(server_command))
    app.command("rerun", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
        clean_errors(rerun_command))


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    """Whether a Prefect API answers at `api_url` (…/api)."""
    from flows.settings import api_answers

    return api_answers(api_url, timeout)


def _configured_api_url() -> str | None:
    """PREFECT_API_URL from the environment or the active profile (read without importing Prefect)."""
    from flows.settings import _active_profile_settings

    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    return "(profile)" if "PREFECT_API_URL" in _active_profile_settings() else None


def serve_command(
    cron: Annotated[str, typer.Option(help="when the catalog sweep runs (cron; default: nightly, 02:00)")] = NIGHTLY,
    timezone: Annotated[str, typer.Option(help="time zone of the cron schedule (IANA name)")] = "UTC",
    catalog: Annotated[Path | None, typer.Option(help="catalog YAML the sweep restores "
                                                      "(default: the bundled catalog)")] = None,
    out: Annotated[Path | None, typer.Option(help="where the sweep writes stores and exports "
                                                  "(default: ./retouch-out)")] = None,
    limit: Annotated[int | None, typer.Option(help="at most this many runs at once", min=1)] = None,
) -> None:
    """Serve the deployments (catalog-sweep on a schedule; rerun-detect, rerun-inpaint, export on demand)."""
    import zoneinfo

    from data_catalog.schema import load_catalog

    load_catalog(catalog)  # a bad catalog fails now, not at 02:00
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise typer.BadParameter(f"unknown time zone {timezone!r}", param_hint="--timezone") from None
    api = _configured_api_url()
    local = f"http://{LOCALHOST}:{DEFAULT_PORT}/api"
    if api is None and healthy(local):
        os.environ["PREFECT_API_URL"] = api = local  # before Prefect is imported: the runs go there too
    from prefect.schedules import Cron

    try:
        Cron(cron)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--cron") from None
    if api not in (None, "(profile)") and not healthy(api):
        typer.echo(f"error: no Prefect API answers at {api} (PREFECT_API_URL); start `retouch server` first",
                   err=True)
        raise typer.Exit(2)
    if api is None:
        typer.echo("warning: no Prefect server configured (PREFECT_API_URL) and none at "
                   f"{local}: serving against a temporary one that ends with this command. "
                   "Start `retouch server` to watch the runs in the UI.", err=True)
    else:
        typer.echo(f"Prefect API: {api if api != '(profile)' else 'PREFECT_API_URL of your active profile'}")
    from flows.deployments import serve_deployments

    serve_deployments(cron, str(catalog) if catalog else None, str(out) if out else None, timezone, limit)


def server_command(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1", min=1, max=65535)] = DEFAULT_PORT,
) -> None:
    """Start a local Prefect server (SQLite under PREFECT_HOME) on 127.0.0.1 for the UI; print its URL."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: ignores TIME_WAIT
        try:
            probe.bind((LOCALHOST, port))
        except OSError:
            typer.echo(f"error: {LOCALHOST}:{port} is in use (a server already running? open "
                       f"http://{LOCALHOST}:{port}, or pick another --port)", err=True)
            raise typer.Exit(2) from None
    home = Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect"))
    database = os.environ.get("PREFECT_SERVER_DATABASE_CONNECTION_URL") or f"{home / 'prefect.db'} (SQLite)"
    url = f"http://{LOCALHOST}:{port}"
    # the UI asks /ui-settings where the API is: without this it says 127.0.0.1:4200 whatever --port is
    env = {**os.environ, "PREFECT_UI_API_URL": os.environ.get("PREFECT_UI_API_URL") or f"{url}/api"}
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", LOCALHOST,
                               "--port", str(port)], env=env)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stopped by a service manager: stop the server too
    try:
        deadline = time.monotonic() + 120
        while not healthy(f"{url}/api", timeout=1.0):
            if server.poll() is not None:
                typer.echo(f"error: the Prefect server stopped (exit code {server.returncode})", err=True)
                raise typer.Exit(2)
            if time.monotonic() > deadline:
                typer.echo(f"error: no answer from {url}/api/health after 120 s", err=True)
                raise typer.Exit(2)
            time.sleep(0.5)
        typer.echo(f"\nPrefect UI:  {url}\ndatabase:    {database}\n"
                   f"In other shells:  export PREFECT_API_URL={url}/api   (then `retouch run`, `retouch serve`)\n")
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)


def stage_params(stage: Stage, args: list[str]) -> BaseModel:
    """`--name value`, `--name=value` or (booleans) `--name`/`--no-name` into the stage's parameter model."""
    from pydantic import ValidationError

    from flows.params import DetectParams, ExportParams, InpaintParams

    model = {Stage.detect: DetectParams, Stage.inpaint: InpaintParams, Stage.export: ExportParams}[stage]
    fields = model.model_fields
    valid = ", ".join(f"--{name.replace('_', '-')}" for name in fields)
    values: dict[str, Any] = {}
    tokens = list(args)
    while tokens:
        token = tokens.pop(0)
        name, has_value, value = token.removeprefix("--").partition("=")
        key = name.replace("-", "_")
        negated = key.startswith("no_") and key[3:] in fields
        key = key[3:] if negated else key
        if not token.startswith("--") or key not in fields:
            raise typer.BadParameter(f"{token!r} is not a {stage.value} parameter; valid: {valid}, --force")
        if fields[key].annotation is bool and not has_value:
            values[key] = not negated
        elif has_value:
            values[key] = value
        elif tokens:
            values[key] = tokens.pop(0)
        else:
            raise typer.BadParameter(f"{token} needs a value")
    try:
        return model(**values)
    except ValidationError as exc:
        problems = "; ".join(error_text(e, as_option=True) for e in exc.errors())
        raise typer.BadParameter(problems) from None


def rerun_command(
    ctx: typer.Context,
    stage: Annotated[Stage, typer.Argument(help="the stage to run again")],
    store: Annotated[str, typer.Argument(help="the store (a local folder or an fsspec URL)")],
    force: Annotated[bool, typer.Option("--force", metavar=FLAG, help="recompute even when nothing changed")] = False,
    workers: Annotated[int, typer.Option(help="parallel chunk tasks (0 = one per core)")] = 0,
    dask_address: Annotated[str | None, typer.Option(envvar="RETOUCH_DASK_ADDRESS",
                                                     help="run the chunk tasks on this Dask scheduler")] = None,
) -> None:
    """Run one stage of a store again, with other parameters.

    Parameters: `--NAME VALUE` for any field of the stage's form in the Prefect UI.

    Examples: `rerun detect S --threshold 0.3`; `rerun inpaint S --mask edited.png`; `rerun export S --out-dir D`.

    Changed parameters, masks or weights recompute; an unchanged stage is skipped unless --force.
    """
    from flows.params import EngineParams

    params = stage_params(stage, ctx.args)
    engine = EngineParams(workers=workers, dask_address=dask_address)
    start_flows()
    if stage is Stage.detect:
        from flows.detect import detect_flow

        result = detect_flow(store, params, engine, force)
        print_detect(result)
    elif stage is Stage.inpaint:
        from flows.inpaint import inpaint_flow

        mask = getattr(params, "mask", None)
        if mask and "://" not in mask:  # provenance records an absolute path
            params = params.model_copy(update={"mask": str(Path(mask).resolve())})
        result = inpaint_flow(store, params, engine, force)
        print_inpaint(result)
    else:
        from flows.export import export_flow

        result = export_flow(store, params, force)
        print_export(result)
    if result["skipped"]:
        console.print(f"            key {result['key'][:16]}…: nothing changed; --force recomputes")
