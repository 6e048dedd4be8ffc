"""`retouch catalog validate` and `retouch catalog list`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import clean_errors, console


def register(catalog_app: typer.Typer) -> None:
    """Add the catalog commands to the `catalog` command group."""
    catalog_app.command("validate")(clean_errors(catalog_validate))
    catalog_app.command("list")(clean_errors(catalog_list))


def catalog_validate(
    file: Annotated[Path | None, typer.Argument(help="catalog YAML (default: the bundled catalog)")] = None,
) -> None:
    """Check a catalog file; a bad entry is named with its field."""
    from data_catalog.schema import default_catalog_path, load_catalog

    entries = load_catalog(file)
    console.print(f"{file or default_catalog_path()}: {len(entries)} entries, all valid")


def catalog_list(
    file: Annotated[Path | None, typer.Argument(help="catalog YAML (default: the bundled catalog)")] = None,
) -> None:
    """List the scans in a catalog."""
    from rich.table import Column, Table

    from data_catalog.schema import default_catalog_path, load_catalog

    path = file or default_catalog_path()
    table = Table("title", "creator", "date", "institution", "source")
    table.columns.insert(0, Column("id", no_wrap=True))
    for entry in load_catalog(path):
        table.add_row(entry.id, entry.title, entry.creator, entry.date, entry.institution,
                      entry.resolved_source(path))
    console.print(table)
