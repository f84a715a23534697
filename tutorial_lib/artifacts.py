"""Artifact store: small trained results (weights, embeddings) shipped inside the package.

Each artifact is a folder `tutorial_lib/pretrained/<name>/` holding

- `weights.eqx`: a pytree of arrays (an Equinox model, a dict of embeddings, ...) written
  with `equinox.tree_serialise_leaves`;
- `metadata.json`: the model config, the training data and its hash, the exact command that
  produced it, wall time, hardware, software versions, evaluation metrics and the sha256 of
  `weights.eqx`.

`load_artifact(name, like, config=...)` refuses an artifact whose recorded config differs from
the code's, or whose weights fail their sha256, and says how to rebuild it:
`python -m tutorial_lib.train NAME` (see `tutorial_lib.train`). Keep artifacts to a few MB.

Artifacts are read from `$JAXGENAI_ARTIFACTS` when it is set, else from the package
(`shipped_root()`). `save_artifact` replaces an artifact atomically: the new copy is written and
synced aside, the old one is renamed to `.NAME.previous`, the new one renamed in, and only then
is the old copy deleted; an interruption between the two renames leaves the old copy, which the
next read or write of that root puts back (`verify_artifact` tells "missing" from "corrupt").
"""

import datetime
import hashlib
import json
import os
import platform
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import equinox as eqx
import jax

from tutorial_lib.data import DataError

__all__ = [
    "ARTIFACTS_ENV",
    "FORMAT_VERSION",
    "MAX_SHIPPED_BYTES",
    "METADATA_FILE",
    "WEIGHTS_FILE",
    "ArtifactError",
    "artifacts_root",
    "config_differences",
    "config_sha256",
    "hardware_info",
    "list_artifacts",
    "load_artifact",
    "read_metadata",
    "save_artifact",
    "shipped_root",
    "verify_artifact",
]

ARTIFACTS_ENV = "JAXGENAI_ARTIFACTS"
METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "weights.eqx"
FORMAT_VERSION = 1
MAX_SHIPPED_BYTES = 8 * 2**20

Value = TypeVar("Value")


class ArtifactError(DataError):
    """An artifact is missing, does not match the code's config, or fails verification."""


def shipped_root() -> Path:
    """The folder of the artifacts shipped inside the package."""
    return Path(__file__).parent / "pretrained"


def artifacts_root() -> Path:
    """Where artifacts are read: `$JAXGENAI_ARTIFACTS`, else the shipped ones in the package."""
    env = os.environ.get(ARTIFACTS_ENV)
    return Path(env).expanduser().resolve() if env else shipped_root()


def _root(root: str | os.PathLike | None) -> Path:
    return Path(root) if root is not None else artifacts_root()


def _previous(root: Path, name: str) -> Path:
    return root / f".{name}.previous"


def _recover(root: Path, name: str) -> None:
    """Put back the old copy of `name` if a replacement was interrupted between its renames."""
    old = _previous(root, name)
    if old.is_dir() and not (root / name).exists():
        try:
            os.replace(old, root / name)
        except OSError:
            return  # a read-only root: reads fall back to the old copy in `_folder`
        warnings.warn(
            f"artifact {name!r} in {root}: an interrupted replacement was undone (the previous "
            "copy is back in place)",
            stacklevel=3,
        )


def _folder(root: Path, name: str) -> Path:
    _recover(root, name)
    folder = root / name
    old = _previous(root, name)
    return old if not folder.exists() and old.is_dir() else folder


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_name(name: str) -> None:
    if (
        not isinstance(name, str)
        or not name.strip()
        or any(c in name for c in "/\\\0")
        or name.startswith(".")
    ):
        raise ArtifactError(
            f"invalid artifact name {name!r}: use a plain folder name such as 'galaxy-ddpm' "
            "(no path separators, not starting with a dot)"
        )


