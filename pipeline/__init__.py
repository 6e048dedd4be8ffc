"""Retouch stages as plain functions on Zarr arrays (no Prefect here): `io/`, `engine/`, `provenance`,
`stages/`."""

__version__ = "0.1.0"
