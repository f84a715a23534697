"""Fold a sequence with the public ESMFold API and read the result, standard library only.

ESMFold (Lin et al. 2023) predicts a structure from one sequence: ESM2's representations feed
a folding trunk and a structure module, no multiple-sequence alignment needed. Meta's ESM
Atlas serves it at `https://api.esmatlas.com/foldSequence/v1/pdb/`: POST the bare sequence,
get PDB text back, with the per-residue confidence pLDDT in the B-factor column.

The service is free and best-effort; it has limits we check before sending anything:

- at most 400 residues (the service's documented error: "Invalid entry. (Max length is
  400)");
- the 20 standard amino acids only (the service also takes `X`; spaces or line breaks inside
  the sequence make it fail, so whitespace is removed here).

Offline — `$JAXGENAI_OFFLINE` set, no network, DNS failure, time-out, an HTTP error — every
call fails fast with `FoldingUnavailableError`, whose message says what to do instead. The
request goes through the guards of `_http`: the whole
request is bounded by a thread, because `urlopen`'s timeout does not cover name resolution;
redirects are followed only on the service's own host; an answer larger than
`MAX_ANSWER_BYTES` is refused.
"""

import dataclasses
import urllib.error
import urllib.parse
from collections.abc import Mapping
from typing import Any

import numpy as np
from jaxtyping import Float, Int

from tutorial_lib.data import OFFLINE_ENV, offline
from tutorial_lib.protein import _http
from tutorial_lib.protein.alphabet import STANDARD_AMINO_ACIDS

__all__ = [
    "ESMFOLD_MAX_LENGTH",
    "ESMFOLD_URL",
    "MAX_ANSWER_BYTES",
    "FoldingUnavailableError",
    "Structure",
    "ViewerUnavailable",
    "fold_many",
    "fold_sequence",
    "parse_pdb_ca",
    "show_structure",
    "validate_sequence",
]

ESMFOLD_URL = "https://api.esmatlas.com/foldSequence/v1/pdb/"
ESMFOLD_MAX_LENGTH = 400
DEFAULT_TIMEOUT_S = 30.0
#: The most bytes an answer may have: a 400-residue PDB file is about 300 kB.
MAX_ANSWER_BYTES = 16 * 2**20

THREE_TO_ONE = {
    "ALA": "A", "ARG": "R", "ASN": "N", "ASP": "D", "CYS": "C",
    "GLN": "Q", "GLU": "E", "GLY": "G", "HIS": "H", "ILE": "I",
    "LEU": "L", "LYS": "K", "MET": "M", "PHE": "F", "PRO": "P",
    "SER": "S", "THR": "T", "TRP": "W", "TYR": "Y", "VAL": "V",
}  # fmt: skip

_RUN_YOURSELF = (
    "Run ESMFold yourself (the `esm` package or ColabFold's ESMFold notebook) and read its "
    "PDB file with parse_pdb_ca(open(path).read())"
)
_INSTEAD = (
    f"{_RUN_YOURSELF}, or set {OFFLINE_ENV}=1 to skip the online steps without trying the network."
)


class FoldingUnavailableError(RuntimeError):
    """The folding service cannot be used now: offline, unreachable, timed out, or erroring."""


@dataclasses.dataclass(frozen=True)
class Structure:
    """One chain read from PDB text: its residues' C-alpha atoms and confidences.

    `plddt` is on the 0-100 scale whatever the file used (ESMFold's API writes 0-1, the
    `esm` package and AlphaFold 0-100).
    """

    pdb: str = dataclasses.field(repr=False)
    sequence: str
    ca: Float[np.ndarray, "N 3"] = dataclasses.field(repr=False)
    plddt: Float[np.ndarray, " N"] = dataclasses.field(repr=False)
    residue_numbers: Int[np.ndarray, " N"] = dataclasses.field(repr=False)

    def __len__(self) -> int:
        return len(self.sequence)


