"""Fault injection on inputs and export: tiny and extreme images, forged TIFF headers, decompression bombs, an
export that fails half-way. Each checks the refusal (one line, naming the file) and what is left on disk."""

from __future__ import annotations

import json
import re
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from pipeline.engine.runner import EngineConfig
from pipeline.errors import InputError
from pipeline.io.sources import open_source
from pipeline.stages.detect import DetectConfig, detect
from pipeline.stages.export import ExportConfig, export
from pipeline.stages.ingest import IngestConfig, ingest
from pipeline.stages.inpaint_stage import InpaintStageConfig, inpaint_store

QUIET = EngineConfig(workers=1, progress=False)
DELIVERABLES = sorted(["before-after.html", "preview-overlay.png", "preview-restored.png", "preview-scan.png",
                       "restored.tif", "summary.json", "iiif", "openseadragon.min.js", "openseadragon-LICENSE.txt",
                       "ro-crate-metadata.json", "provenance", "workflow"])  # (static IIIF tiles and RO-Crate)


def restore(tmp_path: Path, image: np.ndarray, preview_max_side: int = 2048, top_level: int = 1024,
            dpi: float | None = None, name: str = "scan.png") -> Path:
    """ingest (pyramid levels down to `top_level` px) -> detect -> inpaint -> export of `image` (a PNG named
    `name`, with a pixel density of `dpi` where given) with the tiny networks; the export folder."""
    source = tmp_path / name
    if dpi:
        Image.fromarray(image).save(source, dpi=(dpi, dpi))
    else:
        source.write_bytes(imagecodecs.png_encode(image))
    store = str(tmp_path / "scan.zarr")
    ingest(source, store, IngestConfig(chunk=256, top_level_max_side=top_level), QUIET)
    detect(store, DetectConfig(tile=64, overlap=16, halo=16, tta=1), QUIET)
    inpaint_store(store, InpaintStageConfig(tile=64, overlap=16, halo=16), QUIET)
    out = tmp_path / "export"
    export(store, out, ExportConfig(preview_max_side=preview_max_side))
    return out


@pytest.mark.parametrize(("shape", "max_side", "preview"), [
    ((1, 1), 2048, (1, 1)),
    pytest.param((1, 300), 64, (60, 1), marks=pytest.mark.slow),  # thin tiles are slow to detect (~20 s)
    pytest.param((200, 2), 64, (1, 50), marks=pytest.mark.slow),
])
def test_tiny_and_extreme_aspect_images_restore_with_previews_within_their_limit(
        tmp_path: Path, tiny_weights: Path, one_torch_thread: None, shape: tuple[int, int], max_side: int,
        preview: tuple[int, int]) -> None:
    image = np.full((*shape, 3), 140, np.uint8)
    out = restore(tmp_path, image, max_side)
    assert sorted(p.name for p in out.iterdir()) == DELIVERABLES  # nothing half-written left beside them
    for name in ("preview-scan.png", "preview-overlay.png", "preview-restored.png"):
        with Image.open(out / name) as im:
            assert im.size == preview and max(im.size) <= max_side
    assert tifffile.imread(out / "restored.tif").shape == (*shape, 3)
    assert json.loads((out / "summary.json").read_text())["shape"] == [3, *shape]


@pytest.mark.parametrize(("dtype", "channels"), [(np.uint8, 1), (np.uint16, 1), (np.uint8, 2)])
def test_a_grey_scan_exports_a_grey_pyramidal_tiff(tmp_path: Path, tiny_weights: Path, one_torch_thread: None,
                                                   dtype: type, channels: int) -> None:
    """A grey scan (an infrared reflectogram, an X-ray; with or without alpha) is restored and exported as
    such: each level of restored.tif is the store's restored/ level, grey, with its alpha where it had one."""
    import zarr

    rng = np.random.default_rng(3)
    top = np.iinfo(dtype).max
    image = rng.integers(0, top, (300, 260, channels) if channels > 1 else (300, 260), dtype=dtype)
    out = restore(tmp_path, image, top_level=64)
    restored = zarr.open_group(str(tmp_path / "scan.zarr"), mode="r")["restored"]
    with tifffile.TiffFile(out / "restored.tif") as tif:
        assert len(tif.pages) == len(list(restored.array_keys())) > 1
        for index, page in enumerate(tif.pages):
            level = np.asarray(restored[str(index)])  # (c, y, x)
            expected = level[0] if channels == 1 else np.moveaxis(level, 0, -1)
            assert page.dtype == dtype and np.array_equal(page.asarray(), expected)


