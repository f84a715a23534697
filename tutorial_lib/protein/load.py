"""Load ESM2 weights into the Equinox `ESM2`, without PyTorch.

`load_esm2(name_or_path)` accepts

- a directory in Hugging Face `EsmForMaskedLM` format: `config.json` plus `model.safetensors`
  (or a sharded `model.safetensors.index.json`), read with `safetensors.numpy`;
- an ESM2 model name, `esm2_t6_8M_UR50D` or `facebook/esm2_t6_8M_UR50D`: the two files are
  taken from the per-user cache, from an existing Hugging Face cache (when `huggingface_hub`
  is installed: the `[hub]` extra), or downloaded from the Hub (size-capped, only from the Hub's
  own hosts, checked against the hashes it announces). Offline, this fails within seconds and
  says what to use instead;
- `"tiny"`: the book's own small ESM2, trained on ThermoProt by
  `python -m tutorial_lib.train tiny-esm2` and shipped as an artifact.

Checkpoints differ in details that the loader smooths over: LayerNorm parameters are called
`gamma`/`beta` (what `save_pretrained` writes today) or `weight`/`bias`; the rotary `inv_freq`
buffer is stored per layer, once under a wildcard key, or not at all (it is recomputed); the
LM decoder is usually tied to the token embeddings and then absent from the file.
"""

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import warnings
from collections.abc import Callable
from email.message import Message
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from tutorial_lib.protein import _http
from tutorial_lib.protein.alphabet import MASK, PAD, VOCAB_SIZE
from tutorial_lib.protein.esm2 import ESM2, ESM2Config

__all__ = [
    "ESM2_MODELS",
    "HUB_CONFIGS",
    "TINY_ARTIFACT",
    "ESM2LoadError",
    "HubUnreachableError",
    "config_from_hf",
    "esm2_skeleton",
    "load_esm2",
    "load_hf_directory",
    "parameter_count",
]

TINY_ARTIFACT = "tiny-esm2"
#: The ESM2 checkpoints Meta published on the Hugging Face Hub (under `facebook/`).
ESM2_MODELS = (
    "esm2_t6_8M_UR50D",
    "esm2_t12_35M_UR50D",
    "esm2_t30_150M_UR50D",
    "esm2_t33_650M_UR50D",
    "esm2_t36_3B_UR50D",
    "esm2_t48_15B_UR50D",
)
#: Their sizes, from each checkpoint's `config.json` (layers, width, heads, FFN width).
HUB_CONFIGS = {
    name: ESM2Config(num_layers=n, embed_dim=d, num_heads=h, ffn_dim=4 * d)
    for name, (n, d, h) in zip(
        ESM2_MODELS,
        [
            (6, 320, 20),
            (12, 480, 20),
            (30, 640, 20),
            (33, 1280, 20),
            (36, 2560, 40),
            (48, 5120, 40),
        ],
        strict=True,
    )
}
HUB_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT_S = 5.0
#: The most bytes a download may have: far above any ESM2 file, far below a full disk.
MAX_WEIGHTS_BYTES = 64 * 2**30
MAX_JSON_BYTES = 2**20
#: Where the Hub itself redirects downloads to (its LFS and xet CDNs).
_HUB_CDN_DOMAINS = ("huggingface.co", "hf.co")
_HASH = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_INDEX = "model.safetensors.index.json"
_HUB_NAME = re.compile(r"^(?:(?P<owner>(?!\.{1,2}/)[\w.-]+)/)?(?P<name>esm2_[\w.-]+)$")
_OFFLINE_ENVS = ("JAXGENAI_OFFLINE", "HF_HUB_OFFLINE")
_ACCEPTED = (
    f"Give 'tiny', a Hub name such as {', '.join(ESM2_MODELS[:3])} (with or without "
    "'facebook/'), or a directory holding a Hugging Face checkpoint (config.json + "
    "model.safetensors)."
)
_ALTERNATIVES = (
    'Use load_esm2("tiny") (the book\'s small ESM2, shipped with the library) or '
    "load_esm2('/path/to/dir') on a folder holding config.json and model.safetensors "
    "copied from a machine with internet access."
)


