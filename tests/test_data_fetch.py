"""Registry, data root, download, verification and error paths of `tutorial_lib.data`."""

import shutil
import time
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from tutorial_lib import data
from tutorial_lib.data import ChecksumError, DataError, DownloadError


def test_registry_lists_every_file_once_with_pinned_urls():
    reg = data.registry()
    assert len(reg) == 4 + 2 + 1 + 1400
    assert len(data.dataset_files("galaxy-zoo")) == 1400
    assert [s.path for s in data.dataset_files("thermoprot")] == [
        f"thermoprot/{c}.fasta" for c in data.THERMOPROT_CLASSES
    ]
    pinned = [s for s in reg.values() if s.sha256 is not None]
    assert len(pinned) == 1406 and all(len(s.sha256) == 64 for s in pinned)
    spiral = next(s for s in reg.values() if s.path.startswith("galaxy-zoo/spiral/"))
    assert spiral.url.startswith(
        "https://raw.githubusercontent.com/isi-mube/Cosmic-Compendium/"
        "05482aa25f738e7de64ef2aab652d8518e258bf4/data/galaxies/train/spirals/"
    )
    assert reg["thermoprot/mesophilic.fasta"].url == (
        "https://raw.githubusercontent.com/jafetgado/ThermoProt/"
        "8b1f8ea1036571b79412a0bb3067df7a98e9236f/training_sequences/mesophilic.fasta"
    )
    assert reg["galaxy10-sdss/Galaxy10.h5"].sha256 is None  # honestly unpinned


def test_data_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXGENAI_DATA", str(tmp_path))
    assert data.data_root() == tmp_path.resolve()
    monkeypatch.delenv("JAXGENAI_DATA")
    assert "jax-genai-science" in str(data.data_root())


def test_staged_data_is_present_and_verified_fast(staged):
    start = time.perf_counter()
    status = data.dataset_status()
    elapsed = time.perf_counter() - start
    assert [s.name for s in status] == ["thermoprot", "gb1", "galaxy-zoo"]
    assert all(s.present and s.verified for s in status), status
    assert elapsed < 5.0


def test_status_of_an_empty_root(empty_root):
    status = data.dataset_status(include_online_only=True)
    assert len(status) == 4
    assert not any(s.present or s.verified for s in status)
    assert "missing" in status[0].detail


def _copy(staged: Path, root: Path, rel: str) -> Path:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(staged / rel, root / rel))


def _flip_byte(path: Path, offset: int = 1000) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


def test_flipped_byte_is_refused_and_the_file_kept(staged_root, empty_root):
    rel = "thermoprot/psychrophilic.fasta"
    target = _copy(staged_root, empty_root, rel)
    _flip_byte(target)
    with pytest.raises(ChecksumError, match="sha256") as info:
        data.fetch_file(rel)
    message = str(info.value)
    assert rel in message and "NOT used" in message and "never deletes" in message
    assert target.exists()  # the user's file is never deleted
    for other in data.THERMOPROT_CLASSES[1:]:
        _copy(staged_root, empty_root, f"thermoprot/{other}.fasta")
    with pytest.raises(DataError, match="sha256"):
        data.load_thermoprot()
    assert not data.dataset_status()[0].verified


def test_offline_empty_root_fails_in_seconds(empty_root, monkeypatch, closed_port_url):
    monkeypatch.setenv("JAXGENAI_DATA_MIRROR", closed_port_url)
    start = time.perf_counter()
    with pytest.raises(DownloadError) as info:
        data.load_thermoprot()
    elapsed = time.perf_counter() - start
    message = str(info.value)
    assert "thermoprot/psychrophilic.fasta" in message
    assert f"{closed_port_url}/thermoprot/psychrophilic.fasta" in message
    assert "JAXGENAI_DATA" in message and str(empty_root) in message
    assert elapsed < 10.0
    assert list(empty_root.rglob("*")) == [empty_root / "thermoprot"]  # no half files


