"""Bad input to the artifact store and the trainers: nothing shipped is lost or overwritten."""

import json
import os
import shutil

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutorial_lib import artifacts, check_setup, train
from tutorial_lib.artifacts import (
    ArtifactError,
    list_artifacts,
    load_artifact,
    read_metadata,
    save_artifact,
    shipped_root,
    verify_artifact,
)
from tutorial_lib.train import TrainerConfigError, parse_steps, run_trainer
from tutorial_lib.train.__main__ import main as train_main

CONFIG = {"n": 3}


def _save(root, value: float, name: str = "toy"):
    return save_artifact(
        name,
        {"w": jnp.full(3, value)},
        config=CONFIG,
        data={},
        metrics={"value": value},
        wall_time_s=0,
        root=root,
    )


def _load(root, name: str = "toy") -> float:
    tree, _ = load_artifact(name, {"w": jnp.zeros(3)}, config=CONFIG, root=root)
    return float(tree["w"][0])


def _hashes(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): artifacts._sha256(p)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- atomic replacement --------------------------------------------------------------------


def test_an_interrupted_replacement_keeps_the_old_copy(tmp_path, monkeypatch):
    _save(tmp_path, 1.0)
    real_replace = os.replace
    calls = []

    def replace_then_fail(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the new copy's rename into place: the power goes out
            raise OSError("simulated interruption")
        return real_replace(src, dst)

    monkeypatch.setattr(artifacts.os, "replace", replace_then_fail)
    with pytest.raises(OSError, match="simulated"):
        _save(tmp_path, 2.0)
    monkeypatch.setattr(artifacts.os, "replace", real_replace)
    # The old copy is found (and put back in place) by the next read.
    with pytest.warns(UserWarning, match="interrupted replacement was undone"):
        assert list_artifacts(root=tmp_path) == ["toy"]
    assert _load(tmp_path) == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]
    _save(tmp_path, 3.0)
    assert _load(tmp_path) == 3.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]


def test_a_failure_while_writing_leaves_the_old_copy_untouched(tmp_path, monkeypatch):
    _save(tmp_path, 1.0)
    before = _hashes(tmp_path)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(artifacts.eqx, "tree_serialise_leaves", fail)
    with pytest.raises(OSError, match="disk full"):
        _save(tmp_path, 2.0)
    assert _hashes(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]


@pytest.mark.parametrize("name", ["", " ", "../escape", "a/b", "a\\b", ".hidden", "x\0y"])
def test_artifact_names_cannot_leave_their_folder(tmp_path, name):
    with pytest.raises(ArtifactError, match="invalid artifact name"):
        _save(tmp_path, 1.0, name=name)
    with pytest.raises(ArtifactError, match="invalid artifact name"):
        read_metadata(name, root=tmp_path)
    assert not any(tmp_path.parent.glob("escape"))


@pytest.mark.parametrize("content", ["[1, 2]", '"text"', "3", "{not json", "\xff\xfe"])
def test_metadata_that_is_not_a_json_object_is_refused(tmp_path, content):
    folder = _save(tmp_path, 1.0)
    (folder / "metadata.json").write_bytes(content.encode("latin-1"))
    with pytest.raises(ArtifactError, match=r"metadata\.json|not valid JSON"):
        read_metadata("toy", root=tmp_path)
    assert verify_artifact("toy", root=tmp_path).startswith("corrupt")


def test_verify_artifact_tells_missing_from_corrupt(tmp_path):
    assert verify_artifact("toy", root=tmp_path) == "missing"
    folder = _save(tmp_path, 1.0)
    assert verify_artifact("toy", root=tmp_path) == "ok"
    weights = folder / "weights.eqx"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert "sha256" in verify_artifact("toy", root=tmp_path)
    weights.unlink()
    assert verify_artifact("toy", root=tmp_path) == "corrupt: weights.eqx is missing"


