"""The `observatory` command line (DESIGN's contract: names, options and exit codes are fixed).

Exit codes: 0 ok, 2 bad usage or config (the message names the key), 1 runtime failure.
JSON results go to stdout; progress and human messages go to stderr. Heavy imports happen
inside the commands so `--help` and small commands start fast.

`main` (the command group) is here; the commands live in `logs` (ingest, replay, watch),
`database` (query, incidents, export), `backup` (reconcile) and `simulator` (demo, simulate),
and the helpers they share in `common`.
"""

from __future__ import annotations

from pathlib import Path

import click

from observatory.cli.backup import reconcile
from observatory.cli.database import export, incidents, query
from observatory.cli.logs import ingest, replay, watch
from observatory.cli.simulator import _run_tui, demo, simulate

__all__ = ["main"]


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


main.add_command(demo)
main.add_command(ingest)
main.add_command(replay)
main.add_command(watch)
main.add_command(query)
main.add_command(incidents)
main.add_command(export)
main.add_command(simulate)
main.add_command(reconcile)
