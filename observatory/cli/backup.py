"""The backup command: `reconcile`, backup-vs-primary reconciliation of delivered events."""

from __future__ import annotations

import os
import sys

import click

from observatory.cli.common import CONFIG_HELP, DB_HELP, attached, fail, handle_errors, load


@click.command()
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.option("--db", type=click.Path(), help=DB_HELP)
@click.option("--destination", help="Only this destination (one of backup.destinations).")
@click.option("--since", help="Only backup events received since T: ISO time, or a duration (2h).")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option(
    "--output", type=click.Path(), help="Write the missing events, as received, to this file."
)
@handle_errors
def reconcile(
    config_path: str | None,
    db: str | None,
    destination: str | None,
    since: str | None,
    fmt: str,
    output: str | None,
) -> None:
    """Backup-vs-primary reconciliation: which conversions never arrived.

    Every event the [backup] webhook received is matched by message id to the deliveries of
    each of backup.destinations. Per destination: expected, delivered (each id once, late
    ones included), missing (not delivered and backup.window has passed), late (delivered
    more than backup.window after receipt), duplicates (ids delivered more than once),
    pending (not delivered, still inside the window); and for failing events the time left
    before the platform's retry window (backup.retry_window) ends. --output writes the
    missing events as they were received, one JSON per line, ready to re-send.

    \b
    Example:
      observatory reconcile --destination tiktok_conversions --output missing.jsonl
      observatory reconcile --since 2h --format json
      -> {"destination":"tiktok_conversions","expected":1200,"delivered":1130,"missing":64,...}
    """
    import time

    from observatory.backup.journal import fold_journal, journal_path
    from observatory.backup.reconcile import parse_since, reconcile_output, write_missing
    from observatory.backup.reconcile import reconcile as summarize
    from observatory.store.db import Store

    config = load(config_path)
    backup = config.backup
    if backup is None:
        fail("backup: not configured (add a [backup] table to the config)", 2)
    if destination is not None and destination not in backup.destinations:
        fail(
            f"--destination: {destination!r} is not one of backup.destinations "
            f"({', '.join(backup.destinations)})",
            2,
        )
    now = time.time()
    since_epoch = None
    if since is not None:
        try:
            since_epoch = parse_since(since, now)
        except ValueError as exc:
            fail(f"--since: {exc}", 2)
    db_path = db or config.db_path
    with attached(db_path) as owner:
        if owner is not None:
            text = owner.reconcile(fmt, destination, since_epoch, now)
            if output:
                body, count = owner.missing(destination, since_epoch, now)
                with open(output, "wb") as fh:
                    fh.write(body)
            sys.stdout.write(text)
            if output:
                click.echo(f"reconcile: {count} missing events written to {output}", err=True)
            return
    if not db_path.startswith(":memory:") and not os.path.exists(db_path):
        fail(f"no database at {db_path} (run `observatory watch` or `ingest` first)")
    store = Store.for_config(config, db_path, only=set())
    try:
        # Events acknowledged by a receiver that stopped before folding them (a crash).
        fold_journal(store.con, journal_path(db_path, config.base_dir))
        rows = summarize(store.con, backup, destination, since_epoch, now)
        written = (
            write_missing(store.con, backup, output, destination, since_epoch, now)
            if output
            else None
        )
    finally:
        store.close()
    sys.stdout.write(reconcile_output(rows, fmt))
    if output:
        click.echo(f"reconcile: {written} missing events written to {output}", err=True)
