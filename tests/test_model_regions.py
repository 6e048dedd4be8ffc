import numpy as np

from models.regions import regions_holding


def test_a_region_is_kept_whole_when_it_holds_a_hit_and_diagonal_neighbours_join_it():
    mask = np.zeros((6, 6), bool)
    mask[0, 0] = mask[1, 1] = mask[2, 2] = True  # one region through diagonal steps
    mask[4:6, 4:6] = True  # another, without a hit
    hits = np.zeros_like(mask)
    hits[2, 2] = True
    kept = regions_holding(mask, hits)
    assert kept[0, 0] and kept[1, 1] and kept[2, 2]
    assert not kept[4:6, 4:6].any()
    assert kept.sum() == 3


def test_a_hit_outside_the_mask_keeps_nothing_and_an_empty_mask_gives_an_empty_answer():
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = True
    hits = np.zeros_like(mask)
    hits[3, 3] = True
    assert not regions_holding(mask, hits).any()
    assert not regions_holding(np.zeros((4, 4), bool), hits).any()