class ESM2LoadError(ValueError):
    """A checkpoint or model name that cannot be turned into an `ESM2`."""


class HubUnreachableError(ESM2LoadError, ConnectionError):
    """The Hugging Face Hub cannot be reached (offline, firewall, DNS)."""


def load_esm2(name_or_path: str | os.PathLike, *, dtype: Any = jnp.float32) -> ESM2:
    """An `ESM2` from a local Hugging Face directory, a Hub model name, or `"tiny"`.

    Parameters are returned in `dtype`, a floating dtype (checkpoints stored in float16 are
    upcast by default).
    """
    dtype = _float_dtype(dtype)
    if isinstance(name_or_path, str) and not name_or_path.strip():
        # Path("") is the working directory: an empty name would load whatever lies there.
        raise ESM2LoadError(f"empty model name {name_or_path!r}. {_ACCEPTED}")
    if isinstance(name_or_path, os.PathLike) or Path(str(name_or_path)).expanduser().is_dir():
        return load_hf_directory(name_or_path, dtype=dtype)
    name = str(name_or_path)
    if name in ("tiny", TINY_ARTIFACT):
        return _cast(_load_tiny(), dtype)
    match = _HUB_NAME.match(name)
    if match:
        repo = f"{match['owner'] or 'facebook'}/{match['name']}"
        return load_hf_directory(_hub_files(repo), dtype=dtype)
    if os.sep in name or name.startswith((".", "~")):
        raise ESM2LoadError(f"no such directory: {name!r}")
    raise ESM2LoadError(f"unknown ESM2 model {name!r}. {_ACCEPTED}")


def _float_dtype(dtype: Any) -> np.dtype:
    """`dtype` as a NumPy dtype, refused unless floating: an integer cast truncates weights."""
    try:
        # np.dtype(None) is float64, which nobody asking for None means.
        resolved = jnp.dtype(dtype) if dtype is not None else None
    except (TypeError, ValueError):
        resolved = None
    if resolved is None:
        raise ESM2LoadError(
            f"dtype={dtype!r} is not a dtype. Give a floating dtype: jnp.float32 (the "
            "default), jnp.bfloat16, jnp.float16 or a name such as 'float32'."
        )
    if not jnp.issubdtype(resolved, jnp.floating):
        raise ESM2LoadError(
            f"dtype={resolved} is not a floating dtype: ESM2's weights would be truncated. "
            "Give jnp.float32 (the default), jnp.bfloat16 or jnp.float16."
        )
    return resolved


def _cast(model: ESM2, dtype: Any) -> ESM2:
    return jax.tree.map(lambda x: x.astype(dtype) if eqx.is_inexact_array(x) else x, model)


def parameter_count(config: ESM2Config) -> int:
    """Number of parameters an ESM2 of this size has, computed without allocating it."""
    shapes = eqx.filter_eval_shape(ESM2, config, key=jr.key(0))
    return sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes))


def esm2_skeleton(config: ESM2Config, dtype: Any = jnp.float32) -> ESM2:
    """An `ESM2` whose leaves are `jax.ShapeDtypeStruct`s: a template to load weights into."""
    shapes = eqx.filter_eval_shape(ESM2, config, key=jr.key(0))
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, dtype), shapes)


# --- the book's tiny model ------------------------------------------------------------------


