"""Shared fixtures for the RAG tests: two threads for FAISS and torch (CI machines are small)."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import pytest

faiss.omp_set_num_threads(2)

XQUAD = Path("/work/shared/data/xquad_en_dev.json")


@pytest.fixture(scope="session")
def xquad() -> list[dict]:
    """[{title, context, questions}] per paragraph; skips when the shared data folder is absent."""
    if not XQUAD.exists():
        pytest.skip(f"{XQUAD} not found")
    data = json.loads(XQUAD.read_text())
    return [{"title": art["title"], "context": p["context"], "questions": [q["question"] for q in p["qas"]]}
            for art in data["data"] for p in art["paragraphs"]]
