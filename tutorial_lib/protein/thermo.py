"""Thermostability from sequence: an ordinal logistic head, a composition baseline, metrics.

ThermoProt labels each protein by its organism's growth-temperature class, an *ordered*
variable: psychrophilic < mesophilic < thermophilic < hyperthermophilic (0..3). The head is
the proportional-odds (cumulative logit) model of McCullagh (1980): one linear score `s` of
the standardised features and `K - 1` increasing cut-points `c_k`, with

    P(class > k) = sigmoid(s - c_k),    k = 0 .. K-2.

One number therefore ranks proteins from cold- to heat-loving, and the cut-points turn it
into class probabilities. `ThermoHead` shifts `s` so that the cut-point between mesophilic and
thermophilic is zero: its output is the logit of P(thermophilic or hyperthermophilic).

The fit minimises the mean negative log-likelihood plus `l2 / 2 * |w|^2` (on standardised
features). The problem is small (D + K - 1 unknowns) and smooth, so SciPy's L-BFGS-B solves
it in well under a second. Its gradient is written out in NumPy: for a problem this size,
compiling a JAX gradient (let alone an Optax or Optimistix loop) for every new feature shape
costs seconds and buys nothing. The fitted `ThermoHead`, the JAX reference objective
`_objective` and everything downstream are JAX; the gradient is tested against `jax.grad`.

The same head runs on any fixed-size features: mean-pooled language-model embeddings, or the
20 amino-acid frequencies of `composition`, the classic baseline: thermophiles are known to
favour charged residues (E, K, R) and avoid thermolabile ones (Q, N) (Zeldovich et al. 2007).
"""

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt
import scipy.optimize
import scipy.special
import scipy.stats
from jaxtyping import Array, ArrayLike, Bool, Float, Int, Real

from tutorial_lib.data import AMINO_ACIDS
from tutorial_lib.data.homology import Split

__all__ = [
    "COMPOSITION_ALPHABET",
    "L2Choice",
    "ThermoHead",
    "auroc",
    "balanced_accuracy",
    "balanced_subsets",
    "bootstrap_interval",
    "choose_l2",
    "composition",
    "compositions",
    "confusion_matrix",
    "fit_thermo_head",
    "ordinal_nll",
    "roc_curve",
]

#: Column order of `composition`: the 20 standard amino acids, alphabetically.
COMPOSITION_ALPHABET = AMINO_ACIDS
_LUT = np.full(256, -1, dtype=np.int64)
_LUT[np.frombuffer(COMPOSITION_ALPHABET.encode(), np.uint8)] = np.arange(20)
_LUT[np.frombuffer(COMPOSITION_ALPHABET.lower().encode(), np.uint8)] = np.arange(20)
_BIG = 1e4  # stands in for the infinite outer cut-points


# --------------------------------------------------------------------------- composition


def _check_letters(i: int, s: object) -> None:
    if not isinstance(s, str) or not s:
        raise ValueError(f"sequence {i} must be a non-empty str, got {s!r}")
    if not (s.isascii() and s.isalpha()):
        bad = next(c for c in s if not (c.isascii() and c.isalpha()))
        raise ValueError(
            f"sequence {i} ({s[:30]!r}{'...' if len(s) > 30 else ''}) holds {bad!r}: only "
            "one-letter amino-acid codes are allowed"
        )


def compositions(sequences: Sequence[str]) -> Float[np.ndarray, "n 20"]:
    """Amino-acid frequencies of each sequence, columns in `COMPOSITION_ALPHABET` order.

    Only the 20 standard residues are counted (case-insensitive); other letters (X, B, Z, J,
    U, O) are skipped. Rows sum to one. A non-letter, or a sequence without a single standard
    residue, raises `ValueError`.
    """
    if isinstance(sequences, str):
        raise TypeError("compositions expects a list of sequences; use composition for one")
    sequences = list(sequences)
    for i, s in enumerate(sequences):
        _check_letters(i, s)
    if not sequences:
        return np.zeros((0, 20))
    codes = _LUT[np.frombuffer("".join(sequences).encode("ascii"), np.uint8)]
    owner = np.repeat(np.arange(len(sequences)), [len(s) for s in sequences])
    ok = codes >= 0
    counts = np.bincount(owner[ok] * 20 + codes[ok], minlength=20 * len(sequences))
    counts = counts.reshape(len(sequences), 20).astype(np.float64)
    totals = counts.sum(1, keepdims=True)
    if np.any(totals == 0):
        i = int(np.argmax(totals[:, 0] == 0))
        raise ValueError(f"sequence {i} ({sequences[i][:30]!r}) holds no standard amino acid")
    return counts / totals


