"""Where data and derived caches live."""

import os
from pathlib import Path

import platformdirs

APP_NAME = "jax-genai-science"
DATA_ENV = "JAXGENAI_DATA"
CACHE_ENV = "JAXGENAI_CACHE"
MIRROR_ENV = "JAXGENAI_DATA_MIRROR"
OFFLINE_ENV = "JAXGENAI_OFFLINE"


def data_root() -> Path:
    """The folder holding the raw data files, laid out as in the registry.

    `$JAXGENAI_DATA` when set (e.g. a read-only folder staged by an instructor), else a
    per-user cache directory. Nothing is created here; downloads create what they need.
    """
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return Path(platformdirs.user_cache_dir(APP_NAME)) / "data"


def cache_dir() -> Path:
    """A writable folder for derived arrays (decoded, resized images, ...).

    `$JAXGENAI_CACHE` when set, else a per-user cache directory. Kept apart from the data
    root because `$JAXGENAI_DATA` may be read-only and holds the user's own files.
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return Path(platformdirs.user_cache_dir(APP_NAME)) / "derived"


def offline() -> bool:
    """True when `$JAXGENAI_OFFLINE` asks the library never to try the network."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
