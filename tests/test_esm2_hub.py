"""ESM2 by its Hub name, through huggingface_hub, with the Hub played by a loopback server.

`LoopbackHub` speaks the part of the Hub's protocol that huggingface_hub uses to download a file
(read from `huggingface_hub/file_download.py` and checked against its requests): a HEAD, then a
GET, of `/{repo}/resolve/{revision}/{file}`. A checkpoint that transformers saved is served
there, loaded back with `load_esm2` and compared with transformers' own logits; then the Hub
goes away (stopped, refusing, silent, offline switches) and the loader must use its cache or
fail fast with advice, and `choose_esm2_model` must fall back to the book's tiny model.
"""

import hashlib
import http.server
import json
import re
import socket
import threading
import time
import urllib.parse
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest
from loopback import loopback_server
from random_esm2 import randomise_torch, small_hf_config

from tutorial_lib.protein import ESM2LoadError, HubUnreachableError, load_esm2, tokenize
from tutorial_lib.protein.load import ModelChoice, choose_esm2_model

REPO_8M = "facebook/esm2_t6_8M_UR50D"
REPO_35M = "facebook/esm2_t12_35M_UR50D"
#: Files the real ESM2 repositories also hold, which the loader must never fetch.
OTHER_FILES = {
    "pytorch_model.bin": b"torch pickle",
    "tf_model.h5": b"keras weights",
    "README.md": b"# ESM2",
}
SEQ = "MKTAY<mask>AKQRQ<mask>SFVKSHFSRQLE"
TOL = 1e-4
OFFLINE_ENVS = ("JAXGENAI_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


# --- a Hub on 127.0.0.1 ---------------------------------------------------------------------


def _git_blob_sha1(body: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()


class LoopbackHub:
    """The Hub's download protocol on 127.0.0.1, as huggingface_hub speaks it.

    `HEAD`/`GET /{repo}/resolve/{revision}/{file}`, for revision `main` or the repository's
    commit, answers a small file with 200, the commit in `X-Repo-Commit` and its git blob sha1
    as `ETag`. An LFS file (`*.safetensors`, `*.bin`, `*.h5`) gets a 302 to a second server on
    another port (the Hub's CDN, another origin), carrying the commit, the file's sha256 in
    `X-Linked-Etag` and its size in `X-Linked-Size`: huggingface_hub reads those from the
    redirect without following it with its HEAD, then GETs the CDN's URL. Errors carry the Hub's
    `X-Error-Code` (401 `RepoNotFound` for an unknown repository, 404 `EntryNotFound` for a
    missing file). Requests are logged in `requests`; any other URL answers 404 and is logged in
    `unexpected` as well.
    """

    LFS = (".safetensors", ".bin", ".h5")

    def __init__(self):
        self.repos: dict[str, dict[str, bytes]] = {}
        self.requests: list[str] = []
        self.unexpected: list[str] = []
        self.hub = self._server("hub")
        self.cdn = self._server("cdn")
        self.url = f"http://127.0.0.1:{self.hub.server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self.cdn.server_address[1]}"
        for server in (self.hub, self.cdn):
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def _server(self, role: str) -> http.server.ThreadingHTTPServer:
        def respond(method: str, raw_path: str):
            path = urllib.parse.unquote(urllib.parse.urlsplit(raw_path).path)
            line = f"{method} {role}:{path}"
            self.requests.append(line)
            route = self._hub_route if role == "hub" else self._cdn_route
            status, headers, body = route(path)
            if status == 404 and "X-Error-Code" not in headers:
                self.unexpected.append(line)
            return status, headers, body

        return loopback_server(respond)

    @staticmethod
    def commit(repo: str) -> str:
        return hashlib.sha1(repo.encode()).hexdigest()

    def _hub_route(self, path: str) -> tuple[int, dict[str, str], bytes]:
        match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if match is None:
            return 404, {}, b"not found"
        repo, revision, name = match.groups()
        if repo not in self.repos:
            return 401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "not found"}, b""
        commit = {"X-Repo-Commit": self.commit(repo)}
        if revision not in ("main", self.commit(repo)):
            return 404, {"X-Error-Code": "RevisionNotFound"}, b""
        body = self.repos[repo].get(name)
        if body is None:
            return 404, commit | {"X-Error-Code": "EntryNotFound"}, b""
        if not name.endswith(self.LFS):
            return 200, commit | {"ETag": f'"{_git_blob_sha1(body)}"'}, body
        sha256 = hashlib.sha256(body).hexdigest()
        return (
            302,
            commit
            | {
                "Location": f"{self.cdn_url}/blobs/{sha256}",
                "X-Linked-Etag": f'"{sha256}"',
                "X-Linked-Size": str(len(body)),
            },
            b"",
        )

    def _cdn_route(self, path: str) -> tuple[int, dict[str, str], bytes]:
        blobs = {
            hashlib.sha256(body).hexdigest(): body
            for files in self.repos.values()
            for body in files.values()
        }
        body = blobs.get(path.removeprefix("/blobs/"))
        return (404, {}, b"not found") if body is None else (200, {}, body)

    def publish(self, repo: str, folder: Path) -> None:
        """Serve the files in `folder` as `repo`, next to files the loader must not fetch."""
        self.repos[repo] = {p.name: p.read_bytes() for p in folder.iterdir()} | OTHER_FILES

    def fetched(self) -> set[str]:
        """The names of the files whose content was downloaded (GET), from the Hub or its CDN."""
        names = {
            hashlib.sha256(b).hexdigest(): n for f in self.repos.values() for n, b in f.items()
        }
        got = set()
        for line in self.requests:
            method, path = line.split(" ", 1)
            if method == "GET":
                got.add(names.get(path.removeprefix("cdn:/blobs/"), path.rsplit("/", 1)[-1]))
        return got

    def stop(self) -> None:
        for server in (self.hub, self.cdn):
            server.shutdown()
            server.server_close()


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """(torch, a randomised EsmForMaskedLM, the folder save_pretrained wrote it to)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model = transformers.EsmForMaskedLM(small_hf_config()).eval()
    randomise_torch(model, torch)
    folder = tmp_path_factory.mktemp("esm2-hf")
    model.save_pretrained(folder)
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors"}
    return torch, model, folder


@pytest.fixture
def clean_env(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache, no offline switch and no model override; the cache's path."""
    constants = pytest.importorskip("huggingface_hub.constants")
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    for env in (*OFFLINE_ENVS, "JAXGENAI_ESM2_MODEL", "HF_ENDPOINT"):
        monkeypatch.delenv(env, raising=False)
    # huggingface_hub reads HF_HUB_OFFLINE once, at import: whatever the shell had then.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return cache


@pytest.fixture
def hub(checkpoint, clean_env, monkeypatch):
    """A `LoopbackHub` serving the checkpoint as the 8M and the 35M model, as HF_ENDPOINT."""
    server = LoopbackHub()
    for repo in (REPO_8M, REPO_35M):
        server.publish(repo, checkpoint[2])
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    yield server
    server.stop()


@pytest.fixture
def unreachable(clean_env, closed_port_url, monkeypatch) -> str:
    """HF_ENDPOINT on a local port where nothing listens; its URL."""
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url)
    return closed_port_url


