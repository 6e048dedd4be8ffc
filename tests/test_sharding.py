"""Zarr v3 sharding of large levels: written a whole shard per Dask task, the same bytes as the unsharded
layout (partial shard writes from concurrent tasks lose data, zarr-python issue 3514), far fewer files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from pipeline.engine.runner import EngineConfig
from pipeline.io.store import chunks_in, shard_side, write_regions
from pipeline.stages.detect import DetectConfig, detect
from pipeline.stages.ingest import IngestConfig, ingest
from pipeline.stages.inpaint_stage import InpaintStageConfig, inpaint_store

TWO_WORKERS = EngineConfig(workers=2, progress=False)
GROUPS = ("scan", "damage/probabilities", "scan/labels/damage", "restored")


def _arrays(url: str, group: str) -> dict[str, zarr.Array]:
    g = zarr.open_group(url, mode="r", path=group)
    return {k: g[k] for k in sorted(g.array_keys(), key=int)}


def test_shards_only_for_arrays_larger_than_one_shard() -> None:
    assert shard_side(64, 4, 256, 256) is None  # exactly one shard: nothing to gain
    assert shard_side(64, 4, 300, 260) == 256
    assert shard_side(64, 0, 5000, 5000) is None and shard_side(64, 1, 5000, 5000) is None
    assert chunks_in((256, 300, 0, 130), 64) == [(256, 300, 0, 64), (256, 300, 64, 128), (256, 300, 128, 130)]


@pytest.mark.slow  # ~13 s on the shared 2 cores: two stores through ingest, detect and inpaint
def test_sharded_store_equals_unsharded_byte_for_byte(tmp_path: Path, tiny_weights: Path) -> None:
    from lab.synthesis.synthetic_damage import synthesize_damage

    yy, xx = np.mgrid[0:300, 0:260] / 300
    clean = np.stack([0.5 + 0.3 * np.sin(7 * yy + c) * np.cos(5 * xx) for c in range(3)], axis=-1)
    image, _ = synthesize_damage((clean * 255).astype(np.uint8), seed=5)
    tifffile.imwrite(tmp_path / "s.tif", image, photometric="rgb", tile=(64, 64))
    stores = {}
    for shards in (4, 0):
        url = str(tmp_path / f"s{shards}.zarr")
        ingest(tmp_path / "s.tif", url, IngestConfig(chunk=64, top_level_max_side=64, shard_chunks=shards),
               TWO_WORKERS)
        detect(url, DetectConfig(tile=96, overlap=0, halo=16, tta=1), TWO_WORKERS)
        inpaint_store(url, InpaintStageConfig(tile=64, overlap=16, halo=16), TWO_WORKERS)
        stores[shards] = url
    sharded, plain = stores[4], stores[0]
    level0 = zarr.open_array(f"{sharded}/scan/0", mode="r")
    assert level0.shards == (3, 256, 256) and level0.chunks == (3, 64, 64)
    assert len(write_regions(level0)) == 4  # 2 x 2 shards of 256, three of them partial
    assert zarr.open_array(f"{plain}/scan/0", mode="r").shards is None
    for group in GROUPS:
        ours, theirs = _arrays(sharded, group), _arrays(plain, group)
        assert list(ours) == list(theirs), group
        assert ours["0"].shards is not None, group  # every level-0 output follows the scan's layout
        for path in ours:
            assert np.array_equal(ours[path][:], theirs[path][:]), f"{group}/{path}"
    damage = [zarr.open_group(u, mode="r", path="damage").attrs["retouch"]["digests"] for u in (sharded, plain)]
    assert damage[0] == damage[1]  # per-chunk digests are taken the same way in both layouts
    files = [sum(1 for p in (Path(u) / "scan" / "0").rglob("*") if p.is_file()) for u in (sharded, plain)]
    # 4 shard files against 25 chunk files, + zarr.json and the level's retouch-digests.json in each
    assert files == [4 + 2, 25 + 2]


def test_a_sharded_ingest_that_crashed_resumes_from_the_ledger(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Shard tasks recorded before a crash are skipped on the next run, which ends with the same bytes."""
    import threading

    import pipeline.stages.ingest as ingest_module

    image = (np.arange(520 * 400 * 3) % 251).astype(np.uint8).reshape(520, 400, 3)
    tifffile.imwrite(tmp_path / "s.tif", image, photometric="rgb", tile=(64, 64))
    config = IngestConfig(chunk=64, top_level_max_side=64, shard_chunks=4)
    reference = ingest(tmp_path / "s.tif", str(tmp_path / "ref.zarr"), config, TWO_WORKERS)
    real, calls, lock = ingest_module._copy_level0, [0], threading.Lock()

    def crashing(*args: object, **kwargs: object) -> dict[str, str]:
        with lock:
            calls[0] += 1
            crash = calls[0] == 3
        if crash:
            raise RuntimeError("worker lost")
        return real(*args, **kwargs)

    url = str(tmp_path / "s.zarr")
    monkeypatch.setattr(ingest_module, "_copy_level0", crashing)
    with pytest.raises(RuntimeError, match="worker lost"):
        ingest(tmp_path / "s.tif", url, config, EngineConfig(workers=1, progress=False))
    monkeypatch.setattr(ingest_module, "_copy_level0", real)
    resumed = ingest(tmp_path / "s.tif", url, config, TWO_WORKERS)
    assert resumed.resumed_tasks == 2  # the two shards written before the crash
    assert resumed.digest == reference.digest
    assert np.array_equal(zarr.open_array(f"{url}/scan/0", mode="r")[:], np.moveaxis(image, -1, 0))
