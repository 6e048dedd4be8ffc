"""Per-block counts of `retouch evaluate detect` and the paired bootstrap comparison of two detectors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_detect_eval import _dataset, _tiny_manifest

from lab.eval.compare_detect import compare, main, pooled_f1, unit_counts
from lab.eval.detect_eval import EvalOptions, block_counts, evaluate_detect


def test_block_counts_add_up_to_the_image_counts() -> None:
    rng = np.random.default_rng(0)
    pred, truth = rng.random((300, 200)) > 0.7, rng.random((300, 200)) > 0.8
    rows = np.array(block_counts(pred, truth, 128))
    assert rows[:, :2].tolist() == [[0, 0], [0, 128], [128, 0], [128, 128], [256, 0], [256, 128]]
    assert rows[:, 2:].sum(axis=0).tolist() == [(pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum()]


def test_evaluation_keeps_per_block_counts_that_pool_to_its_strict_f1(tmp_path: Path) -> None:
    images, masks = _dataset(tmp_path)
    opts = EvalOptions(weights="tiny", manifest=_tiny_manifest(tmp_path), tile=64, overlap=16, baseline=False)
    report = evaluate_detect(images, masks, opts)
    assert report["blocks"]["stems"] == ["img0", "img1"]
    for cls in ("craquelure", "paint_loss"):
        _, counts = unit_counts(report, cls, by_photo=True)
        assert float(pooled_f1(counts.sum(axis=0))) == pytest.approx(report["model"][cls]["f1"])


def _report(stems: int, blocks: int, tp: list[int], fp: list[int], fn: list[int]) -> dict:
    rows = [[i, 128 * b, 0, tp[i * blocks + b], fp[i * blocks + b], fn[i * blocks + b]]
            for i in range(stems) for b in range(blocks)]
    return {"blocks": {"size": 128, "stems": [f"s{i}" for i in range(stems)], "counts": {"craquelure": rows}}}


def test_bootstrap_tells_a_clear_drop_from_noise_and_uses_blocks_for_one_photo(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 20
    tp = rng.integers(50, 100, n).tolist()
    fp, fn = rng.integers(10, 60, n).tolist(), rng.integers(10, 60, n).tolist()
    a = _report(n, 1, tp, fp, fn)
    same = compare(a, a, "craquelure")
    assert same["difference"] == 0 and same["ci95"] == [0.0, 0.0] and same["not_lower"] and same["units"] == "photos"
    halved = _report(n, 1, [t // 2 for t in tp], fp, [f + t // 2 for f, t in zip(fn, tp, strict=True)])
    worse = compare(a, halved, "craquelure")
    assert worse["difference"] < -0.1 and worse["ci95"][1] < -0.02 and not worse["not_lower"]
    # one photo: its blocks are the units
    one = compare(_report(1, n, tp, fp, fn), _report(1, n, tp, fp, fn), "craquelure")
    assert one["units"] == "128-px blocks" and one["n"] == n
    with pytest.raises(ValueError, match="same images"):
        compare(a, _report(n - 1, 1, tp, fp, fn), "craquelure")
    with pytest.raises(ValueError, match="no per-block counts"):
        compare(a, {"model": {}}, "craquelure")
    (tmp_path / "a.json").write_text(json.dumps(a))
    main([str(tmp_path / "a.json"), str(tmp_path / "a.json"), "--json", str(tmp_path / "out.json")])
    assert json.loads((tmp_path / "out.json").read_text())["results"][0]["not_lower"] is True
