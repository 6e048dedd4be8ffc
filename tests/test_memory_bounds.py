"""What a task holds is bounded by the chunk, not by the shard or the scan: counted on small stores by
wrapping the readers a task calls (the figures in bytes belong to benchmarks/bench_restore.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

import pipeline.engine.pyramid as pyramid_module
from pipeline.engine.runner import EngineConfig
from pipeline.io.store import downsample2
from pipeline.stages.ingest import IngestConfig, ingest

ENGINE = EngineConfig(workers=2, progress=False, scheduler="threads")


SHARDED = IngestConfig(chunk=64, top_level_max_side=64, shard_chunks=4)  # 256-px shards of 64-px chunks


def _scan(tmp_path: Path) -> np.ndarray:
    """A noisy RGB scan of odd sides (edge rows replicated by the pyramid) written as a tiled TIFF."""
    image = np.random.default_rng(3).integers(0, 256, (1043, 777, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "s.tif", image, photometric="rgb", tile=(64, 64))
    return image


def test_a_sharded_pyramid_level_reads_one_chunks_source_at_a_time(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Each read a pyramid task makes is at most the 2x2 source of one output chunk, though it writes a whole
    shard; the levels equal the whole image downsampled at once."""
    image = _scan(tmp_path)
    reads: list[tuple[int, int]] = []
    real = pyramid_module.read_region

    def counted(array: zarr.Array, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        block = real(array, y0, y1, x0, x1)
        reads.append(block.shape[1:])
        return block

    monkeypatch.setattr(pyramid_module, "read_region", counted)
    url = str(tmp_path / "s.zarr")
    ingest(tmp_path / "s.tif", url, SHARDED, ENGINE)
    group = zarr.open_group(url, mode="r", path="scan")
    assert group["1"].shards is not None  # level 1 (522 x 389) is larger than one 256-px shard
    assert reads and max(h for h, _ in reads) <= 128 and max(w for _, w in reads) <= 128
    expected = np.moveaxis(image, -1, 0)
    for path in sorted(group.array_keys(), key=int)[1:]:
        expected = downsample2(expected)
        assert np.array_equal(group[path][:], expected), path


def test_downsample2_mean_is_the_rounded_mean_at_the_extremes() -> None:
    """The 2x2 sum is accumulated without overflow for the largest 8- and 16-bit values."""
    for dtype in (np.uint8, np.uint16):
        top = np.iinfo(dtype).max
        block = np.full((1, 4, 5), top, dtype)
        block[0, 0, 0] = top - 1
        out = downsample2(block)
        assert out.dtype == dtype and out.shape == (1, 2, 3)
        assert out[0, 0, 0] == top  # (3 * top + top - 1 + 2) // 4 rounds up to top
        assert (out == top).all()


def test_an_edited_mask_is_stored_one_shard_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mask file is read and written one write block (shard) at a time, not in bands as wide as the scan;
    `mask_edited/0` is the mask and its digest the per-chunk digests of the whole mask."""
    from pipeline.io.edited_mask import EditedMask
    from pipeline.io.store import block_digest, chunk_grid, combine_digests
    from pipeline.provenance import StageRecord
    from pipeline.stages.inpaint_stage import write_edited_mask

    image = _scan(tmp_path)
    url = str(tmp_path / "s.zarr")
    ingest(tmp_path / "s.tif", url, SHARDED, ENGINE)
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[100:140, 30:700] = 2
    mask[900:1043, 760:777] = 1
    tifffile.imwrite(tmp_path / "m.tif", mask, tile=(64, 64))
    reads: list[tuple[int, int]] = []
    real = EditedMask.hole

    def counted(self: EditedMask, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        reads.append((y1 - y0, x1 - x0))
        return real(self, y0, y1, x0, x1)

    monkeypatch.setattr(EditedMask, "hole", counted)
    record = StageRecord("inpaint", url, {})
    digest, read = write_edited_mask(url, tmp_path / "m.tif", *mask.shape, 64, ENGINE, record)
    assert len(reads) == 5 * 4 and max(max(r) for r in reads) == 256  # 5 x 4 shards of 256 px
    assert read["pixels_marked"] == int((mask > 0).sum())
    stored = zarr.open_array(f"{url}/mask_edited/0", mode="r")[:]
    expected = (mask > 0).astype(np.uint8)[None]
    assert np.array_equal(stored, expected)
    assert digest == combine_digests({f"{y0 // 64}-{x0 // 64}": block_digest(expected[:, y0:y1, x0:x1])
                                      for y0, y1, x0, x1 in chunk_grid(expected.shape, 64)})
