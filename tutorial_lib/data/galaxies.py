"""Galaxy images: staged Galaxy Zoo stamps, Galaxy10 SDSS, or Hubble Deep Field cutouts."""

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import numbers
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from jaxtyping import Float, Int, UInt8
from PIL import Image

from tutorial_lib.data._errors import DataError, DownloadError
from tutorial_lib.data._fetch import fetch_dataset, fetch_file, file_sha256
from tutorial_lib.data._paths import cache_dir, data_root
from tutorial_lib.data._registry import dataset_files
from tutorial_lib.data.hubble import hubble_cutouts

__all__ = [
    "GALAXY10_LABELS",
    "GALAXY_ZOO_LABELS",
    "SOURCES",
    "CacheRebuiltWarning",
    "Galaxies",
    "GalaxyFallbackWarning",
    "box_resize",
    "centre_crop_resize",
    "load_galaxies",
]

SOURCES = ("auto", "galaxy-zoo", "galaxy10-sdss", "hubble-deep-field")
GALAXY_ZOO_LABELS = ("non_spiral", "spiral")
GALAXY10_LABELS = (  # Galaxy10 SDSS classes (Leung & Bovy 2019), in label order
    "disk, face-on, no spiral",
    "smooth, completely round",
    "smooth, in-between round",
    "smooth, cigar shaped",
    "disk, edge-on, rounded bulge",
    "disk, edge-on, boxy bulge",
    "disk, edge-on, no bulge",
    "disk, face-on, tight spiral",
    "disk, face-on, medium spiral",
    "disk, face-on, loose spiral",
)
# Bump when the preprocessing changes, so that stale cached arrays are never reused.
_PREPROCESSING_VERSION = 1


class GalaxyFallbackWarning(UserWarning):
    """`source="auto"` fell back to the Hubble Deep Field cutouts."""


class CacheRebuiltWarning(UserWarning):
    """A damaged cache of decoded galaxies was deleted and is being rebuilt."""


@dataclasses.dataclass(frozen=True)
class Galaxies:
    """Galaxy images in [0, 1] with integer labels."""

    images: Float[np.ndarray, "n size size 3"]
    labels: Int[np.ndarray, " n"]
    label_names: tuple[str, ...]
    source: str
    ids: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def centre_crop_resize(image: UInt8[np.ndarray, "h w 3"], size: int) -> UInt8[np.ndarray, "s s 3"]:
    """The canonical preprocessing: keep the central half of the stamp (212x212 px of a 424x424
    Galaxy Zoo image), then area-average (box filter) it down to `size` x `size`."""
    h, w = image.shape[:2]
    side = min(h, w) // 2
    top, left = (h - side) // 2, (w - side) // 2
    return box_resize(image[top : top + side, left : left + side], size)


def box_resize(image: UInt8[np.ndarray, "h w 3"], size: int) -> UInt8[np.ndarray, "s s 3"]:
    """Area (box-filter) resize of an RGB image to `size` x `size`."""
    pil = Image.fromarray(np.ascontiguousarray(image), mode="RGB")
    return np.asarray(pil.resize((size, size), Image.Resampling.BOX))


def _decode(path: Path, size: int) -> UInt8[np.ndarray, "s s 3"]:
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except OSError as e:
        raise DataError(f"cannot decode image {path}: {e}") from e
    return centre_crop_resize(rgb, size)


# ----- disk cache of decoded, resized arrays ---------------------------------------------


def _cache_path(source: str, size: int, content: str) -> Path:
    key = hashlib.sha256(f"{source}|{size}|{_PREPROCESSING_VERSION}|{content}".encode())
    return cache_dir() / "galaxies" / f"{source}-{size}px-{key.hexdigest()[:20]}.npz"


_CACHE_KEYS = ("images", "labels", "ids")


def _cache_load(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when there are none. Caches are disposable: a damaged one
    (truncated, bit-flipped, wrong contents; any error at all while reading it) is deleted."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in _CACHE_KEYS}
        if len({len(a) for a in arrays.values()}) != 1:
            raise ValueError("images, labels and ids differ in length")
        return arrays
    except Exception as e:
        warnings.warn(
            f"the galaxy cache {path} is damaged ({type(e).__name__}: {e}); deleted it and "
            "rebuilding it from the data",
            CacheRebuiltWarning,
            stacklevel=5,  # the caller of load_galaxies
        )
        with contextlib.suppress(OSError):
            path.unlink()
        return None


def _cache_save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.part")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        warnings.warn(
            f"could not cache decoded galaxies in {path.parent} ({e}); set JAXGENAI_CACHE to a "
            "writable folder to make later loads fast",
            stacklevel=3,
        )


def _cached(source: str, size: int, content: str, build) -> dict[str, np.ndarray]:
    path = _cache_path(source, size, content)
    arrays = _cache_load(path)
    if arrays is None:
        arrays = build()
        _cache_save(path, arrays)
    return arrays


