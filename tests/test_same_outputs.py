"""Comparisons of a run's outputs with a reference run's (lab.eval.same_outputs; benchmarks/bench_gpu.py)."""

import numpy as np

from lab.eval.same_outputs import class_f1, compare_detection, compare_restored


def test_a_detection_equal_to_the_reference_scores_no_difference() -> None:
    rng = np.random.default_rng(0)
    prob = rng.integers(0, 256, (2, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 3, (32, 32), dtype=np.uint8)
    got = compare_detection(prob, labels, prob.copy(), labels.copy())
    assert got["probability_max_levels"] == 0 and got["label_share_differing"] == 0.0
    assert got["craquelure_f1_vs_reference"] == got["paint_loss_f1_vs_reference"] == 1.0


def test_a_changed_probability_and_label_are_counted() -> None:
    prob = np.full((2, 10, 10), 100, np.uint8)
    labels = np.zeros((10, 10), np.uint8)
    labels[:2] = 1  # 20 crack pixels
    other_prob, other_labels = prob.copy(), labels.copy()
    other_prob[0, 5, 5] = 110  # 10 levels off at one pixel of 200
    other_labels[0, :5] = 0  # 5 of the 20 crack pixels lost
    got = compare_detection(prob, labels, other_prob, other_labels)
    assert got["probability_max_levels"] == 10
    assert got["probability_share_over_2_levels"] == 1 / 200
    assert got["label_share_differing"] == 5 / 100
    assert got["craquelure_f1_vs_reference"] == class_f1(labels, other_labels, 1) == 2 * 15 / 35


def test_restored_difference_is_taken_over_either_fill() -> None:
    scan = np.full((3, 8, 8), 50, np.uint8)
    ref = scan.copy()
    ref[:, 2:4, 2:4] = 80  # the CPU's fill
    same = compare_restored(scan, ref, ref.copy())
    assert same["filled_pixels"] == 4 and same["restored_max_levels"] == 0 and same["changed_by_one_only"] == 0
    off = ref.copy()
    off[1, 2, 2] = 83  # a fill 3 levels off in one channel
    got = compare_restored(scan, ref, off)
    assert got["restored_max_levels"] == 3 and got["restored_share_over_2_levels"] == 1 / 4
    leak = ref.copy()
    leak[0, 7, 7] = 51  # one pixel outside the CPU's fill changed
    got = compare_restored(scan, ref, leak)
    assert got["filled_pixels"] == 5 and got["changed_by_one_only"] == 1 and got["restored_max_levels"] == 1
