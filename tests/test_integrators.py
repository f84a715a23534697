"""RK4 with scan: accuracy against exact and SciPy solutions, order 4, pytrees, input errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from tutorial_lib.jax_science import integrators as it

LV_ARGS = np.array([1.1, 0.4, 0.1, 0.4])  # alpha, beta, delta, gamma


def decay(t, y, k):
    return -k * y


def test_exponential_decay_matches_exact_solution():
    ts, ys = it.rk4_scan(decay, jnp.array([1.0, 2.0]), 0.0, 0.05, 40, 0.7)
    assert ts.shape == (41,) and ys.shape == (41, 2)
    assert ts[-1] == pytest.approx(2.0)
    exact = np.exp(-0.7 * np.asarray(ts))[:, None] * np.array([1.0, 2.0])
    np.testing.assert_allclose(np.asarray(ys), exact, rtol=1e-5)


def test_global_error_is_fourth_order():
    # Non-autonomous test problem y' = cos(t) y with exact solution exp(sin t), in float64.
    with jax.enable_x64(True):
        errors = []
        for n in (40, 80, 160):
            _, ys = it.rk4_scan(lambda t, y, a: jnp.cos(t) * y, jnp.float64(1.0), 0.0, 4.0 / n, n)
            errors.append(abs(float(ys[-1]) - np.exp(np.sin(4.0))))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    np.testing.assert_allclose(orders, 4.0, atol=0.1)


def test_lotka_volterra_matches_scipy_and_conserves_invariant():
    y0 = np.array([10.0, 5.0])
    with jax.enable_x64(True):
        ts, ys = it.rk4_scan(it.lotka_volterra, jnp.asarray(y0), 0.0, 0.01, 3000, LV_ARGS)
        invariant = np.asarray(it.lotka_volterra_invariant(ys, LV_ARGS))
        ts, ys = np.asarray(ts), np.asarray(ys)
    ref = solve_ivp(
        lambda t, y: np.asarray(it.lotka_volterra(t, y, LV_ARGS)),
        (0.0, 30.0),
        y0,
        t_eval=ts,
        rtol=1e-11,
        atol=1e-11,
    )
    np.testing.assert_allclose(ys, ref.y.T, rtol=1e-6)
    assert np.ptp(invariant) < 1e-8 * abs(invariant[0])
    # the orbit really oscillates: several predator peaks in 30 time units
    assert ys[:, 0].max() > 3 * ys[:, 0].min()


def test_unrolled_equals_scan_and_jit_agrees():
    y0 = jnp.array([10.0, 5.0])
    ts_s, ys_s = it.rk4_scan(it.lotka_volterra, y0, 0.0, 0.1, 12, LV_ARGS, unroll=3)
    ts_u, ys_u = it.rk4_unrolled(it.lotka_volterra, y0, 0.0, 0.1, 12, LV_ARGS)
    np.testing.assert_allclose(np.asarray(ts_u), np.asarray(ts_s))
    np.testing.assert_allclose(np.asarray(ys_u), np.asarray(ys_s), rtol=1e-5)
    jitted = jax.jit(it.rk4_unrolled, static_argnums=(0, 4))
    np.testing.assert_allclose(
        np.asarray(jitted(it.lotka_volterra, y0, 0.0, 0.1, 12, LV_ARGS)[1]),
        np.asarray(ys_s),
        rtol=1e-5,
    )


def test_pytree_state_harmonic_oscillator():
    def oscillator(t, state, omega):
        return {"x": state["v"], "v": -(omega**2) * state["x"]}

    state0 = {"x": jnp.float32(1.0), "v": jnp.float32(0.0)}
    ts, states = it.rk4_scan(oscillator, state0, 0.0, 0.01, 200, 3.0)
    assert states["x"].shape == (201,)
    np.testing.assert_allclose(np.asarray(states["x"]), np.cos(3.0 * np.asarray(ts)), atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(states["v"]), -3.0 * np.sin(3.0 * np.asarray(ts)), atol=1e-4
    )


def test_differentiable_and_vmappable_in_parameters():
    def final_prey(args):
        return it.rk4_scan(it.lotka_volterra, jnp.array([10.0, 5.0]), 0.0, 0.05, 100, args)[1][
            -1, 0
        ]

    args = jnp.asarray(LV_ARGS)
    grad = jax.grad(final_prey)(args)
    eps = 1e-3
    fd = (final_prey(args.at[0].add(eps)) - final_prey(args.at[0].add(-eps))) / (2 * eps)
    assert float(grad[0]) == pytest.approx(float(fd), rel=2e-2)
    batch = jnp.stack([args, args.at[0].set(1.0)])
    finals = jax.vmap(final_prey)(batch)
    assert finals.shape == (2,)
    assert float(finals[0]) == pytest.approx(float(final_prey(args)), rel=1e-5)


@pytest.mark.parametrize("n_steps", [0, -3, 2.5, True, np.int64(4)])
def test_bad_step_count_raises(n_steps):
    with pytest.raises(ValueError, match="n_steps must be a positive Python int"):
        it.rk4_scan(decay, jnp.ones(2), 0.0, 0.1, n_steps, 1.0)


def test_bad_dt_and_unroll_raise():
    with pytest.raises(ValueError, match="dt must be a non-zero"):
        it.rk4_unrolled(decay, jnp.ones(2), 0.0, 0.0, 3, 1.0)
    with pytest.raises(ValueError, match="unroll must be a positive int"):
        it.rk4_scan(decay, jnp.ones(2), 0.0, 0.1, 3, 1.0, unroll=0)
