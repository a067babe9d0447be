"""Terminal or pipe: what the ``rig`` commands print, so a log keeps every path and number whole (issue #14).

On a terminal, rich tables and colours. When stdout is not a terminal (``rig signoff | cat``, a CI log, a file),
plain lines at full width: no wrapping, no truncation, no colour codes, tables as tab-separated rows under a
header line (``# title`` then the column names), so ``cut -f`` and spreadsheets read them. Progress and spinners
belong to stderr and show only when stderr is a terminal.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from typing import Any, TextIO


def stdout_is_terminal(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


def console(*, stderr: bool = False, quiet: bool = False) -> Any:
    """A rich Console that never wraps or cuts a line (soft wrap) and prints no markup codes into a pipe."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if stdout_is_terminal(stream):
        return Console(stderr=stderr, highlight=False, quiet=quiet, soft_wrap=True)
    # not a terminal: full width, no colour; soft_wrap keeps long lines whole instead of folding them at 80
    return Console(stderr=stderr, highlight=False, quiet=quiet, soft_wrap=True, width=10_000, no_color=True)


def strict_json(value: Any) -> Any:
    """``value`` with every non-finite float as ``null``, so the JSON a command prints is strict JSON (RFC 8259
    has no NaN or Infinity token; Python's ``json`` would write them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    return value


def json_text(value: Any, *, indent: int | None = None) -> str:
    """Strict JSON text of ``value`` (:func:`strict_json`)."""
    return json.dumps(strict_json(value), indent=indent, allow_nan=False)


def print_table(
    out: Any,
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: Sequence[str] = (),
    styles: Sequence[str | None] | None = None,
) -> None:
    """A table: rich on a terminal, tab-separated plain rows otherwise (cells as given, never shortened).

    ``styles``: a rich style per row (terminal only), e.g. ``"red"`` for a failure.
    """
    if out.is_terminal:
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for col in columns:
            table.add_column(col, justify="right" if col in right else "left", no_wrap=True, overflow="fold")
        for i, row in enumerate(rows):
            table.add_row(*row, style=styles[i] if styles else None)
        out.print(table)
        return
    if out.quiet:
        return
    # straight to the stream: rich would expand the tabs into spaces
    lines = [f"# {title}", "\t".join(columns), *("\t".join(row) for row in rows)]
    out.file.write("\n".join(lines) + "\n")
