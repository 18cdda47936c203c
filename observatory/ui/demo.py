"""`observatory demo`: the TUI on the built-in simulator, or on replayed sample logs.

The simulator runs as `observatory simulate --logs DIR` (a subprocess; it writes
`DIR/config.toml`). While the simulator is not available (the command fails or writes no
config in time), the demo falls back to the generated sample logs replayed into a
database, and says so in the status line. It never crashes for want of a simulator.

Everything the demo writes (logs, config, database) is kept in a visible folder,
`./observatory-demo` unless `--dir` says otherwise, so that `observatory incidents --db …`
reads the demo's incidents afterwards; `demo_directory()` prepares it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from observatory.sim.loadgen import config_toml
from observatory.sim.samples import write_samples

SIMULATOR_WAIT = 15.0
# The demo's simulator keeps running after the scripted outage (traffic goes on normally)
# until the app quits and stops it; this only bounds an orphan.
SIMULATOR_SECONDS = 6 * 3600


DEFAULT_DIRECTORY = "observatory-demo"
# Written into the demo's folder: a folder with it is the demo's own, which the next demo
# may empty; any other non-empty folder is refused rather than overwritten.
MARKER = ".observatory-demo"


class DemoDirectoryError(ValueError):
    """The folder asked for cannot hold the demo's data (one line for the user)."""


def demo_directory(directory: Path) -> Path:
    """`directory`, resolved and ready for a new demo: created, or emptied if an earlier
    demo wrote it (its data would otherwise be read again as history)."""
    root = directory.expanduser().resolve()
    if root.exists():
        if not root.is_dir():
            raise DemoDirectoryError(f"{directory} is a file; give --dir a folder")
        if (root / MARKER).exists():
            shutil.rmtree(root)
        elif any(root.iterdir()):
            raise DemoDirectoryError(
                f"{directory} is not empty and not an earlier demo's folder; "
                "give --dir a new or empty folder"
            )
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("observatory demo data; the next demo replaces it\n")
    return root


def shown_path(path: Path) -> str:
    """`path` relative to the working directory when it is under it (shorter to read)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass
class DemoSetup:
    """What to open: a config, whether to replay it, a status note, and where its database
    is; `stop()` cleans up."""

    config: Path
    replay: bool
    note: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def db(self) -> Path:
        from observatory.config import load_config

        return Path(load_config(self.config).db_path)

    def kept(self) -> str:
        """The line printed as the demo ends: where its data stays and how to read it."""
        folder = shown_path(self.config.parent if self.replay else self.config.parent.parent)
        return (
            f"demo data kept in {folder}; "
            f"`observatory incidents --db {shown_path(self.db)}` reads it"
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


# The scenario each input shows best: minute buckets need a longer run-up and outage.
SCENARIOS = {"segment": "tiktok-rate-limit-minutes"}
NOTES = {
    "logs": "demo: live simulator (tiktok-rate-limit), delivery logs",
    "rudderstack": "demo: live simulator (tiktok-rate-limit), rudder-server statsd metrics",
    "segment": "demo: live simulator, Segment Delivery Overview (minutes, judged ~2 min "
    "behind; the outage at 2:30 shows at about 4:20)",
}


def start_simulator(
    directory: Path, wait: float = SIMULATOR_WAIT, platform: str = "logs"
) -> DemoSetup | None:
    """`observatory simulate` into `directory/logs`; None if it is not there or fails."""
    logs = directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "observatory",
            "simulate",
            "--scenario",
            SCENARIOS.get(platform, "tiktok-rate-limit"),
            "--platform",
            platform,
            "--logs",
            str(logs),
            "--duration",
            str(SIMULATOR_SECONDS),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    config = logs / "config.toml"
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if config.exists() and config.stat().st_size > 0:
            return DemoSetup(config, False, NOTES[platform], proc)
        if proc.poll() is not None:
            return None
        time.sleep(0.1)
    proc.terminate()
    proc.wait(10)
    return None


def sample_replay(directory: Path) -> DemoSetup:
    """Write the sample logs into `directory` and a config that replays them."""
    logs = directory / "sample_logs"
    logs.mkdir(parents=True, exist_ok=True)
    write_samples(logs)
    config = directory / "config.toml"
    config.write_text(
        config_toml(str(directory / "demo.duckdb"), str(logs / "forwarder*.jsonl")),
        encoding="utf-8",
    )
    return DemoSetup(
        config, True, "demo: simulator not available, replaying the sample logs (history)"
    )


def prepare_demo(directory: Path, try_simulator: bool = True, platform: str = "logs") -> DemoSetup:
    """The simulator's setup in `directory`, else the sample logs'; the status note says
    where the data is kept."""
    setup = start_simulator(directory, platform=platform) if try_simulator else None
    if setup is None:
        setup = sample_replay(directory)
    setup.note += f" · data in {shown_path(directory.resolve())}{os.sep}"
    return setup
