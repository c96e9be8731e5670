"""The Llama decoder against the reference: transformers' LlamaForCausalLM, in both directions.

Tiny configs only (~100k parameters), one thread, a few seconds in all.
"""

from __future__ import annotations

import json
import re

import pytest
import torch

from llmforge.training.config import PRESETS, ModelConfig
from llmforge.training.model import LlamaModel, generate, load_hf, save_hf

transformers = pytest.importorskip("transformers")
torch.set_num_threads(1)

TINY = dict(vocab_size=97, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=32, multiple_of=32)


def tiny(**overrides) -> ModelConfig:
    return ModelConfig(**{**TINY, **overrides})


def hf_load(path):
    # transformers renamed `torch_dtype` to `dtype` in 4.56; the old name warns in 5.x.
    major, minor = (int(v) for v in transformers.__version__.split(".")[:2])
    key = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    return transformers.AutoModelForCausalLM.from_pretrained(path, **{key: torch.float32}).eval()


def batch(cfg: ModelConfig, B: int = 3, T: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, cfg.vocab_size, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_saved_checkpoint_loads_in_transformers_with_equal_logits(tmp_path, tie):
    torch.manual_seed(0)
    cfg = tiny(tie_embeddings=tie, rope_theta=500000.0, norm_eps=1e-6)
    model = LlamaModel(cfg).eval()
    assert sum(p.numel() for p in model.parameters()) == cfg.num_params()

    save_hf(model, cfg, tmp_path / "ckpt")
    hf = hf_load(tmp_path / "ckpt")
    assert hf.config.tie_word_embeddings is tie
    idx = batch(cfg)
    with torch.no_grad():
        ours, _ = model(idx)
        theirs = hf(idx).logits
    assert ours.shape == (3, 32, cfg.vocab_size)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_transformers_checkpoint_loads_with_load_hf(tmp_path, tie):
    torch.manual_seed(0)
    hf_cfg = transformers.LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                                      rope_theta=20000.0, rms_norm_eps=1e-5, tie_word_embeddings=tie)
    hf = transformers.LlamaForCausalLM(hf_cfg).eval()
    hf.save_pretrained(tmp_path / "hf")

    model, cfg = load_hf(tmp_path / "hf")
    assert (cfg.dim, cfg.n_kv_heads, cfg.ffn_hidden, cfg.rope_theta, cfg.tie_embeddings) == (64, 2, 160, 20000.0, tie)
    idx = batch(cfg, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(idx)[0], hf(idx).logits, atol=1e-5, rtol=0)


def test_save_is_atomic_and_refuses_an_existing_directory_unless_overwrite(tmp_path):
    torch.manual_seed(0)
    cfg = tiny()
    out = save_hf(LlamaModel(cfg), cfg, tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temp dir left beside it
    assert {"config.json", "model.safetensors"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]

    # Refused by default; the old checkpoint is untouched.
    before = (out / "model.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_hf(LlamaModel(cfg), cfg, out)
    assert (out / "model.safetensors").read_bytes() == before

    # overwrite=True replaces it whole, leaving nothing else behind.
    torch.manual_seed(1)
    new = LlamaModel(cfg)
    save_hf(new, cfg, out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    loaded, _ = load_hf(out)
    torch.testing.assert_close(loaded.embed_tokens.weight, new.embed_tokens.weight)


def test_save_casts_dtype(tmp_path):
    cfg = tiny(tie_embeddings=True)
    save_hf(LlamaModel(cfg), cfg, tmp_path / "bf16", dtype=torch.bfloat16)
    model, loaded_cfg = load_hf(tmp_path / "bf16")
    assert model.embed_tokens.weight.dtype == torch.bfloat16
    assert model.lm_head.weight is model.embed_tokens.weight
    assert loaded_cfg.to_hf_config() == cfg.to_hf_config()  # multiple_of is not stored: ffn_hidden is


def _size_in_name(name: str) -> float:
    num, unit = re.fullmatch(r"llama-(\d+)([mb])", name).groups()
    return int(num) * (1e6 if unit == "m" else 1e9)


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_sizes_match_their_names(name):
    cfg = ModelConfig.from_name(name)  # a config only: nothing is allocated
    assert abs(cfg.num_params() / _size_in_name(name) - 1) <= 0.30, f"{name}: {cfg.num_params():,}"


def test_presets_span_1m_to_1b_and_the_smallest_instantiates_exactly():
    sizes = sorted(_size_in_name(n) for n in PRESETS)
    assert sizes[0] == 1e6 and sizes[-1] == 1e9
    cfg = ModelConfig.from_name("llama-1m")
    assert sum(p.numel() for p in LlamaModel(cfg).parameters()) == cfg.num_params()


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError, match="llama-1m.*llama-1b"):
        ModelConfig.from_name("nope")


def test_ffn_hidden_is_derived_like_llama():
    assert ModelConfig(dim=4096, n_heads=32).ffn_hidden == 11008  # Llama-2 7B
    assert tiny(ffn_hidden=100).ffn_hidden == 100


def test_loss_goes_down_on_a_memorisation_task():
    torch.manual_seed(0)
    cfg = tiny()
    model = LlamaModel(cfg)
    data = batch(cfg, B=4, T=17, seed=3)
    x, y = data[:, :-1], data[:, 1:]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(torch.log(torch.tensor(97.0)).item(), abs=0.3)  # ~uniform at init
    assert losses[-1] < 0.5 * losses[0], losses


def test_greedy_generate_matches_transformers(tmp_path):
    torch.manual_seed(0)
    cfg = tiny(init_std=0.2)  # a larger init makes the argmax decisive, so float noise cannot flip it
    model = LlamaModel(cfg).eval()
    save_hf(model, cfg, tmp_path / "ckpt")
    hf = hf_load(tmp_path / "ckpt")
    prompt = batch(cfg, B=2, T=5, seed=4)
    ours = generate(model, prompt, max_new_tokens=8)
    theirs = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8, do_sample=False,
                         pad_token_id=0)
    assert ours.shape == (2, 13)
    assert torch.equal(ours, theirs)


def test_from_name_overrides_rederive_dependent_fields() -> None:
    small = ModelConfig.from_name("llama-1m", dim=64)
    assert small.dim == 64 and small.ffn_hidden == ModelConfig(**{**PRESETS["llama-1m"], "dim": 64}).ffn_hidden
    assert small.ffn_hidden != ModelConfig.from_name("llama-1m").ffn_hidden
