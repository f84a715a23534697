"""Tasks for the book: ``nox -s tests``, ``nox -s docs``, ``nox -s browser``, ``nox -s docs-live``,
``nox -s lint``, ``nox -s notebooks``, ``nox -s data``. Each session installs what it needs into
its own virtual environment."""

import hashlib
import os
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).parent
DOCS = ROOT / "docs"
BUILD = DOCS / "_build"

nox.options.default_venv_backend = "uv|virtualenv"
# uv does not read pip's configuration; a wheel house that pip is told about (a machine's CPU
# build of torch, say) is passed on, so that both installers resolve the same wheels.
if os.environ.get("PIP_FIND_LINKS") and not os.environ.get("UV_FIND_LINKS"):
    os.environ["UV_FIND_LINKS"] = os.environ["PIP_FIND_LINKS"]
nox.options.sessions = ["lint", "tests", "docs"]
nox.options.reuse_existing_virtualenvs = True


# `tutorial_lib.config.BUILD_XLA_FLAGS` (a test keeps the two equal): pages compile with less
# LLVM optimisation and XLA's simpler loop emitters, several times faster for small programs;
# pages that time JAX against another tool drop them again with `config.xla_defaults()`.
BUILD_XLA_FLAGS = "--xla_backend_optimization_level=1 --xla_cpu_use_fusion_emitters=false"


def _build_xla_flags(session: nox.Session) -> str:
    """`BUILD_XLA_FLAGS` if the installed jaxlib knows them (XLA aborts on an unknown flag, and
    a future release may retire one), else none: the book then builds, only more slowly."""
    try:
        session.run(
            "python",
            "-c",
            "import jax.numpy as jnp; jnp.zeros(1).block_until_ready()",
            env={"XLA_FLAGS": BUILD_XLA_FLAGS, **_bytecode_env(session)},
            silent=True,
        )
    except nox.command.CommandFailed:
        session.warn(f"This jaxlib rejects {BUILD_XLA_FLAGS}: building with XLA's defaults.")
        return ""
    return BUILD_XLA_FLAGS


def _bytecode_env(session: nox.Session) -> dict[str, str]:
    """Python writes the bytecode of what it imports into the session's own virtualenv
    (`PYTHONPYCACHEPREFIX`), even where `PYTHONDONTWRITEBYTECODE` is set.

    Every notebook runs in a new kernel: without cached bytecode each would re-parse JAX, SciPy
    and the rest from source (import of `tutorial_lib.diffusion` 6.0 s instead of 3.1 s).
    Compiling everything at install time (uv's `--compile-bytecode`) also compiles the ~17,000
    modules nothing imports (PyTorch's, SymPy's): 45 s instead of 8 s for the docs install,
    measured, against ~15 s to compile, once, what the book imports. The prefix keeps the
    bytecode out of the project's and the user's folders.
    """
    return {
        "PYTHONPYCACHEPREFIX": str(Path(session.virtualenv.location) / "pycache"),
        "PYTHONDONTWRITEBYTECODE": "",  # empty counts as unset
    }


def _env(session: nox.Session, *, xla_flags: str = "") -> dict[str, str]:
    """Environment for commands: a relative JAXGENAI_DATA is made absolute, because notebooks
    execute with docs/ as their working directory; `xla_flags` (the build's) are added to
    `XLA_FLAGS`; bytecode as in `_bytecode_env`."""
    env = {"PYTHONHASHSEED": "0", **_bytecode_env(session)}
    if os.environ.get("JAXGENAI_DATA"):
        env["JAXGENAI_DATA"] = str(Path(os.environ["JAXGENAI_DATA"]).expanduser().resolve())
    if xla_flags:
        env["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {xla_flags}".strip()
    return env


def _library_fingerprint(xla_flags: str) -> str:
    """Hash of the library, the dependency pins and the compiler flags that executed pages
    depend on."""
    digest = hashlib.sha256(xla_flags.encode())  # compiler settings change results too
    for path in sorted([ROOT / "pyproject.toml", *(ROOT / "tutorial_lib").rglob("*")]):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _pages() -> list[str]:
    return sorted(
        str(p.relative_to(ROOT))
        for p in DOCS.rglob("*.md")
        if "_build" not in p.parts and "{code-cell}" in p.read_text(encoding="utf-8")
    )


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (pytest exits non-zero when no test runs, which fails the session)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs, env=_env(session))


@nox.session
def docs(session: nox.Session) -> None:
    """Build the executed HTML book from clean, warnings as errors.

    The HTML is rebuilt from scratch; executed notebooks come from the jupyter-cache in
    docs/_build/.jupyter_cache, so unchanged pages are not re-run while the library is
    unchanged. ``nox -s docs -- --no-cache`` clears that cache too.
    """
    session.install("-e", ".[docs]")
    shutil.rmtree(BUILD / "html", ignore_errors=True)
    shutil.rmtree(BUILD / "doctrees", ignore_errors=True)
    args = list(session.posargs)
    cache = BUILD / ".jupyter_cache"
    stamp = BUILD / "library.sha256"
    xla_flags = _build_xla_flags(session)
    fingerprint = _library_fingerprint(xla_flags)
    # jupyter-cache re-runs a page only when the page's code changes; it cannot see a change
    # in tutorial_lib, so a changed library invalidates every cached page.
    stale = not stamp.exists() or stamp.read_text().strip() != fingerprint
    if "--no-cache" in args or stale:
        if "--no-cache" in args:
            args.remove("--no-cache")
        session.log("Executing every page afresh (library changed or --no-cache).")
        shutil.rmtree(cache, ignore_errors=True)
    BUILD.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fingerprint + "\n")
    session.run(
        "sphinx-build",
        "-b",
        "html",
        "-W",
        "--keep-going",
        "-n",
        "-d",
        str(BUILD / "doctrees"),
        str(DOCS),
        str(BUILD / "html"),
        *args,
        env=_env(session, xla_flags=xla_flags),
    )
    session.log(f"Book built: {BUILD / 'html' / 'index.html'}")


@nox.session
def browser(session: nox.Session) -> None:
    """Open every page of the built book in headless Chromium (the system's) and check it:
    console errors, math, images, internal links, launch links, site search."""
    session.install("-e", ".[browser]")
    session.run("python", "tests/site_check.py", str(BUILD / "html"), *session.posargs)


@nox.session
def data(session: nox.Session) -> None:
    """Download the staged data sets into the data root (`JAXGENAI_DATA`), verifying sha256."""
    session.install("-e", ".")
    session.run("python", "-m", "tutorial_lib.data", "fetch", *session.posargs, env=_env(session))


@nox.session(name="docs-live")
def docs_live(session: nox.Session) -> None:
    """Serve the book with live reload while you edit pages."""
    session.install("-e", ".[docs,live]")
    session.run(
        "sphinx-autobuild",
        "--watch",
        "tutorial_lib",
        "-d",
        str(BUILD / "doctrees"),
        str(DOCS),
        str(BUILD / "html"),
        *session.posargs,
        env=_env(session, xla_flags=_build_xla_flags(session)),
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install("ruff>=0.17.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def notebooks(session: nox.Session) -> None:
    """Sync every MyST page with its paired .ipynb (jupytext), newest side wins."""
    session.install("jupytext>=1.19.6")
    session.run("jupytext", "--sync", *_pages())
