"""What every command shares: option help texts, `fail`, `handle_errors` and `load`.

`handle_errors` turns config errors into exit 2 with the key, and expected runtime failures
(OS errors, DuckDB errors such as a locked database) into exit 1, each on one line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import click

if TYPE_CHECKING:
    import duckdb

    from observatory.server.client import OwnerClient

P = ParamSpec("P")
R = TypeVar("R")

CONFIG_HELP = "Config file (default ./config.toml)."
DB_HELP = "DuckDB file (default: the config's storage.db)."


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one line to stderr and exit with `code`."""
    click.echo(f"observatory: {message}", err=True)
    sys.exit(code)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Config errors exit 2 with the key; other expected failures exit 1, on one line."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from observatory.config import ConfigError

        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            fail(str(exc), 2)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except BrokenPipeError:
            # The reader went away (`observatory query ... | head`): stop quietly, like other
            # Unix tools, instead of reporting the closed pipe (and again at interpreter exit).
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(1)
        except OSError as exc:
            fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), 1)
        except Exception as exc:
            # DuckDB failures (a file that is not a database, one locked by another process,
            # a full disk) are runtime failures: one line, exit 1, no traceback.
            import duckdb

            if not isinstance(exc, duckdb.Error):
                raise
            from observatory.store.query import first_line

            fail(_locked(str(exc)) or first_line(exc), 1)

    return wrapper


def _locked(error: str) -> str | None:
    """DuckDB's lock conflict, said for an observatory user (None for other errors)."""
    import re

    m = re.search(r'lock on file "([^"]+)": Conflicting lock is held in .*?\(PID (\d+)\)', error)
    if m is None:
        return None
    return (
        f"the database {m[1]} is in use by process {m[2]} (a running `observatory watch` or "
        "TUI?), and DuckDB lets one process open it at a time: stop that process first, or "
        "work in the TUI (s: SQL console; m on a destination: its missing backup events)"
    )


@contextmanager
def attached(db_path: str) -> Iterator[OwnerClient | None]:
    """The running owner of ``db_path`` (None: nobody holds it); a refusal from the owner
    ends the command as the direct path would (same message, same exit code)."""
    from observatory.server.client import OwnerError, find_owner

    owner = find_owner(db_path)
    try:
        yield owner
    except OwnerError as exc:
        fail(str(exc), exc.exit_code)
    finally:
        if owner is not None:
            owner.close()


@contextmanager
def readonly_db(db_path: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """The database opened read-only for one command (missing or unopenable: the command
    ends with the reason), closed afterwards."""
    from observatory.store.query import QueryError, open_readonly

    try:
        con = open_readonly(db_path)
    except QueryError as exc:
        fail(str(exc), exc.exit_code)
    try:
        yield con
    finally:
        con.close()


def load(config_path: str | None, db: str | None = None) -> Any:
    """The config (required to exist when given explicitly or when it is ./config.toml)."""
    from observatory.config import load_config

    return load_config(config_path or "config.toml")


def not_built(what: str, issue: int) -> NoReturn:
    fail(f"{what} is not built yet (issue #{issue})", 1)
