"""A character-level masked language model: BERT (Devlin et al. 2019) for letters.

The model of Part III's first chapter, built from the blocks of `tutorial_lib.protein.attention`
and trained on English so that what it learns can be read:

- `CharVocab`, `english_text`: the characters and the text;
- `CharMLM`: embeddings plus positions (sinusoidal or rotary), pre-LN `EncoderBlock`s and an
  output layer tied to the embeddings;
- `mask_characters`, `sample_windows`, `masked_windows`: BERT's 80/10/10 corruption of random
  windows of the text;
- `train_char_mlm`, `evaluate_char_mlm`, `masked_loss_and_accuracy`, `unigram_cross_entropy`,
  `predict_masked`: training, evaluation, the context-free baseline, and filling in blanks.

The loss is the protein chapter's `mlm_loss`: the mean cross-entropy of the original character
at the scored positions, which works unchanged because `CharMLM` returns its logits in the
same way as `ESM2`.
"""

import dataclasses
import re
from functools import partial
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from tutorial_lib.protein.attention import EncoderBlock, sinusoidal_positions
from tutorial_lib.protein.mlm import MaskedTokens, masked_cross_entropy, mlm_loss

__all__ = [
    "DEFAULT_CHARS",
    "CharMLM",
    "CharMLMOutput",
    "CharVocab",
    "english_text",
    "evaluate_char_mlm",
    "mask_characters",
    "masked_loss_and_accuracy",
    "masked_windows",
    "predict_masked",
    "sample_windows",
    "train_char_mlm",
    "unigram_cross_entropy",
]

#: The characters `CharVocab` knows by default: lowercase letters, digits, space, punctuation.
DEFAULT_CHARS = " abcdefghijklmnopqrstuvwxyz0123456789.,:;!'\"()-"


