"""The shipped tiny ESM2: made by the committed trainer, and it really learned."""

import jax.random as jr
import numpy as np

from tutorial_lib.artifacts import read_metadata, shipped_root, verify_artifact
from tutorial_lib.protein import TINY_ARTIFACT, load_esm2, masked_perplexity, unigram_perplexity


def test_the_artifact_is_shipped_and_intact():
    # A missing or damaged committed artifact fails here; it never skips.
    assert verify_artifact(TINY_ARTIFACT, root=shipped_root()) == "ok"


def test_shipped_config_is_the_trainers(monkeypatch):
    from tutorial_lib.train.tiny_esm2 import make_config

    monkeypatch.setenv("JAXGENAI_PROFILE", "cpu")
    monkeypatch.delenv("JAXGENAI_TRAIN_STEPS", raising=False)
    meta = read_metadata(TINY_ARTIFACT)
    # A config edited without retraining would make the recorded command a lie.
    assert meta["config"] == make_config()
    assert meta["command"] == f"python -m tutorial_lib.train {TINY_ARTIFACT}"
    assert meta["config"]["model"] == load_esm2("tiny").config.to_dict()


def test_held_out_perplexity_is_far_below_the_unigram_baseline(staged_root, monkeypatch):
    from tutorial_lib.data import homology_split, load_thermoprot
    from tutorial_lib.train.tiny_esm2 import SPLIT, eval_tokens, make_corpus

    monkeypatch.setenv("JAXGENAI_DATA", str(staged_root))
    meta = read_metadata(TINY_ARTIFACT)
    ec = meta["config"]["eval"]
    data = load_thermoprot()
    split = homology_split(data.sequences, tuple(SPLIT["fractions"]), seed=SPLIT["seed"])
    proteins = [data.sequences[i] for i in split.test[:256]]
    test = eval_tokens(proteins, ec["max_len"], ec["crop_seed"])
    residues = np.asarray(make_corpus([data.sequences[i] for i in split.train]).residues)

    ppl = masked_perplexity(load_esm2("tiny"), test, key=jr.key(ec["mask_seed"]))
    unigram = unigram_perplexity(test, residues, smoothing=1.0)
    assert ppl < 0.85 * unigram
    # 256 of the 3,200 test proteins: near the recorded value, not equal to it.
    assert abs(ppl - meta["metrics"]["test_perplexity"]) < 1.0