def composition(sequence: str) -> Float[np.ndarray, " 20"]:
    """Amino-acid frequencies of one sequence, in `COMPOSITION_ALPHABET` order (see
    `compositions`)."""
    if not isinstance(sequence, str):
        raise TypeError(f"composition expects a str, got {type(sequence).__name__}")
    return compositions([sequence])[0]


# --------------------------------------------------------------------------- the head


class ThermoHead(eqx.Module):
    """Ordinal logistic head on standardised features (see the module docstring).

    `head(x)` is the logit of P(class >= `positive_from`), higher = more thermostable; a
    scalar that works under `jax.jit`, `jax.vmap` and `jax.grad`.
    """

    mean: Float[Array, " D"]
    scale: Float[Array, " D"]
    weight: Float[Array, " D"]
    bias: Float[Array, ""]
    cutpoints: Float[Array, " cuts"]  # K - 1, increasing; cutpoints[positive_from - 1] == 0

    def __call__(self, x: Float[ArrayLike, " D"]) -> Float[Array, ""]:
        return jnp.dot((x - self.mean) / self.scale, self.weight) + self.bias

    @property
    def n_classes(self) -> int:
        return self.cutpoints.shape[0] + 1

    def class_probabilities(self, x: Float[ArrayLike, " D"]) -> Float[Array, " K"]:
        """P(class = k), k = 0..K-1, from the cumulative logits `score - cutpoints`."""
        above = jax.nn.sigmoid(self(x) - self.cutpoints)  # P(class > k)
        upper = jnp.concatenate([jnp.ones(1), above])
        lower = jnp.concatenate([above, jnp.zeros(1)])
        return upper - lower

    def predict_class(self, x: Float[ArrayLike, " D"]) -> Int[Array, ""]:
        """The median predicted class: how many cut-points the score exceeds."""
        return jnp.sum(self(x) > self.cutpoints)


def _log_likelihood(
    scores: Float[Array, " n"], cutpoints: Float[Array, " cuts"], labels: Int[Array, " n"]
) -> Float[Array, " n"]:
    """log P(class = y) = log(sigmoid(s - c[y-1]) - sigmoid(s - c[y])), computed stably."""
    c = jnp.concatenate([jnp.array([-_BIG]), cutpoints, jnp.array([_BIG])])
    lo, hi = c[labels], c[labels + 1]
    # sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - exp(b - a)) for a > b.
    return (
        jax.nn.log_sigmoid(scores - lo)
        + jax.nn.log_sigmoid(hi - scores)
        + jnp.log(-jnp.expm1(lo - hi))
    )


def _check_xy(
    features: Float[ArrayLike, "..."], labels: Real[ArrayLike, "..."], n_classes: int | None
) -> tuple[Float[np.ndarray, "n D"], Int[np.ndarray, " n"], int]:
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if x.ndim != 2:
        raise ValueError(f"features must be a 2-D (n, D) array, got shape {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(
            f"labels must be a 1-D array with one class per row of features ({len(x)}), got "
            f"shape {y.shape}"
        )
    if len(y) == 0:
        raise ValueError("features and labels are empty")
    if not np.all(np.isfinite(x)):
        raise ValueError("features hold NaN or infinite values")
    if not (np.issubdtype(y.dtype, np.integer) or np.all(y == np.round(y))):
        raise ValueError(f"labels must be integer classes 0..K-1, got dtype {y.dtype}")
    y = y.astype(np.int64)
    k = int(y.max()) + 1 if n_classes is None else n_classes
    if y.min() < 0 or y.max() >= k:
        raise ValueError(f"labels must lie in 0..{k - 1}, got {y.min()}..{y.max()}")
    return x, y, k


