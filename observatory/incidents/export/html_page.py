"""The document rendered as one self-contained HTML page (inline CSS, no scripts, nothing
loaded)."""

from __future__ import annotations

from observatory.incidents.export.document import (
    Block,
    Bullets,
    ChartBlock,
    Checklist,
    Heading,
    KeyValues,
    Para,
    Table,
)
from observatory.incidents.export.formatting import title
from observatory.incidents.export.sanitize import html_escape
from observatory.incidents.model import Incident

SHORT_CELL = 40  # characters: HTML table columns up to this long shrink to fit

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f7; color: #1f2328;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
main { max-width: 1160px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 24px; margin: 0 0 16px; overflow-wrap: anywhere; }
h2 { font-size: 18px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 15px; margin: 18px 0 6px; }
p { margin: 8px 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: 8px 0; background: #fff; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; vertical-align: top;
  overflow-wrap: anywhere; }
th { background: #f6f8fa; font-weight: 600; }
table.kv th { min-width: 220px; white-space: nowrap; }
table.full { width: 100%; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.fit, th.fit { width: 1%; white-space: nowrap; }
ul { margin: 6px 0; padding-left: 24px; }
ul.checklist { list-style: none; padding-left: 4px; }
ul.checklist li { margin: 4px 0; }
ul.checklist label { display: flex; gap: 8px; align-items: baseline; }
figure { margin: 8px 0; background: #fff; border: 1px solid #d0d7de; padding: 8px; }
figure svg { display: block; width: 100%; height: auto; }
figcaption { font-size: 13px; color: #57606a; margin-top: 4px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 13px;
  font-weight: 600; color: #fff; background: #57606a; margin-right: 6px; vertical-align: 2px; }
.sev-critical { background: #b91c1c; } .sev-error { background: #c2410c; }
.sev-warning { background: #a16207; } .st-resolved { background: #15803d; }
.st-open { background: #b91c1c; } .st-acknowledged { background: #1d4ed8; }
footer, .footer { color: #57606a; font-size: 13px; }
@media print { body { background: #fff; } figure { break-inside: avoid; } }
"""


def _html_bullets(b: Bullets) -> str:
    out = ["<ul>"]
    for text, children in b.items:
        inner = _html_bullets(children) if children is not None else ""
        out.append(f"<li>{html_escape(text)}{inner}</li>")
    out.append("</ul>")
    return "".join(out)


def _html_table(block: Table) -> str:
    # A table with long text spans the page, that column taking the width and short
    # columns shrinking to fit; a table of short values stays as narrow as they are.
    n = len(block.headers)
    longest = [max((len(r[i]) for r in block.rows if i < len(r)), default=0) for i in range(n)]
    wide = block.wide
    if wide is None and n and max(longest) > SHORT_CELL:
        wide = max(range(n), key=lambda i: longest[i])
    classes = []
    for i in range(n):
        names = ["num"] if i < len(block.numeric) and block.numeric[i] else []
        if wide is not None and i != wide and longest[i] <= SHORT_CELL:
            names.append("fit")
        classes.append(f' class="{" ".join(names)}"' if names else "")
    head = "".join(f"<th{classes[i]}>{html_escape(h)}</th>" for i, h in enumerate(block.headers))
    body = []
    for row in block.rows:
        cells = "".join(f"<td{classes[i]}>{html_escape(c)}</td>" for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return (
        f'<table class="data{" full" if wide is not None else ""}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def render_html(doc: list[Block], incident: Incident) -> str:
    parts: list[str] = []
    for block in doc:
        if isinstance(block, Heading):
            lvl = block.level
            if lvl == 1:
                badges = (
                    f'<span class="badge sev-{html_escape(incident.severity)}">'
                    f"{html_escape(incident.severity)}</span>"
                    f'<span class="badge st-{html_escape(incident.state)}">'
                    f"{html_escape(incident.state)}</span>"
                )
                parts.append(f"<h1>{badges}{html_escape(block.text)}</h1>")
            else:
                parts.append(f"<h{lvl}>{html_escape(block.text)}</h{lvl}>")
        elif isinstance(block, Para):
            parts.append(f"<p>{html_escape(block.text)}</p>")
        elif isinstance(block, KeyValues):
            rows = "".join(
                f"<tr><th>{html_escape(k)}</th><td>{html_escape(v)}</td></tr>"
                for k, v in block.rows
            )
            parts.append(f'<table class="kv">{rows}</table>')
        elif isinstance(block, Table):
            parts.append(_html_table(block))
        elif isinstance(block, Bullets):
            parts.append(_html_bullets(block))
        elif isinstance(block, Checklist):
            items = "".join(
                f'<li><label><input type="checkbox">{html_escape(t)}</label></li>'
                for t in block.items
            )
            parts.append(f'<ul class="checklist">{items}</ul>')
        elif isinstance(block, ChartBlock):
            parts.append(block.svg)
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        # Nothing in this file may load or run anything: it is opened from mail and wikis.
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html_escape(title(incident))}</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
