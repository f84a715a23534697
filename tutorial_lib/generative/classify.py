"""Reading labels off representations: PCA, logistic regression, ridge regression, intervals.

The latent-space chapter compares representations of the same galaxies (VAE latents, PCA
coefficients, morphology summaries) under one recipe, so that only the representation differs:

- features standardised with the training set's mean and standard deviation;
- `fit_logistic`: (multinomial) logistic regression with an L2 penalty whose strength is chosen
  by `cross_validate_l2` on the training set only (stratified folds);
- accuracy on held-out galaxies with a Wilson score interval (`wilson_interval`), and
  `paired_bootstrap` for the difference between two classifiers on the same galaxies.
"""

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import scipy.optimize
from jaxtyping import ArrayLike, Float, Int

__all__ = [
    "L2_GRID",
    "PCA",
    "LogisticModel",
    "RidgeModel",
    "accuracy",
    "cross_validate_l2",
    "fit_logistic",
    "fit_ridge",
    "paired_bootstrap",
    "r_squared",
    "stratified_folds",
    "wilson_interval",
]

L2_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


def _features(x, name="features") -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"{name} must be a non-empty (n, d) array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contain NaN or inf; drop those rows first")
    return x


def _labels(y, n) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer) or y.min(initial=0) < 0:
        raise ValueError(f"labels must be {n} non-negative integers, got shape {y.shape}")
    return y.astype(np.int64)


def _principal_directions(
    x: Float[np.ndarray, "n d"], k: int
) -> tuple[Float[np.ndarray, " r"], Float[np.ndarray, "k d"]]:
    """All `r = min(n, d)` squared singular values of centred data `x` (descending) and its
    first `k` right singular vectors, as `np.linalg.svd(x, full_matrices=False)` gives them,
    but from the eigendecomposition of the smaller of `x x^T` and `x^T x` (several times faster
    for the 1,260 x 3,072 galaxy matrix; SVD itself is the fallback when a requested direction
    has no variance). Signs follow one convention: each direction's largest entry is positive."""
    n, d = x.shape
    if n <= d:
        s2, u = np.linalg.eigh(x @ x.T)
        s2, u = np.clip(s2[::-1], 0.0, None), u[:, ::-1]
        if s2[k - 1] > 1e-10 * s2[0]:
            vt = u[:, :k].T @ x / np.sqrt(s2[:k])[:, None]
        else:  # a requested direction has (numerically) no variance: let SVD pick one
            s, vt = np.linalg.svd(x, full_matrices=False)[1:]
            s2, vt = s**2, vt[:k]
    else:
        s2, v = np.linalg.eigh(x.T @ x)
        s2, vt = np.clip(s2[::-1], 0.0, None), v[:, ::-1][:, :k].T
    big = np.argmax(np.abs(vt), axis=1)
    return s2, vt * np.where(vt[np.arange(k), big] < 0, -1.0, 1.0)[:, None]


class PCA:
    """Principal components of training data `(n, ...)` (flattened): `transform` gives the
    coordinates of new data along the first `components` directions."""

    def __init__(self, train: Float[ArrayLike, "n ..."], components: int):
        x = np.asarray(train, np.float64).reshape(len(train), -1)
        if not 1 <= components <= min(x.shape):
            raise ValueError(f"components must lie in [1, {min(x.shape)}], got {components}")
        self.mean = x.mean(0)
        s2, vt = _principal_directions(x - self.mean, components)
        self.components = vt  # (k, D), orthonormal rows
        self.variances = s2 / len(x)  # of the data along every principal direction
        self.explained_variance_ratio = self.variances[:components] / np.sum(self.variances)

    def transform(self, x: Float[ArrayLike, "m ..."]) -> Float[np.ndarray, "m k"]:
        x = np.asarray(x, np.float64).reshape(len(x), -1)
        return (x - self.mean) @ self.components.T


class LogisticModel(NamedTuple):
    """A fitted (multinomial) logistic regression on standardised features."""

    mean: np.ndarray
    std: np.ndarray
    weights: np.ndarray  # (d, classes)
    bias: np.ndarray  # (classes,)
    l2: float

    def logits(self, x: Float[ArrayLike, "n d"]) -> Float[np.ndarray, "n k"]:
        return ((_features(x) - self.mean) / self.std) @ self.weights + self.bias

    def predict(self, x: Float[ArrayLike, "n d"]) -> Int[np.ndarray, " n"]:
        return np.argmax(self.logits(x), axis=1)

    def probabilities(self, x: Float[ArrayLike, "n d"]) -> Float[np.ndarray, "n k"]:
        z = self.logits(x)
        z = np.exp(z - z.max(1, keepdims=True))
        return z / z.sum(1, keepdims=True)