def ordinal_nll(
    head: ThermoHead, features: Float[ArrayLike, "..."], labels: Real[ArrayLike, "..."]
) -> float:
    """Mean negative log-likelihood of `labels` under `head` (lower is better; NumPy, so no
    compilation). The data are checked as in `fit_thermo_head`."""
    x, y, _ = _check_xy(features, labels, head.n_classes)
    mean, scale, weight, bias, cut = (
        np.asarray(a, np.float64)
        for a in (head.mean, head.scale, head.weight, head.bias, head.cutpoints)
    )
    scores = ((x - mean) / scale) @ weight + bias
    c = np.concatenate([[-np.inf], cut, [np.inf]])
    prob = scipy.special.expit(scores - c[y]) - scipy.special.expit(scores - c[y + 1])
    return float(-np.mean(np.log(np.maximum(prob, 1e-300))))


def _spacing(raw: Float[Array, " cuts"]) -> Float[Array, " cuts"]:
    # First cut-point free, the others above it by softplus gaps: always increasing.
    return jnp.cumsum(jnp.concatenate([raw[:1], jax.nn.softplus(raw[1:])]))


def _objective(
    theta: Float[Array, " P"],
    z: Float[Array, "n D"],
    y: Int[Array, " n"],
    l2: float | Float[Array, ""],
) -> Float[Array, ""]:
    w, raw = theta[: z.shape[1]], theta[z.shape[1] :]
    ll = _log_likelihood(z @ w, _spacing(raw), y)
    return -jnp.mean(ll) + 0.5 * l2 * jnp.sum(w**2)


def _objective_np(
    theta: np.ndarray, z: np.ndarray, y: np.ndarray, penalty: np.ndarray
) -> tuple[float, np.ndarray]:
    """`_objective` and its gradient in NumPy, with a per-weight ridge `penalty` (D,)."""
    d = z.shape[1]
    w, raw = theta[:d], theta[d:]
    s = np.einsum("nd,d->n", z, w)  # not BLAS: its threads thrash on a busy CPU
    c = np.concatenate([[-_BIG], np.cumsum(np.r_[raw[:1], np.logaddexp(0.0, raw[1:])]), [_BIG]])
    lo, hi = c[y], c[y + 1]
    ll = -np.logaddexp(0.0, lo - s) - np.logaddexp(0.0, s - hi) + np.log(-np.expm1(lo - hi))
    value = -ll.mean() + 0.5 * np.sum(penalty * w * w)
    # d ll / d s, d lo, d hi: the derivatives of the three terms above
    gap = hi - lo
    inv = np.exp(-gap) / -np.expm1(-gap)  # 1 / (exp(gap) - 1), without overflow
    d_s = scipy.special.expit(lo - s) - scipy.special.expit(s - hi)
    d_lo = -scipy.special.expit(lo - s) - inv
    d_hi = scipy.special.expit(s - hi) + inv
    n, k = len(y), len(c)
    d_c = np.bincount(y, d_lo, minlength=k) + np.bincount(y + 1, d_hi, minlength=k)
    d_c = -d_c[1:-1] / n
    d_u = np.cumsum(d_c[::-1])[::-1]  # c_j = sum_{i <= j} u_i
    d_raw = np.r_[d_u[:1], d_u[1:] * scipy.special.expit(raw[1:])]
    grad_w = -np.einsum("nd,n->d", z, d_s) / n + penalty * w
    return float(value), np.concatenate([grad_w, d_raw])


class _Prepared(NamedTuple):
    mean: np.ndarray
    scale: np.ndarray
    z: np.ndarray  # standardised features
    y: np.ndarray
    n_classes: int
    evals: np.ndarray  # eigen-decomposition of the covariance z^T z / n
    evecs: np.ndarray


