"""A Llama-style decoder in plain PyTorch, and its round trip through a standard Hugging Face Llama checkpoint.

    from llmforge.training.config import ModelConfig
    from llmforge.training.model import LlamaModel, save_hf, load_hf, generate
    cfg = ModelConfig.from_name("llama-1m", vocab_size=tok.vocab_size)
    model = LlamaModel(cfg)
    logits, loss = model(idx, targets)          # idx, targets: (B, T) token ids
    save_hf(model, cfg, "out/ckpt")             # config.json + model.safetensors
    # transformers.AutoModelForCausalLM.from_pretrained("out/ckpt") gives the same logits
    model, cfg = load_hf("out/ckpt")            # ours, or any LlamaForCausalLM directory

The blocks are RMSNorm -> grouped-query attention (rotary embeddings in HF's
``rotate_half`` layout, ``F.scaled_dot_product_attention`` with a causal mask)
-> RMSNorm -> SwiGLU MLP, each with a residual. Submodules carry Hugging Face's
names (``layers.0.self_attn.q_proj``) so a checkpoint maps 1:1 by adding the
``model.`` prefix.

What it doesn't know: tokenizers (token ids only), distributed training (apply
parallelism to the finished model from outside, never from here), KV caches
(``generate`` recomputes the whole window; it is for smoke tests, not serving).
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from llmforge.training.config import ModelConfig
from llmforge.training.fsutil import publish_dir

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in float32 and cast back before the scale, exactly as HF Llama does.
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rope_tables(head_dim: int, max_seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables, each (max_seq_len, head_dim), in HF's layout: the frequencies repeated twice, not interleaved."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))  # (hs/2,)
    t = torch.arange(max_seq_len, dtype=torch.int64).float()
    freqs = torch.outer(t, inv_freq)  # (T, hs/2)
    emb = torch.cat((freqs, freqs), dim=-1)  # (T, hs)
    return emb.cos(), emb.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: (B, nh, T, hs); cos, sin: (T, hs)
    return x * cos + rotate_half(x) * sin


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.dim, cfg.n_heads * cfg.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape  # (B, T, C)
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, nkv, T, hs)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, nkv, T, hs)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if self.n_kv_heads != self.n_heads:
            # Each kv head serves n_heads // n_kv_heads consecutive query heads (HF's repeat_kv).
            rep = self.n_heads // self.n_kv_heads
            k = k.repeat_interleave(rep, dim=1)  # (B, nh, T, hs)
            v = v.repeat_interleave(rep, dim=1)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, self.n_heads * self.head_dim)  # (B, T, C)
        return self.o_proj(y)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(cfg.dim, cfg.ffn_hidden, bias=False)
        self.up_proj = nn.Linear(cfg.dim, cfg.ffn_hidden, bias=False)
        self.down_proj = nn.Linear(cfg.ffn_hidden, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # SwiGLU: (B, T, C)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
        # Not persistent: derived from the config, so never saved in a checkpoint.
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.cfg.init_std)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits for every position, and the mean cross-entropy when ``targets`` is given.

        Args:
            idx: (B, T) token ids, T <= max_seq_len.
            targets: (B, T) the next token at each position (already shifted); -100 is ignored.
        """
        B, T = idx.shape
        assert T <= self.cfg.max_seq_len, f"sequence length {T} exceeds max_seq_len {self.cfg.max_seq_len}"
        x = self.embed_tokens(idx)  # (B, T, C)
        cos = self.rope_cos[:T].to(x.dtype)  # (T, hs)
        sin = self.rope_sin[:T].to(x.dtype)  # (T, hs)
        for block in self.layers:
            x = block(x, cos, sin)  # (B, T, C)
        x = self.norm(x)
        logits = self.lm_head(x)  # (B, T, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)
        return logits, loss


@torch.no_grad()
def generate(model: LlamaModel, idx: torch.Tensor, max_new_tokens: int, temperature: float = 0.0,
             top_k: int | None = None) -> torch.Tensor:
    """Extend ``idx`` (B, T) by ``max_new_tokens``; greedy when ``temperature`` is 0. No KV cache: smoke tests only.

    Returns:
        (B, T + max_new_tokens) token ids, the prompt included.
    """
    for _ in range(max_new_tokens):
        window = idx[:, -model.cfg.max_seq_len:]  # (B, <=max_seq_len)
        logits, _ = model(window)
        logits = logits[:, -1, :].float()  # (B, vocab)
        if temperature == 0:
            nxt = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
        else:
            logits = logits / temperature
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)  # (B, 1)
        idx = torch.cat((idx, nxt), dim=1)
    return idx


# --- Hugging Face checkpoints -------------------------------------------------------------


def _hf_key(name: str) -> str:
    return name if name.startswith("lm_head.") else f"model.{name}"


