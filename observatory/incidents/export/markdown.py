"""The document rendered as Markdown, every piece of text escaped."""

from __future__ import annotations

from collections.abc import Iterable

from observatory.incidents.export.document import (
    Block,
    Bullets,
    Checklist,
    Heading,
    KeyValues,
    Para,
    Table,
)
from observatory.incidents.export.sanitize import md_escape


def _md_table(headers: list[str], rows: list[list[str]], numeric: list[bool]) -> list[str]:
    def cell(t: str) -> str:
        return md_escape(t) or " "

    aligns = [
        ("---:" if numeric[i] else "---") if i < len(numeric) else "---"
        for i in range(len(headers))
    ]
    out = ["| " + " | ".join(cell(h) for h in headers) + " |", "| " + " | ".join(aligns) + " |"]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return out


def _md_bullets(b: Bullets, depth: int = 0) -> list[str]:
    out: list[str] = []
    for text, children in b.items:
        out.append("  " * depth + "- " + md_escape(text))
        if children is not None:
            out += _md_bullets(children, depth + 1)
    return out


def render_markdown(doc: Iterable[Block]) -> str:
    parts: list[str] = []
    for block in doc:
        if isinstance(block, Heading):
            parts.append("#" * block.level + " " + md_escape(block.text))
        elif isinstance(block, Para):
            parts.append(md_escape(block.text, line_start=True))
        elif isinstance(block, KeyValues):
            parts.append("\n".join(f"- **{md_escape(k)}:** {md_escape(v)}" for k, v in block.rows))
        elif isinstance(block, Table):
            parts.append("\n".join(_md_table(block.headers, block.rows, block.numeric)))
        elif isinstance(block, Bullets):
            parts.append("\n".join(_md_bullets(block)))
        elif isinstance(block, Checklist):
            parts.append("\n".join(f"- [ ] {md_escape(t)}" for t in block.items))
        # ChartBlock: HTML only
    return "\n\n".join(parts) + "\n"
