"""Export stage: the restored pyramid as a tiled pyramidal TIFF, PNG previews, a before/after page, a summary.

    <out>/restored.tif          pyramidal tiled TIFF (SubIFDs), the scan's ICC profile and resolution kept
    <out>/preview-scan.png      the scan, downsampled to at most `preview_max_side`
    <out>/preview-overlay.png   the scan with craquelure (red) and paint loss (cyan) overlaid
    <out>/preview-restored.png  the restored image
    <out>/before-after.html     the three previews side by side with the damage summary
    <out>/summary.json          damage area per class, chunks inpainted, digests, output files, provenance

The TIFF is written tile by tile from the Zarr pyramid (never the whole image in memory) under a temporary
name and renamed when done; `summary.json` is written last and marks the export complete.
"""

from __future__ import annotations

import hashlib
import html
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from pipeline import __version__
from pipeline.io.image_io import write_png
from pipeline.io.store import DAMAGE_LABELS, group_info, open_complete, open_damage_labels
from pipeline.provenance import StageRecord, sha256_file
from pipeline.stages.detect import CLASSES, LABEL_CLASSES, StageResult

OVERLAY_COLOURS = {c.value: c.rgba[:3] for c in LABEL_CLASSES}  # the label image's own colours


@dataclass(frozen=True)
class ExportConfig:
    """TIFF tile side, preview size, TIFF compression."""

    tile: int = 512
    preview_max_side: int = 2048
    compression: str = "zlib"

    def __post_init__(self) -> None:
        if self.tile % 16 or self.tile < 64:
            raise ValueError(f"tile must be a multiple of 16 and >= 64, got {self.tile}")
        if self.preview_max_side < 64:
            raise ValueError(f"preview_max_side must be >= 64, got {self.preview_max_side}")
        if self.compression not in ("zlib", "zstd", "lzw", "none"):
            raise ValueError(f"compression must be zlib, zstd, lzw or none, got {self.compression!r}")


def _tiles(array: Any, tile: int) -> Iterator[np.ndarray]:
    """(tile, tile, C) tiles of a (c, y, x) array in TIFF order (rows of tiles), edge tiles zero-padded.

    Each tile is read on its own, so memory does not grow with the image's width (a row of tiles of a
    40,000-px-wide scan would be 60 MB per 512 rows).
    """
    c, h, w = array.shape
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            part = np.moveaxis(np.asarray(array[:, y0 : y0 + tile, x0 : x0 + tile]), 0, -1)
            block = np.zeros((tile, tile, c), part.dtype)
            block[: part.shape[0], : part.shape[1]] = part
            yield block


def write_pyramidal_tiff(group: Any, path: Path, tile: int, compression: str, meta: dict[str, Any]) -> None:
    """All levels of a (c, y, x) pyramid group into one tiled TIFF: level 0, then SubIFDs."""
    levels = sorted(group.array_keys(), key=int)
    c = group[levels[0]].shape[0]
    photometric = "rgb" if c in (3, 4) else "minisblack"
    extras = {"extrasamples": [2]} if c in (2, 4) else {}
    options: dict[str, Any] = {
        "tile": (tile, tile),
        "photometric": photometric,
        "compression": None if compression == "none" else compression,
        **extras,
    }
    if meta.get("icc_profile_hex"):
        options["iccprofile"] = bytes.fromhex(meta["icc_profile_hex"])
    if meta.get("XResolution") and meta.get("YResolution"):
        x, y = meta["XResolution"], meta["YResolution"]
        options["resolution"] = (x[0] / x[1], y[0] / y[1])
        options["resolutionunit"] = meta.get("ResolutionUnit", 2)
    tmp = path.with_name(path.name + ".partial")
    with tifffile.TiffWriter(tmp, bigtiff=True) as tif:
        for index, level in enumerate(levels):
            array = group[level]
            _, h, w = array.shape
            tif.write(_tiles(array, tile), shape=(h, w, c), dtype=array.dtype,
                      subifds=len(levels) - 1 if index == 0 else None,
                      subfiletype=1 if index else 0, **options)
    tmp.replace(path)


def preview_level(group: Any, max_side: int) -> str:
    """The largest level whose longest side is <= max_side (the smallest level if none is)."""
    levels = sorted(group.array_keys(), key=int)
    for level in levels:
        if max(group[level].shape[1:]) <= max_side:
            return level
    return levels[-1]


def to_rgb8(block: np.ndarray) -> np.ndarray:
    """(c, y, x) uint8/uint16 -> (y, x, 3) uint8 for previews (alpha dropped, grey replicated)."""
    image = np.moveaxis(block, 0, -1)
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    image = image[:, :, :1] if image.shape[2] in (1, 2) else image[:, :, :3]
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image


