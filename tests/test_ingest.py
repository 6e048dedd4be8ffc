"""Ingest: every reader path round-trips to level 0, the pyramid and metadata are right, bad input fails cleanly."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from pipeline.engine.runner import EngineConfig
from pipeline.errors import InputError
from pipeline.io.store import StoreError, group_info, open_complete
from pipeline.provenance import list_documents, read_document
from pipeline.stages import ingest as ingest_module
from pipeline.stages.ingest import IngestConfig, ingest

QUIET = EngineConfig(workers=2, progress=False)
SMALL = IngestConfig(chunk=64, top_level_max_side=64)


def painting_like(shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus noise: compressible like a scan, not trivially constant."""
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = (yy / shape[0] * 0.6 + xx / shape[1] * 0.3) * top
    channels = shape[2] if len(shape) == 3 else 1
    out = np.stack([base * (0.5 + 0.2 * c) for c in range(channels)], axis=-1)
    out = out + rng.normal(0, top * 0.02, out.shape)
    out = np.clip(out, 0, top).astype(dtype)
    return out if len(shape) == 3 else out[..., 0]


def level0_hwc(store: Path) -> np.ndarray:
    return np.moveaxis(zarr.open_group(str(store), mode="r", path="scan")["0"][:], 0, -1)


def expect_channels_last(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 3 else image[..., None]


def write_pyramid(path: Path, image: np.ndarray) -> None:
    with tifffile.TiffWriter(path) as tif:
        tif.write(image, tile=(64, 64), subifds=2)
        tif.write(image[::2, ::2], tile=(64, 64), subfiletype=1)
        tif.write(image[::4, ::4], tile=(64, 64), subfiletype=1)


READERS = {
    "tiled-tiff-rgb8": lambda p, im: tifffile.imwrite(p, im, tile=(64, 64), compression="zlib"),
    "striped-tiff-rgb8": lambda p, im: tifffile.imwrite(p, im, rowsperstrip=16),
    "bigtiff-rgb8": lambda p, im: tifffile.imwrite(p, im, bigtiff=True, tile=(64, 64)),
    "pyramidal-tiff": write_pyramid,
    "ome-tiff": lambda p, im: tifffile.imwrite(p, im, ome=True, photometric="rgb", tile=(64, 64)),
}


@pytest.mark.parametrize("name", sorted(READERS))
def test_tiff_variants_round_trip_to_level0(tmp_path: Path, name: str) -> None:
    image = painting_like((200, 150, 3), np.uint8)
    src = tmp_path / ("scan.ome.tif" if name == "ome-tiff" else "scan.tif")
    READERS[name](src, image)
    result = ingest(src, str(tmp_path / "s.zarr"), SMALL, QUIET)
    assert np.array_equal(level0_hwc(tmp_path / "s.zarr"), image)
    assert result.shape == (3, 200, 150)


@pytest.mark.parametrize(
    ("shape", "dtype", "photometric"),
    [
        ((130, 170), np.uint8, "minisblack"),
        ((130, 170), np.uint16, "minisblack"),
        ((130, 170, 3), np.uint16, "rgb"),
        ((130, 170, 4), np.uint8, "rgb"),
        ((130, 170, 4), np.uint16, "rgb"),
    ],
)
def test_tiff_bit_depths_and_channels_round_trip(tmp_path: Path, shape, dtype, photometric) -> None:
    image = painting_like(shape, dtype)
    extra = {"extrasamples": [2]} if len(shape) == 3 and shape[2] == 4 else {}
    tifffile.imwrite(tmp_path / "s.tif", image, photometric=photometric, tile=(32, 32), **extra)
    result = ingest(tmp_path / "s.tif", str(tmp_path / "s.zarr"), SMALL, QUIET)
    level0 = level0_hwc(tmp_path / "s.zarr")
    assert level0.dtype == dtype
    assert np.array_equal(level0, expect_channels_last(image))
    assert result.dtype == np.dtype(dtype).name


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "I;16"])
def test_png_round_trips(tmp_path: Path, mode: str) -> None:
    dtype = np.uint16 if mode == "I;16" else np.uint8
    channels = {"L": 0, "I;16": 0, "RGB": 3, "RGBA": 4}[mode]
    image = painting_like((90, 110, channels) if channels else (90, 110), dtype)
    Image.fromarray(image).save(tmp_path / "s.png")
    ingest(tmp_path / "s.png", str(tmp_path / "s.zarr"), SMALL, QUIET)
    assert np.array_equal(level0_hwc(tmp_path / "s.zarr"), expect_channels_last(image))


def test_jpeg_level0_equals_decoded_pixels(tmp_path: Path) -> None:
    Image.fromarray(painting_like((100, 120, 3), np.uint8)).save(tmp_path / "s.jpg", quality=90)
    ingest(tmp_path / "s.jpg", str(tmp_path / "s.zarr"), SMALL, QUIET)
    decoded = np.asarray(Image.open(tmp_path / "s.jpg"))
    assert np.array_equal(level0_hwc(tmp_path / "s.zarr"), decoded)


