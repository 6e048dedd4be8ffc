"""The `retouch` app: its command groups, each filled by the `register` function of one command module."""

from __future__ import annotations

import typer

from flows.cli import audit, catalog, detector, inpainter, ops, review, stages
from flows.settings import configure_prefect

app = typer.Typer(help="Retouch: find and fill damage in digitized paintings, with provenance.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
catalog_app = typer.Typer(help="The catalog of scans.", no_args_is_help=True)
train_app = typer.Typer(help="Train the models (in the background: they checkpoint and resume).",
                        no_args_is_help=True)
evaluate_app = typer.Typer(help="Measure the shipped models against classical methods.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
app.add_typer(train_app, name="train")
app.add_typer(evaluate_app, name="evaluate")


@app.callback()
def main() -> None:
    configure_prefect()


stages.register(app)
catalog.register(catalog_app)
detector.register(train_app, evaluate_app)
inpainter.register(train_app, evaluate_app)
ops.register(app)
audit.register(app)
review.register(app)