def test_a_png_s_pixel_density_reaches_the_restored_tiff(tmp_path: Path, tiny_weights: Path,
                                                          one_torch_thread: None) -> None:
    out = restore(tmp_path, np.full((60, 80, 3), 120, np.uint8), dpi=300)
    with tifffile.TiffFile(out / "restored.tif") as tif:
        tags = tif.pages[0].tags
        x, y = tags["XResolution"].value, tags["YResolution"].value
        assert x[0] / x[1] == pytest.approx(300, rel=1e-3) and y[0] / y[1] == pytest.approx(300, rel=1e-3)
        assert tags["ResolutionUnit"].value == 2  # per inch


def test_a_scan_named_in_any_script_exports_with_its_name_in_the_tiff(tmp_path: Path, tiny_weights: Path,
                                                                       one_torch_thread: None) -> None:
    """TIFF strings are 7-bit ASCII: the ImageDescription writes other characters as escapes, the XMP packet
    (UTF-8) as they are."""
    out = restore(tmp_path, np.full((40, 50, 3), 120, np.uint8), name="Öl auf Leinwand, 修复.png")
    with tifffile.TiffFile(out / "restored.tif") as tif:
        page = tif.pages[0]
        assert "source: " in page.description and "\\xd6l auf Leinwand, \\u4fee\\u590d.png" in page.description
        assert "Öl auf Leinwand, 修复.png" in bytes(page.tags[700].value).decode("utf-8")


def test_export_failing_half_way_leaves_the_last_complete_export(tmp_path: Path, tiny_weights: Path,
                                                                 one_torch_thread: None,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    out = restore(tmp_path, np.full((40, 50, 3), 90, np.uint8))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}  # (iiif/, provenance/: folders)

    def disk_full(path: Path, image: np.ndarray, icc_profile: bytes | None = None) -> None:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr("pipeline.stages.export.write_png", disk_full)
    with pytest.raises(OSError, match="No space left"):
        export(str(tmp_path / "scan.zarr"), out, ExportConfig(compression="zstd"))  # a changed export
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # old export intact
    fresh = tmp_path / "fresh"
    with pytest.raises(OSError, match="No space left"):
        export(str(tmp_path / "scan.zarr"), fresh, ExportConfig())
    assert not (fresh / "restored.tif").exists() and not (fresh / "summary.json").exists()


def forged_tiff(path: Path, tiled: bool, rows_per_strip: int = 200_000) -> Path:
    """A 512x512 TIFF whose header then claims 200000x200000 px (tile/strip tables left as they were)."""
    layout = {"tile": (256, 256)} if tiled else {"rowsperstrip": 512}
    tifffile.imwrite(path, np.zeros((512, 512, 3), np.uint8), photometric="rgb", compression="zlib", **layout)
    with tifffile.TiffFile(path, mode="r+b") as tif:
        tags = tif.pages[0].tags
        tags["ImageWidth"].overwrite(200_000)
        tags["ImageLength"].overwrite(200_000)
        if not tiled:
            tags["RowsPerStrip"].overwrite(rows_per_strip)
    return path


