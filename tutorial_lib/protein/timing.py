"""Timing JAX: the seconds spent compiling, and JAX versus PyTorch on the same ESM2 weights.

`compile_seconds` adds up what `jax.monitoring` reports about tracing, lowering and compiling
inside a block. `compare_forward_speed` needs `torch` and `transformers` (the `test` extra);
the JAX side needs neither. Both models get identical random weights: a Hugging Face
`EsmForMaskedLM` is initialised from a seed, saved, and read back with `load_hf_directory`.
"""

import contextlib
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tutorial_lib.benchmark import best_times
from tutorial_lib.protein.alphabet import random_tokens
from tutorial_lib.protein.esm2 import ESM2Config, forward_batch
from tutorial_lib.protein.load import load_hf_directory

__all__ = ["compare_forward_speed", "compile_seconds"]

_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


@contextlib.contextmanager
def compile_seconds() -> Iterator[list[float]]:
    """Context manager yielding a one-element list that accumulates the seconds JAX spends
    tracing, lowering and compiling inside the block (from `jax.monitoring` events)."""
    total = [0.0]

    def listener(event: str, duration: float, **kwargs) -> None:
        if event in _COMPILE_EVENTS:
            total[0] += duration

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield total
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def _hf_model(config: ESM2Config, seed: int):
    import torch
    from transformers import EsmConfig, EsmForMaskedLM
    from transformers.utils import logging

    logging.disable_progress_bar()

    torch.manual_seed(seed)
    hf = EsmConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.embed_dim,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        intermediate_size=config.ffn_dim,
        pad_token_id=1,
        mask_token_id=32,
        position_embedding_type="rotary",
        token_dropout=config.token_dropout,
        emb_layer_norm_before=False,
        layer_norm_eps=config.layer_norm_eps,
        rope_theta=config.rope_theta,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return EsmForMaskedLM(hf).eval()


def compare_forward_speed(
    config: ESM2Config | None = None,
    *,
    batch_size: int = 8,
    length: int = 256,
    repeat: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Best-of-`repeat` seconds of one forward pass (logits) in JAX and in PyTorch, alternated.

    `config` defaults to the esm2_t6_8M shape. The JAX pass is `jax.jit`-compiled (compile
    time excluded, reported separately); PyTorch runs eagerly under `torch.inference_mode`
    with its default attention (SDPA), on the GPU when JAX's default device is one and torch
    sees CUDA. Returns the times, their ratio `torch_s / jax_s` (above 1: JAX is faster),
    the largest logit difference, and the devices used.
    """
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            "compare_forward_speed needs torch and transformers: pip install -e '.[test]'"
        ) from e

    config = config or ESM2Config()
    torch_model = _hf_model(config, seed)
    with tempfile.TemporaryDirectory() as folder:
        torch_model.save_pretrained(folder)
        model = load_hf_directory(folder)
    on_gpu = jax.default_backend() == "gpu" and torch.cuda.is_available()
    device = torch.device("cuda" if on_gpu else "cpu")
    torch_model = torch_model.to(device)

    tokens = random_tokens(batch_size, length, seed=seed)
    jax_tokens = jnp.asarray(tokens)
    torch_tokens = torch.as_tensor(tokens, dtype=torch.long, device=device)

    start = time.perf_counter()
    jax_logits = jax.block_until_ready(forward_batch(model, jax_tokens).logits)
    compile_s = time.perf_counter() - start

    def run_torch() -> torch.Tensor:
        with torch.inference_mode():
            out = torch_model(torch_tokens).logits
        if on_gpu:
            torch.cuda.synchronize()
        return out

    torch_logits = run_torch().float().cpu().numpy()
    # Alternate the two, so that a slow spell of a shared machine hits both alike.
    times = best_times(
        {"jax": lambda: forward_batch(model, jax_tokens).logits, "torch": run_torch},
        repeat=repeat,
    )
    jax_s, torch_s = times["jax"], times["torch"]
    return {
        "jax_s": jax_s,
        "torch_s": torch_s,
        "torch_over_jax": torch_s / jax_s,
        "jax_compile_s": compile_s,
        "max_abs_logit_diff": float(np.abs(np.asarray(jax_logits) - torch_logits).max()),
        "batch_size": batch_size,
        "length": length,
        "jax_device": str(jax.devices()[0]),
        "torch_device": str(device),
        "torch_threads": torch.get_num_threads(),
    }
