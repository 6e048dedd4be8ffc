"""The Dask engine: running chunk tasks, the resume ledger, tiled model runs, pyramid levels."""
