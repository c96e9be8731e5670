"""Pretrain a Llama-style model on packed token files: setup -> train -> cleanup, resumable step for step.

    python -m llmforge.training.recipes.pretrain --config cfg.json --train out/data/train.npy \\
        --val out/data/val.npy --out out/run1 [--max_steps 200 ...]
    torchrun --nproc_per_node=2 -m llmforge.training.recipes.pretrain ...     # DDP (gloo on CPU, nccl on GPU)

or from Python (a notebook, a job task):

    from llmforge.training.recipes.pretrain import PretrainConfig, pretrain
    summary = pretrain(PretrainConfig(model="llama-1m", max_steps=200), "train.npy", "val.npy", "out/run1",
                       on_metrics=lambda step, m: print(step, m))

The token files come from ``llmforge.training.data.prepare_tokens``. A run writes
``out_dir/checkpoints/`` (every ``checkpoint_every`` steps and at the end) and,
when it finishes, the model in Hugging Face format at ``out_dir/model``. Starting
again with the same ``out_dir`` resumes from ``checkpoints/latest``: model,
optimizer, schedule, RNG and data position are restored, so the same seed gives
the same losses as an uninterrupted run (fp32; tested).

What it doesn't know: where metrics go (``on_metrics(step, dict)`` decides), jobs
or the platform (``should_stop()`` is the only cancellation hook), tokenizers
(token ids only), FSDP/tensor parallelism (DDP only). Under DDP only rank 0
evaluates, checkpoints, reports metrics and exports; ``should_stop`` must answer
the same on every rank.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import inspect
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from llmforge.training.checkpoint import load_latest, restore_rng, save_checkpoint, unwrap
from llmforge.training.config import ModelConfig
from llmforge.training.data import META_FILE, PackedBatches, load_tokens
from llmforge.training.model import LlamaModel, save_hf

LOG = logging.getLogger(__name__)
EVAL_SEED = 1234
"""The val batches are drawn from this seed at every eval, so eval losses compare across steps."""


@dataclass
class PretrainConfig:
    model: str = "llama-1m"
    """Model preset name (``ModelConfig.from_name``): llama-1m, -10m, -30m, -125m, -350m, -1b."""
    model_overrides: dict[str, Any] = field(default_factory=dict)
    """ModelConfig fields to change on the preset, e.g. ``{"dim": 64, "n_layers": 2}``."""
    vocab_size: int | None = None
    """Vocabulary size; None reads it from the ``meta.json`` beside the train file (written by ``prepare_tokens``)."""
    seq_len: int = 256
    """Tokens per sequence (T); 128-2048. ``max_seq_len`` is raised to it if the preset is shorter."""
    batch_size: int = 16
    """Sequences per micro-batch per rank (B)."""
    grad_accum: int = 1
    """Micro-batches per optimizer step; tokens/step = batch_size * seq_len * grad_accum * world_size."""
    max_steps: int = 1000
    """Optimizer steps in the whole run (the schedule spans them)."""
    lr: float = 1e-3
    """Peak learning rate after warmup; ~1e-3 for ~1M-10M models, 3e-4 around 100M, lower above."""
    min_lr: float = 1e-4
    """Learning rate at the end of the decay; ~lr/10 (Chinchilla)."""
    warmup_steps: int = 100
    """Linear warmup from 0 to ``lr``; ~1-5% of max_steps."""
    schedule: str = "cosine"
    """Decay after warmup: "cosine" or "linear", from lr down to min_lr at max_steps."""
    weight_decay: float = 0.1
    """AdamW decoupled weight decay on matrices; norms and embeddings get none."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    grad_clip: float | None = 1.0
    """Clip the global gradient norm to this; None disables (the norm is still reported)."""
    eval_every: int = 100
    """Evaluate on the val split every N steps and at the end; 0 disables periodic evals."""
    eval_batches: int = 20
    """Batches per evaluation (the same batches every time)."""
    checkpoint_every: int = 500
    """Save a checkpoint every N steps (and always at the end); 0 = only at the end."""
    keep_checkpoints: int = 2
    """How many step checkpoints to keep."""
    seed: int = 0
    """Seeds the model init and the training batches; same seed + same data = same run."""
    precision: str = "bf16"
    """"bf16" (autocast to bfloat16 where the device supports it, else fp32 with a warning) or "fp32"."""
    compile: bool = False
    """Wrap the model in ``torch.compile`` (faster on GPU after a slow first step)."""
    threads: int | None = None
    """CPU threads for torch (``torch.set_num_threads``); None leaves torch's default."""
    early_stopping_patience: int | None = None
    """Stop after this many evals without a new best eval loss; None never stops early."""

    def __post_init__(self) -> None:
        if self.schedule not in ("cosine", "linear"):
            raise ValueError(f"Unknown schedule {self.schedule!r}; use 'cosine' or 'linear'")
        if self.precision not in ("bf16", "fp32"):
            raise ValueError(f"Unknown precision {self.precision!r}; use 'bf16' or 'fp32'")
        self.betas = tuple(self.betas)