def _prepare(features, labels, n_classes: int | None) -> _Prepared:
    x, y, k = _check_xy(features, labels, n_classes)
    missing = sorted(set(range(k)) - set(np.unique(y).tolist()))
    if k < 2 or missing:
        raise ValueError(f"every class 0..{k - 1} must occur in labels; missing {missing}")
    mean = x.mean(0)
    scale = x.std(0)
    scale = np.where(scale > 1e-8 * max(1.0, float(np.abs(x).max())), scale, 1.0)
    z = (x - mean) / scale
    # An eigen-decomposition, not an SVD of z: LAPACK's SVD makes many threaded BLAS calls,
    # which crawl on a CPU shared with other work.
    n, d = z.shape
    if n >= d:  # the D x D covariance
        evals, evecs = np.linalg.eigh(z.T @ z / n)
        return _Prepared(mean, scale, z, y, k, np.maximum(evals, 0.0), evecs)
    # More features than examples (e.g. 1,900-dimensional embeddings of 800 proteins): the
    # loss sees w only through z w and the ridge penalty removes any part of w outside the row
    # space of z, so the optimum lies in that space. The n x n Gram matrix gives its basis
    # (covariance eigenvector z^T a / sqrt(n lambda) for each Gram eigenpair), at a fraction
    # of the cost of the D x D problem.
    g_evals, g_evecs = np.linalg.eigh(z @ z.T / n)
    keep = g_evals > 1e-10 * max(float(g_evals.max()), 1e-300)
    evals = g_evals[keep]
    evecs = (z.T @ g_evecs[:, keep]) / np.sqrt(n * evals)
    return _Prepared(mean, scale, z, y, k, evals, evecs)


def _fit(prep: _Prepared, l2: float, positive_from: int, max_steps: int, tol: float):
    if not 1 <= positive_from <= prep.n_classes - 1:
        raise ValueError(f"positive_from must be in 1..{prep.n_classes - 1}, got {positive_from}")
    if l2 < 0:
        raise ValueError(f"l2 must be non-negative, got {l2}")
    y, k = prep.y, prep.n_classes
    # Precondition: in the weights v with w = P v, P = V diag(1/sqrt(eigenvalue + l2)), the
    # Hessian is close to a multiple of the identity, so L-BFGS needs tens of iterations
    # instead of hundreds when the features are strongly correlated (embeddings are).
    damp = 1.0 / np.sqrt(prep.evals + max(l2, 1e-8))
    precond = prep.evecs * damp
    u = prep.z @ precond
    # Start at w = 0 with the cut-points of the empirical cumulative class frequencies.
    cum = np.clip(np.cumsum(np.bincount(y, minlength=k))[:-1] / len(y), 1e-3, 1 - 1e-3)
    c0 = np.log(cum / (1 - cum))  # P(class > j) = sigmoid(0 - c_j) = 1 - cum_j
    gaps = np.maximum(np.diff(c0), 1e-3)
    theta0 = np.concatenate([np.zeros(u.shape[1]), c0[:1], np.log(np.expm1(gaps))])
    result = scipy.optimize.minimize(
        _objective_np,
        theta0,
        args=(u, y, l2 * damp**2),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_steps, "ftol": tol, "gtol": 1e-6},
    )
    r = u.shape[1]
    w = precond @ result.x[:r]
    raw = result.x[r:]
    cut = np.cumsum(np.r_[raw[:1], np.logaddexp(0.0, raw[1:])])
    shift = cut[positive_from - 1]
    return ThermoHead(
        mean=jnp.asarray(prep.mean, jnp.float32),
        scale=jnp.asarray(prep.scale, jnp.float32),
        weight=jnp.asarray(w, jnp.float32),
        bias=jnp.asarray(-shift, jnp.float32),
        cutpoints=jnp.asarray(cut - shift, jnp.float32),
    )