def validate_sequence(sequence: str, *, max_length: int = ESMFOLD_MAX_LENGTH) -> str:
    """The sequence in upper case without whitespace; ValueError if ESMFold's API rejects it."""
    if not isinstance(sequence, str):
        raise TypeError(f"sequence must be a str of one-letter codes, got {type(sequence)}")
    seq = "".join(sequence.split()).upper()
    if not seq:
        raise ValueError("empty sequence")
    bad = sorted(set(seq) - set(STANDARD_AMINO_ACIDS))
    if bad:
        pos = next(i for i, c in enumerate(seq) if c in bad) + 1
        raise ValueError(
            f"sequence has non-standard letters {''.join(bad)!r} (first at position {pos}); "
            f"the folding API takes the 20 standard amino acids {STANDARD_AMINO_ACIDS}. "
            "Replace unknown residues, e.g. by G or A, or remove them."
        )
    if len(seq) > max_length:
        raise ValueError(
            f"sequence has {len(seq)} residues; the public ESMFold API folds at most "
            f"{max_length}. Fold a domain (a slice of at most {max_length} residues) instead."
        )
    return seq


def parse_pdb_ca(pdb_text: str, *, chain: str | None = None) -> Structure:
    """The C-alpha atoms of the first model's first chain (or of `chain`) in PDB text.

    Reads the fixed PDB columns of `ATOM` records: residue name 18-20, chain 22, residue
    number 23-26 and insertion code 27, x/y/z 31-54, B-factor 61-66 (pLDDT in predicted
    structures). Alternate locations other than the first are skipped; `HETATM` records are
    ignored.
    """
    rows: list[tuple[str, str, int, str, float, float, float, float]] = []
    seen: set[tuple[str, int, str]] = set()
    for line in pdb_text.splitlines():
        if line.startswith("ENDMDL"):
            break
        if not line.startswith("ATOM") or line[12:16].strip() != "CA":
            continue
        try:
            res_name, ch = line[17:20].strip(), line[21]
            res_num, icode = int(line[22:26]), line[26]
            x, y, z = float(line[30:38]), float(line[38:46]), float(line[46:54])
            b = float(line[60:66]) if line[60:66].strip() else 0.0
        except (ValueError, IndexError) as e:
            raise ValueError(f"malformed PDB ATOM record: {line!r}") from e
        if (ch, res_num, icode) in seen:  # an alternate location of a C-alpha already read
            continue
        seen.add((ch, res_num, icode))
        rows.append((res_name, ch, res_num, icode, x, y, z, b))
    if not rows:
        raise ValueError("no C-alpha ATOM records in the PDB text")
    chain = rows[0][1] if chain is None else chain
    rows = [r for r in rows if r[1] == chain]
    if not rows:
        raise ValueError(f"no C-alpha atoms in chain {chain!r}")
    b = np.array([r[7] for r in rows])
    return Structure(
        pdb=pdb_text,
        sequence="".join(THREE_TO_ONE.get(r[0], "X") for r in rows),
        ca=np.array([r[4:7] for r in rows], dtype=np.float64),
        plddt=b * 100.0 if b.max() <= 1.0 else b,
        residue_numbers=np.array([r[2] for r in rows], dtype=np.int64),
    )


def _post(url: str, body: bytes, timeout: float) -> str:
    """POST `body`, return the response text; FoldingUnavailableError on any failure."""
    host = urllib.parse.urlsplit(url).hostname

    def refuse(source: str, target: str) -> ValueError:
        return ValueError(f"{source} redirects to host {target!r}, not following it")

    def request() -> tuple[str | None, str]:
        too_big = ValueError(f"an answer larger than {MAX_ANSWER_BYTES:,} bytes, refused")
        redirects = _http.HostBoundRedirects(lambda h: h == host, refuse)
        try:
            with _http.open_url(
                url, method="POST", data=body, timeout=timeout, redirects=redirects
            ) as r:
                return _http.read_capped(r, MAX_ANSWER_BYTES, too_big).decode("utf-8"), ""
        except urllib.error.HTTPError as e:
            try:
                detail = e.read()[:200].decode("utf-8", "replace").strip()
            except OSError:
                detail = ""
            return None, f"HTTP {e.code}: {detail or e.reason}"
        except Exception as e:  # URLError, OSError, http.client.HTTPException, decoding, caps
            return None, str(getattr(e, "reason", e)) or type(e).__name__

    text, why = _http.in_thread(request, timeout + 0.5) or (None, f"no answer within {timeout:g} s")
    if text is not None:
        return text
    raise FoldingUnavailableError(
        f"the ESMFold API ({url}) is unavailable ({why}). The public service is "
        f"best-effort and needs internet access. {_INSTEAD}"
    )


