"""The texture layer on a fill: nothing from a flat surround, known pixels kept, same bytes twice, a periodic
surround's texture brought into the hole; the same grain whatever the chunking; the stage option keeps old keys
and records its setting; grain 1 is the default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from test_stages import QUIET, damaged_scan, make_store

from flows.params import InpaintParams
from lab.eval.texture_metrics import gradient_ratio
from pipeline.io.store import group_info
from pipeline.stages.inpaint import dilate_hole
from pipeline.stages.inpaint_grain import GrainConfig, add_grain, grain_field, grain_weight, high_pass, robust_limit
from pipeline.stages.inpaint_stage import InpaintStageConfig, inpaint_key, inpaint_store


def _hole(shape: tuple[int, int]) -> np.ndarray:
    hole = np.zeros(shape, bool)
    hole[20:52, 24:60] = True
    hole[60:66, 10:80] = True  # a thin crack beside the loss
    return hole


def _weave(dtype: type, shape: tuple[int, int] = (96, 96), seed: int = 0) -> np.ndarray:
    """A canvas-like periodic texture (periods 6 and 5 px) with a little noise, RGB of `dtype`."""
    top = np.iinfo(dtype).max
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    weave = 0.5 + 0.15 * np.sin(2 * np.pi * xx / 6) * np.sin(2 * np.pi * yy / 5)
    noise = np.random.default_rng(seed).normal(0, 0.01, (*shape, 3))
    rgb = np.stack([weave * f for f in (1.0, 0.9, 0.7)], axis=-1) + noise
    return np.clip(np.rint(rgb * top), 0, top).astype(dtype)


def _flat_fill(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The hole filled with the mean colour of the known pixels (a fill with no texture at all)."""
    out = image.copy()
    out[hole] = np.rint(image[~hole].mean(axis=0)).astype(image.dtype)
    return out


