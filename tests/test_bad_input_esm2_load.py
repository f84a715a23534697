"""Bad input to the ESM2 loader: hostile Hub indexes, malformed local checkpoints, empty names
and non-floating dtypes.

The Hub is a loopback HTTP server (`FakeHub`) answering the `resolve/main` URLs huggingface_hub
asks, with the headers it needs (tests/test_esm2_hub.py has a fuller one, with a CDN).
"""

import hashlib
import json
import math
import re
import shutil
import threading
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loopback import loopback_server
from random_esm2 import random_esm2

from tutorial_lib.protein import ESM2Config, ESM2LoadError, load_esm2
from tutorial_lib.protein import load as load_module
from tutorial_lib.protein.load import config_from_hf

CONFIG = ESM2Config(num_layers=1, embed_dim=16, num_heads=2, ffn_dim=32)
HF_CONFIG = {
    "model_type": "esm",
    "position_embedding_type": "rotary",
    "num_hidden_layers": 1,
    "hidden_size": 16,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "layer_norm_eps": 1e-5,
    "token_dropout": True,
}
INT_KEYS = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size")
REPO = "acme/esm2_x"
INDEX = "model.safetensors.index.json"
SHARDS = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]


# --- checkpoints ------------------------------------------------------------------------------


def _tensors(model) -> dict[str, np.ndarray]:
    """The model's tensors under the checkpoint keys the loader itself maps."""
    return {key: np.asarray(get(model)) for key, get in load_module._targets(CONFIG).items()}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """(a random small ESM2, its checkpoint folder: config.json + model.safetensors)."""
    from safetensors.numpy import save_file

    model = random_esm2(CONFIG, 0)
    folder = tmp_path_factory.mktemp("esm2-small")
    (folder / "config.json").write_text(json.dumps(HF_CONFIG))
    save_file(_tensors(model), str(folder / "model.safetensors"))
    return model, folder


@pytest.fixture
def local(checkpoint, tmp_path) -> Path:
    """A writable copy of the checkpoint folder, to be damaged by the test."""
    return Path(shutil.copytree(checkpoint[1], tmp_path / "ck"))


def _shard(folder: Path, names: list, model=None) -> None:
    """Replace model.safetensors by an index spreading the tensors over the shards `names`,
    and write those shards from `model` when it is given."""
    from safetensors.numpy import save_file

    weight_map = {key: names[i % len(names)] for i, key in enumerate(load_module._targets(CONFIG))}
    (folder / INDEX).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (folder / "model.safetensors").unlink()
    if model is not None:
        tensors = _tensors(model)
        for name in names:
            save_file({k: v for k, v in tensors.items() if weight_map[k] == name}, folder / name)


def test_the_test_checkpoint_loads(checkpoint):
    model, folder = checkpoint
    assert eqx.tree_equal(load_esm2(folder), model)


# --- a fake Hub ---------------------------------------------------------------------------------


