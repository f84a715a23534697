"""The registry: every data file the book reads, listed once in `registry.txt`.

Each line holds the file's path relative to the data root, its sha256 and the URL at a pinned
upstream commit (pooch's registry-file format, read with `pooch.Pooch.load_registry`).
"""

import dataclasses
import functools
import os
import warnings
from importlib import resources

with warnings.catch_warnings():
    # pooch imports `tqdm.auto`, which warns in a Jupyter kernel without ipywidgets; the book
    # shows no download progress bars, so that warning would only clutter every page.
    warnings.filterwarnings("ignore", message="IProgress not found")
    import pooch

from tutorial_lib.data._paths import APP_NAME, MIRROR_ENV

UNPINNED = "unpinned"


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """One registered file. `sha256` is None when the upstream checksum is not pinned."""

    path: str
    url: str
    sha256: str | None


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A named group of registered files. `staged` data sets are expected in an offline root."""

    name: str
    prefix: str
    patterns: tuple[str, ...]
    staged: bool
    description: str


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in [
        Dataset(
            "thermoprot",
            "thermoprot/",
            ("thermoprot/*.fasta",),
            True,
            "ThermoProt: 32,000 protein sequences in 4 growth-temperature classes",
        ),
        Dataset(
            "gb1",
            "flip/gb1/",
            ("flip/gb1/four_mutations_full_data.csv.zip", "flip/gb1/splits.zip"),
            True,
            "FLIP GB1 four-site fitness landscape and its official splits",
        ),
        Dataset(
            "galaxy-zoo",
            "galaxy-zoo/",
            ("galaxy-zoo/spiral/*.jpg", "galaxy-zoo/non_spiral/*.jpg"),
            True,
            "1,400 Galaxy Zoo 2 SDSS images, 700 spiral and 700 non-spiral",
        ),
        Dataset(
            "galaxy10-sdss",
            "galaxy10-sdss/",
            ("galaxy10-sdss/Galaxy10.h5",),
            False,
            "Galaxy10 SDSS (21,785 69x69 images, 10 classes); online only, checksum unpinned",
        ),
    ]
}


@functools.cache
def _pooch() -> pooch.Pooch:
    # Only the registry is used: fetching is done by `_fetch`, which never deletes or overwrites
    # a file in the data root (pooch would re-download over a file whose hash does not match).
    p = pooch.create(path=pooch.os_cache(APP_NAME), base_url="", registry={})
    with resources.files(__package__).joinpath("registry.txt").open("r", encoding="utf-8") as f:
        p.load_registry(f)
    return p


@functools.cache
def _specs() -> dict[str, FileSpec]:
    p = _pooch()
    specs = {}
    for path, checksum in p.registry.items():
        alg, _, digest = checksum.rpartition(":")
        if digest == UNPINNED:
            sha = None
        elif alg in ("", "sha256") and len(digest) == 64:
            sha = digest
        else:
            raise AssertionError(f"registry.txt: {path} must carry a sha256, got {checksum!r}")
        specs[path] = FileSpec(path=path, url=p.urls[path], sha256=sha)
    return specs


def registry() -> dict[str, FileSpec]:
    """All registered files, keyed by their path relative to the data root."""
    return dict(_specs())


def file_spec(path: str) -> FileSpec:
    """The registry entry for `path` (relative to the data root)."""
    try:
        return _specs()[path]
    except KeyError:
        raise KeyError(
            f"{path!r} is not a registered data file; see tutorial_lib/data/registry.txt"
        ) from None


def dataset_files(name: str) -> list[FileSpec]:
    """The registered files of data set `name`, in registry order."""
    try:
        prefix = DATASETS[name].prefix
    except KeyError:
        raise KeyError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}") from None
    return [s for p, s in _specs().items() if p.startswith(prefix)]


def url_for(spec: FileSpec) -> str:
    """The URL to download `spec` from: `$JAXGENAI_DATA_MIRROR/<path>` if set, else upstream.

    A mirror is any HTTP server exposing the data root's layout (e.g. an instructor's copy).
    """
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        return f"{mirror.rstrip('/')}/{spec.path}"
    return spec.url
