"""The command sink: runs a command (no shell) with the incident JSON line on stdin."""

from __future__ import annotations

import os
import signal
import subprocess

from observatory.alerts.errors import AlertDeliveryError
from observatory.alerts.formatting import _json_bytes
from observatory.config import AlertConfig
from observatory.incidents.model import Change


class CommandSink:
    """Runs a command (an argv list, no shell) with the incident JSON line on stdin; a
    non-zero exit or a timeout is a failure. The command's output is discarded."""

    kind = "command"
    every_update = True

    def __init__(self, name: str, config: AlertConfig) -> None:
        self.name = name
        self.min_severity = config.min_severity
        self.timeout = float(config.timeout)
        self._config = config

    def __repr__(self) -> str:
        return f"CommandSink(name={self.name!r}, min_severity={self.min_severity!r})"

    def deliver(self, change: Change) -> None:
        argv = self._config.command_argv()
        data = _json_bytes(change.incident.json_line(change.kind)) + b"\n"
        posix = os.name == "posix"
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=posix,
            )
        except OSError as exc:  # not found, not executable: retrying will not help
            raise AlertDeliveryError(
                f"{self.name}: cannot run the command ({type(exc).__name__})", permanent=True
            ) from None
        try:
            proc.communicate(data, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self._kill(proc, posix)
            raise AlertDeliveryError(f"{self.name}: timed out after {self.timeout:g}s") from None
        except BaseException:
            self._kill(proc, posix)
            raise
        if proc.returncode != 0:
            raise AlertDeliveryError(f"{self.name}: exited with status {proc.returncode}")

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes], posix: bool) -> None:
        try:
            if posix:
                os.killpg(proc.pid, signal.SIGKILL)  # the command and anything it started
            else:
                proc.kill()
        except OSError:
            pass
        try:
            proc.communicate(timeout=5)
        except (subprocess.TimeoutExpired, OSError, ValueError):
            pass
