"""Protein data sets: ThermoProt temperature classes and the FLIP GB1 fitness landscape."""

import csv
import dataclasses
import io
import zipfile
from pathlib import Path

import numpy as np
from jaxtyping import Float, Int

from tutorial_lib.data._errors import DataError
from tutorial_lib.data._fetch import fetch_dataset, fetch_file
from tutorial_lib.data.fasta import read_fasta
from tutorial_lib.data.homology import Split

__all__ = [
    "GB1",
    "GB1_POSITIONS",
    "GB1_SPLITS",
    "THERMOPROT_CLASSES",
    "ThermoProt",
    "load_gb1",
    "load_thermoprot",
]

THERMOPROT_CLASSES = ("psychrophilic", "mesophilic", "thermophilic", "hyperthermophilic")
GB1_SPLITS = ("one_vs_rest", "two_vs_rest", "three_vs_rest", "low_vs_high", "sampled")
GB1_POSITIONS = (39, 40, 41, 54)


@dataclasses.dataclass(frozen=True)
class ThermoProt:
    """Protein sequences labelled by their organism's growth-temperature class."""

    sequences: list[str]
    labels: Int[np.ndarray, " n"]
    label_names: tuple[str, ...]
    names: list[str]  # "<class>/<FASTA header>", unique

    def __len__(self) -> int:
        return len(self.sequences)


def load_thermoprot() -> ThermoProt:
    """The ThermoProt training set: 32,000 sequences, 8,000 per class.

    Labels 0..3 are ordered psychrophilic, mesophilic, thermophilic, hyperthermophilic
    (increasing optimal growth temperature).
    """
    paths = {p.stem: p for p in fetch_dataset("thermoprot")}
    sequences, labels, names = [], [], []
    for label, cls in enumerate(THERMOPROT_CLASSES):
        records = read_fasta(paths[cls])
        sequences += [r.sequence for r in records]
        names += [f"{cls}/{r.name}" for r in records]
        labels += [label] * len(records)
    return ThermoProt(sequences, np.asarray(labels, dtype=np.int32), THERMOPROT_CLASSES, names)


@dataclasses.dataclass(frozen=True)
class GB1:
    """The GB1 four-site landscape (Wu et al. 2016) with FLIP's official splits.

    Row `i` is one variant: `variants[i]` holds the residues at positions 39, 40, 41 and 54
    (wild type "VDGV"), `sequences[i]` the full 265-residue construct, `fitness[i]` the
    measured binding fitness relative to wild type (1.0).
    """

    variants: list[str]
    sequences: list[str]
    fitness: Float[np.ndarray, " n"]
    n_mutations: Int[np.ndarray, " n"]
    split_names: tuple[str, ...]
    _splits: dict[str, Split] = dataclasses.field(repr=False)

    wild_type: str = "VDGV"
    positions: tuple[int, ...] = GB1_POSITIONS

    def __len__(self) -> int:
        return len(self.variants)

    def split(self, name: str) -> Split:
        """FLIP split `name` as row indices; FLIP's `validation` rows form `val`, not `train`.

        Only the 8,733 variants FLIP keeps appear in a split.
        """
        try:
            return self._splits[name]
        except KeyError:
            raise KeyError(f"unknown GB1 split {name!r}; FLIP's are {self.split_names}") from None


def _read_zipped_csv(path: Path, member: str) -> list[dict[str, str]]:
    try:
        with zipfile.ZipFile(path) as z, z.open(member) as f:
            return list(csv.DictReader(io.TextIOWrapper(f, encoding="utf-8")))
    except (KeyError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot read {member} from {path}: {e}") from e


def load_gb1() -> GB1:
    """The FLIP GB1 landscape: 149,361 variants and the 5 official FLIP splits."""
    full = _read_zipped_csv(
        fetch_file("flip/gb1/four_mutations_full_data.csv.zip"), "four_mutations_full_data.csv"
    )
    splits_zip = fetch_file("flip/gb1/splits.zip")
    sequences = [r["sequence"] for r in full]
    row_of = {s: i for i, s in enumerate(sequences)}
    splits = {}
    for name in GB1_SPLITS:
        rows = _read_zipped_csv(splits_zip, f"splits/{name}.csv")
        try:
            index = np.array([row_of[r["sequence"]] for r in rows], dtype=np.int64)
        except KeyError as e:
            raise DataError(
                f"GB1 split {name!r} holds a sequence missing from the landscape table"
            ) from e
        is_test = np.array([r["set"] == "test" for r in rows])
        is_val = np.array([r["validation"] == "True" for r in rows])
        splits[name] = Split(
            np.sort(index[~is_test & ~is_val]), np.sort(index[is_val]), np.sort(index[is_test])
        )
    return GB1(
        variants=[r["Variants"] for r in full],
        sequences=sequences,
        fitness=np.array([float(r["Fitness"]) for r in full], dtype=np.float32),
        n_mutations=np.array([int(r["HD"]) for r in full], dtype=np.int32),
        split_names=GB1_SPLITS,
        _splits=splits,
    )
