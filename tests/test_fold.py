"""The ESMFold API client: sequence checks, PDB parsing, failing fast offline. No network
(one test talks to a server on the loopback interface)."""

import http.server
import io
import sys
import threading
import time
import urllib.error

import numpy as np
import pytest

from tutorial_lib.protein import _http, fold
from tutorial_lib.protein.fold import (
    ESMFOLD_MAX_LENGTH,
    FoldingUnavailableError,
    fold_sequence,
    parse_pdb_ca,
    show_structure,
    validate_sequence,
)

# Fixed PDB columns, as ESMFold writes them (pLDDT on 0-1 in the B-factor column): an
# alternate location, a second chain, a HETATM and a second model, which are all to be skipped.
PDB = """\
HEADER    PREDICTED STRUCTURE
ATOM      1  N   MET A   1      11.104   6.134  -6.504  1.00  0.81           N
ATOM      2  CA  MET A   1      11.639   6.071  -5.147  1.00  0.81           C
ATOM      3  N   LYS A   2      10.000   5.000  -3.000  1.00  0.92           N
ATOM      4  CA ALYS A   2       9.800   4.100  -2.000  1.00  0.92           C
ATOM      5  CA BLYS A   2       9.900   4.200  -2.100  1.00  0.92           C
ATOM      6  CA  TRP A   3       8.000   1.000   0.500  1.00  0.45           C
ATOM      7  CA  GLY B   1       0.000   0.000   0.000  1.00  0.30           C
HETATM    8 ZN   ZN  A   4       1.000   1.000   1.000  1.00  0.00           Z
TER
ENDMDL
ATOM      9  CA  ALA A   1       0.000   0.000   0.000  1.00  0.50           C
END
"""


def test_parse_pdb_ca_reads_first_chain_of_first_model():
    s = parse_pdb_ca(PDB)
    assert s.sequence == "MKW"
    assert len(s) == 3
    np.testing.assert_allclose(s.ca, [[11.639, 6.071, -5.147], [9.8, 4.1, -2.0], [8.0, 1.0, 0.5]])
    np.testing.assert_allclose(s.plddt, [81.0, 92.0, 45.0])  # 0-1 rescaled to 0-100
    np.testing.assert_array_equal(s.residue_numbers, [1, 2, 3])
    assert s.pdb == PDB


def test_parse_pdb_ca_chain_and_0_100_scale():
    assert parse_pdb_ca(PDB, chain="B").sequence == "G"
    scaled = PDB  # a file on the 0-100 scale stays as it is
    for b in ("0.81", "0.92", "0.45"):
        scaled = scaled.replace(f"  {b}  ", f" {float(b) * 100:5.2f}  ")
    np.testing.assert_allclose(parse_pdb_ca(scaled).plddt, [81.0, 92.0, 45.0])


def test_parse_pdb_ca_errors():
    with pytest.raises(ValueError, match="no C-alpha"):
        parse_pdb_ca("HEADER only\nEND\n")
    with pytest.raises(ValueError, match="chain 'C'"):
        parse_pdb_ca(PDB, chain="C")
    broken = PDB.replace("  9.800", "  9.8x0")
    with pytest.raises(ValueError, match="malformed"):
        parse_pdb_ca(broken)


def test_validate_sequence():
    assert validate_sequence(" mkt ay\nIA ") == "MKTAYIA"
    with pytest.raises(ValueError, match=r"'BX'.*position 3"):
        validate_sequence("MKXAB")
    with pytest.raises(ValueError, match="at most 400"):
        validate_sequence("A" * (ESMFOLD_MAX_LENGTH + 1))
    assert len(validate_sequence("A" * ESMFOLD_MAX_LENGTH)) == ESMFOLD_MAX_LENGTH
    with pytest.raises(ValueError, match="empty"):
        validate_sequence("  ")
    with pytest.raises(TypeError):
        validate_sequence(["M", "K"])


def _no_network(*args, **kwargs):
    raise AssertionError("the network must not be touched")


def test_offline_env_fails_fast_without_network(monkeypatch):
    monkeypatch.setenv("JAXGENAI_OFFLINE", "1")
    monkeypatch.setattr(_http, "open_url", _no_network)
    t = time.perf_counter()
    with pytest.raises(FoldingUnavailableError, match="JAXGENAI_OFFLINE is set"):
        fold_sequence("MKTAYIAKQR")
    assert time.perf_counter() - t < 0.5


def test_invalid_sequence_is_rejected_before_the_network(monkeypatch):
    monkeypatch.setattr(_http, "open_url", _no_network)
    with pytest.raises(ValueError, match="non-standard"):
        fold_sequence("MKT1")


