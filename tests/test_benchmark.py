import time

import pytest

from tutorial_lib.benchmark import best_time, best_times


def _sleeper(seconds):
    def fn():
        time.sleep(seconds)
        return seconds

    return fn


def test_best_times_times_each_function_separately():
    calls = []

    def counted():
        calls.append(1)

    times = best_times({"short": _sleeper(0.005), "long": _sleeper(0.03), "n": counted}, repeat=3)
    assert set(times) == {"short", "long", "n"}
    assert 0.005 <= times["short"] < times["long"]
    assert times["long"] >= 0.03
    assert len(calls) == 4  # one warm-up, three timed rounds


def test_best_time_is_at_least_the_work():
    assert best_time(_sleeper(0.01), repeat=2) >= 0.01


@pytest.mark.parametrize("bad", [0, -1])
def test_repeat_must_be_positive(bad):
    with pytest.raises(ValueError, match="repeat"):
        best_times({"a": _sleeper(0.0)}, repeat=bad)
    with pytest.raises(ValueError, match="repeat"):
        best_time(_sleeper(0.0), repeat=bad)


def test_nothing_to_time_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        best_times({})