def test_check_setup_reports_a_corrupt_shipped_artifact(tmp_path, monkeypatch, capsys):
    for name in list_artifacts(root=shipped_root()):
        shutil.copytree(shipped_root() / name, tmp_path / name)
    monkeypatch.setenv("JAXGENAI_ARTIFACTS", str(tmp_path))
    missing, corrupt = check_setup.check_artifacts()
    assert missing == [] and corrupt == []
    assert "tiny-esm2                    ok" in capsys.readouterr().out
    with open(tmp_path / "tiny-esm2" / "weights.eqx", "r+b") as f:
        f.seek(100)
        f.write(b"\0\0\0\0")
    shutil.rmtree(tmp_path / "galaxy-ddpm")
    missing, corrupt = check_setup.check_artifacts()
    assert missing == ["galaxy-ddpm"] and corrupt == ["tiny-esm2"]
    check_setup.main([])
    out = capsys.readouterr().out
    missing_line = next(line for line in out.splitlines() if line.startswith("Missing: "))
    corrupt_line = next(line for line in out.splitlines() if line.startswith("Corrupt "))
    assert "artifact galaxy-ddpm" in missing_line and "tiny-esm2" not in missing_line
    assert corrupt_line.endswith("artifact tiny-esm2")


# --- the tiny ESM2 is held to the trainer's config, not to its own metadata -----------------


@pytest.mark.parametrize(
    ("key", "value"), [("layer_norm_eps", 1e-6), ("rope_theta", 500.0), ("token_dropout", False)]
)
def test_an_edited_tiny_esm2_config_is_refused(tmp_path, monkeypatch, key, value):
    from tutorial_lib.protein import load_esm2

    shutil.copytree(shipped_root() / "tiny-esm2", tmp_path / "tiny-esm2")
    path = tmp_path / "tiny-esm2" / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata["config"]["model"][key] = value
    path.write_text(json.dumps(metadata))
    monkeypatch.setenv("JAXGENAI_ARTIFACTS", str(tmp_path))
    with pytest.raises(ArtifactError, match=rf"model\.{key}: artifact has {value!r}"):
        load_esm2("tiny")


# --- step counts ------------------------------------------------------------------------------


@given(
    st.one_of(
        st.integers(-5, 50),
        st.floats(allow_nan=True),
        st.booleans(),
        st.none(),
        st.text(max_size=6),
        st.integers(1, 10**6).map(str),
    )
)
@settings(max_examples=150, deadline=None)
def test_parse_steps_gives_a_positive_int_or_a_clear_error(value):
    try:
        steps = parse_steps(value)
    except TrainerConfigError as e:
        assert "whole number >= 1" in str(e) and repr(value) in str(e)
        return
    assert type(steps) is int and steps >= 1
    assert steps == (int(value) if isinstance(value, str) else value)


@pytest.mark.parametrize("value", ["abc", "0", "-3", "2.5", " "])
def test_bad_env_step_counts_fail_before_any_training(monkeypatch, value):
    monkeypatch.setenv("JAXGENAI_TRAIN_STEPS", value)
    if not value.strip():
        assert train.steps_from_env() is None
        return
    for name in ("tiny-esm2", "galaxy-ddpm"):
        with pytest.raises(TrainerConfigError, match=r"JAXGENAI_TRAIN_STEPS='.*' is not a number"):
            run_trainer(name, root="unused")


@pytest.mark.parametrize("steps", [1, 2, 7])
def test_short_runs_have_a_valid_learning_rate_schedule(steps):
    from tutorial_lib.train import galaxy_ddpm, tiny_esm2

    config = tiny_esm2.make_config(steps=steps, profile="cpu")
    assert config["train"]["steps"] == steps and config["train"]["warmup"] <= steps // 10
    optimiser = tiny_esm2.make_optimiser(config["train"])
    params = {"w": jnp.ones((2, 2))}
    state = optimiser.init(params)
    for _ in range(steps):
        updates, state = optimiser.update({"w": jnp.ones((2, 2))}, state, params)
        assert np.isfinite(np.asarray(updates["w"])).all()
    galaxy = galaxy_ddpm.make_config(steps=steps, profile="cpu")
    assert galaxy["steps"] == steps and 0 <= galaxy["warmup_steps"] <= steps // 10
    schedule = optax.warmup_cosine_decay_schedule(0.0, 1e-3, galaxy["warmup_steps"], steps)
    assert np.isfinite([schedule(i) for i in range(steps + 1)]).all()


# --- where runs write ---------------------------------------------------------------------------


