import time

import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

from tutorial_lib.benchmark import best_time, best_times, xla_op_seconds


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


def test_xla_op_seconds_profiles_the_compiled_program():
    a = jr.normal(jr.key(0), (768, 768))
    fn = jax.jit(lambda a: jnp.tanh(a @ a) + 1.0)
    ops = xla_op_seconds(lambda: fn(a), repeat=2)
    wall = best_time(lambda: fn(a), repeat=3)
    assert ops and all(v >= 0 for v in ops.values())
    assert list(ops.values()) == sorted(ops.values(), reverse=True)
    assert not any(name[-1].isdigit() for name in ops)  # numbered instances merged by kind
    # the matrix product is most of the work, and the profile accounts for most of the time
    assert any(k in next(iter(ops)) for k in ("ynn", "dot", "gemm", "matmul", "custom")), ops
    assert 0.3 * wall < sum(ops.values()) < 10 * wall, (ops, wall)
    with pytest.raises(ValueError, match="repeat"):
        xla_op_seconds(lambda: fn(a), repeat=0)
