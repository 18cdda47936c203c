"""`observatory deps`: the dependency document (chains, state now, response plans)."""

from __future__ import annotations

import sys

import click

from observatory.cli.common import CONFIG_HELP, DB_HELP, attached, handle_errors, load, readonly_db


@click.command()
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.option("--db", type=click.Path(), help=DB_HELP)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "md", "json"]),
    default="table",
    show_default=True,
)
@handle_errors
def deps(config_path: str | None, db: str | None, fmt: str) -> None:
    """The dependency document: for each configured destination, its chain (via ->
    destination), whether it flows (traffic in the last 15 min), each node's state now
    (a dependency: its newest probes; the destination: its open incident), its last
    incident and drill, and its owner, runbook, fallback and retry window.

    The chain and the response plan come from the config ([[destinations]] via, owner,
    runbook, fallback, retry_window; [[dependencies]]); the state from the database, read
    through the running owner when there is one. md is a page to paste into a wiki.

    \b
    Example:
      observatory deps --format md > dependencies.md
    """
    import time

    from observatory.dependencies import build_document, render

    config = load(config_path)
    db_path = db or config.db_path
    now = time.time()
    with attached(db_path) as owner:
        if owner is not None:
            from observatory.server.remote_cursor import RemoteCursor

            with RemoteCursor(owner) as cur:
                doc = build_document(config, cur, now)
            sys.stdout.write(render(doc, fmt))
            return
    with readonly_db(db_path) as con:
        doc = build_document(config, con, now)
    sys.stdout.write(render(doc, fmt))