def test_offline_switch_never_touches_the_network(empty_root, monkeypatch):
    monkeypatch.setenv("JAXGENAI_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(DownloadError, match="JAXGENAI_OFFLINE"):
        data.fetch_file("flip/gb1/splits.zip")
    assert time.perf_counter() - start < 1.0


def test_download_from_a_local_mirror(staged_root, empty_root, mirror, monkeypatch):
    for c in data.THERMOPROT_CLASSES:
        _copy(staged_root, mirror.directory, f"thermoprot/{c}.fasta")
    monkeypatch.setenv("JAXGENAI_DATA_MIRROR", mirror.url)
    paths = data.fetch_dataset("thermoprot")
    assert [p.parent for p in paths] == [empty_root / "thermoprot"] * 4
    for p in paths:
        assert p.read_bytes() == (staged_root / "thermoprot" / p.name).read_bytes()
    assert sorted(f.name for f in (empty_root / "thermoprot").iterdir()) == sorted(
        f"{c}.fasta" for c in data.THERMOPROT_CLASSES
    )
    prot = data.load_thermoprot()
    assert len(prot) == 32_000
    assert data.dataset_status()[0].verified


def test_corrupt_download_is_discarded(staged_root, empty_root, mirror, monkeypatch):
    rel = "flip/gb1/splits.zip"
    _flip_byte(_copy(staged_root, mirror.directory, rel))
    monkeypatch.setenv("JAXGENAI_DATA_MIRROR", mirror.url)
    with pytest.raises(ChecksumError, match="sha256"):
        data.fetch_file(rel)
    assert list((empty_root / "flip/gb1").iterdir()) == []


def test_truncated_download_leaves_no_file(staged_root, empty_root, mirror, monkeypatch):
    rel = "flip/gb1/splits.zip"
    _copy(staged_root, mirror.directory, rel)
    mirror.truncate.add(rel)
    monkeypatch.setenv("JAXGENAI_DATA_MIRROR", mirror.url)
    with pytest.raises(DataError):
        data.fetch_file(rel)
    assert list((empty_root / "flip/gb1").iterdir()) == []
    mirror.truncate.clear()
    assert data.fetch_file(rel).read_bytes() == (staged_root / rel).read_bytes()


def test_missing_on_the_server_is_a_download_error(empty_root, mirror, monkeypatch):
    monkeypatch.setenv("JAXGENAI_DATA_MIRROR", mirror.url)
    with pytest.raises(DownloadError, match="404"):
        data.fetch_file("flip/gb1/splits.zip")


def _fake_galaxy10(path: Path, n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 69, 69, 3), dtype=np.uint8)
    labels = np.arange(n) % 10
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["images"] = images
        f["ans"] = labels
    return images, labels


def test_unpinned_galaxy10_is_trusted_on_first_use_with_a_warning(empty_root, mirror, monkeypatch):
    rel = "galaxy10-sdss/Galaxy10.h5"
    _, labels = _fake_galaxy10(mirror.directory / rel)
    monkeypatch.setenv("JAXGENAI_DATA_MIRROR", mirror.url)
    with pytest.warns(data.UnverifiedDataWarning, match="NOT verified"):
        gal = data.load_galaxies(size=16, source="galaxy10-sdss")
    assert gal.images.shape == (12, 16, 16, 3) and gal.images.dtype == np.float32
    assert gal.labels.tolist() == labels.tolist()
    assert gal.label_names[7] == "disk, face-on, tight spiral"
    assert (empty_root / (rel + ".sha256")).exists()
    _flip_byte(empty_root / rel, offset=5000)
    with warnings.catch_warnings(), pytest.raises(ChecksumError, match="sha256"):
        warnings.simplefilter("ignore", data.UnverifiedDataWarning)
        data.load_galaxies(size=16, source="galaxy10-sdss")


def test_pinning_galaxy10_by_hand_verifies_it(empty_root, mirror, monkeypatch):
    rel = "galaxy10-sdss/Galaxy10.h5"
    _fake_galaxy10(mirror.directory / rel)
    monkeypatch.setenv("JAXGENAI_DATA_MIRROR", mirror.url)
    with pytest.raises(ChecksumError, match="sha256"):
        data.load_galaxies(size=16, source="galaxy10-sdss", galaxy10_sha256="0" * 64)
    assert not (empty_root / rel).exists()
    good = data.file_sha256(mirror.directory / rel)
    with warnings.catch_warnings():
        warnings.simplefilter("error", data.UnverifiedDataWarning)
        gal = data.load_galaxies(size=16, source="galaxy10-sdss", galaxy10_sha256=good)
    assert len(gal) == 12
