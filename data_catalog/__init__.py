"""The catalog of scans (YAML, validated by `data_catalog.schema`) and the bundled samples."""

from data_catalog.schema import CatalogEntry, CatalogError, default_catalog_path, load_catalog

__all__ = ["CatalogEntry", "CatalogError", "default_catalog_path", "load_catalog"]
