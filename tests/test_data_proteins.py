"""ThermoProt, GB1 and the homology-aware split, on the staged data."""

import numpy as np
import pytest

from tutorial_lib import data
from tutorial_lib.data import homology_clusters, homology_split, split_clusters


@pytest.fixture(scope="module")
def thermoprot(staged_root):
    import os

    old = os.environ.get("JAXGENAI_DATA")
    os.environ["JAXGENAI_DATA"] = str(staged_root)
    try:
        return data.load_thermoprot()
    finally:
        if old is None:
            os.environ.pop("JAXGENAI_DATA")
        else:
            os.environ["JAXGENAI_DATA"] = old


def test_thermoprot_counts_and_labels(thermoprot):
    assert len(thermoprot) == 32_000
    assert thermoprot.labels.dtype == np.int32
    assert np.bincount(thermoprot.labels).tolist() == [8_000] * 4
    assert thermoprot.label_names == (
        "psychrophilic",
        "mesophilic",
        "thermophilic",
        "hyperthermophilic",
    )
    assert thermoprot.names[0] == "psychrophilic/Sequence 1"
    assert len(set(thermoprot.names)) == 32_000
    assert thermoprot.sequences[1].startswith("MSDFIYAPPQHPRLDIIYQDDAIIV")
    assert set("".join(thermoprot.sequences)) <= set(data.PROTEIN_ALPHABET)
    lengths = np.array([len(s) for s in thermoprot.sequences])
    assert lengths.sum() == 10_040_573


def test_homology_split_of_thermoprot(thermoprot):
    seqs = thermoprot.sequences
    clusters = homology_clusters(seqs)
    sizes = np.bincount(clusters)
    assert len(sizes) == 30_321 and sizes.max() == 83
    split = split_clusters(clusters, (0.8, 0.1, 0.1), seed=0)
    assert [len(s) for s in split] == [25_600, 3_200, 3_200]
    side = np.empty(len(seqs), dtype=int)
    for k, idx in enumerate(split):
        side[idx] = k
    # No cluster is cut across two splits.
    order = np.argsort(clusters, kind="stable")
    same_cluster = clusters[order][1:] == clusters[order][:-1]
    assert np.all(side[order][1:][same_cluster] == side[order][:-1][same_cluster])
    # Every class is represented in every split.
    for idx in split:
        assert np.bincount(thermoprot.labels[idx], minlength=4).min() > 0.2 * len(idx) / 4


def _mutate(rng, seq, identity):
    aa = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    out = np.array(list(seq))
    hit = rng.random(len(seq)) > identity
    out[hit] = rng.choice(aa, hit.sum())
    return "".join(out)


def test_near_duplicates_stay_together_and_unrelated_ones_do_not_link():
    rng = np.random.default_rng(0)
    aa = list("ACDEFGHIKLMNPQRSTVWY")
    families = ["".join(rng.choice(aa, 300)) for _ in range(40)]
    seqs, family = [], []
    for f, parent in enumerate(families):
        for _ in range(5):
            seqs.append(_mutate(rng, parent, identity=0.85))
            family.append(f)
    family = np.array(family)
    clusters = homology_clusters(seqs)
    for f in range(40):  # each family is one cluster of its own
        assert len(set(clusters[family == f])) == 1
    assert len(set(clusters)) == 40
    split = homology_split(seqs, (0.6, 0.2, 0.2), seed=3)
    assert sorted(np.concatenate(split).tolist()) == list(range(200))
    assert [len(s) for s in split] == [120, 40, 40]
    for idx in split:
        others = np.setdiff1d(np.arange(200), idx)
        assert not set(family[idx]) & set(family[others])
    assert all(
        np.array_equal(a, b)
        for a, b in zip(split, homology_split(seqs, (0.6, 0.2, 0.2), seed=3), strict=True)
    )


