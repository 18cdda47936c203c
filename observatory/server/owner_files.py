"""The files beside the database that let viewers find its owner.

- ``<db>.token``: the API's bearer token, generated at the owner's first start (mode 0600);
  kept across restarts so attached viewers reconnect with it.
- ``<db>.owner.json``: where the running owner listens (``url``), its ``pid`` and start time
  (mode 0600; no secret in it). Written once the API listens, removed when the owner stops;
  a stale one (its process gone) is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path


def token_path(db_path: str) -> Path:
    return Path(db_path + ".token")


def endpoint_path(db_path: str) -> Path:
    return Path(db_path + ".owner.json")


def _write_private(path: Path, text: str, exclusive: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def load_or_create_token(db_path: str) -> str:
    """The owner's token: read from ``<db>.token``, created (0600) when missing."""
    path = token_path(db_path)
    for _ in range(2):
        try:
            token = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            try:
                _write_private(path, secrets.token_urlsafe(32) + "\n", exclusive=True)
            except FileExistsError:
                pass  # another owner wrote it first: read theirs
            continue
        if (path.stat().st_mode & 0o077) != 0:
            os.chmod(path, 0o600)  # readable by others: tighten it
        if token:
            return token
        path.unlink()
    raise OSError(f"cannot create the API token file {path}")


def read_token(db_path: str) -> str | None:
    """The token a viewer on this machine uses to attach (None when there is none)."""
    try:
        return token_path(db_path).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


@dataclass(frozen=True)
class Endpoint:
    url: str
    pid: int
    started_at: float


def write_endpoint(db_path: str, url: str) -> None:
    body = json.dumps({"url": url, "pid": os.getpid(), "started_at": time.time()})
    _write_private(endpoint_path(db_path), body + "\n", exclusive=False)


def remove_endpoint(db_path: str) -> None:
    """Remove ``<db>.owner.json`` if it is this process's."""
    found = read_endpoint(db_path, check_alive=False)
    if found is not None and found.pid == os.getpid():
        with contextlib.suppress(OSError):
            endpoint_path(db_path).unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_endpoint(db_path: str, check_alive: bool = True) -> Endpoint | None:
    """The running owner of ``db_path`` (None: none, or its process is gone)."""
    try:
        data = json.loads(endpoint_path(db_path).read_text(encoding="utf-8"))
        found = Endpoint(str(data["url"]), int(data["pid"]), float(data["started_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if check_alive and not _alive(found.pid):
        return None
    return found
