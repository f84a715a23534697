"""Shared test helpers: a random ESM2 filled from NumPy, and a small randomised transformers ESM."""

import jax
import jax.numpy as jnp
import numpy as np

from tutorial_lib.protein import ESM2, ESM2Config, esm2_skeleton


def random_esm2(config: ESM2Config, seed: int) -> ESM2:
    """A random ESM2 filled from NumPy: no JAX compilation, unlike `ESM2(config, key=...)`."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda s: jnp.asarray(0.3 * rng.standard_normal(s.shape), s.dtype),
        esm2_skeleton(config),
    )


def small_hf_config(tie: bool = True):
    """A small transformers `EsmConfig` with ESM2's options (rotary, token dropout, no
    embedding LayerNorm), for parity tests against `EsmForMaskedLM`."""
    from transformers import EsmConfig

    return EsmConfig(
        vocab_size=33,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        pad_token_id=1,
        mask_token_id=32,
        position_embedding_type="rotary",
        token_dropout=True,
        emb_layer_norm_before=False,
        layer_norm_eps=1e-5,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        tie_word_embeddings=tie,
    )


def randomise_torch(model, torch, seed: int = 0) -> None:
    """Random weights everywhere (the default init leaves LayerNorms and biases trivial)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            is_scale = name.endswith("weight") and p.ndim == 1
            p.copy_((1.0 if is_scale else 0.0) + (0.3 if p.ndim > 1 else 0.5) * noise)