def fit_thermo_head(
    features: Float[ArrayLike, "..."],
    labels: Real[ArrayLike, "..."],
    *,
    l2: float = 1e-2,
    n_classes: int | None = None,
    positive_from: int = 2,
    max_steps: int = 1000,
    tol: float = 1e-7,
) -> ThermoHead:
    """Fit the ordinal logistic head of the module docstring; deterministic.

    `features` `(n, D)` are standardised with their own mean and standard deviation (folded
    into the returned module). `labels` `(n,)` are classes `0..n_classes-1` (default: up to
    the largest label; integer-valued floats are accepted) and each class must occur; data
    that break these rules raise a `ValueError` saying how. `l2` is the ridge strength on
    the standardised weights; choose it on validation data (`choose_l2`). The output is
    shifted so that the head returns the logit of P(class >= `positive_from`).

    SciPy's L-BFGS-B minimises it in float64, with the analytic gradient in NumPy (tested
    against `jax.grad` of the JAX objective), stopping when the relative decrease falls below
    `tol`.
    """
    return _fit(_prepare(features, labels, n_classes), l2, positive_from, max_steps, tol)


class L2Choice(NamedTuple):
    """What `choose_l2` found: the best ridge strength, its head, every validation NLL."""

    l2: float
    head: ThermoHead
    val_nll: dict[float, float]


def choose_l2(
    train: tuple[Float[np.ndarray, "n D"], Int[np.ndarray, " n"]],
    val: tuple[Float[np.ndarray, "m D"], Int[np.ndarray, " m"]],
    grid: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1),
    **kwargs,
) -> L2Choice:
    """Fit a head for every ridge strength in `grid`; keep the lowest validation NLL.

    `train` and `val` are `(features, labels)` pairs; `kwargs` go to `fit_thermo_head`.
    """
    if not grid:
        raise ValueError("grid must hold at least one l2 value")
    prep = _prepare(*train, kwargs.pop("n_classes", None))
    options = {"positive_from": 2, "max_steps": 1000, "tol": 1e-7} | kwargs
    heads = {float(l2): _fit(prep, l2, **options) for l2 in grid}
    nll = {l2: ordinal_nll(head, *val) for l2, head in heads.items()}
    best = min(nll, key=nll.get)
    return L2Choice(best, heads[best], nll)


# --------------------------------------------------------------------------- metrics


def _check_binary(
    scores: npt.ArrayLike, positives: npt.ArrayLike
) -> tuple[Float[np.ndarray, " n"], Bool[np.ndarray, " n"]]:
    s = np.asarray(scores, dtype=np.float64)
    p = np.asarray(positives)
    if s.ndim != 1 or p.shape != s.shape:
        raise ValueError(
            f"scores and positives must be 1-D arrays of one length, got {s.shape}, {p.shape}"
        )
    if p.dtype != bool:
        if not np.all((p == 0) | (p == 1)):
            raise ValueError("positives must be booleans (or 0/1)")
        p = p.astype(bool)
    if not np.all(np.isfinite(s)):
        raise ValueError("scores hold NaN or infinite values")
    if p.all() or not p.any():
        raise ValueError("AUROC needs at least one positive and one negative example")
    return s, p


