"""Real data sets and toy distributions for the book, fetched or found staged, always verified.

Data root: `$JAXGENAI_DATA` if set, else a per-user cache (see `data_root`). Every file is
listed once in `registry.txt` (path, sha256, URL at a pinned commit). Failures raise
`DataError` with what to do.
"""

from tutorial_lib.data._errors import ChecksumError, DataError, DownloadError
from tutorial_lib.data._fetch import (
    DataRootError,
    DatasetStatus,
    UnverifiedDataWarning,
    dataset_status,
    fetch_dataset,
    fetch_file,
    file_sha256,
)
from tutorial_lib.data._paths import OFFLINE_ENV, cache_dir, data_root, offline
from tutorial_lib.data._registry import DATASETS, Dataset, FileSpec, dataset_files, registry
from tutorial_lib.data.augment import all_dihedral, dihedral, random_dihedral
from tutorial_lib.data.fasta import (
    AMINO_ACIDS,
    PROTEIN_ALPHABET,
    FastaRecord,
    format_fasta,
    parse_fasta,
    read_fasta,
)
from tutorial_lib.data.galaxies import (
    GALAXY10_LABELS,
    GALAXY_ZOO_LABELS,
    CacheRebuiltWarning,
    Galaxies,
    GalaxyFallbackWarning,
    box_resize,
    centre_crop_resize,
    load_galaxies,
)
from tutorial_lib.data.homology import (
    Split,
    closest_relative,
    homology_clusters,
    homology_split,
    near_duplicate_pairs,
    split_clusters,
)
from tutorial_lib.data.hubble import detect_sources, hubble_cutouts
from tutorial_lib.data.proteins import (
    GB1,
    GB1_SPLITS,
    THERMOPROT_CLASSES,
    ThermoProt,
    load_gb1,
    load_thermoprot,
)
from tutorial_lib.data.toy import (
    GaussianMixture,
    example_mixture,
    ring_mixture,
    swiss_roll,
    two_moons,
)

__all__ = [
    "AMINO_ACIDS",
    "DATASETS",
    "GALAXY10_LABELS",
    "GALAXY_ZOO_LABELS",
    "GB1",
    "GB1_SPLITS",
    "OFFLINE_ENV",
    "PROTEIN_ALPHABET",
    "THERMOPROT_CLASSES",
    "CacheRebuiltWarning",
    "ChecksumError",
    "DataError",
    "DataRootError",
    "Dataset",
    "DatasetStatus",
    "DownloadError",
    "FastaRecord",
    "FileSpec",
    "Galaxies",
    "GalaxyFallbackWarning",
    "GaussianMixture",
    "Split",
    "ThermoProt",
    "UnverifiedDataWarning",
    "all_dihedral",
    "box_resize",
    "cache_dir",
    "centre_crop_resize",
    "closest_relative",
    "data_root",
    "dataset_files",
    "dataset_status",
    "detect_sources",
    "dihedral",
    "example_mixture",
    "fetch_dataset",
    "fetch_file",
    "file_sha256",
    "format_fasta",
    "homology_clusters",
    "homology_split",
    "hubble_cutouts",
    "load_galaxies",
    "load_gb1",
    "load_thermoprot",
    "near_duplicate_pairs",
    "offline",
    "parse_fasta",
    "random_dihedral",
    "read_fasta",
    "registry",
    "ring_mixture",
    "split_clusters",
    "swiss_roll",
    "two_moons",
]