# ----- sources ------------------------------------------------------------------------------


def _galaxy_zoo(size: int) -> dict[str, np.ndarray]:
    specs = dataset_files("galaxy-zoo")
    fetch_dataset("galaxy-zoo")  # verifies every file's sha256, downloads missing ones
    content = "\n".join(f"{s.path} {s.sha256}" for s in specs)
    specs = sorted(
        specs, key=lambda s: (GALAXY_ZOO_LABELS.index(s.path.split("/")[1]), int(Path(s.path).stem))
    )

    def build() -> dict[str, np.ndarray]:
        root = data_root()
        with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
            images = list(pool.map(lambda s: _decode(root / s.path, size), specs))
        return {
            "images": np.stack(images),
            "labels": np.array(
                [GALAXY_ZOO_LABELS.index(s.path.split("/")[1]) for s in specs], dtype=np.int32
            ),
            "ids": np.array([Path(s.path).stem for s in specs]),
        }

    return _cached("galaxy-zoo", size, content, build)


def _galaxy10(size: int, sha256: str | None) -> dict[str, np.ndarray]:
    path = fetch_file("galaxy10-sdss/Galaxy10.h5", sha256=sha256)

    def build() -> dict[str, np.ndarray]:
        import h5py

        try:
            with h5py.File(path, "r") as f:
                stamps = np.asarray(f["images"], dtype=np.uint8)
                labels = np.asarray(f["ans"], dtype=np.int32)
        except (OSError, KeyError) as e:
            raise DataError(f"{path} is not the Galaxy10 HDF5 file (images, ans): {e}") from e
        # Galaxy10 stamps are 69x69 px and already tightly framed: resize the whole stamp.
        return {
            "images": np.stack([box_resize(s, size) for s in stamps]),
            "labels": labels,
            "ids": np.array([str(i) for i in range(len(labels))]),
        }

    return _cached("galaxy10-sdss", size, file_sha256(path), build)


def _hubble(size: int) -> dict[str, np.ndarray]:
    def build() -> dict[str, np.ndarray]:
        cutouts, centres = hubble_cutouts()
        return {
            "images": np.stack([box_resize(c, size) for c in cutouts]),
            "labels": np.zeros(len(cutouts), dtype=np.int32),
            "ids": np.array([f"hdf-y{y}-x{x}" for y, x in centres]),
        }

    import skimage

    return _cached("hubble-deep-field", size, f"skimage-{skimage.__version__}", build)


def load_galaxies(
    size: int = 64, source: str = "auto", *, galaxy10_sha256: str | None = None
) -> Galaxies:
    """Galaxy images, `(N, size, size, 3)` float32 in [0, 1], with labels.

    Sources:
    - `"galaxy-zoo"`: 1,400 staged Galaxy Zoo 2 SDSS stamps, labels non_spiral=0 / spiral=1;
      centre crop 212x212 of the 424x424 stamp, then box resize.
    - `"galaxy10-sdss"`: the Galaxy10 SDSS file (download, ~200 MB; 10 classes). Its checksum
      is not pinned by the book: pass `galaxy10_sha256` to verify it, else you get a warning.
    - `"hubble-deep-field"`: sources detected in scikit-image's bundled Hubble Deep Field image;
      always available offline; unlabelled (all labels 0).
    - `"auto"`: Galaxy Zoo if staged or downloadable, else the Hubble Deep Field with a warning.

    Decoded, resized arrays are cached (see `cache_dir()`), so later calls are fast.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown galaxy source {source!r}; choose one of {SOURCES}")
    if not (isinstance(size, numbers.Integral) and 4 <= size <= 212):
        raise ValueError(f"size must be an int in 4..212, got {size!r}")
    size = int(size)
    if source == "auto":
        try:
            return load_galaxies(size, "galaxy-zoo")
        except DownloadError as e:
            warnings.warn(
                "Galaxy Zoo images are neither staged nor downloadable, so load_galaxies uses "
                "UNLABELLED cutouts from the Hubble Deep Field instead. Stage the data and set "
                f"JAXGENAI_DATA to use the real data set. ({str(e).splitlines()[0]})",
                GalaxyFallbackWarning,
                stacklevel=2,
            )
            return load_galaxies(size, "hubble-deep-field")
    if source == "galaxy-zoo":
        arrays, names = _galaxy_zoo(size), GALAXY_ZOO_LABELS
    elif source == "galaxy10-sdss":
        arrays, names = _galaxy10(size, galaxy10_sha256), GALAXY10_LABELS
    else:
        arrays, names = _hubble(size), ("unlabelled",)
    return Galaxies(
        images=arrays["images"].astype(np.float32) / np.float32(255),
        labels=arrays["labels"].astype(np.int32),
        label_names=names,
        source=source,
        ids=[str(i) for i in arrays["ids"]],
    )
