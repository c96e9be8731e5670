"""Token files for pretraining: texts -> one flat token array on disk -> random (x, y) batches.

    from llmforge.training.data import prepare_tokens, load_tokens, PackedBatches
    meta = prepare_tokens(texts, "out/tok", "out/data", val_fraction=0.05)   # train.npy, val.npy, meta.json
    batches = PackedBatches(load_tokens("out/data/train.npy"), batch_size=8, seq_len=256, seed=0)
    x, y = next(batches)                       # (B, T) int64 each; y is x shifted by one token
    state = batches.state_dict()               # store it with the checkpoint ...
    batches.load_state_dict(state)             # ... and a resumed run draws exactly the same next batches

How: every document is encoded without BOS and followed by the tokenizer's EOS,
then concatenated (nanoGPT's ``prepare.py``). Documents go to train or val by a
hash of ``seed`` and their text, so the split is deterministic and does not
depend on the order of the texts. Arrays are uint16 when the vocabulary fits,
else uint32, saved as ``.npy`` into a temp file and renamed into place;
``meta.json`` is written last, so its existence means both arrays are complete.
``load_tokens`` memory-maps the file. A batch takes ``B`` windows of ``T + 1``
tokens at offsets drawn from a seeded ``torch.Generator`` (windows may cross
document boundaries; EOS marks them). With ``world_size`` ranks every rank
draws all ``world_size * B`` offsets and keeps its own slice, so the ranks see
different data while their generators stay in step.

What it doesn't do: no streaming write (each split is held in memory once
while encoding), no sharding into several files, no attention masks at
document boundaries, no epochs (sampling is with replacement).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:  # a type only: the dataset code is never needed at run time
    from llmforge.data_pipeline.datasets import DatasetStore

ENCODE_BATCH = 1000
"""Texts encoded per call of the (Rust, batched) tokenizer."""
META_FILE = "meta.json"


def _is_val(text: str, seed: int, val_fraction: float) -> bool:
    h = hashlib.blake2b(f"{seed}\x00{text}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64 < val_fraction


def _save_npy(arr: np.ndarray, path: Path) -> None:
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as f:
            np.save(f, arr)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def prepare_tokens(texts: Iterable[str], tokenizer_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                   val_fraction: float = 0.05, seed: int = 0) -> dict[str, Any]:
    """Encode ``texts`` into ``out_dir/{train,val}.npy`` (EOS after every document) plus ``meta.json``.

    Args:
        texts: any iterable of strings (e.g. ``DatasetStore.texts(version_id)``); empty strings are skipped.
        tokenizer_dir: an HF tokenizer directory with an EOS token (``train_tokenizer`` writes one).
        out_dir: created if needed; existing files of the same names are replaced atomically.
        val_fraction: share of documents (not tokens) held out for validation, 0 to 0.5. When it is
            > 0 and the hash puts no document in val, the last document goes there.
        seed: changes which documents are held out.

    Returns:
        The ``meta.json`` content: vocab_size, eos_token_id, dtype, docs and tokens per split, paths.
    """
    from transformers import AutoTokenizer

    if not 0 <= val_fraction <= 0.5:
        raise ValueError(f"val_fraction must be in [0, 0.5], got {val_fraction}")
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    if tok.eos_token_id is None:
        raise ValueError(f"the tokenizer in {tokenizer_dir} has no eos_token; packing needs one between documents")
    eos, vocab = tok.eos_token_id, len(tok)
    dtype = np.uint16 if vocab <= 2**16 else np.uint32
    splits: dict[str, list[np.ndarray]] = {"train": [], "val": []}
    docs = {"train": 0, "val": 0}
    last: tuple[str, np.ndarray] | None = None  # the latest train document, in case val stays empty

    def flush(batch: list[str]) -> None:
        nonlocal last
        for text, ids in zip(batch, tok(batch, add_special_tokens=False)["input_ids"]):
            arr = np.asarray([*ids, eos], dtype=dtype)
            split = "val" if val_fraction > 0 and _is_val(text, seed, val_fraction) else "train"
            splits[split].append(arr)
            docs[split] += 1
            if split == "train":
                last = (text, arr)

    batch: list[str] = []
    for text in texts:
        if text:
            batch.append(text)
        if len(batch) == ENCODE_BATCH:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    if val_fraction > 0 and docs["val"] == 0 and docs["train"] > 1:
        splits["train"].pop()  # `last` is the final train array
        splits["val"].append(last[1])
        docs["train"], docs["val"] = docs["train"] - 1, 1
    if docs["train"] == 0:
        raise ValueError("no non-empty text to tokenize: check the dataset version and its text field")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).unlink(missing_ok=True)  # the marker goes first and comes back last
    meta: dict[str, Any] = {"vocab_size": vocab, "eos_token_id": eos, "dtype": np.dtype(dtype).name,
                            "val_fraction": val_fraction, "seed": seed, "tokenizer": str(tokenizer_dir)}
    for split, arrays in splits.items():
        arr = np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)
        _save_npy(arr, out / f"{split}.npy")
        meta[f"{split}_docs"], meta[f"{split}_tokens"] = docs[split], int(arr.size)
        meta[f"{split}_file"] = str(out / f"{split}.npy")
    tmp = out / f".{META_FILE}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, out / META_FILE)
    return meta


def prepare_dataset(store: DatasetStore, version_id: str, tokenizer_dir: str | os.PathLike[str],
                    out_dir: str | os.PathLike[str], **kwargs: Any) -> dict[str, Any]:
    """``prepare_tokens`` over the texts of one dataset version; the meta records the version id."""
    meta = prepare_tokens(store.texts(version_id), tokenizer_dir, out_dir, **kwargs)
    meta["dataset_version"] = version_id
    (Path(out_dir) / META_FILE).write_text(json.dumps(meta, indent=2))
    return meta


def load_tokens(path: str | os.PathLike[str]) -> np.ndarray:
    """The flat token array of a ``.npy`` file, memory-mapped (read-only)."""
    return np.load(str(path), mmap_mode="r")


class PackedBatches(Iterator[tuple[torch.Tensor, torch.Tensor]]):
    """Endless random (x, y) batches of shape (B, T) from a flat token array; resumable exactly.

    Args:
        tokens: 1-D token ids (``load_tokens``); at least ``seq_len + 1`` of them.
        batch_size: B, rows per rank.
        seq_len: T.
        seed: seeds the generator; every rank must use the same one.
        rank, world_size: this process's slice of each global draw (DDP).
        device: where the tensors go.
    """

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, *, seed: int = 0, rank: int = 0,
                 world_size: int = 1, device: str | torch.device = "cpu") -> None:
        if len(tokens) < seq_len + 1:
            raise ValueError(f"{len(tokens)} tokens are too few for seq_len={seq_len}; "
                             "use more data or a shorter seq_len")
        assert 0 <= rank < world_size, f"rank {rank} not in [0, {world_size})"
        self.tokens, self.batch_size, self.seq_len = tokens, batch_size, seq_len
        self.rank, self.world_size, self.device = rank, world_size, torch.device(device)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.batches = 0  # drawn so far

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        B, T = self.batch_size, self.seq_len
        ix = torch.randint(len(self.tokens) - T, (self.world_size * B,), generator=self.generator)
        ix = ix[self.rank * B:(self.rank + 1) * B].tolist()
        rows = np.stack([np.asarray(self.tokens[i:i + T + 1], dtype=np.int64) for i in ix])  # (B, T+1)
        self.batches += 1
        xy = torch.from_numpy(rows)
        x, y = xy[:, :-1], xy[:, 1:]  # (B, T) each
        if self.device.type == "cuda":
            return x.pin_memory().to(self.device, non_blocking=True), y.pin_memory().to(self.device, non_blocking=True)
        return x.contiguous(), y.contiguous()

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "batches": self.batches, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["seed"] != self.seed:
            raise ValueError(f"data state was saved with seed {state['seed']}, this run uses {self.seed}")
        self.generator.set_state(state["generator"])
        self.batches = state["batches"]


__all__ = ["prepare_tokens", "prepare_dataset", "load_tokens", "PackedBatches"]
