"""`evaluate adapt`'s simulated conservator: the informed stroke plan marks where the base is wrong (clean strokes
on its false alarms, on undamaged paint only; damage strokes on the damage it missed), falls back to the blind
rules, is deterministic from the seed; `--strokes` refuses a bad value in one line."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from lab.eval.adapt_eval import StrokePlan, simulate_strokes

SIZE = 200
INFORMED = StrokePlan(informed=True)


def disk(cy: int, cx: int, radius: int) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2


def box(y0: int, x0: int, side: int) -> np.ndarray:
    out = np.zeros((SIZE, SIZE), bool)
    out[y0 : y0 + side, x0 : x0 + side] = True
    return out


def scene() -> tuple[np.ndarray, np.ndarray]:
    """Two paint losses (labels 2), the base finding the first only and flagging two patches of intact paint far
    from both, a large one and a small one: the (H, W) truth and the (2, H, W) base detections."""
    found, missed = disk(40, 40, 12), disk(150, 150, 12)
    truth = np.where(found | missed, 2, 0).astype(np.uint8)
    flagged = np.zeros((2, SIZE, SIZE), bool)
    flagged[1] = found | box(30, 120, 24) | box(150, 30, 8)
    return truth, flagged


def test_informed_clean_strokes_go_on_the_largest_false_alarm_and_only_on_undamaged_paint() -> None:
    truth, flagged = scene()
    large, small = box(30, 120, 24), box(150, 30, 8)
    for seed in range(5):
        one = simulate_strokes(truth, np.random.default_rng(seed), StrokePlan(informed=True, clean=1), flagged)
        clean = one == 3
        assert (clean & large).sum() >= 20 and not (clean & small).any()
        marks = simulate_strokes(truth, np.random.default_rng(seed), INFORMED, flagged)
        clean = marks == 3
        assert (clean & large).any() and (clean & small).any()  # one stroke per false alarm, largest first
        assert (truth[clean] == 0).all()
        blind = simulate_strokes(truth, np.random.default_rng(seed), StrokePlan())
        assert not ((blind == 3) & flagged[1]).any()  # the blind conservator never marks them here


def test_informed_damage_strokes_go_on_the_missed_damage() -> None:
    truth, flagged = scene()
    missed = disk(150, 150, 12)
    for seed in range(5):
        one = simulate_strokes(truth, np.random.default_rng(seed), StrokePlan(informed=True, damage=1), flagged)
        assert (one == 2).sum() >= 10 and ((one == 2) <= missed).all()
        marks = simulate_strokes(truth, np.random.default_rng(seed), INFORMED, flagged)
        assert ((marks == 2) <= (truth == 2)).all() and ((marks == 2) & missed).any()


def test_informed_strokes_fall_back_to_the_blind_rules_when_the_base_is_right() -> None:
    truth, _ = scene()
    perfect = np.stack([np.zeros_like(truth, bool), truth == 2])  # no false alarm, nothing missed
    for seed in range(3):
        informed = simulate_strokes(truth, np.random.default_rng(seed), INFORMED, perfect)
        assert (informed == simulate_strokes(truth, np.random.default_rng(seed), StrokePlan())).all()


def test_informed_strokes_are_deterministic_from_the_seed_and_need_the_detections() -> None:
    truth, flagged = scene()
    first = simulate_strokes(truth, np.random.default_rng(7), INFORMED, flagged)
    assert (first == simulate_strokes(truth, np.random.default_rng(7), INFORMED, flagged)).all()
    assert (first != simulate_strokes(truth, np.random.default_rng(8), INFORMED, flagged)).any()
    with pytest.raises(ValueError, match="needs the base's detections"):
        simulate_strokes(truth, np.random.default_rng(7), INFORMED)


def test_evaluate_adapt_refuses_an_unknown_stroke_plan_in_one_line() -> None:
    from flows.cli import app

    result = CliRunner().invoke(app, ["evaluate", "adapt", "--sets", "held-out", "--strokes", "peeking"])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == ["error: --strokes must be blind or informed, got 'peeking'"]


def test_rounds_share_out_the_strokes_and_need_informed_strokes() -> None:
    from flows.cli import app

    first, second = StrokePlan(informed=True, rounds=2).parts()
    assert (first.damage, second.damage, first.clean, second.clean) == (3, 3, 2, 2)
    assert first.rounds == second.rounds == 1 and first.informed and second.informed
    thirds = StrokePlan(informed=True, rounds=3).parts()
    assert [p.damage for p in thirds] == [2, 2, 2] and [p.clean for p in thirds] == [1, 1, 2]
    with pytest.raises(ValueError, match="rounds must be 1, or 2 or 3 with informed strokes"):
        StrokePlan(rounds=2)
    result = CliRunner().invoke(app, ["evaluate", "adapt", "--sets", "held-out", "--rounds", "2"])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == ["error: --rounds: rounds must be 1, or 2 or 3 with informed strokes, got 2"]


def test_the_second_round_marks_what_the_first_adapted_detector_flags_wrongly() -> None:
    truth, flagged = scene()
    first, second = StrokePlan(informed=True, rounds=2).parts()
    marks = simulate_strokes(truth, np.random.default_rng(7), first, flagged)
    adapted = flagged.copy()
    adapted[1] |= box(100, 20, 20)  # the adapted detector adds a false alarm of its own
    more = simulate_strokes(truth, np.random.default_rng(7), second, adapted)
    assert (more[box(100, 20, 20)] == 3).any() and not (marks[box(100, 20, 20)] == 3).any()
