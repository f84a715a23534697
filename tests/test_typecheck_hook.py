"""The test suite runs the whole library under jaxtyping's import hook with beartype."""

import importlib
import inspect
import pkgutil

import jaxtyping
import pytest

import tutorial_lib


def _modules():
    for info in pkgutil.walk_packages(tutorial_lib.__path__, "tutorial_lib."):
        if not info.name.endswith("__main__"):
            yield importlib.import_module(info.name)


def test_every_annotated_function_of_the_library_is_checked():
    unchecked = []
    for module in _modules():
        for name, obj in vars(module).items():
            if (
                inspect.isfunction(obj)
                and obj.__module__ == module.__name__
                and obj.__annotations__
                and not hasattr(obj, "__wrapped__")
            ):
                unchecked.append(f"{module.__name__}.{name}")
    assert not unchecked, f"not instrumented by the jaxtyping hook: {unchecked[:10]}"


def test_a_wrong_argument_type_is_caught_by_the_checker():
    from tutorial_lib.data import format_fasta

    with pytest.raises(jaxtyping.TypeCheckError, match="width"):
        format_fasta([("name", "ACDE")], width="60")


def test_a_wrong_shape_is_caught_by_the_checker():
    import jax.numpy as jnp

    from tutorial_lib.protein import window_entropy

    tokens = jnp.zeros((2, 8), dtype=jnp.int32)  # a batch where one sequence is annotated
    with pytest.raises(jaxtyping.TypeCheckError):
        window_entropy(tokens, window=4)