@pytest.fixture
def silent(clean_env, monkeypatch):
    """HF_ENDPOINT on a local port that accepts connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{s.getsockname()[1]}")
        yield


def _cached_files(cache: Path, repo: str) -> set[str]:
    folder = cache / f"models--{repo.replace('/', '--')}" / "snapshots"
    return {p.name for p in folder.glob("*/*")}


# --- downloads --------------------------------------------------------------------------------


def test_hub_name_downloads_only_the_weights_and_matches_transformers(hub, checkpoint, clean_env):
    torch, reference, _ = checkpoint
    model = load_esm2(REPO_8M)

    tokens = tokenize(SEQ)
    logits = eqx.filter_jit(lambda m, t: m(t).logits)(model, jnp.asarray(tokens))
    with torch.no_grad():
        expected = reference(torch.as_tensor(tokens[None], dtype=torch.long)).logits[0].numpy()
    np.testing.assert_allclose(np.asarray(logits), expected, atol=TOL, rtol=0)

    assert hub.fetched() == {"config.json", "model.safetensors"}
    weights = hashlib.sha256(hub.repos[REPO_8M]["model.safetensors"]).hexdigest()
    assert f"GET cdn:/blobs/{weights}" in hub.requests  # redirected, as by the real Hub
    assert hub.unexpected == []
    assert _cached_files(clean_env, REPO_8M) == {"config.json", "model.safetensors"}


def test_second_load_comes_from_the_cache_without_network(hub, clean_env, monkeypatch):
    first = load_esm2("esm2_t6_8M_UR50D")
    hub.stop()  # its ports now refuse connections: any request would fail the load
    assert eqx.tree_equal(load_esm2(REPO_8M), first)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline still means: use the cache
    assert eqx.tree_equal(load_esm2("esm2_t6_8M_UR50D"), first)
    choice = choose_esm2_model("cpu")
    assert choice == (
        REPO_8M,
        f"{REPO_8M} is in the Hugging Face cache; CPU profile → the 8M model",
    )


def test_sharded_checkpoint_downloads_index_and_shards(hub, checkpoint, tmp_path):
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(checkpoint[2] / "model.safetensors"))
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    weight_map = {key: names[i % 2] for i, key in enumerate(sorted(tensors))}
    folder = tmp_path / "sharded"
    folder.mkdir()
    (folder / "config.json").write_bytes((checkpoint[2] / "config.json").read_bytes())
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    for name in names:
        save_file({k: v for k, v in tensors.items() if weight_map[k] == name}, folder / name)
    hub.publish("acme/esm2_sharded", folder)

    assert eqx.tree_equal(load_esm2("acme/esm2_sharded"), load_esm2(checkpoint[2]))
    assert hub.fetched() == {"config.json", "model.safetensors.index.json", *names}
    assert hub.unexpected == []


def test_the_tiny_model_exported_served_and_loaded_back_matches_transformers(
    hub, checkpoint, tmp_path
):
    """The online path end to end, offline: the book's tiny ESM2 written as a Hugging Face
    checkpoint (`save_hf_directory`), published on the loopback Hub, loaded by name through
    huggingface_hub, and checked against transformers' EsmForMaskedLM on the same files."""
    torch, transformers = checkpoint[0], pytest.importorskip("transformers")
    from tutorial_lib.protein import save_hf_directory

    tiny = load_esm2("tiny")
    folder = save_hf_directory(tiny, tmp_path / "tiny-esm2-hf")
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors"}
    hub.publish("book/esm2_tiny_thermoprot", folder)
    served = load_esm2("book/esm2_tiny_thermoprot")
    assert hub.fetched() == {"config.json", "model.safetensors"} and hub.unexpected == []
    assert eqx.tree_equal(served, tiny)  # float16 weights upcast: float32 holds them exactly

    tokens = tokenize(SEQ)
    logits = np.asarray(eqx.filter_jit(lambda m, t: m(t).logits)(served, jnp.asarray(tokens)))
    reference = transformers.EsmForMaskedLM.from_pretrained(folder).eval()
    with torch.no_grad():
        expected = reference(torch.as_tensor(tokens[None], dtype=torch.long)).logits[0].numpy()
    np.testing.assert_allclose(logits, expected, atol=TOL, rtol=0)
    assert np.abs(expected).max() > 1.0  # real logits, not zeros

    with pytest.raises(FileExistsError, match="nothing was written"):
        save_hf_directory(tiny, folder)  # never overwrites


