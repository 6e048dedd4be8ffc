"""Long straight craquelure components: judged whole, whatever the chunking (pipeline.stages.straight_cracks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from skimage.draw import circle_perimeter, line

from pipeline.stages.straight_cracks import (
    Region,
    clear_straight,
    cleared,
    labelled,
    straight_components,
    straight_plan,
    without_straight_cracks,
)


def network(shape: tuple[int, int] = (240, 320)) -> np.ndarray:
    """A craquelure-like mesh: bent segments joined at their ends, 1-2 px wide."""
    mask = np.zeros(shape, bool)
    rng = np.random.default_rng(5)
    points = [(int(y), int(x)) for y in range(20, shape[0] - 20, 40) for x in range(20, shape[1] - 20, 40)]
    jittered = {p: (p[0] + int(rng.integers(-12, 13)), p[1] + int(rng.integers(-12, 13))) for p in points}
    for (y, x), (a, b) in jittered.items():
        for neighbour in ((y + 40, x), (y, x + 40)):
            if neighbour in jittered:
                c, d = jittered[neighbour]
                mask[line(a, b, c, d)] = True
    return mask


def lines_and_arcs(seed: int, shape: tuple[int, int] = (300, 400)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    for k in range(8):
        rr, cc = line(*(int(v) for v in rng.integers(0, (shape[0], shape[1], shape[0], shape[1]))))
        mask[rr, cc] = True
        if k % 2:  # some 2 px wide
            mask[np.clip(rr + 1, 0, shape[0] - 1), cc] = True
    rr, cc = circle_perimeter(150, 150, 60, shape=shape)
    mask[rr, cc] = True
    return mask | (rng.random(shape) < 0.002)


def chunked(mask: np.ndarray, chunk: int, min_length: int, halo: int = 64) -> np.ndarray:
    """straight_components computed as the detect stage does: chunk by chunk, pieces joined across borders."""
    height, width = mask.shape
    regions: list[Region] = [(y, min(height, y + chunk), x, min(width, x + chunk))
                             for y in range(0, height, chunk) for x in range(0, width, chunk)]

    def read(window: Region) -> np.ndarray:
        return mask[window[0] : window[1], window[2] : window[3]]

    plan = straight_plan(read, regions, mask.shape, min_length, halo=halo)
    out = np.zeros_like(mask)
    for (y0, y1, x0, x1), drop in plan.drop.items():
        out[y0:y1, x0:x1] = cleared(labelled(read((y0, y1, x0, x1))), drop)
    return out


def test_a_long_straight_line_is_dropped_and_craquelure_arcs_and_short_lines_kept() -> None:
    whole = np.zeros((240, 640), bool)
    whole[:, :320] = network()
    rigging = np.zeros_like(whole)
    rigging[line(5, 620, 200, 560)] = True  # 204 px long
    rigging[line(6, 620, 201, 560)] = True  # and 2 px wide
    short = np.zeros_like(whole)
    short[line(230, 340, 230, 380)] = True  # 41 px: shorter than 60
    arc = np.zeros_like(whole)
    arc[circle_perimeter(120, 440, 70, shape=arc.shape)] = True
    arc[:, 440:] = False  # a bent crack, half a ring
    whole |= rigging | short | arc
    gone = straight_components(whole, 60)
    assert np.array_equal(gone, rigging)
    assert not straight_components(whole, 0).any()  # 0: off


@pytest.mark.parametrize("seed", [0, 1, 4])
def test_the_decision_does_not_depend_on_the_chunking(seed: int) -> None:
    mask = lines_and_arcs(seed)
    whole = straight_components(mask, 60)
    assert whole.any() or seed == 2
    for chunk in (16, 33, 64, 100):
        assert np.array_equal(chunked(mask, chunk, 60), whole), chunk
    assert not chunked(np.zeros((70, 90), bool), 32, 60).any()  # no craquelure at all


def test_pieces_joined_only_at_a_chunk_corner_are_one_component() -> None:
    """A diagonal line crossing a chunk corner exactly: its pieces touch only diagonally there."""
    mask = np.zeros((128, 128), bool)
    mask[line(0, 0, 127, 127)] = True
    mask[line(0, 127, 127, 0)] = True  # an X: one bent component, not two straight lines
    assert not straight_components(mask, 60).any()
    for chunk in (32, 64):
        assert not chunked(mask, chunk, 60).any()
    for ends in ((0, 0, 127, 127), (0, 127, 127, 0)):  # pieces touching at a below-right, a below-left corner
        single = np.zeros((128, 128), bool)
        single[line(*ends)] = True
        for chunk in (32, 64):
            assert chunked(single, chunk, 60).sum() == single.sum() == straight_components(single, 60).sum()


def test_the_probabilities_of_dropped_components_are_set_to_zero() -> None:
    mask = np.zeros((100, 120), bool)
    mask[50, 10:110] = True
    prob = np.zeros((2, 100, 120), np.float32)
    prob[0][mask] = 0.9
    prob[1, 10:20, 10:20] = 0.8
    out = without_straight_cracks(prob, 0.5, 60)
    assert out[0].max() == 0.0 and np.array_equal(out[1], prob[1])
    assert without_straight_cracks(prob, 0.5, 0) is prob
    assert without_straight_cracks(prob, 0.5, 101) is prob  # 100 px: shorter than asked


def test_clear_straight_copies_the_labels_without_the_straight_cracks(tmp_path: Path) -> None:
    """In a store: sharded output written block by block; digests and dropped counts per chunk."""
    from pipeline.io.store import block_digest

    mask = lines_and_arcs(1, (200, 260))
    labels = np.zeros((1, 200, 260), np.uint8)
    labels[0][mask] = 1
    labels[0, 150:180, 20:60] = 2  # paint loss is never touched
    root = zarr.open_group(str(tmp_path / "s.zarr"), mode="w")
    raw = root.create_array("raw", shape=labels.shape, chunks=(1, 32, 32), dtype=np.uint8)
    raw[:] = labels
    out = root.create_array("out", shape=labels.shape, chunks=(1, 32, 32), shards=(1, 128, 128), dtype=np.uint8)
    result = clear_straight(raw, out, 32, 60)
    expected = labels.copy()
    expected[0][straight_components(labels[0] == 1, 60)] = 0
    assert np.array_equal(out[:], expected) and (expected != labels).any()
    assert np.array_equal(raw[:], labels)  # the scratch input is read only: a rerun gives the same bytes
    assert sum(result.dropped.values()) == int((expected != labels).sum()) and result.components > 0
    assert result.digests["1-2"] == block_digest(expected[:, 32:64, 64:96])
    assert len(result.digests) == 7 * 9


def test_detect_says_how_many_straight_lines_it_left_unlabelled(capsys: pytest.CaptureFixture[str]) -> None:
    from flows.cli.common import print_detect

    result = {"store": "/s.zarr", "skipped": False, "seconds": 1.0, "notes": [],
              "summary": {"area_percent": {"craquelure": 0.5, "paint_loss": 0.1},
                          "straight_dropped": {"components": 3, "pixels": 812}}}
    print_detect(result)
    assert "3 long straight line(s) not labelled craquelure (812 px;" in capsys.readouterr().out
    result["summary"]["straight_dropped"] = {"components": 0, "pixels": 0}
    print_detect(result)
    assert "straight" not in capsys.readouterr().out