@pytest.fixture
def toy_trainer(monkeypatch):
    """A fast trainer `toy-mean`, registered only for this test; counts its runs."""
    # Import the real trainers first, so that they register in the real table, not the copy.
    monkeypatch.setattr(train, "_TRAINERS", dict(train.available_trainers()))
    runs = []

    def make_config(steps=None, profile=None):
        return {"n": 100 if steps is None else steps}

    @train.register_trainer("toy-mean", make_config=make_config)
    def fit(config):
        runs.append(config)
        x = jr.normal(jr.key(0), (config["n"],))
        return train.TrainResult(
            tree={"mean": jnp.mean(x)}, config=config, data={}, metrics={"std": float(x.std())}
        )

    return runs


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """A stand-in for the package's folder of shipped artifacts."""
    shipped = tmp_path / "pretrained"
    shipped.mkdir()
    monkeypatch.setattr(artifacts, "shipped_root", lambda: shipped)
    monkeypatch.delenv("JAXGENAI_ARTIFACTS", raising=False)
    monkeypatch.delenv("JAXGENAI_TRAIN_STEPS", raising=False)
    return shipped


def test_a_plain_run_writes_to_the_user_folder_not_the_package(
    toy_trainer, fake_package, tmp_path, monkeypatch
):
    monkeypatch.setenv("JAXGENAI_CACHE", str(tmp_path / "cache"))
    folder = run_trainer("toy-mean")
    assert folder == tmp_path / "cache" / "artifacts" / "toy-mean"
    assert list(fake_package.iterdir()) == []
    monkeypatch.setenv("JAXGENAI_ARTIFACTS", str(tmp_path / "mine"))
    assert run_trainer("toy-mean", steps=5) == tmp_path / "mine" / "toy-mean"
    assert read_metadata("toy-mean")["command"] == "python -m tutorial_lib.train toy-mean --steps 5"


def test_only_the_full_config_may_be_installed(toy_trainer, fake_package, monkeypatch, capsys):
    with pytest.raises(
        TrainerConfigError, match=r"refusing to install 'toy-mean'.*\n  n: this run"
    ):
        run_trainer("toy-mean", steps=2, install=True)
    monkeypatch.setenv("JAXGENAI_TRAIN_STEPS", "2")
    assert train_main(["toy-mean", "--install"]) == 2
    assert "refusing to install" in capsys.readouterr().err
    assert toy_trainer == []  # refused before training, not after
    monkeypatch.delenv("JAXGENAI_TRAIN_STEPS")
    assert run_trainer("toy-mean", install=True) == fake_package / "toy-mean"
    assert read_metadata("toy-mean", root=fake_package)["config"] == {"n": 100}


def test_the_package_folder_is_not_a_plain_output(toy_trainer, fake_package, monkeypatch):
    with pytest.raises(TrainerConfigError, match="only with --install"):
        run_trainer("toy-mean", root=fake_package)
    monkeypatch.setenv("JAXGENAI_ARTIFACTS", str(fake_package))
    with pytest.raises(TrainerConfigError, match="only with --install"):
        run_trainer("toy-mean", steps=3)
    with pytest.raises(SystemExit):  # argparse: --out and --install exclude each other
        train_main(["toy-mean", "--install", "--out", "x"])
    assert toy_trainer == [] and list(fake_package.iterdir()) == []


@pytest.mark.parametrize("name", ["tiny-esm2", "galaxy-ddpm"])
def test_real_smoke_runs_are_refused_by_the_package_before_training(name, monkeypatch):
    monkeypatch.delenv("JAXGENAI_ARTIFACTS", raising=False)
    before = _hashes(shipped_root())
    with pytest.raises(TrainerConfigError, match="refusing to install"):
        run_trainer(name, steps=2, install=True)
    with pytest.raises(TrainerConfigError, match="only with --install"):
        run_trainer(name, steps=2, root=shipped_root())
    assert _hashes(shipped_root()) == before


def test_a_real_smoke_run_leaves_the_shipped_artifacts_alone(staged, tmp_path, monkeypatch):
    """The issue's reproduction: `JAXGENAI_TRAIN_STEPS=2 python -m tutorial_lib.train tiny-esm2`
    used to write its 2-step model over the shipped one."""
    monkeypatch.delenv("JAXGENAI_ARTIFACTS", raising=False)
    monkeypatch.setenv("JAXGENAI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("JAXGENAI_TRAIN_STEPS", "2")
    before = _hashes(shipped_root())
    assert train_main(["tiny-esm2"]) == 0
    assert _hashes(shipped_root()) == before
    smoke = tmp_path / "cache" / "artifacts"
    assert read_metadata("tiny-esm2", root=smoke)["config"]["train"]["steps"] == 2
