"""The FASTA parser: exact behaviour on examples, and properties on generated input."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutorial_lib.data import DataError, FastaRecord, format_fasta, parse_fasta, read_fasta
from tutorial_lib.data.fasta import PROTEIN_ALPHABET

names = st.text(
    alphabet=st.characters(codec="ascii", exclude_characters="\r\n", min_codepoint=32),
    max_size=30,
).map(str.strip)
sequences = st.text(alphabet=PROTEIN_ALPHABET, min_size=1, max_size=300)
records = st.lists(st.tuples(names, sequences), max_size=8)


def test_messy_but_valid_fasta():
    text = (
        "\ufeff; an old-style comment\r\n"
        "\r\n"
        ">sp|P1| first protein  \r\n"
        "mkv lli\r\n"
        "\r\n"
        "AcD*\r\n"
        ">second\r"
        "WXYZ\r"
        "bjou**\r"
    )
    assert parse_fasta(text) == [
        FastaRecord("sp|P1| first protein", "MKVLLIACD"),
        FastaRecord("second", "WXYZBJOU"),
    ]


def test_invalid_character_names_the_record():
    text = ">ok\nACDE\n>bad one\nACD\nEF1GH\n"
    with pytest.raises(DataError, match=r"invalid character '1' at residue 6 .*'bad one'"):
        parse_fasta(text, source="demo.fasta")
    with pytest.raises(DataError, match=r"line 3 of demo\.fasta"):
        parse_fasta(text, source="demo.fasta")


@pytest.mark.parametrize(
    "text, pattern",
    [
        (">a\nAC*DE\n", r"stop symbol '\*' at residue 3 inside FASTA record 'a'"),
        (">a\n>b\nACD\n", "record 'a' .* has no sequence"),
        (">a\n***\n", "record 'a' .* has no sequence"),
        ("ACDE\n>a\nACD\n", "before the first '>' header"),
        (">a\nAC-DE\n", "invalid character '-'"),
        (">a\nACDÉ\n", "invalid character 'É'"),
        (">a\nACDı\n", "invalid character 'ı'"),  # would upper-case to a valid 'I'
    ],
)
def test_malformed_examples(text, pattern):
    with pytest.raises(DataError, match=pattern):
        parse_fasta(text)


def test_read_fasta_rejects_binary(tmp_path):
    path = tmp_path / "x.fasta"
    path.write_bytes(b">a\nAC\xff\xfeD\n")
    with pytest.raises(DataError, match="not ASCII/UTF-8"):
        read_fasta(path)


@given(records, st.integers(1, 80))
def test_round_trip(recs, width):
    assert parse_fasta(format_fasta(recs, width=width)) == [FastaRecord(*r) for r in recs]


@given(records, st.data())
def test_tolerated_variations_do_not_change_the_result(recs, data):
    """Blank lines, lower case, any wrapping, trailing stops and any line ending are ignored."""
    lines = []
    for name, seq in recs:
        lines.append(f">{name}")
        cuts = sorted(data.draw(st.lists(st.integers(1, len(seq)), max_size=4)))
        chunks = [seq[a:b] for a, b in zip([0, *cuts], [*cuts, len(seq)], strict=True) if a < b]
        for chunk in chunks:
            lines.append(chunk.lower() if data.draw(st.booleans()) else chunk)
            if data.draw(st.booleans()):
                lines.append(data.draw(st.sampled_from(["", "   ", "\t"])))
        lines[-1] += "*" * data.draw(st.integers(0, 2))
    newline = data.draw(st.sampled_from(["\n", "\r\n", "\r"]))
    assert parse_fasta(newline.join(lines)) == [FastaRecord(*r) for r in recs]


@settings(max_examples=200)
@given(
    records.filter(bool),
    st.characters(exclude_characters=PROTEIN_ALPHABET + PROTEIN_ALPHABET.lower() + "*>;").filter(
        lambda c: not c.isspace()
    ),
    st.data(),
)
def test_any_invalid_character_is_reported_with_its_record(recs, bad, data):
    i = data.draw(st.integers(0, len(recs) - 1))
    name, seq = recs[i]
    pos = data.draw(st.integers(0, len(seq)))
    corrupted = list(recs)
    corrupted[i] = (name, seq[:pos] + bad + seq[pos:])
    with pytest.raises(DataError) as info:
        parse_fasta(format_fasta(corrupted, width=1000))
    message = str(info.value)
    assert f"FASTA record {name!r}" in message
    assert repr(bad) in message


@given(st.text(max_size=200))
def test_arbitrary_text_parses_or_raises_data_error(text):
    try:
        out = parse_fasta(text)
    except DataError:
        return
    assert all(r.sequence and set(r.sequence) <= set(PROTEIN_ALPHABET) for r in out)
