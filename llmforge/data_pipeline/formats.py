"""Readers for raw uploads: JSONL, CSV, Parquet, plain text and Markdown, as a stream of row dicts.

Every reader streams (memory bounded by one row or one Parquet batch) and fails
with :class:`~llmforge.errors.InvalidInput` naming the line, row or field at
fault. Nothing here writes anything: callers stage rows into a new dataset
version, which only becomes visible once complete.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from llmforge.errors import InvalidInput

Format = Literal["jsonl", "csv", "parquet", "text", "markdown"]
TextSplit = Literal["document", "paragraph", "line"]
EXTENSIONS: dict[str, Format] = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet",
    ".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown",
}
_PARAGRAPH = re.compile(r"\n\s*\n")
_BINARY_SNIFF = 8192


def detect_format(filename: str) -> Format:
    ext = Path(filename).suffix.lower()
    if ext not in EXTENSIONS:
        raise InvalidInput(
            f"cannot tell the format of {Path(filename).name!r} from its extension; use one of "
            f"{', '.join(sorted(EXTENSIONS))} or pass format=", param="format")
    return EXTENSIONS[ext]


def read_rows(path: str | Path, fmt: Format | None = None, *, text_split: TextSplit | None = None,
              name: str | None = None, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Stream rows from a file. ``name`` is the user's file name, used in error messages;
    ``columns`` names the fields of a CSV file that has no header row."""
    path = Path(path)
    label = name or path.name
    fmt = fmt or detect_format(label)
    size = path.stat().st_size
    if size == 0:
        raise InvalidInput(f"{label} is empty (0 bytes); nothing to import")
    if fmt == "parquet":
        yield from _parquet(path, label)
        return
    with open(path, "rb") as fh:
        head = fh.read(_BINARY_SNIFF)
    if b"\x00" in head:
        raise InvalidInput(f"{label} looks like binary data (it contains NUL bytes), not UTF-8 {fmt}")
    if fmt == "jsonl":
        yield from _jsonl(path, label)
    elif fmt == "csv":
        yield from _csv(path, label, columns)
    elif fmt == "text":
        yield from _text(path, label, text_split or "paragraph")
    elif fmt == "markdown":
        yield from _text(path, label, text_split or "document", markdown=True)
    else:  # pragma: no cover - Literal guards this
        raise InvalidInput(f"unknown format {fmt!r}", param="format")


def _utf8_lines(path: Path, label: str) -> Iterator[tuple[int, str]]:
    """(line number, text) with a precise error on the first invalid UTF-8 byte."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                text = decoder.decode(raw)
            except UnicodeDecodeError as exc:
                raise InvalidInput(
                    f"{label}: line {lineno} is not valid UTF-8 (byte {offset + exc.start}); "
                    "convert the file to UTF-8 first (e.g. iconv -f latin1 -t utf-8)") from None
            offset += len(raw)
            if lineno == 1 and text.startswith("\ufeff"):
                text = text[1:]
            yield lineno, text


def _jsonl(path: Path, label: str) -> Iterator[dict[str, Any]]:
    rows = 0
    for lineno, line in _utf8_lines(path, label):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{label}: line {lineno} is not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise InvalidInput(f"{label}: line {lineno} is a JSON {type(obj).__name__}; each line must be an object like {{\"text\": ...}}")
        rows += 1
        yield obj
    if rows == 0:
        raise InvalidInput(f"{label} has no JSON rows (only blank lines)")


def _csv(path: Path, label: str, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    lines = (text for _, text in _utf8_lines(path, label))
    reader = csv.reader(lines)
    if columns:
        header = list(columns)
    else:
        try:
            header = next(reader)
        except StopIteration:
            raise InvalidInput(f"{label} has no header row") from None
        except csv.Error as exc:
            raise InvalidInput(f"{label}: header row is not valid CSV ({exc})") from None
    if not header or any(not h.strip() for h in header):
        raise InvalidInput(f"{label}: the header row must name every column (found {header!r}); "
                           "for a file without a header pass columns=[...]")
    if len(set(header)) != len(header):
        raise InvalidInput(f"{label}: the header row repeats a column name ({header!r})")
    rows = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InvalidInput(f"{label}: row {reader.line_num} is not valid CSV ({exc})") from None
        if not row:
            continue
        if len(row) != len(header):
            raise InvalidInput(
                f"{label}: row {reader.line_num} has {len(row)} fields but the header has {len(header)}")
        rows += 1
        yield dict(zip(header, row))
    if rows == 0:
        raise InvalidInput(f"{label} has a header but no rows")


def _parquet(path: Path, label: str) -> Iterator[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"{label} is not a valid Parquet file ({exc})") from None
    rows = 0
    for batch in pf.iter_batches(batch_size=2048):
        for row in batch.to_pylist():
            rows += 1
            yield row
    if rows == 0:
        raise InvalidInput(f"{label} has no rows")


def _text(path: Path, label: str, split: TextSplit, markdown: bool = False) -> Iterator[dict[str, Any]]:
    if split == "line":
        n = 0
        for _, line in _utf8_lines(path, label):
            if line.strip():
                n += 1
                yield {"text": line.rstrip("\r\n")}
        if n == 0:
            raise InvalidInput(f"{label} contains only whitespace")
        return
    text = "".join(line for _, line in _utf8_lines(path, label))
    if not text.strip():
        raise InvalidInput(f"{label} contains only whitespace")
    if split == "document":
        row: dict[str, Any] = {"text": text.strip(), "source": label}
        if markdown:
            m = re.search(r"^#{1,6}\s+(.+)$", text, flags=re.M)
            row["title"] = m.group(1).strip() if m else Path(label).stem
        yield row
        return
    for para in _PARAGRAPH.split(text):
        if para.strip():
            yield {"text": para.strip()}


def rows_to_jsonl_bytes(rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    for row in rows:
        buf.write(json.dumps(row, ensure_ascii=False, default=str))
        buf.write("\n")
    return buf.getvalue().encode("utf-8")
