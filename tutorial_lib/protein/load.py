"""Load ESM2 weights into the Equinox `ESM2`, without PyTorch.

`load_esm2(name_or_path)` accepts

- a directory in Hugging Face `EsmForMaskedLM` format: `config.json` plus `model.safetensors`
  (or a sharded `model.safetensors.index.json`), read with `safetensors.numpy`;
- an ESM2 model name, `esm2_t6_8M_UR50D` or `facebook/esm2_t6_8M_UR50D`: the two files are
  taken from the per-user cache, from an existing Hugging Face cache (when `huggingface_hub`
  is installed: the `[hub]` extra), or downloaded from the Hub. Offline, this fails within
  seconds and says what to use instead;
- `"tiny"`: the book's own small ESM2, trained on ThermoProt by
  `python -m tutorial_lib.train tiny-esm2` and shipped as an artifact.

Checkpoints differ in details that the loader smooths over: LayerNorm parameters are called
`gamma`/`beta` (what `save_pretrained` writes today) or `weight`/`bias`; the rotary `inv_freq`
buffer is stored per layer, once under a wildcard key, or not at all (it is recomputed); the
LM decoder is usually tied to the token embeddings and then absent from the file.
"""

import json
import os
import re
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .alphabet import MASK, PAD, VOCAB_SIZE
from .esm2 import ESM2, ESM2Config

