"""Diffrax and SciPy solve the same Lotka–Volterra instances to the same accuracy."""

import jax
import numpy as np
import pytest

from tutorial_lib.jax_science import ode_benchmark as ob

TS = np.linspace(0.0, 15.0, 31)


@pytest.fixture(scope="module")
def problems():
    return ob.sample_problems(4, seed=3)


@pytest.fixture(scope="module")
def diffrax_solution(problems):
    with jax.enable_x64(True):
        return np.asarray(ob.solve_diffrax_batch(*problems, TS, rtol=1e-6, atol=1e-8))


def test_sample_problems_is_seeded_and_in_range():
    y0, params = ob.sample_problems(50, seed=1)
    again, _ = ob.sample_problems(50, seed=1)
    other, _ = ob.sample_problems(50, seed=2)
    assert y0.shape == (50, 2) and params.shape == (50, 4)
    np.testing.assert_array_equal(y0, again)
    assert not np.allclose(y0, other)
    assert y0.min() >= 1 and y0.max() <= 4
    assert params.min() >= 0.2 and params.max() <= 1.2


def test_diffrax_and_scipy_agree_with_the_reference(problems, diffrax_solution):
    scipy_solution = ob.solve_scipy_batch(*problems, TS, rtol=1e-6, atol=1e-8)
    reference = ob.solve_reference(*problems, TS)
    assert diffrax_solution.shape == scipy_solution.shape == (4, len(TS), 2)
    assert diffrax_solution.dtype == np.float64
    np.testing.assert_allclose(diffrax_solution[:, 0], problems[0])  # starts at y0
    for solution in (diffrax_solution, scipy_solution):
        relative = np.abs(solution - reference) / np.abs(reference)
        assert relative.max() < 2e-4, relative.max()
    np.testing.assert_allclose(diffrax_solution, scipy_solution, rtol=3e-4)


def test_tighter_tolerance_gives_a_more_accurate_answer(problems, diffrax_solution):
    reference = ob.solve_reference(*problems, TS)
    with jax.enable_x64(True):
        tight = np.asarray(ob.solve_diffrax_batch(*problems, TS, rtol=1e-9, atol=1e-11))
    loose_error = np.abs(diffrax_solution - reference).max()
    tight_error = np.abs(tight - reference).max()
    assert tight_error < loose_error / 100, (tight_error, loose_error)


def test_lotka_volterra_conserves_its_first_integral(problems, diffrax_solution):
    # V = delta x - gamma log x + beta y - alpha log y is constant along every orbit.
    _, params = problems
    alpha, beta, gamma, delta = (params[:, i, None] for i in range(4))
    x, y = diffrax_solution[..., 0], diffrax_solution[..., 1]
    invariant = delta * x - gamma * np.log(x) + beta * y - alpha * np.log(y)
    drift = np.abs(invariant - invariant[:, :1]).max()
    assert drift < 1e-4, drift


def test_bad_shapes_are_refused():
    y0, params = ob.sample_problems(3)
    with pytest.raises(ValueError, match="params of shape"):
        ob.solve_diffrax_batch(y0, params[:, :3], TS)
    with pytest.raises(ValueError, match="strictly increasing"):
        ob.solve_scipy_batch(y0, params, TS[::-1])
    with pytest.raises(ValueError, match="positive number"):
        ob.sample_problems(0)
