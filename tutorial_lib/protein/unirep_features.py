"""UniRep's numbers for the protein chapters, computed once and shipped as the artifact
`unirep-features` (`python -m tutorial_lib.train unirep-features`).

Embedding 1,600 ThermoProt proteins with UniRep-1900 takes minutes on two CPU cores, and scoring
GB1 variants by log-likelihood ratio as long again: too slow for a page. The artifact holds

- the UniRep-256 and UniRep-1900 embeddings (`UniRep.embed`, stored in float16) of the class-
  balanced ThermoProt sample the thermostability chapter uses on a CPU (`CONFIG["thermo"]`: the same
  homology split, `thermo.balanced_subsets` with the same sizes and seed, the same centre crops
  of 126 residues), with the ThermoProt index of every row;
- UniRep's next-residue log-likelihood (nats, `UniRep.log_likelihood`) of every test crop, for
  comparing perplexities on proteins the book's models never saw (the tiny-esm2 chapter);
- UniRep's zero-shot score of a sample of GB1 variants (`GB1`: every single mutant and a seeded
  sample of the double, triple and quadruple ones): the log-likelihood ratio
  `log p(variant) - log p(wild type)` under each model, in nats (`gb1_log_likelihood_ratios`).

`load_unirep_features()` returns them as a `UniRepFeatures`.

A second artifact, `unirep-judge` (`python -m tutorial_lib.train unirep-judge`), holds the design
chapter's judge: the thermostability head fitted on UniRep-1900 embeddings of a larger
class-balanced sample of *training*-split proteins (`JUDGE_CONFIG`), its ridge strength chosen on
the validation rows above, and the indices of its training proteins, so that a test can check
that none is in the test split. `judge.load_unirep_judge()` loads it.
"""

import copy
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float, Int

from tutorial_lib.protein.unirep import UniRep

__all__ = [
    "CONFIG",
    "JUDGE_CONFIG",
    "JUDGE_NAME",
    "NAME",
    "PARTS",
    "UniRepFeatures",
    "gb1_log_likelihood_ratios",
    "gb1_sample",
    "judge_template",
    "load_unirep_features",
]

NAME = "unirep-features"

#: What the artifact was computed from; `load_unirep_features` refuses an artifact made otherwise.
CONFIG: dict[str, Any] = {
    "sizes": [256, 1900],
    "thermo": {
        "split": "homology_split",
        "fractions": [0.8, 0.1, 0.1],
        "seed": 0,
        "subset_sizes": {"train": 800, "val": 200, "test": 600},
        "subset_seed": 0,
        "crop_residues": 126,
    },
    "gb1": {"per_mutation_count": 300, "seed": 0},
    "test_log_likelihood": True,
    "batch_size": 32,
    "embedding_dtype": "float16",
}

PARTS = ("train", "val", "test")

JUDGE_NAME = "unirep-judge"

#: The judge: UniRep-1900, 1,000 training-split proteins per class (seeded), the same crops.
JUDGE_CONFIG: dict[str, Any] = {
    "size": 1900,
    "train_per_class": 1000,
    "subset_seed": 1,
    "crop_residues": 126,
    "split": {"split": "homology_split", "fractions": [0.8, 0.1, 0.1], "seed": 0},
    "validation": "the val rows of unirep-features",
    "grid": [1e-3, 1e-2, 1e-1, 1.0, 10.0],
    "batch_size": 32,
}


class UniRepFeatures(NamedTuple):
    """The contents of the `unirep-features` artifact (see the module docstring)."""

    indices: dict[str, Int[np.ndarray, " n"]]  # part -> ThermoProt indices of the rows
    embeddings: dict[int, dict[str, Float[np.ndarray, "n size"]]]  # size -> part -> rows
    gb1_index: Int[np.ndarray, " m"]  # rows of `load_gb1()`
    gb1_llr: dict[int, Float[np.ndarray, " m"]]  # size -> log-likelihood ratio, nats
    test_log_likelihood: dict[int, Float[np.ndarray, " t"]]  # size -> nats per test crop
    metadata: dict[str, Any]


