"""The SQL console's history, kept across sessions in a small file under the user's data
directory (`$OBSERVATORY_SQL_HISTORY` overrides the path; tests point it at a temp file)."""

from __future__ import annotations

import os
from pathlib import Path

import orjson

HISTORY_ENV = "OBSERVATORY_SQL_HISTORY"
HISTORY_LIMIT = 500


def history_path() -> Path:
    override = os.environ.get(HISTORY_ENV)
    if override:
        return Path(override)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "observatory" / "sql_history"


class SqlHistory:
    """Queries, oldest first, one JSON string per line (a query may span lines)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or history_path()
        self.entries: list[str] = self._read()

    def _read(self) -> list[str]:
        try:
            lines = self.path.read_bytes().splitlines()
        except OSError:
            return []
        out: list[str] = []
        for raw in lines:
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue  # a damaged line costs that entry, not the history
            if isinstance(value, str) and value.strip():
                out.append(value)
        return out[-HISTORY_LIMIT:]

    def add(self, sql: str) -> None:
        """Remember `sql` (moved to the end if it was there); write the file. A history
        that cannot be written is not worth failing a query over, so errors are ignored."""
        sql = sql.strip()
        if not sql:
            return
        self.entries = [e for e in self.entries if e != sql][-(HISTORY_LIMIT - 1) :] + [sql]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in self.entries))
            tmp.replace(self.path)
        except OSError:
            pass
