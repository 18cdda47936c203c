"""The TUI as a viewer of a running owner: `observatory --attach URL` (or by itself, when an
owner of the config's database runs) and `observatory web` (the same TUI in a browser).

`web` serves with textual-serve, which starts one `observatory --attach URL --config F`
process per browser session: each is a viewer, so `web` refuses to start without an owner.
The token reaches those processes through their environment (OBSERVATORY_TOKEN), never their
command line or a URL.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from observatory.cli.common import CONFIG_HELP, fail, handle_errors, load

DEFAULT_WEB_PORT = 8000


@handle_errors
def run_attached(
    url: str | None, token: str | None, config_path: str | None, db: str | None
) -> None:
    """The TUI attached to the owner at ``url`` and/or of the config's database."""
    from observatory.ui.app import make_attached_app
    from observatory.ui.attached import OwnerTarget

    db_path = db
    config = load(config_path) if config_path is not None else None
    if db_path is None and config is not None:
        db_path = str(config.db_path)
    make_attached_app(OwnerTarget(url=url, db_path=db_path, token=token), config).run()


def running_owner(db_path: str) -> str | None:
    """The URL of the running owner of ``db_path`` that answers (None: nobody owns it)."""
    from observatory.server.client import find_owner

    owner = find_owner(db_path)
    if owner is None:
        return None
    owner.close()
    return owner.url


@handle_errors
def owner_of_config(config_path: str, db: str | None) -> str | None:
    """The URL of the running owner of the config's database (or of ``db``), if any."""
    return running_owner(db or str(load(config_path).db_path))


@click.command()
@click.option("--port", type=int, default=DEFAULT_WEB_PORT, show_default=True)
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.option("--db", type=click.Path(), help="DuckDB file (default: the config's storage.db).")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to serve on. Anyone who reaches it gets the TUI: keep it on loopback.",
)
@handle_errors
def web(port: int, config_path: str | None, db: str | None, host: str) -> None:
    """The TUI in a browser (textual-serve): each browser session is a TUI attached to the
    running owner of the config's database (`observatory watch`, or a TUI).

    \b
    Example:
      observatory watch --config config.toml &
      observatory web --port 8000
    """
    from observatory.config.server import is_loopback
    from observatory.server.client import TOKEN_ENV
    from observatory.server.owner_files import read_token

    if not 0 < port < 65536:
        fail("--port: a port number from 1 to 65535", 2)
    config_file = str(Path(config_path or "config.toml").resolve())
    db_path = db or str(load(config_file).db_path)
    url = running_owner(db_path)
    if url is None:
        fail(
            f"no owner of {db_path} is running: start `observatory watch --config "
            f"{config_file}` (or the TUI) first; web sessions attach to it",
            1,
        )
    token = os.environ.get(TOKEN_ENV) or read_token(db_path)
    if token:
        os.environ[TOKEN_ENV] = token  # inherited by each session's process
    command = shlex.join(
        [sys.executable, "-m", "observatory", "--attach", url, "--config", config_file]
        + (["--db", db_path] if db else [])
    )
    if not is_loopback(host):
        click.echo(
            f"observatory: serving the TUI on {host}, beyond this machine, without a login",
            err=True,
        )
    from observatory.ui.web import serve_in_browser

    click.echo(f"observatory: the TUI on http://{host}:{port}, attached to {url}", err=True)
    serve_in_browser(command, host, port)
