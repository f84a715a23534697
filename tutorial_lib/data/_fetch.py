"""Find registered files in the data root, download missing ones, and verify every one."""

import concurrent.futures
import dataclasses
import os
import tempfile
import warnings
from pathlib import Path

with warnings.catch_warnings():
    # pooch imports `tqdm.auto`, which warns in a Jupyter kernel without ipywidgets (see
    # `_registry`); this module is imported first, so it must guard the import too.
    warnings.filterwarnings("ignore", message="IProgress not found")
    import pooch

from tutorial_lib.data._errors import ChecksumError, DataError, DownloadError
from tutorial_lib.data._paths import DATA_ENV, OFFLINE_ENV, data_root, offline
from tutorial_lib.data._registry import DATASETS, FileSpec, dataset_files, file_spec, url_for

# Short connect timeout so that an offline machine fails in seconds, not minutes.
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0
DOWNLOAD_WORKERS = 8


class UnverifiedDataWarning(UserWarning):
    """A file was used without a pinned sha256 to check it against."""


class DataRootError(DataError):
    """`$JAXGENAI_DATA` names a folder that does not exist."""


def _check_data_root() -> None:
    # A mistyped $JAXGENAI_DATA must not become a new, empty data root full of downloads.
    # Not a DownloadError: `load_galaxies(source="auto")` must not fall back quietly either.
    env, root = os.environ.get(DATA_ENV), data_root()
    if env and not root.is_dir():
        raise DataRootError(
            f"the folder named by {DATA_ENV} does not exist: {DATA_ENV}={env!r} ({root}). "
            f"Fix the path, or unset {DATA_ENV} to use the per-user data folder. Nothing was "
            f"downloaded: this library never creates the folder that {DATA_ENV} names."
        )


def file_sha256(path: str | os.PathLike) -> str:
    """The hex sha256 of a file."""
    return pooch.file_hash(str(path), alg="sha256")


def _mismatch_message(spec: FileSpec, where: Path, expected: str, got: str, own: bool) -> str:
    if own:
        todo = (
            "Replace it with a fresh copy (re-copy the staged data folder), or delete it so that "
            f"it is downloaded again from {url_for(spec)}. This library never deletes or "
            "overwrites files in the data root."
        )
    else:
        todo = "The download was discarded; try again, or stage the file by hand."
    return (
        f"sha256 mismatch for data file {spec.path!r}; the file was NOT used.\n"
        f"  file:     {where}\n"
        f"  expected: {expected}\n"
        f"  got:      {got}\n"
        f"It is truncated, corrupted or a different version of the data. {todo}"
    )


def _check_existing(spec: FileSpec, target: Path, sha256: str | None) -> None:
    expected = spec.sha256 or sha256
    got = file_sha256(target)
    if expected is not None:
        if got != expected:
            raise ChecksumError(_mismatch_message(spec, target, expected, got, own=True))
        return
    # Unpinned upstream checksum: trust on first use, then hold the file to that hash.
    sidecar = target.with_name(target.name + ".sha256")
    if sidecar.exists():
        recorded = sidecar.read_text().split()[0]
        if got != recorded:
            raise ChecksumError(_mismatch_message(spec, target, recorded, got, own=True))
    warnings.warn(
        f"{spec.path} has no pinned sha256 in the book's registry, so it is NOT verified "
        f"(its sha256 is {got}). Pass that hash explicitly to pin it.",
        UnverifiedDataWarning,
        stacklevel=4,
    )


def _download_error(spec: FileSpec, target: Path, url: str, reason: str) -> DownloadError:
    return DownloadError(
        f"Data file {spec.path!r} is missing and could not be downloaded.\n"
        f"  looked for: {target}\n"
        f"  data root:  {data_root()} "
        f"(set {DATA_ENV} to use another folder)\n"
        f"  tried URL:  {url}\n"
        f"  reason:     {reason}\n"
        f"On a machine without internet, stage the data folder, set {DATA_ENV}=/path/to/data "
        "and run `python -m tutorial_lib.check_setup --strict` (see the book's Data page)."
    )


