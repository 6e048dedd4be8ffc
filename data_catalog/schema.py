"""Catalog schema: a YAML file with a list `scans`, each entry validated by `CatalogEntry`."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

CATALOG_DIR = Path(__file__).resolve().parent
SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"


class CatalogError(ValueError):
    """A catalog problem: names the file, the entry and the field."""


class CatalogEntry(BaseModel):
    """One scan: where it is and what it is."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    id: str = Field(pattern=SLUG_PATTERN, description="lower-case slug, unique in the catalog")
    source: str = Field(min_length=1, description="local path (relative to the catalog file) or fsspec URL")
    title: str = Field(min_length=1)
    creator: str = Field(min_length=1)
    date: str = Field(min_length=1, description="date or period of the work, as the institution gives it")
    institution: str = Field(min_length=1)
    accession_number: str = Field(min_length=1)
    licence: str = Field(min_length=1)
    pixel_size_um: float | None = Field(default=None, gt=0)
    notes: str | None = None

    @field_validator("date", "accession_number", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        return str(value) if isinstance(value, int | float) else value

    def resolved_source(self, catalog_file: Path) -> str:
        """The source as a usable path or URL (relative paths are relative to the catalog file)."""
        if "://" in self.source or Path(self.source).is_absolute():
            return self.source
        return str((catalog_file.parent / self.source).resolve())


def default_catalog_path() -> Path:
    return CATALOG_DIR / "catalog.yaml"


def _describe(error: dict) -> str:
    field = ".".join(str(p) for p in error["loc"]) or "(entry)"
    return f"field '{field}': {error['msg']}"


def load_catalog(path: str | Path | None = None) -> list[CatalogEntry]:
    """All entries of a catalog file; CatalogError names the file, the entry and the field at fault."""
    path = Path(path) if path else default_catalog_path()
    if not path.exists():
        raise CatalogError(f"{path}: catalog file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("scans"), list):
        raise CatalogError(f"{path}: expected a mapping with a list 'scans'")
    entries: list[CatalogEntry] = []
    seen: set[str] = set()
    for index, item in enumerate(raw["scans"], start=1):
        label = f"entry {index}" + (f" (id {item.get('id')!r})" if isinstance(item, dict) and "id" in item else "")
        if not isinstance(item, dict):
            raise CatalogError(f"{path}: {label}: expected a mapping of fields")
        try:
            entry = CatalogEntry.model_validate(item)
        except ValidationError as exc:
            problems = "; ".join(_describe(e) for e in exc.errors())
            raise CatalogError(f"{path}: {label}: {problems}") from None
        if entry.id in seen:
            raise CatalogError(f"{path}: {label}: field 'id': duplicate id {entry.id!r}")
        seen.add(entry.id)
        entries.append(entry)
    return entries


def find_entry(entry_id: str, path: str | Path | None = None) -> tuple[CatalogEntry, Path]:
    """The entry with `entry_id` and its catalog file."""
    catalog = Path(path) if path else default_catalog_path()
    for entry in load_catalog(catalog):
        if entry.id == entry_id:
            return entry, catalog
    ids = ", ".join(e.id for e in load_catalog(catalog))
    raise CatalogError(f"{catalog}: no entry with id {entry_id!r} (ids: {ids})")
