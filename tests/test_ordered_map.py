import threading
import time

import pytest

from pipeline.io.ordered import ordered_map


def test_results_come_in_the_items_order_whatever_finishes_first():
    def slow_first(i: int) -> int:
        time.sleep(0.02 if i % 3 == 0 else 0.0)
        return i * i

    assert list(ordered_map(slow_first, range(20), workers=4)) == [i * i for i in range(20)]


def test_no_more_than_ahead_items_are_started_before_being_consumed():
    started: list[int] = []
    lock = threading.Lock()

    def record(i: int) -> int:
        with lock:
            started.append(i)
        return i

    results = ordered_map(record, range(100), workers=2, ahead=3)
    assert next(results) == 0
    time.sleep(0.05)
    with lock:
        assert max(started) <= 3  # items 0-2 submitted, 0 yielded, then 3 submitted before the next yield
    assert list(results) == list(range(1, 100))


def test_an_error_is_raised_in_place_and_later_items_are_not_started():
    started: list[int] = []

    def fail_at_5(i: int) -> int:
        started.append(i)
        if i == 5:
            raise ValueError("tile 5 unreadable")
        time.sleep(0.01)
        return i

    got = []
    with pytest.raises(ValueError, match="tile 5"):
        for value in ordered_map(fail_at_5, range(1000), workers=2, ahead=4):
            got.append(value)
    assert got == [0, 1, 2, 3, 4]
    assert max(started) < 20


def test_a_process_pool_maps_in_order_too():
    from concurrent.futures import ProcessPoolExecutor

    assert list(ordered_map(abs, range(-6, 6), workers=2, ahead=3, pool=ProcessPoolExecutor)) == [
        abs(i) for i in range(-6, 6)]


def test_run_in_order_runs_every_item_and_raises_the_first_error():
    from pipeline.io.ordered import run_in_order

    seen: list[int] = []
    lock = threading.Lock()

    def keep(i: int) -> None:
        with lock:
            seen.append(i)

    run_in_order(keep, range(50), workers=3)
    assert sorted(seen) == list(range(50))

    def fail_at_7(i: int) -> None:
        if i == 7:
            raise OSError("preview 7 not written")

    with pytest.raises(OSError, match="preview 7"):
        run_in_order(fail_at_7, range(20), workers=2)
