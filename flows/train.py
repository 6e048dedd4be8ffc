"""Training flows: thin Prefect wrappers over the training loops in `models/`."""

from __future__ import annotations

from typing import Any

from prefect import flow, task


@task(name="train-detector")
def train_detector_task(overrides: dict[str, Any]) -> dict[str, Any]:
    """Run (or resume) the detector training loop and ship its best weights."""
    from lab.detector_config import config_from_overrides
    from lab.train_detector import train_detector

    return train_detector(config_from_overrides(**overrides))


@flow(name="train-detector")
def train_detector_flow(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the Res-UNet damage detector on synthetic damage; resumes from its checkpoint."""
    return _with_metrics_artifact("train-detector", train_detector_task(overrides or {}))


def run_inpainter_training(overrides: dict[str, Any], ship: bool = True) -> dict[str, Any]:
    """Train (or resume) the PConv inpainter on TRAIN paintings; ship the final weights if asked."""
    from lab.inpainter_config import InpainterTrainConfig
    from lab.paintings import paintings
    from lab.train_inpainter import export_weights, train

    cfg = InpainterTrainConfig(**overrides)
    ckpt = train(cfg, paintings("train"), paintings("val"))
    summary: dict[str, Any] = {"checkpoint": str(ckpt)}
    if ship:
        data = {"train_paintings": [p.name for p in paintings("train")],
                "val_paintings": [p.name for p in paintings("val")]}
        entry = export_weights(ckpt, data=data)
        summary.update(shipped=entry.name, sha256=entry.sha256, metrics=entry.metrics)
    return summary


@task(name="train-inpainter")
def train_inpainter_task(overrides: dict[str, Any], ship: bool) -> dict[str, Any]:
    return run_inpainter_training(overrides, ship)


@flow(name="train-inpainter")
def train_inpainter_flow(overrides: dict[str, Any] | None = None, ship: bool = True) -> dict[str, Any]:
    """Train the partial-convolution U-Net inpainter; resumes from its checkpoint."""
    return _with_metrics_artifact("train-inpainter", train_inpainter_task(overrides or {}, ship))


def _with_metrics_artifact(name: str, summary: dict[str, Any]) -> dict[str, Any]:
    """Publish the final metrics as a table artifact `<name>-metrics` (shown with the flow run in the UI)."""
    from flows.reporting import report_metrics

    report_metrics(name, summary)
    return summary
