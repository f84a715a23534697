"""Resumable training checkpoints: round trip, typed keys, and refusal of another config."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from tutorial_lib.train._checkpoint import clear_checkpoint, load_checkpoint, save_checkpoint


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXGENAI_CACHE", str(tmp_path))


def test_round_trip_restores_arrays_keys_and_info():
    key = jr.split(jr.key(3))[1]
    tree = ({"w": jnp.arange(6.0).reshape(2, 3), "step": jnp.array(7)}, key)
    save_checkpoint(
        "demo", tree, config={"a": 1}, step=7, wall_s=12.5, extra={"history": [[7, 0.1]]}
    )
    like = ({"w": jnp.zeros((2, 3)), "step": jnp.array(0)}, jr.key(0))
    (restored, restored_key), info = load_checkpoint("demo", like, config={"a": 1})
    np.testing.assert_array_equal(restored["w"], tree[0]["w"])
    assert int(restored["step"]) == 7
    # The restored key continues the same random stream.
    np.testing.assert_array_equal(jr.normal(restored_key, (3,)), jr.normal(key, (3,)))
    assert info["step"] == 7 and info["wall_s"] == 12.5 and info["extra"]["history"] == [[7, 0.1]]


def test_other_config_or_missing_checkpoint_is_not_resumed(capsys):
    like = {"w": jnp.zeros(2)}
    assert load_checkpoint("demo", like, config={"a": 1}) is None
    save_checkpoint("demo", {"w": jnp.ones(2)}, config={"a": 1}, step=1, wall_s=1.0)
    assert load_checkpoint("demo", like, config={"a": 2}) is None
    assert "another config" in capsys.readouterr().out
    clear_checkpoint("demo")
    assert load_checkpoint("demo", like, config={"a": 1}) is None
