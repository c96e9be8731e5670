"""Human tables by default, ``--json`` for scripts; errors as one red line and exit code 1."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

console = Console()
err_console = Console(stderr=True)


def emit(data: Any, *, as_json: bool, columns: Sequence[str] | None = None, title: str | None = None) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    rows = data if isinstance(data, list) else [data]
    if columns is None:
        columns = list(rows[0].keys()) if rows else []
    if not rows:
        console.print(f"[dim]no {escape(title or 'rows')}[/dim]")
        return
    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(col, overflow="fold", no_wrap=col == "id")
    for row in rows:
        table.add_row(*(Text("" if row.get(c) is None else str(row.get(c))) for c in columns))  # data, never markup
    console.print(table)


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/red] {escape(message)}")
    raise SystemExit(code)