@pytest.mark.parametrize(("tiled", "rows", "message"), [
    (True, 0, "claims 200000x200000 px, which takes 611,524 tiles, but the file indexes 4"),
    (False, 512, "claims 200000x200000 px, which takes 391 strips, but the file indexes 1"),
    (False, 200_000, "one of its strips decodes to 114,441 MB, over the 512 MB limit (RETOUCH_MAX_SEGMENT_MB)"),
])
def test_forged_tiff_header_is_refused_at_ingest_in_one_line(tmp_path: Path, tiled: bool, rows: int,
                                                             message: str) -> None:
    from flows.cli import app

    source = forged_tiff(tmp_path / "forged.tif", tiled, rows)
    with pytest.raises(InputError, match=re.escape(message)):
        open_source(source)
    result = CliRunner().invoke(app, ["ingest", str(source), str(tmp_path / "s.zarr")])
    assert result.exit_code == 2
    assert result.output.splitlines() == [f"error: {source}: {result.output.split(': ', 2)[2].strip()}"]
    assert message in " ".join(result.output.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forged.tif"]  # no store, no .partial


def test_limits_are_configurable_and_pillows_bomb_guard_stays_on(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    png = tmp_path / "big.png"
    png.write_bytes(imagecodecs.png_encode(np.zeros((30, 40, 3), np.uint8)))
    assert open_source(png).shape == (30, 40, 3)
    assert Image.MAX_IMAGE_PIXELS == 1 << 29  # set by the reader: a limit, not switched off
    monkeypatch.setenv("RETOUCH_MAX_DECODE_PIXELS", "1000")
    with pytest.raises(InputError, match=r"big\.png: 40x30 px is more than the 1,000 px.*RETOUCH_MAX_DECODE_PIXELS"):
        open_source(png)
    striped = tmp_path / "striped.tif"
    tifffile.imwrite(striped, np.zeros((1024, 1024, 3), np.uint8), photometric="rgb", rowsperstrip=1024)
    assert open_source(striped).shape == (1024, 1024, 3)
    monkeypatch.setenv("RETOUCH_MAX_SEGMENT_MB", "2")
    with pytest.raises(InputError, match="strips decodes to 3 MB, over the 2 MB limit"):
        open_source(striped)
    monkeypatch.setenv("RETOUCH_MAX_SEGMENT_MB", "lots")
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="RETOUCH_MAX_SEGMENT_MB='lots': expected a positive integer"):
        open_source(striped)


def test_cached_restore_is_found_only_when_every_stage_would_skip(tmp_path: Path, tiny_weights: Path,
                                                                  one_torch_thread: None) -> None:
    from dataclasses import asdict, replace

    from pipeline.stages.cached import cached_restore

    out = restore(tmp_path, np.full((40, 50, 3), 90, np.uint8))
    store, source = str(tmp_path / "scan.zarr"), tmp_path / "scan.png"
    configs = [IngestConfig(chunk=256), DetectConfig(tile=64, overlap=16, halo=16, tta=1),
               InpaintStageConfig(tile=64, overlap=16, halo=16), ExportConfig()]
    cached = cached_restore(source, store, out, *configs)
    assert cached is not None and all(result["skipped"] for result in cached.values())
    again = asdict(detect(store, configs[1], QUIET))  # what the stage itself says: skipped, same record
    assert again["skipped"] and {**again, "seconds": 0.0} == cached["detect"]
    assert cached["export"]["out_dir"] == str(out) and "restored.tif" in cached["export"]["digests"]
    for changed in ([configs[0], replace(configs[1], threshold=0.3), *configs[2:]],
                    [*configs[:2], replace(configs[2], dilate=3), configs[3]],
                    [*configs[:3], ExportConfig(compression="zstd")]):
        assert cached_restore(source, store, out, *changed) is None
    (out / "summary.json").unlink()
    assert cached_restore(source, store, out, *configs) is None


@pytest.mark.parametrize("orientation", range(1, 9))
def test_an_exif_orientation_is_applied_so_the_scan_is_upright_as_viewers_show_it(tmp_path: Path,
                                                                                   orientation: int) -> None:
    """A camera's JPEG (or a PNG) stores its pixels as the sensor read them and an EXIF Orientation saying how to
    turn them; the scan is the picture as every viewer shows it, and the turn is recorded."""
    from PIL import ImageOps

    stored = np.random.default_rng(orientation).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = orientation
    path = tmp_path / "camera.png"
    image.save(path, exif=exif)
    source = open_source(path)
    with Image.open(path) as im:
        upright = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert source.shape[:2] == upright.shape[:2]
    assert np.array_equal(np.moveaxis(source.read(0, upright.shape[0], 0, upright.shape[1]), 0, -1), upright)
    assert source.metadata.get("exif_orientation_applied") == (orientation if orientation != 1 else None)


@pytest.mark.parametrize(("write", "message"), [
    ({"photometric": "separated"}, "photometric interpretation SEPARATED (CMYK)"),
    ({"photometric": "miniswhite", "grey": True}, "photometric interpretation MINISWHITE (grey with 0 = white)"),
    ({"photometric": "palette", "grey": True, "colormap": np.zeros((3, 256), np.uint16)},
     "photometric interpretation PALETTE (a colour palette)"),
    ({"photometric": "rgb", "extratags": [(274, 3, 1, 6, True)]}, "TIFF Orientation is 6"),
])
def test_a_tiff_whose_stored_pixels_are_not_the_picture_is_refused_in_one_line(tmp_path: Path, write: dict,
                                                                             message: str) -> None:
    """CMYK, palette or white-is-zero pixels, or an orientation Retouch would not keep, would be restored and
    exported as another picture than the scan: refused before anything is written."""
    from flows.cli import app

    options = dict(write)
    grey = options.pop("grey", False)
    pixels = np.zeros((20, 30) if grey else (20, 30, 4 if options["photometric"] == "separated" else 3), np.uint8)
    source = tmp_path / "scan.tif"
    tifffile.imwrite(source, pixels, **options)
    with pytest.raises(InputError, match=re.escape(message)):
        open_source(source)
    result = CliRunner().invoke(app, ["ingest", str(source), str(tmp_path / "s.zarr")])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1 and message in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.tif"]  # no store, no .partial


def test_a_cmyk_jpeg_is_refused_in_one_line(tmp_path: Path) -> None:
    """Converted naively, a CMYK JPEG's colours would be wrong and it would carry a CMYK ICC profile on RGB pixels."""
    source = tmp_path / "print.jpg"
    Image.new("CMYK", (30, 20), (10, 20, 30, 0)).save(source)
    with pytest.raises(InputError, match=r"print\.jpg: a CMYK image; .*convert it to RGB first"):
        open_source(source)


def test_a_store_is_never_written_inside_another(tmp_path: Path) -> None:
    # `retouch run SCAN --out STORE` wrote a second store (and its export) into the first
    from flows.cli import app
    from pipeline.io.store import StoreError

    source = tmp_path / "scan.png"
    source.write_bytes(imagecodecs.png_encode(np.full((20, 30, 3), 90, np.uint8)))
    outer = tmp_path / "outer.zarr"
    ingest(source, str(outer), IngestConfig(chunk=64), QUIET)
    before = sorted(p.relative_to(outer).as_posix() for p in outer.rglob("*"))
    for inner in (outer / "inner.zarr", outer / "scan" / "deeper" / "x.zarr"):
        with pytest.raises(StoreError, match=f"lies inside the Retouch store {re.escape(str(outer))}"):
            ingest(source, str(inner), IngestConfig(chunk=64), QUIET)
    result = CliRunner().invoke(app, ["run", str(source), "--out", str(outer)])
    assert result.exit_code == 2 and "lies inside the Retouch store" in result.output, result.output
    assert sorted(p.relative_to(outer).as_posix() for p in outer.rglob("*")) == before
    ingest(source, str(tmp_path / "beside.zarr"), IngestConfig(chunk=64), QUIET)  # beside it: as before


def test_ingest_never_replaces_a_folder_or_file_that_is_not_a_store(tmp_path: Path) -> None:
    """Ingest replaces the store when it is done: a STORE path naming a folder of other files (or a file) would
    be deleted, so it is refused in one line before anything is written; an empty folder is a store to be."""
    from flows.cli import app

    source = tmp_path / "scan.png"
    source.write_bytes(imagecodecs.png_encode(np.full((20, 30, 3), 90, np.uint8)))
    folder = tmp_path / "photographs"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["ingest", str(source), str(folder)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "is a folder that is not a Retouch store and not empty" in result.output
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"] and not (tmp_path / "photographs.partial").exists()
    result = CliRunner().invoke(app, ["ingest", str(source), str(source)])
    assert result.exit_code == 2 and "is a file, not a store folder" in result.output
    assert open_source(source).shape == (20, 30, 3)  # the file is as it was
    empty = tmp_path / "empty"
    empty.mkdir()
    ingest(source, str(empty), IngestConfig(chunk=256), QUIET)
    again = ingest(source, str(empty), IngestConfig(chunk=256), QUIET)  # now a store: skipped, as any store
    assert again.skipped


def test_export_never_replaces_folders_no_export_made(tmp_path: Path, tiny_weights: Path,
                                                      one_torch_thread: None) -> None:
    out = restore(tmp_path, np.full((40, 50, 3), 90, np.uint8))
    mine = tmp_path / "museum"
    (mine / "iiif").mkdir(parents=True)
    (mine / "iiif" / "manifest.json").write_text("{}")
    store = str(tmp_path / "scan.zarr")
    with pytest.raises(InputError, match=r"holds a folder iiif/ that no Retouch export made .*--force"):
        export(store, mine)
    assert sorted(p.name for p in (mine / "iiif").iterdir()) == ["manifest.json"]
    assert sorted(p.name for p in mine.iterdir()) == ["iiif"]  # nothing written beside it
    export(store, mine, force=True)  # asked for: replaced
    assert (mine / "summary.json").exists() and not (mine / "iiif" / "manifest.json").exists()
    assert export(store, out).skipped  # an export's own folders are its to replace


def test_export_never_writes_into_its_store(tmp_path: Path, tiny_weights: Path, one_torch_thread: None) -> None:
    # with --force, an export into the store replaced the store's own provenance/ with the export's copy
    restore(tmp_path, np.full((40, 50, 3), 90, np.uint8))
    store = tmp_path / "scan.zarr"
    before = sorted(p.relative_to(store).as_posix() for p in store.rglob("*"))
    for out, where in ((store, "is the store itself"), (store / "export", "lies inside the store"),
                       (store / "scan" / "x", "lies inside the store")):
        with pytest.raises(InputError, match=where):
            export(str(store), out, force=True)
    assert sorted(p.relative_to(store).as_posix() for p in store.rglob("*")) == before


def test_a_tiff_with_a_preview_first_is_read_at_full_resolution(tmp_path: Path) -> None:
    """A camera's or scanner's TIFF may store a reduced-resolution preview before the scan: the scan is the largest
    image in the file, never the preview."""
    rng = np.random.default_rng(5)
    scan = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    path = tmp_path / "preview-first.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(scan[::4, ::4].copy(), photometric="rgb", subfiletype=1)  # the preview
        tif.write(scan, photometric="rgb")
    source = open_source(path)
    assert source.shape == (60, 80, 3)
    assert np.array_equal(np.moveaxis(source.read(0, 60, 0, 80), 0, -1), scan)
    source.close()


def test_an_ome_tiff_names_its_store_without_ome() -> None:
    from flows.cli.stages import scan_name

    assert scan_name(Path("scans/panel.ome.tif")) == "panel"
    assert scan_name(Path("Panel.OME.TIFF")) == "Panel"
    assert scan_name(Path("panel.tif")) == "panel" and scan_name(Path(".ome.tif")) == ".ome"
    assert scan_name(Path("home.tif")) == "home" and scan_name(Path("a.b.png")) == "a.b"
