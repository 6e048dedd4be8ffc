import numpy as np

from lab.eval.regions import far_marks, far_summary, region_shares, region_summary


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


def test_marks_far_from_damage_are_counted_and_a_rim_is_not():
    truth = np.zeros((40, 40), bool)
    truth[10:20, 10:20] = True
    pred = truth.copy()
    pred[8:22, 8:22] = True  # a 2-px rim: beside the damage, not far from it
    pred[30:33, 30:35] = True  # a 15-px mark on intact paint
    pred[2, 36] = True  # a 1-px one
    far, flagged, rows = far_marks(pred, truth, 3.0)
    assert flagged == 16 and far < 40 * 40 - 100
    summary = far_summary(far, flagged, [{"image": "a", **r} for r in rows], 3.0)
    assert summary["marks"] == 2 and summary["largest"][0]["area"] == 15
    assert summary["largest"][0]["box"] == [30, 30, 33, 35] and summary["share"] == flagged / far


def test_with_no_damage_every_flag_is_far():
    pred = np.zeros((8, 8), bool)
    pred[1:3, 1:3] = True
    assert far_marks(pred, np.zeros_like(pred), 3.0)[:2] == (64, 4)