def test_pyramid_halves_until_top_level_fits(tmp_path: Path) -> None:
    image = painting_like((300, 200, 3), np.uint8)
    tifffile.imwrite(tmp_path / "s.tif", image, tile=(64, 64))
    result = ingest(tmp_path / "s.tif", str(tmp_path / "s.zarr"), SMALL, QUIET)
    group = open_complete(str(tmp_path / "s.zarr"), "scan")
    shapes = [group[str(i)].shape for i in range(result.levels)]
    assert shapes == [(3, 300, 200), (3, 150, 100), (3, 75, 50), (3, 38, 25)]  # 75 > 64: one more
    level1 = group["1"][:].astype(np.float64)
    manual = np.moveaxis(image, -1, 0).reshape(3, 150, 2, 100, 2).astype(np.float64).mean(axis=(2, 4))
    assert np.abs(level1 - manual).max() <= 0.5


def test_ome_zarr_metadata_chunks_and_compression(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "s.tif", painting_like((300, 200, 3), np.uint8), tile=(64, 64))
    ingest(tmp_path / "s.tif", str(tmp_path / "s.zarr"), IngestConfig(chunk=64, top_level_max_side=64,
                                                                       pixel_size_um=12.5), QUIET)
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="r", path="scan")
    ome = group.attrs["ome"]
    assert ome["version"] == "0.5"
    multiscale = ome["multiscales"][0]
    assert [a["name"] for a in multiscale["axes"]] == ["c", "y", "x"]
    assert multiscale["axes"][1]["unit"] == "micrometer"
    scales = [d["coordinateTransformations"][0]["scale"] for d in multiscale["datasets"]]
    assert scales == [[1.0, 12.5, 12.5], [1.0, 25.0, 25.0], [1.0, 50.0, 50.0], [1.0, 100.0, 100.0]]
    array = group["0"]
    assert array.metadata.zarr_format == 3
    assert array.chunks == (3, 64, 64)
    assert list(array.metadata.dimension_names) == ["c", "y", "x"]
    assert any("zstd" in type(c).__name__.lower() for c in array.compressors)


def test_icc_profile_and_resolution_are_kept(tmp_path: Path) -> None:
    icc = b"\x00\x00\x02\x0cfake-icc-profile-bytes" * 8
    tifffile.imwrite(tmp_path / "s.tif", painting_like((80, 80, 3), np.uint8), photometric="rgb",
                     resolution=(300, 300), resolutionunit="INCH", iccprofile=icc)
    ingest(tmp_path / "s.tif", str(tmp_path / "s.zarr"), SMALL, QUIET)
    meta = group_info(str(tmp_path / "s.zarr"), "scan")["source_metadata"]
    assert bytes.fromhex(meta["icc_profile_hex"]) == icc
    assert meta["XResolution"] == [300, 1]
    assert meta["ResolutionUnit"] == 2


def test_provenance_records_input_output_activity_agent(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "s.tif", painting_like((100, 100, 3), np.uint8), tile=(64, 64))
    result = ingest(tmp_path / "s.tif", str(tmp_path / "s.zarr"), SMALL, QUIET, run_id="run-123")
    docs = list_documents(str(tmp_path / "s.zarr"))
    assert len(docs) == 1 and docs[0] == result.provenance
    doc = read_document(docs[0])
    text = json.loads(doc.serialize(format="json"))
    entities = text["entity"]
    source = next(e for e in entities.values() if "retouch:sha256" in e)
    assert source["retouch:sha256"] == ingest_module.sha256_file(tmp_path / "s.tif")
    assert int(source["retouch:size"]["$"]) == (tmp_path / "s.tif").stat().st_size
    store_uuid = zarr.open_group(str(tmp_path / "s.zarr"), mode="r").attrs["retouch_store"]["uuid"]
    assert text["prefix"]["store"] == f"urn:retouch:store:{store_uuid}:"
    activity_id, activity = next(iter(text["activity"].items()))
    assert activity_id.startswith("run:") and len(activity_id) == len("run:") + 36  # urn:uuid:<uuid4>
    level0 = entities[f"store:scan/0@{activity_id[4:]}"]
    assert level0["retouch:digest"] == result.digest
    assert level0["retouch:digest_algorithm"] == "retouch-chunk-sha256/1"
    assert level0["retouch:digests_sidecar"] == "scan/0/retouch-digests.json"
    assert activity["retouch:stage"] == "ingest"
    assert activity["retouch:prefect_run_id"] == "run-123"
    assert activity["param:chunk"] == {"$": "64", "type": "xsd:int"}  # typed, not a JSON string
    assert activity["param:source"] == "s.tif"  # a name, not an absolute path
    assert "retouch:host" in activity
    agent = next(iter(text["agent"].values()))
    assert "retouch:version" in agent
    assert text["wasGeneratedBy"] and text["used"] and text["wasDerivedFrom"]


