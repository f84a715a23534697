"""The artifact store and the `python -m tutorial_lib.train` registry, in a temporary folder."""

import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from tutorial_lib import artifacts, train
from tutorial_lib.artifacts import ArtifactError, load_artifact, read_metadata, save_artifact
from tutorial_lib.data import DataError
from tutorial_lib.train.__main__ import main as train_main

CONFIG = {"in_size": 2, "out_size": 1, "width": 8, "depth": 2, "seed": 0}


def _model(config=CONFIG):
    c = dict(config)
    return eqx.nn.MLP(c["in_size"], c["out_size"], c["width"], c["depth"], key=jr.key(c["seed"]))


@pytest.fixture
def saved(tmp_path):
    model = eqx.tree_at(lambda m: m.layers[0].bias, _model(), jnp.arange(8.0))
    folder = save_artifact(
        "toy-mlp",
        model,
        config=CONFIG,
        data={"dataset": "two-moons", "n": 512, "sha256": "0" * 64},
        metrics={"test_mse": 0.125},
        wall_time_s=1.5,
        root=tmp_path,
    )
    return model, folder, tmp_path


def test_round_trip(saved):
    model, folder, root = saved
    assert sorted(p.name for p in folder.iterdir()) == ["metadata.json", "weights.eqx"]
    like = eqx.filter_eval_shape(_model)
    loaded, meta = load_artifact("toy-mlp", like, config=CONFIG, root=root)
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(model), strict=True):
        np.testing.assert_array_equal(a, b)
    x = jnp.array([0.5, -1.0])
    np.testing.assert_array_equal(loaded(x), model(x))
    assert meta["command"] == "python -m tutorial_lib.train toy-mlp"
    assert meta["metrics"] == {"test_mse": 0.125}
    assert meta["data"]["dataset"] == "two-moons"
    assert meta["wall_time_s"] == 1.5
    assert meta["hardware"]["jax_backend"] == jax.default_backend()
    assert meta["config_sha256"] == artifacts.config_sha256(CONFIG)
    assert artifacts.list_artifacts(root=root) == ["toy-mlp"]
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no staging leftovers


def test_config_mismatch_is_a_clear_error(saved):
    _, _, root = saved
    wider = {**CONFIG, "width": 16, "activation": "gelu"}
    with pytest.raises(ArtifactError) as info:
        load_artifact("toy-mlp", _model(wider), config=wider, root=root)
    message = str(info.value)
    assert "width: artifact has 8, code has 16" in message
    assert "activation: missing from the artifact" in message
    assert "python -m tutorial_lib.train toy-mlp" in message
    assert isinstance(info.value, DataError)


def test_tuples_and_lists_in_configs_compare_equal(saved):
    _, _, root = saved
    config = {**CONFIG, "extra": (1, 2)}
    save_artifact("t", jnp.ones(3), config=config, data={}, metrics={}, wall_time_s=0, root=root)
    loaded, _ = load_artifact("t", jnp.zeros(3), config={**CONFIG, "extra": [1, 2]}, root=root)
    np.testing.assert_array_equal(loaded, jnp.ones(3))


def test_damaged_weights_are_refused(saved):
    _, folder, root = saved
    raw = bytearray((folder / "weights.eqx").read_bytes())
    raw[-3] ^= 0xFF
    (folder / "weights.eqx").write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="sha256"):
        load_artifact("toy-mlp", _model(), config=CONFIG, root=root)


def test_wrong_structure_is_refused(saved):
    _, _, root = saved
    assert read_metadata("toy-mlp", root=root)["name"] == "toy-mlp"
    with pytest.raises(ArtifactError, match="does not fit"):
        load_artifact("toy-mlp", {"w": jnp.zeros((3, 3))}, config=CONFIG, root=root)


def test_missing_artifact_says_how_to_build_it(tmp_path):
    with pytest.raises(ArtifactError, match=r"python -m tutorial_lib\.train galaxy-ddpm"):
        load_artifact("galaxy-ddpm", jnp.zeros(1), config={}, root=tmp_path)


@pytest.fixture
def registered(monkeypatch):
    """A tiny trainer, registered only for this test."""
    # Import the real trainers first, so that they register in the real table, not the copy.
    monkeypatch.setattr(train, "_TRAINERS", dict(train.available_trainers()))

    def make_config(steps=None, profile=None):
        return {"n": 100 if steps is None else steps}

    @train.register_trainer("toy-mean", make_config=make_config, description="mean of normals")
    def fit(config):
        x = jr.normal(jr.key(0), (config["n"],))
        return train.TrainResult(
            tree={"mean": jnp.mean(x)},
            config=config,
            data={"dataset": "normal", "seed": 0},
            metrics={"std": float(jnp.std(x))},
        )

    return fit


def test_cli_lists_trains_and_rejects_unknown_names(registered, tmp_path, capsys):
    assert train_main(["--list"]) == 0
    assert "toy-mean" in capsys.readouterr().out
    assert train_main(["toy-mean", "--out", str(tmp_path)]) == 0
    tree, meta = load_artifact(
        "toy-mean", {"mean": jnp.zeros(())}, config={"n": 100}, root=tmp_path
    )
    assert float(tree["mean"]) == pytest.approx(float(jnp.mean(jr.normal(jr.key(0), (100,)))))
    assert meta["command"] == "python -m tutorial_lib.train toy-mean"
    assert meta["wall_time_s"] >= 0 and meta["metrics"]["std"] > 0
    assert train_main(["no-such-model"]) == 2
    err = capsys.readouterr().err
    assert "unknown trainer 'no-such-model'" in err and "toy-mean" in err


def test_cli_as_a_module():
    out = subprocess.run(
        [sys.executable, "-m", "tutorial_lib.train", "no-such-model"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "unknown trainer 'no-such-model'; available:" in out.stderr
