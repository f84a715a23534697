"""ESM2 in Equinox: parity with transformers' EsmForMaskedLM, padding, and checkpoint loading.

torch and transformers are test-only dependencies: the parity tests skip without them.
"""

import json
import shutil
import socket
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from random_esm2 import randomise_torch, small_hf_config

from tutorial_lib.protein import (
    ESM2,
    PAD,
    ESM2Config,
    ESM2LoadError,
    HubUnreachableError,
    batch_tokenize,
    load_esm2,
    tokenize,
)
from tutorial_lib.protein import load as load_module

# Same length (24 residues), so that the single-sequence tests share one compiled shape.
SINGLE = {
    "plain": "MKTAYIAKQRQISFVKSHFSRQLE",
    "masked": "MKTAY<mask>AKQRQ<mask>SFVKSH<mask>SRQLE",
    "nonstandard": "ACDEFGHIKLMNPQRSTVWYXBUZ",
}
SEQS = [SINGLE["plain"], "MK<mask>LVGHW", "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNL"]
SMALL = ESM2Config(num_layers=2, embed_dim=32, num_heads=4, ffn_dim=64)
TOL = 1e-4

single = eqx.filter_jit(lambda model, tokens: model(tokens))
batched = eqx.filter_jit(
    lambda model, tokens: jax.vmap(lambda t: model(t, return_contacts=True))(tokens)
)


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    """(torch, a randomised EsmForMaskedLM, the folder save_pretrained wrote it to)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = transformers.EsmForMaskedLM(small_hf_config()).eval()
    randomise_torch(model, torch)
    folder = tmp_path_factory.mktemp("esm2-hf")
    model.save_pretrained(folder)
    return torch, model, folder


def _torch_logits(torch, model, tokens: np.ndarray) -> np.ndarray:
    ids = torch.as_tensor(np.atleast_2d(tokens), dtype=torch.long)
    with torch.no_grad():
        return model(ids, attention_mask=(ids != PAD).long()).logits.numpy()


# --- parity with transformers -----------------------------------------------------------------


def test_checkpoint_uses_legacy_layernorm_names(hf):
    from safetensors.numpy import load_file

    keys = load_file(str(hf[2] / "model.safetensors")).keys()
    assert any(k.endswith("LayerNorm.gamma") for k in keys)
    assert "lm_head.decoder.weight" not in keys


@pytest.mark.parametrize("seq", SINGLE.values(), ids=SINGLE.keys())
def test_parity_single_sequence(hf, seq):
    torch, reference, folder = hf
    model = load_esm2(folder)
    tokens = tokenize(seq)
    expected = _torch_logits(torch, reference, tokens)[0]
    out = single(model, jnp.asarray(tokens))
    np.testing.assert_allclose(np.asarray(out.logits), expected, atol=TOL, rtol=0)
    assert out.hidden.shape == (len(tokens), 32)


def test_parity_padded_batch_and_contacts(hf):
    torch, reference, folder = hf
    model = load_esm2(folder)
    tokens = batch_tokenize(SEQS)
    expected = _torch_logits(torch, reference, tokens)
    out = batched(model, jnp.asarray(tokens))
    keep = tokens != PAD
    np.testing.assert_allclose(np.asarray(out.logits)[keep], expected[keep], atol=TOL, rtol=0)

    reference.set_attn_implementation("eager")  # SDPA cannot return attention maps
    try:
        ids = torch.as_tensor(tokens, dtype=torch.long)
        with torch.no_grad():
            contacts = reference.predict_contacts(ids, (ids != PAD).long()).numpy()
    finally:
        reference.set_attn_implementation("sdpa")
    np.testing.assert_allclose(np.asarray(out.contacts), contacts, atol=TOL, rtol=0)


def _rewrite(src: Path, dst: Path, decoder: np.ndarray | None) -> None:
    """Re-save a checkpoint the way older tools do: weight/bias names, per-layer inv_freq."""
    from safetensors.numpy import load_file, save_file

    tensors = {}
    for key, value in load_file(str(src / "model.safetensors")).items():
        if ".*." in key:
            for i in range(2):
                tensors[key.replace(".*.", f".{i}.")] = value
            continue
        key = key.removesuffix(".gamma") + ".weight" if key.endswith(".gamma") else key
        key = key.removesuffix(".beta") + ".bias" if key.endswith(".beta") else key
        tensors[key] = value
    if decoder is not None:
        tensors["lm_head.decoder.weight"] = decoder
    dst.mkdir()
    save_file(tensors, str(dst / "model.safetensors"))
    shutil.copy(src / "config.json", dst / "config.json")


def test_parity_other_layernorm_naming_and_explicit_tied_decoder(hf, tmp_path):
    torch, reference, folder = hf
    from safetensors.numpy import load_file

    embedding = load_file(str(folder / "model.safetensors"))[
        "esm.embeddings.word_embeddings.weight"
    ]
    _rewrite(folder, tmp_path / "ck", decoder=embedding)
    model = load_esm2(tmp_path / "ck")
    assert model.lm_head.decoder is None  # recognised as tied
    tokens = batch_tokenize(SEQS)
    keep = tokens != PAD
    out = batched(model, jnp.asarray(tokens))
    expected = _torch_logits(torch, reference, tokens)
    np.testing.assert_allclose(np.asarray(out.logits)[keep], expected[keep], atol=TOL, rtol=0)


def test_parity_untied_decoder(hf, tmp_path):
    torch, _, folder = hf
    from transformers import EsmForMaskedLM

    decoder = np.random.default_rng(1).normal(size=(33, 32)).astype(np.float32)
    _rewrite(folder, tmp_path / "ck", decoder=decoder)
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    (tmp_path / "ck" / "config.json").write_text(
        json.dumps(config | {"tie_word_embeddings": False})
    )
    reference = EsmForMaskedLM.from_pretrained(tmp_path / "ck").eval()
    np.testing.assert_array_equal(reference.lm_head.decoder.weight.detach().numpy(), decoder)
    model = load_esm2(tmp_path / "ck")
    np.testing.assert_array_equal(np.asarray(model.lm_head.decoder), decoder)
    tokens = tokenize(SEQS[0])
    expected = _torch_logits(torch, reference, tokens)[0]
    np.testing.assert_allclose(
        np.asarray(single(model, jnp.asarray(tokens)).logits), expected, atol=TOL
    )


# --- the model on its own ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_model():
    return ESM2(SMALL, key=jr.key(0))


def test_padding_does_not_change_outputs(small_model):
    tokens = batch_tokenize(SEQS)
    more = batch_tokenize(SEQS, pad_to=tokens.shape[1] + 16)
    out, out_more = (
        batched(small_model, jnp.asarray(tokens)),
        batched(small_model, jnp.asarray(more)),
    )
    keep = tokens != PAD
    for field in ("logits", "hidden"):
        a, b = np.asarray(getattr(out, field)), np.asarray(getattr(out_more, field))
        np.testing.assert_allclose(a[keep], b[:, : tokens.shape[1]][keep], atol=1e-5)
    alone = single(small_model, jnp.asarray(tokenize(SEQS[0])))
    n = len(alone.logits)
    np.testing.assert_allclose(out.logits[0, :n], alone.logits, atol=1e-5)
    # Contacts of the residues do not depend on the padding either.
    m = n - 2
    np.testing.assert_allclose(out.contacts[:, :m, :m], out_more.contacts[:, :m, :m], atol=1e-6)
    assert np.isfinite(np.asarray(out_more.contacts)).all()


def test_dropout_only_with_a_key():
    config = ESM2Config(num_layers=1, embed_dim=16, num_heads=2, ffn_dim=32, dropout=0.5)
    model = ESM2(config, key=jr.key(0))
    tokens = jnp.asarray(tokenize("MKTAYIAKQR"))

    @eqx.filter_jit
    def three(model, tokens):
        return model(tokens).logits, model(tokens).logits, model(tokens, key=jr.key(1)).logits

    a, b, c = three(model, tokens)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_rejects_a_batch_without_vmap(small_model):
    with pytest.raises(ValueError, match="one sequence"):
        small_model(jnp.asarray(batch_tokenize(SEQS)))


def test_config_validation():
    with pytest.raises(ValueError, match="multiple of num_heads"):
        ESM2Config(embed_dim=30, num_heads=4)
    with pytest.raises(ValueError, match="unknown ESM2Config fields"):
        ESM2Config.from_dict({"layers": 3})
    assert ESM2Config.from_dict(SMALL.to_dict()) == SMALL


# --- loading errors and the Hub -------------------------------------------------------------


def test_load_errors(tmp_path, hf):
    with pytest.raises(ESM2LoadError, match="unknown ESM2 model 'esm3'"):
        load_esm2("esm3")
    with pytest.raises(ESM2LoadError, match="no such directory"):
        load_esm2(tmp_path / "absent")
    with pytest.raises(ESM2LoadError, match=r"no config\.json"):
        load_esm2(tmp_path)
    bad = tmp_path / "bert"
    shutil.copytree(hf[2], bad)
    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps(config | {"model_type": "bert"}))
    with pytest.raises(ESM2LoadError, match="model_type is 'bert'"):
        load_esm2(bad)
    (bad / "config.json").write_text(json.dumps(config | {"num_hidden_layers": 3}))
    with pytest.raises(ESM2LoadError, match=r"lacks .* tensors .*encoder\.layer\.2"):
        load_esm2(bad)
    (bad / "config.json").write_text(json.dumps(config | {"intermediate_size": 48}))
    with pytest.raises(ESM2LoadError, match="has shape"):
        load_esm2(bad)
    (bad / "model.safetensors").unlink()
    with pytest.raises(ESM2LoadError, match=r"no model\.safetensors"):
        load_esm2(bad)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails at once, as on a machine without internet."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(load_module, "_from_hf_cache", lambda repo: None)
    for env in ("JAXGENAI_OFFLINE", "HF_HUB_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(env, raising=False)


@pytest.mark.parametrize("name", ["esm2_t6_8M_UR50D", "facebook/esm2_t6_8M_UR50D"])
def test_hub_name_offline_fails_fast(no_network, name):
    start = time.perf_counter()
    with pytest.raises(HubUnreachableError) as e:
        load_esm2(name)
    assert time.perf_counter() - start < 3.0
    message = str(e.value)
    assert "facebook/esm2_t6_8M_UR50D" in message
    assert "unreachable" in message and 'load_esm2("tiny")' in message


def test_hub_offline_switch_fails_without_trying(no_network, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(load_module, "_probe", lambda url: pytest.fail("probed the network"))
    with pytest.raises(HubUnreachableError, match="HF_HUB_OFFLINE is set"):
        load_esm2("esm2_t12_35M_UR50D")


def test_hub_configs_have_the_sizes_their_names_say():
    from tutorial_lib.protein import HUB_CONFIGS, parameter_count

    sizes = {"8M": 8e6, "35M": 35e6, "150M": 150e6, "650M": 650e6, "3B": 3e9, "15B": 15e9}
    for name, config in HUB_CONFIGS.items():
        stated = sizes[name.split("_")[2]]
        assert 0.9 * stated < parameter_count(config) < 1.1 * stated, name
    # The default config is the smallest Hub model.
    assert HUB_CONFIGS["esm2_t6_8M_UR50D"] == ESM2Config()


def test_compare_forward_speed_reports_both_frameworks_on_the_same_weights():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tutorial_lib.protein.timing import compare_forward_speed

    result = compare_forward_speed(SMALL, batch_size=2, length=24, repeat=2)
    assert result["max_abs_logit_diff"] < 1e-4
    assert result["jax_s"] > 0 and result["torch_s"] > 0
    assert result["torch_over_jax"] == pytest.approx(result["torch_s"] / result["jax_s"])
    assert (result["batch_size"], result["length"]) == (2, 24)
