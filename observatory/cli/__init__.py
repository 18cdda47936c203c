"""The `observatory` command line (DESIGN's contract: names, options and exit codes are fixed).

Exit codes: 0 ok, 2 bad usage or config (the message names the key), 1 runtime failure.
JSON results go to stdout; progress and human messages go to stderr. Heavy imports happen
inside the commands so `--help` and small commands start fast.

`main` (the command group) is here; the commands live in `logs` (ingest, replay, watch),
`database` (query, incidents, export), `backup` (reconcile), `deps` (the dependency
document), `simulator` (demo, simulate) and `tui` (web, and the TUI attached to an owner),
and the helpers they share in `common`.
"""

from __future__ import annotations

from pathlib import Path

import click

from observatory.cli.backup import reconcile
from observatory.cli.common import CONFIG_HELP, DB_HELP, fail
from observatory.cli.database import export, incidents, query
from observatory.cli.deps import deps
from observatory.cli.drill import drill
from observatory.cli.logs import ingest, replay, watch
from observatory.cli.simulator import _run_tui, demo, simulate
from observatory.cli.tui import owner_of_config, run_attached, web

__all__ = ["main"]


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.option("--db", type=click.Path(), help=DB_HELP)
@click.option(
    "--attach",
    "attach_url",
    metavar="URL",
    help="Attach the TUI to the owner's API at URL (default: by itself, when an owner of the "
    "config's database runs).",
)
@click.option(
    "--token",
    help="The owner's API token (default: $OBSERVATORY_TOKEN, else the token file beside the "
    "database). Prefer the variable: a command line is visible to other users.",
)
@click.option(
    "--replay",
    "replay_history",
    is_flag=True,
    help="Open the TUI replaying the stored history through the detectors in event time, "
    "as `observatory replay` does (the R key); incidents found are listed as found in history.",
)
@click.version_option(package_name="observatory")
@click.pass_context
def main(
    ctx: click.Context,
    config_path: str | None,
    db: str | None,
    attach_url: str | None,
    token: str | None,
    replay_history: bool,
) -> None:
    """Observatory: watch conversion-event delivery to ad platforms, flag interruptions in
    seconds, and explain them.

    With no command: the TUI on ./config.toml (attached to the running owner of its database,
    if one runs), or the demo when there is no config. Logs with nothing recent are shown as
    history; R (or --replay) replays them through the detectors.

    \b
    Examples:
      observatory demo
      observatory ingest sample_logs/forwarder.jsonl
      observatory query "select destination, count(*) from events group by 1"
      observatory --replay
      observatory --attach http://127.0.0.1:8787
    """
    if ctx.invoked_subcommand is not None:
        if config_path or db or attach_url or token or replay_history:
            fail(
                "--config, --db, --attach, --token and --replay before a command are the "
                "TUI's; give the command's own options after its name",
                2,
            )
        return
    if replay_history and attach_url:
        fail("--replay: an attached TUI cannot replay; press R in the owner's TUI", 2)
    if attach_url:
        run_attached(attach_url, token, config_path, db)
        return
    path = config_path or "config.toml"
    if config_path is None and not Path(path).exists():
        if replay_history:
            fail("--replay: no ./config.toml here to read the history of (--config F)", 2)
        ctx.invoke(demo)
        return
    if owner_of_config(path, db) is not None:
        if replay_history:
            fail(
                "--replay: another process owns the database; press R in its TUI, or "
                "stop it and run `observatory --replay` again",
                1,
            )
        run_attached(None, token, path, db)
        return
    _run_tui(path, db=db, replay_history=replay_history)


main.add_command(demo)
main.add_command(ingest)
main.add_command(replay)
main.add_command(watch)
main.add_command(query)
main.add_command(incidents)
main.add_command(export)
main.add_command(simulate)
main.add_command(reconcile)
main.add_command(deps)
main.add_command(web)
main.add_command(drill)