def test_same_input_is_skipped_and_other_input_is_refused(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "a.tif", painting_like((100, 100, 3), np.uint8), tile=(64, 64))
    tifffile.imwrite(tmp_path / "b.tif", painting_like((100, 100, 3), np.uint8, seed=1), tile=(64, 64))
    first = ingest(tmp_path / "a.tif", str(tmp_path / "s.zarr"), SMALL, QUIET)
    again = ingest(tmp_path / "a.tif", str(tmp_path / "s.zarr"), SMALL, QUIET)
    assert again.skipped and again.digest == first.digest
    with pytest.raises(StoreError, match="different scan"):
        ingest(tmp_path / "b.tif", str(tmp_path / "s.zarr"), SMALL, QUIET)
    forced = ingest(tmp_path / "b.tif", str(tmp_path / "s.zarr"), SMALL, QUIET, force=True)
    assert not forced.skipped and forced.digest != first.digest


def test_crash_midway_leaves_no_complete_store_and_resumes_to_same_bytes(tmp_path: Path, monkeypatch) -> None:
    image = painting_like((256, 256, 3), np.uint8)
    tifffile.imwrite(tmp_path / "s.tif", image, tile=(64, 64))
    clean = ingest(tmp_path / "s.tif", str(tmp_path / "clean.zarr"), SMALL, QUIET)
    real_copy = ingest_module._copy_level0
    calls = {"n": 0}

    def crashing_copy(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:
            raise RuntimeError("simulated crash")
        return real_copy(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "_copy_level0", crashing_copy)
    one_worker = EngineConfig(workers=1, progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        ingest(tmp_path / "s.tif", str(tmp_path / "s.zarr"), SMALL, one_worker)
    assert not (tmp_path / "s.zarr").exists()
    assert (tmp_path / "s.zarr.partial").exists()
    assert group_info(str(tmp_path / "s.zarr.partial"), "scan") is None
    monkeypatch.setattr(ingest_module, "_copy_level0", real_copy)
    resumed = ingest(tmp_path / "s.tif", str(tmp_path / "s.zarr"), SMALL, one_worker)
    assert resumed.resumed_tasks == 5
    assert resumed.digest == clean.digest
    assert np.array_equal(level0_hwc(tmp_path / "s.zarr"), image)
    assert not (tmp_path / "s.zarr.partial").exists()


# --- bad input: one clear error naming the file, nothing left behind ---------------------------------


def handmade_tiff(path: Path, width: int, height: int, data: bytes = b"\x00" * 16) -> None:
    """A minimal little-endian grey TIFF whose header claims width x height."""
    entries = [
        (256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
        (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, len(data)),
    ]
    ifd_offset = 8 + len(data)
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        ifd += struct.pack("<HHII", tag, typ, count, value)
    ifd += struct.pack("<I", 0)
    path.write_bytes(b"II*\x00" + struct.pack("<I", ifd_offset) + data + ifd)


def make_truncated(path: Path) -> None:
    tifffile.imwrite(path, painting_like((256, 256, 3), np.uint8), tile=(64, 64))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def make_corrupt_tiles(path: Path) -> None:
    tifffile.imwrite(path, painting_like((256, 256, 3), np.uint8), tile=(64, 64), compression="zlib")
    with tifffile.TiffFile(path) as tif:
        offset = int(tif.pages[0].dataoffsets[5])
    raw = bytearray(path.read_bytes())
    raw[offset : offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(raw))


BAD_INPUTS = {
    "missing": (lambda p: None, "file not found"),
    "empty-file": (lambda p: p.write_bytes(b""), "empty"),
    "not-an-image": (lambda p: p.write_text("just some text, not pixels"), "not a"),
    "truncated-tiff": (make_truncated, "truncated"),
    "corrupt-tile-data": (make_corrupt_tiles, "corrupt"),
    "zero-size": (lambda p: handmade_tiff(p, 0, 0), "zero size"),
    "absurd-dimensions": (lambda p: handmade_tiff(p, 5_000_000, 4_000_000), "absurd dimensions"),
    "float32": (lambda p: tifffile.imwrite(p, np.zeros((32, 32), np.float32)), "unsupported pixel type"),
    "uint32": (lambda p: tifffile.imwrite(p, np.zeros((32, 32), np.uint32)), "unsupported pixel type"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_names_file_and_problem_and_leaves_nothing(tmp_path: Path, case: str) -> None:
    make, problem = BAD_INPUTS[case]
    src = tmp_path / "scan.tif"
    make(src)
    store = tmp_path / "out.zarr"
    with pytest.raises(InputError) as info:
        ingest(src, str(store), SMALL, QUIET)
    assert str(src) in str(info.value)
    assert problem in str(info.value)
    assert not store.exists() and not Path(f"{store}.partial").exists()


@pytest.mark.parametrize("case", ["missing", "not-an-image", "absurd-dimensions", "float32"])
def test_cli_bad_input_exits_nonzero_with_one_line(tmp_path: Path, case: str) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    make, problem = BAD_INPUTS[case]
    src = tmp_path / "scan.tif"
    make(src)
    result = CliRunner().invoke(app, ["ingest", str(src), str(tmp_path / "out.zarr")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and str(src) in lines[0] and problem in lines[0]
    assert not (tmp_path / "out.zarr").exists()
