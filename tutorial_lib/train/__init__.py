"""Trainers that reproduce the shipped artifacts from scratch: `python -m tutorial_lib.train NAME`.

To add one, create a module in this package (e.g. `tutorial_lib/train/galaxy_ddpm.py`) with

    @register_trainer("galaxy-ddpm", description="DDPM on 32x32 Galaxy Zoo images")
    def train() -> TrainResult:
        ...
        return TrainResult(tree=model, config=CONFIG, data={...}, metrics={...})

Every non-underscore module of this package is imported when trainers are listed, so the
decorator is all the registration needed. `run_trainer` times the run and writes the artifact
(weights + metadata) with `tutorial_lib.artifacts.save_artifact`.
"""

import dataclasses
import importlib
import os
import pkgutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a trainer returns: the trained pytree and what the metadata must record."""

    tree: Any
    config: Mapping[str, Any]
    data: Mapping[str, Any]
    metrics: Mapping[str, Any]
    # Wall time of earlier sessions of a resumed run (see `_checkpoint`), added to this one's.
    previous_wall_s: float = 0.0


@dataclasses.dataclass(frozen=True)
class Trainer:
    name: str
    fn: Callable[[], TrainResult]
    description: str


_TRAINERS: dict[str, Trainer] = {}


class UnknownTrainerError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def register_trainer(name: str, *, description: str = ""):
    """Decorator registering `fn() -> TrainResult` as the trainer of artifact `name`."""

    def decorate(fn: Callable[[], TrainResult]) -> Callable[[], TrainResult]:
        if name in _TRAINERS and _TRAINERS[name].fn is not fn:
            raise ValueError(f"a trainer named {name!r} is already registered")
        _TRAINERS[name] = Trainer(name, fn, description or (fn.__doc__ or "").strip())
        return fn

    return decorate


def _discover() -> None:
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


def available_trainers() -> dict[str, Trainer]:
    """All registered trainers, by name (importing this package's trainer modules first)."""
    _discover()
    return dict(sorted(_TRAINERS.items()))


def get_trainer(name: str) -> Trainer:
    trainers = available_trainers()
    if name not in trainers:
        names = ", ".join(trainers) or "none registered yet"
        raise UnknownTrainerError(f"unknown trainer {name!r}; available: {names}")
    return trainers[name]


def run_trainer(name: str, *, root: str | os.PathLike | None = None) -> Path:
    """Train artifact `name` from scratch and save it (under `root`, default: the package)."""
    from tutorial_lib.artifacts import save_artifact

    trainer = get_trainer(name)
    start = time.perf_counter()
    result = trainer.fn()
    wall = time.perf_counter() - start + result.previous_wall_s
    return save_artifact(
        name,
        result.tree,
        config=result.config,
        data=result.data,
        metrics=result.metrics,
        wall_time_s=wall,
        command=f"python -m tutorial_lib.train {name}",
        root=root,
    )


__all__ = [
    "TrainResult",
    "Trainer",
    "UnknownTrainerError",
    "available_trainers",
    "get_trainer",
    "register_trainer",
    "run_trainer",
]
