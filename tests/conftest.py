"""Fixtures for the data tests: the staged data root, a private cache, a local HTTP mirror."""

import functools
import http.server
import os
import socket
import threading
from pathlib import Path

import pytest

STAGED_FILES = (
    "thermoprot/psychrophilic.fasta",
    "flip/gb1/splits.zip",
    "galaxy-zoo/spiral",
    "galaxy-zoo/non_spiral",
)


@pytest.fixture(scope="session")
def staged_root() -> Path:
    """The staged data folder from $JAXGENAI_DATA; tests needing it skip when it is absent."""
    env = os.environ.get("JAXGENAI_DATA")
    if not env:
        pytest.skip("JAXGENAI_DATA is not set: point it at the staged data folder")
    root = Path(env).expanduser().resolve()
    missing = [p for p in STAGED_FILES if not (root / p).exists()]
    if missing:
        pytest.skip(f"JAXGENAI_DATA={root} lacks the staged data ({', '.join(missing)})")
    return root


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Keep derived caches of the whole test session out of the user's cache directory."""
    cache = tmp_path_factory.mktemp("jaxgenai-cache")
    old = os.environ.get("JAXGENAI_CACHE")
    os.environ["JAXGENAI_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("JAXGENAI_CACHE", None)
    else:
        os.environ["JAXGENAI_CACHE"] = old


class _Handler(http.server.SimpleHTTPRequestHandler):
    truncate: frozenset[str] = frozenset()

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        rel = self.path.lstrip("/")
        if rel in self.truncate:
            # Announce the full length, send half, hang up: a broken download.
            body = (Path(self.directory) / rel).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


class Mirror:
    """A threaded HTTP server on 127.0.0.1 serving `directory` in the data-root layout."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.truncate: set[str] = set()
        handler = functools.partial(self._make_handler(), directory=str(directory))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _make_handler(self):
        mirror = self

        class Handler(_Handler):
            @property
            def truncate(self):  # read at request time, so tests can change it
                return mirror.truncate

        return Handler


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP mirror of an (initially empty) folder; put files under `mirror.directory`."""
    served = tmp_path / "served"
    served.mkdir()
    m = Mirror(served)
    m.thread.start()
    yield m
    m.server.shutdown()
    m.server.server_close()


@pytest.fixture
def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def empty_root(tmp_path, monkeypatch) -> Path:
    """An empty data root, with downloads pointed at a local mirror by the test."""
    root = tmp_path / "data-root"
    root.mkdir()
    monkeypatch.setenv("JAXGENAI_DATA", str(root))
    monkeypatch.delenv("JAXGENAI_OFFLINE", raising=False)
    return root


@pytest.fixture
def staged(staged_root, monkeypatch) -> Path:
    """Use the staged data folder as the data root for this test."""
    monkeypatch.setenv("JAXGENAI_DATA", str(staged_root))
    monkeypatch.delenv("JAXGENAI_DATA_MIRROR", raising=False)
    return staged_root
