"""The JAX wave simulation against the NumPy reference, physics checks and input errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tutorial_lib.jax_science import wave

N, STEPS = 80, 400
DX = 10.0
DT = 0.5 * DX / 2500  # Courant number 0.5 for the fastest layer


@pytest.fixture(scope="module")
def problem():
    velocity = wave.layered_velocity(N, N)
    wavelet = wave.ricker(np.arange(STEPS) * DT, f0=25.0, t0=0.04)
    receivers = np.stack([np.full(N - 10, 3), np.arange(5, N - 5)], axis=1)
    return dict(
        velocity=velocity, dx=DX, dt=DT, wavelet=wavelet, source=(3, N // 2), receivers=receivers
    )


@pytest.mark.parametrize("unroll", [1, 2, 3])
def test_jax_matches_numpy(problem, unroll):
    p_np, traces_np = wave.simulate_numpy(**problem)
    p_jax, traces_jax = wave.simulate_jax(**problem, unroll=unroll)
    scale = np.abs(traces_np).max()
    assert scale > 1e-3  # the wave reached the receivers
    np.testing.assert_allclose(np.asarray(traces_jax), traces_np, rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(np.asarray(p_jax), p_np, rtol=0, atol=1e-5 * np.abs(p_np).max())
    assert traces_jax.shape == (STEPS, N - 10)


def test_first_arrival_travels_at_the_wave_speed():
    # Homogeneous medium: the direct wave's peak moves out at the wave speed c. The 2-D
    # Green's function has a tail that delays the peak a little behind t0 + r / c, equally at
    # both receivers, so the move-out between them is the sharp test.
    # 170 steps = 0.34 s: before the first reflection from the grid edges reaches a receiver.
    c, n, steps = 2000.0, 121, 170
    dt = 0.4 * DX / c
    velocity = np.full((n, n), c, np.float32)
    t0 = 0.04
    wavelet = wave.ricker(np.arange(steps) * dt, f0=25.0, t0=t0)
    receivers = np.array([[60, 60 + k] for k in (20, 40)])
    _, traces = wave.simulate_jax(
        velocity, dx=DX, dt=dt, wavelet=wavelet, source=(60, 60), receivers=receivers
    )
    traces = np.asarray(traces)
    t_peak = np.argmax(np.abs(traces), axis=0) * dt
    for j, k in enumerate((20, 40)):
        direct = t0 + k * DX / c
        assert direct <= t_peak[j] < 1.1 * direct, (t_peak[j], direct)
    moveout = t_peak[1] - t_peak[0]
    assert moveout == pytest.approx(20 * DX / c, rel=0.03)
    # energy at the farther receiver is smaller: cylindrical spreading
    assert np.abs(traces[:, 1]).max() < np.abs(traces[:, 0]).max()


def test_gradient_with_respect_to_velocity_matches_finite_differences(problem):
    small = dict(problem, wavelet=problem["wavelet"][:150])
    velocity = jnp.asarray(problem["velocity"])
    direction = jnp.zeros_like(velocity).at[20:30, 30:50].set(1.0)

    def misfit(c):
        return jnp.sum(
            wave.simulate_jax(c, **{k: v for k, v in small.items() if k != "velocity"})[1] ** 2
        )

    grad = jax.grad(misfit)(velocity)
    eps = 1.0  # m/s
    fd = (misfit(velocity + eps * direction) - misfit(velocity - eps * direction)) / (2 * eps)
    directional = jnp.vdot(grad, direction)
    assert float(jnp.abs(directional)) > 0
    np.testing.assert_allclose(float(directional), float(fd), rtol=2e-2)


def test_unstable_time_step_is_refused(problem):
    with pytest.raises(ValueError, match="Courant number"):
        wave.simulate_numpy(**dict(problem, dt=DX))  # c dt / dx >> 1/sqrt(2)
    with pytest.raises(ValueError, match="Courant number"):
        wave.simulate_jax(**dict(problem, dt=DX))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(source=(0, 5)), "strictly inside"),
        (dict(receivers=np.array([[3, N + 4]])), "strictly inside"),
        (dict(velocity=-np.ones((N, N), np.float32)), "positive"),
        (dict(velocity=np.ones(N, np.float32)), "2-D grid"),
        (dict(wavelet=np.ones((3, 3))), "wavelet must be 1-D"),
    ],
)
def test_bad_inputs_get_clear_errors(problem, change, message):
    with pytest.raises(ValueError, match=message):
        wave.simulate_jax(**dict(problem, **change))


def test_ricker_peaks_at_t0_with_unit_amplitude():
    t = np.linspace(0, 0.2, 2001)
    w = wave.ricker(t, f0=20.0, t0=0.1)
    assert t[np.argmax(w)] == pytest.approx(0.1, abs=1e-4)
    assert w.max() == pytest.approx(1.0, abs=1e-6)
    # zero crossings at t0 +- 1 / (pi f0 sqrt(2)) (Ricker 1953)
    half_width = 1 / (np.pi * 20.0 * np.sqrt(2))
    assert abs(wave.ricker(np.array([0.1 + half_width]), 20.0, 0.1)[0]) < 1e-6


def test_sponge_absorbs_edge_reflections():
    # Source and receiver at the centre of a homogeneous grid: after the direct wave has
    # passed, everything the receiver records was reflected by the grid edges.
    n, c = 161, 2000.0
    dt = 0.5 * DX / c
    steps = int(2.4 * (n // 2) * DX / c / dt)  # the edge echo returns after 2.0 (n/2) dx / c
    velocity = np.full((n, n), c, np.float32)
    setup = dict(
        dx=DX,
        dt=dt,
        wavelet=wave.ricker(np.arange(steps) * dt, 25.0, 0.04),
        source=(n // 2, n // 2),
        receivers=np.array([[n // 2, n // 2]]),
    )
    late = slice(int(0.6 * (n // 2) * DX / c / dt), None)
    _, reflecting = wave.simulate_jax(velocity, **setup)
    damping = wave.sponge(n, n, width=30, free_surface=False)
    _, absorbing = wave.simulate_jax(velocity, **setup, damping=damping)
    echo = np.abs(np.asarray(reflecting)[late]).max()
    assert echo > 0.05 * np.abs(np.asarray(reflecting)).max()  # the reflection is real
    assert np.abs(np.asarray(absorbing)[late]).max() < 0.1 * echo
    # and the damped NumPy run agrees with the damped JAX run
    _, absorbing_np = wave.simulate_numpy(velocity, **setup, damping=damping)
    np.testing.assert_allclose(np.asarray(absorbing), absorbing_np, atol=1e-5 * echo)


def test_sponge_shape_and_values():
    d = wave.sponge(100, 120, width=20)
    assert d.shape == (100, 120)
    assert d[0, 60] == 1.0  # free surface at the top is not damped
    assert d[50, 60] == 1.0  # interior untouched
    assert 0.5 < d[99, 0] < d[99, 10] < d[99, 19] < 1.0  # strongest at the edges
    with pytest.raises(ValueError, match="does not fit"):
        wave.sponge(30, 30, width=20)
