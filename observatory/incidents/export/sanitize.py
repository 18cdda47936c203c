"""Untrusted text made safe for the exports: ANSI escapes and control characters removed,
credentials redacted, URLs scrubbed, and escaping for Markdown, HTML and CSV cells."""

from __future__ import annotations

import html
import re
from typing import Any

# CSI (colours, cursor moves), OSC (titles, hyperlinks) and two-character escapes.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
_SPACES = re.compile(r"[\t\n\r\v\f]+")
# Other C0/C1 controls, and bidirectional overrides that reorder what a reader sees.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SECRET_KEY = re.compile(
    r"(?:^|[_\-. ])(?:authorization|cookie|set[_-]cookie|password|passwd|secret|token|"
    r"api[_-]?key|apikey|access[_-]?key|private[_-]?key|signature|credentials?)$",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(r"^\s*(?:bearer|basic|token|digest)\s+\S+", re.IGNORECASE)
_URL = re.compile(r"\b(https?://)(?:[^\s/@]+@)?([^\s?#]*)(\?[^\s#]*)?", re.IGNORECASE)
REDACTED = "[redacted]"


def clean_text(text: Any) -> str:
    """One line of plain text: ANSI escapes and control characters out, whitespace runs
    (newlines too) become one space, URLs lose their user info and query string."""
    s = _ANSI.sub("", str(text))
    s = _CONTROLS.sub("", _SPACES.sub(" ", s))
    return scrub_urls(s).strip()


def scrub_urls(text: str) -> str:
    """URLs without user info or query strings (where tokens travel)."""
    return _URL.sub(
        lambda m: m.group(1) + m.group(2) + ("?" + REDACTED if m.group(3) else ""), text
    )


def redact(value: Any, key: str = "") -> Any:
    """`value` (evidence, impact) with credential-looking keys and values replaced."""
    if key and _SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, dict):
        return {str(k): redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return REDACTED if _SECRET_VALUE.match(value) else scrub_urls(value)
    return value


def md_escape(text: Any, line_start: bool = False) -> str:
    """Untrusted text for inline Markdown: one line, no controls, no markup. With
    `line_start`, text that would begin a heading, list or rule is escaped too."""
    s = re.sub(r"([\\`*<>\[\]|])", r"\\\1", clean_text(text))
    if line_start:
        s = re.sub(r"^(\d+)([.)])", r"\1\\\2", s)
        s = re.sub(r"^([#+\-=])", r"\\\1", s)
    return s


def html_escape(text: Any) -> str:
    """Untrusted text for HTML (text or a quoted attribute); `://` as an entity so nothing
    in the file reads as a URL reference."""
    return html.escape(clean_text(text), quote=True).replace("://", "&#58;//")


def _csv_cell(text: Any) -> str:
    s = clean_text(text)
    # A spreadsheet would run a cell starting like a formula.
    return "'" + s if s[:1] in ("=", "+", "-", "@") else s