# --- the Hub away -----------------------------------------------------------------------------


def test_unreachable_hub_fails_fast_and_says_what_to_do(unreachable):
    start = time.perf_counter()
    with pytest.raises(HubUnreachableError) as e:
        load_esm2("esm2_t6_8M_UR50D")
    # huggingface_hub alone would retry a refused connection for over 20 s.
    assert time.perf_counter() - start < 10.0
    message = str(e.value)
    assert REPO_8M in message and unreachable in message and "unreachable" in message
    assert 'load_esm2("tiny")' in message and "HF_ENDPOINT" in message
    assert isinstance(e.value, ConnectionError)


def test_silent_hub_is_unreachable_within_the_probe_timeout(silent, monkeypatch):
    from tutorial_lib.protein import load as load_module

    monkeypatch.setattr(load_module, "PROBE_TIMEOUT_S", 0.5)
    start = time.perf_counter()
    with pytest.raises(HubUnreachableError, match="unreachable"):
        load_esm2("esm2_t6_8M_UR50D")
    assert time.perf_counter() - start < 3.0
    start = time.perf_counter()
    assert choose_esm2_model("cpu", probe_timeout=0.5).name == "tiny"
    assert time.perf_counter() - start < 3.0


@pytest.mark.parametrize("env", ["HF_HUB_OFFLINE", "JAXGENAI_OFFLINE"])
def test_offline_switch_fails_without_a_request(hub, monkeypatch, env):
    monkeypatch.setenv(env, "1")
    with pytest.raises(HubUnreachableError, match=f'{env} is set.*load_esm2\\("tiny"\\)'):
        load_esm2(REPO_8M)
    assert choose_esm2_model("cpu") == (
        "tiny",
        f"Hub unreachable ({env} is set): the book's tiny ESM2",
    )
    assert hub.requests == []