def lr_factor(step: int, cfg: PretrainConfig) -> float:
    """Multiplier on ``cfg.lr`` for the step about to be taken: linear warmup, then decay to min_lr."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    decay = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.schedule == "cosine" else 1 - progress
    return (cfg.min_lr + decay * (cfg.lr - cfg.min_lr)) / cfg.lr


def build_optimizer(model: torch.nn.Module, cfg: PretrainConfig, device: torch.device) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and "embed" not in name else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:  # fused runs on CUDA and (torch >= 2.4) CPU; otherwise the foreach default
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def _autocast(cfg: PretrainConfig, device: torch.device) -> contextlib.AbstractContextManager:
    if cfg.precision == "fp32":
        return contextlib.nullcontext()
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        LOG.warning("bf16 is not supported on this GPU; training in fp32")
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@torch.no_grad()
def evaluate(model: torch.nn.Module, val: np.ndarray, cfg: PretrainConfig, device: torch.device) -> float:
    """Mean loss over ``cfg.eval_batches`` fixed val batches."""
    model.eval()
    batches = PackedBatches(val, cfg.batch_size, cfg.seq_len, seed=EVAL_SEED, device=device)
    total = 0.0
    for _ in range(cfg.eval_batches):
        x, y = next(batches)
        with _autocast(cfg, device):
            _, loss = model(x, y)
        total += loss.item()
    model.train()
    return total / cfg.eval_batches


def _model_config(cfg: PretrainConfig, train_file: Path) -> ModelConfig:
    overrides = dict(cfg.model_overrides)
    vocab = cfg.vocab_size or overrides.pop("vocab_size", None)
    if vocab is None and (train_file.parent / META_FILE).exists():
        vocab = json.loads((train_file.parent / META_FILE).read_text())["vocab_size"]
    if vocab is not None:
        overrides["vocab_size"] = vocab
    base = ModelConfig.from_name(cfg.model)  # validates the name (the error lists the presets)
    overrides["max_seq_len"] = max(overrides.get("max_seq_len", base.max_seq_len), cfg.seq_len)
    return ModelConfig.from_name(cfg.model, **overrides)


def pretrain(cfg: PretrainConfig, train_file: str | os.PathLike[str], val_file: str | os.PathLike[str],
             out_dir: str | os.PathLike[str], *, on_metrics: Callable[[int, dict[str, float]], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Train (or resume) and export; see the module docstring.

    Args:
        cfg: the run's settings.
        train_file, val_file: ``.npy`` token arrays from ``prepare_tokens``.
        out_dir: gets ``checkpoints/`` and, at the end, ``model/`` (HF format).
        on_metrics: called after every step with ``loss, lr, grad_norm, tokens_per_s, tokens`` and,
            at evals, ``eval_loss, ppl`` (rank 0 only).
        should_stop: checked before every step; True saves a checkpoint and returns (``stopped``).

    Returns:
        ``{"steps", "tokens", "seconds", "train_loss", "eval_loss", "status", "model_dir", ...}``;
        status is "completed", "stopped" or "early_stopped". ``model_dir`` is None unless completed.
    """
    # --- setup -------------------------------------------------------------------------------
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ
    rank, world_size, local_rank = 0, 1, 0
    if distributed:
        rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    master = rank == 0
    emit = on_metrics if (on_metrics is not None and master) else (lambda step, metrics: None)
    out, ckpt_dir = Path(out_dir), Path(out_dir) / "checkpoints"

    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    train_tokens, val_tokens = load_tokens(train_file), load_tokens(val_file)
    mcfg = _model_config(cfg, Path(train_file))
    top = int(train_tokens.max())
    if top >= mcfg.vocab_size:
        raise ValueError(f"token id {top} in {train_file} is outside the model's vocab_size {mcfg.vocab_size}; "
                         "set vocab_size to the tokenizer's (prepare_tokens writes it to meta.json)")
    with torch.device(device):
        raw_model = LlamaModel(mcfg)
    model: torch.nn.Module = raw_model
    optimizer = build_optimizer(raw_model, cfg, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    batches = PackedBatches(train_tokens, cfg.batch_size, cfg.seq_len, seed=cfg.seed, rank=rank,
                            world_size=world_size, device=device)
    step, best_eval, bad_evals, eval_loss = 0, math.inf, 0, None
    ckpt = load_latest(ckpt_dir, map_location=device)
    if ckpt is not None:
        raw_model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        batches.load_state_dict(ckpt["data"])
        if ckpt["rng"] is not None:
            restore_rng(ckpt["rng"])
        step = ckpt["step"]
        best_eval, bad_evals = ckpt["extra"].get("best_eval", math.inf), ckpt["extra"].get("bad_evals", 0)
        LOG.info("resumed from %s at step %d", ckpt["path"], step)
    if cfg.compile:
        model = torch.compile(model)
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None)

    def checkpoint() -> None:
        if master:
            save_checkpoint(ckpt_dir, model=raw_model, optimizer=optimizer, scheduler=scheduler, step=step,
                            data_state=batches.state_dict(), config=asdict(cfg),
                            extra={"best_eval": best_eval, "bad_evals": bad_evals}, keep=cfg.keep_checkpoints)

    # --- train -------------------------------------------------------------------------------
    status, loss_avg, tokens_per_step = "completed", None, cfg.batch_size * cfg.seq_len * cfg.grad_accum * world_size
    start_step, t_start = step, time.perf_counter()
    model.train()
    while step < cfg.max_steps:
        if should_stop is not None and should_stop():
            status = "stopped"
            break
        t0 = time.perf_counter()
        loss_avg = 0.0
        for micro in range(cfg.grad_accum):
            x, y = next(batches)  # (B, T) each
            last = micro == cfg.grad_accum - 1
            sync = model.no_sync() if (distributed and not last) else contextlib.nullcontext()
            with sync, _autocast(cfg, device):
                _, loss = model(x, y)
                (loss / cfg.grad_accum).backward()
            loss_avg += loss.item() / cfg.grad_accum
        grad_norm = torch.nn.utils.clip_grad_norm_(raw_model.parameters(), cfg.grad_clip or math.inf).item()
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        metrics = {"loss": loss_avg, "lr": lr, "grad_norm": grad_norm, "tokens": step * tokens_per_step,
                   "tokens_per_s": tokens_per_step / (time.perf_counter() - t0)}
        stop_early = False
        if master and ((cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.max_steps):
            eval_loss = evaluate(raw_model, val_tokens, cfg, device)
            metrics.update(eval_loss=eval_loss, ppl=math.exp(min(eval_loss, 50.0)))
            if eval_loss < best_eval:
                best_eval, bad_evals = eval_loss, 0
            else:
                bad_evals += 1
                stop_early = cfg.early_stopping_patience is not None and bad_evals >= cfg.early_stopping_patience
        emit(step, metrics)
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step != cfg.max_steps:
            checkpoint()
        if stop_early:  # rank 0 decides; under DDP the others follow through the broadcast below
            status = "early_stopped"
        if distributed:
            flag = torch.tensor([status == "early_stopped"], dtype=torch.int32, device=device)
            dist.broadcast(flag, 0)
            status = "early_stopped" if flag.item() else status
        if status == "early_stopped":
            break

    # --- cleanup -----------------------------------------------------------------------------
    seconds = time.perf_counter() - t_start
    checkpoint()
    model_dir = None
    if master and status == "completed":
        if eval_loss is None:  # resumed at max_steps, or eval never ran
            eval_loss = evaluate(raw_model, val_tokens, cfg, device)
        model_dir = str(save_hf(raw_model, mcfg, out / "model", overwrite=True))
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return {"status": status, "steps": step, "steps_this_run": step - start_step,
            "tokens": step * tokens_per_step, "seconds": seconds, "train_loss": loss_avg, "eval_loss": eval_loss,
            "params": sum(p.numel() for p in unwrap(model).parameters()), "model_dir": model_dir,
            "checkpoint_dir": str(ckpt_dir)}


# --- command line ------------------------------------------------------------------------------


def _field_docs() -> dict[str, str]:
    """The attribute docstrings of PretrainConfig, for ``--help``."""
    tree = ast.parse(inspect.getsource(PretrainConfig))
    body, docs = tree.body[0].body, {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[node.target.id] = " ".join(str(nxt.value.value).split()).replace("%", "%%")  # argparse formats help with %
    return docs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    docs = _field_docs()
    p = argparse.ArgumentParser(prog="python -m llmforge.training.recipes.pretrain",
                                description="Pretrain a Llama-style model on packed token files (resumes from "
                                            "OUT/checkpoints/latest). Metrics are printed as JSON lines.")
    p.add_argument("--config", help="JSON file of PretrainConfig fields; flags below override it")
    p.add_argument("--train", required=True, help="train token file (.npy from prepare_tokens)")
    p.add_argument("--val", required=True, help="val token file (.npy from prepare_tokens)")
    p.add_argument("--out", required=True, help="run directory: checkpoints/ and model/ go here")
    for f in fields(PretrainConfig):
        p.add_argument(f"--{f.name}", type=json.loads if f.name in ("model_overrides", "betas") else str,
                       default=None, help=docs.get(f.name, "") + (" (JSON)" if f.name in ("model_overrides", "betas") else ""))
    args = p.parse_args(argv)
    values: dict[str, Any] = json.loads(Path(args.config).read_text()) if args.config else {}
    unknown = set(values) - {f.name for f in fields(PretrainConfig)}
    if unknown:
        raise ValueError(f"Unknown config key(s) {sorted(unknown)} in {args.config}")
    defaults = PretrainConfig()
    for f in fields(PretrainConfig):
        raw = getattr(args, f.name)
        if raw is None:
            continue
        current = getattr(defaults, f.name)
        if isinstance(raw, str) and not isinstance(current, str):
            raw = json.loads(raw)  # numbers, booleans, null
        values[f.name] = raw
    cfg = PretrainConfig(**values)
    summary = pretrain(cfg, args.train, args.val, args.out,
                       on_metrics=lambda step, m: print(json.dumps({"step": step, **m}), flush=True))
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"summary": summary}), flush=True)
    return summary


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    main()
