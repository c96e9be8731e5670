"""Training checkpoints: everything a run needs to continue exactly, written so a crash never corrupts one.

    from llmforge.training.checkpoint import save_checkpoint, load_latest, restore_rng
    save_checkpoint("out/checkpoints", model=model, optimizer=opt, scheduler=sched, step=100,
                    data_state=batches.state_dict(), config=asdict(cfg), keep=3)
    ckpt = load_latest("out/checkpoints")   # None when there is none yet
    model.load_state_dict(ckpt["model"]); opt.load_state_dict(ckpt["optimizer"]); restore_rng(ckpt["rng"])

Layout: ``<dir>/step-0000100/{model.pt, state.pt, meta.json}`` and a ``<dir>/latest``
text file naming the newest complete step directory. A step directory is built
under a temp name and renamed into place; ``latest`` is written (temp file +
``os.replace``) only after that, and pruning runs after that again. So a crash
at any point leaves ``latest`` naming a complete checkpoint (or no ``latest``),
and at worst a stray ``.step-*.tmp-*`` directory, removed by the next save.

What it doesn't know: sharded (FSDP/DCP) state, remote stores (the caller uploads
the directory to the artifact store), or what the config means (it is stored as given).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmforge.training.fsutil import publish_dir

LATEST = "latest"
MODEL_FILE = "model.pt"
STATE_FILE = "state.pt"
META_FILE = "meta.json"


def step_dir_name(step: int) -> str:
    return f"step-{step:07d}"


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def list_checkpoints(ckpt_dir: str | os.PathLike[str]) -> list[Path]:
    """Complete step directories, oldest first (temp directories are skipped)."""
    d = Path(ckpt_dir)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_dir() and p.name.startswith("step-"))


def save_checkpoint(ckpt_dir: str | os.PathLike[str], *, model: torch.nn.Module, optimizer: Any, scheduler: Any,
                    step: int, data_state: dict[str, Any] | None, config: dict[str, Any], rng: bool = True,
                    extra: dict[str, Any] | None = None, keep: int | None = None) -> Path:
    """Write ``step-{step:07d}/`` atomically, then point ``latest`` at it, then prune to ``keep``.

    Args:
        ckpt_dir: directory of checkpoints (created if needed).
        model: the model (DDP/compile wrappers are unwrapped).
        optimizer, scheduler: anything with ``state_dict()``; None is stored as None.
        step: optimizer steps done.
        data_state: the batch iterator's ``state_dict()``.
        config: the run's config as plain data (stored in ``meta.json`` too).
        rng: also store the torch/numpy/python (and CUDA) RNG states.
        extra: any other picklable trainer state (e.g. early-stopping counters).
        keep: keep only the newest ``keep`` step directories; None keeps all.

    Returns:
        The step directory written.
    """
    root = Path(ckpt_dir)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".step-*.tmp-*"):  # left by an earlier crash
        shutil.rmtree(stale, ignore_errors=True)
    final = root / step_dir_name(step)
    tmp = root / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        torch.save(unwrap(model).state_dict(), tmp / MODEL_FILE)
        torch.save({
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "data": data_state,
            "rng": rng_state() if rng else None,
            "extra": extra or {},
        }, tmp / STATE_FILE)
        (tmp / META_FILE).write_text(json.dumps({"step": step, "config": config}, indent=2, default=str))
        publish_dir(tmp, final)  # re-saving the same step swaps the old one out
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    # The pointer moves last: until here, `latest` still names the previous complete checkpoint.
    pointer_tmp = root / f".{LATEST}.tmp-{uuid.uuid4().hex[:8]}"
    pointer_tmp.write_text(final.name)
    os.replace(pointer_tmp, root / LATEST)
    if keep is not None:
        assert keep >= 1, f"keep must be >= 1, got {keep}"
        for old in list_checkpoints(root)[:-keep]:
            if old.name != final.name:
                shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(step_dir: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """One step directory as ``{"model", "optimizer", "scheduler", "data", "rng", "extra", "step", "config", "path"}``."""
    d = Path(step_dir)
    meta = json.loads((d / META_FILE).read_text())
    model = torch.load(d / MODEL_FILE, map_location=map_location, weights_only=True)
    # Our own file: it holds numpy/python RNG states, which the weights_only unpickler refuses.
    state = torch.load(d / STATE_FILE, map_location=map_location, weights_only=False)
    return {"model": model, **state, "step": meta["step"], "config": meta["config"], "path": str(d)}


def load_latest(ckpt_dir: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """The checkpoint ``latest`` names, or None when there is no ``latest`` yet."""
    pointer = Path(ckpt_dir) / LATEST
    if not pointer.exists():
        return None
    return load_checkpoint(Path(ckpt_dir) / pointer.read_text().strip(), map_location)


__all__ = ["save_checkpoint", "load_checkpoint", "load_latest", "list_checkpoints", "restore_rng", "rng_state",
           "unwrap"]