def overlay(scan_rgb: np.ndarray, labels: np.ndarray, alpha: float = 0.65) -> np.ndarray:
    """The scan with each damage class painted over it in its colour."""
    out = scan_rgb.astype(np.float32)
    for value, colour in OVERLAY_COLOURS.items():
        where = labels == value
        out[where] = (1 - alpha) * out[where] + alpha * np.asarray(colour, np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _resize_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if labels.shape == shape:
        return labels
    ys = np.minimum((np.arange(shape[0]) * labels.shape[0]) // shape[0], labels.shape[0] - 1)
    xs = np.minimum((np.arange(shape[1]) * labels.shape[1]) // shape[1], labels.shape[1] - 1)
    return labels[np.ix_(ys, xs)]


def _page(title: str, summary: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{summary['damage']['area_percent'].get(name, 0.0):.3f} %</td></tr>"
        for name in CLASSES
    )
    figures = "".join(
        f'<figure><img src="{src}" alt="{cap}"><figcaption>{cap}</figcaption></figure>'
        for src, cap in (("preview-scan.png", "before (scan)"), ("preview-overlay.png", "damage found"),
                         ("preview-restored.png", "after (restored)"))
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}} .row{{display:flex;gap:1em;flex-wrap:wrap}}
figure{{margin:0;flex:1;min-width:280px}} img{{width:100%}} td{{padding:0 1em 0 0}}</style></head><body>
<h1>{html.escape(title)}</h1><div class="row">{figures}</div>
<h2>Damage found</h2><table>{rows}</table>
<p>Only pixels inside the damage mask (dilated by {summary['inpaint'].get('dilate', 0)} px) were changed;
every other pixel of <code>restored.tif</code> equals the scan. Provenance: {len(summary['provenance'])} PROV-JSON
documents in the store's <code>provenance/</code>.</p></body></html>
"""


def export_key(restored_digest: str, damage_digest: str, config: ExportConfig) -> str:
    payload = json.dumps({"restored": restored_digest, "damage": damage_digest, "config": asdict(config),
                          "version": __version__}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def export(store: str, out_dir: Path, config: ExportConfig | None = None, force: bool = False,
           run_id: str | None = None, title: str | None = None) -> StageResult:
    """Write the deliverables of `store` into `out_dir`; skipped when they are already there and current."""
    from pipeline.provenance import list_documents

    config = config or ExportConfig()
    started = time.perf_counter()
    out_dir = Path(out_dir)
    restored = open_complete(store, "restored")
    damage_labels = open_damage_labels(store)
    scan = open_complete(store, "scan")
    scan_info, damage_info, restored_info = (group_info(store, g) for g in ("scan", "damage", "restored"))
    key = export_key(restored_info["digests"]["0"], damage_info["digests"]["labels/0"], config)
    summary_path = out_dir / "summary.json"
    if summary_path.exists() and not force:
        previous = json.loads(summary_path.read_text())
        if previous.get("key") == key:
            return StageResult("export", store, True, key, previous["files_sha256"], previous,
                               previous.get("provenance"), time.perf_counter() - started)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary_path.unlink(missing_ok=True)  # written again last: its absence means "not complete"
    tiff_path = out_dir / "restored.tif"
    write_pyramidal_tiff(restored, tiff_path, config.tile, config.compression, scan_info.get("source_metadata", {}))
    level = preview_level(scan, config.preview_max_side)
    scan_rgb = to_rgb8(np.asarray(scan[level]))
    labels_levels = sorted(damage_labels.array_keys(), key=int)
    labels_level = level if level in labels_levels else labels_levels[-1]
    labels = _resize_labels(np.asarray(damage_labels[labels_level][0]), scan_rgb.shape[:2])
    write_png(out_dir / "preview-scan.png", scan_rgb)
    write_png(out_dir / "preview-overlay.png", overlay(scan_rgb, labels))
    write_png(out_dir / "preview-restored.png", to_rgb8(np.asarray(restored[level])))
    files = ["restored.tif", "preview-scan.png", "preview-overlay.png", "preview-restored.png"]
    summary: dict[str, Any] = {
        "store": store,
        "source": scan_info.get("source"),
        "shape": list(scan["0"].shape),
        "dtype": str(scan["0"].dtype),
        "damage": damage_info["summary"],
        "inpaint": {**restored_info["summary"], "weights": restored_info.get("weights"),
                    "weights_sha256": restored_info.get("weights_sha256"),
                    "dilate": _stage_param(restored_info, "dilate")},
        "detector": {"weights": damage_info.get("weights"), "weights_sha256": damage_info.get("weights_sha256")},
        "digests": {"scan/0": scan_info["digests"]["0"], "damage/labels/0": damage_info["digests"]["labels/0"],
                    "restored/0": restored_info["digests"]["0"]},
    }
    (out_dir / "before-after.html").write_text(_page(title or Path(store).stem, {**summary, "provenance":
                                                                                 list_documents(store)}))
    files.append("before-after.html")
    summary["files_sha256"] = {name: sha256_file(out_dir / name) for name in files}
    record = StageRecord("export", {**asdict(config), "out_dir": str(out_dir.resolve())}, run_id=run_id)
    record.used("restored/0", path="restored/0", sha256_chunks=restored_info["digests"]["0"])
    record.used("damage/labels/0", path=f"{DAMAGE_LABELS}/0", sha256_chunks=damage_info["digests"]["labels/0"])
    for name, digest in summary["files_sha256"].items():
        record.generated(name, derived_from=["restored/0", "damage/labels/0"],
                         path=str((out_dir / name).resolve()), sha256=digest)
    summary["provenance"] = record.write(store)
    summary["key"] = key
    summary["seconds"] = time.perf_counter() - started
    tmp = summary_path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True))
    tmp.replace(summary_path)
    return StageResult("export", store, False, key, summary["files_sha256"], summary, summary["provenance"],
                       summary["seconds"])


def _stage_param(info: dict[str, Any], name: str) -> Any:
    return info.get("params", {}).get(name)