def fold_sequence(
    sequence: str, *, timeout: float = DEFAULT_TIMEOUT_S, url: str = ESMFOLD_URL
) -> Structure:
    """Predict the structure of `sequence` with the ESMFold API (at most `timeout` seconds).

    Raises ValueError for a sequence the API would reject, and FoldingUnavailableError —
    at once when `$JAXGENAI_OFFLINE` is set — when the service cannot be used.
    """
    seq = validate_sequence(sequence)
    if offline():
        raise FoldingUnavailableError(
            f"{OFFLINE_ENV} is set, so the ESMFold API ({url}) is not contacted. Unset it on "
            f"a machine with internet access, or: {_RUN_YOURSELF}."
        )
    text = _post(url, seq.encode("ascii"), timeout)
    try:
        structure = parse_pdb_ca(text)
    except ValueError as e:
        raise FoldingUnavailableError(
            f"the ESMFold API answered, but not with a structure ({e}); it began "
            f"{text[:120]!r}. {_INSTEAD}"
        ) from e
    if structure.sequence != seq:
        raise FoldingUnavailableError(
            f"the ESMFold API returned a structure of {len(structure)} residues that does not "
            f"match the {len(seq)}-residue query"
        )
    return structure


def fold_many(
    sequences: Mapping[str, str], *, timeout: float = DEFAULT_TIMEOUT_S, url: str = ESMFOLD_URL
) -> dict[str, Structure]:
    """Fold several named sequences with `fold_sequence`, one request at a time (the public
    service is shared): `{name: Structure}` in the order given.

    Every sequence is validated before anything is sent. The first failure of the service
    raises `FoldingUnavailableError` naming the sequence it was folding, so that an offline
    machine pays one failed request, not one per sequence.
    """
    checked = {name: validate_sequence(seq) for name, seq in sequences.items()}
    out = {}
    for name, seq in checked.items():
        try:
            out[name] = fold_sequence(seq, timeout=timeout, url=url)
        except FoldingUnavailableError as e:
            raise FoldingUnavailableError(f"folding {name!r}: {e}") from e
    return out


class ViewerUnavailable:
    """What `show_structure` returns without py3Dmol: a message that displays as text."""

    def __init__(self, message: str):
        self.message = message

    def __repr__(self) -> str:
        return self.message


def show_structure(structure: "Structure | str", *, width: int = 480, height: int = 360) -> Any:
    """An interactive py3Dmol cartoon coloured by pLDDT (red low, blue high).

    Takes a `Structure` or PDB text. Without py3Dmol (`pip install py3Dmol`) it returns an
    object whose text says so, rather than failing.
    """
    try:
        import py3Dmol
    except ImportError:
        return ViewerUnavailable(
            "py3Dmol is not installed, so no 3-D view (pip install py3Dmol); "
            "the structure itself is fine."
        )
    if isinstance(structure, str):
        structure = parse_pdb_ca(structure)
    # The B-factor column holds pLDDT on 0-1 (ESMFold API) or 0-100; colour 50..90 either way.
    raw_max = max(
        (float(ln[60:66]) for ln in structure.pdb.splitlines()
         if ln.startswith("ATOM") and ln[60:66].strip()),
        default=100.0,
    )  # fmt: skip
    scale = 0.01 if raw_max <= 1.0 else 1.0
    view = py3Dmol.view(width=width, height=height)
    view.addModel(structure.pdb, "pdb")
    gradient = {"prop": "b", "gradient": "roygb", "min": 50 * scale, "max": 90 * scale}
    view.setStyle({"cartoon": {"colorscheme": gradient}})
    view.zoomTo()
    return view
