"""Readers: every format streams rows, and every malformed input names the line, row or field."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmforge.data_pipeline.formats import detect_format, read_rows
from llmforge.errors import InvalidInput


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    p = tmp_path / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


def test_jsonl_rows_and_blank_lines(tmp_path: Path) -> None:
    p = write(tmp_path, "a.jsonl", '{"text": "one"}\n\n{"text": "two", "n": 2}\n')
    assert list(read_rows(p)) == [{"text": "one"}, {"text": "two", "n": 2}]


def test_jsonl_bom_is_ignored(tmp_path: Path) -> None:
    p = write(tmp_path, "a.jsonl", '\ufeff{"text": "x"}\n')
    assert list(read_rows(p)) == [{"text": "x"}]


@pytest.mark.parametrize("content, message", [
    ('{"text": "ok"}\n{"text": broken}\n', "line 2 is not valid JSON"),
    ('{"text": "ok"}\n[1, 2]\n', "line 2 is a JSON list"),
    ("\n\n", "has no JSON rows"),
])
def test_jsonl_errors_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        list(read_rows(write(tmp_path, "bad.jsonl", content)))


def test_csv_with_header_and_quoted_newlines(tmp_path: Path) -> None:
    p = write(tmp_path, "a.csv", 'text,label\n"hello, world",1\n"two\nlines",0\n')
    assert list(read_rows(p)) == [{"text": "hello, world", "label": "1"}, {"text": "two\nlines", "label": "0"}]


def test_csv_without_header_takes_columns(tmp_path: Path) -> None:
    p = write(tmp_path, "a.csv", '"3","Title","Body text"\n')
    assert list(read_rows(p, columns=["class", "title", "text"])) == [{"class": "3", "title": "Title", "text": "Body text"}]


def test_csv_ragged_row_names_the_row(tmp_path: Path) -> None:
    p = write(tmp_path, "a.csv", "text,label\na,1\nb,2,extra\n")
    with pytest.raises(InvalidInput, match="row 3 has 3 fields but the header has 2"):
        list(read_rows(p))


def test_csv_header_problems(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="must name every column"):
        list(read_rows(write(tmp_path, "a.csv", "text,\nx,y\n")))
    with pytest.raises(InvalidInput, match="repeats a column"):
        list(read_rows(write(tmp_path, "b.csv", "text,text\nx,y\n")))
    with pytest.raises(InvalidInput, match="no rows"):
        list(read_rows(write(tmp_path, "c.csv", "text,label\n")))


def test_empty_binary_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="is empty"):
        list(read_rows(write(tmp_path, "e.jsonl", b"")))
    with pytest.raises(InvalidInput, match="binary data"):
        list(read_rows(write(tmp_path, "b.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\x00")))
    with pytest.raises(InvalidInput, match=r"line 2 is not valid UTF-8 \(byte 17\)"):
        list(read_rows(write(tmp_path, "l.txt", "first line ok\n".encode() + "caf\xe9\n".encode("latin-1"))))


def test_parquet_round_trip_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": ["x", "y"], "n": [1, 2]}), path)
    assert list(read_rows(path)) == [{"text": "x", "n": 1}, {"text": "y", "n": 2}]
    with pytest.raises(InvalidInput, match="not a valid Parquet file"):
        list(read_rows(write(tmp_path, "bad.parquet", b"not parquet at all")))


def test_text_and_markdown_splitting(tmp_path: Path) -> None:
    p = write(tmp_path, "a.txt", "para one\nstill one\n\n\npara two\n")
    assert [r["text"] for r in read_rows(p)] == ["para one\nstill one", "para two"]
    assert [r["text"] for r in read_rows(p, text_split="line")] == ["para one", "still one", "para two"]
    md = write(tmp_path, "guide.md", "intro\n\n# The Title\n\nbody\n")
    rows = list(read_rows(md))
    assert len(rows) == 1 and rows[0]["title"] == "The Title" and rows[0]["source"] == "guide.md"
    with pytest.raises(InvalidInput, match="only whitespace"):
        list(read_rows(write(tmp_path, "w.txt", "  \n\n ")))


def test_unknown_extension_says_what_to_do() -> None:
    with pytest.raises(InvalidInput, match="pass format="):
        detect_format("data.xlsx")
