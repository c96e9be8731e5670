"""Train a byte-level BPE tokenizer on a dataset version and save it in Hugging Face format.

    from llmforge.training.tokenizer import TokenizerConfig, train_from_dataset, load_tokenizer
    summary = train_from_dataset(DatasetStore.from_settings(), version_id, TokenizerConfig(vocab_size=8192), "out/tok")
    tok = load_tokenizer("out/tok")          # == transformers.AutoTokenizer.from_pretrained("out/tok")
    tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    # -> '<|bos|><|user|>\\nhi<|end|>\\n<|assistant|>\\n'

How: GPT-2 style byte-level BPE with Hugging Face ``tokenizers``. Every text is
first mapped to bytes (256 base symbols, all in the vocabulary), so any string
encodes with no unknown token and decodes back exactly. The special tokens come
first in the vocabulary (ids 0, 1, 2, ...: bos, eos, pad, then the chat roles),
BOS is prepended by the post-processor when ``add_bos``, and texts are streamed
into ``train_from_iterator`` (the corpus is never held in memory). The result is
written with ``PreTrainedTokenizerFast.save_pretrained`` into a temp directory
beside ``out_dir`` and renamed into place, so ``out_dir`` appears complete or not
at all. The returned summary's ``tokenizer_id`` is the SHA-256 of ``tokenizer.json``.

What it doesn't do: no Unicode normalisation (the bytes you give are the bytes
you get back), no SentencePiece/WordPiece, no resuming a half-trained tokenizer,
no upload to the artifact store or MLflow (the caller stores ``out_dir``).
Training is single-pass over ``texts``; ``tokenizers`` uses all cores
(``RAYON_NUM_THREADS`` limits it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmforge.errors import InvalidInput

if TYPE_CHECKING:  # a type only: training never needs the dataset code at run time
    from llmforge.data_pipeline.datasets import DatasetStore

PROGRESS_EVERY = 1000
"""Texts between two ``progress`` calls."""

DEFAULT_CHAT_TEMPLATE = (
    "{%- set role_tokens = {'system': '<|system|>', 'user': '<|user|>', 'assistant': '<|assistant|>'} -%}"
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] not in role_tokens -%}"
    "{{- raise_exception('unknown chat role ' ~ message['role'] ~ ': use system, user or assistant') -}}"
    "{%- endif -%}"
    "{{- role_tokens[message['role']] ~ '\\n' ~ message['content'] ~ '<|end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}"
)
"""BOS, then each message as ``<|role|>\\n{content}<|end|>\\n``; ``add_generation_prompt``
appends ``<|assistant|>\\n``. ``apply_chat_template`` tokenizes without adding special
tokens, so the BOS here is the only one."""


class TokenizerError(InvalidInput, ValueError):
    """Bad tokenizer config or unusable training input (a ValueError, and a 422 at the edges)."""


@dataclass
class TokenizerConfig:
    vocab_size: int = 8192
    """Final vocabulary size, special tokens included; at least 256 (the bytes) + the special tokens.
    4k-16k for small models, 32k-128k for large ones."""
    min_frequency: int = 2
    """A pair must occur at least this often to be merged; 2 keeps one-off noise out of the vocabulary."""
    bos: str = "<|bos|>"
    """Beginning-of-sequence token (id 0)."""
    eos: str = "<|eos|>"
    """End-of-sequence token (id 1); append it yourself when packing documents for training."""
    pad: str = "<|pad|>"
    """Padding token (id 2)."""
    unk: str | None = None
    """Unknown token. None for byte-level BPE: every byte is in the vocabulary, so nothing is unknown."""
    system: str = "<|system|>"
    """Chat role token that opens a system message."""
    user: str = "<|user|>"
    """Chat role token that opens a user message."""
    assistant: str = "<|assistant|>"
    """Chat role token that opens an assistant message (and the generation prompt)."""
    end: str = "<|end|>"
    """Chat token that closes every message."""
    chat_template: str = DEFAULT_CHAT_TEMPLATE
    """Jinja template over ``messages`` (and ``add_generation_prompt``, ``bos_token``...);
    it must write the role tokens above. See ``DEFAULT_CHAT_TEMPLATE`` for the format."""
    add_bos: bool = True
    """Prepend BOS when encoding (``tok(text)``); ``add_special_tokens=False`` turns it off per call."""

    def __post_init__(self) -> None:
        specials = self.special_tokens
        if len(set(specials)) != len(specials) or not all(specials):
            raise TokenizerError(f"special tokens must be non-empty and distinct, got {specials}", param="special_tokens")
        minimum = 256 + len(specials)
        if self.vocab_size < minimum:
            raise TokenizerError(
                f"vocab_size={self.vocab_size} is too small: byte-level BPE needs at least {minimum} "
                f"(256 bytes + {len(specials)} special tokens); use e.g. 8192", param="vocab_size")
        if self.min_frequency < 1:
            raise TokenizerError(f"min_frequency must be >= 1, got {self.min_frequency}", param="min_frequency")
        missing = [t for t in self.role_tokens if t not in self.chat_template]
        if missing:
            raise TokenizerError(f"chat_template never writes the role tokens {missing}; "
                                 "adapt the template when you rename a role token", param="chat_template")

    @property
    def role_tokens(self) -> list[str]:
        return [self.system, self.user, self.assistant, self.end]

    @property
    def special_tokens(self) -> list[str]:
        """All special tokens in id order: bos, eos, pad, [unk], then the chat roles."""
        return [self.bos, self.eos, self.pad, *([self.unk] if self.unk else []), *self.role_tokens]


def _build(cfg: TokenizerConfig):  # noqa: ANN202 - (tokenizers.Tokenizer, BpeTrainer)
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=cfg.unk))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=cfg.special_tokens,  # first in the vocabulary: ids 0..n-1
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, even unseen ones
        show_progress=False,
    )
    return tok, trainer


def _post_processor(cfg: TokenizerConfig, tok):  # noqa: ANN001, ANN202
    from tokenizers import processors

    if not cfg.add_bos:
        return processors.ByteLevel(trim_offsets=False)
    bos_id = tok.token_to_id(cfg.bos)
    return processors.TemplateProcessing(single=f"{cfg.bos} $A", pair=f"{cfg.bos} $A {cfg.bos} $B:1",
                                         special_tokens=[(cfg.bos, bos_id)])


def train_tokenizer(texts: Iterable[str], cfg: TokenizerConfig, out_dir: str | os.PathLike[str], *,
                    progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train byte-level BPE on ``texts`` and save it in HF format at ``out_dir``.

    Args:
        texts: Any iterable of strings; streamed once, never materialised.
        cfg: Vocabulary size, special tokens and chat template.
        out_dir: Directory to create; it must not exist (or be empty). It appears
            only once complete: on any error nothing is left at ``out_dir`` or beside it.
        progress: Called with the number of texts seen so far, every ``PROGRESS_EVERY`` texts and at the end.

    Returns:
        ``{"tokenizer_id", "vocab_size", "texts", "characters", "special_tokens": {token: id}, ...}``.

    Raises:
        TokenizerError (a ValueError): no text at all, or ``out_dir`` already holds files.
    """
    from transformers import PreTrainedTokenizerFast

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TokenizerError(f"{out} already exists and is not empty; choose a new directory or delete it",
                             param="out_dir")
    counts = {"texts": 0, "characters": 0}

    def counted() -> Iterator[str]:
        for text in texts:
            if not isinstance(text, str):
                raise TokenizerError(f"texts must be strings, got {type(text).__name__} at #{counts['texts']}")
            counts["texts"] += 1
            counts["characters"] += len(text)
            if progress is not None and counts["texts"] % PROGRESS_EVERY == 0:
                progress(counts["texts"])
            yield text

    tok, trainer = _build(cfg)
    tok.train_from_iterator(counted(), trainer=trainer)
    if progress is not None and counts["texts"] % PROGRESS_EVERY:
        progress(counts["texts"])
    if counts["characters"] == 0:
        raise TokenizerError(f"no text to train on ({counts['texts']} texts, 0 characters): "
                             "check the dataset version and its text field")
    tok.post_processor = _post_processor(cfg, tok)

    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=cfg.bos, eos_token=cfg.eos, pad_token=cfg.pad, unk_token=cfg.unk,
        additional_special_tokens=cfg.role_tokens,
        clean_up_tokenization_spaces=False)
    hf.chat_template = cfg.chat_template

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex}"
    try:
        hf.save_pretrained(str(tmp))
        digest = hashlib.sha256((tmp / "tokenizer.json").read_bytes()).hexdigest()
        os.rename(tmp, out)  # atomic on one filesystem; replaces only an empty directory
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "tokenizer_id": f"sha256:{digest}",
        "vocab_size": tok.get_vocab_size(),
        "requested_vocab_size": cfg.vocab_size,
        "texts": counts["texts"],
        "characters": counts["characters"],
        "special_tokens": {t: tok.token_to_id(t) for t in cfg.special_tokens},
        "bos_token_id": tok.token_to_id(cfg.bos),
        "eos_token_id": tok.token_to_id(cfg.eos),
        "pad_token_id": tok.token_to_id(cfg.pad),
        "add_bos": cfg.add_bos,
        "path": str(out),
    }


def train_from_dataset(store: DatasetStore, version_id: str, cfg: TokenizerConfig,
                       out_dir: str | os.PathLike[str], *, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train on the texts of one dataset version (its ``text_field``); the summary records the version id."""
    summary = train_tokenizer(store.texts(version_id), cfg, out_dir, progress=progress)
    summary["dataset_version"] = version_id
    return summary


def load_tokenizer(path: str | os.PathLike[str]):  # noqa: ANN201 - transformers.PreTrainedTokenizerFast
    """Load a saved tokenizer; the same as ``transformers.AutoTokenizer.from_pretrained(path)``."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))
