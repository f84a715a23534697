"""The galaxies every model of Part IV trains and is judged on: the galaxy DDPM's split.

The same 1,400 SDSS Galaxy Zoo stamps at 32x32, split with the same seed into 1,260 training
and 140 held-out galaxies (`tutorial_lib.diffusion.galaxy.galaxy_split`), so that the VAE, the
flow and the DDPM are compared on galaxies none of them saw. The labels (spiral or not, by
Galaxy Zoo volunteers' votes) are used only by the classifiers, never in training.
"""

import dataclasses
from typing import Any

import numpy as np
from jaxtyping import Float, Int

from tutorial_lib.data import load_galaxies
from tutorial_lib.diffusion.galaxy import CPU_CONFIG, galaxy_split

__all__ = ["DATA", "IMAGE_SIZE", "LabelledSplit", "labelled_split"]

IMAGE_SIZE = CPU_CONFIG["image_size"]  # 32, as the galaxy DDPM the book ships
DATA: dict[str, Any] = dict(CPU_CONFIG["data"])  # galaxy-zoo, 10 % held out, split seed 0


@dataclasses.dataclass(frozen=True)
class LabelledSplit:
    """Training and held-out galaxies `(n, s, s, 3)` in [0, 1], their labels and ids."""

    train: Float[np.ndarray, "n s s 3"]
    heldout: Float[np.ndarray, "m s s 3"]
    train_labels: Int[np.ndarray, " n"]
    heldout_labels: Int[np.ndarray, " m"]
    train_ids: list[str]
    heldout_ids: list[str]
    label_names: tuple[str, ...]
    data_sha256: str


def labelled_split(
    image_size: int = IMAGE_SIZE, data: dict[str, Any] | None = None
) -> LabelledSplit:
    """The galaxy DDPM's training/held-out split, with the Galaxy Zoo labels."""
    data = dict(DATA if data is None else data)
    split = galaxy_split({"image_size": image_size, "data": data})
    galaxies = load_galaxies(image_size, data["source"])
    label = dict(zip(galaxies.ids, galaxies.labels, strict=True))
    return LabelledSplit(
        split.train,
        split.heldout,
        np.array([label[i] for i in split.train_ids], np.int32),
        np.array([label[i] for i in split.heldout_ids], np.int32),
        split.train_ids,
        split.heldout_ids,
        galaxies.label_names,
        split.data_sha256,
    )
