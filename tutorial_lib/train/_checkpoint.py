"""Resumable training: a run's state saved every few minutes, picked up by the next run.

A long CPU training (hours on two cores) outlives a work session. The trainer saves its full
state (weights, EMA, optimiser state, step, key) with the config's hash; the next
`python -m tutorial_lib.train NAME` with the same config continues from there and adds up the
wall time, so the metadata still says what the whole run cost. A checkpoint of a different
config is never resumed (it is reported and left alone).

Checkpoints live in `$JAXGENAI_CACHE/checkpoints/NAME/` (the per-user cache by default), never
in the package: they are large and belong to one machine.
"""

import json
import os
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.random as jr

from tutorial_lib.artifacts import config_sha256
from tutorial_lib.data import cache_dir

STATE_FILE = "state.eqx"
INFO_FILE = "checkpoint.json"


def checkpoint_dir(name: str) -> Path:
    return cache_dir() / "checkpoints" / name


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _keys_to_data(tree: Any) -> Any:
    return jax.tree.map(lambda x: jr.key_data(x) if _is_key(x) else x, tree)


def save_checkpoint(
    name: str, tree: Any, *, config: dict, step: int, wall_s: float, extra: dict | None = None
) -> Path:
    """Write `tree` (any pytree; typed PRNG keys allowed) atomically; returns the folder.

    `wall_s` is the wall time of the whole run so far; `extra` any JSON-able bookkeeping
    (e.g. the loss history) to hand back on resume.
    """
    folder = checkpoint_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (STATE_FILE + ".tmp")
    eqx.tree_serialise_leaves(tmp, _keys_to_data(tree))
    os.replace(tmp, folder / STATE_FILE)
    info = {
        "config_sha256": config_sha256(config),
        "step": int(step),
        "wall_s": float(wall_s),
        "extra": extra or {},
    }
    (folder / (INFO_FILE + ".tmp")).write_text(json.dumps(info))
    os.replace(folder / (INFO_FILE + ".tmp"), folder / INFO_FILE)
    return folder


def load_checkpoint(name: str, like: Any, *, config: dict) -> tuple[Any, dict] | None:
    """`(tree, info)` from a checkpoint of this exact config, else None.

    `info` has the `step`, the run's `wall_s` so far and the `extra` bookkeeping.

    `like` is a tree of the same structure (e.g. the freshly initialised state); its typed
    PRNG keys are restored as typed keys.
    """
    folder = checkpoint_dir(name)
    try:
        info = json.loads((folder / INFO_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if info.get("config_sha256") != config_sha256(config):
        print(f"{name}: ignoring checkpoint in {folder} (trained with another config)", flush=True)
        return None
    loaded = eqx.tree_deserialise_leaves(folder / STATE_FILE, _keys_to_data(like))
    restored = jax.tree.map(
        lambda new, old: jr.wrap_key_data(new) if _is_key(old) else new,
        loaded,
        like,
    )
    return restored, info


def clear_checkpoint(name: str) -> None:
    folder = checkpoint_dir(name)
    for f in (STATE_FILE, INFO_FILE):
        (folder / f).unlink(missing_ok=True)
