"""`adapt`: scribbles checked in one line, a fit that finds a style the base misses, the store's adapted weights
verified and used by detect (with provenance), a failed fit that keeps the last good weights, one-class strokes."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import tifffile
import torch
import zarr
from PIL import Image
from test_stages import QUIET, make_store

from models.weights import WeightsError
from pipeline.errors import InputError
from pipeline.io.store import group_info
from pipeline.provenance import list_documents, read_document
from pipeline.stages.adapt import ADAPT_BASE, AdaptConfig, adapt
from pipeline.stages.adapt_weights import ADAPTED_FILE, WEIGHTS_GROUP, adapted_info
from pipeline.stages.detect import DEFAULT_WEIGHTS, DetectConfig, detect

SIZE = 256
LOSSES = [(40, 40), (40, 200), (128, 128), (210, 60), (200, 200), (120, 30)]  # centres of plaster lacunae
RADIUS = 14


def plaster_scan(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A painting-like gradient with whitish plaster lacunae: (H, W, 3) uint8 and the (H, W) bool loss mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    paint = np.stack([0.45 + 0.25 * np.sin(4 * yy + c) * np.cos(3 * xx + c) for c in range(3)], axis=-1)
    paint += rng.normal(0, 0.02, paint.shape)
    loss = np.zeros((SIZE, SIZE), bool)
    for cy, cx in LOSSES:
        loss |= (yy * SIZE - cy) ** 2 + (xx * SIZE - cx) ** 2 <= RADIUS ** 2
    plaster = np.array([0.92, 0.89, 0.82]) + rng.normal(0, 0.015, paint.shape)
    image = np.where(loss[..., None], plaster, paint)
    return np.clip(image * 255, 0, 255).astype(np.uint8), loss


def strokes(loss_centres: list[tuple[int, int]], clean: list[tuple[int, int]], value: int = 2) -> np.ndarray:
    """Short horizontal strokes (3 px wide, 16 px long): `value` inside the given lacunae, 3 on clean paint."""
    marks = np.zeros((SIZE, SIZE), np.uint8)
    for (cy, cx), v in [(c, value) for c in loss_centres] + [(c, 3) for c in clean]:
        marks[cy - 1 : cy + 2, cx - 8 : cx + 8] = v
    return marks


CLEAN_SPOTS = [(90, 90), (160, 170), (240, 128), (20, 120)]


def save_png(tmp_path: Path, marks: np.ndarray, name: str = "scribbles.png") -> Path:
    path = tmp_path / name
    Image.fromarray(marks).save(path)
    return path


TINY_ARGS = {"decoder_channels": [16, 16, 16, 16, 8]}


def _tiny_detector(seed: int, bias: list[float], scale: float = 1.0) -> torch.nn.Module:
    """An untrained tiny detector (seed `seed`) whose head's weights are multiplied by `scale` and its bias per class
    (craquelure, paint loss) raised by `bias`."""
    from models.registry import create_model

    torch.manual_seed(seed)
    model = create_model("resunet", **TINY_ARGS)
    with torch.no_grad():
        model.net.segmentation_head[0].weight.mul_(scale)
        model.net.segmentation_head[0].bias.add_(torch.tensor(bias))
    return model


def _manifest_of(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, folder: str,
                 networks: dict[str, torch.nn.Module]) -> Path:
    """A manifest (made the stages' own) holding each tiny detector of `networks` under its name."""
    from models.weights import Tiling, save_weights

    manifest = tmp_path_factory.mktemp(folder) / "manifest.json"
    for name, model in networks.items():
        save_weights(model, name=name, architecture="resunet", arch_args=TINY_ARGS, tiling=Tiling(256, 32),
                     manifest_path=manifest)
    monkeypatch.setenv("RETOUCH_WEIGHTS_MANIFEST", str(manifest))
    return manifest


def _constant_detector(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, folder: str,
                       bias: list[float]) -> Path:
    """A manifest (made the stages' own) with a tiny detector under the default and adapt-base names whose
    output is all but its head's `bias` per class (craquelure, paint loss)."""
    model = _tiny_detector(0, [0.0, 0.0], scale=0.01)
    with torch.no_grad():
        model.net.segmentation_head[0].bias.copy_(torch.tensor(bias))
    names = dict.fromkeys(("detector-resunet18", DEFAULT_WEIGHTS, ADAPT_BASE))
    return _manifest_of(tmp_path_factory, monkeypatch, folder, {name: model for name in names})


@pytest.fixture()
def blind_weights(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny detector that flags nothing (its head's bias far below zero): a base blind to every style."""
    return _constant_detector(tmp_path_factory, monkeypatch, "blind", [-6.0, -6.0])


@pytest.fixture()
def alarmist_weights(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny detector that flags every pixel as paint loss (and nothing as craquelure): a base whose false
    detections cover all the intact paint."""
    return _constant_detector(tmp_path_factory, monkeypatch, "alarmist", [-6.0, 6.0])


def _store(tmp_path: Path) -> tuple[str, np.ndarray]:
    image, loss = plaster_scan()
    return make_store(tmp_path, image), loss


def _far_from(marks: np.ndarray, distance: int = 8) -> np.ndarray:
    return cv2.distanceTransform((marks == 0).astype(np.uint8), cv2.DIST_L2, 5) > distance


def _labels(store: str) -> np.ndarray:
    return zarr.open_group(store, mode="r")["scan/labels/damage/0"][0]


BAD = {
    "wrong size": (lambda m: m[:200], "scribbles are 200x256 (HxW) but the scan is 256x256"),
    "value outside 0-3": (lambda m: np.where(m == 3, 7, m).astype(np.uint8), "scribbles hold the value 7"),
    "no damage stroke": (lambda m: np.where(m == 2, 0, m).astype(np.uint8), "no damage stroke"),
    "no clean stroke": (lambda m: np.where(m == 3, 0, m).astype(np.uint8), "no clean stroke"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_scribbles_are_refused_in_one_line_naming_the_file(
        tmp_path: Path, tiny_weights: Path, case: str, refused_in_one_line: Callable[[list[str], str], None]) -> None:
    store, _ = _store(tmp_path)
    change, message = BAD[case]
    path = save_png(tmp_path, change(strokes(LOSSES[:2], CLEAN_SPOTS)))
    with pytest.raises(InputError, match=re.escape(message)) as err:
        adapt(store, path, AdaptConfig(steps=5))
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)
    refused_in_one_line(["adapt", store, "--scribbles", str(path)], message)
    assert group_info(store, WEIGHTS_GROUP) is None


def test_colour_and_16_bit_scribbles_are_refused(tmp_path: Path, tiny_weights: Path) -> None:
    store, _ = _store(tmp_path)
    marks = strokes(LOSSES[:2], CLEAN_SPOTS)
    colour = save_png(tmp_path, np.stack([marks] * 3, axis=-1), "colour.png")
    with pytest.raises(InputError, match="3 channels"):
        adapt(store, colour, AdaptConfig(steps=5))
    wide = tmp_path / "wide.tif"
    tifffile.imwrite(wide, marks.astype(np.uint16))
    with pytest.raises(InputError, match="pixel type uint16"):
        adapt(store, wide, AdaptConfig(steps=5))


def test_scribbles_stored_lossy_are_refused_and_lossless_tiffs_read(tmp_path: Path, tiny_weights: Path) -> None:
    # JPEG noise turns labels into others, often while every value stays within 0..3: refused by the codec
    from PIL import Image

    from pipeline.io.scribbles import read_scribbles

    store, _ = _store(tmp_path)
    marks = strokes(LOSSES[:2], CLEAN_SPOTS)
    jpeg = tmp_path / "marks.jpg"
    Image.fromarray(marks).save(jpeg, quality=90)
    assert (np.asarray(Image.open(jpeg)) != marks).any()
    named_png = tmp_path / "marks-jpeg.png"
    named_png.write_bytes(jpeg.read_bytes())
    jpeg_tiff = tmp_path / "marks-jpeg.tif"
    tifffile.imwrite(jpeg_tiff, marks, compression="jpeg")
    for path in (jpeg, named_png, jpeg_tiff):
        with pytest.raises(InputError, match="lossy compression") as err:
            read_scribbles(path, marks.shape)
        assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)
    lzw = tmp_path / "marks-lzw.tif"
    tifffile.imwrite(lzw, marks, compression="lzw")
    assert read_scribbles(lzw, marks.shape).digest == read_scribbles(save_png(tmp_path, marks), marks.shape).digest


def test_adapt_finds_a_style_the_base_misses_away_from_the_strokes(tmp_path: Path, blind_weights: Path) -> None:
    store, loss = _store(tmp_path)
    marks = strokes(LOSSES[:2], CLEAN_SPOTS)
    detect(store, DetectConfig(tile=256, tta=1), QUIET)
    far = _far_from(marks)
    before = (_labels(store) == 2)[far & loss].mean()
    # no unlabelled weak negatives: in this small scene the lacunae are a large share of every random square;
    # no support: a base blind to the style supports none of the head's regions (below)
    result = adapt(store, save_png(tmp_path, marks), AdaptConfig(steps=200, background=0.0, support_loss=0.0))
    assert result.summary["adapted_classes"] == ["paint_loss"] and not result.skipped
    after_result = detect(store, DetectConfig(tile=256, tta=1), QUIET)
    assert any("adapted weights" in note for note in after_result.notes)
    flagged = _labels(store) == 2
    recall, precision = flagged[far & loss].mean(), loss[far & flagged].mean()
    # the strokes lie across the centres of two lacunae; the rims of the others are the hard part, and the head
    # adds a pixel only where it is confident (AdaptConfig.add)
    assert before < 0.05 and recall >= 0.25 and precision >= 0.9, (before, recall, precision)
    adapt(store, save_png(tmp_path, marks), AdaptConfig(steps=200, background=0.0))  # the default support
    detect(store, DetectConfig(tile=256, tta=1), QUIET)
    assert (_labels(store) == 2)[far & loss].mean() < 0.05  # what the base saw nowhere, adapt no longer adds


@pytest.mark.parametrize("veto", [True, False])
def test_clean_strokes_on_base_false_detections_remove_them(tmp_path: Path, alarmist_weights: Path,
                                                            veto: bool) -> None:
    store, loss = _store(tmp_path)
    marks = strokes(LOSSES[:2], CLEAN_SPOTS)
    detect(store, DetectConfig(tile=256, tta=1), QUIET)
    far = _far_from(marks)
    assert (_labels(store) == 2)[far & ~loss].mean() > 0.99  # the base flags all the intact paint
    result = adapt(store, save_png(tmp_path, marks), AdaptConfig(steps=200, background=0.0, veto=veto))
    if veto:
        assert result.summary["fit"]["veto_pixels_2"] == int((marks == 3).sum())  # every clean pixel is flagged
    detect(store, DetectConfig(tile=256, tta=1), QUIET)
    flagged = _labels(store) == 2
    core = cv2.erode(loss.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0  # 3 px inside the lacunae's rims
    intact, recall = flagged[far & ~loss].mean(), flagged[far & core].mean()
    if veto:  # the intact paint like the clean strokes is cleared; the lacunae the base found stay found
        assert intact < 0.05 and recall > 0.6, (intact, recall)  # the veto also clears lacuna pixels the head doubts
    else:  # without the veto the union keeps every base detection
        assert intact > 0.99, intact


def test_detect_refuses_tampered_adapted_weights_and_keeps_its_output(tmp_path: Path, tiny_weights: Path) -> None:
    store, _ = _store(tmp_path)
    adapt(store, save_png(tmp_path, strokes(LOSSES[:2], CLEAN_SPOTS)), AdaptConfig(steps=20))
    first = detect(store, DetectConfig(tile=256, tta=1), QUIET)
    path = Path(store) / WEIGHTS_GROUP / ADAPTED_FILE
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256") as err:
        detect(store, DetectConfig(tile=256, tta=1), QUIET, force=True)
    assert str(path) in str(err.value)
    assert group_info(store, "damage")["key"] == first.key  # the last good damage/ is untouched


def test_detect_refuses_adapted_weights_at_another_scale_and_keeps_its_output(tmp_path: Path,
                                                                            tiny_weights: Path) -> None:
    from models.adapted import ARCHITECTURE
    from pipeline.stages.detect import ADAPTED_ARCHITECTURE

    assert ADAPTED_ARCHITECTURE == ARCHITECTURE
    store, _ = _store(tmp_path)
    adapt(store, save_png(tmp_path, strokes(LOSSES[:2], CLEAN_SPOTS)), AdaptConfig(steps=20))
    first = detect(store, DetectConfig(tile=256, tta=1), QUIET)
    with pytest.raises(InputError, match="fitted to the scan seen at --scale 1: detect with them at that scale, "
                                         "not 0.5") as err:
        detect(store, DetectConfig(tile=256, tta=1, scale=0.5), QUIET, force=True)
    assert str(err.value).startswith(str(Path(store) / WEIGHTS_GROUP))
    assert group_info(store, "damage")["key"] == first.key
    scaled = detect(store, DetectConfig(tile=256, tta=1, scale=0.5, weights=DEFAULT_WEIGHTS), QUIET)
    assert scaled.key != first.key and not scaled.skipped


def test_a_square_at_another_scale_is_the_scan_resampled_and_its_points_land_on_their_pixels() -> None:
    from pipeline.stages.adapt_fit import source_side, square_input, square_points

    scan = np.zeros((3, 700, 900), np.uint8)
    scan[:, 300:340, 520:560] = 255  # a bright square in cell (1, 2) at scale 0.5 (cells of 256 scan px)
    assert source_side(128, 0.5) == 256 and source_side(128, 1.0) == 128
    square = square_input(scan, 1, 2, 128, 32, "cpu", scale=0.5)[0, 0].numpy()  # (192, 192)
    assert square.shape == (192, 192)
    ys, xs = square_points(np.array([[300, 520], [339, 559], [320, 540], [290, 540]]), 1, 2, 128, 32, scale=0.5)
    assert square[ys[:3], xs[:3]].min() == 1.0 and square[ys[3], xs[3]] == 0.0
    assert square.sum() == pytest.approx(20 * 20, rel=0.05)  # 40 x 40 scan px seen as 20 x 20
    same = square_input(scan, 1, 2, 128, 32, "cpu")[0, 0].numpy()  # scale 1: the scan's own pixels
    assert np.array_equal(same, scan[0, 96:288, 224:416] / 255.0)
    assert [a.tolist() for a in square_points(np.array([[130, 260]]), 1, 2, 128, 32)] == [[34], [36]]


def test_adapt_at_a_scale_fits_there_and_detect_runs_at_it(tmp_path: Path, blind_weights: Path) -> None:
    image, loss = plaster_scan()
    big = cv2.resize(image, (2 * SIZE, 2 * SIZE), interpolation=cv2.INTER_CUBIC)  # the scan at twice the resolution
    big_loss = cv2.resize(loss.astype(np.uint8), (2 * SIZE, 2 * SIZE), interpolation=cv2.INTER_NEAREST) > 0
    store = make_store(tmp_path, big, chunk=256)
    marks = cv2.resize(strokes(LOSSES[:2], CLEAN_SPOTS), (2 * SIZE, 2 * SIZE), interpolation=cv2.INTER_NEAREST)
    config = AdaptConfig(steps=200, background=0.0, scale=0.5, support_loss=0.0)  # a blind base supports nothing
    assert "scale" in config.key_params() and "scale" not in AdaptConfig().key_params()
    result = adapt(store, save_png(tmp_path, marks), config)
    assert result.summary["pixels_fitted"] > 0 and not result.skipped
    assert adapted_info(store)["params"]["scale"] == 0.5
    found = detect(store, DetectConfig(tile=256, tta=1), QUIET)  # the default scale: the weights' own is taken
    assert any("at --scale 0.5, the scale they were fitted at" in note for note in found.notes)
    assert json.loads(read_document(found.provenance).serialize(format="json"))  # recorded as any detect
    far = cv2.resize(_far_from(strokes(LOSSES[:2], CLEAN_SPOTS)).astype(np.uint8), (2 * SIZE, 2 * SIZE),
                     interpolation=cv2.INTER_NEAREST) > 0
    flagged = _labels(store) == 2
    recall, precision = flagged[far & big_loss].mean(), big_loss[far & flagged].mean()
    # a blind base: what is found away from the strokes is the head's, fitted on the network's view at 0.5
    assert recall >= 0.15 and precision >= 0.9, (recall, precision)
    assert detect(store, DetectConfig(tile=256, tta=1, scale=0.5), QUIET).skipped  # the same run, named
    with pytest.raises(InputError, match="at --scale 0.5: detect with them at that scale, not 0.7"):
        detect(store, DetectConfig(tile=256, tta=1, scale=0.7), QUIET)


def test_adapted_detect_has_provenance_back_to_the_scribbles(tmp_path: Path, tiny_weights: Path) -> None:
    store, _ = _store(tmp_path)
    marks = strokes(LOSSES[:2], CLEAN_SPOTS)
    base = detect(store, DetectConfig(tile=256, tta=1), QUIET)
    fitted = adapt(store, save_png(tmp_path, marks), AdaptConfig(steps=20))
    adapted = detect(store, DetectConfig(tile=256, tta=1), QUIET)
    assert adapted.key != base.key and not adapted.skipped  # the adapted weights change the cache key
    assert detect(store, DetectConfig(tile=256, tta=1), QUIET).skipped
    docs = {Path(u).name.split("-")[0]: json.loads(read_document(u).serialize(format="json"))
            for u in list_documents(store)}
    adapt_doc, detect_doc = docs["adapt"], json.loads(read_document(adapted.provenance).serialize(format="json"))
    entities = adapt_doc["entity"]
    scribbles = next(e for k, e in entities.items() if "scribbles" in k)
    assert _value(scribbles["retouch:labelled_paint_loss"]) == int((marks == 2).sum())
    assert _value(scribbles["retouch:labelled_clean"]) == int((marks == 3).sum())
    assert _value(scribbles["retouch:labelled_craquelure"]) == 0
    weights_id = next(k for k in entities if k.startswith("store:weights/adapted"))
    sha = adapted_info(store)["sha256"]
    assert entities[weights_id]["retouch:sha256"] == sha == fitted.digests[ADAPTED_FILE]
    assert any(e.get("retouch:name") == ADAPT_BASE for e in entities.values())  # the base weights
    assert weights_id in detect_doc["entity"] and detect_doc["entity"][weights_id]["retouch:sha256"] == sha
    used = [u["prov:entity"] for u in detect_doc["used"].values()]
    assert weights_id in used
    named = detect(store, DetectConfig(weights=DEFAULT_WEIGHTS, tile=256, tta=1), QUIET)
    assert named.key == base.key and not any("adapted" in n for n in named.notes)  # --weights overrides


def test_adapting_again_on_the_same_strokes_writes_the_same_weights(tmp_path: Path, blind_weights: Path) -> None:
    """The base flags nothing, so the clean strokes fit no veto: its start is saved as it was made."""
    store, _ = _store(tmp_path)
    marks = save_png(tmp_path, strokes(LOSSES[:2], CLEAN_SPOTS))
    first = adapt(store, marks, AdaptConfig(steps=20)).digests[ADAPTED_FILE]
    torch.rand(1000)  # the process's random state has moved on, as in another run
    again = adapt(store, marks, AdaptConfig(steps=20), force=True)
    assert not again.skipped and again.digests[ADAPTED_FILE] == first


def test_adapt_keeps_the_detection_it_replaces_for_the_review(tmp_path: Path, tiny_weights: Path) -> None:
    from pipeline.stages.adapt_before import BEFORE_ADAPT

    store, _ = _store(tmp_path)
    marks = save_png(tmp_path, strokes(LOSSES[:2], CLEAN_SPOTS))
    adapt(store, marks, AdaptConfig(steps=20))
    assert group_info(store, BEFORE_ADAPT) is None  # no detection yet: nothing to keep
    detect(store, DetectConfig(tile=256, tta=1), QUIET)  # with the adapted weights
    root = zarr.open_group(store, mode="r")
    levels = {k: root[f"scan/labels/damage/{k}"][:] for k in root["scan/labels/damage"].array_keys()}
    digest = group_info(store, "damage")["digests"]["labels/0"]
    fitted = adapt(store, marks, AdaptConfig(steps=20, seed=1))  # a second round: the map of the first is kept
    kept = group_info(store, BEFORE_ADAPT)
    assert kept["labels_digest"] == digest and kept["copy_of"] == "scan/labels/damage"
    copy = zarr.open_group(store, mode="r", path=BEFORE_ADAPT)
    assert sorted(copy.array_keys()) == sorted(levels) and len(levels) > 1
    for k, level in levels.items():
        np.testing.assert_array_equal(copy[k][:], level)
    assert not Path(store, f"{BEFORE_ADAPT}.partial").exists()
    document = json.loads(read_document(fitted.provenance).serialize(format="json"))
    assert any(_value(e.get("retouch:path")) == f"{BEFORE_ADAPT}/0" for e in document["entity"].values())
    detect(store, DetectConfig(tile=256, tta=1), QUIET)
    assert group_info(store, BEFORE_ADAPT)["labels_digest"] == digest  # detect leaves the copy alone
    assert adapt(store, marks, AdaptConfig(steps=20, seed=1)).skipped  # nothing refitted: the copy stays
    assert group_info(store, BEFORE_ADAPT)["labels_digest"] == digest


def test_a_killed_copy_of_the_detection_never_looks_complete_and_is_made_again(tmp_path: Path,
                                                                               tiny_weights: Path) -> None:
    import shutil

    from pipeline.stages.adapt_before import BEFORE_ADAPT, keep_detection_before

    store, _ = _store(tmp_path)
    detect(store, DetectConfig(tile=256, tta=1), QUIET)
    labels, partial = Path(store) / "scan/labels/damage", Path(store) / f"{BEFORE_ADAPT}.partial"
    # killed halfway: the levels copied, the group's own zarr.json (which would hold the marker) not yet
    shutil.copytree(labels, partial, ignore=lambda folder, names: ["zarr.json"] if Path(folder) == labels else [])
    assert group_info(store, partial.name) is None
    kept = keep_detection_before(store)
    assert group_info(store, BEFORE_ADAPT) == kept and not partial.exists()
    shutil.rmtree(Path(store) / "damage")  # no complete detection any more: no map to compare with
    assert keep_detection_before(store) is None and group_info(store, BEFORE_ADAPT) is None


def _value(attr: object) -> object:
    """A PROV-JSON attribute value (typed literals are {'$': text, 'type': ...})."""
    return int(attr["$"]) if isinstance(attr, dict) else attr


def test_a_failed_adapt_leaves_the_last_good_weights(tmp_path: Path, tiny_weights: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import models.weights

    store, _ = _store(tmp_path)
    adapt(store, save_png(tmp_path, strokes(LOSSES[:2], CLEAN_SPOTS)), AdaptConfig(steps=20))
    good = adapted_info(store)
    good_bytes = (Path(store) / WEIGHTS_GROUP / ADAPTED_FILE).read_bytes()
    real_save = models.weights.save_weights

    def dies_after_writing(*args, **kwargs):  # the file is written, the process dies before the swap
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(models.weights, "save_weights", dies_after_writing)
    other = save_png(tmp_path, strokes(LOSSES[2:4], CLEAN_SPOTS), "other.png")
    with pytest.raises(KeyboardInterrupt):
        adapt(store, other, AdaptConfig(steps=20))
    assert adapted_info(store) == good
    assert (Path(store) / WEIGHTS_GROUP / ADAPTED_FILE).read_bytes() == good_bytes
    assert group_info(store, f"{WEIGHTS_GROUP}.partial") is None  # nothing half-written looks complete
    monkeypatch.setattr(models.weights, "save_weights", real_save)
    redone = adapt(store, other, AdaptConfig(steps=20))
    assert not redone.skipped and adapted_info(store)["sha256"] != good["sha256"]
    assert not (Path(store) / f"{WEIGHTS_GROUP}.partial").exists()
    assert adapt(store, other, AdaptConfig(steps=20)).skipped


def test_strokes_of_one_damage_class_adapt_that_class_only(tmp_path: Path, tiny_weights: Path) -> None:
    from models.weights import load_model

    store, _ = _store(tmp_path)
    image, _ = plaster_scan()
    result = adapt(store, save_png(tmp_path, strokes(LOSSES[:2], CLEAN_SPOTS, value=1)), AdaptConfig(steps=20))
    assert result.summary["adapted_classes"] == ["craquelure"]
    adapted, _ = load_model("adapted", Path(store) / WEIGHTS_GROUP / "manifest.json")
    base, _ = load_model(ADAPT_BASE, tiny_weights)
    x = torch.from_numpy(np.moveaxis(image, -1, 0).astype(np.float32) / 255)[None]  # the scan the strokes are on
    with torch.no_grad():
        a, b = adapted(x), base(x)
    assert torch.equal(a[:, 1], b[:, 1])  # paint loss: the base's logit, bit for bit
    assert not torch.allclose(a[:, 0], b[:, 0])
    assert adapted.reach == [AdaptConfig().reach]  # the craquelure head's reach travels with the weights


def test_a_class_without_strokes_keeps_what_detect_showed(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Another detector under the name of adapt's former base: adapting paint loss alone leaves the craquelure of
    detect's default detector as it was, because adapt's base is that detector."""
    # untrained: cracks here and there, little paint loss
    _manifest_of(tmp_path_factory, monkeypatch, "two", {DEFAULT_WEIGHTS: _tiny_detector(0, [0.0, -1.0]),
                                                        "detector-resunet18-paint2": _tiny_detector(1, [0.0, -1.0])})
    store, _ = _store(tmp_path)
    detect(store, DetectConfig(tile=256, tta=1), QUIET)
    shown = _labels(store)
    adapt(store, save_png(tmp_path, strokes(LOSSES[:2], CLEAN_SPOTS)), AdaptConfig(steps=20))
    detect(store, DetectConfig(tile=256, tta=1), QUIET)  # with the adapted weights
    now = _labels(store)
    assert group_info(store, "damage")["weights"] == "adapted"
    neither = (now != 2) & (shown != 2)  # a pixel is labelled loss over craquelure: compare where neither is loss
    assert (now != shown).any() and neither.mean() > 0.5 and 0 < (shown[neither] == 1).mean() < 1
    np.testing.assert_array_equal(now[neither], shown[neither])


def test_the_loss_support_travels_with_the_adapted_weights(tmp_path: Path, tiny_weights: Path) -> None:
    from models.weights import load_model

    store, _ = _store(tmp_path)
    marks = save_png(tmp_path, strokes(LOSSES[:2], CLEAN_SPOTS))
    result = adapt(store, marks, AdaptConfig(steps=20, support_loss=0.05))
    assert result.summary["adapted_classes"] == ["paint_loss"]
    adapted, _ = load_model("adapted", Path(store) / WEIGHTS_GROUP / "manifest.json")
    assert adapted.support == [0.05]


def test_adapt_flow_fits_then_detects_with_the_adapted_weights(tmp_path: Path, tiny_weights: Path,
                                                               prefect_harness: None) -> None:
    from flows.adapt import adapt_flow
    from flows.params import AdaptParams, DetectParams, EngineParams

    store, _ = _store(tmp_path)
    path = save_png(tmp_path, strokes(LOSSES[:2], CLEAN_SPOTS))
    engine = EngineParams(workers=1, progress=False)
    results = adapt_flow(store, str(path), AdaptParams(steps=20), DetectParams(tile=256, tta=1), engine)
    assert results["adapt"]["summary"]["adapted_classes"] == ["paint_loss"]
    assert any("adapted weights" in note for note in results["detect"]["notes"])
    assert group_info(store, "damage")["weights"] == "adapted"
    now = group_info(store, "damage")["summary"]["area_percent"]
    assert results["flagged"] == {k: {"before": None, "now": v} for k, v in now.items()}  # nothing detected before
    again = adapt_flow(store, str(path), AdaptParams(steps=20), DetectParams(tile=256, tta=1), engine)
    assert again["adapt"]["skipped"] and again["detect"]["skipped"]


def test_the_adapt_command_says_how_the_flagged_share_moved(tmp_path: Path, tiny_weights: Path,
                                                             prefect_harness: None) -> None:
    from typer.testing import CliRunner

    from flows.cli.main import app
    from pipeline.stages.adapt_before import BEFORE_ADAPT

    store, _ = _store(tmp_path)
    before = detect(store, DetectConfig(tile=256, tta=1), QUIET).summary["area_percent"]
    path = save_png(tmp_path, strokes(LOSSES[:2], CLEAN_SPOTS))
    result = CliRunner().invoke(app, ["adapt", store, "--scribbles", str(path), "--steps", "20", "--workers", "1"])
    assert result.exit_code == 0, result.output
    now = group_info(store, "damage")["summary"]["area_percent"]
    line = " ".join(next(x for x in result.output.splitlines() if x.startswith("changed:")).split())
    assert f"paint_loss {before['paint_loss']:.2f} % -> {now['paint_loss']:.2f} %" in line
    assert "changed by adapt" in result.output and group_info(store, BEFORE_ADAPT)["area_percent"] == before
    marks = strokes(LOSSES[:2], CLEAN_SPOTS)
    flagged = (_labels(store) == 2)[marks == 2].mean()
    line = " ".join(next(x for x in result.output.splitlines() if x.startswith("strokes:")).split())
    assert line == f"strokes: paint_loss {100 * flagged:.0f} % of {(marks == 2).sum()} px flagged now"


def test_the_adapt_command_warns_when_the_loss_strokes_stay_unflagged(tmp_path: Path, blind_weights: Path,
                                                                      prefect_harness: None) -> None:
    """A base blind to the style supports nothing the head adds: the conservator's loss strokes stay unflagged, and
    the command says so and how to let adapt add there."""
    from typer.testing import CliRunner

    from flows.cli.main import app

    store, _ = _store(tmp_path)
    path = save_png(tmp_path, strokes(LOSSES[:2], CLEAN_SPOTS))
    result = CliRunner().invoke(app, ["adapt", store, "--scribbles", str(path), "--steps", "20", "--workers", "1"])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "strokes: paint_loss 0 % of" in output
    assert "warning: 100 % of the paint-loss strokes are not flagged" in output and "--support-loss 0" in output


def test_the_adapt_command_warns_when_the_craquelure_strokes_stay_unflagged(tmp_path: Path, blind_weights: Path,
                                                                            prefect_harness: None) -> None:
    """A base that finds no crack gives the craquelure head nothing to continue: the conservator's crack strokes stay
    unflagged, and the command says so and where to mark such cracks instead."""
    from typer.testing import CliRunner

    from flows.cli.main import app

    store, _ = _store(tmp_path)
    path = save_png(tmp_path, strokes(LOSSES[:2], CLEAN_SPOTS, value=1))
    result = CliRunner().invoke(app, ["adapt", store, "--scribbles", str(path), "--steps", "20", "--workers", "1"])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "strokes: craquelure 0 % of" in output
    assert "warning: 100 % of the craquelure strokes are not flagged" in output and "within 32 px" in output
    assert "paint-loss strokes" not in output

def test_undo_drops_the_adapted_weights_and_detection_is_the_default_s_again(
        tmp_path: Path, tiny_weights: Path, prefect_harness: None, refused_in_one_line) -> None:
    from typer.testing import CliRunner

    from flows.cli.main import app
    from pipeline.stages.adapt_before import BEFORE_ADAPT

    store, _ = _store(tmp_path)
    refused_in_one_line(["adapt", store, "--undo"], "weights: no adapted weights in this store: nothing to undo")
    refused_in_one_line(["adapt", store, "--undo", "--scribbles", "x.png"], "it takes no --scribbles")
    first = detect(store, DetectConfig(tta=1), QUIET)  # as the command's detection after the undo
    fitted = adapt(store, save_png(tmp_path, strokes(LOSSES[:2], CLEAN_SPOTS)), AdaptConfig(steps=20))
    detect(store, DetectConfig(tta=1), QUIET)
    assert group_info(store, "damage")["weights"] == "adapted" and group_info(store, BEFORE_ADAPT) is not None
    result = CliRunner().invoke(app, ["adapt", store, "--undo", "--tta", "1", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "undone:" in result.output and fitted.digests[ADAPTED_FILE][:16] in result.output
    assert adapted_info(store) is None and group_info(store, BEFORE_ADAPT) is None
    damage = group_info(store, "damage")
    assert damage["weights"] == DEFAULT_WEIGHTS and damage["digests"] == first.digests  # the map before adapting
    undo = next(json.loads(read_document(u).serialize(format="json")) for u in list_documents(store)
                if "undo" in read_document(u).serialize(format="json"))
    assert any("weights/adapted" in json.dumps(v) for v in undo.get("wasInvalidatedBy", {}).values())
    refused_in_one_line(["adapt", store, "--undo"], "nothing to undo")


def test_the_command_line_spells_the_adapt_base_as_the_stage_does() -> None:
    import flows.cli.common as cli
    import pipeline.stages.adapt as stage
    from flows.params import AdaptParams

    assert cli.ADAPT_BASE == ADAPT_BASE == AdaptParams().base == AdaptConfig().base
    for field, name in (("add", "ADD"), ("add_loss", "ADD_LOSS"), ("smooth_loss", "SMOOTH_LOSS"),
                        ("clamp_loss", "CLAMP_LOSS"), ("gate_loss", "GATE_LOSS"), ("gate_sigma", "GATE_SIGMA"),
                        ("reach", "REACH"), ("beside", "BESIDE"), ("support_loss", "SUPPORT_LOSS"),
                        ("veto_background", "VETO_BACKGROUND"),
                        ("veto_background_loss", "VETO_BACKGROUND_LOSS"), ("background", "BACKGROUND"),
                        ("veto_joined", "VETO_JOINED")):
        spelled = (getattr(cli, f"ADAPT_{name}"), getattr(stage, name), getattr(AdaptParams(), field),
                   getattr(AdaptConfig(), field))
        assert len(set(spelled)) == 1, (field, spelled)


@pytest.mark.parametrize(("fields", "message"), [
    ({"cell": 100, "context": 0}, "cell \\+ 2 \\* context must be a multiple of 32"),
    ({"add_loss": 1.0}, "add and add_loss must be in"),
    ({"clamp_loss": -1.0}, "clamp_loss >= 0"),
    ({"gate_loss": 1.0}, "gate_loss must be in"),
    ({"gate_loss": 0.1, "gate_sigma": 0.0}, "gate_sigma > 0"),
    ({"reach": -1}, "reach and beside must be >= 0"),
    ({"beside": -1}, "reach and beside must be >= 0"),
    ({"background_below": 0.0}, "background_below must be in"),
    ({"relabel": 1.0}, "relabel must be in"),
])
def test_adapt_config_refuses_bad_fields(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AdaptConfig(**fields)


def test_the_adding_threshold_reaches_the_fit_and_is_bounded() -> None:
    from pydantic import ValidationError

    from flows.params import AdaptParams

    assert AdaptParams(add=0.98).config().add == 0.98
    per_class = AdaptParams(add_loss=0.95).config().per_class([0, 1])
    assert per_class == {"smooth": [1.5, 1.5], "add": [0.9, 0.95], "clamp": [0.0, 0.0]}
    vote = AdaptParams(smooth_loss=5.0).config()
    assert dataclasses.replace(vote, clamp_loss=4.0).per_class([1]) == {"smooth": [5.0], "add": [0.9], "clamp": [4.0]}
    gated = AdaptParams(gate_loss=0.1, gate_sigma=6.0).config()
    assert gated.gate_args([0, 1]) == {"gate": [0.0, 0.1], "gate_sigma": 6.0}
    assert AdaptConfig().gate_args([0, 1]) == {}  # off: the adapted weights' arguments and key are as before
    assert "gate_loss" not in AdaptConfig().key_params() and gated.key_params()["gate_loss"] == 0.1
    assert AdaptConfig(union=False).reach_args([0]) == {} and "reach" not in AdaptConfig(union=False).key_params()
    unreached = AdaptParams(reach=0).config()  # `beside` needs a reach: without one it is left out
    assert unreached.reach_args([0]) == {} and "reach" not in unreached.key_params()  # off: as before the reach
    assert AdaptConfig().key_params()["reach"] == 32
    assert AdaptConfig().reach_args([0, 1]) == {"reach": [32, 0], "beside": [2, 0]}
    no_beside = AdaptParams(beside=0).config()
    assert no_beside.reach_args([0]) == {"reach": [32]} and "beside" not in no_beside.key_params()
    supported = AdaptParams().config()  # on by default, paint loss only; off: arguments and key as before it existed
    assert supported.support_args([0, 1]) == {"support": [0.0, 0.02]} and supported.key_params()["support_loss"] == 0.02
    unsupported = AdaptParams(support_loss=0).config()
    assert unsupported.support_args([0, 1]) == {} and "support_loss" not in unsupported.key_params()
    assert dataclasses.replace(supported, union=False).support_args([1]) == {}
    # the veto's share of weak negatives: in the key only where it differs from the head's (one share before it)
    assert AdaptParams(veto_background=0.05).config().key_params()["veto_background"] == 0.05
    shared = AdaptConfig(background=0.2, veto_background=0.2, veto_background_loss=0.1).key_params()
    assert "veto_background" not in shared and shared["veto_background_loss"] == 0.1
    # every unlabelled sample a weak negative: the key as before the level existed
    assert "background_below" not in AdaptConfig(background_below=1.0).key_params()
    assert AdaptConfig(background_below=0.5).key_params()["background_below"] == 0.5
    assert "relabel" not in AdaptConfig().key_params()  # one fit: the key as before the refit existed
    assert AdaptConfig(relabel=0.5).key_params()["relabel"] == 0.5
    with pytest.raises(ValidationError):
        AdaptParams(support_loss=1.0)
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValidationError):
            AdaptParams(add=bad)
        with pytest.raises(ValidationError):
            AdaptParams(add_loss=bad)


def test_evaluate_adapt_scores_the_default_detector_beside_another_base(tiny_weights: Path) -> None:
    from lab.eval.adapt_eval import StrokePlan, evaluate_cases

    image, loss = plaster_scan()
    truth = np.where(loss, 2, 0).astype(np.uint8)
    config = AdaptConfig(steps=5, manifest=str(tiny_weights), base="detector-resunet18")  # not detect's default
    report = evaluate_cases(iter([("scene", image, truth)]), 1, config, StrokePlan(), seed=3, tta=1)
    assert report["scored"] == 1 and set(report["mean"]) == {"default", "before", "after"}
    row = report["images"][0]  # the tiny manifest holds one network under every name: the same scores
    assert row["default"]["counts"] == row["before"]["counts"]
    alone = evaluate_cases(iter([("scene", image, truth)]), 1, config, StrokePlan(), seed=3, tta=1,
                           reference=False)
    assert set(alone["mean"]) == {"before", "after"} and alone["images"][0]["after"] == row["after"]


def test_the_mean_over_images_leaves_out_an_image_where_a_score_is_undefined() -> None:
    from lab.eval.adapt_eval import mean_scores
    from lab.eval.metrics import Counts

    def row(**counts: int) -> dict:
        c = Counts(**counts)
        share = c.fp / (c.fp + c.tn)
        return {**c.scores(), "counts": dataclasses.asdict(c), "flagged_undamaged": share, "flagged_intact": share}

    found = row(tp_pred=30, fp=10, tp_true=30, fn=10, tn=950)  # recall 0.75, precision 0.75
    no_damage_flagged = row(fp=20, tn=980)  # nothing to find: recall undefined, precision 0
    no_damage_quiet = row(tn=1000)  # nothing to find, nothing flagged: neither defined
    mean = mean_scores([found, no_damage_flagged, no_damage_quiet])
    assert mean["recall"] == pytest.approx(0.75)
    assert mean["precision"] == pytest.approx(0.375)
    assert mean["f1"] == pytest.approx(0.375)
    assert mean["flagged_undamaged"] == pytest.approx((10 / 960 + 20 / 1000 + 0) / 3)
    assert np.isnan(mean_scores([no_damage_quiet])["recall"])


def test_a_flag_on_a_damage_s_rim_is_undamaged_paint_but_not_intact_paint() -> None:
    from lab.eval.adapt_eval import score
    from lab.eval.residual import INTACT_MARGIN

    truth = np.zeros((64, 64), np.uint8)
    truth[20:30, 20:30] = 2
    prob = np.zeros((2, 64, 64), np.float32)
    prob[1, 19:31, 19:31] = 0.9  # the loss and a 1-px rim around it
    far = np.ones((64, 64), bool)
    rim = score(prob, truth, 1, far)
    assert rim["flagged_undamaged"] > 0 and rim["flagged_intact"] == 0
    prob[0, 50:52, 50:60] = 0.9  # and 20 px of crack on paint far from any damage
    both = score(prob, truth, 1, far)
    intact = (cv2.distanceTransform((truth == 0).astype(np.uint8), cv2.DIST_L2, 5) > INTACT_MARGIN).sum()
    assert both["flagged_intact"] == pytest.approx(20 / intact)


def test_evaluate_adapt_on_an_enlarged_scene_at_a_scale_scores_the_network_view_at_the_scene_size(
        blind_weights: Path) -> None:
    from lab.eval.adapt_eval import StrokePlan, enlarged_cases, evaluate_cases

    image, loss = plaster_scan()
    truth = np.where(loss, 2, 0).astype(np.uint8)
    cases = list(enlarged_cases(iter([("scene", image, truth)]), 2))
    assert cases[0][1].shape == (2 * SIZE, 2 * SIZE, 3) and set(np.unique(cases[0][2])) == {0, 2}
    assert list(enlarged_cases(iter([("scene", image, truth)]), 1))[0][1] is image
    config = AdaptConfig(steps=100, background=0.0, scale=0.5, support_loss=0.0, manifest=str(blind_weights))
    report = evaluate_cases(iter(cases), 1, config, StrokePlan(), seed=3, tta=1, reference=False)
    row = report["images"][0]
    assert sum(row["after"]["counts"].values()) > SIZE * SIZE  # scored at the scene's (enlarged) size
    assert row["before"]["recall"] == 0.0 and row["after"]["recall"] > 0.2, row["after"]


def test_evaluate_adapt_informed_strokes_mark_the_base_false_alarms_and_fit_the_veto(
        alarmist_weights: Path) -> None:
    from lab.eval.adapt_eval import StrokePlan, evaluate_cases

    image, loss = plaster_scan()
    truth = np.where(loss, 2, 0).astype(np.uint8)
    config = AdaptConfig(steps=5, manifest=str(alarmist_weights))
    report = evaluate_cases(iter([("scene", image, truth)]), 1, config, StrokePlan(informed=True), seed=3, tta=1,
                            reference=False)
    row = report["images"][0]
    assert report["strokes"] == "informed" and report["veto_fired"] == 1 and row["fit"]["veto_fired"]
    assert row["clean_on_flagged"] == row["labelled"][3] == row["fit"]["veto_pixels_2"] > 0


def test_evaluate_adapt_runs_every_detection_with_the_coarse_pass_and_straight_rule_it_is_given(
        tiny_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """adapt's detection after the fit runs the coarse paint-loss pass and drops long straight craquelure when
    detect does; so must its evaluation, for the base, the adapted detector and the default detector alike."""
    import pipeline.stages.detect_infer as infer
    from lab.eval.adapt_eval import StrokePlan, evaluate_cases

    seen: list[tuple[bool, int]] = []
    plain = infer.detect_probabilities

    def spy(*args: object, coarse_loss: bool = False, straight: int = 0, **kwargs: object) -> np.ndarray:
        seen.append((coarse_loss, straight))
        return plain(*args, coarse_loss=coarse_loss, straight=straight, **kwargs)

    monkeypatch.setattr(infer, "detect_probabilities", spy)
    image, loss = plaster_scan()
    truth = np.where(loss, 2, 0).astype(np.uint8)
    config = AdaptConfig(steps=5, manifest=str(tiny_weights), base="detector-resunet18")  # the default scored too
    for flag, straight in ((True, 60), (False, 0)):
        seen.clear()
        evaluate_cases(iter([("scene", image, truth)]), 1, config, StrokePlan(), seed=3, tta=1, coarse_loss=flag,
                       straight=straight)
        assert seen == [(flag, straight)] * 3  # base, adapted, default


def test_evaluate_adapt_scores_each_round_on_the_last_round_s_far_pixels(tiny_weights: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import lab.eval.adapt_eval as adapt_eval
    from lab.eval.adapt_eval import StrokePlan, evaluate_cases, far_from_strokes, score

    image, loss = plaster_scan()
    truth = np.where(loss, 2, 0).astype(np.uint8)
    nothing = np.zeros((2, *truth.shape), np.float32)
    everything = np.stack([nothing[0], loss.astype(np.float32)])
    maps = iter([nothing, everything])  # round 1 finds nothing, round 2 the whole loss
    seen_marks: list[np.ndarray] = []

    def fitted(image: np.ndarray, marks: np.ndarray, config: AdaptConfig, **kwargs: object) -> tuple:
        seen_marks.append(marks.copy())
        return nothing, next(maps), {"veto_fired": False}

    monkeypatch.setattr(adapt_eval, "adapted_probabilities", fitted)
    config = AdaptConfig(steps=5, manifest=str(tiny_weights))
    report = evaluate_cases(iter([("scene", image, truth)]), 1, config, StrokePlan(informed=True, rounds=2), seed=3,
                            tta=1, reference=False)
    row = report["images"][0]
    far = far_from_strokes(seen_marks[-1])
    assert not np.array_equal(far, far_from_strokes(seen_marks[0]))  # the second round drew more strokes
    assert row["after_round"] == [score(nothing, truth, 1, far), score(everything, truth, 1, far)]
    assert row["after_round"][-1] == row["after"] and row["after_round"][0]["recall"] == 0.0
    rounds = report["mean_after_round"]
    assert [r["recall"] for r in rounds] == [0.0, 1.0] and rounds[-1] == report["mean"]["after"]
    maps = iter([everything])
    one = evaluate_cases(iter([("scene", image, truth)]), 1, config, StrokePlan(informed=True), seed=3, tta=1,
                         reference=False)
    assert "mean_after_round" not in one and "after_round" not in one["images"][0]


def test_the_veto_takes_its_own_share_of_weak_negatives(alarmist_weights: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The head's negatives take `background` from unlabelled pixels, the veto's its own share per class
    (`veto_background_loss` for paint loss)."""
    import pipeline.stages.adapt_fit as fitting
    from pipeline.stages.adapt import build_for, fit_adapted

    shares: dict[str, Any] = {}
    for name in ("fit_head", "fit_veto"):
        real = getattr(fitting, name)

        def spy(*args: Any, real: Any = real, name: str = name) -> Any:
            shares[name] = args[-3:] if name == "fit_head" else args[-1]  # the head: its share, level, relabel
            return real(*args)

        monkeypatch.setattr(fitting, name, spy)
    image, _ = plaster_scan()
    marks = strokes(LOSSES[:2], CLEAN_SPOTS)
    config = AdaptConfig(steps=5, background=0.25, veto_background=0.15, veto_background_loss=0.05,
                         background_below=0.7, manifest=str(alarmist_weights))
    model = build_for(config, [1])
    points = {v: np.argwhere(marks == v) for v in (2, 3)}
    fit_adapted(model, np.moveaxis(image, -1, 0), points, config)
    assert shares == {"fit_head": (0.25, 0.7, 0.0), "fit_veto": [0.05]}
    assert config.veto_backgrounds([0, 1]) == [0.15, 0.05]


def test_the_refit_drops_the_weak_negatives_the_first_fit_calls_damage_unless_the_base_flags_them() -> None:
    """Positives and clean strokes apart; a third of the unlabelled samples look like the positives (damage the base
    missed), a few of them flagged by the base. The second fit leaves out the missed ones only, and then gives
    that damage more than one fit does."""
    from types import SimpleNamespace

    from models.adapted import PixelHead
    from pipeline.stages.adapt_fit import PixelSamples, fit_head

    rng = np.random.default_rng(0)
    damage, clean = np.array([2.0, 0.0]), np.array([-2.0, 0.0])
    groups = [(damage, 2, 40, 0.0), (clean, 3, 40, 0.0), (clean, 0, 400, 0.0), (damage, 0, 170, 0.1),
              (damage, 0, 30, 0.9)]  # (centre, label, count, base probability of paint loss)
    features = np.concatenate([c + rng.normal(0, 0.7, (n, 2)) for c, _, n, _ in groups]).astype(np.float32)
    labels = np.concatenate([np.full(n, v, np.uint8) for _, v, n, _ in groups])
    base = np.concatenate([np.tile([0.0, p], (n, 1)) for *_, n, p in groups]).astype(np.float32)
    samples = PixelSamples(features, labels, base)
    probe = torch.from_numpy(damage[None].astype(np.float32))[:, :, None, None]
    seen = {}
    for relabel in (0.0, 0.5):
        model = SimpleNamespace(head=PixelHead(2, 1, 8), adapted=[1])
        report = fit_head(model, samples, steps=200, background=0.6, relabel=relabel)
        seen[relabel] = (report, float(torch.sigmoid(model.head(probe)).item()))
    assert "relabelled_2" not in seen[0.0][0]
    dropped = seen[0.5][0]["relabelled_2"]
    assert 120 <= dropped <= 170  # most of the missed damage, none of what the base flags (30 more)
    assert seen[0.5][1] > seen[0.0][1] + 0.1


def test_unlearned_strokes_are_told_per_class_with_why_and_what_to_do() -> None:
    from pipeline.stages.adapt_before import unlearned

    flagged = {"craquelure": {"pixels": 57, "flagged": 0.1}, "paint_loss": {"pixels": 190, "flagged": 0.2}}
    lines = unlearned(flagged, support_loss=0.02, reach=32, add=0.9)
    assert len(lines) == 2 and lines[0].startswith("80 % of the paint-loss strokes are not flagged")
    assert lines[1].startswith("90 % of the craquelure strokes are not flagged") and "within 32 px" in lines[1]
    assert unlearned(flagged, support_loss=0.0, reach=32, add=0.9) == lines[1:]  # no support: the head adds freely
    learnt = {"craquelure": {"pixels": 57, "flagged": 0.5}, "paint_loss": {"pixels": 190, "flagged": 0.93}}
    assert unlearned(learnt, support_loss=0.02, reach=32, add=0.9) == []


def test_weak_negatives_the_base_flags_are_left_out_below_the_level() -> None:
    """Unlabelled samples that look like the strokes and that the base flags teach the head they are clean paint;
    with `background_below` they are left out of the class's weak negatives, and the head says damage there."""
    from types import SimpleNamespace

    from models.adapted import PixelHead
    from pipeline.stages.adapt_fit import PixelSamples, fit_head

    rng = np.random.default_rng(0)
    damage, clean = rng.normal(2.0, 0.3, (40, 4)), rng.normal(-2.0, 0.3, (40, 4))
    flagged, intact = rng.normal(2.0, 0.3, (400, 4)), rng.normal(-2.0, 0.3, (400, 4))  # unlabelled
    features = np.concatenate([damage, clean, flagged, intact]).astype(np.float32)
    labels = np.concatenate([np.full(40, 2), np.full(40, 3), np.zeros(800)]).astype(np.uint8)
    base = np.zeros((len(labels), 2), np.float32)
    base[80:480, 1] = 0.9  # the base flags the damage-like unlabelled samples as paint loss
    samples = PixelSamples(features, labels, base)
    probe = torch.from_numpy(rng.normal(2.0, 0.3, (50, 4, 1, 1)).astype(np.float32))  # damage-like pixels
    said = {}
    for level in (1.0, 0.5):
        model = SimpleNamespace(adapted=[1], head=PixelHead(4, 1, hidden=0))
        fit_head(model, samples, steps=200, background=0.6, background_below=level)
        with torch.no_grad():
            said[level] = float(torch.sigmoid(model.head(probe)).mean())
    assert said[0.5] > 0.9 > said[1.0]


def test_the_base_detections_a_stroke_touches_are_found_in_its_region_only() -> None:
    from pipeline.stages.adapt_fit import joined_pixels

    flagged = np.zeros((40, 40), bool)
    flagged[10, 2:38] = True  # a found crack
    flagged[30, 2:38] = True  # a look-alike no stroke touches
    stroke = np.zeros((40, 40), bool)
    stroke[12, 20:24] = True  # a stroke 2 px below the found crack (on a part the base missed)
    rng = np.random.default_rng(0)
    ys, xs = joined_pixels(flagged, stroke, slice(0, 40), 1000, rng)
    assert len(ys) == 36 and set(ys.tolist()) == {10}
    ys, xs = joined_pixels(flagged, stroke, slice(4, 36), 1000, rng)  # the square's cell only, not its context
    assert len(ys) == 32 and xs.min() == 4 and xs.max() == 35
    assert len(joined_pixels(flagged, stroke, slice(0, 40), 5, rng)[0]) == 5
    stroke[:] = False
    stroke[14, 20:24] = True  # 4 px away: touches nothing
    assert len(joined_pixels(flagged, stroke, slice(0, 40), 1000, rng)[0]) == 0


def test_the_veto_keeps_the_found_damage_its_strokes_touch_when_told_to() -> None:
    """The clean strokes mark false alarms; the damage strokes lie on damage the base missed (the informed plan), so
    the found damage, which looks more like the false alarms, is vetoed unless the base's detections that the damage
    strokes touch are among the veto's negatives."""
    from types import SimpleNamespace

    from models.adapted import PixelHead
    from pipeline.stages.adapt_fit import JOINED, PixelSamples, fit_veto

    rng = np.random.default_rng(0)
    groups = [((2.0, 0.0), 3, 60, 0.9), ((-2.0, 0.0), 1, 60, 0.1), ((1.5, 2.0), JOINED, 60, 0.9)]
    features = np.concatenate([np.array(c) + rng.normal(0, 0.3, (n, 2)) for c, _, n, _ in groups]).astype(np.float32)
    labels = np.concatenate([np.full(n, v, np.uint8) for _, v, n, _ in groups])
    base = np.concatenate([np.tile([p, 0.0], (n, 1)) for *_, n, p in groups]).astype(np.float32)
    probe = torch.tensor([[1.5, 2.0]])[:, :, None, None]
    vetoed = {}
    for told in (False, True):
        kept = labels if told else np.where(labels == JOINED, 0, labels).astype(np.uint8)  # unlabelled, unflagged
        model = SimpleNamespace(veto=PixelHead(2, 1, 0), veto_on=torch.zeros(1), adapted=[0])
        counts = fit_veto(model, PixelSamples(features, kept, base), min_pixels=20, steps=200)
        assert counts == {"veto_pixels_1": 60, **({"veto_joined_1": 60} if told else {})}
        assert model.veto_on.item() == 1.0
        vetoed[told] = float(torch.sigmoid(model.veto(probe)).item())
    assert vetoed[False] > 0.5 > vetoed[True]
    assert "veto_joined" not in AdaptConfig(veto_joined=0).key_params()  # a store adapted before keeps its key
    assert AdaptConfig(veto_joined=50).key_params()["veto_joined"] == 50
    assert AdaptConfig(veto_joined=50).veto_joined_counts([0, 1]) == [50, 0]  # craquelure only


def test_the_head_is_fitted_without_the_veto_s_joined_samples() -> None:
    from types import SimpleNamespace

    from models.adapted import PixelHead
    from pipeline.stages.adapt_fit import JOINED, PixelSamples, fit_head

    rng = np.random.default_rng(0)
    features = rng.normal(0, 1, (90, 3)).astype(np.float32)
    labels = np.repeat(np.array([1, 3, 0], np.uint8), 30)
    base = np.zeros((90, 2), np.float32)
    joined = PixelSamples(np.concatenate([features, rng.normal(5, 1, (20, 3)).astype(np.float32)]),
                          np.concatenate([labels, np.full(20, JOINED, np.uint8)]), np.zeros((110, 2), np.float32))
    heads = []
    for samples in (PixelSamples(features, labels, base), joined):
        model = SimpleNamespace(head=PixelHead(3, 1, 4), adapted=[0])
        fit_head(model, samples, steps=20, background=0.5)
        heads.append(model.head.state_dict())
    assert all(torch.equal(heads[0][k], heads[1][k]) for k in heads[0])
