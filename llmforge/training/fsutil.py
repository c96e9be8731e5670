"""Publishing a finished folder atomically: the one mechanism checkpoints and model exports share."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path


def publish_dir(tmp: Path, final: Path) -> None:
    """Move the complete folder ``tmp`` to ``final`` (same filesystem), replacing any existing ``final``.

    A reader sees the old folder or the new one, never a half-written one: an existing ``final``
    is renamed aside first, the new one renamed in, and only then the old one deleted.
    """
    if final.exists():
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)
