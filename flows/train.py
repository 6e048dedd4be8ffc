"""Training flows: thin Prefect wrappers over the training loops in `models/`."""

from __future__ import annotations

from typing import Any

from prefect import flow, task


@task(name="train-detector")
def train_detector_task(overrides: dict[str, Any]) -> dict[str, Any]:
    """Run (or resume) the detector training loop and ship its best weights."""
    from models.train_detector import config_from_overrides, train_detector

    return train_detector(config_from_overrides(**overrides))


@flow(name="train-detector")
def train_detector_flow(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the Res-UNet damage detector on synthetic damage; resumes from its checkpoint."""
    return train_detector_task(overrides or {})
