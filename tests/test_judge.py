"""Judging designs: the composition judge, the GB1 judge, diversity, the leaderboard."""

import types

import numpy as np
import pytest

from tutorial_lib.protein import compositions, fit_thermo_head
from tutorial_lib.protein.judge import (
    fit_composition_judge,
    format_leaderboard,
    gb1_fitness_judge,
    hamming_matrix,
    leaderboard,
    mean_pairwise_distance,
)

UBIQUITIN = "MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGKQLEDGRTLSDYNIQKESTLHLVLRLRGG"


def _hot_and_cold(n=50, seed=0):
    rng = np.random.default_rng(seed)
    hot = ["".join(rng.choice(list("KEKERLVIAG"), 60)) for _ in range(n)]
    cold = ["".join(rng.choice(list("QNQNSTLVAG"), 60)) for _ in range(n)]
    return hot, cold


def _newton_logistic(x, y, l2, n_iter=50):
    """Ridge logistic regression of y on standardised x by Newton's method (NumPy reference)."""
    mean, scale = x.mean(0), x.std(0)
    scale = np.where(scale > 0, scale, 1.0)
    z = np.concatenate([(x - mean) / scale, np.ones((len(y), 1))], axis=1)
    reg = np.diag([l2 * len(y)] * x.shape[1] + [0.0])  # l2 per example, as in fit_thermo_head
    w = np.zeros(z.shape[1])
    for _ in range(n_iter):
        p = 1 / (1 + np.exp(-(z @ w)))
        hess = (z * (p * (1 - p))[:, None]).T @ z + reg
        w -= np.linalg.solve(hess, z.T @ (p - y) + reg @ w)
    return lambda comp: ((comp - mean) / scale) @ w[:-1] + w[-1]


def test_composition_judge_learns_charged_versus_amide_residues():
    hot, cold = _hot_and_cold()
    judge = fit_composition_judge(compositions(hot + cold), np.array([3] * 50 + [0] * 50))
    assert judge("KEKEKEKEKEKELVIA") > 2 > -2 > judge("QNQNQNQNQNSTLVAG")
    assert 0.5 < judge.probability(hot[0]) <= 1.0
    np.testing.assert_allclose(judge.score(compositions(hot[:3])), judge.logits(hot[:3]))
    with pytest.raises(ValueError, match="single class"):
        fit_composition_judge(compositions(hot), np.zeros(50, int))
    with pytest.raises(ValueError, match="shape"):
        fit_composition_judge(np.zeros((3, 19)), np.zeros(3, int))


def test_composition_judge_is_the_two_class_thermo_head():
    """One logistic regression in Part III: the judge is `fit_thermo_head` with two classes,
    and that is plain ridge logistic regression (checked against Newton's method)."""
    hot, cold = _hot_and_cold(n=40, seed=1)
    comp = compositions(hot + cold)
    labels = np.array([3] * 40 + [0] * 40)
    flip = np.random.default_rng(2).random(80) < 0.2
    labels[flip] = 3 - labels[flip]  # overlapping classes
    judge = fit_composition_judge(comp, labels, l2=1e-2)
    head = fit_thermo_head(comp, np.isin(labels, (2, 3)).astype(int), l2=1e-2, n_classes=2,
                           positive_from=1)  # fmt: skip
    np.testing.assert_allclose(judge.score(comp), [float(head(c)) for c in comp], atol=1e-5)
    reference = _newton_logistic(comp, np.isin(labels, (2, 3)).astype(float), l2=1e-2)
    np.testing.assert_allclose(judge.score(comp), reference(comp), atol=2e-3)


def test_diversity_on_hand_made_examples():
    d = hamming_matrix(["AAAA", "AAAC", "CCCC"])
    np.testing.assert_allclose(d, [[0, 0.25, 1], [0.25, 0, 0.75], [1, 0.75, 0]])
    assert np.isclose(mean_pairwise_distance(["AAAA", "AAAC", "CCCC"]), 2 / 3)
    assert mean_pairwise_distance(["MKT", "MKT"]) == 0.0
    with pytest.raises(ValueError, match="equal-length"):
        hamming_matrix(["AAA", "AA"])
    with pytest.raises(ValueError, match="at least 2"):
        mean_pairwise_distance(["AAA"])


def test_leaderboard_ranks_and_disqualifies():
    designs = {"ubq": UBIQUITIN, "ubq-K": UBIQUITIN.replace("Q", "K"), "poly-K": "K" * 40}
    rows = leaderboard(designs, judge=lambda s: s.count("K") / len(s), extra={"len": len})
    assert [r.name for r in rows] == ["ubq-K", "ubq", "poly-K"]
    assert [r.rank for r in rows] == [1, 2, 0]
    assert rows[2].flagged and rows[2].score == 1.0
    table = format_leaderboard(rows)
    assert table.splitlines()[0] == "| rank | design | judge | len |"
    assert "| DQ | poly-K | 1.000 | 40.000 |" in table


def test_gb1_judge_looks_up_measured_fitness():
    gb1 = types.SimpleNamespace(variants=["VDGV", "AAAA"], fitness=np.array([1.0, 0.25]))
    judge = gb1_fitness_judge(gb1)
    assert judge("vdgv") == 1.0 and judge("AAAA") == 0.25
    assert np.isnan(judge("WWWW"))
    with pytest.raises(ValueError, match="4 residues"):
        judge("VDG")
