"""Read-only commands on the database: `query` (ad-hoc SQL), `incidents` and `export`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from observatory.cli.common import DB_HELP, attached, fail, handle_errors, readonly_db

if TYPE_CHECKING:
    from observatory.config import Config
    from observatory.incidents.export import Format


@click.command()
@click.argument("sql")
@click.option("--db", type=click.Path(), help=DB_HELP)
@click.option("--config", "config_path", type=click.Path(), hidden=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "parquet"]),
    default="table",
    show_default=True,
)
@click.option("--output", type=click.Path(), help="Write the result to this file.")
@handle_errors
def query(sql: str, db: str | None, config_path: str | None, fmt: str, output: str | None) -> None:
    """Run ad-hoc SQL on the captured data (read-only).

    Tables: events, rejects, probes, incidents, incident_timeline, ingest_offsets.

    \b
    Examples:
      observatory query "select destination, count(*) from events group by 1"
      observatory query "select * from events where outcome = 'rate_limited'" \\
          --format parquet --output throttled.parquet
    """
    from observatory.store.query import QueryError, run_query

    db_path = db or _default_db(config_path)
    if fmt == "parquet" and not output:
        fail("--format parquet needs --output FILE", 2)
    with attached(db_path) as owner:
        if owner is not None:
            _emit_bytes(owner.query(sql, fmt), output)
            return
    try:
        run_query(db_path, sql, fmt, output, sys.stdout)
    except QueryError as exc:
        fail(str(exc), exc.exit_code)


def _emit_bytes(body: bytes, output: str | None) -> None:
    if output:
        with open(output, "wb") as fh:
            fh.write(body)
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(body)
        sys.stdout.flush()


def _default_db(config_path: str | None) -> str:
    from observatory.config import load_config

    path = Path(config_path or "config.toml")
    if config_path is None and not path.exists():
        return "observatory.duckdb"
    return str(load_config(path).db_path)


@click.command()
@click.option("--db", type=click.Path(), help=DB_HELP)
@click.option("--config", "config_path", type=click.Path(), hidden=True)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@handle_errors
def incidents(db: str | None, config_path: str | None, fmt: str) -> None:
    """List incidents, newest first.

    \b
    Example:
      observatory incidents --format json
    """
    import duckdb

    from observatory.incidents.export import incidents_output
    from observatory.incidents.store import list_incidents

    db_path = db or _default_db(config_path)
    with attached(db_path) as owner:
        if owner is not None:
            sys.stdout.write(owner.incidents(fmt))
            return
    with readonly_db(db_path) as con:
        try:
            found = list_incidents(con)
        except duckdb.CatalogException:
            fail(f"{db_path} has no incidents table (not an observatory database?)")
    sys.stdout.write(incidents_output(found, fmt))


@click.command()
@click.argument("incident_id", metavar="ID")
@click.option("--db", type=click.Path(), help=DB_HELP)
@click.option("--config", "config_path", type=click.Path(), hidden=True)
@click.option("--format", "fmt", type=click.Choice(["md", "json", "csv", "html"]), required=True)
@click.option("--output", type=click.Path(), help="Write to this file (default stdout).")
@handle_errors
def export(
    incident_id: str, db: str | None, config_path: str | None, fmt: Format, output: str | None
) -> None:
    """Export an incident timeline for the postmortem.

    ID is an incident id or any unique prefix of one. md is a postmortem (summary, impact,
    detection with time to detect, timeline, evidence, action items); html is the same as
    one self-contained page with a chart; csv is the timeline; json is everything. When
    the config gives the incident's destination an owner, runbook, fallback or retry
    window, md, html and json carry them as its response plan.

    \b
    Example:
      observatory export 3f2a --format md --output incident.md
    """
    config = _config_if_any(config_path)
    db_path = db or (config.db_path if config is not None else "observatory.duckdb")
    with attached(db_path) as owner:
        text = owner.export(incident_id, fmt) if owner is not None else None
    if text is None:
        text = _export_direct(db_path, incident_id, fmt, config)
    if output:
        with open(output, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)


def _config_if_any(config_path: str | None) -> Config | None:
    """The config given, or ./config.toml when it exists (None: neither)."""
    from observatory.config import load_config

    path = Path(config_path or "config.toml")
    if config_path is None and not path.exists():
        return None
    return load_config(path)


def _export_direct(db_path: str, incident_id: str, fmt: Format, config: Config | None) -> str:
    import duckdb

    from observatory.config import response_plan
    from observatory.incidents.export import export_incident
    from observatory.incidents.store import IncidentLookupError, load_incident

    with readonly_db(db_path) as con:
        try:
            incident = load_incident(con, incident_id)
            return export_incident(con, incident, fmt, response_plan(config, incident.destination))
        except IncidentLookupError as exc:
            fail(str(exc))
        except duckdb.CatalogException:
            fail(f"{db_path} has no incidents table (not an observatory database?)")