def _canonical(obj: Any) -> Any:
    """`obj` as JSON would give it back (tuples become lists, keys become strings)."""
    try:
        return json.loads(json.dumps(obj, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ArtifactError(f"artifact metadata must be plain JSON data: {e}") from e


def config_sha256(config: Mapping[str, Any]) -> str:
    """A stable hash of a JSON-serialisable config."""
    text = json.dumps(_canonical(dict(config)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hardware_info() -> dict[str, Any]:
    """The machine a result was produced on (for the metadata)."""
    devices = jax.devices()
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "devices": sorted({f"{d.platform}:{d.device_kind}" for d in devices}),
        "n_devices": len(devices),
    }


def _software_info() -> dict[str, str]:
    import equinox
    import numpy

    import tutorial_lib

    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "equinox": equinox.__version__,
        "numpy": numpy.__version__,
        "tutorial_lib": getattr(tutorial_lib, "__version__", "unknown"),
    }


def save_artifact(
    name: str,
    tree: Any,
    *,
    config: Mapping[str, Any],
    data: Mapping[str, Any],
    metrics: Mapping[str, Any],
    wall_time_s: float,
    command: str | None = None,
    root: str | os.PathLike | None = None,
) -> Path:
    """Write artifact `name` (weights + metadata) atomically; returns its folder.

    `data` describes the training data (e.g. `{"dataset": "galaxy-zoo", "sha256": ...}`),
    `metrics` the evaluation numbers. An existing artifact of that name is replaced; until the
    new copy is complete and synced, the old one stays intact (see the module docstring).
    """
    _check_name(name)
    root = _root(root)
    root.mkdir(parents=True, exist_ok=True)
    _recover(root, name)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}."))
    try:
        eqx.tree_serialise_leaves(staging / WEIGHTS_FILE, tree)
        size = (staging / WEIGHTS_FILE).stat().st_size
        if size > MAX_SHIPPED_BYTES:
            warnings.warn(
                f"artifact {name!r} is {size / 2**20:.1f} MB; shipped artifacts should stay "
                f"under {MAX_SHIPPED_BYTES / 2**20:.0f} MB",
                stacklevel=2,
            )
        metadata = {
            "name": name,
            "format_version": FORMAT_VERSION,
            "config": _canonical(dict(config)),
            "config_sha256": config_sha256(config),
            "data": _canonical(dict(data)),
            "command": command or f"python -m tutorial_lib.train {name}",
            "wall_time_s": round(float(wall_time_s), 3),
            "hardware": hardware_info(),
            "software": _software_info(),
            "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "metrics": _canonical(dict(metrics)),
            "files": {WEIGHTS_FILE: {"sha256": _sha256(staging / WEIGHTS_FILE), "bytes": size}},
        }
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
        for f in (WEIGHTS_FILE, METADATA_FILE):
            _fsync(staging / f)
        staging.chmod(0o755)
        _fsync(staging)
        target, old = root / name, _previous(root, name)
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
        _fsync(root)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def list_artifacts(*, root: str | os.PathLike | None = None) -> list[str]:
    """Names of the artifacts present under `root`."""
    root = _root(root)
    if not root.is_dir():
        return []
    names = {p.name for p in root.iterdir() if not p.name.startswith(".")}
    names |= {
        p.name[1 : -len(".previous")] for p in root.glob(".*.previous") if p.is_dir()
    }  # interrupted replacements: their old copy still counts
    return sorted(n for n in names if (_folder(root, n) / METADATA_FILE).is_file())


def read_metadata(name: str, *, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The metadata of artifact `name` (a JSON object; anything else is refused)."""
    _check_name(name)
    root = _root(root)
    path = _folder(root, name) / METADATA_FILE
    if not path.is_file():
        available = ", ".join(list_artifacts(root=root)) or "none"
        raise ArtifactError(
            f"no artifact {name!r} in {root} (available: {available}). "
            f"Build it with `python -m tutorial_lib.train {name}`."
        )
    rebuild = f"rebuild it with `python -m tutorial_lib.train {name}`"
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{path} is not valid JSON ({e}); {rebuild}") from e
    if not isinstance(metadata, dict):
        raise ArtifactError(
            f"{path} holds a JSON {type(metadata).__name__}, not the object of an artifact's "
            f"metadata; {rebuild}"
        )
    return metadata


def config_differences(
    recorded: Any,
    expected: Any,
    *,
    labels: tuple[str, str] = ("artifact", "code"),
    prefix: str = "",
) -> list[str]:
    """One line per key where two JSON-like configs differ, e.g. `train.steps: artifact has 2,
    code has 8000`; `labels` name the two sides."""
    mine, theirs = labels
    if isinstance(recorded, dict) and isinstance(expected, dict):
        out = []
        for key in sorted(set(recorded) | set(expected)):
            where = f"{prefix}.{key}" if prefix else key
            if key not in recorded:
                out.append(f"{where}: missing from the {mine}, {theirs} has {expected[key]!r}")
            elif key not in expected:
                out.append(f"{where}: {mine} has {recorded[key]!r}, {theirs} has no such key")
            else:
                out += config_differences(recorded[key], expected[key], labels=labels, prefix=where)
        return out
    if recorded != expected:
        return [f"{prefix or 'config'}: {mine} has {recorded!r}, {theirs} has {expected!r}"]
    return []


def load_artifact(
    name: str, like: Value, *, config: Mapping[str, Any], root: str | os.PathLike | None = None
) -> tuple[Value, dict[str, Any]]:
    """Load artifact `name` into the structure of `like`; returns `(tree, metadata)`.

    `like` is a pytree of the right structure, shapes and dtypes (e.g. a freshly initialised
    model, or `eqx.filter_eval_shape` of its constructor). `config` must equal the config the
    artifact was trained with.
    """
    metadata = read_metadata(name, root=root)
    folder = _folder(_root(root), name)
    rebuild = f"Rebuild it with `python -m tutorial_lib.train {name}`."
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"artifact {name!r} has format {metadata.get('format_version')!r}, this code reads "
            f"{FORMAT_VERSION}. {rebuild}"
        )
    diffs = config_differences(metadata.get("config"), _canonical(dict(config)))
    if diffs:
        raise ArtifactError(
            f"artifact {name!r} was trained with a different config than the code asks for:\n  "
            + "\n  ".join(diffs)
            + f"\n{rebuild}"
        )
    weights = folder / WEIGHTS_FILE
    expected, got = _recorded_sha256(metadata), _sha256(weights) if weights.is_file() else None
    if got is None or got != expected:
        raise ArtifactError(
            f"sha256 mismatch for {weights}: metadata says {expected}, file has {got}. "
            f"The weights are damaged or were replaced without their metadata. {rebuild}"
        )
    try:
        tree = eqx.tree_deserialise_leaves(weights, like)
    except (RuntimeError, ValueError, TypeError, EOFError) as e:
        raise ArtifactError(
            f"artifact {name!r} does not fit the structure of `like`: {e}. {rebuild}"
        ) from e
    return tree, metadata


def _recorded_sha256(metadata: Mapping[str, Any]) -> str | None:
    files = metadata.get("files")
    entry = files.get(WEIGHTS_FILE) if isinstance(files, dict) else None
    return entry.get("sha256") if isinstance(entry, dict) else None


def verify_artifact(name: str, *, root: str | os.PathLike | None = None) -> str:
    """`"ok"`, `"missing"`, or `"corrupt: <why>"` for artifact `name` (never raises for a bad
    artifact; checks the metadata and the weights' sha256, not the config)."""
    root = _root(root)
    if not (_folder(root, name) / METADATA_FILE).is_file():
        return "missing"
    try:
        metadata = read_metadata(name, root=root)
    except ArtifactError as e:
        return f"corrupt: {str(e).splitlines()[0]}"
    weights = _folder(root, name) / WEIGHTS_FILE
    if not weights.is_file():
        return f"corrupt: {WEIGHTS_FILE} is missing"
    expected, got = _recorded_sha256(metadata), _sha256(weights)
    if got != expected:
        return f"corrupt: sha256 of {WEIGHTS_FILE} is {got[:12]}..., metadata says {expected}"
    return "ok"
