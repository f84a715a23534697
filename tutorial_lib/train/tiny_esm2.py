"""`python -m tutorial_lib.train tiny-esm2`: the book's small ESM2, trained on ThermoProt.

The architecture is ESM2's (`tutorial_lib.protein.ESM2`) at a size that trains in minutes:

- GPU profile: 6 layers, width 192, 12 heads of 16 dimensions (t6_8M's head size), FFN 768,
  about 2.7M parameters; batches of 128 crops of 256 tokens.
- CPU profile: 4 layers, width 128, 4 heads, FFN 512, about 0.8M parameters; batches of 32
  crops of 128 tokens, 10,000 steps: 1.5 hours on two cores (7,600 tokens/s).

Data: the TRAIN part of the homology-aware ThermoProt split (`homology_split`, 80/10/10,
seed 0), so validation and test proteins share no near-duplicate with training. Each step
draws sequences uniformly, crops those longer than the window at a random offset, and applies
ESM's 80/10/10 masking; both happen inside the compiled step. Optimiser: AdamW (weight decay on
matrices only) with linear warm-up and cosine decay, gradients clipped at norm 1.

The weights are stored in float16, which halves the artifact (5.4 MB for the GPU model instead
of 11 MB) and changes the perplexity by far less than its last reported digit; `load_esm2
("tiny")` upcasts them to float32. The metrics are measured on the float16-rounded model, the
one that ships. `--steps N` (or `JAXGENAI_TRAIN_STEPS=N`) overrides the number of steps for a
smoke run; the metadata records the value used, and such a run is never installed into the
package (see `tutorial_lib.train`). The run saves its state every few minutes and a later run of
the same config resumes it (`tutorial_lib.train._checkpoint`); the wall times add up.
"""

import time
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Int, PRNGKeyArray

from tutorial_lib.config import Profile, pick
from tutorial_lib.data import dataset_files, homology_split, load_thermoprot
from tutorial_lib.protein import (
    CLS,
    EOS,
    ESM2,
    PAD,
    TINY_ARTIFACT,
    ESM2Config,
    batch_tokenize,
    mask_tokens,
    masked_perplexity,
    mlm_loss,
    tokenize,
    unigram_perplexity,
)
from tutorial_lib.train import TrainResult, parse_steps, register_trainer
from tutorial_lib.train._checkpoint import clear_checkpoint, load_checkpoint, save_checkpoint

__all__ = [
    "SPLIT",
    "Corpus",
    "eval_tokens",
    "make_config",
    "make_corpus",
    "make_optimiser",
    "make_step",
    "sample_crops",
    "train",
]

CHECKPOINT_EVERY_S = 300.0
SPLIT = {"fractions": [0.8, 0.1, 0.1], "seed": 0}


def make_config(steps: int | None = None, profile: Profile | None = None) -> dict:
    """The full training config of the size profile (recorded in the metadata); `steps`
    shortens it for a smoke run (warm-up cut to a tenth of the steps)."""
    model = pick(
        cpu=ESM2Config(num_layers=4, embed_dim=128, num_heads=4, ffn_dim=512),
        gpu=ESM2Config(num_layers=6, embed_dim=192, num_heads=12, ffn_dim=768),
        profile=profile,
    )
    train = pick(
        cpu={"steps": 10000, "batch_size": 32, "max_len": 128, "peak_lr": 2e-3, "warmup": 200},
        gpu={"steps": 12000, "batch_size": 128, "max_len": 256, "peak_lr": 1e-3, "warmup": 500},
        profile=profile,
    )
    train |= {"weight_decay": 0.01, "final_lr_fraction": 0.1, "clip_norm": 1.0, "seed": 0}
    if steps is not None:
        train["steps"] = parse_steps(steps)
        train["warmup"] = min(train["warmup"], train["steps"] // 10)
    return {
        "model": model.to_dict(),
        "weights_dtype": "float16",
        "train": train,
        "data": {"dataset": "thermoprot", "split": "homology_split", **SPLIT},
        "eval": {"mask_seed": 1234, "crop_seed": 0, "max_len": train["max_len"]},
    }


class Corpus(NamedTuple):
    """All training residues concatenated, with where each sequence starts and its length."""

    residues: Int[Array, " n"]
    starts: Int[Array, " s"]
    lengths: Int[Array, " s"]


def make_corpus(sequences: list[str]) -> Corpus:
    rows = [tokenize(s, unknown="X")[1:-1] for s in sequences]
    lengths = np.array([len(r) for r in rows], dtype=np.int32)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int32)
    return Corpus(jnp.asarray(np.concatenate(rows)), jnp.asarray(starts), jnp.asarray(lengths))


