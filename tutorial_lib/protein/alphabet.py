"""The ESM alphabet: 33 tokens, shared by every ESM-1b and ESM2 checkpoint.

Order as in `esm.data.Alphabet.from_architecture("ESM-1b")` and the Hugging Face `EsmTokenizer`
vocabulary: four special tokens, the 20 standard amino acids (most frequent first), the
non-standard residues X B U Z O, the gap/insertion symbols `.` and `-`, a padding slot
`<null_1>` that rounds the table to a multiple of 8, and `<mask>` last.

A sequence is encoded as `<cls> residues... <eos>`; batches are right-padded with `<pad>`.
"""

import re
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Int

__all__ = [
    "AMINO_ACID_IDS",
    "CLS",
    "EOS",
    "MASK",
    "OTHER_AMINO_ACIDS",
    "PAD",
    "RESIDUE_IDS",
    "SPECIAL_IDS",
    "STANDARD_AMINO_ACIDS",
    "TOKENS",
    "TOKEN_TO_ID",
    "UNK",
    "VOCAB_SIZE",
    "batch_tokenize",
    "detokenize",
    "is_residue",
    "random_tokens",
    "tokenize",
]

#: The 20 standard amino acids in ESM's token order (most frequent first). This is Part III's
#: one spelling of them; `"".join(sorted(STANDARD_AMINO_ACIDS))` is the alphabetical order.
STANDARD_AMINO_ACIDS = "LAGVSERTIDPKQNFYMHWC"
#: Non-standard and ambiguous residues: unknown, D/N, selenocysteine, E/Q, pyrrolysine.
OTHER_AMINO_ACIDS = "XBUZO"

TOKENS: tuple[str, ...] = (
    "<cls>",
    "<pad>",
    "<eos>",
    "<unk>",
    *STANDARD_AMINO_ACIDS,
    *OTHER_AMINO_ACIDS,
    ".",
    "-",
    "<null_1>",
    "<mask>",
)
VOCAB_SIZE = len(TOKENS)
TOKEN_TO_ID: dict[str, int] = {t: i for i, t in enumerate(TOKENS)}

CLS = TOKEN_TO_ID["<cls>"]
PAD = TOKEN_TO_ID["<pad>"]
EOS = TOKEN_TO_ID["<eos>"]
UNK = TOKEN_TO_ID["<unk>"]
MASK = TOKEN_TO_ID["<mask>"]
SPECIAL_IDS: tuple[int, ...] = (CLS, PAD, EOS, UNK, TOKEN_TO_ID["<null_1>"], MASK)

#: Token ids of the 20 standard amino acids (4..23), what a random MLM replacement draws from.
AMINO_ACID_IDS: tuple[int, ...] = tuple(TOKEN_TO_ID[a] for a in STANDARD_AMINO_ACIDS)
#: Token ids of every residue: the 20 standard amino acids and `OTHER_AMINO_ACIDS` (4..28).
#: Not residues: the special tokens (`<mask>` and `<unk>` included) and the gaps `.` and `-`.
RESIDUE_IDS: tuple[int, ...] = tuple(
    TOKEN_TO_ID[a] for a in STANDARD_AMINO_ACIDS + OTHER_AMINO_ACIDS
)


def is_residue(tokens: Int[ArrayLike, "*shape"]) -> Bool[Array, "*shape"]:
    """True where a token is an amino acid (one of `RESIDUE_IDS`).

    `<cls>`, `<eos>`, `<pad>`, `<mask>`, `<unk>` and the alignment gaps `.` and `-` are not
    residues: this is what a language model's loss scores and what a mean embedding averages.
    """
    return jnp.isin(jnp.asarray(tokens), jnp.asarray(RESIDUE_IDS))


def random_tokens(batch_size: int, length: int, *, seed: int = 0) -> Int[np.ndarray, "B L"]:
    """`batch_size` random proteins of `length` tokens: `<cls>`, `length - 2` standard amino
    acids drawn uniformly, `<eos>` (int32; a test or benchmark input, not a protein)."""
    if length < 3 or batch_size < 1:
        raise ValueError(f"need length >= 3 and batch_size >= 1, got {length}, {batch_size}")
    rng = np.random.default_rng(seed)
    body = rng.choice(np.asarray(AMINO_ACID_IDS, np.int32), size=(batch_size, length - 2))
    ends = np.full((batch_size, 1), CLS), np.full((batch_size, 1), EOS)
    return np.concatenate([ends[0], body, ends[1]], axis=1).astype(np.int32)


_PIECE = re.compile(r"<[a-z_0-9]+>|.", re.DOTALL)
_RESIDUES = "".join(t for t in TOKENS if len(t) == 1)


def _ids(seq: str, unknown: str | None) -> list[int]:
    ids = []
    for pos, m in enumerate(_PIECE.finditer(seq)):
        piece = m.group()
        token = piece if piece.startswith("<") and len(piece) > 1 else piece.upper()
        if token in TOKEN_TO_ID:
            ids.append(TOKEN_TO_ID[token])
        elif unknown is not None:
            ids.append(TOKEN_TO_ID[unknown])
        else:
            raise ValueError(
                f"invalid residue {piece!r} at position {pos + 1} of sequence "
                f"{seq[:30]!r}{'...' if len(seq) > 30 else ''}: the ESM alphabet has "
                f"{_RESIDUES} and special tokens such as <mask>. Pass unknown='X' (or "
                f"'<unk>') to map other letters, e.g. J, to a token."
            )
    return ids


def tokenize(seq: str, *, unknown: str | None = None) -> Int[np.ndarray, " L"]:
    """Encode one sequence as `<cls> residues <eos>` (length `len(seq) + 2`), as int32.

    Residues are case-insensitive; special tokens may be written inline (`"MK<mask>LV"`).
    A character outside the alphabet raises `ValueError`, unless `unknown` names the token
    to use in its place (`"X"` or `"<unk>"`).
    """
    if not isinstance(seq, str):
        raise TypeError(f"tokenize expects a str, got {type(seq).__name__}")
    if unknown is not None and unknown not in TOKEN_TO_ID:
        raise ValueError(f"unknown={unknown!r} is not a token of the ESM alphabet")
    return np.array([CLS, *_ids(seq, unknown), EOS], dtype=np.int32)


def batch_tokenize(
    seqs: Sequence[str], *, pad_to: int | None = None, unknown: str | None = None
) -> Int[np.ndarray, "B L"]:
    """Tokenise several sequences and right-pad them with `<pad>` to a common length.

    The length is `pad_to` if given (it must fit the longest sequence plus `<cls>`/`<eos>`),
    else the longest tokenised sequence.
    """
    if isinstance(seqs, str):
        raise TypeError("batch_tokenize expects a list of sequences; use tokenize for one")
    rows = [tokenize(s, unknown=unknown) for s in seqs]
    longest = max((len(r) for r in rows), default=0)
    length = longest if pad_to is None else pad_to
    if length < longest:
        raise ValueError(
            f"pad_to={pad_to} is shorter than the longest tokenised sequence ({longest} "
            f"tokens, including <cls> and <eos>); raise pad_to or crop the sequences."
        )
    out = np.full((len(rows), length), PAD, dtype=np.int32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def detokenize(tokens: Int[np.ndarray, " L"], *, keep_special: bool = False) -> str:
    """The sequence a token array spells (special tokens dropped unless `keep_special`)."""
    special = set(SPECIAL_IDS)
    return "".join(
        TOKENS[int(t)] for t in np.asarray(tokens).ravel() if keep_special or int(t) not in special
    )
