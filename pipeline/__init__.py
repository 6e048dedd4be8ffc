"""Retouch stages as plain functions on Zarr arrays (no Prefect here)."""

__version__ = "0.1.0"
