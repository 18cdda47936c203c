"""Untrusted text (destination names, log messages, SQL results) as literal Rich Text.

Never interpolate such text into markup: Text(...) is shown as is, and control characters
(ANSI escapes included) are shown escaped instead of reaching the terminal.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text


def clean(value: Any) -> str:
    """`value` as one printable line: control characters escaped (\\x1b, \\n)."""
    text = "NULL" if value is None else str(value)
    if not text.isprintable():
        text = "".join(
            ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text
        )
    return text


def literal(value: Any, style: str = "", limit: int | None = None) -> Text:
    """A Text that renders `value` literally (no markup), optionally cut to `limit` chars."""
    text = clean(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def fmt_pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}%"


def fmt_ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} ms"
