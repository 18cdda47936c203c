"""Prometheus selectors (``name{label="v",l2=~"re"}``) for the probe; samples are read by
``observatory.feeds.exposition`` (``prometheus_client``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!=|!~|=)\s*"((?:[^"\\]|\\.)*)"\s*(,)?')
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def _unescape(value: str) -> str:
    return re.sub(r"\\[\\\"n]", lambda m: _ESCAPES[m.group(0)], value)


def _labels(text: str, pos: int) -> tuple[list[tuple[str, str, str]], int] | None:
    """Parse `{...}` starting at text[pos] == '{'; (label, op, value) triples and the index
    after '}'; None when malformed."""
    pos += 1
    out: list[tuple[str, str, str]] = []
    while True:
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] == "}":
            return out, pos + 1
        m = _LABEL.match(text, pos)
        if m is None:
            return None
        out.append((m.group(1), m.group(2), _unescape(m.group(3))))
        pos = m.end()
        if m.group(4) is None:
            while pos < len(text) and text[pos] in " \t":
                pos += 1
            if pos < len(text) and text[pos] == "}":
                return out, pos + 1
            return None


@dataclass(frozen=True)
class Selector:
    """`name`, `name{l="v"}`, `{__name__="x"}`; operators =, !=, =~, !~ (regexes fully anchored)."""

    text: str
    name: str | None
    matchers: tuple[tuple[str, str, str], ...] = ()
    _regex: dict[str, re.Pattern[str]] = field(default_factory=dict, compare=False, repr=False)

    def matches(self, name: str, labels: dict[str, str]) -> bool:
        if self.name is not None and name != self.name:
            return False
        for label, op, want in self.matchers:
            have = name if label == "__name__" else labels.get(label, "")
            if op == "=":
                good = have == want
            elif op == "!=":
                good = have != want
            else:
                rx = self._regex.get(want)
                if rx is None:
                    rx = self._regex[want] = re.compile(want)
                good = rx.fullmatch(have) is not None
                if op == "!~":
                    good = not good
            if not good:
                return False
        return True


def parse_selector(text: str) -> Selector:
    """One selector; ValueError when it does not parse."""
    text = text.strip()
    m = _NAME.match(text)
    name = m.group(0) if m else None
    pos = m.end() if m else 0
    matchers: tuple[tuple[str, str, str], ...] = ()
    if pos < len(text) and text[pos] == "{":
        parsed = _labels(text, pos)
        if parsed is None:
            raise ValueError(f"bad selector {text!r}")
        triples, pos = parsed
        for _, op, want in triples:
            if op in ("=~", "!~"):
                re.compile(want)
        matchers = tuple(triples)
    if pos != len(text) or (name is None and not matchers):
        raise ValueError(f"bad selector {text!r}")
    return Selector(text, name, matchers)


def parse_selectors(text: str) -> list[Selector]:
    """Selectors separated by commas or whitespace outside braces and quotes."""
    out: list[str] = []
    buf: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for ch in text:
        if quoted:
            buf.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
            continue
        if ch == '"':
            quoted = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif depth == 0 and (ch == "," or ch.isspace()):
            if buf:
                out.append("".join(buf))
                buf = []
            continue
        buf.append(ch)
    if buf:
        out.append("".join(buf))
    return [parse_selector(s) for s in out]
