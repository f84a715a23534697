"""Trainers that reproduce the shipped artifacts from scratch: `python -m tutorial_lib.train NAME`.

To add one, create a module in this package (e.g. `tutorial_lib/train/galaxy_ddpm.py`) with

    def make_config(steps: int | None = None, profile: str | None = None) -> dict:
        ...  # the full recorded config of the size profile; `steps` overrides the step count

    @register_trainer("galaxy-ddpm", make_config=make_config, description="DDPM on galaxies")
    def train(config: dict) -> TrainResult:
        ...
        return TrainResult(tree=model, config=config, data={...}, metrics={...})

Every non-underscore module of this package is imported when trainers are listed, so the
decorator is all the registration needed. `run_trainer` times the run and writes the artifact
(weights + metadata) with `tutorial_lib.artifacts.save_artifact`.

Where a run writes: never into the package unless asked with `install=True` (`--install`), and
only a run of the full recorded config may be installed; a smoke run (`--steps N` or
`JAXGENAI_TRAIN_STEPS=N`) is refused there before it starts. Otherwise the artifact goes to
`root` (`--out DIR`), else `$JAXGENAI_ARTIFACTS`, else the per-user folder `default_out_root()`;
the pages read it from there when `JAXGENAI_ARTIFACTS` names that folder.
"""

import dataclasses
import importlib
import os
import pkgutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

STEPS_ENV = "JAXGENAI_TRAIN_STEPS"


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
    fn: Callable[[dict], TrainResult]
    make_config: Callable[..., dict]
    description: str


_TRAINERS: dict[str, Trainer] = {}


class UnknownTrainerError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class TrainerConfigError(ValueError):
    """A training run asked for something it cannot do (bad step count, forbidden target)."""


def register_trainer(name: str, *, make_config: Callable[..., dict], description: str = ""):
    """Decorator registering `fn(config) -> TrainResult` as the trainer of artifact `name`.

    `make_config(steps=None, profile=None)` gives the full recorded config (of the size profile
    in force when `profile` is None); with `steps`, the same config with that step count.
    """

    def decorate(fn: Callable[[dict], TrainResult]) -> Callable[[dict], TrainResult]:
        if name in _TRAINERS and _TRAINERS[name].fn is not fn:
            raise ValueError(f"a trainer named {name!r} is already registered")
        _TRAINERS[name] = Trainer(name, fn, make_config, description or (fn.__doc__ or "").strip())
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


def parse_steps(value: Any, *, source: str = "steps") -> int:
    """A step count: a whole number >= 1 (an int, or text such as "200"); else a clear error."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and text.lstrip("+").isdecimal():
        text = int(text)
    if isinstance(text, bool) or not isinstance(text, int) or text < 1:
        raise TrainerConfigError(
            f"{source}={value!r} is not a number of training steps: give a whole number >= 1 "
            "(e.g. 2 for a smoke run)"
        )
    return text


def steps_from_env() -> int | None:
    """The step count `$JAXGENAI_TRAIN_STEPS` asks for, or None when it is unset or empty."""
    value = os.environ.get(STEPS_ENV, "")
    return parse_steps(value, source=STEPS_ENV) if value.strip() else None


def default_out_root() -> Path:
    """Where a run writes unless told otherwise: `$JAXGENAI_ARTIFACTS`, else a per-user folder."""
    from tutorial_lib.artifacts import ARTIFACTS_ENV
    from tutorial_lib.data import cache_dir

    env = os.environ.get(ARTIFACTS_ENV)
    return Path(env).expanduser().resolve() if env else cache_dir() / "artifacts"


def _same_folder(a: Path, b: Path) -> bool:
    return a.expanduser().resolve() == b.expanduser().resolve()


def output_root(
    name: str, *, config: dict, root: str | os.PathLike | None = None, install: bool = False
) -> Path:
    """The folder a run of `name` with `config` will write to, or a `TrainerConfigError`."""
    from tutorial_lib.artifacts import config_differences, shipped_root

    shipped = shipped_root()
    if install:
        if root is not None and not _same_folder(Path(root), shipped):
            raise TrainerConfigError("give either --install (the package) or --out DIR, not both")
        full = get_trainer(name).make_config()
        diffs = config_differences(config, full, labels=("this run", "recorded config"))
        if diffs:
            raise TrainerConfigError(
                f"refusing to install {name!r} into the package ({shipped}): this run's config "
                "is not the full recorded one:\n  "
                + "\n  ".join(diffs)
                + f"\nUnset {STEPS_ENV} and drop --steps to train the shipped configuration, or "
                "write the run elsewhere with --out DIR."
            )
        return shipped
    target = Path(root) if root is not None else default_out_root()
    if _same_folder(target, shipped):
        raise TrainerConfigError(
            f"{target} is the package's folder of shipped artifacts; a run writes there only "
            "with --install (and only the full recorded configuration)."
        )
    return target


def _command(name: str, steps: int | None) -> str:
    """The command that reproduces the artifact's content (where it is written does not)."""
    return f"python -m tutorial_lib.train {name}" + (f" --steps {steps}" if steps else "")


def run_trainer(
    name: str,
    *,
    root: str | os.PathLike | None = None,
    install: bool = False,
    steps: int | None = None,
) -> Path:
    """Train artifact `name` from scratch and save it; returns its folder.

    `steps` (else `$JAXGENAI_TRAIN_STEPS`) shortens the run; `install=True` writes into the
    package, which only the full recorded config may do; otherwise the artifact goes to `root`,
    else `default_out_root()`. Where it may write is checked before training starts.
    """
    from tutorial_lib.artifacts import save_artifact

    trainer = get_trainer(name)
    steps = parse_steps(steps) if steps is not None else steps_from_env()
    config = trainer.make_config(steps=steps)
    target = output_root(name, config=config, root=root, install=install)
    start = time.perf_counter()
    result = trainer.fn(config)
    wall = time.perf_counter() - start + result.previous_wall_s
    return save_artifact(
        name,
        result.tree,
        config=result.config,
        data=result.data,
        metrics=result.metrics,
        wall_time_s=wall,
        command=_command(name, steps),
        root=target,
    )


__all__ = [
    "STEPS_ENV",
    "TrainResult",
    "Trainer",
    "TrainerConfigError",
    "UnknownTrainerError",
    "available_trainers",
    "default_out_root",
    "get_trainer",
    "output_root",
    "parse_steps",
    "register_trainer",
    "run_trainer",
    "steps_from_env",
]