def test_a_model_the_hub_lacks_is_a_load_error_not_an_outage(hub):
    with pytest.raises(ESM2LoadError, match=r"has no model 'acme/esm2_nothing' \(HTTP 401") as e:
        load_esm2("acme/esm2_nothing")
    assert not isinstance(e.value, HubUnreachableError)


def test_a_server_that_is_no_hub_is_refused(clean_env, mirror, checkpoint, monkeypatch):
    # A plain file server in the Hub's URL layout, without the Hub's headers (X-Repo-Commit).
    folder = mirror.directory / REPO_8M / "resolve" / "main"
    folder.mkdir(parents=True)
    for f in checkpoint[2].iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    monkeypatch.setenv("HF_ENDPOINT", mirror.url)
    with pytest.raises(HubUnreachableError, match="not as a Hugging Face Hub"):
        load_esm2(REPO_8M)
    assert list(clean_env.rglob("*.safetensors")) == []


# --- choose_esm2_model ------------------------------------------------------------------------


def test_choose_names_the_8m_model_on_cpu_and_the_35m_on_gpu(hub, clean_env, monkeypatch):
    monkeypatch.setenv("JAXGENAI_PROFILE", "cpu")
    cpu = choose_esm2_model()
    assert isinstance(cpu, ModelChoice)
    assert cpu == (REPO_8M, f"Hub reachable at {hub.url}; CPU profile → the 8M model")
    gpu = choose_esm2_model("gpu")
    assert gpu == (REPO_35M, f"Hub reachable at {hub.url}; GPU profile → the 35M model")
    # One HEAD each, nothing downloaded.
    assert hub.requests == [
        f"HEAD hub:/{REPO_8M}/resolve/main/config.json",
        f"HEAD hub:/{REPO_35M}/resolve/main/config.json",
    ]
    assert not clean_env.exists() or list(clean_env.rglob("*.json")) == []


def test_choose_falls_back_to_tiny_when_the_hub_is_unreachable(unreachable):
    start = time.perf_counter()
    choice = choose_esm2_model("gpu", probe_timeout=1.0)
    assert time.perf_counter() - start < 3.0
    assert choice.name == "tiny"
    assert choice.reason.startswith("Hub unreachable (") and "tiny ESM2" in choice.reason
    assert "\n" not in choice.reason


def test_choose_falls_back_to_tiny_when_the_hub_lacks_the_model(hub):
    del hub.repos[REPO_35M]
    choice = choose_esm2_model("gpu")
    assert choice.name == "tiny"
    assert f"has no {REPO_35M} (HTTP 401)" in choice.reason


def test_choose_override_wins(hub, monkeypatch, unreachable):
    monkeypatch.setenv("JAXGENAI_ESM2_MODEL", "esm2_t30_150M_UR50D")  # the Hub is unreachable
    assert choose_esm2_model("cpu") == (
        "esm2_t30_150M_UR50D",
        "JAXGENAI_ESM2_MODEL=esm2_t30_150M_UR50D",
    )
    monkeypatch.setenv("HF_ENDPOINT", hub.url)  # the Hub is reachable
    monkeypatch.setenv("JAXGENAI_ESM2_MODEL", " tiny ")
    assert choose_esm2_model("gpu") == ("tiny", "JAXGENAI_ESM2_MODEL=tiny")
    assert hub.requests == []
    monkeypatch.setenv("JAXGENAI_ESM2_MODEL", "esm3_small")
    with pytest.raises(ESM2LoadError, match="JAXGENAI_ESM2_MODEL='esm3_small': unknown ESM2 model"):
        choose_esm2_model()
