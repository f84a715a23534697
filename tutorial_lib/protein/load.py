"""Load ESM2 weights into the Equinox `ESM2`, without PyTorch.

`load_esm2(name_or_path)` accepts

- a directory in Hugging Face `EsmForMaskedLM` format: `config.json` plus `model.safetensors`
  (or a sharded `model.safetensors.index.json`), read with `safetensors.numpy`;
- an ESM2 model name, `esm2_t6_8M_UR50D` or `facebook/esm2_t6_8M_UR50D`: its config.json and
  safetensors weights (and no other file) are taken from the Hugging Face cache, which
  transformers shares, without touching the network, or downloaded into it by `huggingface_hub`
  (resumable; `HF_ENDPOINT` names a mirror, `HF_TOKEN` a token). Offline (`HF_HUB_OFFLINE`,
  `JAXGENAI_OFFLINE`, or no answer within `PROBE_TIMEOUT_S`), this fails within seconds and says
  what to use instead;
- `"tiny"`: the book's own small ESM2, trained on ThermoProt by
  `python -m tutorial_lib.train tiny-esm2` and shipped as an artifact.

Checkpoints differ in details that the loader smooths over: LayerNorm parameters are called
`gamma`/`beta` (what `save_pretrained` writes today) or `weight`/`bias`; the rotary `inv_freq`
buffer is stored per layer, once under a wildcard key, or not at all (it is recomputed); the
LM decoder is usually tied to the token embeddings and then absent from the file.
"""