def save_hf(model: LlamaModel, cfg: ModelConfig, out_dir: str | Path, dtype: torch.dtype | None = None,
            *, overwrite: bool = False) -> Path:
    """Write a standard HF Llama checkpoint (``config.json`` + ``model.safetensors``) that
    ``transformers.AutoModelForCausalLM.from_pretrained(out_dir)`` loads.

    Atomic: everything is written into a sibling temp directory that is then
    renamed, so ``out_dir`` appears complete or not at all. An existing
    ``out_dir`` is refused unless ``overwrite=True``, in which case it is moved
    aside, replaced by the new directory, and then deleted.

    Args:
        model: the model to save (its current weights).
        cfg: its config.
        out_dir: the checkpoint directory to create.
        dtype: cast the weights (e.g. ``torch.bfloat16``); None keeps the model's dtype.
        overwrite: replace an existing ``out_dir`` instead of raising.

    Raises:
        FileExistsError: ``out_dir`` exists and ``overwrite`` is False.
    """
    from safetensors.torch import save_file
    from transformers import LlamaConfig

    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already exists; choose a new directory or pass overwrite=True to replace it")
    tensors = {}
    for name, t in model.state_dict().items():
        if cfg.tie_embeddings and name == "lm_head.weight":
            continue  # shared with embed_tokens; HF re-ties it from tie_word_embeddings
        t = t.detach().to("cpu", dtype=dtype or t.dtype).contiguous()
        tensors[_hf_key(name)] = t
    weights_dtype = next(iter(tensors.values())).dtype

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        hf_config = LlamaConfig(**cfg.to_hf_config())
        hf_config.torch_dtype = weights_dtype  # `dtype` in transformers 5; both read this attribute
        hf_config.save_pretrained(tmp)
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        publish_dir(tmp, out_dir)  # with overwrite=True an existing folder is swapped out
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def config_from_hf(hf: dict) -> ModelConfig:
    """Map a Llama ``config.json`` (transformers 4.x or 5.x) back to a ModelConfig.

    Raises:
        ValueError: a feature this model does not implement (biases, rope scaling, odd head size).
    """
    if hf.get("model_type", "llama") != "llama":
        raise ValueError(f"expected a Llama checkpoint, got model_type={hf.get('model_type')!r}")
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        raise ValueError(f"rope_type {rope_type!r} is not supported (only plain rotary embeddings)")
    if hf.get("attention_bias") or hf.get("mlp_bias"):
        raise ValueError("attention_bias / mlp_bias checkpoints are not supported")
    if hf.get("hidden_act", "silu") != "silu":
        raise ValueError(f"hidden_act {hf['hidden_act']!r} is not supported (SwiGLU uses silu)")
    dim, n_heads = hf["hidden_size"], hf["num_attention_heads"]
    head_dim = hf.get("head_dim") or dim // n_heads
    if head_dim * n_heads != dim:
        raise ValueError(f"head_dim {head_dim} * num_attention_heads {n_heads} != hidden_size {dim}; not supported")
    return ModelConfig(
        vocab_size=hf["vocab_size"],
        dim=dim,
        n_layers=hf["num_hidden_layers"],
        n_heads=n_heads,
        n_kv_heads=hf.get("num_key_value_heads") or n_heads,
        ffn_hidden=hf["intermediate_size"],
        max_seq_len=hf.get("max_position_embeddings", 2048),
        rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
        norm_eps=hf.get("rms_norm_eps", 1e-6),
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        init_std=hf.get("initializer_range", 0.02),
    )


def load_hf(ckpt_dir: str | Path, device: str | torch.device = "cpu") -> tuple[LlamaModel, ModelConfig]:
    """Load an HF Llama directory (written by ``save_hf`` or by ``LlamaForCausalLM.save_pretrained``).

    Reads ``model.safetensors`` or a sharded ``model.safetensors.index.json``.
    The model keeps the dtype stored in the file.

    Raises:
        FileNotFoundError: ``config.json`` or the safetensors weights are missing (names which).
        ValueError: the config uses a feature this model lacks, or weights are missing or unexpected.
    """
    from safetensors.torch import load_file

    ckpt_dir = Path(ckpt_dir)
    if not (ckpt_dir / CONFIG_FILE).exists():
        raise FileNotFoundError(f"{ckpt_dir / CONFIG_FILE} not found; is {ckpt_dir} an HF checkpoint directory?")
    cfg = config_from_hf(json.loads((ckpt_dir / CONFIG_FILE).read_text()))
    if (ckpt_dir / WEIGHTS_FILE).exists():
        files = [ckpt_dir / WEIGHTS_FILE]
    elif (ckpt_dir / WEIGHTS_INDEX_FILE).exists():
        index = json.loads((ckpt_dir / WEIGHTS_INDEX_FILE).read_text())
        files = [ckpt_dir / f for f in sorted(set(index["weight_map"].values()))]
    else:
        raise FileNotFoundError(f"no {WEIGHTS_FILE} or {WEIGHTS_INDEX_FILE} in {ckpt_dir} "
                                "(only safetensors checkpoints are supported)")
    hf_sd: dict[str, torch.Tensor] = {}
    for f in files:
        hf_sd.update(load_file(str(f), device=str(device)))

    sd = {}
    for key, t in hf_sd.items():
        if key.endswith("rotary_emb.inv_freq"):
            continue  # old checkpoints saved the rotary buffer; we derive it
        sd[key.removeprefix("model.")] = t
    if cfg.tie_embeddings and "embed_tokens.weight" in sd:
        sd["lm_head.weight"] = sd["embed_tokens.weight"]
    dtype = next(iter(sd.values())).dtype
    with torch.device(device):
        model = LlamaModel(cfg)
    model.to(dtype)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValueError(f"{ckpt_dir}: weights do not match the config: missing {missing}, unexpected {unexpected}")
    return model, cfg


__all__ = ["LlamaModel", "RMSNorm", "generate", "save_hf", "load_hf", "config_from_hf"]