def test_closest_relative_grows_with_identity_and_is_exact_for_copies():
    rng = np.random.default_rng(1)
    aa = list("ACDEFGHIKLMNPQRSTVWY")
    parent = "".join(rng.choice(aa, 3000))  # long: a few hundred 6-mers survive at p = 0.5
    stranger = "".join(rng.choice(aa, 3000))
    identities = (1.0, 0.9, 0.7, 0.5)
    seqs = [parent, stranger] + [_mutate(rng, parent, identity=p) for p in identities]
    query = np.arange(2, len(seqs))
    close = data.closest_relative(seqs, query, [0, 1])
    assert close[0] == 1.0  # an exact copy contains all its own k-mers
    assert np.all(np.diff(close) < 0)  # less identity, fewer shared 6-mers
    for c, p in zip(close[1:], identities[1:], strict=True):
        assert 0.5 * p**6 < c < 2 * p**6 + 0.01  # about p^6 of the 6-mers survive
    assert data.closest_relative(seqs, [1], [0])[0] < 0.01  # random sequences share ~nothing
    assert data.closest_relative(seqs, [0], [0])[0] == 0.0  # a sequence is not its own relative
    with pytest.raises(ValueError, match="indices into the 6 sequences"):
        data.closest_relative(seqs, [6], [0])


def test_kmer_sets_match_a_direct_count():
    from tutorial_lib.data.fasta import AMINO_ACIDS
    from tutorial_lib.data.homology import kmer_sets

    rng = np.random.default_rng(4)
    letters = list(AMINO_ACIDS + "X")  # X is not one of the 20: k-mers holding it are skipped
    seqs = ["".join(rng.choice(letters, rng.integers(1, 60))) for _ in range(40)]

    def code(word):
        value = 0
        for c in word:
            value = 20 * value + AMINO_ACIDS.index(c)
        return value

    for k in (1, 6, 7, 8):  # 7 is the largest k computed in int32, 8 needs int64
        kmer, who = kmer_sets(seqs, k=k)
        expected = sorted(
            {
                (code(s[p : p + k]), i)
                for i, s in enumerate(seqs)
                for p in range(len(s) - k + 1)
                if "X" not in s[p : p + k]
            }
        )
        assert list(zip(kmer.tolist(), who.tolist(), strict=True)) == expected, k


def test_shared_kmer_index_is_reused_only_for_the_same_sequences():
    rng = np.random.default_rng(2)
    aa = list("ACDEFGHIKLMNPQRSTVWY")
    a, b = ("".join(rng.choice(aa, 500)) for _ in range(2))
    seqs = [a, b, a]
    assert data.closest_relative(seqs, [2], [0])[0] == 1.0
    split = homology_split(seqs, (0.5, 0.25, 0.25), seed=0)
    part_of = {i: next(n for n, part in enumerate(split) if i in part) for i in range(3)}
    assert part_of[0] == part_of[2]  # the copies stay together
    seqs[2] = b  # the same list, changed in place: no stale answer
    assert data.closest_relative(seqs, [2], [0])[0] < 0.01
    assert data.closest_relative(seqs, [2], [1])[0] == 1.0


def test_split_fractions_are_validated():
    with pytest.raises(ValueError, match="fractions"):
        split_clusters(np.zeros(3, int), (0.5, -0.1, 0.6))


def test_gb1_landscape_and_flip_splits(staged):
    gb1 = data.load_gb1()
    assert len(gb1) == 149_361
    assert gb1.variants[0] == "VDGV" and gb1.fitness[0] == 1.0 and gb1.n_mutations[0] == 0
    assert len(set(gb1.variants)) == 149_361
    assert {len(s) for s in gb1.sequences} == {265}
    wt = gb1.sequences[0]
    assert "".join(wt[p - 1] for p in gb1.positions) == "VDGV"
    assert float(gb1.fitness.min()) == 0.0
    assert float(gb1.fitness.max()) == pytest.approx(8.76196565571, rel=1e-6)
    assert np.bincount(gb1.n_mutations).tolist() == [1, 76, 2_091, 26_019, 121_174]
    expected = {
        "one_vs_rest": (25, 3, 8_705),
        "two_vs_rest": (381, 43, 8_309),
        "three_vs_rest": (2_691, 299, 5_743),
        "low_vs_high": (4_580, 509, 3_644),
        "sampled": (6_289, 699, 1_745),
    }
    assert gb1.split_names == tuple(expected)
    for name, sizes in expected.items():
        split = gb1.split(name)
        assert tuple(len(s) for s in split) == sizes
        assert len(np.unique(np.concatenate(split))) == 8_733
    one = gb1.split("one_vs_rest")
    assert gb1.n_mutations[np.concatenate([one.train, one.val])].max() == 1
    low = gb1.split("low_vs_high")
    assert gb1.fitness[np.concatenate([low.train, low.val])].max() < 1.0
    with pytest.raises(KeyError, match="FLIP"):
        gb1.split("random")