@dataclasses.dataclass(frozen=True)
class CharVocab:
    """A character vocabulary: id 0 is the mask, id 1 "unknown", then one id per character.

    `encode` lower-cases its text, turns `mask_char` into the mask id and any character not
    in `chars` into the unknown id (or raises, with `strict=True`); `decode` shows them as
    `mask_char` and `unknown_char`.
    """

    chars: str = DEFAULT_CHARS
    mask_char: str = "_"
    unknown_char: str = "?"

    MASK = 0
    UNKNOWN = 1
    FIRST_CHAR = 2

    def __post_init__(self) -> None:
        if not self.chars or len(set(self.chars)) != len(self.chars):
            raise ValueError(f"chars must be non-empty and without repeats, got {self.chars!r}")
        for name in ("mask_char", "unknown_char"):
            c = getattr(self, name)
            if len(c) != 1 or c in self.chars:
                raise ValueError(f"{name}={c!r} must be one character that is not in chars")
        if self.mask_char == self.unknown_char:
            raise ValueError("mask_char and unknown_char must differ")

    @property
    def size(self) -> int:
        """Number of ids: the characters plus the mask and unknown ids."""
        return len(self.chars) + 2

    @property
    def tokens(self) -> tuple[str, ...]:
        """The display character of every id, in id order."""
        return (self.mask_char, self.unknown_char, *self.chars)

    def encode(self, text: str, *, strict: bool = False) -> Int[np.ndarray, " L"]:
        """Ids of the characters of `text` (lower-cased), as int32."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        lookup = {c: i for i, c in enumerate(self.tokens)}
        lookup.pop(self.unknown_char)  # an unknown character is any other one
        text = text.lower()
        ids = np.fromiter((lookup.get(c, self.UNKNOWN) for c in text), np.int32, len(text))
        if strict and (ids == self.UNKNOWN).any():
            pos = int(np.argmax(ids == self.UNKNOWN))
            raise ValueError(
                f"character {text[pos]!r} at position {pos} of {text[:30]!r}... is not in the "
                f"vocabulary {self.chars!r}; with strict=False it becomes the unknown id, or "
                "build a CharVocab with more chars"
            )
        return ids

    def decode(self, ids: Int[ArrayLike, "..."]) -> str:
        """The text of a 1-D array of ids (another shape, or ids out of range, raise a
        `ValueError`)."""
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise ValueError(f"decode takes a 1-D array of ids, got shape {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            raise ValueError(f"ids must lie in [0, {self.size}), got {ids.min()}..{ids.max()}")
        return "".join(self.tokens[i] for i in ids)


_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "—": "-", "–": "-"})


def english_text() -> str:
    """English prose that ships with CPython: the help topics of `pydoc_data.topics`.

    Deterministic: topics in sorted order, only their prose lines (indented code and grammar
    blocks, reST tables and heading underlines are dropped), typographic quotes and dashes made
    plain, underscores (our mask character) turned into spaces, whitespace collapsed to single
    spaces, lower-cased. The exact text depends on the Python version.
    """
    try:
        from pydoc_data.topics import topics
    except ImportError as err:  # some Linux distributions split pydoc_data off
        raise ImportError(
            "pydoc_data is missing from this Python installation (some Linux packages split "
            "it off, e.g. into python3-doc); any English text will do: pass your own str"
        ) from err
    kept = []
    for name in sorted(topics):
        for line in topics[name].splitlines():
            stripped = line.strip()
            if line.startswith((" ", "\t", "+", "|")) or re.fullmatch(r"[-=*~^#]*", stripped):
                continue
            kept.append(stripped)
    text = " ".join(kept).translate(_QUOTES).replace("_", " ")
    return re.sub(r"\s+", " ", text).strip().lower()


class CharMLMOutput(NamedTuple):
    """What `CharMLM.__call__` returns for one sequence of `L` characters."""

    logits: Float[Array, "L V"]
    hidden: Float[Array, "L D"]  # the final, normalised representation of every position
    attentions: Float[Array, "layers heads L L"]


class CharMLM(eqx.Module):
    """A small BERT for characters: embeddings + positions, pre-LN blocks, a tied output layer.

    `positions="sinusoidal"` adds `sinusoidal_positions` to the embeddings; `"rotary"` rotates
    queries and keys in every attention layer instead. The output layer reuses the embedding
    matrix (weight tying), plus a bias: a character's logit is the dot product of the final
    representation with that character's embedding.
    """

    embedding: Float[Array, "V D"]
    blocks: tuple[EncoderBlock, ...]
    final_norm: eqx.nn.LayerNorm
    bias: Float[Array, " V"]
    positions: str = eqx.field(static=True)

    def __init__(
        self,
        vocab_size: int,
        *,
        dim: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        mlp_dim: int | None = None,
        positions: str = "sinusoidal",
        key: PRNGKeyArray,
    ):
        if positions not in ("sinusoidal", "rotary"):
            raise ValueError(f"positions must be 'sinusoidal' or 'rotary', got {positions!r}")
        if vocab_size < 3:
            raise ValueError(f"vocab_size={vocab_size}: need the mask, unknown and a character")
        ke, kb = jr.split(key)
        # Unit-variance after the sqrt(dim) scale in __call__, like the position code.
        self.embedding = jr.normal(ke, (vocab_size, dim)) / jnp.sqrt(dim)
        self.blocks = tuple(
            EncoderBlock(dim, num_heads, mlp_dim, rotary=positions == "rotary", key=k)
            for k in jr.split(kb, num_layers)
        )
        self.final_norm = eqx.nn.LayerNorm(dim)
        self.bias = jnp.zeros(vocab_size)
        self.positions = positions

    @property
    def vocab_size(self) -> int:
        return self.embedding.shape[0]

    def __call__(self, ids: Int[Array, "..."]) -> CharMLMOutput:
        """Logits, representations and attention maps of one sequence of character ids.

        `ids` has shape `(L,)`; a batch raises a `ValueError` pointing to `jax.vmap`.
        """
        if ids.ndim != 1:
            raise ValueError(
                f"CharMLM takes one sequence of ids, shape (L,), got {ids.shape}; "
                "use jax.vmap(model) for a batch"
            )
        length, dim = ids.shape[0], self.embedding.shape[1]
        x = self.embedding[ids] * jnp.sqrt(dim)
        if self.positions == "sinusoidal":
            x = x + sinusoidal_positions(length, dim)
        maps = []
        for block in self.blocks:
            x, weights = block(x)
            maps.append(weights)
        hidden = jax.vmap(self.final_norm)(x)
        logits = hidden @ self.embedding.T + self.bias
        return CharMLMOutput(logits, hidden, jnp.stack(maps))


@eqx.filter_jit
def mask_characters(
    key: PRNGKeyArray,
    ids: Int[Array, " L"],
    *,
    vocab_size: int,
    rate: float = 0.15,
    mask_frac: float = 0.8,
    random_frac: float = 0.1,
) -> MaskedTokens:
    """BERT's corruption of one sequence of character ids.

    Each character (not the mask or unknown ids) is scored with probability `rate`; a scored
    character is replaced by the mask id with probability `mask_frac`, by a random character
    with probability `random_frac`, and left as it is otherwise, so the model cannot assume
    that only masked positions need fixing.
    """
    if not 0 <= rate <= 1 or mask_frac < 0 or random_frac < 0 or mask_frac + random_frac > 1:
        raise ValueError(
            f"need 0 <= rate <= 1 and non-negative fractions summing to at most 1, got "
            f"rate={rate}, mask_frac={mask_frac}, random_frac={random_frac}"
        )
    k_u, k_random = jr.split(key)
    # One uniform number per position decides everything: below rate*mask_frac -> mask,
    # then a band for a random character, then a band for "scored but unchanged".
    u = jr.uniform(k_u, ids.shape)
    scored = (u < rate) & (ids >= CharVocab.FIRST_CHAR)
    random_ids = jr.randint(k_random, ids.shape, CharVocab.FIRST_CHAR, vocab_size)
    inputs = jnp.where(scored & (u < rate * mask_frac), CharVocab.MASK, ids)
    swap = scored & (u >= rate * mask_frac) & (u < rate * (mask_frac + random_frac))
    inputs = jnp.where(swap, random_ids, inputs)
    return MaskedTokens(inputs.astype(ids.dtype), ids, scored)


def sample_windows(
    key: PRNGKeyArray, ids: Int[Array, " N"], batch_size: int, length: int
) -> Int[Array, "B L"]:
    """`batch_size` windows of `length` consecutive ids, at uniformly random offsets."""
    if ids.shape[0] < length:
        raise ValueError(f"the text has {ids.shape[0]} characters, fewer than length={length}")
    starts = jr.randint(key, (batch_size,), 0, ids.shape[0] - length + 1)
    return jax.vmap(lambda s: jax.lax.dynamic_slice(ids, (s,), (length,)))(starts)


@eqx.filter_jit
def masked_windows(
    key: PRNGKeyArray,
    ids: Int[Array, " N"],
    batch_size: int,
    length: int,
    *,
    vocab_size: int,
    rate: float = 0.15,
    mask_frac: float = 0.8,
    random_frac: float = 0.1,
) -> MaskedTokens:
    """A batch of random windows of the text `ids`, each corrupted by `mask_characters`."""
    k_windows, k_mask = jr.split(key)
    windows = sample_windows(k_windows, jnp.asarray(ids), batch_size, length)
    corrupt = partial(
        mask_characters,
        vocab_size=vocab_size,
        rate=rate,
        mask_frac=mask_frac,
        random_frac=random_frac,
    )
    return jax.vmap(corrupt)(jr.split(k_mask, batch_size), windows)


@eqx.filter_jit
def masked_loss_and_accuracy(
    logits: Float[Array, "*batch L V"], batch: MaskedTokens
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """Mean cross-entropy (nats) and top-1 accuracy over the scored positions of `batch`."""
    total, count = masked_cross_entropy(logits, batch.targets, batch.selected)
    correct = jnp.sum((logits.argmax(-1) == batch.targets) & batch.selected)
    count = jnp.maximum(count, 1)
    return total / count, correct / count


def train_char_mlm(
    model: CharMLM,
    ids: Int[ArrayLike, "..."],
    *,
    key: PRNGKeyArray,
    steps: int = 500,
    batch_size: int = 32,
    length: int = 64,
    learning_rate: float = 3e-3,
    weight_decay: float = 0.01,
    rate: float = 0.15,
) -> tuple[CharMLM, Float[np.ndarray, " {steps}"]]:
    """Train `model` by masked-character prediction on random windows of the text `ids`.

    AdamW (Loshchilov & Hutter 2019) with a linear warm-up over the first 10% of the steps and
    a cosine decay, gradients clipped to norm 1. Returns the trained model and the training
    loss (mean cross-entropy in nats per scored character) of every step. `ids` must be 1-D,
    or a `ValueError` says so.
    """
    ids = jnp.asarray(ids, dtype=jnp.int32)
    if ids.ndim != 1:
        raise ValueError(f"ids must be one long 1-D array of the text, got shape {ids.shape}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    warmup = max(1, steps // 10)
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, learning_rate, warmup, max(steps, warmup + 1), end_value=learning_rate / 10
    )
    optimizer = optax.chain(
        optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=weight_decay)
    )
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def step(model, opt_state, ids, key):
        batch = masked_windows(key, ids, batch_size, length, vocab_size=model.vocab_size, rate=rate)
        loss, grads = eqx.filter_value_and_grad(mlm_loss)(model, batch)
        params = eqx.filter(model, eqx.is_array)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return eqx.apply_updates(model, updates), opt_state, loss

    losses = []
    for k in jr.split(key, steps):
        model, opt_state, loss = step(model, opt_state, ids, k)
        losses.append(loss)
    return model, np.asarray(jnp.stack(losses))


@eqx.filter_jit
def _scored_batch(model, ids, key, batch_size, length, rate):
    batch = masked_windows(key, ids, batch_size, length, vocab_size=model.vocab_size, rate=rate)
    loss, accuracy = masked_loss_and_accuracy(jax.vmap(model)(batch.inputs).logits, batch)
    return loss, accuracy, jnp.sum(batch.selected)


def evaluate_char_mlm(
    model: CharMLM,
    ids: Int[ArrayLike, " N"],
    *,
    key: PRNGKeyArray,
    num_batches: int = 8,
    batch_size: int = 64,
    length: int = 64,
    rate: float = 0.15,
) -> tuple[float, float]:
    """Masked-character cross-entropy (nats) and top-1 accuracy on random windows of `ids`.

    The same `key` scores the same windows and positions, so two models can be compared.
    """
    ids = jnp.asarray(ids, dtype=jnp.int32)
    total, correct, count = 0.0, 0.0, 0
    for k in jr.split(key, num_batches):
        loss, accuracy, n = _scored_batch(model, ids, k, batch_size, length, rate)
        total, correct, count = (
            total + float(loss) * int(n),
            correct + float(accuracy) * int(n),
            count + int(n),
        )
    if count == 0:
        raise ValueError("no character was scored: is the text all unknown characters?")
    return total / count, correct / count


def unigram_cross_entropy(
    ids: Int[np.ndarray, " N"],
    reference: Int[np.ndarray, " M"] | None = None,
    *,
    vocab_size: int,
    smoothing: float = 1.0,
) -> float:
    """Cross-entropy (nats) of the characters in `ids` under the frequencies in `reference`.

    The baseline a masked language model must beat: guess every masked character from how
    common it is, ignoring the context. `reference` defaults to `ids`; `smoothing` pseudo-counts
    keep an unseen character finite. The mask and unknown ids are ignored.
    """

    def counts(a):
        c = np.bincount(np.asarray(a).ravel(), minlength=vocab_size).astype(np.float64)
        c[: CharVocab.FIRST_CHAR] = 0.0
        return c

    n = counts(ids)
    if n.sum() == 0:
        raise ValueError("ids hold no characters (only mask or unknown ids)")
    ref = counts(ids if reference is None else reference)
    probs = (ref + smoothing)[CharVocab.FIRST_CHAR :]
    n = n[CharVocab.FIRST_CHAR :]
    with np.errstate(divide="ignore"):  # log 0 only where a character never occurs
        logp = np.where(n > 0, np.log(probs / probs.sum()), 0.0)
    return float(-(n * logp).sum() / n.sum())


@eqx.filter_jit
def _logits(model: CharMLM, ids: Int[Array, " L"]) -> Float[Array, "L V"]:
    return model(ids).logits


def predict_masked(
    model: CharMLM, vocab: CharVocab, text: str, *, top_k: int = 3
) -> list[tuple[int, list[tuple[str, float]]]]:
    """Fill in the blanks: for every `vocab.mask_char` in `text`, the `top_k` guesses.

    Returns `(position, [(character, probability), ...])` for each masked position, best
    guess first.
    """
    ids = vocab.encode(text)
    where = np.flatnonzero(ids == vocab.MASK)
    if where.size == 0:
        raise ValueError(f"no {vocab.mask_char!r} in {text!r}: mark the characters to guess")
    probs = np.array(jax.nn.softmax(_logits(model, jnp.asarray(ids))[where], axis=-1))
    probs[:, : vocab.FIRST_CHAR] = 0.0  # never suggest the mask or unknown ids
    out = []
    for pos, p in zip(where, probs, strict=True):
        best = np.argsort(p)[::-1][:top_k]
        out.append((int(pos), [(vocab.tokens[i], float(p[i])) for i in best]))
    return out