def _load_tiny() -> ESM2:
    """The shipped tiny ESM2, held to the trainer's own config (either size profile's): an
    edited `metadata.json` (say a different `rope_theta`) is refused, not silently used."""
    from tutorial_lib.artifacts import (
        ArtifactError,
        config_differences,
        load_artifact,
        read_metadata,
    )
    from tutorial_lib.config import PROFILES
    from tutorial_lib.train.tiny_esm2 import make_config

    recorded = read_metadata(TINY_ARTIFACT).get("config")
    candidates = [make_config(profile=p) for p in PROFILES]
    diffs = [config_differences(recorded, c) for c in candidates]
    config = next((c for c, d in zip(candidates, diffs, strict=True) if not d), None)
    if config is None:
        closest = min(diffs, key=len)
        raise ArtifactError(
            f"artifact {TINY_ARTIFACT!r} records a config that the trainer does not make:\n  "
            + "\n  ".join(closest)
            + f"\nRestore the shipped metadata.json, or retrain with "
            f"`python -m tutorial_lib.train {TINY_ARTIFACT}`."
        )
    model_config = ESM2Config.from_dict(config["model"])
    like = esm2_skeleton(model_config, jnp.dtype(config["weights_dtype"]))
    model, _ = load_artifact(TINY_ARTIFACT, like, config=config)
    return model


# --- Hugging Face directories ---------------------------------------------------------------


def config_from_hf(hf: object) -> ESM2Config:
    """`ESM2Config` from a Hugging Face `EsmConfig` dict; refuses what ESM2 is not.

    `hf` is the parsed `config.json`, whatever it holds: anything but an ESM2 configuration
    object raises `ESM2LoadError` saying why.
    """

    def need(cond: bool, what: str) -> None:
        if not cond:
            raise ESM2LoadError(f"not an ESM2 checkpoint: {what}")

    if not isinstance(hf, dict):
        raise ESM2LoadError(
            f"not an ESM2 checkpoint: config.json holds a {type(hf).__name__}, not a JSON object"
        )
    need(hf.get("model_type") == "esm", f"model_type is {hf.get('model_type')!r}, not 'esm'")
    need(not hf.get("is_folding_model"), "this is an ESMFold checkpoint")
    need(
        hf.get("position_embedding_type") == "rotary",
        f"position_embedding_type is {hf.get('position_embedding_type')!r} (ESM-1 models "
        "use absolute positions; only ESM2's rotary embeddings are implemented)",
    )
    need(not hf.get("emb_layer_norm_before"), "emb_layer_norm_before is set (ESM-1b style)")
    need(not hf.get("is_decoder"), "is_decoder is set")
    need(hf.get("hidden_act", "gelu") == "gelu", f"hidden_act is {hf.get('hidden_act')!r}")
    for key, want in (("vocab_size", VOCAB_SIZE), ("pad_token_id", PAD), ("mask_token_id", MASK)):
        value = hf.get(key, want)
        need(
            type(value) is int and value == want,
            f"{key} is {value!r}, the ESM alphabet has {want}",
        )
    try:
        sizes = {field: _positive_int(hf, key) for field, key in _SIZE_KEYS.items()}
    except KeyError as e:
        raise ESM2LoadError(f"config.json lacks {e.args[0]!r}") from None
    eps = _positive_float(hf, "layer_norm_eps", 1e-12)
    rope_theta = _positive_float(hf, "rope_theta", 10000.0)
    token_dropout = hf.get("token_dropout", False)
    need(
        isinstance(token_dropout, bool),
        f"token_dropout is {token_dropout!r}; it must be true or false (a JSON boolean)",
    )
    try:
        return ESM2Config(
            **sizes,
            layer_norm_eps=eps,
            token_dropout=token_dropout,
            rope_theta=rope_theta,
        )
    except ValueError as e:  # sizes that do not fit together, e.g. heads not dividing width
        raise ESM2LoadError(f"not an ESM2 checkpoint: {e}") from e


#: `ESM2Config` field -> `EsmConfig` key.
_SIZE_KEYS = {
    "num_layers": "num_hidden_layers",
    "embed_dim": "hidden_size",
    "num_heads": "num_attention_heads",
    "ffn_dim": "intermediate_size",
}


def _positive_int(hf: dict[str, Any], key: str) -> int:
    value = hf[key]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ESM2LoadError(
            f"config.json: {key} is {value!r}; it must be a positive whole number. Fix the "
            "file, or take config.json from the checkpoint's source again."
        )
    return value


def _positive_float(hf: dict[str, Any], key: str, default: float) -> float:
    value = hf.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ESM2LoadError(
            f"config.json: {key} is {value!r}; it must be a positive finite number. Fix the "
            "file, or take config.json from the checkpoint's source again."
        )
    return float(value)


