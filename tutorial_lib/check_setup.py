"""Check that this machine can run the book: `python -m tutorial_lib.check_setup [--strict]`.

Prints the version of every dependency, the JAX backend and its devices, the size profile,
whether the data root holds the staged data sets, and whether each shipped artifact (trained
weights) is intact. A file whose sha256 does not match is reported as *corrupt*, an absent one
as *missing*. With `--strict` the exit code is 1 when a required dependency, a data set or
an artifact is missing or corrupt, so an instructor can run it when preparing a JupyterHub.
"""

import argparse
import importlib.metadata as metadata
import platform
import re
import sys

__all__ = [
    "check_artifacts",
    "check_data",
    "check_dependencies",
    "check_jax",
    "main",
]

DISTRIBUTION = "jax-genai-science"


def _requirements() -> list[tuple[str, str | None]]:
    """(package name, extra or None) for every requirement of the book's distribution."""
    try:
        requires = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return []
    out = []
    for req in requires:
        name = re.match(r"[A-Za-z0-9_.\-]+", req).group(0)
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", req)
        out.append((name, extra.group(1) if extra else None))
    return out


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check_dependencies() -> list[str]:
    """Print dependency versions; return the names of missing required ones."""
    missing = []
    requirements = _requirements()
    if not requirements:
        print(
            f"  {DISTRIBUTION} is not installed as a package (pip install -e .); "
            "checking the core stack only"
        )
        requirements = [
            (n, None)
            for n in (
                "jax",
                "jaxlib",
                "equinox",
                "diffrax",
                "optax",
                "lineax",
                "optimistix",
                "jaxtyping",
                "numpy",
                "matplotlib",
                "pooch",
            )
        ]
    for name, extra in requirements:
        version = _version(name)
        where = "required" if extra is None else f"extra [{extra}]"
        print(f"  {name:<28} {version or 'MISSING':<14} {where}")
        if version is None and extra is None:
            missing.append(name)
    return missing


def check_jax() -> None:
    import jax

    from tutorial_lib import config

    print(f"  jax {jax.__version__}, backend: {jax.default_backend()}")
    for device in jax.devices():
        print(f"  device: {device} ({device.device_kind})")
    print(f"  size profile: {config.profile()} (set {config.PROFILE_ENV}=cpu|gpu to override)")


def check_data() -> tuple[list[str], list[str]]:
    """Print the data root and each staged data set; return the (missing, corrupt) ones."""
    from tutorial_lib import data

    print(f"  data root: {data.data_root()} (set JAXGENAI_DATA to change it)")
    missing, corrupt = [], []
    for record in data.dataset_status():
        state = "ok" if record.verified else record.detail
        print(f"  {record.name:<28} {state}")
        if record.present and "mismatch" in record.detail:
            corrupt.append(record.name)
        elif not record.verified:
            missing.append(record.name)
    return missing, corrupt


def check_artifacts() -> tuple[list[str], list[str]]:
    """Print each artifact the trainers make and its state; return the (missing, corrupt) ones.

    Read from where the pages read them: `$JAXGENAI_ARTIFACTS`, else the package.
    """
    from tutorial_lib.artifacts import artifacts_root, verify_artifact
    from tutorial_lib.train import available_trainers

    print(f"  artifacts: {artifacts_root()} (set JAXGENAI_ARTIFACTS to change it)")
    missing, corrupt = [], []
    for name in available_trainers():
        state = verify_artifact(name)
        print(f"  {name:<28} {state}")
        if state == "missing":
            missing.append(name)
        elif state != "ok":
            corrupt.append(name)
    return missing, corrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_lib.check_setup", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 if a dependency or a data set is missing",
    )
    args = parser.parse_args(argv)

    print(f"Python {platform.python_version()} on {platform.platform()}")
    print("Dependencies:")
    missing = check_dependencies()
    print("JAX:")
    check_jax()
    print("Data:")
    missing_data, corrupt_data = check_data()
    print("Artifacts:")
    missing_art, corrupt_art = check_artifacts()

    absent = (
        [f"dependency {m}" for m in missing]
        + [f"data set {m}" for m in missing_data]
        + [f"artifact {m}" for m in missing_art]
    )
    corrupt = [f"data set {m}" for m in corrupt_data] + [f"artifact {m}" for m in corrupt_art]
    if absent:
        print("Missing: " + ", ".join(absent))
        print("Install the book with `pip install -e .` and stage the data (see the Data page).")
    if corrupt:
        print("Corrupt (sha256 mismatch or unreadable): " + ", ".join(corrupt))
        print(
            "Re-copy the staged data folder, or reinstall the package to restore its artifacts "
            "(`python -m tutorial_lib.train NAME` rebuilds one from scratch)."
        )
    if not (absent or corrupt):
        print("Everything the book needs is here.")
    return 1 if (args.strict and (absent or corrupt)) else 0


if __name__ == "__main__":
    sys.exit(main())
