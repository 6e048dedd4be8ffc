"""A restored store read by third-party OME-Zarr tools: ome-zarr-models (warnings as errors), the NGFF 0.5
JSON schemas shipped with ngff-zarr (strict variants, offline), and ome-zarr-py's Reader finding the labels."""

from __future__ import annotations

import socket
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from pipeline.engine.runner import EngineConfig
from pipeline.io.store import DAMAGE_LABELS, DAMAGE_PROBABILITIES, store_images
from pipeline.stages.detect import DetectConfig, detect
from pipeline.stages.ingest import IngestConfig, ingest
from pipeline.stages.inpaint_stage import InpaintStageConfig, inpaint_store

QUIET = EngineConfig(workers=2, progress=False)
PIXEL_UM = 12.5
IMAGES = ("scan", DAMAGE_PROBABILITIES, "restored")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, tiny_manifest: Path) -> Iterator[str]:
    """ingest (with a catalog pixel size, 64-px chunks in 256-px shards) -> detect -> inpaint on a small
    synthetic painting."""
    from lab.synthesis.synthetic_damage import synthesize_damage

    tmp = tmp_path_factory.mktemp("ome")
    yy, xx = np.mgrid[0:300, 0:260] / 300  # level 0 larger than one 256-px shard: sharded
    clean = np.stack([0.5 + 0.3 * np.sin(5 * yy + c) * np.cos(4 * xx) for c in range(3)], axis=-1)
    image, _ = synthesize_damage((clean * 255).astype(np.uint8), seed=4)
    tifffile.imwrite(tmp / "s.tif", image, photometric="rgb")
    url = str(tmp / "s.zarr")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RETOUCH_WEIGHTS_MANIFEST", str(tiny_manifest))
        ingest(tmp / "s.tif", url, IngestConfig(chunk=64, top_level_max_side=64, pixel_size_um=PIXEL_UM), QUIET)
        detect(url, DetectConfig(tile=128, overlap=32, halo=16, tta=1), QUIET)
        inpaint_store(url, InpaintStageConfig(tile=64, overlap=16, halo=16), QUIET)
    yield url


def _attrs(url: str, path: str) -> dict:
    return dict(zarr.open_group(url, mode="r", path=path).attrs)


def test_ome_zarr_models_reads_every_image_and_the_labels_without_warnings(store: str) -> None:
    models = pytest.importorskip("ome_zarr_models")
    from ome_zarr_models.exceptions import ValidationWarning
    from ome_zarr_models.v05.image import Image
    from ome_zarr_models.v05.image_label import ImageLabel
    from ome_zarr_models.v05.labels import Labels

    with warnings.catch_warnings():
        warnings.simplefilter("error", ValidationWarning)  # its "not strictly compliant" becomes a failure
        for path in IMAGES:
            image = Image.from_zarr(zarr.open_group(store, mode="r", path=path))
            multiscale = image.ome_attributes.multiscales[0]
            assert [a.unit for a in multiscale.axes[1:]] == ["micrometer", "micrometer"], path
            assert multiscale.datasets[0].coordinateTransformations[0].scale[1:] == [PIXEL_UM, PIXEL_UM], path
        labels = Labels.from_zarr(zarr.open_group(store, mode="r", path="scan/labels"))
        assert labels.ome_attributes.labels == ["damage"]
        label = ImageLabel.from_zarr(zarr.open_group(store, mode="r", path=DAMAGE_LABELS))
        assert models.__version__
    image_label = label.ome_attributes.image_label
    assert {c.label_value: tuple(c.rgba) for c in image_label.colors if c.label_value} == {
        1: (230, 40, 40, 166), 2: (40, 210, 230, 166)}
    assert label.ome_attributes.multiscales[0].type == "max"


def test_strict_ngff_schemas_pass_offline(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("jsonschema")
    validate = pytest.importorskip("ngff_zarr.validate").validate

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("schema validation tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)  # the schemas must come from the package
    for path in IMAGES:
        validate(_attrs(store, path), version="0.5", model="image", strict=True)
    validate(_attrs(store, DAMAGE_LABELS), version="0.5", model="label", strict=True)
    validate(_attrs(store, DAMAGE_LABELS), version="0.5", model="image", strict=True)
    broken = _attrs(store, "scan")
    del broken["ome"]["multiscales"][0]["metadata"]  # the check can fail: strict needs `metadata`
    with pytest.raises(Exception, match="metadata"):
        validate(broken, version="0.5", model="image", strict=True)


def test_ome_zarr_py_reader_finds_the_labels_with_names_and_colours(store: str) -> None:
    pytest.importorskip("ome_zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import OMERO, Label, Reader

    assert zarr.open_array(f"{store}/{DAMAGE_LABELS}/0", mode="r").shards  # sharded arrays read too
    nodes = list(Reader(parse_url(f"{store}/scan"))())
    scan = nodes[0]
    assert scan.metadata["channel_names"] == ["R", "G", "B"]
    assert scan.metadata["contrast_limits"] == [[0.0, 255.0]] * 3
    assert scan.load(OMERO) is not None
    labels = [n for n in nodes if n.load(Label) is not None]
    assert [n.metadata["name"] for n in labels] == ["damage"]
    assert labels[0].metadata["properties"][2] == {"class": "paint_loss"}
    assert labels[0].metadata["color"][1] == pytest.approx([230 / 255, 40 / 255, 40 / 255, 166 / 255])
    assert np.array_equal(np.asarray(labels[0].data[0]), zarr.open_group(store, mode="r")[f"{DAMAGE_LABELS}/0"][:])


def test_the_store_root_lists_its_images(store: str) -> None:
    images = store_images(store)
    assert set(images) == {"scan", DAMAGE_PROBABILITIES, DAMAGE_LABELS, "restored"}
    assert all(images.values())
    root = _attrs(store, "")["retouch_store"]
    assert root["ome_zarr"] == "0.5" and "version" in root


def test_omero_windows_follow_the_dtype() -> None:
    from pipeline.io.ome import colour_channels, omero

    block = omero(colour_channels(4), np.dtype(np.uint16))
    assert [c["label"] for c in block["channels"]] == ["R", "G", "B", "alpha"]
    assert block["channels"][0]["window"] == {"min": 0.0, "max": 65535.0, "start": 0.0, "end": 65535.0}
    assert not block["channels"][3]["active"] and block["rdefs"]["model"] == "color"
    assert omero(colour_channels(1), np.dtype(np.float32))["rdefs"]["model"] == "greyscale"
