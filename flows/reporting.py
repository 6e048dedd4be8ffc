"""What a stage shows in the Prefect UI: a progress artifact while chunks finish, then a summary.

Every stage ends with a markdown artifact (run or skipped, with the skip key; chunks, time, throughput,
outputs, provenance file); detect adds a table artifact of damage per class and export one with the
before/overlay/after previews (small inline thumbnails, plus the full files' paths).
"""

from __future__ import annotations

import base64
import io
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from pipeline.engine.runner import progress_listener
from pipeline.stages.detect import CLASSES, StageResult


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys: lower-case letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")[:100]


@contextmanager
def progress_artifact(stage: str, store: str, min_interval: float = 2.0) -> Iterator[None]:
    """A progress artifact for `stage`, updated (at most every `min_interval` s) as chunk tasks finish."""
    artifact_id = create_progress_artifact(0.0, key=artifact_key(stage, "progress"),
                                           description=f"{stage} of {store}")
    last = [0.0]

    def listener(label: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - last[0] >= min_interval:
            last[0] = now
            update_progress_artifact(artifact_id, 100.0 * done / total, description=f"{label}: {done}/{total}")

    token = progress_listener.set(listener)
    try:
        yield
    finally:
        progress_listener.reset(token)
        update_progress_artifact(artifact_id, 100.0, description=f"{stage} finished")


def _megapixels(result: StageResult, shape: list[int] | None) -> float | None:
    if not shape or result.seconds <= 0:
        return None
    return shape[-1] * shape[-2] / 1e6 / result.seconds


def report_stage(result: StageResult, shape: list[int] | None = None, outputs: list[str] | None = None) -> str:
    """The stage's markdown summary artifact; returns its text."""
    status = "**skipped** — inputs, parameters and weights unchanged" if result.skipped else "**ran**"
    lines = [f"# {result.stage}: {status}", "", f"- store: `{result.store}`", f"- key: `{result.key}`"]
    if not result.skipped:
        lines += [f"- time: {result.seconds:.1f} s"]
        rate = _megapixels(result, shape)
        if rate:
            lines += [f"- throughput: {rate:.2f} MP/s"]
        lines += [f"- chunks run: {result.chunks_run}, resumed from a previous run: {result.chunks_resumed}, "
                  f"copied unchanged: {result.chunks_copied}"]
    for key, value in result.summary.items():
        if isinstance(value, (int, float, str)) and key not in ("store", "key", "seconds", "provenance"):
            lines.append(f"- {key}: {value}")
    if "area_percent" in result.summary:
        lines += [f"- {name} area: {result.summary['area_percent'][name]:.3f} %" for name in CLASSES]
    lines += [f"- output: `{o}`" for o in outputs or []]
    lines += [f"- provenance: `{result.provenance}`"]
    if result.notes:
        lines += ["", "## Warnings", ""] + [f"- {note}" for note in result.notes]
    text = "\n".join(lines)
    create_markdown_artifact(text, key=artifact_key(result.stage, "summary"),
                             description=f"{result.stage} {'skipped' if result.skipped else 'summary'}")
    return text


def report_damage_table(summary: dict[str, Any]) -> None:
    rows = [{"class": name, "pixels": summary["counts"][name], "area %": round(summary["area_percent"][name], 4)}
            for name in CLASSES]
    create_table_artifact(rows, key="damage-per-class", description="damage found per class")


def report_flagged_shares(shares: dict[str, dict[str, float | None]]) -> None:
    """Adapt's table artifact: per class, the share of the scan flagged before the fit and now."""
    rows = [{"class": name, "flagged before adapt %": None if s["before"] is None else round(s["before"], 4),
             "flagged now %": round(s["now"], 4)} for name, s in shares.items()]
    create_table_artifact(rows, key="adapt-flagged-share",
                          description="share of the scan flagged, before adapt and now")


def _thumbnail(path: Path, side: int = 360) -> str:
    from PIL import Image

    with Image.open(path) as im:
        im.thumbnail((side, side))
        buffer = io.BytesIO()
        im.convert("RGB").save(buffer, format="JPEG", quality=80)
    return base64.b64encode(buffer.getvalue()).decode()


def report_previews(out_dir: Path) -> None:
    cells = []
    for name, caption in (("preview-scan.png", "before"), ("preview-overlay.png", "damage"),
                          ("preview-restored.png", "after")):
        path = out_dir / name
        if path.exists():
            cells.append(f"**{caption}** (`{path}`)\n\n![{caption}](data:image/jpeg;base64,{_thumbnail(path)})")
    create_markdown_artifact("\n\n".join(cells), key="before-after", description="before / damage / after")


def result_dict(result: StageResult) -> dict[str, Any]:
    return asdict(result)


def report_sweep(outcomes: dict[str, str], items: dict[str, Any]) -> None:
    """A catalog sweep's table: per scan, what happened, the source digest and the store."""
    rows = [{"scan": scan_id, "outcome": outcome,
             "source sha256": items[scan_id].source_sha256[:16] if scan_id in items else "",
             "store": items[scan_id].store if scan_id in items else ""} for scan_id, outcome in outcomes.items()]
    create_table_artifact(rows, key="catalog-sweep", description="catalog sweep: restored, skipped, failed")


def metric_rows(metrics: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """Nested metrics flattened to rows {metric: 'best.craquelure.f1', value: 0.81} (numbers only)."""
    rows: list[dict[str, Any]] = []
    for name, value in metrics.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict):
            rows += metric_rows(value, f"{path}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            rows.append({"metric": path, "value": round(float(value), 6)})
    return rows


def report_metrics(name: str, summary: dict[str, Any]) -> None:
    """A training flow's final metrics as a table artifact `<name>-metrics`."""
    create_table_artifact(metric_rows(summary), key=artifact_key(name, "metrics"),
                          description=f"{name}: final metrics")
