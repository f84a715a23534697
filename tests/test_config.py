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
