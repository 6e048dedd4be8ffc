"""Export stage: the restored pyramid as a tiled pyramidal TIFF, PNG previews, a before/after page, a summary.

    <out>/restored.tif          pyramidal tiled BigTIFF (levels as top-level IFDs: OpenSlide, libvips), the
                                scan's ICC profile and resolution kept, described as a restoration (text + XMP)
    <out>/preview-scan.png      the scan, downsampled to at most `preview_max_side`
    <out>/preview-overlay.png   the scan with craquelure (red) and paint loss (cyan) overlaid
    <out>/preview-restored.png  the restored image
    <out>/iiif/<image>/         static IIIF level-0 tiles of scan, restored and damage (see iiif_static)
    <out>/before-after.html     deep zoom before/after (swipe, damage overlay; works offline), the three
                                previews and the damage summary
    <out>/summary.json          schema 2: software, catalog entry, pixel size, damage per class, digests, each
                                file with its sha256 and what it was made from, provenance (paths relative)
    <out>/ro-crate-metadata.json  the run as a Workflow Run RO-Crate (pipeline.crate), with provenance/ and
                                workflow/ beside it

The TIFF is written tile by tile from the Zarr pyramid (never the whole image in memory). Every file is
written into `<out>/.export.partial/` first and moved into `<out>` when all are done, `summary.json` last: it
marks the export complete, and a failed export leaves no complete-looking deliverable.

Before anything is written, the export refuses (one line, the folder left as it was): a `restored/` made
from damage that was recomputed since (stale), a folder holding another scan's export (unless `force`),
and a `restored/` whose pixels, read chunk by chunk, no longer match the digests recorded when it was
written (a corrupt or modified store). The summary's digests are those of what was read.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from pipeline import __version__
from pipeline.crate import write_crate
from pipeline.errors import InputError
from pipeline.io.digests import ALGORITHM
from pipeline.io.image_io import write_png
from pipeline.io.ordered import ordered_map, run_in_order
from pipeline.io.store import (
    DAMAGE_LABELS,
    DETECTED_MASKS,
    StoreError,
    array_url,
    block_digest,
    chunk_grid,
    combine_digests,
    group_info,
    is_local,
    join,
    local_path,
    open_complete,
    open_damage_labels,
    read_region,
)
from pipeline.provenance import (
    StageRecord,
    code_version,
    document_url,
    input_ref,
    marker_refs,
    now_iso,
    sha256_file,
    store_uuid,
)
from pipeline.stages.detect import CLASSES, LABEL_CLASSES, STALE_KEY, StageResult
from pipeline.stages.iiif_static import deep_zoom_section, to_rgb8, write_static_iiif

SUMMARY_SCHEMA_VERSION = 2
CATALOG_FIELDS = ("id", "title", "creator", "date", "institution", "accession_number", "licence")
OVERLAY_COLOURS = {c.value: c.rgba[:3] for c in LABEL_CLASSES}  # the label image's own colours


@dataclass(frozen=True)
class ExportConfig:
    """TIFF tile side, preview size, TIFF compression."""

    tile: int = 512
    preview_max_side: int = 2048
    compression: str = "zlib"
    iiif: bool = True  # static IIIF level-0 tiles of scan, restored and the damage map, and a deep-zoom page
    iiif_base_url: str | None = None  # where iiif/ will be published (None: ids relative to the page)

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
    40,000-px-wide scan would be 60 MB per 512 rows); the next few are read in other threads meanwhile.
    """
    c, h, w = array.shape

    def read(corner: tuple[int, int]) -> np.ndarray:
        y0, x0 = corner
        part = np.moveaxis(np.asarray(array[:, y0 : y0 + tile, x0 : x0 + tile]), 0, -1)
        block = np.zeros((tile, tile, c), part.dtype)
        block[: part.shape[0], : part.shape[1]] = part
        return block

    yield from ordered_map(read, ((y0, x0) for y0 in range(0, h, tile) for x0 in range(0, w, tile)))


def restoration_description(info: dict[str, Any]) -> str:
    """The TIFF ImageDescription: what the file is and what made it (one line per fact, plain text). TIFF strings
    are 7-bit ASCII: other characters (a scan named `Öl auf Leinwand.tif`) are written as Python escapes
    (`\\xd6l`); the XMP packet holds them as they are."""
    lines = ["Digital restoration made by Retouch: NOT the original. Pixels differ from the scan only inside "
             "the damage mask (inpainted); everywhere else they are the scan's.",
             *(f"{key}: {value}" for key, value in info.items() if value is not None)]
    return "\n".join(lines).encode("ascii", "backslashreplace").decode("ascii")