def test_grain_of_a_flat_surround_adds_nothing() -> None:
    image = np.full((80, 96, 3), (120, 90, 60), np.uint8)
    hole = _hole(image.shape[:2])
    filled = image.copy()
    filled[hole] = (100, 100, 100)
    out = add_grain(filled, image, hole, GrainConfig(alpha=1.0))
    assert np.array_equal(out, filled)
    assert np.abs(high_pass(image.astype(np.float32) / 255, ~hole, 3.0)).max() < 1e-5


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_known_pixels_and_alpha_are_unchanged(dtype: type) -> None:
    rgb = _weave(dtype)
    alpha = np.full((*rgb.shape[:2], 1), np.iinfo(dtype).max // 3, dtype)
    image = np.concatenate([rgb, alpha], axis=2)  # RGBA
    hole = _hole(image.shape[:2])
    filled = _flat_fill(image, hole)
    out = add_grain(filled, image, hole, GrainConfig(alpha=1.0))
    assert out.dtype == dtype and out.shape == image.shape
    assert np.array_equal(out[~hole], filled[~hole])  # bit for bit outside the hole
    assert np.array_equal(out[:, :, 3], filled[:, :, 3])  # alpha never changes
    assert not np.array_equal(out[hole], filled[hole])  # the texture went in


def test_same_bytes_twice_and_the_seed_matters() -> None:
    image = _weave(np.uint8)
    hole = _hole(image.shape[:2])
    filled = _flat_fill(image, hole)
    first = add_grain(filled, image, hole, GrainConfig(alpha=1.0, seed=3))
    assert np.array_equal(first, add_grain(filled, image, hole, GrainConfig(alpha=1.0, seed=3)))
    assert not np.array_equal(first, add_grain(filled, image, hole, GrainConfig(alpha=1.0, seed=4)))


def test_a_periodic_surround_gives_the_fill_its_texture() -> None:
    image = _weave(np.uint8)
    hole = _hole(image.shape[:2])
    loss = hole.copy()
    loss[60:66] = False  # scored on the loss; the thin crack gets no grain (below)
    filled = _flat_fill(image, hole)
    before = gradient_ratio(filled, image, loss)
    half = gradient_ratio(add_grain(filled, image, hole, GrainConfig(alpha=0.5)), image, loss)
    after = gradient_ratio(add_grain(filled, image, hole, GrainConfig(alpha=1.0)), image, loss)
    assert before < 0.5 < half < after  # more strength, more texture
    assert 0.8 <= after <= 1.2  # the weave's gradient energy, not noise


def test_thin_cracks_keep_the_fill_and_wide_losses_take_full_grain() -> None:
    image = _weave(np.uint8)
    hole = _hole(image.shape[:2])  # a 32 x 36 loss and a 6 px wide crack
    weight = grain_weight(hole, narrow=3.0, reach=8)
    assert weight[~hole].max() == 0 and weight[62, 5:80].max() == 0
    assert weight[21:51, 25:59].min() == 1 and weight[20:52, 24:60].min() > 0.8  # corners: a little less
    filled = _flat_fill(image, hole)
    out = add_grain(filled, image, hole, GrainConfig(alpha=1.0))
    assert np.array_equal(out[61:65, 12:19], filled[61:65, 12:19])  # the crack, away from the loss
    everywhere = add_grain(filled, image, hole, GrainConfig(alpha=1.0, narrow=0.0))
    assert not np.array_equal(everywhere[61:65, 12:19], filled[61:65, 12:19])


def test_bad_settings_are_refused() -> None:
    for bad in ({"alpha": -1.0}, {"sigma": 0.1}, {"block": 2}, {"block": 15}, {"candidates": 0}, {"reach": 0},
                {"clip": -1.0}, {"narrow": -1.0}):
        with pytest.raises(ValueError):
            GrainConfig(**bad)
    with pytest.raises(ValueError, match="grain"):
        InpaintStageConfig(grain=-0.5)
    with pytest.raises(ValueError, match="far"):
        GrainConfig(far=GrainConfig().reach)  # a far reach must reach further than the near one
    assert InpaintStageConfig(grain=0.0, halo=16).grain_halo == 16  # no grain, no wider read
    for sigma, halo in ((3.0, 64), (6.0, 64), (3.0, 40), (3.0, 400)):  # the grain's read covers all it reads
        config = InpaintStageConfig(grain=1.0, grain_sigma=sigma, halo=halo)
        assert config.grain_halo == max(halo, config.grain_config().span)
    assert GrainConfig(sigma=6.0).span > GrainConfig(sigma=3.0).span > GrainConfig(far=0).span


def test_grain_1_is_the_default_and_the_key_is_unchanged_with_grain_off() -> None:
    assert InpaintStageConfig().grain == 1.0 and InpaintParams().grain == 1.0 and InpaintParams().config().grain == 1.0
    off = InpaintStageConfig(grain=0.0)
    assert "grain" not in off.key_params()  # stores restored before the option keep their key
    assert InpaintStageConfig().key_params()["grain_config"]["far"] == GrainConfig().far  # every grain setting
    keys = {inpaint_key("s", "m", c, "w") for c in (off, InpaintStageConfig(grain=1.0),
                                                     InpaintStageConfig(grain=1.0, grain_sigma=2.0))}
    assert len(keys) == 3


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_stage_with_grain_keeps_the_scan_outside_the_fill_and_records_it(tmp_path: Path, tiny_weights: Path,
                                                                         dtype: type) -> None:
    image, labels = damaged_scan((160, 200), dtype)
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    restored = {}
    for grain in (0.0, 1.0):
        store = make_store(tmp_path, image, name=f"g{grain:g}")
        config = InpaintStageConfig(tile=128, overlap=32, dilate=2, grain=grain)
        result = inpaint_store(store, config, QUIET, mask=tmp_path / "labels.tif")
        restored[grain] = zarr.open_group(store, mode="r")["restored/0"][:]
        info = group_info(store, "restored")
        assert info["params"]["grain"] == grain and info["params"]["grain_sigma"] == 3.0
        assert ("grain" in result.summary) == (grain > 0)
        scan = zarr.open_group(store, mode="r")["scan/0"][:]
    hole = dilate_hole(labels > 0, 2)
    for out in restored.values():
        assert out.dtype == dtype and np.array_equal(scan[:, ~hole], out[:, ~hole])
    assert not np.array_equal(restored[0.0][:, hole], restored[1.0][:, hole])


def test_clipping_cuts_an_edge_halo_but_keeps_the_texture() -> None:
    rng = np.random.default_rng(1)
    texture = rng.normal(0, 0.02, (64, 64, 1)).astype(np.float32)
    band = texture.copy()
    band[:, 30:32] += 0.5  # a sharp ridge in the known paint
    known = np.ones((64, 64), bool)
    known[20:40, 36:56] = False
    limit = robust_limit(band, known, 2.5)
    clipped = np.clip(band, -limit, limit)
    assert np.abs(clipped[:, 30:32]).max() < 0.1  # the ridge is cut to a few deviations of the texture
    keep = np.abs(texture) < 0.04  # within two deviations: passed unchanged
    keep[:, 30:32] = False
    assert np.array_equal(clipped[keep], band[keep])
    assert np.isinf(robust_limit(band, np.zeros_like(known), 2.5)).all()  # nothing known: no limit


def _chunked_field(image: np.ndarray, hole: np.ndarray, config: GrainConfig, chunk: int, halo: int) -> np.ndarray:
    """The grain field as the stage computes it: chunk by chunk, each with `halo` px of its neighbours (the
    image reflected at its border, as the engine reads a chunk)."""
    h, w = hole.shape
    image = np.pad(image, ((halo, halo), (halo, halo), (0, 0)), mode="reflect")
    hole = np.pad(hole, halo, mode="reflect")
    out = np.zeros((h, w, 3), np.float32)
    for y0 in range(0, h, chunk):
        for x0 in range(0, w, chunk):
            window = (slice(y0, y0 + chunk + 2 * halo), slice(x0, x0 + chunk + 2 * halo))
            part = grain_field(image[window], hole[window], config, origin=(y0 - halo, x0 - halo))
            core = part[halo : halo + chunk, halo : halo + chunk]
            out[y0 : y0 + chunk, x0 : x0 + chunk] = core[: h - y0, : w - x0]
    return out


def test_a_wide_loss_takes_texture_in_its_core_from_the_far_sources() -> None:
    image = _weave(np.uint8, (256, 256), seed=1)
    yy, xx = np.mgrid[0:256, 0:256]
    hole = np.hypot(yy - 128, xx - 128) < 70  # 140 px across: its core is over 50 px from known paint
    core = np.hypot(yy - 128, xx - 128) < 20
    filled = _flat_fill(image, hole)
    near_only = add_grain(filled, image, hole, GrainConfig(alpha=1.0, far=0))
    far = add_grain(filled, image, hole, GrainConfig(alpha=1.0))
    assert np.array_equal(near_only[core], filled[core])  # nothing known within reach: a smooth core
    assert 0.8 <= gradient_ratio(far, image, core) <= 1.2  # the weave's gradient energy, also in the core
    assert gradient_ratio(far, image, hole & ~core) >= 0.8


def test_the_grain_does_not_depend_on_the_chunking() -> None:
    image = _weave(np.uint8, (320, 320), seed=2)
    yy, xx = np.mgrid[0:320, 0:320]
    hole = (np.hypot(yy - 160, xx - 150) < 60) | ((np.abs(yy - 2 * xx + 150) < 4) & (xx > 100))  # crosses borders
    config = GrainConfig(alpha=1.0)
    whole = grain_field(image, hole, config)
    assert np.abs(whole).max() > 0.02  # there is a texture to compare
    by_64 = _chunked_field(image, hole, config, 64, config.span)
    by_112 = _chunked_field(image, hole, config, 112, config.span)
    assert np.array_equal(by_64, by_112)  # the same values whatever the chunk size
    inner = (slice(config.span, -config.span),) * 2  # away from the image border, where chunks pad by reflection
    assert np.abs(by_64[inner] - whole[inner]).max() < 1e-6  # the whole image's values, to float rounding
    small = _chunked_field(image, hole, config, 112, config.span // 2)  # too small a halo: the chunks disagree
    assert np.abs(small[inner] - whole[inner]).max() > 0.01


def test_the_stage_adds_the_same_grain_whatever_the_chunk_size(tmp_path: Path, tiny_weights: Path) -> None:
    image, labels = damaged_scan((160, 200), np.uint8)
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    added = {}
    for chunk in (64, 128):
        restored = {}
        for grain in (0.0, 1.0):
            store = make_store(tmp_path, image, chunk=chunk, name=f"c{chunk}g{grain:g}")
            inpaint_store(store, InpaintStageConfig(tile=128, overlap=32, dilate=2, grain=grain), QUIET,
                          mask=tmp_path / "labels.tif")
            restored[grain] = zarr.open_group(store, mode="r")["restored/0"][:].astype(np.int32)
        added[chunk] = restored[1.0] - restored[0.0]  # the grain, rounded onto each chunking's own fill
    assert np.abs(added[64]).max() > 2  # some grain went in
    assert np.abs(added[64] - added[128]).max() <= 1  # the same grain, to the rounding of the fill it lands on


def test_a_chunk_job_reads_each_input_with_its_own_halo(tmp_path: Path) -> None:
    from pipeline.engine.ledger import Ledger
    from pipeline.engine.tiling import ChunkJob, _run_block, read_with_halo

    image = np.arange(3 * 96 * 80, dtype=np.uint16).reshape(3, 96, 80)
    store = str(tmp_path / "s.zarr")
    out = zarr.open_group(store, mode="w").create_array("out", shape=image.shape, chunks=(3, 32, 32), dtype=np.uint16)
    seen = []

    def fn(narrow: np.ndarray, wide: np.ndarray, origin: tuple[int, int]) -> tuple[list[np.ndarray], dict]:
        seen.append((narrow.shape, wide.shape, origin))
        return [narrow + 1], {}

    region = (32, 64, 32, 64)
    job = ChunkJob([image, image], [out], fn, 4, 32, origin=True, halos=[4, 20])
    ledger = Ledger(store, "t", "k")
    ledger.start()
    _run_block([(job, region)], ledger, ["0-1-1"])
    assert seen == [((3, 40, 40), (3, 72, 72), (28, 28))]  # the output's halo sets origin and the crop
    assert np.array_equal(out[:, 32:64, 32:64], image[:, 32:64, 32:64] + 1)
    wide = read_with_halo(image, region, 20)
    assert np.array_equal(wide[:, 16:-16, 16:-16], read_with_halo(image, region, 4))  # the same pixels, nested


def test_an_input_read_twice_with_two_halos_is_read_once_and_gives_the_same_blocks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The grain reads the scan and mask with a wider halo than the fill: inside the image one read serves both
    (the narrower block a crop of it), near the border each is read apart; either way the blocks are those of
    separate reads."""
    from pipeline.engine import tiling

    rng = np.random.default_rng(0)
    scan = zarr.create_array(store={}, shape=(3, 700, 900), chunks=(3, 128, 128), dtype="uint8")
    scan[:] = rng.integers(0, 255, scan.shape, dtype=np.uint8)
    mask = zarr.create_array(store={}, shape=(1, 700, 900), chunks=(1, 128, 128), dtype="uint8")
    mask[:] = rng.integers(0, 2, mask.shape, dtype=np.uint8)
    reads = []
    original = tiling.read_with_halo

    def counted(array, region, halo):  # noqa: ANN001, ANN202
        reads.append(halo)
        return original(array, region, halo)

    monkeypatch.setattr(tiling, "read_with_halo", counted)
    for region, expected in [((256, 384, 256, 384), [123, 123]), ((0, 128, 0, 128), [64, 64, 123, 123]),
                             ((512, 640, 768, 900), [64, 64, 123, 123])]:
        reads.clear()
        got = tiling.read_inputs([scan, mask, scan, mask], region, [64, 64, 123, 123])
        want = [original(a, region, h) for a, h in zip([scan, mask, scan, mask], [64, 64, 123, 123], strict=True)]
        assert all(g.shape == w.shape and np.array_equal(g, w) for g, w in zip(got, want, strict=True)), region
        assert sorted(reads) == expected, region


def test_inpaint_precision_enters_the_key_only_when_the_network_runs_in_bf16(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.stages.detect_infer as infer

    fp32 = InpaintStageConfig(precision="fp32")
    assert "precision" not in fp32.key_params()  # stores restored before the option keep their key
    assert InpaintStageConfig(precision="bf16").key_params()["precision"] == "bf16"
    monkeypatch.setattr(infer, "cpu_has_native_bf16", lambda: False)
    assert not InpaintStageConfig(precision="auto").bf16
    assert inpaint_key("s", "m", InpaintStageConfig(precision="auto"), "w") == inpaint_key("s", "m", fp32, "w")
    monkeypatch.setattr(infer, "cpu_has_native_bf16", lambda: True)
    assert InpaintStageConfig(precision="auto").bf16
    assert inpaint_key("s", "m", InpaintStageConfig(precision="auto"), "w") != inpaint_key("s", "m", fp32, "w")
    with pytest.raises(ValueError, match="precision"):
        InpaintStageConfig(precision="fp16")
