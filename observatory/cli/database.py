"""Read-only commands on the database: `query` (ad-hoc SQL), `incidents` and `export`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from observatory.cli.common import DB_HELP, fail, handle_errors

if TYPE_CHECKING:
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
    try:
        run_query(db_path, sql, fmt, output, sys.stdout)
    except QueryError as exc:
        fail(str(exc), exc.exit_code)


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
    import orjson

    from observatory.incidents.export import incident_list_line, incidents_table
    from observatory.incidents.store import list_incidents
    from observatory.store.query import QueryError, open_readonly

    db_path = db or _default_db(config_path)
    try:
        con = open_readonly(db_path)
    except QueryError as exc:
        fail(str(exc), exc.exit_code)
    try:
        found = list_incidents(con)
    except duckdb.CatalogException:
        fail(f"{db_path} has no incidents table (not an observatory database?)")
    finally:
        con.close()
    if fmt == "json":
        for inc in found:
            sys.stdout.write(orjson.dumps(incident_list_line(inc)).decode() + "\n")
    else:
        sys.stdout.write(incidents_table(found) + "\n")


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
    one self-contained page with a chart; csv is the timeline; json is everything.

    \b
    Example:
      observatory export 3f2a --format md --output incident.md
    """
    import duckdb

    from observatory.incidents.export import export_incident
    from observatory.incidents.store import IncidentLookupError, load_incident
    from observatory.store.query import QueryError, open_readonly

    db_path = db or _default_db(config_path)
    try:
        con = open_readonly(db_path)
    except QueryError as exc:
        fail(str(exc), exc.exit_code)
    try:
        text = export_incident(con, load_incident(con, incident_id), fmt)
    except IncidentLookupError as exc:
        fail(str(exc))
    except duckdb.CatalogException:
        fail(f"{db_path} has no incidents table (not an observatory database?)")
    finally:
        con.close()
    if output:
        with open(output, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
