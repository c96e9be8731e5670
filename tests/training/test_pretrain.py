"""The pretraining core: packed token files, atomic checkpoints, exact resume, a falling loss, an HF export.

Tiny models (~100k parameters for resume, ~0.8M on Shakespeare), two threads, well under a minute in all.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from llmforge.training.checkpoint import list_checkpoints, load_latest, save_checkpoint
from llmforge.training.data import PackedBatches, load_tokens, prepare_tokens
from llmforge.training.model import LlamaModel
from llmforge.training.recipes.pretrain import PretrainConfig, main, pretrain
from llmforge.training.config import ModelConfig
from llmforge.training.tokenizer import TokenizerConfig, train_tokenizer

transformers = pytest.importorskip("transformers")
torch.set_num_threads(2)

SHAKESPEARE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "tinyshakespeare.txt"
TINY = dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, multiple_of=32, max_seq_len=32)
DOCS = ["the cat sat on the mat", "a dog barked at the moon", "données et modèles 数据", "short",
        "to be or not to be, that is the question"] * 4 + [f"document number {i}" for i in range(40)]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tok") / "tok"
    train_tokenizer(DOCS, TokenizerConfig(vocab_size=300), out)
    return out


def tiny_cfg(**kw) -> PretrainConfig:
    base = dict(model="llama-1m", model_overrides=TINY, vocab_size=97, seq_len=32, batch_size=4, max_steps=20,
                lr=3e-3, min_lr=3e-4, warmup_steps=5, eval_every=5, eval_batches=2, checkpoint_every=0,
                precision="fp32", threads=2, seed=0)
    return PretrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def token_files(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tokens")
    rng = np.random.default_rng(0)
    # A learnable stream: a repeating pattern with noise, so the loss moves.
    base = np.tile(np.arange(0, 97, 3, dtype=np.uint16), 400)
    noise = rng.integers(0, 97, size=base.size, dtype=np.uint16)
    tokens = np.where(rng.random(base.size) < 0.2, noise, base).astype(np.uint16)
    np.save(d / "train.npy", tokens[:10000])
    np.save(d / "val.npy", tokens[10000:])
    return d / "train.npy", d / "val.npy"


# --- data ------------------------------------------------------------------------------------


def test_packing_round_trip_and_deterministic_split(tokenizer_dir, tmp_path):
    meta = prepare_tokens(DOCS, tokenizer_dir, tmp_path / "a", val_fraction=0.2, seed=3)
    tok = transformers.AutoTokenizer.from_pretrained(str(tokenizer_dir))
    train, val = load_tokens(tmp_path / "a" / "train.npy"), load_tokens(tmp_path / "a" / "val.npy")
    assert train.dtype == np.uint16 and meta["train_docs"] + meta["val_docs"] == len(DOCS)
    assert meta["val_docs"] > 0 and meta["train_tokens"] == train.size
    # Decoding each split gives its documents back, each closed by EOS, in the original order.
    texts = [tok.decode(train.tolist()), tok.decode(val.tolist())]
    docs = [t.split(tok.eos_token)[:-1] for t in texts]
    assert all(t.endswith(tok.eos_token) for t in texts)
    assert sorted(docs[0] + docs[1]) == sorted(DOCS)
    assert [d for d in DOCS if d in set(docs[1])] == docs[1]  # order kept
    assert not set(docs[0]) & set(docs[1])  # a document is never on both sides
    # Same seed -> same files, in any input order; another seed -> another split.
    prepare_tokens(list(reversed(DOCS)), tokenizer_dir, tmp_path / "b", val_fraction=0.2, seed=3)
    again = tok.decode(load_tokens(tmp_path / "b" / "val.npy").tolist()).split(tok.eos_token)[:-1]
    assert sorted(again) == sorted(docs[1])
    other = prepare_tokens(DOCS, tokenizer_dir, tmp_path / "c", val_fraction=0.2, seed=4)
    assert json.loads((tmp_path / "c" / "meta.json").read_text()) == other
    assert not list((tmp_path / "a").glob(".*tmp*"))  # no temp files left behind


def test_packed_batches_resume_and_ranks():
    tokens = np.arange(1000, dtype=np.uint16)
    b = PackedBatches(tokens, batch_size=4, seq_len=8, seed=7)
    x, y = next(b)
    assert x.shape == y.shape == (4, 8) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1]) and torch.equal(y, x + 1)  # y is x shifted by one
    state = b.state_dict()
    expected = [next(b) for _ in range(3)]
    resumed = PackedBatches(tokens, batch_size=4, seq_len=8, seed=7)
    resumed.load_state_dict(state)
    for (ex, ey), (rx, ry) in zip(expected, (next(resumed) for _ in range(3))):
        assert torch.equal(ex, rx) and torch.equal(ey, ry)
    # Two ranks, same seed: different rows, together the same draw as one rank with 2B.
    r0, r1 = (PackedBatches(tokens, 4, 8, seed=7, rank=r, world_size=2) for r in (0, 1))
    whole = PackedBatches(tokens, 8, 8, seed=7)
    (x0, _), (x1, _), (xw, _) = next(r0), next(r1), next(whole)
    assert not torch.equal(x0, x1) and torch.equal(torch.cat([x0, x1]), xw)
    with pytest.raises(ValueError, match="seed"):
        PackedBatches(tokens, 4, 8, seed=8).load_state_dict(state)


# --- checkpoints ------------------------------------------------------------------------------


class ExplodingModel(torch.nn.Module):
    """Dies half-way through a save, like a process killed while writing."""

    def state_dict(self, *args, **kwargs):  # noqa: ANN201
        raise RuntimeError("boom")


def save(d: Path, model: torch.nn.Module, step: int, keep: int | None = None) -> Path:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3) if list(model.parameters()) else None
    return save_checkpoint(d, model=model, optimizer=opt, scheduler=None, step=step, data_state={"pos": step},
                           config={"step": step}, keep=keep)


def test_checkpoint_latest_moves_only_after_a_complete_write(tmp_path):
    d = tmp_path / "ckpt"
    assert load_latest(d) is None
    model = LlamaModel(ModelConfig(vocab_size=97, **TINY))
    save(d, model, 10)
    assert (d / "latest").read_text() == "step-0000010"
    with pytest.raises(RuntimeError, match="boom"):
        save(d, ExplodingModel(), 20)
    assert (d / "latest").read_text() == "step-0000010"  # still the last complete one
    assert sorted(p.name for p in d.iterdir()) == ["latest", "step-0000010"]  # no half-written step-0000020
    ckpt = load_latest(d)
    assert ckpt["step"] == 10 and ckpt["data"] == {"pos": 10} and ckpt["rng"]["torch"] is not None
    for k, v in model.state_dict().items():
        assert torch.equal(ckpt["model"][k], v)
    # keep prunes the oldest, never the newest.
    for step in (20, 30, 40):
        save(d, model, step, keep=2)
    assert [p.name for p in list_checkpoints(d)] == ["step-0000030", "step-0000040"]
    assert load_latest(d)["step"] == 40


def test_a_stray_temp_dir_from_a_crash_is_ignored_and_cleaned(tmp_path):
    d = tmp_path / "ckpt"
    model = LlamaModel(ModelConfig(vocab_size=97, **TINY))
    save(d, model, 1)
    (d / ".step-0000002.tmp-deadbeef").mkdir()  # what a killed process leaves behind
    assert load_latest(d)["step"] == 1 and [p.name for p in list_checkpoints(d)] == ["step-0000001"]
    save(d, model, 3)
    assert not list(d.glob(".step-*"))


# --- the recipe -------------------------------------------------------------------------------


def test_resume_continues_exactly(token_files, tmp_path):
    train, val = token_files
    full: dict[int, float] = {}
    summary = pretrain(tiny_cfg(), train, val, tmp_path / "full", on_metrics=lambda s, m: full.__setitem__(s, m["loss"]))
    assert summary["status"] == "completed" and summary["steps"] == 20 and sorted(full) == list(range(1, 21))

    part: dict[int, float] = {}
    first = pretrain(tiny_cfg(), train, val, tmp_path / "split", on_metrics=lambda s, m: part.__setitem__(s, m["loss"]),
                     should_stop=lambda: len(part) >= 10)
    assert first["status"] == "stopped" and first["steps"] == 10 and first["model_dir"] is None
    assert load_latest(tmp_path / "split" / "checkpoints")["step"] == 10
    second = pretrain(tiny_cfg(), train, val, tmp_path / "split", on_metrics=lambda s, m: part.__setitem__(s, m["loss"]))
    assert second["steps_this_run"] == 10 and second["status"] == "completed"
    assert sorted(part) == list(range(1, 21))
    for step in range(1, 21):
        assert abs(full[step] - part[step]) < 1e-5, (step, full[step], part[step])
    assert abs(summary["eval_loss"] - second["eval_loss"]) < 1e-5
    assert full[20] < full[1]  # and it learns something

    # The export loads in transformers and gives our logits.
    model_dir = Path(second["model_dir"])
    hf = transformers.AutoModelForCausalLM.from_pretrained(model_dir).eval()
    x = torch.from_numpy(np.asarray(load_tokens(val)[:32], dtype=np.int64))[None]
    ours = LlamaModel(ModelConfig(vocab_size=97, **{**TINY, "max_seq_len": 32}))
    ours.load_state_dict(torch.load(tmp_path / "split" / "checkpoints" / "step-0000020" / "model.pt"))
    with torch.no_grad():
        assert torch.allclose(hf(x).logits, ours.eval()(x)[0], atol=1e-4)


def test_early_stopping_and_cli(token_files, tmp_path, capsys):
    train, val = token_files
    # lr=0 never improves: the first eval sets the best, the next `patience` evals do not beat it.
    s = pretrain(tiny_cfg(lr=1e-12, min_lr=1e-12, eval_every=2, early_stopping_patience=2, max_steps=50),
                 train, val, tmp_path / "es")
    assert s["status"] == "early_stopped" and s["steps"] == 6
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps({k: v for k, v in tiny_cfg().__dict__.items()}))
    summary = main(["--config", str(cfg_file), "--train", str(train), "--val", str(val), "--out", str(tmp_path / "cli"),
                    "--max_steps", "3", "--eval_every", "0"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["step"] for line in lines[:-1]] == [1, 2, 3] and summary["steps"] == 3
    assert "eval_loss" in lines[2] and "summary" in lines[-1]
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "Peak learning rate" in capsys.readouterr().out


@pytest.mark.skipif(not SHAKESPEARE.exists(), reason="needs ../shared/data/tinyshakespeare.txt")
def test_loss_falls_below_unigram_entropy_on_shakespeare(tmp_path):
    text = SHAKESPEARE.read_text(encoding="utf-8")[:200_000]
    tok_dir = tmp_path / "tok"
    train_tokenizer([text], TokenizerConfig(vocab_size=512), tok_dir)
    docs = [p for p in text.split("\n\n") if p.strip()]  # speeches as documents
    meta = prepare_tokens(docs, tok_dir, tmp_path / "data", val_fraction=0.05)
    train = load_tokens(tmp_path / "data" / "train.npy")
    counts = np.bincount(train, minlength=meta["vocab_size"])
    p = counts[counts > 0] / counts.sum()
    unigram = float(-(p * np.log(p)).sum())  # nats: the best loss without context

    losses: list[float] = []
    cfg = PretrainConfig(model="llama-1m", seq_len=64, batch_size=16, max_steps=150, lr=3e-3, min_lr=3e-4,
                         warmup_steps=15, eval_every=0, eval_batches=4, checkpoint_every=0, precision="fp32",
                         threads=2, seed=0)
    s = pretrain(cfg, tmp_path / "data" / "train.npy", tmp_path / "data" / "val.npy", tmp_path / "run",
                 on_metrics=lambda step, m: losses.append(m["loss"]))
    final = sum(losses[-10:]) / 10
    print(f"unigram={unigram:.3f} final_train={final:.3f} eval={s['eval_loss']:.3f} first={losses[0]:.3f}")
    assert 0.7e6 < s["params"] < 1.3e6
    assert final < unigram - 0.5, (final, unigram)
    assert s["eval_loss"] < unigram - 0.3, (s["eval_loss"], unigram)
    assert math.isclose(losses[0], math.log(meta["vocab_size"]), abs_tol=0.3)  # starts near uniform
