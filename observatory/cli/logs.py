"""Commands that read the delivery logs: `ingest` (once), `replay` (as history), `watch` (live).

`replay` and `watch` print each incident change (and rate-limit drift) as one JSON line.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from observatory.cli.common import CONFIG_HELP, DB_HELP, fail, handle_errors, load


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.option("--db", type=click.Path(), help=DB_HELP)
@handle_errors
def ingest(paths: tuple[str, ...], config_path: str | None, db: str | None) -> None:
    """Backfill log files once (from where the last run stopped) and print a JSON summary.

    Each PATH is read with the source whose path glob matches it (or the only source);
    with no PATH, every source's glob is read.

    \b
    Example:
      observatory ingest sample_logs/forwarder.jsonl --db events.duckdb
      -> {"lines": 11712, "rows": 11710, "rejected": 2, "seconds": 0.4, "rows_per_s": ...}
    """
    import orjson

    from observatory.ingest.backfill import ingest_files, plan_files
    from observatory.store.db import Store
    from observatory.util.progress import ProgressLine

    config = load(config_path)
    plan = plan_files(config, paths)
    # Only the sources that will be read need their parser compiled (faster start-up);
    # with no PATH, every source is checked.
    only = {src.name for _, src in plan} if paths else None
    store = Store.for_config(config, db, only=only)
    try:
        with ProgressLine("ingest") as progress:
            result = ingest_files(store, plan, progress.update)
        store.prune(config.storage.retention)
    finally:
        store.close()
    for path, waiting in result.partial:
        click.echo(
            f"observatory: {path} ends in a partial line ({waiting} bytes without a newline);"
            " it is read once its newline arrives",
            err=True,
        )
    click.echo(orjson.dumps(result.summary()).decode())


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.option("--db", type=click.Path(), help=DB_HELP)
@click.option(
    "--speed", default="max", show_default=True, help="Replay speed: N times real time, or max."
)
@handle_errors
def replay(paths: tuple[str, ...], config_path: str | None, db: str | None, speed: str) -> None:
    """Run detection over history in event time; one JSON line per incident change.

    PATHs are read first (as `ingest` does, from where the last run stopped); then every
    stored event is replayed through the detectors in event time. Incidents are saved, so
    `observatory incidents` and `observatory export` see them; replaying again gives the
    same incidents (same ids).

    \b
    Example:
      observatory replay sample_logs/forwarder.jsonl --speed max
      -> {"type":"incident","state":"open","id":"3f2a9c1e","destination":"tiktok_conversions",...}
    """
    from observatory.ingest.backfill import ingest_files, plan_files
    from observatory.owner import build_runtime
    from observatory.store.db import Store
    from observatory.util.progress import ProgressLine

    speed_value = _parse_speed(speed)
    config = load(config_path)
    plan = plan_files(config, paths)
    store = Store.for_config(config, db)
    # History alerts nothing: its incidents are historical.
    runtime = build_runtime(
        config, store=store, on_change=_emit_change, on_drift=_emit_drift, alerts=False
    )
    try:
        with ProgressLine("replay: reading") as progress:
            ingest_files(store, plan, progress.update)
        runtime.replay_history(speed=speed_value)
    finally:
        runtime.close()
    click.echo(
        f"replay: {runtime.incident_changes} incident changes, "
        f"{len(runtime.engine.incidents())} still open",
        err=True,
    )


def _parse_speed(speed: str) -> float | None:
    if speed == "max":
        return None
    try:
        value = float(speed)
    except ValueError:
        value = -1.0
    if not value > 0:
        fail(f"--speed: {speed!r} is not a positive number or 'max'", 2)
    return value


def _emit_drift(event: Any) -> None:
    """A rate-limit ceiling change (`{"type":"rate_limit_drift",...}`) as one JSON line."""
    import orjson

    sys.stdout.write(orjson.dumps(event.json_line()).decode() + "\n")
    sys.stdout.flush()


def _emit_change(change: Any) -> None:
    """One incident JSON line on stdout, flushed at once (other tools read it live)."""
    import orjson

    sys.stdout.write(orjson.dumps(change.incident.json_line(change.kind)).decode() + "\n")
    sys.stdout.flush()


@click.command()
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.option("--db", type=click.Path(), help=DB_HELP)
@click.option("--duration", type=float, help="Stop after S seconds.")
@click.option("--fail-on-incident", is_flag=True, help="Exit 3 if any incident opened.")
@handle_errors
def watch(
    config_path: str | None, db: str | None, duration: float | None, fail_on_incident: bool
) -> None:
    """Headless live mode: tail, probe, detect, alert; JSON lines on stdout.

    The backlog is read first and recent history warms the detectors (faults found there
    are historical: saved, printed, not alerted); then files are followed as they grow.
    Stops after --duration seconds, or on Ctrl-C / SIGTERM.

    \b
    Example:
      observatory watch --duration 600 --fail-on-incident
      -> {"type":"incident","state":"open",...,"detector":"rate_limit","severity":"critical",...}
    """
    import signal

    from observatory.owner import build_runtime

    config = load(config_path)
    stopping: list[int] = []

    def stop(signum: int, frame: Any) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # The config's alerts are attached; closing the runtime delivers what is queued first.
    runtime = build_runtime(config, db, on_change=_emit_change, on_drift=_emit_drift)
    try:
        runtime.start_live()
        click.echo("watch: live", err=True)
        runtime.run_live(duration, stop=lambda: bool(stopping))
    finally:
        runtime.close()
    click.echo(f"watch: {runtime.opened_live} incidents opened", err=True)
    if fail_on_incident and runtime.opened_live:
        sys.exit(3)