__all__ = [
    "ESM2_MODELS",
    "HUB_CONFIGS",
    "TINY_ARTIFACT",
    "ESM2LoadError",
    "HubUnreachableError",
    "config_from_hf",
    "count_parameters",
    "esm2_skeleton",
    "load_esm2",
    "load_hf_directory",
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
_HUB_NAME = re.compile(r"^(?:(?P<owner>[\w.-]+)/)?(?P<name>esm2_[\w.-]+)$")
_OFFLINE_ENVS = ("JAXGENAI_OFFLINE", "HF_HUB_OFFLINE")
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

    Parameters are returned in `dtype` (checkpoints stored in float16 are upcast by default).
    """
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
    raise ESM2LoadError(
        f"unknown ESM2 model {name!r}. Give 'tiny', a Hub name such as "
        f"{', '.join(ESM2_MODELS[:3])} (with or without 'facebook/'), or a directory holding "
        "a Hugging Face checkpoint (config.json + model.safetensors)."
    )


def _cast(model: ESM2, dtype: Any) -> ESM2:
    return jax.tree.map(lambda x: x.astype(dtype) if eqx.is_inexact_array(x) else x, model)


def count_parameters(config: ESM2Config) -> int:
    """Number of parameters of an ESM2 of this size, computed without allocating it."""
    shapes = eqx.filter_eval_shape(ESM2, config, key=jr.key(0))
    return sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes))


def esm2_skeleton(config: ESM2Config, dtype: Any = jnp.float32) -> ESM2:
    """An `ESM2` whose leaves are `jax.ShapeDtypeStruct`s: a template to load weights into."""
    shapes = eqx.filter_eval_shape(ESM2, config, key=jr.key(0))
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, dtype), shapes)


# --- the book's tiny model ------------------------------------------------------------------


def _load_tiny() -> ESM2:
    from tutorial_lib.artifacts import ArtifactError, load_artifact, read_metadata

    metadata = read_metadata(TINY_ARTIFACT)
    config = metadata.get("config", {})
    try:
        model_config = ESM2Config.from_dict(config["model"])
        weights_dtype = jnp.dtype(config["weights_dtype"])
    except (KeyError, TypeError, ValueError) as e:
        raise ArtifactError(
            f"artifact {TINY_ARTIFACT!r} has no usable model config ({e}). Rebuild it with "
            f"`python -m tutorial_lib.train {TINY_ARTIFACT}`."
        ) from e
    like = esm2_skeleton(model_config, weights_dtype)
    model, _ = load_artifact(TINY_ARTIFACT, like, config=config)
    return model


# --- Hugging Face directories ---------------------------------------------------------------


def config_from_hf(hf: dict[str, Any]) -> ESM2Config:
    """`ESM2Config` from a Hugging Face `EsmConfig` dict; refuses what ESM2 is not."""

    def need(cond: bool, what: str) -> None:
        if not cond:
            raise ESM2LoadError(f"not an ESM2 checkpoint: {what}")

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
        need(hf.get(key, want) == want, f"{key} is {hf.get(key)!r}, the ESM alphabet has {want}")
    try:
        return ESM2Config(
            num_layers=int(hf["num_hidden_layers"]),
            embed_dim=int(hf["hidden_size"]),
            num_heads=int(hf["num_attention_heads"]),
            ffn_dim=int(hf["intermediate_size"]),
            layer_norm_eps=float(hf.get("layer_norm_eps") or 1e-12),
            token_dropout=bool(hf.get("token_dropout", False)),
            rope_theta=float(hf.get("rope_theta") or 10000.0),
        )
    except KeyError as e:
        raise ESM2LoadError(f"config.json lacks {e.args[0]!r}") from None


def _read_tensors(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        files = [single]
    elif index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map", {})
        files = [folder / f for f in sorted(set(weight_map.values()))]
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
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ESM2LoadError(f"no such directory: {folder}")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ESM2LoadError(
            f"{folder} has no config.json: is it a Hugging Face checkpoint directory "
            "(what save_pretrained writes)?"
        )
    try:
        hf = json.loads(config_path.read_text())
    except json.JSONDecodeError as e:
        raise ESM2LoadError(f"{config_path} is not valid JSON: {e}") from e
    config = config_from_hf(hf)
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


def _open(url: str, *, method: str = "GET", timeout: float = PROBE_TIMEOUT_S):
    request = urllib.request.Request(url, method=method, headers={"User-Agent": "tutorial_lib"})
    return urllib.request.urlopen(request, timeout=timeout)


def _probe(url: str) -> int | str:
    """HTTP status of a HEAD request, or why it failed; never longer than the timeout.

    A thread bounds the whole probe: `urlopen`'s timeout does not cover name resolution,
    which can hang for tens of seconds behind some firewalls.
    """
    result: list[int | str] = [f"no answer within {PROBE_TIMEOUT_S:.0f} s"]

    def probe() -> None:
        try:
            with _open(url, method="HEAD") as r:
                result[0] = r.status
        except urllib.error.HTTPError as e:
            result[0] = e.code
        except (urllib.error.URLError, OSError) as e:
            result[0] = str(getattr(e, "reason", e))

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(PROBE_TIMEOUT_S + 0.5)
    return result[0]


def _download(url: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as f, _open(url, timeout=60) as r:
            shutil.copyfileobj(r, f, 1 << 20)
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError) as e:
        raise ESM2LoadError(f"download of {url} failed: {e}. Try again.") from e
    finally:
        Path(tmp).unlink(missing_ok=True)


def _hub_files(repo: str) -> Path:
    """A local folder holding `repo`'s config.json and safetensors, downloading if needed."""
    folder = _hub_cache(repo)
    if _complete(folder):
        return folder
    cached = _from_hf_cache(repo)
    if cached is not None:
        return cached
    base = f"{_endpoint()}/{repo}/resolve/main"
    reason = _offline_reason()
    status = reason or _probe(f"{base}/config.json")
    if status != 200:
        if isinstance(status, int):
            raise ESM2LoadError(
                f"the Hugging Face Hub has no model {repo!r} (HTTP {status} for its "
                f"config.json). Known ESM2 models: {', '.join(ESM2_MODELS)}."
            )
        raise HubUnreachableError(
            f"cannot download ESM2 model {repo!r}: the Hugging Face Hub ({_endpoint()}) is "
            f"unreachable ({status}). {_ALTERNATIVES}"
        )
    print(f"Downloading {repo} from {_endpoint()} into {folder}", flush=True)
    _download(f"{base}/config.json", folder / ".staging" / "config.json")
    weights = _probe(f"{base}/model.safetensors")
    if weights == 200:
        _download(f"{base}/model.safetensors", folder / ".staging" / "model.safetensors")
    else:
        index = folder / ".staging" / "model.safetensors.index.json"
        try:
            _download(f"{base}/model.safetensors.index.json", index)
        except ESM2LoadError:
            raise ESM2LoadError(
                f"{repo} on the Hub has no safetensors weights (model.safetensors: {weights}); "
                "only safetensors checkpoints are read without torch."
            ) from None
        for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            _download(f"{base}/{shard}", folder / ".staging" / shard)
    for f in (folder / ".staging").iterdir():
        os.replace(f, folder / f.name)
    (folder / ".staging").rmdir()
    return folder