class FakeHub:
    """A loopback server: `routes` maps a URL path to (status, headers, body); else 404.

    A header set to None is left out (Content-Length is sent unless so removed).
    """

    def __init__(self):
        self.routes: dict[str, tuple[int, dict[str, str | None], bytes]] = {}
        self.requests: list[str] = []
        self.server = loopback_server(self._respond)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _respond(self, method: str, path: str):
        self.requests.append(f"{method} {path}")
        return self.routes.get(path, (404, {}, b"not found"))

    def serve(self, name: str, body: bytes) -> None:
        """Publish `name` in `REPO` with the headers huggingface_hub needs: the commit in
        X-Repo-Commit and the file's git blob sha1 as ETag."""
        etag = hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()
        headers = {"X-Repo-Commit": hashlib.sha1(REPO.encode()).hexdigest(), "ETag": f'"{etag}"'}
        self.routes[f"/{REPO}/resolve/main/{name}"] = (200, headers, body)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A `FakeHub` as HF_ENDPOINT, with an empty Hugging Face cache in tmp_path/hf-cache."""
    constants = pytest.importorskip("huggingface_hub.constants")
    fake = FakeHub()
    threading.Thread(target=fake.server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    for env in ("JAXGENAI_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # read at import from the shell
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


# --- the Hub: hostile answers ---------------------------------------------------------------


@pytest.mark.parametrize(
    "shard",
    [
        "../../../../x.txt",
        "../../../../x.safetensors",
        "sub/dir.safetensors",
        "..\\x.safetensors",
        ".hidden.safetensors",
        "..",
        "x.txt",
        "nul\0.safetensors",
        "C:x.safetensors",
        7,
    ],
)
def test_hub_index_with_unsafe_shard_names_fetches_no_shard(hub, checkpoint, tmp_path, shard):
    hub.serve("config.json", (checkpoint[1] / "config.json").read_bytes())
    index = {"weight_map": {"a": "model-1.safetensors", "b": shard}}
    hub.serve(INDEX, json.dumps(index).encode())
    if isinstance(shard, str):  # served, so that following the name would write it
        hub.routes[f"/{REPO}/resolve/main/{shard}"] = (200, {}, b"pwned")
    hub.serve("model-1.safetensors", (checkpoint[1] / "model.safetensors").read_bytes())
    with pytest.raises(ESM2LoadError, match=f"names shard {re.escape(repr(shard))}.*not a plain"):
        load_esm2(REPO)
    # Only the Hugging Face cache was written to, and no shard was asked for.
    assert [f for f in _files(tmp_path) if not f.startswith("hf-cache/")] == []
    assert not any(f.endswith(".safetensors") for f in _files(tmp_path))
    asked = {r.split("/resolve/main/")[1] for r in hub.requests}
    assert asked == {"config.json", "model.safetensors", INDEX}


# --- malformed local checkpoints ------------------------------------------------------------


@pytest.mark.parametrize(
    "shard", ["../outside.safetensors", "/tmp/outside.safetensors", "..", "C:x.safetensors"]
)
def test_local_index_with_unsafe_shard_names_is_refused(local, shard):
    # A complete checkpoint outside the folder: following the name would load it.
    shutil.copy(local / "model.safetensors", local.parent / "outside.safetensors")
    _shard(local, [shard])
    with pytest.raises(ESM2LoadError, match=r"not a plain file name ending in \.safetensors"):
        load_esm2(local)


def test_local_sharded_checkpoint_loads(checkpoint, local):
    _shard(local, SHARDS, checkpoint[0])
    assert eqx.tree_equal(load_esm2(local), checkpoint[0])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "not a safetensors index"),
        ('{"metadata": {}}', "not a safetensors index"),
        ('{"weight_map": ["model.safetensors"]}', "not a safetensors index"),
    ],
)
def test_local_malformed_index_is_refused(local, text, message):
    _shard(local, ["model.safetensors"])
    (local / INDEX).write_text(text)
    with pytest.raises(ESM2LoadError, match=message):
        load_esm2(local)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[1, 2]", "config.json holds a list, not a JSON object"),
        (b'"esm"', "config.json holds a str, not a JSON object"),
        (b"null", "config.json holds a NoneType, not a JSON object"),
        (b"\xff\xfe{}", "is not valid JSON"),
    ],
)
def test_local_config_that_is_not_an_object_is_refused(local, content, message):
    (local / "config.json").write_bytes(content)
    with pytest.raises(ESM2LoadError, match=message):
        load_esm2(local)


NOT_POSITIVE_WHOLE = st.one_of(
    st.integers(max_value=0),
    st.floats().filter(lambda x: not (x.is_integer() and x > 0)),
    st.booleans(),
    st.text(max_size=5),
    st.none(),
    st.lists(st.integers(1, 9), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
NOT_POSITIVE_FINITE = st.one_of(
    st.floats().filter(lambda x: not 0 < x < math.inf),
    st.integers(max_value=0),
    st.booleans(),
    st.text(max_size=5),
    st.lists(st.floats(), max_size=2),
)


@settings(max_examples=50, deadline=None)
@given(key=st.sampled_from(INT_KEYS), value=NOT_POSITIVE_WHOLE)
def test_config_refuses_sizes_that_are_not_positive_whole_numbers(key, value):
    with pytest.raises(ESM2LoadError, match=f"{key} is .*must be a positive whole number"):
        config_from_hf(HF_CONFIG | {key: value})


@settings(max_examples=50, deadline=None)
@given(key=st.sampled_from(["layer_norm_eps", "rope_theta"]), value=NOT_POSITIVE_FINITE)
def test_config_refuses_eps_and_theta_that_are_not_positive_finite(key, value):
    with pytest.raises(ESM2LoadError, match=f"{key} is .*must be a positive finite number"):
        config_from_hf(HF_CONFIG | {key: value})


@settings(max_examples=50, deadline=None)
@given(
    layers=st.integers(1, 64),
    heads=st.integers(1, 16),
    half_head_dim=st.integers(1, 16),
    ffn=st.integers(1, 4096),
    eps=st.floats(1e-12, 1e-3),
    as_float=st.booleans(),
)
def test_config_accepts_positive_whole_numbers(layers, heads, half_head_dim, ffn, eps, as_float):
    sizes = [layers, heads * 2 * half_head_dim, heads, ffn]
    numbers = [float(n) for n in sizes] if as_float else sizes
    config = config_from_hf(
        HF_CONFIG | dict(zip(INT_KEYS, numbers, strict=True)) | {"layer_norm_eps": eps}
    )
    got = [config.num_layers, config.embed_dim, config.num_heads, config.ffn_dim]
    assert got == sizes and all(type(n) is int for n in got)
    assert config.layer_norm_eps == eps


def test_config_sizes_that_do_not_fit_together_are_a_load_error():
    with pytest.raises(ESM2LoadError, match="not a multiple of num_heads"):
        config_from_hf(HF_CONFIG | {"hidden_size": 30, "num_attention_heads": 4})


@pytest.mark.parametrize(
    ("key", "value"),
    [("token_dropout", "false"), ("token_dropout", 0), ("pad_token_id", True)],
)
def test_config_flags_and_ids_must_have_their_json_type(key, value):
    with pytest.raises(ESM2LoadError, match=f"{key} is {value!r}"):
        config_from_hf(HF_CONFIG | {key: value})


# --- names and dtypes -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../esm2_t6_8M_UR50D", "./esm2_t6_8M_UR50D"])
def test_hub_owner_cannot_be_a_relative_folder(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ESM2LoadError, match="no such directory"):
        load_esm2(name)


@pytest.mark.parametrize("name", ["", "   ", "\t\n"])
def test_empty_name_is_refused_even_with_a_checkpoint_in_the_working_directory(
    local, monkeypatch, name
):
    monkeypatch.chdir(local)
    with pytest.raises(ESM2LoadError, match=r"empty model name .*Give 'tiny', a Hub name"):
        load_esm2(name)


@pytest.mark.parametrize("dtype", [jnp.int32, "int8", np.uint16, bool, jnp.complex64])
def test_non_floating_dtype_is_refused(checkpoint, dtype):
    with pytest.raises(ESM2LoadError, match=r"dtype=\w+ is not a floating dtype"):
        load_esm2(checkpoint[1], dtype=dtype)


@pytest.mark.parametrize("dtype", ["bogus", object(), None, 3])
def test_a_dtype_that_is_no_dtype_is_refused(checkpoint, dtype):
    with pytest.raises(ESM2LoadError, match=r"dtype=.* is not a dtype\. Give a floating dtype"):
        load_esm2(checkpoint[1], dtype=dtype)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, "float32", np.float32])
def test_floating_dtypes_are_accepted(checkpoint, dtype):
    leaves = jax.tree.leaves(eqx.filter(load_esm2(checkpoint[1], dtype=dtype), eqx.is_array))
    assert {leaf.dtype for leaf in leaves} == {jnp.dtype(dtype)}


def test_save_hf_directory_refuses_what_it_cannot_write_faithfully(tmp_path):
    from tutorial_lib.protein import save_hf_directory

    odd = random_esm2(ESM2Config(**{**CONFIG.to_dict(), "rope_theta": 500.0}), 0)
    with pytest.raises(ValueError, match="fixed rotary base of 10000"):
        save_hf_directory(odd, tmp_path / "odd")
    assert not (tmp_path / "odd").exists()
    mine = tmp_path / "notes.txt"
    mine.write_text("my notes")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        save_hf_directory(random_esm2(CONFIG, 0), mine)
    assert mine.read_text() == "my notes"
    written = save_hf_directory(random_esm2(CONFIG, 0), tmp_path / "new" / "model")
    assert eqx.tree_equal(load_esm2(written), random_esm2(CONFIG, 0))
