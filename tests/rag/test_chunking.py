from __future__ import annotations

import pytest

from llmforge.rag.chunking import chunk_id, minilm_tokenizer, split_markdown, split_recursive, split_tokens

MARKDOWN = """Preamble before any header.

# Guide

Welcome to the guide. It explains how the tool works, why it exists and how to install it.

## Install

### Linux

Run `pip install tool`. On Debian you may need `apt-get install python3-venv` first.
Then check the version with `tool --version`.

```bash
# this is a comment, not a header
pip install tool
```

### Windows

Use the installer. The same text repeats here. The same text repeats here. The same text repeats here.

## Usage

Call `tool run FILE`. Options:

- `--fast`: skip checks
- `--out DIR`: where to write

# Appendix

The same text repeats here.
"""


def assert_exact(text, chunks):
    assert chunks, "no chunks"
    for c in chunks:
        assert text[c.start:c.end] == c.text, (c.start, c.end, c.text[:40])
        assert c.id == chunk_id(c.source, c.start, c.end, c.text)
    starts = [c.start for c in chunks]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)


def test_recursive_offsets_exact_on_xquad(xquad):
    text = "\n\n".join(p["context"] for p in xquad)
    chunks = split_recursive(text, size=400, overlap=80, source="xquad", title="XQuAD")
    assert_exact(text, chunks)
    assert all(len(c.text) <= 400 for c in chunks)
    assert all(c.source == "xquad" and c.title == "XQuAD" for c in chunks)
    # the whole text is covered: no gap between consecutive chunks except whitespace
    for a, b in zip(chunks, chunks[1:]):
        assert text[a.end:b.start].strip() == "" if b.start > a.end else True


def test_recursive_overlap_respected():
    text = " ".join(f"word{i}" for i in range(500))
    chunks = split_recursive(text, size=100, overlap=30)
    assert_exact(text, chunks)
    assert all(len(c.text) <= 100 for c in chunks)
    overlaps = [a.end - b.start for a, b in zip(chunks, chunks[1:])]
    assert all(0 < o <= 30 for o in overlaps), overlaps
    no_overlap = split_recursive(text, size=100, overlap=0)
    assert all(b.start > a.end - 1 for a, b in zip(no_overlap, no_overlap[1:]))


def test_repeated_text_gets_distinct_offsets():
    text = "same sentence here. " * 50
    chunks = split_recursive(text, size=60, overlap=0)
    assert_exact(text, chunks)
    assert len({c.id for c in chunks}) == len(chunks)  # same text, different places, different ids


def test_token_split_counts_tokens(xquad):
    text = "\n\n".join(p["context"] for p in xquad[:15])
    tok = minilm_tokenizer()
    chunks = split_tokens(text, size=64, overlap=16, source="xquad")
    assert_exact(text, chunks)
    assert all(len(tok.encode(c.text, add_special_tokens=False)) <= 64 for c in chunks)
    assert max(len(tok.encode(c.text, add_special_tokens=False)) for c in chunks) > 40  # chunks are filled


def test_markdown_titles_are_header_paths():
    chunks = split_markdown(MARKDOWN, size=120, overlap=20, source="guide.md", title="Doc")
    assert_exact(MARKDOWN, chunks)
    titles = [c.title for c in chunks]
    assert titles[0] == "Doc"  # the preamble keeps the document title
    assert {"Guide", "Guide > Install > Linux", "Guide > Install > Windows", "Guide > Usage", "Appendix"} <= set(titles)
    assert "Guide > Install" not in titles  # a header with no body of its own yields no chunk
    code = [c for c in chunks if "this is a comment" in c.text]
    assert code and code[0].title == "Guide > Install > Linux"  # '#' inside a code fence is not a header
    assert all(not c.text.lstrip().startswith("# Guide") for c in chunks)
    linux = [c for c in chunks if c.title.endswith("Linux")]
    assert linux[0].metadata["headers"] == ["Guide", "Install", "Linux"]
    assert all(len(c.text) <= 120 for c in chunks)


def test_bad_sizes_rejected():
    with pytest.raises(AssertionError):
        split_recursive("abc", size=10, overlap=10)
