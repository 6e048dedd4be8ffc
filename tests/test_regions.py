import numpy as np

from lab.eval.regions import region_shares, region_summary


def test_each_loss_is_scored_on_its_own():
    truth = np.zeros((40, 40), bool)
    truth[2:12, 2:12] = True  # 100 px, found whole
    truth[20:24, 20:24] = True  # 16 px, found a quarter
    truth[30, 30] = True  # 1 px, left out of the summary by min_area
    pred = np.zeros_like(truth)
    pred[2:12, 2:12] = True
    pred[20:22, 20:22] = True
    rows = region_shares(pred, truth)
    assert sorted((r["area"], r["share"]) for r in rows) == [(1, 0.0), (16, 0.25), (100, 1.0)]
    summary = region_summary(rows, min_area=9)
    assert summary["regions"] == 2 and summary["under_half"] == 1 and summary["worst"] == 0.25
    assert summary["under_half_regions"][0]["box"] == [20, 20, 24, 24]


def test_no_truth_gives_no_regions():
    empty = np.zeros((8, 8), bool)
    assert region_shares(empty, empty) == []
    assert region_summary([], 9)["worst"] is None
