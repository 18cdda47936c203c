"""`observatory drill`: a fire drill through the real detection and alert path."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import click

from observatory.cli.common import CONFIG_HELP, DB_HELP, attached, fail, handle_errors, load

if TYPE_CHECKING:
    from observatory.config import Config
    from observatory.drills.run import DrillReport

KIND_CHOICES = ("rate_limit", "silence", "errors")
POLL = 0.5
FORMAT_CHOICES = click.Choice(["table", "json", "md"])


@click.command()
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.option("--db", type=click.Path(), help=DB_HELP)
@click.option("--destination", help="The destination to drill (default: the first configured).")
@click.option("--kind", type=click.Choice(KIND_CHOICES), default="rate_limit", show_default=True)
@click.option("--format", "fmt", type=FORMAT_CHOICES, default="table", show_default=True)
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Give up after S s.")
@handle_errors
def drill(
    config_path: str | None,
    db: str | None,
    destination: str | None,
    kind: str,
    fmt: str,
    timeout: float,
) -> None:
    """Fire drill: a marked synthetic fault on a drill copy of a destination (drill:<name>).

    It measures the time to detect and the time until each alert sink confirms the open
    and the resolve (a webhook's 2xx, PagerDuty accepted, a command's exit 0), stores the
    report in `drills`, prints it, and exits 0 when every step met its target, 1 otherwise
    (for a scheduled CI job). Runs through the running owner (`watch`, or an owning TUI),
    else on a runtime of its own. Drill traffic never reaches the real panes, baselines,
    incidents or reconciliation.

    \b
    Examples:
      observatory drill
      observatory drill --destination tiktok_conversions --kind silence --format md
    """
    from observatory.drills.report import render
    from observatory.drills.run import DrillReport

    config = load(config_path)
    report: DrillReport | None = None
    with attached(db or config.db_path) as owner:
        if owner is not None:
            click.echo(f"drill: through the owner at {owner.url}", err=True)
            answer = owner.start_drill(destination, kind)
            deadline = time.monotonic() + timeout
            while answer.state == "running" and time.monotonic() < deadline:
                time.sleep(POLL)
                answer = owner.drill(answer.id)
            if answer.report is not None:
                report = DrillReport.from_dict(answer.report)
        else:
            report = _own_runtime(config, db, destination, kind, timeout)
    if report is None:
        fail(f"the drill did not finish within {timeout:g} s", 1)
    click.echo(render(report, fmt), nl=False)
    sys.exit(0 if report.passed else 1)


def _own_runtime(
    config: Config, db: str | None, destination: str | None, kind: str, timeout: float
) -> DrillReport | None:
    """The drill on a runtime of its own (no owner runs): its report, or None on timeout."""
    from observatory.owner import build_runtime

    runtime = build_runtime(config, db)
    try:
        runtime.start_live()
        click.echo("drill: on a runtime of its own (no owner runs)", err=True)
        drill_id = runtime.start_drill(destination, kind)
        deadline = time.monotonic() + timeout
        runtime.run_live(
            stop=lambda: drill_id in runtime.drill_reports or time.monotonic() > deadline
        )
        return runtime.drill_reports.get(drill_id)
    except ValueError as exc:
        fail(str(exc), 1)
    finally:
        runtime.close()
