"""The stages as plain functions on Zarr stores: ingest, detect, inpaint, export, sweep."""
