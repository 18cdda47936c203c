"""Commands on the built-in simulator: `demo` (the TUI on a scripted outage) and `simulate`.

`_run_tui` (the TUI on a config) is here too: `demo` and `main` with no command both use it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from observatory.cli.common import fail, handle_errors, load

F = TypeVar("F", bound=Callable[..., Any])


def _platform_option(help: str) -> Callable[[F], F]:
    """``--platform logs|rudderstack|segment``: what the simulation is watched through."""
    from observatory.sim.platforms import WATCHED_VIA

    return click.option(
        "--platform", type=click.Choice(WATCHED_VIA), default="logs", show_default=True, help=help
    )


@click.command()
@_platform_option(
    "Watch the outage through the delivery logs, rudder-server's statsd metrics or "
    "Segment's Delivery Overview API (minutes, about 2 minutes behind)."
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default="observatory-demo",
    show_default=True,
    help="Where the demo keeps its logs, config and database (an earlier demo's are "
    "replaced), so `observatory incidents --db` can read them afterwards.",
)
def demo(platform: str, directory: str) -> None:
    """The TUI on the built-in simulator (a scripted TikTok rate-limit outage).

    \b
    Examples:
      observatory demo
      observatory demo --platform rudderstack
      observatory demo --dir /tmp/demo
    """
    from observatory.ui.demo import DemoDirectoryError, demo_directory, prepare_demo

    try:
        root = demo_directory(Path(directory))
    except (DemoDirectoryError, OSError) as exc:
        fail(str(exc), 2)
    click.echo(f"demo: starting… (data in {directory})", err=True)
    setup = prepare_demo(root, platform=platform)
    try:
        _run_tui(str(setup.config), replay=setup.replay, note=setup.note)
    finally:
        setup.stop()
        click.echo(setup.kept(), err=True)


@handle_errors
def _run_tui(
    config_path: str,
    replay: bool = False,
    note: str = "",
    db: str | None = None,
    replay_history: bool = False,
) -> None:
    """The TUI on a config (live, or replaying its files as history); ``replay_history``:
    live, with the stored history replayed at once (`observatory --replay`)."""
    from observatory.ui.app import make_app

    make_app(load(config_path), db, replay=replay, note=note, replay_history=replay_history).run()


@click.command()
@click.option("--scenario", default="tiktok-rate-limit", show_default=True)
@click.option("--logs", type=click.Path(), help="Directory for the forwarder's delivery logs.")
@click.option("--port", type=int, default=0, help="Port on 127.0.0.1 (0: any free port).")
@click.option("--duration", type=float, help="Stop after S seconds.")
@click.option(
    "--statsd",
    metavar="HOST:PORT",
    help="Also send rudder-server's statsd metrics of what the platforms did there (UDP).",
)
@click.option("--dogstatsd", is_flag=True, help="With --statsd: DogStatsD tags, not InfluxDB's.")
@_platform_option(
    "What the written config.toml watches: the delivery logs, rudder-server's statsd "
    "metrics (a free port unless --statsd) or Segment's Delivery Overview API."
)
def simulate(
    scenario: str,
    logs: str | None,
    port: int,
    duration: float | None,
    statsd: str | None,
    dogstatsd: bool,
    platform: str,
) -> None:
    """Run the simulator alone: fake platform APIs on loopback plus a forwarder writing logs.

    Scenarios: tiktok-rate-limit (default), meta-token-expired, silent-forwarder, steady, or a
    path to a scenario TOML file. `--scenario samples` instead regenerates the deterministic
    sample logs into --logs (default sample_logs) and exits.

    \b
    Examples:
      observatory simulate --scenario tiktok-rate-limit --logs /tmp/sim --duration 300
      observatory simulate --statsd 127.0.0.1:8125
      observatory simulate --scenario samples --logs sample_logs
    """
    import json
    import tempfile
    import time

    from observatory.sim.forwarder import Simulation
    from observatory.sim.scenario import ScenarioError, load_scenario
    from observatory.sim.statsd_emitter import parse_address

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
    target = None
    if statsd is not None:
        try:
            target = parse_address(statsd)
        except ValueError as exc:
            fail(f"--statsd: {exc}", 2)
    elif dogstatsd:
        fail("--dogstatsd needs --statsd HOST:PORT", 2)
    elif platform == "rudderstack":
        target = ("127.0.0.1", _free_udp_port())
    logs_dir = Path(logs) if logs else Path(tempfile.mkdtemp(prefix="observatory-sim-"))
    sim = Simulation(
        scen, logs_dir, port=port, statsd=target, dogstatsd=dogstatsd, platform=platform
    )
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
        "statsd": statsd,
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


def _free_udp_port() -> int:
    """A UDP port on 127.0.0.1 free right now (for the statsd feed the config will name)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