def sample_crops(
    key: PRNGKeyArray, corpus: Corpus, batch_size: int, max_len: int
) -> Int[Array, "B L"]:
    """`<cls> crop <eos> <pad>...` rows: uniform sequences, random windows of the long ones."""
    k_seq, k_start = jr.split(key)
    crop = max_len - 2
    seq = jr.randint(k_seq, (batch_size,), 0, corpus.lengths.shape[0])
    length = corpus.lengths[seq]
    kept = jnp.minimum(length, crop)
    offset = jnp.floor(jr.uniform(k_start, (batch_size,)) * (length - kept + 1)).astype(jnp.int32)
    pos = jnp.arange(crop)
    index = jnp.minimum(corpus.starts[seq, None] + offset[:, None] + pos, corpus.residues.size - 1)
    body = jnp.where(pos < kept[:, None], corpus.residues[index], PAD)
    tokens = jnp.concatenate(
        [jnp.full((batch_size, 1), CLS), body, jnp.full((batch_size, 1), PAD)], axis=1
    )
    return tokens.at[jnp.arange(batch_size), kept + 1].set(EOS).astype(jnp.int32)


def eval_tokens(sequences: list[str], max_len: int, seed: int) -> np.ndarray:
    """Held-out rows cropped like the training data, at seeded offsets."""
    rng = np.random.default_rng(seed)
    crop = max_len - 2
    crops = []
    for s in sequences:
        start = int(rng.integers(0, len(s) - crop + 1)) if len(s) > crop else 0
        crops.append(s[start : start + crop])
    return batch_tokenize(crops, pad_to=max_len, unknown="X")


def make_optimiser(train: dict) -> optax.GradientTransformation:
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=train["peak_lr"],
        warmup_steps=train["warmup"],
        decay_steps=train["steps"],
        end_value=train["peak_lr"] * train["final_lr_fraction"],
    )
    return optax.chain(
        optax.clip_by_global_norm(train["clip_norm"]),
        optax.adamw(
            schedule,
            b1=0.9,
            b2=0.98,
            weight_decay=train["weight_decay"],
            mask=lambda params: jax.tree.map(lambda p: p.ndim >= 2, params),
        ),
    )


def make_step(optimiser: optax.GradientTransformation, batch_size: int, max_len: int):
    """The compiled training step; model, optimiser state and key buffers are donated."""

    @eqx.filter_jit(donate="all-except-first")
    def step(corpus: Corpus, model: ESM2, opt_state, key: PRNGKeyArray):
        k_crop, k_mask, k_next = jr.split(key, 3)
        tokens = sample_crops(k_crop, corpus, batch_size, max_len)
        batch = jax.vmap(mask_tokens)(jr.split(k_mask, batch_size), tokens)
        loss, grads = eqx.filter_value_and_grad(mlm_loss)(model, batch)
        params = eqx.filter(model, eqx.is_inexact_array)
        updates, opt_state = optimiser.update(grads, opt_state, params)
        model = eqx.apply_updates(model, updates)
        return model, opt_state, k_next, loss, jnp.sum(tokens != PAD)

    return step


def _half(model: ESM2) -> ESM2:
    return jax.tree.map(lambda x: x.astype(jnp.float16) if eqx.is_inexact_array(x) else x, model)


def _single(model: ESM2) -> ESM2:
    return jax.tree.map(lambda x: x.astype(jnp.float32) if eqx.is_inexact_array(x) else x, model)


