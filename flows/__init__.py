"""Prefect flows and deployments (thin wrappers that call `pipeline/` stages and `lab/` training) and the CLI."""
