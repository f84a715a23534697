import os

import jax
import pytest

from tutorial_lib import config


def test_auto_profile_follows_the_backend(monkeypatch):
    monkeypatch.delenv(config.PROFILE_ENV, raising=False)
    import jax

    expected = "cpu" if jax.default_backend() == "cpu" else "gpu"
    assert config.profile() == expected


@pytest.mark.parametrize("value, expected", [("cpu", "cpu"), ("GPU", "gpu"), (" gpu ", "gpu")])
def test_environment_variable_overrides(monkeypatch, value, expected):
    monkeypatch.setenv(config.PROFILE_ENV, value)
    assert config.profile() == expected
    assert config.pick(cpu=1, gpu=2) == (2 if expected == "gpu" else 1)


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(config.PROFILE_ENV, "tpu-pod")
    with pytest.raises(ValueError, match="JAXGENAI_PROFILE='tpu-pod'"):
        config.profile()


def test_the_build_flags_are_the_noxfile_ones():
    from pathlib import Path

    noxfile = (Path(__file__).parents[1] / "noxfile.py").read_text()
    assert f'BUILD_XLA_FLAGS = "{config.BUILD_XLA_FLAGS}"' in noxfile


def test_xla_defaults_removes_only_the_build_flags(monkeypatch):
    from jax._src import xla_bridge

    monkeypatch.setattr(xla_bridge, "backends_are_initialized", lambda: False)
    other = "--xla_force_host_platform_device_count=2"
    monkeypatch.setenv("XLA_FLAGS", f"{other} {config.BUILD_XLA_FLAGS}")
    config.xla_defaults()
    assert os.environ["XLA_FLAGS"] == other
    config.xla_defaults()  # nothing left to remove: a no-op
    assert os.environ["XLA_FLAGS"] == other


def test_xla_defaults_after_the_backend_started_is_a_clear_error(monkeypatch):
    jax.numpy.zeros(1).block_until_ready()  # the backend has started
    monkeypatch.setenv("XLA_FLAGS", config.BUILD_XLA_FLAGS)
    with pytest.raises(RuntimeError, match="before the first JAX computation"):
        config.xla_defaults()
    assert os.environ["XLA_FLAGS"] == config.BUILD_XLA_FLAGS


def test_this_jaxlib_accepts_the_build_flags():
    # XLA aborts on a flag it does not know; the noxfile then builds without them (slower).
    import subprocess
    import sys

    env = {**os.environ, "XLA_FLAGS": config.BUILD_XLA_FLAGS}
    code = "import jax.numpy as jnp; print(float(jnp.arange(4.0).sum()))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "6.0"
