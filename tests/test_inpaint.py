"""The inpaint stage core: composite equals the original outside the hole, only damaged tiles run, masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from models.pconv import PConvUNet
from models.weights import Tiling, WeightsError, load_state, save_weights
from pipeline.errors import InputError
from pipeline.io.image_io import write_png
from pipeline.stages.inpaint import dilate_hole, inpaint_image, inpaint_tile, load_edited_mask, tiles_to_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model() -> PConvUNet:
    torch.manual_seed(0)
    return PConvUNet(base_channels=4, depth=3, max_channels=16).eval()


class CountingModel(torch.nn.Module):
    def __init__(self, inner: PConvUNet) -> None:
        super().__init__()
        self.inner, self.calls = inner, 0
        self.multiple = inner.multiple

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x, m)


def _hole(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hole = np.zeros(shape, bool)
    hole[10:30, 5:25] = True
    hole |= rng.random(shape) < 0.05
    return hole


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_composite_equals_original_outside_hole(model: PConvUNet, dtype: type, channels: int) -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, np.iinfo(dtype).max, size=(70, 53, channels), endpoint=True).astype(dtype)
    hole = _hole((70, 53))
    out = inpaint_image(image, hole, model, tile=32, overlap=8)
    assert out.dtype == image.dtype and out.shape == image.shape
    assert np.array_equal(out[~hole], image[~hole])
    if channels == 4:
        assert np.array_equal(out[:, :, 3], image[:, :, 3])  # alpha is never changed
    assert not np.array_equal(out[hole][:, :1], image[hole][:, :1])  # the hole was filled


def test_dilation_grows_the_filled_region_only(model: PConvUNet) -> None:
    image = np.full((40, 40, 3), 200, np.uint8)
    image[::2] = 10
    hole = np.zeros((40, 40), bool)
    hole[20, 20] = True
    grown = dilate_hole(hole, 3)
    out = inpaint_image(image, hole, model, tile=32, overlap=8, dilate=3)
    assert grown.sum() > 1 and np.array_equal(out[~grown], image[~grown])


def test_only_tiles_with_damage_run(model: PConvUNet) -> None:
    counting = CountingModel(model)
    image = np.zeros((128, 128, 3), np.uint8)
    hole = np.zeros((128, 128), bool)
    assert np.array_equal(inpaint_image(image, hole, counting, tile=32, overlap=8), image)
    assert counting.calls == 0
    hole[2:6, 2:6] = True  # one corner: only the tile(s) covering it
    inpaint_image(image, hole, counting, tile=32, overlap=8)
    assert counting.calls == len(tiles_to_run(hole, 32, 8)) == 1


def test_tile_pads_to_the_model_multiple(model: PConvUNet) -> None:
    tile = np.random.default_rng(0).integers(0, 255, (21, 13, 3)).astype(np.uint8)
    fill = inpaint_tile(tile, _hole((21, 13)), model)
    assert fill.shape == (21, 13, 3) and fill.dtype == np.float32
    assert 0 <= fill.min() and fill.max() <= 1


def test_bad_inputs_are_refused(model: PConvUNet) -> None:
    image = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="does not match"):
        inpaint_image(image, np.zeros((8, 8), bool), model)
    with pytest.raises(TypeError, match="uint8 or uint16"):
        inpaint_image(image.astype(np.float32), np.zeros((16, 16), bool), model)


def test_edited_mask_png_tiff_and_zarr(tmp_path: Path) -> None:
    import zarr

    hole = np.zeros((20, 30), bool)
    hole[5:9, 3:17] = True
    write_png(tmp_path / "m.png", hole.astype(np.uint8) * 255)
    tifffile.imwrite(tmp_path / "m.tif", hole.astype(np.uint16) * 2)  # a label mask
    z = zarr.create_array(str(tmp_path / "m.zarr"), shape=(20, 30), dtype="uint8")
    z[...] = hole.astype(np.uint8)
    for name in ("m.png", "m.tif", "m.zarr"):
        assert np.array_equal(load_edited_mask(tmp_path / name, (20, 30)), hole)


def test_edited_mask_reads_blocks_of_tiled_tiff_and_channel_first_zarr(tmp_path: Path) -> None:
    import zarr

    from pipeline.io.edited_mask import EditedMask

    rng = np.random.default_rng(1)
    labels = (rng.random((300, 200)) < 0.1).astype(np.uint8) * 2
    tifffile.imwrite(tmp_path / "tiled.tif", labels, tile=(64, 64))
    z = zarr.create_array(str(tmp_path / "cf.zarr"), shape=(2, 300, 200), dtype="uint8", chunks=(2, 64, 64))
    z[0] = labels
    z[1] = 255  # an alpha channel that lets everything through
    for name in ("tiled.tif", "cf.zarr"):
        mask = EditedMask(tmp_path / name, (300, 200))
        blocks = np.concatenate([mask.hole(y, min(y + 70, 300), 0, 200) for y in range(0, 300, 70)])
        assert np.array_equal(blocks, labels > 0)
        assert np.array_equal(mask.hole(10, 20, 150, 200), labels[10:20, 150:200] > 0)
        mask.close()


def test_edited_mask_wrong_size_or_type_is_a_clear_error(tmp_path: Path) -> None:
    write_png(tmp_path / "small.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(InputError, match=r"small.png: mask is 10x10 \(HxW\) but the scan is 20x30"):
        load_edited_mask(tmp_path / "small.png", (20, 30))
    tifffile.imwrite(tmp_path / "float.tif", np.zeros((20, 30), np.float32))
    with pytest.raises(InputError, match="float.tif"):
        load_edited_mask(tmp_path / "float.tif", (20, 30))
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(InputError, match="junk.png"):
        load_edited_mask(tmp_path / "junk.png", (20, 30))
    with pytest.raises(InputError, match="not found"):
        load_edited_mask(tmp_path / "missing.png", (20, 30))


def test_manifest_refuses_a_wrong_sha256(tmp_path: Path, model: PConvUNet) -> None:
    manifest = tmp_path / "manifest.json"
    entry = save_weights(
        model, name="inpainter-test", architecture="pconvunet", arch_args=model.arch_args(),
        tiling=Tiling(tile=256, halo=32, multiple_of=model.multiple), manifest_path=manifest,
    )
    restored = PConvUNet(**entry.arch_args)
    restored.load_state_dict(load_state(entry, tmp_path))
    data = bytearray(entry.path(tmp_path).read_bytes())
    data[-1] ^= 0xFF
    entry.path(tmp_path).write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="does not match the manifest"):
        load_state(entry, tmp_path)