def restoration_xmp(info: dict[str, Any]) -> bytes:
    """An XMP packet (TIFF tag 700) with the same facts: dc:description, dc:source, xmp:CreatorTool, dates."""
    facts = "".join(f"<retouch:{key}>{html.escape(str(value))}</retouch:{key}>"
                    for key, value in info.items() if value is not None)
    text = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:retouch="https://retouch.invalid/ns/1.0/">'
        '<dc:description><rdf:Alt><rdf:li xml:lang="x-default">Digital restoration (Retouch) derived from the '
        f'scan with sha256 {html.escape(str(info.get("source_sha256")))}; not the original.</rdf:li></rdf:Alt>'
        f'</dc:description><dc:source>sha256:{html.escape(str(info.get("source_sha256")))}</dc:source>'
        f'<xmp:CreatorTool>Retouch {html.escape(str(info.get("retouch_version")))}</xmp:CreatorTool>'
        f'<xmp:CreateDate>{html.escape(str(info.get("date")))}</xmp:CreateDate>{facts}'
        '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    )
    return text.encode("utf-8")


def write_pyramidal_tiff(group: Any, path: Path, tile: int, compression: str, meta: dict[str, Any],
                         description: dict[str, Any] | None = None) -> None:
    """All levels of a (c, y, x) pyramid group into one tiled BigTIFF, each level a top-level IFD (level 0
    first, then the reduced-resolution levels, NewSubfileType 1): the layout OpenSlide's generic tiled TIFF
    and libvips read as a pyramid. Level 0 carries the ImageDescription and XMP of `description`."""
    levels = sorted(group.array_keys(), key=int)
    c = group[levels[0]].shape[0]
    photometric = "rgb" if c in (3, 4) else "minisblack"
    extras = {"extrasamples": [2]} if c in (2, 4) else {}
    options: dict[str, Any] = {
        "tile": (tile, tile),
        "photometric": photometric,
        "compression": None if compression == "none" else compression,
        "metadata": None,  # no tifffile JSON: the description is ours
        **extras,
    }
    if meta.get("icc_profile_hex"):
        options["iccprofile"] = bytes.fromhex(meta["icc_profile_hex"])
    if meta.get("XResolution") and meta.get("YResolution"):
        x, y = meta["XResolution"], meta["YResolution"]
        options["resolution"] = (x[0] / x[1], y[0] / y[1])
        options["resolutionunit"] = meta.get("ResolutionUnit", 2)
    elif meta.get("dpi") and min(meta["dpi"]) > 0:  # a PNG's or JPEG's pixel density (Pillow gives it per inch)
        options["resolution"] = tuple(meta["dpi"][:2])
        options["resolutionunit"] = 2
    xmp = restoration_xmp(description) if description else b""
    tmp = path.with_name(path.name + ".partial")
    with tifffile.TiffWriter(tmp, bigtiff=True) as tif:
        for index, level in enumerate(levels):
            array = group[level]
            _, h, w = array.shape
            first = {"description": restoration_description(description),
                     "extratags": [(700, 1, len(xmp), xmp, True)]} \
                if index == 0 and description else {}
            level_options = dict(options)
            if index and "resolution" in options:  # a reduced level's pixels are 2**index times larger
                level_options["resolution"] = tuple(r / 2**index for r in options["resolution"])
            # a grey scan is (h, w): tifffile reads (h, w, 1) as h pages of (w, 1) and asks for more tiles
            tif.write(_tiles(array, tile), shape=(h, w) if c == 1 else (h, w, c), dtype=array.dtype,
                      subfiletype=1 if index else 0, **level_options, **first)
    tmp.replace(path)


def preview_level(group: Any, max_side: int) -> str:
    """The largest level whose longest side is <= max_side (the smallest level if none is)."""
    levels = sorted(group.array_keys(), key=int)
    for level in levels:
        if max(group[level].shape[1:]) <= max_side:
            return level
    return levels[-1]


