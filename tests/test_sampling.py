"""Langevin and annealed Langevin dynamics: API contract, stationary laws, NumPy agreement."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from tutorial_lib.data.toy import GaussianMixture
from tutorial_lib.jax_science import sampling

MU = jnp.array([1.0, -2.0])
S = 1.5  # standard deviation of the Gaussian target N(MU, S^2 I)


def gaussian_score(x):
    return (MU - x) / S**2


def noisy_gaussian_score(x, sigma):
    return (MU - x) / (S**2 + sigma**2)


@pytest.fixture(scope="module")
def mixture():
    # Song & Ermon (2019), Fig. 3: weights 1/5 and 4/5, well separated, unit covariances.
    return GaussianMixture.isotropic([0.2, 0.8], [[-5.0, -5.0], [5.0, 5.0]], 1.0)


def test_shapes_dtype_and_determinism():
    x0 = jnp.zeros((7, 2))
    x = sampling.langevin(gaussian_score, x0, jr.key(0), 0.1, 5)
    assert x.shape == (7, 2) and x.dtype == jnp.float32
    np.testing.assert_array_equal(x, sampling.langevin(gaussian_score, x0, jr.key(0), 0.1, 5))
    assert not np.array_equal(x, sampling.langevin(gaussian_score, x0, jr.key(1), 0.1, 5))
    traj = sampling.langevin(gaussian_score, x0, jr.key(0), 0.1, 5, return_trajectory=True)
    assert traj.shape == (5, 7, 2)
    np.testing.assert_array_equal(traj[-1], x)

    sigmas = jnp.array([3.0, 1.0, 0.3])
    y = sampling.annealed_langevin(noisy_gaussian_score, x0, jr.key(0), sigmas, 0.01, 4)
    assert y.shape == (7, 2)
    levels = sampling.annealed_langevin(
        noisy_gaussian_score, x0, jr.key(0), sigmas, 0.01, 4, return_trajectory=True
    )
    assert levels.shape == (3, 7, 2)
    np.testing.assert_array_equal(levels[-1], y)
    # Integer starting points are promoted to float.
    assert sampling.langevin(gaussian_score, np.zeros((3, 2), int), jr.key(0), 0.1, 2).dtype == (
        jnp.float32
    )


def test_one_step_is_the_song_ermon_update():
    x0 = jr.normal(jr.key(5), (4, 2))
    eps = 0.3
    z = jr.normal(jr.split(jr.key(9), 1)[0], x0.shape)  # the documented noise convention
    expected = x0 + 0.5 * eps * jax.vmap(gaussian_score)(x0) + jnp.sqrt(eps) * z
    got = sampling.langevin(gaussian_score, x0, jr.key(9), eps, 1)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_jit_compatible():
    x0 = jnp.zeros((5, 2))
    eager = sampling.langevin(gaussian_score, x0, jr.key(3), 0.2, 10)
    jitted = jax.jit(sampling.langevin, static_argnums=(0, 4))
    np.testing.assert_allclose(jitted(gaussian_score, x0, jr.key(3), 0.2, 10), eager, atol=1e-6)
    # Traced step size and sigmas are allowed (no value checks then).
    annealed = jax.jit(sampling.annealed_langevin, static_argnums=(0, 5))
    sigmas = jnp.array([2.0, 1.0])
    np.testing.assert_allclose(
        annealed(noisy_gaussian_score, x0, jr.key(3), sigmas, 0.1, 3),
        sampling.annealed_langevin(noisy_gaussian_score, x0, jr.key(3), sigmas, 0.1, 3),
        atol=1e-6,
    )
    # A bound method of an Equinox module (arrays inside) works under eqx.filter_jit.
    gmm = GaussianMixture.isotropic([1.0], [[0.0, 0.0]], 1.0)
    out = eqx.filter_jit(sampling.langevin)(gmm.score, x0, jr.key(0), 0.1, 3)
    assert out.shape == (5, 2) and bool(jnp.all(jnp.isfinite(out)))


@pytest.mark.parametrize("eps", [0.02, 1.0])
def test_plain_langevin_stationary_variance(eps):
    # x <- (1 - eps / (2 S^2)) x + sqrt(eps) z is an AR(1) chain with stationary variance
    # S^2 / (1 - eps / (4 S^2)): close to S^2 for small eps, visibly inflated for eps = 1.
    n_steps = int(8 * 2 * S**2 / eps)  # 8 relaxation times
    x = sampling.langevin(gaussian_score, jnp.zeros((4000, 2)), jr.key(1), eps, n_steps)
    var = float(jnp.var(x - MU))
    expected = S**2 / (1 - eps / (4 * S**2))
    assert abs(var - expected) < 0.05 * expected, (var, expected)
    np.testing.assert_allclose(jnp.mean(x, axis=0), MU, atol=0.1)
    if eps == 1.0:
        assert var > 1.08 * S**2  # the bias of the unadjusted scheme is real


def test_annealed_step_schedule_and_gaussian_target():
    # Large noise first, small last: alpha_i = eps * sigma_i^2 / sigma_L^2. On a Gaussian target
    # the final law is N(MU, S^2 + sigma_L^2) up to the O(alpha) discretisation bias.
    sigmas = sampling.geometric_sigmas(10.0, 0.1, 6)
    assert sigmas.shape == (6,) and float(sigmas[0]) == pytest.approx(10.0)
    eps = 0.001
    x0 = 20.0 * jr.uniform(jr.key(2), (4000, 2), minval=-1.0, maxval=1.0)
    x = sampling.annealed_langevin(noisy_gaussian_score, x0, jr.key(4), sigmas, eps, 400)
    np.testing.assert_allclose(jnp.mean(x, axis=0), MU, atol=0.1)
    # Last level: step alpha_L = eps, target variance v = S^2 + sigma_L^2.
    v = S**2 + 0.1**2
    expected = v / (1 - eps / (4 * v))
    assert abs(float(jnp.var(x - MU)) - expected) < 0.06 * expected


def test_annealed_uses_the_scaled_step_per_level():
    # With a score that is zero the update is pure noise: variance grows by alpha_i per step,
    # so the total added variance is n_steps_each * sum_i alpha_i.
    zero = lambda x, sigma: jnp.zeros_like(x)  # noqa: E731
    sigmas = jnp.array([4.0, 2.0, 1.0])
    eps, t = 0.01, 5
    x = sampling.annealed_langevin(zero, jnp.zeros((20000, 1)), jr.key(0), sigmas, eps, t)
    expected = t * eps * float(jnp.sum(sigmas**2)) / 1.0**2  # 5 * 0.01 * 21
    assert abs(float(jnp.var(x)) - expected) < 0.04 * expected


def test_jax_and_numpy_agree_exactly_with_the_same_noise(mixture):
    x0 = jr.uniform(jr.key(0), (50, 2), minval=-8, maxval=8)
    np_score = sampling.mixture_score_numpy(mixture)
    # The NumPy score of a batch matches the JAX score of a point.
    np.testing.assert_allclose(
        np_score(np.asarray(x0)), jax.jit(jax.vmap(mixture.score))(x0), rtol=1e-4, atol=1e-4
    )
    key, n_steps = jr.key(7), 40
    draw = jax.jit(jax.vmap(lambda k: jr.normal(k, x0.shape)))  # the documented convention
    noise = draw(jr.split(key, n_steps))
    ours = sampling.langevin(mixture.score, x0, key, 0.1, n_steps)
    ref = sampling.langevin_numpy(np_score, np.asarray(x0), None, 0.1, n_steps, noise=noise)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-3)

    sigmas = jnp.array([5.0, 2.0, 1.0])
    noise = draw(jr.split(key, 3 * 10))
    ours = sampling.annealed_langevin(
        lambda x, s: mixture.noised(s).score(x), x0, key, sigmas, 0.05, 10
    )
    ref = sampling.annealed_langevin_numpy(
        np_score, np.asarray(x0), None, np.asarray(sigmas), 0.05, 10, noise=noise
    )
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-3)


def test_numpy_reference_with_its_own_generator_has_the_right_law():
    score = lambda x: (np.asarray(MU) - x) / S**2  # noqa: E731
    x = sampling.langevin_numpy(score, np.zeros((4000, 2), np.float32), 0, 0.05, 1000)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x.mean(axis=0), MU, atol=0.1)
    assert abs((x - np.asarray(MU)).var() - S**2 / (1 - 0.05 / (4 * S**2))) < 0.1


def test_annealing_recovers_mixture_weights_plain_langevin_does_not(mixture):
    # Song & Ermon (2019), Fig. 3. Uniform starts split about evenly between the two basins.
    x0 = jr.uniform(jr.key(0), (1000, 2), minval=-8.0, maxval=8.0)
    start = sampling.nearest_mode_fractions(x0, mixture.means)[0]
    plain = sampling.langevin(mixture.score, x0, jr.key(1), 0.1, 500)
    plain_small = sampling.nearest_mode_fractions(plain, mixture.means)[0]
    assert 0.4 < start < 0.6
    assert abs(plain_small - start) < 0.03  # no chain crossed between the modes

    sigmas = sampling.geometric_sigmas(20.0, 0.5, 10)
    noisy_score = lambda x, s: mixture.noised(s).score(x)  # noqa: E731
    annealed = sampling.annealed_langevin(noisy_score, x0, jr.key(2), sigmas, 0.05, 100)
    annealed_small = sampling.nearest_mode_fractions(annealed, mixture.means)[0]
    assert abs(annealed_small - 0.2) < 0.05, annealed_small
    # And the samples sit on the modes: the within-mode spread is about 1.
    big = np.asarray(annealed)[np.asarray(annealed).sum(axis=1) > 0]
    np.testing.assert_allclose(big.std(axis=0), 1.0, atol=0.2)


def test_nearest_mode_fractions():
    means = np.array([[0.0, 0.0], [10.0, 0.0]])
    x = np.array([[1.0, 0.0], [9.0, 1.0], [11.0, 0.0], [4.0, 0.0]])
    np.testing.assert_allclose(sampling.nearest_mode_fractions(x, means), [0.5, 0.5])
    with pytest.raises(ValueError, match="same d"):
        sampling.nearest_mode_fractions(x, means[:, :1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x0=jnp.zeros(2)), "2-D array"),
        (dict(step_size=0.0), "positive"),
        (dict(step_size=-1.0), "positive"),
        (dict(step_size=float("nan")), "positive"),
        (dict(n_steps=0), "at least 1"),
        (dict(n_steps=2.5), "Python int"),
        (dict(score=lambda x: x.sum()), "same shape"),
    ],
)
def test_langevin_errors(kwargs, match):
    args = dict(score=gaussian_score, x0=jnp.zeros((3, 2)), key=jr.key(0), step_size=0.1)
    args.update(n_steps=5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        sampling.langevin(**args)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x0=jnp.zeros((2, 3, 2))), "2-D array"),
        (dict(sigmas=jnp.array([1.0, 2.0])), "strictly decreasing"),
        (dict(sigmas=jnp.array([1.0, 1.0])), "strictly decreasing"),
        (dict(sigmas=jnp.array([1.0, -0.5])), "positive"),
        (dict(sigmas=jnp.zeros((2, 2)) + 1), "1-D"),
        (dict(sigmas=jnp.array([])), "non-empty"),
        (dict(step_size=0.0), "positive"),
        (dict(n_steps_each=0), "at least 1"),
    ],
)
def test_annealed_errors(kwargs, match):
    args = dict(
        score=noisy_gaussian_score,
        x0=jnp.zeros((3, 2)),
        key=jr.key(0),
        sigmas=jnp.array([2.0, 1.0]),
        step_size=0.1,
        n_steps_each=5,
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        sampling.annealed_langevin(**args)


def test_numpy_errors():
    score = lambda x: -x  # noqa: E731
    with pytest.raises(ValueError, match="noise must have shape"):
        sampling.langevin_numpy(score, np.zeros((3, 2)), None, 0.1, 4, noise=np.zeros((3, 3, 2)))
    with pytest.raises(ValueError, match="2-D array"):
        sampling.langevin_numpy(score, np.zeros(3), 0, 0.1, 4)
    with pytest.raises(ValueError, match="strictly decreasing"):
        sampling.annealed_langevin_numpy(
            lambda x, s: -x, np.zeros((3, 2)), 0, np.array([1.0, 2.0]), 0.1, 4
        )
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        sampling.geometric_sigmas(1.0, 2.0, 5)