import json
import math
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
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
    "ESM2_MODEL_ENV",
    "HUB_CONFIGS",
    "TINY_ARTIFACT",
    "ESM2LoadError",
    "HubUnreachableError",
    "ModelChoice",
    "choose_esm2_model",
    "config_from_hf",
    "esm2_skeleton",
    "load_esm2",
    "load_hf_directory",
    "parameter_count",
    "save_hf_directory",
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
#: How long a look at the Hub may take (seconds) before it counts as unreachable.
PROBE_TIMEOUT_S = 5.0
#: The environment variable that, when set, names the model `choose_esm2_model` returns.
ESM2_MODEL_ENV = "JAXGENAI_ESM2_MODEL"
_INDEX = "model.safetensors.index.json"
_HUB_NAME = re.compile(r"^(?:(?P<owner>(?!\.{1,2}/)[\w.-]+)/)?(?P<name>esm2_[\w.-]+)$")
_OFFLINE_ENVS = ("JAXGENAI_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_ACCEPTED = (
    f"Give 'tiny', a Hub name such as {', '.join(ESM2_MODELS[:3])} (with or without "
    "'facebook/'), or a directory holding a Hugging Face checkpoint (config.json + "
    "model.safetensors)."
)
_ALTERNATIVES = (
    'Use load_esm2("tiny") (the book\'s small ESM2, shipped with the library), set HF_ENDPOINT '
    "to a Hub mirror you can reach, or call load_esm2('/path/to/dir') on a folder holding "
    "config.json and model.safetensors copied from a machine with internet access."
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
    kind, target = _source(name_or_path)
    if kind == "tiny":
        return _cast(_load_tiny(), dtype)
    folder = _hub_files(str(target)) if kind == "hub" else target
    return load_hf_directory(folder, dtype=dtype)


def _source(name_or_path: str | os.PathLike) -> tuple[str, str | os.PathLike]:
    """What `load_esm2` would load: `("dir", folder)`, `("tiny", name)` or `("hub", repo id)`;
    `ESM2LoadError` for a name it cannot load."""
    if isinstance(name_or_path, str) and not name_or_path.strip():
        # Path("") is the working directory: an empty name would load whatever lies there.
        raise ESM2LoadError(f"empty model name {name_or_path!r}. {_ACCEPTED}")
    if isinstance(name_or_path, os.PathLike) or Path(str(name_or_path)).expanduser().is_dir():
        return "dir", name_or_path
    name = str(name_or_path)
    if name in ("tiny", TINY_ARTIFACT):
        return "tiny", name
    match = _HUB_NAME.match(name)
    if match:
        return "hub", f"{match['owner'] or 'facebook'}/{match['name']}"
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


def save_hf_directory(model: ESM2, folder: str | os.PathLike) -> Path:
    """Write `model` as a Hugging Face `EsmForMaskedLM` checkpoint (config.json +
    model.safetensors, float32) that `transformers` and `load_hf_directory` read back.

    For sharing a model trained with this book (the tiny ESM2, or your own) with people who use
    `transformers`, or publishing it on the Hub (`huggingface_hub.upload_folder`). `folder` is
    created; an existing non-empty folder is refused, so nothing is overwritten. A model whose
    settings `EsmConfig` cannot express (a rotary base other than 10,000) is refused too.
    """
    from safetensors.numpy import save_file

    config = model.config
    if config.rope_theta != 10000.0:
        raise ValueError(
            f"transformers' ESM has a fixed rotary base of 10000; this model uses "
            f"{config.rope_theta}, which a Hugging Face checkpoint cannot record"
        )
    folder = Path(folder).expanduser()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise FileExistsError(
            f"{folder} exists and is not an empty folder; choose a new one (nothing was written)"
        )
    tied = model.lm_head.decoder is None
    hf = {
        "architectures": ["EsmForMaskedLM"],
        "model_type": "esm",
        "vocab_size": config.vocab_size,
        **{key: getattr(config, field) for field, key in _SIZE_KEYS.items()},
        "hidden_act": "gelu",
        "layer_norm_eps": config.layer_norm_eps,
        "position_embedding_type": "rotary",
        "token_dropout": config.token_dropout,
        "emb_layer_norm_before": False,
        "pad_token_id": PAD,
        "mask_token_id": MASK,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": 1026,
        "tie_word_embeddings": tied,
        "is_folding_model": False,
    }
    tensors = {
        (key if key.startswith("lm_head") else f"esm.{key}"): np.asarray(get(model), np.float32)
        for key, get in _targets(config).items()
    }
    if not tied:
        tensors["lm_head.decoder.weight"] = np.asarray(model.lm_head.decoder, np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(hf, indent=2) + "\n")
    return folder


# --- the Hugging Face Hub -------------------------------------------------------------------


def _endpoint() -> str:
    """The Hub to use: `$HF_ENDPOINT` read now (huggingface_hub reads it once, at import)."""
    return (os.environ.get("HF_ENDPOINT") or HUB_ENDPOINT).rstrip("/")


def _hf_cache() -> str | None:
    """The Hugging Face cache folder the environment names now, or None for huggingface_hub's
    default. Read at call time, like `HF_ENDPOINT`, with huggingface_hub's precedence."""
    for env in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(env):
            return os.path.expanduser(os.environ[env])
    home = os.environ.get("HF_HOME")
    return os.path.join(os.path.expanduser(home), "hub") if home else None


def _hub() -> ModuleType:
    """huggingface_hub, imported on first use (it is needed for Hub names only)."""
    try:
        with warnings.catch_warnings():
            # tqdm warns at import inside Jupyter without ipywidgets; nothing is shown here.
            warnings.filterwarnings("ignore", message="IProgress not found")
            import huggingface_hub
    except ImportError as e:
        raise ESM2LoadError(
            "loading ESM2 by its Hub name needs huggingface_hub: `pip install huggingface_hub`. "
            + _ALTERNATIVES
        ) from e
    return huggingface_hub


def _first_line(message: object) -> str:
    lines = str(message).strip().splitlines()
    return lines[0] if lines else ""


def _offline_reason() -> str | None:
    for env in _OFFLINE_ENVS:
        if os.environ.get(env, "").strip().lower() in {"1", "true", "yes", "on"}:
            return f"{env} is set"
    return None


def _from_hf_cache(repo: str) -> Path | None:
    """The snapshot folder holding `repo`'s config.json and safetensors weights (one file, or an
    index and all its shards) in the Hugging Face cache, or None. Touches no network."""
    hub = _hub()
    cache = _hf_cache()

    def cached(name: str) -> Path | None:
        path = hub.try_to_load_from_cache(repo, name, cache_dir=cache)
        return Path(path) if isinstance(path, str) else None

    config = cached("config.json")
    if config is None:
        return None
    if cached("model.safetensors") is not None:
        return config.parent
    index = cached(_INDEX)
    if index is not None and all(cached(shard) for shard in _index_shards(index)):
        return config.parent
    return None


def _probe(repo: str, filename: str, *, endpoint: str, timeout: float) -> int | str:
    """Whether the Hub at `endpoint` serves `filename` of `repo`, from one HEAD request made by
    huggingface_hub with no retry and bounded to `timeout` seconds.

    Returns 200 when it does; the HTTP status with which the Hub says the file or the repository
    is not there (404; 401 for a repository it does not know); or, when no Hub answers (no
    network, DNS, time-out, a server error, an answer without the Hub's headers), a line saying
    why. Other refusals (a gated repository, a bad token) raise `ESM2LoadError`.

    A thread bounds the whole request: the HTTP client's timeout does not cover name resolution,
    which can hang for tens of seconds behind some firewalls.
    """
    hub = _hub()
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    url = hub.hf_hub_url(repo, filename, endpoint=endpoint)

    def head() -> Any:
        return hub.get_hf_file_metadata(url, timeout=timeout, endpoint=endpoint)

    try:
        metadata = _http.in_thread(head, timeout + 0.5)
    except GatedRepoError as e:
        raise ESM2LoadError(
            f"{repo} is gated on the Hub ({_first_line(e)}). Accept its terms on the Hub, then "
            "log in (`hf auth login`) or set HF_TOKEN."
        ) from e
    except RepositoryNotFoundError as e:
        return e.response.status_code
    except HfHubHTTPError as e:
        status = e.response.status_code
        if status == 404:
            return status
        if status in (408, 429) or status >= 500:
            return f"{endpoint} answered HTTP {status}"
        raise ESM2LoadError(
            f"{url}: HTTP {status} ({_first_line(e)}). For a private repository, log in "
            "(`hf auth login`) or set HF_TOKEN."
        ) from e
    except Exception as e:  # refused, DNS, TLS, time-out, offline mode, a malformed HF_ENDPOINT
        return _first_line(f"{type(e).__name__}: {e}")
    if metadata is None:
        return f"no answer within {timeout:g} s"
    if metadata.commit_hash is None or metadata.etag is None:
        return (
            f"{endpoint} answered, but not as a Hugging Face Hub (no X-Repo-Commit or ETag "
            "header): a proxy or captive portal, or an HF_ENDPOINT that is no Hub mirror?"
        )
    return 200


def _unreachable(repo: str, endpoint: str, why: str) -> HubUnreachableError:
    return HubUnreachableError(
        f"cannot download ESM2 model {repo!r}: the Hugging Face Hub ({endpoint}) is "
        f"unreachable ({why}). {_ALTERNATIVES}"
    )


def _download(repo: str, endpoint: str) -> Path:
    """Download `repo`'s config.json and safetensors weights, and nothing else, into the Hugging
    Face cache with huggingface_hub (resumable, shared with transformers); their snapshot folder."""
    hub = _hub()
    cache = _hf_cache()

    def fetch(name: str) -> Path:
        try:
            path = hub.hf_hub_download(
                repo, name, cache_dir=cache, endpoint=endpoint, etag_timeout=PROBE_TIMEOUT_S
            )
        except Exception as e:  # huggingface_hub's and its HTTP client's errors
            raise ESM2LoadError(
                f"download of {name} of {repo} from {endpoint} failed "
                f"({type(e).__name__}: {_first_line(e)}). Try again."
            ) from e
        return Path(path)

    def status(name: str) -> int:
        answer = _probe(repo, name, endpoint=endpoint, timeout=PROBE_TIMEOUT_S)
        if isinstance(answer, str):
            raise _unreachable(repo, endpoint, answer)
        return answer

    print(f"Downloading {repo} from {endpoint} into the Hugging Face cache", flush=True)
    config = fetch("config.json")
    single = status("model.safetensors")
    if single == 200:
        fetch("model.safetensors")
    elif status(_INDEX) == 200:
        where = hub.hf_hub_url(repo, _INDEX, endpoint=endpoint)
        for shard in _index_shards(fetch(_INDEX), where):
            fetch(shard)
    else:
        raise ESM2LoadError(
            f"{repo} on the Hub has no safetensors weights (HTTP {single} for model.safetensors, "
            f"and no {_INDEX}); only safetensors checkpoints are read without torch."
        )
    return config.parent


def _hub_files(repo: str) -> Path:
    """A local folder holding `repo`'s config.json and safetensors: the Hugging Face cache's
    snapshot when it is complete (no network), else a download, refused within seconds offline."""
    _hub()
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError as e:
        raise ESM2LoadError(f"{repo!r} is not a Hub model name ({e}). {_ACCEPTED}") from None
    cached = _from_hf_cache(repo)
    if cached is not None:
        return cached
    endpoint = _endpoint()
    answer = _offline_reason() or _probe(
        repo, "config.json", endpoint=endpoint, timeout=PROBE_TIMEOUT_S
    )
    if isinstance(answer, str):
        raise _unreachable(repo, endpoint, answer)
    if answer != 200:
        raise ESM2LoadError(
            f"the Hugging Face Hub has no model {repo!r} (HTTP {answer} for its config.json; "
            "a private repository needs `hf auth login` or HF_TOKEN). Known ESM2 models: "
            f"{', '.join(ESM2_MODELS)}."
        )
    return _download(repo, endpoint)


# --- choosing a model ---------------------------------------------------------------------------


class ModelChoice(NamedTuple):
    """The ESM2 `choose_esm2_model` picked (a name for `load_esm2`) and a line saying why."""

    name: str
    reason: str


def choose_esm2_model(
    profile: str | None = None, *, probe_timeout: float = PROBE_TIMEOUT_S
) -> ModelChoice:
    """A real ESM2 when the Hub can serve it, else the book's tiny one; and why.

    `$JAXGENAI_ESM2_MODEL`, when set, wins: any name `load_esm2` accepts. Otherwise the size
    profile (`profile`, by default `tutorial_lib.config.profile()`) names
    `facebook/esm2_t12_35M_UR50D` ("gpu") or `facebook/esm2_t6_8M_UR50D` ("cpu"), which is
    chosen when its files are in the Hugging Face cache or the Hub answers a HEAD request for
    its config.json within `probe_timeout` seconds; `"tiny"` otherwise. Nothing is downloaded.

    >>> choice = choose_esm2_model()  # doctest: +SKIP
    >>> print(choice.reason)  # doctest: +SKIP
    Hub reachable at https://huggingface.co; CPU profile → the 8M model
    >>> model = load_esm2(choice.name)  # doctest: +SKIP
    """
    override = os.environ.get(ESM2_MODEL_ENV, "").strip()
    if override:
        try:
            _source(override)
        except ESM2LoadError as e:
            raise ESM2LoadError(f"{ESM2_MODEL_ENV}={override!r}: {e}") from None
        return ModelChoice(override, f"{ESM2_MODEL_ENV}={override}")

    from tutorial_lib.config import PROFILES, pick
    from tutorial_lib.config import profile as current_profile

    chosen = current_profile() if profile is None else profile.strip().lower()
    if chosen not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES} or None, got {profile!r}")
    repo = pick(cpu=f"facebook/{ESM2_MODELS[0]}", gpu=f"facebook/{ESM2_MODELS[1]}", profile=chosen)
    because = f"{chosen.upper()} profile → the {repo.split('_')[2]} model"
    endpoint = _endpoint()
    try:
        if _from_hf_cache(repo) is not None:
            return ModelChoice(repo, f"{repo} is in the Hugging Face cache; {because}")
        answer = _offline_reason() or _probe(
            repo, "config.json", endpoint=endpoint, timeout=probe_timeout
        )
    except ESM2LoadError as e:  # no huggingface_hub, a damaged cache, a refusal by the Hub
        return ModelChoice("tiny", f"{_first_line(e)}: the book's tiny ESM2")
    if answer == 200:
        return ModelChoice(repo, f"Hub reachable at {endpoint}; {because}")
    if isinstance(answer, int):
        why = f"the Hub at {endpoint} has no {repo} (HTTP {answer})"
        return ModelChoice("tiny", f"{why}: the book's tiny ESM2")
    return ModelChoice("tiny", f"Hub unreachable ({answer}): the book's tiny ESM2")