def fit_preview(image: np.ndarray, max_side: int) -> np.ndarray:
    """`image` (y, x, ...) subsampled so that its longest side is at most `max_side` (each side >= 1 px):
    the pyramid stops halving at a small side, so a 1x50000 scan's smallest level is still 50000 px long."""
    h, w = image.shape[:2]
    step = -(-max(h, w) // max_side)
    if step <= 1:
        return image
    return np.ascontiguousarray(image[::step, ::step])


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


def _page(title: str, summary: dict[str, Any], deep_zoom: str = "") -> str:
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
figure{{margin:0;flex:1;min-width:280px}} img{{width:100%}} td{{padding:0 1em 0 0}}
.dz{{display:flex;gap:4px;height:70vh}} .dz div{{flex:1;background:#000}}</style></head><body>
<h1>{html.escape(title)}</h1>{deep_zoom}<div class="row">{figures}</div>
<h2>Damage found</h2><table>{rows}</table>
<p>Only pixels inside the damage mask (dilated by {summary['inpaint'].get('dilate', 0)} px) were changed;
every other pixel of <code>restored.tif</code> equals the scan. Provenance: {len(summary['provenance'])} PROV-JSON
documents in the store's <code>provenance/</code>.</p></body></html>
"""


def export_key(restored_digest: str, damage_digest: str, config: ExportConfig) -> str:
    payload = json.dumps({"restored": restored_digest, "damage": damage_digest, "config": asdict(config),
                          "version": __version__}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def refuse_inside_store(store: str, out_dir: Path) -> None:
    """An export written into its store, or into a folder of it, would replace the store's own `provenance/`
    and fill it with files no stage made: refused, even with --force."""
    if not is_local(store):
        return
    root = Path(local_path(store)).resolve()
    target = out_dir.resolve()
    if target == root or root in target.parents:
        where = "is the store itself" if target == root else f"lies inside the store {store}"
        raise InputError(out_dir, f"{where}: write the export beside it (the default is "
                                  f"{root.name.removesuffix('.zarr')}-export next to the store)")


EXPORT_FOLDERS = ("iiif", "provenance", "workflow")  # the folders an export writes, replacing those of the last


def export(store: str, out_dir: Path, config: ExportConfig | None = None, force: bool = False,
           run_id: str | None = None, title: str | None = None,
           catalog: dict[str, Any] | None = None) -> StageResult:
    """Write the deliverables of `store` into `out_dir`; skipped when they are already there and current.

    `catalog`: the scan's catalog entry (title, creator, date, institution, accession_number, licence), kept
    in `summary.json` and the RO-Crate.
    """
    from pipeline.provenance import list_documents

    config = config or ExportConfig()
    started = time.perf_counter()
    out_dir = Path(out_dir)
    refuse_inside_store(store, out_dir)
    record = StageRecord("export", store, {**asdict(config), "out_dir": _relative(out_dir, store)}, run_id=run_id,
                         started=now_iso())
    restored = open_complete(store, "restored")
    damage_labels = open_damage_labels(store)
    scan = open_complete(store, "scan")
    scan_info, damage_info, restored_info = (group_info(store, g) for g in ("scan", "damage", "restored"))
    check_not_stale(store, restored_info, damage_info)
    key = export_key(restored_info["digests"]["0"], damage_info["digests"]["labels/0"], config)
    summary_path = out_dir / "summary.json"
    previous = _previous_summary(summary_path, force) if summary_path.exists() else {}
    same_scan = previous.get("digests", {}).get("scan/0") == scan_info["digests"]["0"]
    if previous and not force:
        if previous.get("key") == key:
            return StageResult("export", store, True, key, previous["files_sha256"], previous,
                               document_url(store, previous.get("provenance_document")),
                               time.perf_counter() - started)
        if not same_scan:
            raise InputError(out_dir, f"holds the export of another scan ({previous.get('source')}, store "
                                      f"{previous.get('store')}); choose another folder, or pass --force to "
                                      "replace it")
    work = out_dir / ".export.partial"  # everything is written here first, moved into out_dir when complete
    if not previous and not force and not work.exists():  # (a killed export leaves its work folder)
        foreign = [name for name in EXPORT_FOLDERS if (out_dir / name).is_dir()]
        if foreign:
            raise InputError(out_dir, f"holds a folder {foreign[0]}/ that no Retouch export made (no summary.json "
                                      f"beside it), which the export would replace: choose another folder, or "
                                      f"pass --force to replace it")
    if same_scan:
        catalog = catalog or previous.get("catalog")  # a rerun of export keeps what the first one was told
    read_digests = verify_pyramid(restored, restored_info["digests"])
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    record.invalidate(marker_refs(previous))
    levels = sorted(restored.array_keys(), key=int)
    for path in levels:
        record.use(f"restored/{path}", input_ref(restored_info, f"restored/{path}", restored_info["digests"][path]))
    facts = {"source": scan_info.get("source"), "source_sha256": scan_info.get("source_sha256"),
             "retouch_version": __version__, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "inpainter": restored_info.get("weights"), "inpainter_sha256": restored_info.get("weights_sha256"),
             "mask": restored_info.get("mask"), "mask_digest": restored_info.get("mask_digest"),
             "detector": damage_info.get("weights"), "detector_sha256": damage_info.get("weights_sha256"),
             "restored_digest": restored_info["digests"]["0"]}
    write_pyramidal_tiff(restored, work / "restored.tif", config.tile, config.compression,
                         scan_info.get("source_metadata", {}), facts)
    level = preview_level(scan, config.preview_max_side)
    labels_levels = sorted(damage_labels.array_keys(), key=int)
    labels_level = level if level in labels_levels else labels_levels[-1]
    record.use(f"scan/{level}", input_ref(scan_info, f"scan/{level}", scan_info["digests"][level]))
    record.use(f"{DAMAGE_LABELS}/{labels_level}", input_ref(damage_info, f"{DAMAGE_LABELS}/{labels_level}",
                                                          damage_info["digests"][f"labels/{labels_level}"]))
    scan_rgb = fit_preview(to_rgb8(np.asarray(scan[level])), config.preview_max_side)
    labels = _resize_labels(np.asarray(damage_labels[labels_level][0]), scan_rgb.shape[:2])
    icc_hex = scan_info.get("source_metadata", {}).get("icc_profile_hex")
    icc = bytes.fromhex(icc_hex) if icc_hex else None  # the previews keep the scan's colours too
    previews = {"preview-scan.png": lambda: scan_rgb, "preview-overlay.png": lambda: overlay(scan_rgb, labels),
                "preview-restored.png": lambda: fit_preview(to_rgb8(np.asarray(restored[level])),
                                                            config.preview_max_side)}
    run_in_order(lambda item: write_png(work / item[0], item[1](), icc), previews.items())  # in threads
    made_from = {  # each file and what it was made from
        "restored.tif": [f"restored/{path}" for path in levels],
        "preview-scan.png": [f"scan/{level}"],
        "preview-overlay.png": [f"scan/{level}", f"{DAMAGE_LABELS}/{labels_level}"],
        "preview-restored.png": [f"restored/{level}"],
        "before-after.html": ["preview-scan.png", "preview-overlay.png", "preview-restored.png"],
    }
    summary = build_summary(store, out_dir, scan, scan_info, damage_info, restored_info, catalog, read_digests)
    deep_zoom = ""
    if config.iiif:
        infos = {name: write_static_iiif(group, work, name, base_url=config.iiif_base_url,
                                         overlay=name == "damage")
                 for name, group in (("scan", scan), ("restored", restored), ("damage", damage_labels))}
        for name in infos:  # each image's tiles were cut from its pyramid
            source = {"scan": f"scan/{level}", "restored": f"restored/{level}",
                      "damage": f"{DAMAGE_LABELS}/{labels_level}"}[name]
            made_from[f"iiif/{name}/info.json"] = [source]
        made_from["before-after.html"] += [f"iiif/{name}/info.json" for name in infos]
        deep_zoom = deep_zoom_section(infos, work)
    page_title = title or (f"{catalog['creator']}, {catalog['title']}" if catalog else Path(store).stem)
    (work / "before-after.html").write_text(_page(page_title, {**summary, "provenance": list_documents(store)},
                                                  deep_zoom))
    summary["files_sha256"] = {name: sha256_file(work / name) for name in made_from}
    for name, sources in made_from.items():
        record.generated(f"export/{name}", [s if s in record.inputs else f"export/{s}" for s in sources],
                         file=name, sha256=summary["files_sha256"][name])
    summary["files"] = {name: {"sha256": summary["files_sha256"][name], "made_from": sources}
                        for name, sources in made_from.items()}
    prov = record.write()
    summary["provenance_document"] = prov
    summary["provenance"] = [f"provenance/{Path(p).name}" for p in list_documents(store)]
    summary["prov"] = record.marker(prov)
    summary["key"] = key
    summary["seconds"] = time.perf_counter() - started
    write_crate(work, summary, {"ingest": scan_info, "detect": damage_info, "inpaint": restored_info},
                record, store)
    _move_in(work, out_dir, summary_path, summary)
    return StageResult("export", store, False, key, summary["files_sha256"], summary, join(store, prov),
                       summary["seconds"])


def _move_in(work: Path, out_dir: Path, summary_path: Path, summary: dict[str, Any]) -> None:
    """Move every file and folder written in `work` into `out_dir` (replacing the previous export's), then
    write `summary.json` last: until then the folder has no summary, i.e. no complete-looking export."""
    summary_path.unlink(missing_ok=True)
    for entry in sorted(work.iterdir()):
        target = out_dir / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        entry.replace(target)
    tmp = work / "summary.json"
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True))
    tmp.replace(summary_path)
    work.rmdir()


def build_summary(store: str, out_dir: Path, scan: Any, scan_info: dict[str, Any], damage_info: dict[str, Any],
                  restored_info: dict[str, Any], catalog: dict[str, Any] | None,
                  read_digests: dict[str, str]) -> dict[str, Any]:
    """The readable part of `summary.json`: what was restored, how, by which software, with paths relative;
    the digest of `restored/0` is that of the pixels read (and checked) for this export."""
    return {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "software": {"name": "retouch", "version": __version__, "code": code_version()},
        "created": now_iso(),
        "catalog": {k: catalog.get(k) for k in CATALOG_FIELDS} if catalog else None,
        "store": _relative(Path(store), str(out_dir)) if is_local(store) else store,
        "store_uuid": store_uuid(store),
        "source": Path(str(scan_info.get("source") or "")).name or None,
        "source_sha256": scan_info.get("source_sha256"),
        "pixel_size_um": (scan_info.get("params") or {}).get("pixel_size_um"),
        "shape": list(scan["0"].shape),
        "dtype": str(scan["0"].dtype),
        "damage": damage_info["summary"],
        "inpaint": {**restored_info["summary"], "weights": restored_info.get("weights"),
                    "weights_sha256": restored_info.get("weights_sha256"),
                    "dilate": _stage_param(restored_info, "dilate")},
        "detector": {"weights": damage_info.get("weights"), "weights_sha256": damage_info.get("weights_sha256")},
        "digest_algorithm": ALGORITHM,
        "digests": {"scan/0": scan_info["digests"]["0"], f"{DAMAGE_LABELS}/0": damage_info["digests"]["labels/0"],
                    "restored/0": read_digests["0"]},
    }


def _relative(path: Path, base: str) -> str:
    """`path` relative to the local folder `base` (a remote base: the path as given)."""
    if not is_local(base):
        return str(path)
    return os.path.relpath(Path(path).resolve(), Path(local_path(base)).resolve())


def check_not_stale(store: str, restored_info: dict[str, Any], damage_info: dict[str, Any]) -> None:
    """Refuse `restored/` made from detected damage other than the current `damage/` (recomputed since)."""
    made_from = restored_info.get("mask_digest") if restored_info.get("mask") in DETECTED_MASKS else None
    if restored_info.get(STALE_KEY) or (made_from and made_from != damage_info["digests"]["labels/0"]):
        raise StoreError(join(store, "restored"), "stale: damage/ was recomputed after restored/ was made from "
                                                  "it; run `retouch inpaint` first, then export")


def verify_pyramid(group: Any, recorded: dict[str, str]) -> dict[str, str]:
    """Per level, the digest of the pixels as read now (chunk by chunk, as the stage digested them when it
    wrote them); a StoreError names the array whose pixels differ from the recorded digest, or the chunk
    that does not decode."""
    digests = {}
    for level in sorted(group.array_keys(), key=int):
        array = group[level]
        chunk = array.chunks[1]
        per_chunk = {f"{y0 // chunk}-{x0 // chunk}": block_digest(read_region(array, y0, y1, x0, x1))
                     for y0, y1, x0, x1 in chunk_grid(array.shape, chunk)}
        digests[level] = combine_digests(per_chunk)
        if level in recorded and digests[level] != recorded[level]:
            raise StoreError(array_url(array), "pixels differ from the digest recorded when they were written "
                                               "(corrupt or modified store); re-run the stage that writes it "
                                               "with --force")
    return digests


def _previous_summary(path: Path, force: bool = False) -> dict[str, Any]:
    """The summary.json already in the export folder; unreadable: refused, or ignored with --force."""
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        if force:
            return {}
        raise InputError(path, f"unreadable export summary ({exc}); remove it or pass --force") from exc


def _stage_param(info: dict[str, Any], name: str) -> Any:
    return info.get("params", {}).get(name)