def _read_json(path: Path, where: str | Path | None = None) -> Any:
    """The JSON in `path`; `where` names it in errors (a downloaded file: its URL)."""
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ESM2LoadError(
            f"{where or path} is not valid JSON ({e}); the checkpoint is damaged: copy or "
            "download it again."
        ) from e


def _shard_name(name: Any, where: str | Path) -> str:
    """`name` if it is a plain `*.safetensors` file name: an index may come from anyone."""
    if (
        not isinstance(name, str)
        or name.startswith(".")
        or any(c in name for c in "/\\:\0")  # ":" would name a drive on Windows
        or not name.endswith(".safetensors")
    ):
        raise ESM2LoadError(
            f"{where} names shard {name!r}, which is not a plain file name ending in "
            ".safetensors; refusing to read or write it. The index is damaged or malicious: "
            "get the checkpoint again from a source you trust."
        )
    return name


def _index_shards(index: Path, where: str | Path | None = None) -> list[str]:
    """The shard files a `model.safetensors.index.json` maps the tensors to."""
    where = where or index
    data = _read_json(index, where)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict):
        raise ESM2LoadError(
            f"{where} is not a safetensors index: it needs a JSON object whose 'weight_map' "
            "maps tensor names to shard files. Copy or download the checkpoint again."
        )
    return sorted({_shard_name(f, where) for f in weight_map.values()})