@register_trainer(
    TINY_ARTIFACT,
    make_config=make_config,
    description="small ESM2 (MLM) on the ThermoProt train split",
)
def train(config: dict) -> TrainResult:
    tc, ec = config["train"], config["eval"]
    model_config = ESM2Config.from_dict(config["model"])

    data = load_thermoprot()
    split = homology_split(data.sequences, tuple(SPLIT["fractions"]), seed=SPLIT["seed"])
    corpus = make_corpus([data.sequences[i] for i in split.train])
    val = eval_tokens([data.sequences[i] for i in split.val], ec["max_len"], ec["crop_seed"])
    test = eval_tokens([data.sequences[i] for i in split.test], ec["max_len"], ec["crop_seed"])
    monitor = val[:: max(len(val) // 256, 1)]
    eval_key = jr.key(ec["mask_seed"])

    key_model, key = jr.split(jr.key(tc["seed"]))
    model = ESM2(model_config, key=key_model)
    n_params = sum(x.size for x in jax.tree.leaves(eqx.filter(model, eqx.is_array)))
    optimiser = make_optimiser(tc)
    opt_state = optimiser.init(eqx.filter(model, eqx.is_inexact_array))
    step = make_step(optimiser, tc["batch_size"], tc["max_len"])
    print(
        f"tiny-esm2: {n_params / 1e6:.2f}M parameters, {tc['steps']} steps of "
        f"{tc['batch_size']}x{tc['max_len']} tokens on {jax.default_backend()}; "
        f"{len(split.train)} train / {len(split.val)} val / {len(split.test)} test sequences",
        flush=True,
    )

    log_every = max(tc["steps"] // 20, 1)
    first, previous_wall, sessions = 0, 0.0, 1
    resumed = load_checkpoint(TINY_ARTIFACT, (model, opt_state, key), config=config)
    if resumed is not None:
        (model, opt_state, key), info = resumed
        first, previous_wall = info["step"], info["wall_s"]
        sessions = info["extra"]["sessions"] + 1
        print(f"tiny-esm2: resuming at step {first} ({previous_wall:,.0f} s so far)", flush=True)
    start = last_save = time.perf_counter()
    # The first step compiles: time the rest, without the progress evaluations.
    model, opt_state, key, loss, n_tokens = step(corpus, model, opt_state, key)
    tokens, train_s = jnp.zeros((), jnp.int32), 0.0
    t_start = time.perf_counter()
    for i in range(first + 1, tc["steps"]):
        model, opt_state, key, loss, n_tokens = step(corpus, model, opt_state, key)
        tokens = tokens + n_tokens
        if (i + 1) % log_every == 0 or i + 1 == tc["steps"]:
            loss = float(loss)
            train_s += time.perf_counter() - t_start
            rate = int(tokens) / train_s
            ppl = masked_perplexity(model, monitor, key=eval_key)
            print(
                f"step {i + 1:>6}/{tc['steps']}  loss {loss:.3f}  val ppl (subset) {ppl:6.2f}  "
                f"{rate:,.0f} tokens/s",
                flush=True,
            )
            t_start = time.perf_counter()
        if time.perf_counter() - last_save > CHECKPOINT_EVERY_S and i + 1 < tc["steps"]:
            save_checkpoint(
                TINY_ARTIFACT,
                (model, opt_state, key),
                config=config,
                step=i + 1,
                wall_s=previous_wall + time.perf_counter() - start,
                extra={"sessions": sessions},
            )
            last_save = time.perf_counter()

    shipped = _single(_half(model))
    metrics = {
        "val_perplexity": round(masked_perplexity(shipped, val, key=eval_key), 3),
        "test_perplexity": round(masked_perplexity(shipped, test, key=eval_key), 3),
        "unigram_val_perplexity": round(
            unigram_perplexity(val, np.asarray(corpus.residues), smoothing=1.0), 3
        ),
        "unigram_test_perplexity": round(
            unigram_perplexity(test, np.asarray(corpus.residues), smoothing=1.0), 3
        ),
        "steps": tc["steps"],
        "parameters": int(n_params),
        "tokens_per_s": round(int(tokens) / train_s) if train_s > 0 else None,
        "sessions": sessions,
    }
    print("tiny-esm2 metrics:", metrics, flush=True)
    files = dataset_files("thermoprot")
    clear_checkpoint(TINY_ARTIFACT)
    return TrainResult(
        previous_wall_s=previous_wall,
        tree=_half(model),
        config=config,
        data={
            "dataset": "thermoprot",
            "split": "train",
            "n_train_sequences": len(split.train),
            "files": {f.path: f.sha256 for f in files},
        },
        metrics=metrics,
    )
