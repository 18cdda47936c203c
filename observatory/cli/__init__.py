"""The `observatory` command line (DESIGN's contract: names, options and exit codes are fixed).

Exit codes: 0 ok, 2 bad usage or config (the message names the key), 1 runtime failure.
JSON results go to stdout; progress and human messages go to stderr. Heavy imports happen
inside the commands so `--help` and small commands start fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import click

P = ParamSpec("P")
R = TypeVar("R")

if TYPE_CHECKING:
    from observatory.incidents.export import Format

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


def load(config_path: str | None, db: str | None = None) -> Any:
    """The config (required to exist when given explicitly or when it is ./config.toml)."""
    from observatory.config import load_config

    return load_config(config_path or "config.toml")


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="observatory")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Observatory: watch conversion-event delivery to ad platforms, flag interruptions in
    seconds, and explain them.

    With no command: the TUI on ./config.toml, or the demo when there is no config.

    \b
    Examples:
      observatory demo
      observatory ingest sample_logs/forwarder.jsonl
      observatory query "select destination, count(*) from events group by 1"
    """
    if ctx.invoked_subcommand is None:
        if Path("config.toml").exists():
            _run_tui("config.toml")
            return
        ctx.invoke(demo)


def not_built(what: str, issue: int) -> NoReturn:
    fail(f"{what} is not built yet (issue #{issue})", 1)


@main.command()
def demo() -> None:
    """The TUI on the built-in simulator (a scripted TikTok rate-limit outage).

    \b
    Example:
      observatory demo
    """
    import tempfile

    from observatory.ui.demo import prepare_demo

    with tempfile.TemporaryDirectory(prefix="observatory-demo-") as tmp:
        click.echo("demo: starting…", err=True)
        setup = prepare_demo(Path(tmp))
        try:
            _run_tui(str(setup.config), replay=setup.replay, note=setup.note)
        finally:
            setup.stop()


@handle_errors
def _run_tui(config_path: str, replay: bool = False, note: str = "") -> None:
    """The TUI on a config (live, or replaying its files as history)."""
    from observatory.ui.app import make_app

    make_app(load(config_path), replay=replay, note=note).run()


@main.command()
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


@main.command()
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
    from observatory.runtime import Runtime
    from observatory.store.db import Store
    from observatory.util.progress import ProgressLine

    speed_value = _parse_speed(speed)
    config = load(config_path)
    plan = plan_files(config, paths)
    store = Store.for_config(config, db)
    runtime = Runtime(config, store=store, on_change=_emit_change, on_drift=_emit_drift)
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


@main.command()
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

    from observatory.alerts import AlertDispatcher, build_sinks
    from observatory.runtime import Runtime

    config = load(config_path)
    dispatcher = AlertDispatcher(build_sinks(config.alerts))
    stopping: list[int] = []

    def stop(signum: int, frame: Any) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    runtime = Runtime(
        config, db, on_change=_emit_change, on_drift=_emit_drift, dispatcher=dispatcher
    )
    dispatcher.start()
    try:
        runtime.start_live()
        click.echo("watch: live", err=True)
        runtime.run_live(duration, stop=lambda: bool(stopping))
    finally:
        dispatcher.close()
        runtime.close()
    click.echo(f"watch: {runtime.opened_live} incidents opened", err=True)
    if fail_on_incident and runtime.opened_live:
        sys.exit(3)


@main.command()
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


@main.command()
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


@main.command()
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


@main.command()
@click.option("--scenario", default="tiktok-rate-limit", show_default=True)
@click.option("--logs", type=click.Path(), help="Directory for the forwarder's delivery logs.")
@click.option("--port", type=int, default=0, help="Port on 127.0.0.1 (0: any free port).")
@click.option("--duration", type=float, help="Stop after S seconds.")
def simulate(scenario: str, logs: str | None, port: int, duration: float | None) -> None:
    """Run the simulator alone: fake platform APIs on loopback plus a forwarder writing logs.

    Scenarios: tiktok-rate-limit (default), meta-token-expired, silent-forwarder, steady, or a
    path to a scenario TOML file. `--scenario samples` instead regenerates the deterministic
    sample logs into --logs (default sample_logs) and exits.

    \b
    Examples:
      observatory simulate --scenario tiktok-rate-limit --logs /tmp/sim --duration 300
      observatory simulate --scenario samples --logs sample_logs
    """
    import json
    import tempfile
    import time

    from observatory.sim.forwarder import Simulation
    from observatory.sim.scenario import ScenarioError, load_scenario

    if scenario == "samples":
        # Not a live run: regenerate the small, deterministic sample logs (same seed, same
        # bytes) that the shipped config.toml reads.
        from observatory.sim.samples import write_samples

        for path in write_samples(Path(logs or "sample_logs")):
            click.echo(str(path))
        return
    try:
        scen = load_scenario(scenario)
    except ScenarioError as exc:
        fail(str(exc), 2)
    if duration is not None and duration <= 0:
        fail("--duration must be > 0", 2)
    logs_dir = Path(logs) if logs else Path(tempfile.mkdtemp(prefix="observatory-sim-"))
    sim = Simulation(scen, logs_dir, port=port)
    try:
        sim.start()
    except OSError as exc:
        fail(f"cannot start the simulator on port {port}: {exc.strerror or exc}", 1)
    head = {
        "type": "simulator",
        "url": sim.server.url,
        "logs": str(logs_dir.resolve()),
        "config": str(sim.config_path.resolve()),
        "scenario": scen.name,
        "duration": duration if duration is not None else scen.duration,
    }
    click.echo(json.dumps(head))
    sys.stdout.flush()
    click.echo(
        f"simulator on {sim.server.url}; logs in {logs_dir}; "
        f"watch with: observatory watch --config {sim.config_path}",
        err=True,
    )
    started = time.monotonic()
    last_lines = [0]

    def progress(s: Simulation) -> None:
        fwd = s.forwarder
        if fwd is None:
            return
        parts = []
        for dest, c in fwd.counts.items():
            parts.append(
                f"{dest} ok={c['delivered']} 429={c['rate_limited']} "
                f"rej={c['rejected']} fail={c['failed']} retry={c['retrying']}"
            )
        rate = fwd.lines - last_lines[0]
        last_lines[0] = fwd.lines
        click.echo(
            f"[{time.monotonic() - started:5.0f}s] {rate} lines/s | " + " | ".join(parts), err=True
        )

    try:
        sim.run(duration, on_second=progress)
    except KeyboardInterrupt:
        click.echo("interrupted: stopping the simulator", err=True)
    finally:
        sim.stop()


@main.command()
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

    import orjson

    from observatory.backup.journal import fold_journal, journal_path
    from observatory.backup.reconcile import format_table, parse_since, write_missing
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
    if fmt == "json":
        for row in rows:
            sys.stdout.write(orjson.dumps(row).decode() + "\n")
    else:
        sys.stdout.write(format_table(rows) + "\n")
    if output:
        click.echo(f"reconcile: {written} missing events written to {output}", err=True)
