"""`retouch review STORE`: the conservator's review page over one store (IIIF deep zoom, edits, re-runs).

Imports stay inside the command: `retouch --help` loads no Starlette, zarr or torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import clean_errors, console, start_flows

LOCALHOST = "127.0.0.1"


def register(app: typer.Typer) -> None:
    """Add the review command to the `retouch` app."""
    app.command("review")(clean_errors(review_command))


def review_command(
    store: Annotated[str, typer.Argument(help="the store to review (a folder written by `retouch run`/`ingest`)")],
    port: Annotated[int, typer.Option(help="port to listen on", min=1, max=65535)] = 8765,
    host: Annotated[str, typer.Option(help="address to bind (127.0.0.1: this machine only; the page can "
                                           "write the store, so think twice before opening it wider)")] = LOCALHOST,
    catalog: Annotated[Path | None, typer.Option(help="catalog YAML that describes the scan "
                                                      "(default: the bundled catalog)")] = None,
) -> None:
    """Serve the review page: before/after deep zoom, the damage map, brush edits (mask_edited/, scribbles/)."""
    import socket

    import uvicorn

    start_flows()  # the page's re-runs are inpaint flow runs: the API is probed before Prefect is imported
    from flows.review import review_jobs
    from pipeline.review.app import create_app

    app = create_app(store, catalog, review_jobs(store))  # StoreError (one line, exit 2) without a scan
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            typer.echo(f"error: {host}:{port} is in use or not this machine's (pick another --port/--host)",
                       err=True)
            raise typer.Exit(2) from None
    console.print(f"review:     http://{host}:{port}/  ({store}; Ctrl-C to stop)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