def fit_logistic(
    x: Float[ArrayLike, "n d"], y: Int[ArrayLike, " n"], *, l2: float = 1e-2
) -> LogisticModel:
    """Multinomial logistic regression (two classes included), mean cross-entropy plus
    `l2 * |W|^2 / 2` on standardised features; L-BFGS in float64, deterministic."""
    x = _features(x)
    y = _labels(y, len(x))
    if not l2 > 0:
        raise ValueError(f"l2 must be > 0, got {l2}")
    k = int(y.max()) + 1
    if k < 2:
        raise ValueError("the labels hold a single class")
    mean, std = x.mean(0), x.std(0) + 1e-12
    z = (x - mean) / std
    n, d = z.shape
    onehot = np.eye(k)[y]

    def objective(theta):
        w, b = theta[: d * k].reshape(d, k), theta[d * k :]
        logits = z @ w + b
        logits -= logits.max(1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        loss = -np.sum(onehot * log_p) / n + 0.5 * l2 * np.sum(w**2)
        g = (np.exp(log_p) - onehot) / n
        return loss, np.concatenate([(z.T @ g + l2 * w).ravel(), g.sum(0)])

    res = scipy.optimize.minimize(
        objective, np.zeros(d * k + k), jac=True, method="L-BFGS-B", options={"maxiter": 2000}
    )
    return LogisticModel(mean, std, res.x[: d * k].reshape(d, k), res.x[d * k :], l2)


def stratified_folds(y: Int[ArrayLike, " n"], folds: int, seed: int = 0) -> list[np.ndarray]:
    """`folds` disjoint index sets covering `range(n)`, each with every class's share."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    out = [[] for _ in range(folds)]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        for f in range(folds):
            out[f].extend(idx[f::folds])
    return [np.sort(np.array(f, dtype=np.int64)) for f in out]


def cross_validate_l2(
    x: Float[ArrayLike, "n d"],
    y: Int[ArrayLike, " n"],
    *,
    grid: Sequence[float] = L2_GRID,
    folds: int = 5,
    seed: int = 0,
) -> LogisticModel:
    """The L2 strength of `grid` with the best `folds`-fold cross-validated accuracy (ties: the
    stronger penalty), refitted on all of `(x, y)`. Uses the training data only."""
    x, y = _features(x), _labels(y, len(np.asarray(x)))
    parts = stratified_folds(y, folds, seed)
    scores = {}
    for l2 in grid:
        hits = 0
        for test in parts:
            train = np.setdiff1d(np.arange(len(y)), test)
            hits += np.sum(fit_logistic(x[train], y[train], l2=l2).predict(x[test]) == y[test])
        scores[l2] = hits / len(y)
    best = max(sorted(grid, reverse=True), key=lambda l2: scores[l2])
    return fit_logistic(x, y, l2=best)


def accuracy(model: LogisticModel, x: Float[ArrayLike, "n d"], y: Int[ArrayLike, " n"]) -> float:
    return float(np.mean(model.predict(x) == np.asarray(y)))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for a proportion (Wilson 1927): better than `p +- 1.96 se` for
    the ~100 held-out galaxies of a page, and never outside [0, 1]."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes} of {n}")
    from scipy.stats import norm

    z = norm.ppf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def paired_bootstrap(
    correct_a: ArrayLike, correct_b: ArrayLike, *, n_boot: int = 10_000, seed: int = 0
) -> tuple[float, float, float]:
    """Difference of the means `a - b` of two per-item scores on the same test items (0/1
    correctness of two classifiers, or two models' bits/dim), with a 95 % percentile bootstrap
    interval (items resampled together): `(difference, low, high)`."""
    a, b = np.asarray(correct_a, float), np.asarray(correct_b, float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError("give two equal-length 1-D vectors of per-item scores")
    idx = np.random.default_rng(seed).integers(0, len(a), (n_boot, len(a)))
    diffs = a[idx].mean(1) - b[idx].mean(1)
    return float(a.mean() - b.mean()), *map(float, np.percentile(diffs, [2.5, 97.5]))


class RidgeModel(NamedTuple):
    """A fitted ridge regression of a scalar on standardised features."""

    mean: np.ndarray
    std: np.ndarray
    weights: np.ndarray  # (d,)
    bias: float
    l2: float

    def predict(self, x: Float[ArrayLike, "n d"]) -> Float[np.ndarray, " n"]:
        return ((_features(x) - self.mean) / self.std) @ self.weights + self.bias


def fit_ridge(
    x: Float[ArrayLike, "n d"], t: Float[ArrayLike, " n"], *, l2: float = 1.0
) -> RidgeModel:
    """Ridge regression of a scalar `t` on standardised features (penalty `l2 |w|^2`)."""
    x = _features(x)
    t = np.asarray(t, np.float64)
    if t.shape != (len(x),) or not np.all(np.isfinite(t)):
        raise ValueError(f"targets must be {len(x)} finite numbers, got shape {t.shape}")
    mean, std = x.mean(0), x.std(0) + 1e-12
    z = (x - mean) / std
    w = np.linalg.solve(z.T @ z + l2 * np.eye(z.shape[1]), z.T @ (t - t.mean()))
    return RidgeModel(mean, std, w, float(t.mean()), l2)


def r_squared(prediction: ArrayLike, truth: ArrayLike) -> float:
    """`1 - SS_res / SS_tot` on the given (held-out) values."""
    p, t = np.asarray(prediction, float), np.asarray(truth, float)
    return float(1.0 - np.sum((t - p) ** 2) / np.sum((t - t.mean()) ** 2))
