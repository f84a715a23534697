"""A small, strict FASTA reader and writer for protein sequences."""

import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from tutorial_lib.data._errors import DataError

__all__ = [
    "AMINO_ACIDS",
    "PROTEIN_ALPHABET",
    "FastaRecord",
    "format_fasta",
    "parse_fasta",
    "read_fasta",
]

#: The 20 standard amino acids, alphabetically: the library's one spelling of them (the protein
#: package orders them as ESM's tokens do).
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
# The 20 standard amino acids plus the IUPAC extras that real databases contain:
# B (D/N), Z (E/Q), J (I/L), X (unknown), U (selenocysteine), O (pyrrolysine).
PROTEIN_ALPHABET = AMINO_ACIDS + "BJOUXZ"


class FastaRecord(NamedTuple):
    """One FASTA record: the header line without `>`, and the upper-case sequence."""

    name: str
    sequence: str


def _format_alphabet(alphabet: str) -> str:
    return "".join(sorted(set(alphabet.upper())))


def parse_fasta(
    text: str, *, alphabet: str = PROTEIN_ALPHABET, source: str = "<string>"
) -> list[FastaRecord]:
    """Parse FASTA text into records.

    Tolerated: blank lines, `;` comment lines, Windows/old-Mac line ends, a byte-order mark,
    spaces inside sequence lines, lower case (upper-cased), and `*` stop symbols at the end of
    a sequence (dropped). Raises `DataError` naming the record for a character outside
    `alphabet`, a `*` inside a sequence, a record without sequence, or text before the first
    header.
    """
    valid = set(alphabet.upper()) | set(alphabet.lower())
    delete_valid = str.maketrans("", "", "".join(valid))
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    records: list[FastaRecord] = []
    name: str | None = None
    header_line = 0
    chunks: list[str] = []

    def finish() -> None:
        assert name is not None
        where = f"FASTA record {name!r} (header on line {header_line} of {source})"
        seq = "".join(chunks).rstrip("*")
        bad = seq.translate(delete_valid)
        if bad:
            if bad[0] == "*":
                raise DataError(
                    f"stop symbol '*' at residue {seq.index('*') + 1} inside {where}; a stop "
                    "may only end a sequence. Remove it or split the record."
                )
            raise DataError(
                f"invalid character {bad[0]!r} at residue {seq.index(bad[0]) + 1} of {where}; "
                f"allowed: {_format_alphabet(alphabet)} (either case) and a final '*'."
            )
        if not seq:
            raise DataError(f"{where} has no sequence.")
        records.append(FastaRecord(name, seq.upper()))

    for lineno, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(";"):
            continue
        if stripped.startswith(">"):
            if name is not None:
                finish()
            name, header_line, chunks = stripped[1:].strip(), lineno, []
        elif name is None:
            raise DataError(
                f"line {lineno} of {source} holds sequence data before the first '>' header: "
                f"{stripped[:40]!r}. Is this a FASTA file?"
            )
        else:
            chunks.append("".join(stripped.split()))
    if name is not None:
        finish()
    return records


def read_fasta(path: str | os.PathLike, *, alphabet: str = PROTEIN_ALPHABET) -> list[FastaRecord]:
    """Read and parse a FASTA file (see `parse_fasta`); a file without records is an error."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not ASCII/UTF-8 text (byte {e.start}); not FASTA?") from e
    records = parse_fasta(text, alphabet=alphabet, source=path.name)
    if not records:
        raise DataError(
            f"{path} holds no FASTA records (it is empty, or only blank and ';' comment lines); "
            "is it truncated, or the wrong file?"
        )
    return records


def format_fasta(records: Iterable[tuple[str, str]], *, width: int = 60) -> str:
    """FASTA text for `(name, sequence)` pairs, sequences wrapped at `width` characters."""
    out = []
    for name, seq in records:
        out.append(f">{name}")
        out.extend(seq[i : i + width] for i in range(0, len(seq), width))
    return "\n".join(out) + "\n" if out else ""