def gb1_sample(n_mutations: Int[np.ndarray, " n"], per_count: int, seed: int) -> np.ndarray:
    """Sorted rows of GB1: every variant with one mutation, and `per_count` drawn without
    replacement (one seeded generator) among those with 2, 3 and 4 mutations each."""
    n_mutations = np.asarray(n_mutations)
    rng = np.random.default_rng(seed)
    parts = [np.flatnonzero(n_mutations == 1)]
    for k in (2, 3, 4):
        rows = np.flatnonzero(n_mutations == k)
        parts.append(rng.choice(rows, min(per_count, len(rows)), replace=False))
    return np.sort(np.concatenate(parts))


def gb1_log_likelihood_ratios(
    model: UniRep, wild_type: str, variants: Sequence[str], *, batch_size: int = 32
) -> Float[np.ndarray, " m"]:
    """`log p(variant) - log p(wild_type)` under UniRep, in nats, for full-length variants.

    An autoregressive model scores a whole sequence, so unlike masked marginals this needs one
    forward pass per variant, and it sees interactions between mutations (epistasis).
    """
    if any(len(v) != len(wild_type) for v in variants):
        raise ValueError("variants must have the wild type's length (substitutions only)")
    ll = np.asarray(model.log_likelihood([wild_type, *variants], batch_size=batch_size))
    return (ll[1:] - ll[0]).astype(np.float32)


def _template(metadata: dict[str, Any]) -> dict[str, Any]:
    n = metadata["data"]["rows"]
    m = metadata["data"]["n_gb1_variants"]
    sizes = metadata["config"]["sizes"]
    return {
        "indices": {p: jax.ShapeDtypeStruct((n[p],), jnp.int32) for p in PARTS},
        "embeddings": {
            str(s): {p: jax.ShapeDtypeStruct((n[p], s), jnp.float16) for p in PARTS} for s in sizes
        },
        "gb1_index": jax.ShapeDtypeStruct((m,), jnp.int32),
        "gb1_llr": {str(s): jax.ShapeDtypeStruct((m,), jnp.float32) for s in sizes},
        "test_log_likelihood": {
            str(s): jax.ShapeDtypeStruct((n["test"],), jnp.float32) for s in sizes
        },
    }


def load_unirep_features(*, root=None, config: dict[str, Any] | None = None) -> UniRepFeatures:
    """The shipped `unirep-features` artifact (or the one under `root`/`$JAXGENAI_ARTIFACTS`),
    checked against `config` (default `CONFIG`) and its sha256; embeddings come back as float32
    NumPy arrays."""
    from tutorial_lib.artifacts import load_artifact, read_metadata

    metadata = read_metadata(NAME, root=root)
    like = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), _template(metadata))
    tree, metadata = load_artifact(NAME, like, config=copy.deepcopy(config or CONFIG), root=root)
    return UniRepFeatures(
        indices={p: np.asarray(v, np.int64) for p, v in tree["indices"].items()},
        embeddings={
            int(s): {p: np.asarray(v, np.float32) for p, v in parts.items()}
            for s, parts in tree["embeddings"].items()
        },
        gb1_index=np.asarray(tree["gb1_index"], np.int64),
        gb1_llr={int(s): np.asarray(v, np.float64) for s, v in tree["gb1_llr"].items()},
        test_log_likelihood={
            int(s): np.asarray(v, np.float64) for s, v in tree["test_log_likelihood"].items()
        },
        metadata=metadata,
    )


def judge_template(metadata: dict[str, Any]) -> dict[str, Any]:
    """The structure of the `unirep-judge` artifact, for `load_artifact`."""
    from tutorial_lib.protein.thermo import ThermoHead

    n, d = metadata["data"]["n_train"], metadata["config"]["size"]
    head = ThermoHead(
        mean=jnp.zeros(d),
        scale=jnp.ones(d),
        weight=jnp.zeros(d),
        bias=jnp.zeros(()),
        cutpoints=jnp.zeros(3),
    )
    return {"train_indices": np.zeros(n, np.int32), "head": head}