def _read_tensors(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    single, index = folder / "model.safetensors", folder / _INDEX
    if single.is_file():
        files = [single]
    elif index.is_file():
        # Only plain names: shards may be symlinks (a Hugging Face cache), so no resolve().
        files = [folder / f for f in _index_shards(index)]
    else:
        bins = [p.name for p in folder.glob("*.bin")]
        hint = (
            f" It has {', '.join(bins)}: PyTorch pickles are not read here; convert them with "
            "`EsmForMaskedLM.from_pretrained(dir).save_pretrained(dir)` where torch is installed."
            if bins
            else ""
        )
        raise ESM2LoadError(f"{folder} has no model.safetensors.{hint}")
    tensors: dict[str, np.ndarray] = {}
    for f in files:
        try:
            tensors.update(load_file(str(f)))
        except Exception as e:  # safetensors raises its own error types
            raise ESM2LoadError(f"cannot read {f}: {e}") from e
    return tensors


def _normalise(key: str) -> str:
    key = key.removeprefix("esm.")
    if key.endswith(".gamma"):
        return key[: -len(".gamma")] + ".weight"
    if key.endswith(".beta"):
        return key[: -len(".beta")] + ".bias"
    return key


def _ignored(key: str) -> bool:
    return key.endswith(
        ("inv_freq", "position_ids", "position_embeddings.weight")
    ) or key.startswith("pooler.")


Getter = Callable[[ESM2], Any]


def _linear(prefix: str, get: Getter) -> dict[str, Getter]:
    return {f"{prefix}.weight": lambda m: get(m).weight, f"{prefix}.bias": lambda m: get(m).bias}


def _targets(config: ESM2Config) -> dict[str, Getter]:
    """Checkpoint key (normalised) -> where that tensor lives in an `ESM2`."""
    t: dict[str, Getter] = {"embeddings.word_embeddings.weight": lambda m: m.embedding.weight}
    for i in range(config.num_layers):
        p = f"encoder.layer.{i}"

        def layer(m: ESM2, i: int = i):
            return m.layers[i]

        t |= _linear(f"{p}.attention.LayerNorm", lambda m, f=layer: f(m).attn_norm)
        for name in ("query", "key", "value"):
            t |= _linear(
                f"{p}.attention.self.{name}", lambda m, f=layer, n=name: getattr(f(m).attn, n)
            )
        t |= _linear(f"{p}.attention.output.dense", lambda m, f=layer: f(m).attn.output)
        t |= _linear(f"{p}.LayerNorm", lambda m, f=layer: f(m).ffn_norm)
        t |= _linear(f"{p}.intermediate.dense", lambda m, f=layer: f(m).fc1)
        t |= _linear(f"{p}.output.dense", lambda m, f=layer: f(m).fc2)
    t |= _linear("encoder.emb_layer_norm_after", lambda m: m.final_norm)
    t |= _linear("lm_head.dense", lambda m: m.lm_head.dense)
    t |= _linear("lm_head.layer_norm", lambda m: m.lm_head.norm)
    t |= _linear("contact_head.regression", lambda m: m.contact_head.regression)
    t["lm_head.bias"] = lambda m: m.lm_head.bias
    return t


def load_hf_directory(folder: str | os.PathLike, *, dtype: Any = jnp.float32) -> ESM2:
    """An `ESM2` from a Hugging Face `EsmForMaskedLM` directory (config.json + safetensors)."""
    dtype = _float_dtype(dtype)
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ESM2LoadError(f"no such directory: {folder}")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ESM2LoadError(
            f"{folder} has no config.json: is it a Hugging Face checkpoint directory "
            "(what save_pretrained writes)?"
        )
    config = config_from_hf(_read_json(config_path))
    raw = _read_tensors(folder)
    tensors: dict[str, np.ndarray] = {}
    for key, value in raw.items():
        tensors.setdefault(_normalise(key), value)

    targets = _targets(config)
    missing = [k for k in targets if k not in tensors]
    if missing:
        hint = (
            " (no LM head: the file holds an EsmModel; save an EsmForMaskedLM instead)"
            if any(k.startswith("lm_head") for k in missing)
            else ""
        )
        raise ESM2LoadError(
            f"{folder}: checkpoint lacks {len(missing)} tensors the config implies, e.g. "
            f"{', '.join(missing[:4])}{hint}"
        )
    unexpected = [
        k for k in tensors if k not in targets and k != "lm_head.decoder.weight" and not _ignored(k)
    ]
    if unexpected:
        raise ESM2LoadError(
            f"{folder}: unexpected tensors {', '.join(sorted(unexpected)[:4])}; "
            f"is config.json ({config.num_layers} layers) the one that goes with these weights?"
        )

    skeleton = esm2_skeleton(config, dtype)
    getters = list(targets.values())
    values = []
    for key, get in targets.items():
        value, template = tensors[key], get(skeleton)
        if value.shape != template.shape:
            raise ESM2LoadError(
                f"{folder}: tensor {key} has shape {value.shape}, the config implies "
                f"{template.shape}"
            )
        values.append(jnp.asarray(value, dtype=dtype))
    model = eqx.tree_at(lambda m: [g(m) for g in getters], skeleton, values)

    decoder = tensors.get("lm_head.decoder.weight")
    if decoder is not None and not np.array_equal(decoder, tensors[next(iter(targets))]):
        if decoder.shape != (config.vocab_size, config.embed_dim):
            raise ESM2LoadError(f"{folder}: lm_head.decoder.weight has shape {decoder.shape}")
        model = eqx.tree_at(
            lambda m: m.lm_head.decoder,
            model,
            jnp.asarray(decoder, dtype=dtype),
            is_leaf=lambda x: x is None,
        )
    return model


# --- the Hugging Face Hub -------------------------------------------------------------------


def _endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", HUB_ENDPOINT).rstrip("/")


def _hub_cache(repo: str) -> Path:
    from tutorial_lib.data import cache_dir

    return cache_dir() / "esm2" / repo.replace("/", "--")


def _complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (
        (folder / "model.safetensors").is_file()
        or (folder / "model.safetensors.index.json").is_file()
    )


def _from_hf_cache(repo: str) -> Path | None:
    """The folder of `repo` in an existing Hugging Face cache, if both files are there."""
    try:
        with warnings.catch_warnings():
            # tqdm warns at import inside Jupyter without ipywidgets; nothing is shown here.
            warnings.filterwarnings("ignore", message="IProgress not found")
            from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    paths = [try_to_load_from_cache(repo, f) for f in ("config.json", "model.safetensors")]
    if all(isinstance(p, str) for p in paths):
        return Path(paths[0]).parent
    return None


def _offline_reason() -> str | None:
    for env in _OFFLINE_ENVS:
        if os.environ.get(env, "").strip().lower() in {"1", "true", "yes", "on"}:
            return f"{env} is set"
    return None


class _Head(NamedTuple):
    """What a HEAD request that does not follow redirects says about a file on the Hub."""

    status: int
    digest: str | None  # sha256 of an LFS file, git blob sha1 of a small one
    size: int | None

    @classmethod
    def parse(cls, status: int, headers: Message) -> "_Head":
        # A redirect's own ETag and Content-Length describe the redirect, not the file.
        direct = status == 200
        tag = headers.get("X-Linked-Etag") or (headers.get("ETag") if direct else None) or ""
        tag = tag.removeprefix("W/").strip('"').lower()
        size = headers.get("X-Linked-Size") or (headers.get("Content-Length") if direct else None)
        return cls(status, tag if _HASH.fullmatch(tag) else None, _http.header_int(size))

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400

    def __str__(self) -> str:
        return f"HTTP {self.status}"


def _trusted_host(host: str) -> bool:
    endpoint = urllib.parse.urlsplit(_endpoint()).hostname
    cdn = endpoint == urllib.parse.urlsplit(HUB_ENDPOINT).hostname and host.endswith(
        tuple(f".{domain}" for domain in _HUB_CDN_DOMAINS)
    )
    return host == endpoint or cdn


def _refuse_redirect(url: str, host: str) -> ESM2LoadError:
    return ESM2LoadError(
        f"{url} redirects to host {host!r}, which is not the Hub's ({_endpoint()}); refusing "
        "to follow it. Set HF_ENDPOINT to a Hub or mirror that serves its own files, or "
        "download the checkpoint by hand and give load_esm2 its directory."
    )


def _open(url: str, *, method: str = "GET", timeout: float = PROBE_TIMEOUT_S, follow: bool = True):
    """Open `url`, following redirects only to the endpoint's host (for the real Hub, also to
    its CDNs), or none at all."""
    redirects = (
        _http.HostBoundRedirects(_trusted_host, _refuse_redirect) if follow else _http.NoRedirects()
    )
    return _http.open_url(url, method=method, timeout=timeout, redirects=redirects)


def _probe(url: str) -> _Head | str:
    """HEAD `url` without following redirects, or say why it failed; never longer than the timeout.

    A thread bounds the whole probe: `urlopen`'s timeout does not cover name resolution,
    which can hang for tens of seconds behind some firewalls.
    """

    def probe() -> _Head | str:
        try:
            with _open(url, method="HEAD", follow=False) as r:
                return _Head.parse(r.status, r.headers)
        except urllib.error.HTTPError as e:
            head = _Head.parse(e.code, e.headers)
            e.close()
            return head
        except (*_http.NETWORK_ERRORS, ValueError) as e:  # ValueError: a malformed HF_ENDPOINT
            return str(getattr(e, "reason", e))

    result = _http.in_thread(probe, PROBE_TIMEOUT_S + 0.5)
    return f"no answer within {PROBE_TIMEOUT_S:.0f} s" if result is None else result


def _size_cap(target: Path) -> tuple[str, int]:
    if target.suffix == ".json":
        return "MAX_JSON_BYTES", MAX_JSON_BYTES
    return "MAX_WEIGHTS_BYTES", MAX_WEIGHTS_BYTES


def _verify(path: Path, digest: str | None, url: str) -> None:
    """Check `path` against the Hub's hash: sha256 (LFS files) or git blob sha1 (small files)."""
    if digest is None:
        return
    size = path.stat().st_size
    start = hashlib.sha256 if len(digest) == 64 else lambda: hashlib.sha1(b"blob %d\0" % size)
    with path.open("rb") as f:
        got = hashlib.file_digest(f, start).hexdigest()
    if got != digest:
        raise ESM2LoadError(
            f"{url} does not match the hash the Hub gives for it (expected {digest}, got "
            f"{got}); it was discarded. Try again; if this persists, {_endpoint()} serves "
            "altered files."
        )


def _download(url: str, target: Path, head: _Head) -> None:
    """Download `url` to `target`, world-readable, refusing a body over the size cap.

    The file is checked against the hash in `head`; a server that gives none (a plain mirror)
    has its files accepted unverified.
    """
    cap_name, cap = _size_cap(target)
    too_big = ESM2LoadError(
        f"{url} is larger than {cap:,} bytes ({cap_name} in {__name__}); refusing it: no ESM2 "
        f"file is that large. Check that HF_ENDPOINT ({_endpoint()}) is a Hugging Face Hub."
    )
    if (head.size or 0) > cap:
        raise too_big
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as f, _open(url, timeout=60) as r:
            length = _http.header_int(r.headers.get("Content-Length"))
            if (length or 0) > cap:
                raise too_big
            got = _http.copy_capped(r, f, cap, too_big)
        if length is not None and got != length:
            raise ESM2LoadError(
                f"download of {url} stopped after {got} of {length} bytes. Try again."
            )
        _verify(Path(tmp), head.digest, url)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        os.replace(tmp, target)
    except _http.NETWORK_ERRORS as e:
        raise ESM2LoadError(f"download of {url} failed: {e}. Try again.") from e
    finally:
        Path(tmp).unlink(missing_ok=True)


def _fetch(base: str, name: str, staging: Path, head: _Head | str | None = None) -> Path:
    """Download `base/name` into `staging`, with a HEAD for its hash unless `head` is given."""
    url, target = f"{base}/{name}", staging / name
    if target.resolve().parent != staging.resolve():
        raise ESM2LoadError(f"refusing to download {url} to {target}: outside {staging}")
    head = _probe(url) if head is None else head
    if isinstance(head, str) or not head.ok:
        raise ESM2LoadError(f"download of {url} failed: {head}. Try again.")
    _download(url, target, head)
    return target


def _fetch_weights(repo: str, base: str, staging: Path) -> None:
    weights = _probe(f"{base}/model.safetensors")
    if isinstance(weights, _Head) and weights.ok:
        _fetch(base, "model.safetensors", staging, weights)
        return
    index = _probe(f"{base}/{_INDEX}")
    if isinstance(index, str) or not index.ok:
        raise ESM2LoadError(
            f"{repo} on the Hub has no safetensors weights (model.safetensors: {weights}); "
            "only safetensors checkpoints are read without torch."
        )
    for shard in _index_shards(_fetch(base, _INDEX, staging, index), f"{base}/{_INDEX}"):
        _fetch(base, shard, staging)


def _hub_files(repo: str) -> Path:
    """A local folder holding `repo`'s config.json and safetensors, downloading if needed."""
    folder = _hub_cache(repo)
    if _complete(folder):
        return folder
    cached = _from_hf_cache(repo)
    if cached is not None:
        return cached
    base = f"{_endpoint()}/{repo}/resolve/main"
    config = _offline_reason() or _probe(f"{base}/config.json")
    if isinstance(config, str):
        raise HubUnreachableError(
            f"cannot download ESM2 model {repo!r}: the Hugging Face Hub ({_endpoint()}) is "
            f"unreachable ({config}). {_ALTERNATIVES}"
        )
    if not config.ok:
        raise ESM2LoadError(
            f"the Hugging Face Hub has no model {repo!r} ({config} for its config.json). "
            f"Known ESM2 models: {', '.join(ESM2_MODELS)}."
        )
    print(f"Downloading {repo} from {_endpoint()} into {folder}", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    # A staging folder of this download's own: a concurrent or killed run cannot mix files in.
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".staging-"))
    try:
        _fetch(base, "config.json", staging, config)
        _fetch_weights(repo, base, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # leave no partial checkpoint behind
        raise
    for f in staging.iterdir():
        os.replace(f, folder / f.name)
    staging.rmdir()
    return folder
