"""Text for reports and notebooks: the one Markdown table renderer the reports, cards and notebooks share."""
from __future__ import annotations

from typing import Iterable, Sequence


def markdown_table(header: Sequence[object], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table: ``| a | b |``, a ``|---|---|`` separator, then one line per row.

    Cells are written with `str` as given (format numbers before); a row must have as many cells as the header
    (ValueError otherwise, naming the row).
    """
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row {list(row)} has {len(row)} cells, the header {len(header)}")
        lines.append("| " + " | ".join(map(str, row)) + " |")
    return "\n".join(lines)