def auroc(scores: npt.ArrayLike, positives: npt.ArrayLike) -> float:
    """Area under the ROC curve: P(score of a random positive > score of a random negative),
    ties counting one half (the Mann-Whitney U statistic over `n_pos * n_neg`).

    `scores` and `positives` are 1-D and of one length (arrays or lists): finite numbers, and
    booleans or 0/1, with at least one positive and one negative. Anything else raises a
    `ValueError` saying what is wrong.
    """
    s, p = _check_binary(scores, positives)
    ranks = scipy.stats.rankdata(s)  # average ranks for ties
    n_pos, n_neg = int(p.sum()), int((~p).sum())
    return float((ranks[p].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(
    scores: npt.ArrayLike, positives: npt.ArrayLike
) -> tuple[Float[np.ndarray, " t"], Float[np.ndarray, " t"]]:
    """False- and true-positive rates at every distinct threshold, from (0, 0) to (1, 1).

    The inputs are those of `auroc`, checked the same way.
    """
    s, p = _check_binary(scores, positives)
    order = np.argsort(-s, kind="stable")
    s, p = s[order], p[order]
    last = np.r_[s[1:] != s[:-1], True]  # last row of each group of tied scores
    tp = np.cumsum(p)[last]
    fp = np.cumsum(~p)[last]
    return np.r_[0.0, fp / fp[-1]], np.r_[0.0, tp / tp[-1]]


def confusion_matrix(
    true: Int[np.ndarray, " n"], predicted: Int[np.ndarray, " n"], n_classes: int
) -> Int[np.ndarray, "K K"]:
    """Counts `C[i, j]` of examples of true class `i` predicted as class `j`."""
    t = np.asarray(true)
    q = np.asarray(predicted)
    if t.ndim != 1 or t.shape != q.shape:
        raise ValueError(f"true and predicted must be 1-D of one length, got {t.shape}, {q.shape}")
    for name, a in (("true", t), ("predicted", q)):
        if len(a) and (a.min() < 0 or a.max() >= n_classes or np.any(a != np.round(a))):
            raise ValueError(f"{name} labels must be integers in 0..{n_classes - 1}")
    flat = t.astype(np.int64) * n_classes + q.astype(np.int64)
    return np.bincount(flat, minlength=n_classes**2).reshape(n_classes, n_classes)


def balanced_accuracy(confusion: Int[np.ndarray, "K K"]) -> float:
    """Mean over classes of the fraction of that class predicted correctly (chance: 1/K)."""
    c = np.asarray(confusion, dtype=np.float64)
    per_class = np.diag(c) / np.maximum(c.sum(1), 1)
    return float(per_class[c.sum(1) > 0].mean())


def balanced_subsets(
    split: Split,
    labels: Int[ArrayLike, " n"],
    sizes: Mapping[str, int],
    *,
    seed: int = 0,
    n_classes: int = 4,
) -> dict[str, Int[np.ndarray, " m"]]:
    """Class-balanced samples of the parts of a split: `{part: sorted indices}`.

    For each `part: n` of `sizes` (in order, one seeded generator for all), `n // n_classes`
    indices of each class drawn without replacement from `getattr(split, part)`, or the whole
    part when `n` is at least its size. The thermostability and design chapters and the
    `unirep-features` artifact draw the same proteins this way.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out = {}
    for part, n in sizes.items():
        if part not in split._fields:
            raise ValueError(f"the split has parts {split._fields}, not {part!r}")
        idx = np.asarray(getattr(split, part))
        if n >= len(idx):
            out[part] = idx
            continue
        per_class = [idx[labels[idx] == c] for c in range(n_classes)]
        short = [c for c, p in enumerate(per_class) if len(p) < n // n_classes]
        if short:
            raise ValueError(
                f"part {part!r} has too few proteins of class {short[0]} for "
                f"{n // n_classes} per class; ask for fewer"
            )
        out[part] = np.sort(
            np.concatenate([rng.choice(p, n // n_classes, replace=False) for p in per_class])
        )
    return out


def bootstrap_interval(
    statistic: Callable[..., float],
    *columns: npt.ArrayLike,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """`(statistic(*columns), low, high)`: the statistic and a percentile bootstrap interval.

    The columns are per-item arrays of one length (e.g. test scores and labels, for `auroc`);
    items are resampled with replacement, all columns together, `n_boot` times (seeded).
    With a few hundred test proteins the interval is what says whether two AUROCs differ.
    """
    cols = [np.asarray(c) for c in columns]
    if not cols or any(c.ndim < 1 or len(c) != len(cols[0]) for c in cols) or len(cols[0]) < 2:
        raise ValueError("give one or more per-item arrays of one length (at least 2 items)")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(cols[0]), (n_boot, len(cols[0])))
    values = np.array([statistic(*(c[r] for c in cols)) for r in rows], dtype=np.float64)
    tail = 100 * (1 - confidence) / 2
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(statistic(*cols)), float(low), float(high)
