"""The shape of a Llama-style decoder: one small dataclass plus named presets from ~1M to ~1B parameters.

    from llmforge.training.config import ModelConfig
    cfg = ModelConfig.from_name("llama-10m")      # a preset
    cfg = ModelConfig(vocab_size=97, dim=64, n_layers=2, n_heads=4, n_kv_heads=2)  # or your own
    cfg.num_params()                              # estimate, no tensors allocated
    cfg.to_hf_config()                            # kwargs for transformers.LlamaConfig

This module knows shapes only: no torch, no transformers, no tokenizer. The
vocabulary size is whatever the tokenizer says; the presets assume a Llama-2
sized vocabulary (32000) except the two smallest, which would otherwise be
almost all embedding.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass
class ModelConfig:
    vocab_size: int = 32000
    """Number of token ids (the tokenizer's vocabulary, padded if you like to a multiple of 64)."""
    dim: int = 768
    """Width of the residual stream (HF ``hidden_size``). Must be divisible by ``n_heads``."""
    n_layers: int = 12
    """Number of decoder blocks (HF ``num_hidden_layers``)."""
    n_heads: int = 12
    """Query heads per block (HF ``num_attention_heads``). Head size is ``dim // n_heads``, usually 64-128."""
    n_kv_heads: int | None = None
    """Key/value heads for grouped-query attention; must divide ``n_heads``. None = ``n_heads`` (plain multi-head)."""
    ffn_hidden: int | None = None
    """SwiGLU hidden width (HF ``intermediate_size``). None = Llama's rule: ``2/3 * 4 * dim``, rounded up to ``multiple_of``."""
    multiple_of: int = 256
    """Rounding for the derived ``ffn_hidden`` (Llama uses 256; small models use 32-64 so they are not inflated)."""
    max_seq_len: int = 2048
    """Longest sequence the rotary tables cover (HF ``max_position_embeddings``)."""
    rope_theta: float = 10000.0
    """Rotary base frequency; 10000 (Llama 2) to 500000 (Llama 3, long context)."""
    norm_eps: float = 1e-5
    """RMSNorm epsilon (HF ``rms_norm_eps``); 1e-5 to 1e-6."""
    tie_embeddings: bool = False
    """Share the input embedding with the output head; saves ``vocab_size * dim`` parameters, common below ~1B."""
    init_std: float = 0.02
    """Standard deviation of the normal init of every linear and embedding weight (HF ``initializer_range``)."""

    def __post_init__(self) -> None:
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.ffn_hidden is None:
            hidden = int(2 * (4 * self.dim) / 3)
            self.ffn_hidden = self.multiple_of * math.ceil(hidden / self.multiple_of)
        if self.dim % self.n_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})")
        if (self.dim // self.n_heads) % 2:
            raise ValueError(f"head size dim // n_heads = {self.dim // self.n_heads} must be even for rotary embeddings")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @classmethod
    def from_name(cls, name: str, **overrides) -> ModelConfig:
        """A preset by name, optionally with fields overridden (``from_name("llama-10m", max_seq_len=512)``).

        Raises:
            ValueError: the name is not a preset; the message lists the presets.
        """
        if name not in PRESETS:
            raise ValueError(f"Unknown model preset {name!r}; choose one of: {', '.join(PRESETS)}")
        # Rebuild rather than dataclasses.replace: derived fields (ffn_hidden, n_kv_heads) must follow the overrides.
        return cls(**{**PRESETS[name], **overrides})

    def num_params(self, *, include_embeddings: bool = True) -> int:
        """Exact parameter count of ``LlamaModel(self)``, computed from the shapes without allocating anything.

        Args:
            include_embeddings: count the token embedding (and the untied output head).
        """
        kv_dim = self.n_kv_heads * self.head_dim
        attn = 2 * self.dim * self.dim + 2 * self.dim * kv_dim  # q, o + k, v
        mlp = 3 * self.dim * self.ffn_hidden  # gate, up, down
        per_layer = attn + mlp + 2 * self.dim  # + two RMSNorm weights
        total = self.n_layers * per_layer + self.dim  # + final norm
        if include_embeddings:
            total += self.vocab_size * self.dim * (1 if self.tie_embeddings else 2)
        return total

    def to_hf_config(self) -> dict:
        """Keyword arguments for ``transformers.LlamaConfig`` describing the same network.

        Plain data (no transformers import): ``rope_theta`` is accepted by
        transformers 4.x and 5.x alike (5.x moves it under ``rope_parameters``).
        Token ids are left unset: the model does not know the tokenizer.
        """
        return {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": self.vocab_size,
            "hidden_size": self.dim,
            "intermediate_size": self.ffn_hidden,
            "num_hidden_layers": self.n_layers,
            "num_attention_heads": self.n_heads,
            "num_key_value_heads": self.n_kv_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "max_position_embeddings": self.max_seq_len,
            "rope_theta": float(self.rope_theta),
            "rms_norm_eps": self.norm_eps,
            "tie_word_embeddings": self.tie_embeddings,
            "initializer_range": self.init_std,
            "attention_bias": False,
            "mlp_bias": False,
            "bos_token_id": None,
            "eos_token_id": None,
            "pad_token_id": None,
        }

    def to_dict(self) -> dict:
        return asdict(self)


# Named presets. The number in the name is the rough parameter count (num_params(), embeddings included);
# tests hold each within +-30% of it. Shapes follow published small Llamas where one exists
# (llama-1b is TinyLlama-1.1B's shape).
PRESETS: dict[str, dict] = {
    "llama-1m": dict(vocab_size=2048, dim=128, n_layers=4, n_heads=4, n_kv_heads=2, multiple_of=32,
                     max_seq_len=512, tie_embeddings=True),
    "llama-10m": dict(vocab_size=8192, dim=256, n_layers=10, n_heads=8, n_kv_heads=4, multiple_of=64,
                      max_seq_len=1024, tie_embeddings=True),
    "llama-30m": dict(vocab_size=32000, dim=384, n_layers=12, n_heads=6, n_kv_heads=2, multiple_of=64,
                      max_seq_len=1024, tie_embeddings=True),
    "llama-125m": dict(vocab_size=32000, dim=768, n_layers=12, n_heads=12, n_kv_heads=4, multiple_of=256,
                       max_seq_len=2048, tie_embeddings=False),
    "llama-350m": dict(vocab_size=32000, dim=1024, n_layers=24, n_heads=16, n_kv_heads=8, multiple_of=256,
                       max_seq_len=2048, tie_embeddings=False),
    "llama-1b": dict(vocab_size=32000, dim=2048, n_layers=22, n_heads=32, n_kv_heads=4, ffn_hidden=5632,
                     max_seq_len=2048, tie_embeddings=False),
}