def _download(spec: FileSpec, target: Path, sha256: str | None) -> None:
    _check_data_root()
    url = url_for(spec)
    if offline():
        raise _download_error(spec, target, url, f"{OFFLINE_ENV} is set, so no download tried")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".part"
        )
    except OSError as e:
        raise _download_error(spec, target, url, f"cannot write to the data root: {e}") from e
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        downloader = pooch.HTTPDownloader(
            progressbar=False, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)
        )
        try:
            downloader(url, str(tmp), None)
        except Exception as e:  # requests' errors, HTTP status errors, OSError
            raise _download_error(spec, target, url, f"{type(e).__name__}: {e}") from e
        got = file_sha256(tmp)
        expected = spec.sha256 or sha256
        if expected is not None and got != expected:
            raise ChecksumError(_mismatch_message(spec, Path(url), expected, got, own=False))
        # Only a verified file ever gets the real name, so a partial download cannot pass.
        # mkstemp makes it private (0600); a shared (hub) data root must be world-readable.
        tmp.chmod(0o644)
        os.replace(tmp, target)
        if expected is None:
            target.with_name(target.name + ".sha256").write_text(f"{got}  {target.name}\n")
            warnings.warn(
                f"Downloaded {spec.path} without a pinned sha256 (got {got}); it is NOT "
                "verified against a known checksum. Later loads are held to this hash.",
                UnverifiedDataWarning,
                stacklevel=4,
            )
    finally:
        tmp.unlink(missing_ok=True)


def fetch_file(path: str, *, sha256: str | None = None) -> Path:
    """The local path of registered file `path`, downloaded if missing, always verified.

    `sha256` pins a file whose registry entry is unpinned; it is ignored for pinned files.
    Raises `DataError` (`DownloadError`, `ChecksumError`) with what to do.
    """
    spec = file_spec(path)
    target = data_root() / spec.path
    if target.exists():
        _check_existing(spec, target, sha256)
    else:
        _download(spec, target, sha256)
    return target


def fetch_dataset(name: str) -> list[Path]:
    """Local, verified paths of all files of data set `name` (downloading missing ones)."""
    specs = dataset_files(name)
    root = data_root()
    present = {s.path for s in specs if (root / s.path).exists()}
    missing = [s for s in specs if s.path not in present]
    for s in specs:
        if s.path in present:
            _check_existing(s, root / s.path, None)
    if missing:
        if offline():
            fetch_file(missing[0].path)  # raises with the full explanation
        with concurrent.futures.ThreadPoolExecutor(DOWNLOAD_WORKERS) as pool:
            futures = [pool.submit(_download, s, root / s.path, None) for s in missing]
            try:
                for f in futures:  # in registry order, so the error names the first failure
                    f.result()
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    return [root / s.path for s in specs]


@dataclasses.dataclass(frozen=True)
class DatasetStatus:
    """Whether a data set's files are in the data root and match their sha256."""

    name: str
    paths: tuple[str, ...]
    present: bool
    verified: bool
    detail: str


def dataset_status(*, include_online_only: bool = False) -> list[DatasetStatus]:
    """One record per registered staged data set, checked in the current data root.

    Never downloads. `present`: every file exists; `verified`: present and every sha256 matches.
    """
    root = data_root()
    out = []
    for ds in DATASETS.values():
        if not (ds.staged or include_online_only):
            continue
        specs = dataset_files(ds.name)
        missing = [s.path for s in specs if not (root / s.path).is_file()]
        bad = [
            s.path
            for s in specs
            if s.path not in missing
            and s.sha256 is not None
            and file_sha256(root / s.path) != s.sha256
        ]
        unpinned = [s.path for s in specs if s.sha256 is None]
        present = not missing
        verified = present and not bad and not unpinned
        if missing:
            detail = f"{len(missing)} of {len(specs)} files missing (e.g. {missing[0]})"
        elif bad:
            detail = f"sha256 mismatch in {len(bad)} of {len(specs)} files (e.g. {bad[0]})"
        elif unpinned:
            detail = f"{len(specs)} files present; no pinned sha256, not verified"
        else:
            detail = f"{len(specs)} files, sha256 ok"
        out.append(DatasetStatus(ds.name, ds.patterns, present, verified, detail))
    return out