def test_unreachable_host_fails_fast_with_advice(monkeypatch):
    monkeypatch.delenv("JAXGENAI_OFFLINE", raising=False)

    def unreachable(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(_http, "open_url", unreachable)
    t = time.perf_counter()
    with pytest.raises(FoldingUnavailableError) as info:
        fold_sequence("MKTAYIAKQR", timeout=5)
    assert time.perf_counter() - t < 1.0
    message = str(info.value)
    assert "Name or service not known" in message
    assert "parse_pdb_ca" in message and "JAXGENAI_OFFLINE=1" in message


def test_hanging_host_is_bounded_by_the_timeout(monkeypatch):
    monkeypatch.delenv("JAXGENAI_OFFLINE", raising=False)

    def hang(*args, **kwargs):
        time.sleep(2)
        raise urllib.error.URLError("too late")

    monkeypatch.setattr(_http, "open_url", hang)
    t = time.perf_counter()
    with pytest.raises(FoldingUnavailableError, match=r"no answer within 0\.2 s"):
        fold_sequence("MKTAYIAKQR", timeout=0.2)
    assert time.perf_counter() - t < 1.5


def test_http_error_reports_status_and_body(monkeypatch):
    monkeypatch.delenv("JAXGENAI_OFFLINE", raising=False)

    def http_error(url, **kwargs):
        body = io.BytesIO(b"Invalid entry. (Max length is 400)")
        raise urllib.error.HTTPError(url, 400, "Bad Request", {}, body)

    monkeypatch.setattr(_http, "open_url", http_error)
    with pytest.raises(FoldingUnavailableError, match=r"HTTP 400: Invalid entry"):
        fold_sequence("MKTAYIAKQR")


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_successful_fold_posts_the_bare_sequence(monkeypatch):
    monkeypatch.delenv("JAXGENAI_OFFLINE", raising=False)
    sent = {}

    def answer(url, *, method, data, timeout, redirects):
        sent.update(url=url, body=data, method=method)
        return _Response(PDB.encode())

    monkeypatch.setattr(_http, "open_url", answer)
    s = fold_sequence("mkw")
    assert sent == {"url": fold.ESMFOLD_URL, "body": b"MKW", "method": "POST"}
    assert s.sequence == "MKW" and s.ca.shape == (3, 3)


def test_answer_that_is_not_a_structure(monkeypatch):
    monkeypatch.delenv("JAXGENAI_OFFLINE", raising=False)
    monkeypatch.setattr(_http, "open_url", lambda *a, **k: _Response(b"<html>"))
    with pytest.raises(FoldingUnavailableError, match="not with a structure"):
        fold_sequence("MKW")
    monkeypatch.setattr(_http, "open_url", lambda *a, **k: _Response(PDB.encode()))
    with pytest.raises(FoldingUnavailableError, match="does not match"):
        fold_sequence("MKWA")


def test_oversize_answer_is_refused(monkeypatch):
    monkeypatch.delenv("JAXGENAI_OFFLINE", raising=False)
    monkeypatch.setattr(fold, "MAX_ANSWER_BYTES", len(PDB) - 1)
    monkeypatch.setattr(_http, "open_url", lambda *a, **k: _Response(PDB.encode()))
    with pytest.raises(FoldingUnavailableError, match=f"larger than {len(PDB) - 1:,} bytes"):
        fold_sequence("MKW")


class _Redirect(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.send_response(302)
        # The same server under another host name: followed, it would answer.
        self.send_header("Location", f"http://localhost:{self.server.server_port}/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_redirect_to_another_host_is_not_followed(monkeypatch):
    monkeypatch.delenv("JAXGENAI_OFFLINE", raising=False)
    server = http.server.HTTPServer(("127.0.0.1", 0), _Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/fold"
        with pytest.raises(FoldingUnavailableError, match="redirects to host 'localhost'"):
            fold_sequence("MKW", url=url, timeout=5)
    finally:
        server.shutdown()
        server.server_close()


def test_in_thread_returns_none_late_and_raises_errors():
    assert _http.in_thread(lambda: 7, 1.0) == 7
    assert _http.in_thread(lambda: time.sleep(1), 0.05) is None
    with pytest.raises(KeyError):
        _http.in_thread(lambda: {}["x"], 1.0)


def test_show_structure_without_py3dmol(monkeypatch):
    monkeypatch.setitem(sys.modules, "py3Dmol", None)  # makes `import py3Dmol` fail
    shown = show_structure(PDB)
    assert "pip install py3Dmol" in repr(shown)


def test_fold_many_checks_everything_first_and_stops_at_the_first_failure(monkeypatch):
    monkeypatch.delenv("JAXGENAI_OFFLINE", raising=False)
    sent = []

    def answer(url, *, method, data, timeout, redirects):
        sent.append(data)
        if len(sent) > 1:
            raise urllib.error.URLError("connection refused")
        return _Response(PDB.encode())

    monkeypatch.setattr(_http, "open_url", answer)
    with pytest.raises(ValueError, match="non-standard"):
        fold.fold_many({"a": "MKW", "b": "MK1"})
    assert sent == []  # a bad sequence is found before anything is sent
    with pytest.raises(FoldingUnavailableError, match="folding 'second'"):
        fold.fold_many({"first": "MKW", "second": "MKW", "third": "MKW"})
    assert sent == [b"MKW", b"MKW"]  # the third is never sent
    sent.clear()
    out = fold.fold_many({"z": "MKW"})
    assert list(out) == ["z"] and out["z"].sequence == "MKW"
