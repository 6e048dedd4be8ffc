"""Prefect flows: thin wrappers that call `pipeline/` stages."""
