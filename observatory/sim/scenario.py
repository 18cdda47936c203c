"""Simulator scenarios: small TOML files scripting traffic and faults over time.

A scenario file (see ``scenarios/*.toml``)::

    name = "tiktok-rate-limit"
    description = "..."
    seed = 7
    duration = 120          # seconds
    rate = 100              # upstream conversions/s; each one fans out to every destination
    [limits]                # initial QPS limits (requests/s) per platform; absent: unlimited
    tiktok = 50
    [error_rate]            # background share of requests answered 5xx, per platform
    tiktok = 0.002
    [forwarder]             # optional forwarder knobs: flush_interval, concurrency, batch.tiktok...
    flush_interval = 0.2
    [[at]]                  # actions, applied at `t` seconds after the start
    t = 25
    op = "set_qps_limit"    # a SimServer control op, pause_forwarder, resume_forwarder, set_rate
    platform = "tiktok"
    qps = 0.5               # omit qps (or kind for set_fault) to clear

`load_scenario` accepts a built-in name or a path to such a file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from observatory.sim.platforms import platform_name
from observatory.sim.state import SERVER_OPS

__all__ = [
    "FORWARDER_OPS",
    "SERVER_OPS",
    "Action",
    "Scenario",
    "ScenarioError",
    "load_scenario",
    "scenario_names",
]

FORWARDER_OPS = ("pause_forwarder", "resume_forwarder", "set_rate")
_OP_DEFAULTS: dict[str, dict[str, Any]] = {
    "set_qps_limit": {"qps": None},
    "set_fault": {"kind": None},
}
_TOP_KEYS = {
    "name",
    "description",
    "seed",
    "duration",
    "rate",
    "limits",
    "error_rate",
    "forwarder",
    "at",
}


class ScenarioError(ValueError):
    """A scenario that does not exist or does not validate (the message says which key)."""


@dataclass(frozen=True, slots=True)
class Action:
    """One scripted change: `op` with `args` at `at` seconds after the start."""

    at: float
    op: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str = ""
    seed: int = 0
    duration: float = 120.0
    rate: float = 100.0
    limits: dict[str, float] = field(default_factory=dict)
    error_rate: dict[str, float] = field(default_factory=dict)
    forwarder: dict[str, Any] = field(default_factory=dict)
    actions: tuple[Action, ...] = ()

    def timeline(self) -> list[Action]:
        """Actions in time order (stable for equal times)."""
        return sorted(self.actions, key=lambda a: a.at)

    def scaled(self, speed: float) -> Scenario:
        """The same story `speed` times faster (times and duration divided by `speed`)."""
        if speed <= 0:
            raise ScenarioError("speed must be > 0")
        return replace(
            self,
            duration=self.duration / speed,
            actions=tuple(replace(a, at=a.at / speed) for a in self.actions),
        )


def _builtin_dir() -> Any:
    return resources.files("observatory.sim").joinpath("scenarios")


def scenario_names() -> list[str]:
    """Names of the built-in scenarios."""
    return sorted(
        p.name[: -len(".toml")] for p in _builtin_dir().iterdir() if p.name.endswith(".toml")
    )


def load_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a scenario TOML file by path."""
    builtin = _builtin_dir().joinpath(f"{name_or_path}.toml")
    if "/" not in name_or_path and builtin.is_file():
        text = builtin.read_text(encoding="utf-8")
        where = name_or_path
    elif name_or_path.endswith(".toml") and Path(name_or_path).is_file():
        text = Path(name_or_path).read_text(encoding="utf-8")
        where = name_or_path
    else:
        raise ScenarioError(
            f"unknown scenario {name_or_path!r} (choose one of {', '.join(scenario_names())}"
            " or give a path to a .toml file)"
        )
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    return parse_scenario(doc, where)


def _number(doc: dict[str, Any], key: str, default: float, where: str, low: float = 0) -> float:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise ScenarioError(f"{where}: {key} must be a number >= {low:g}, got {value!r}")
    return float(value)


def _platform_table(doc: dict[str, Any], key: str, where: str) -> dict[str, float]:
    table = doc.get(key, {})
    if not isinstance(table, dict):
        raise ScenarioError(f"{where}: [{key}] must be a table")
    out: dict[str, float] = {}
    for name in table:
        try:
            platform = platform_name(name)
        except ValueError as exc:
            raise ScenarioError(f"{where}: {key}.{name}: {exc}") from None
        out[platform] = _number(table, name, 0.0, f"{where}: {key}")
    return out


def parse_scenario(doc: dict[str, Any], where: str = "scenario") -> Scenario:
    """Validate a parsed scenario document."""
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    name = doc.get("name", Path(where).stem)
    if not isinstance(name, str) or not name:
        raise ScenarioError(f"{where}: name must be a non-empty string")
    seed = doc.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ScenarioError(f"{where}: seed must be an integer")
    forwarder = doc.get("forwarder", {})
    if not isinstance(forwarder, dict):
        raise ScenarioError(f"{where}: [forwarder] must be a table")
    actions: list[Action] = []
    raw = doc.get("at", [])
    if not isinstance(raw, list):
        raise ScenarioError(f"{where}: at must be an array of tables ([[at]])")
    for i, entry in enumerate(raw):
        loc = f"{where}: at[{i}]"
        if not isinstance(entry, dict):
            raise ScenarioError(f"{loc} must be a table")
        args = dict(entry)
        t = _number(args, "t", -1.0, loc)
        op = args.pop("op", None)
        args.pop("t", None)
        if op not in SERVER_OPS + FORWARDER_OPS:
            raise ScenarioError(
                f"{loc}.op: unknown op {op!r} (expected {', '.join(SERVER_OPS + FORWARDER_OPS)})"
            )
        for k, v in _OP_DEFAULTS.get(op, {}).items():
            args.setdefault(k, v)
        if "platform" in args:
            try:
                args["platform"] = platform_name(str(args["platform"]))
            except ValueError as exc:
                raise ScenarioError(f"{loc}.platform: {exc}") from None
        actions.append(Action(t, op, args))
    return Scenario(
        name=name,
        description=str(doc.get("description", "")),
        seed=seed,
        duration=_number(doc, "duration", 120.0, where),
        rate=_number(doc, "rate", 100.0, where),
        limits=_platform_table(doc, "limits", where),
        error_rate=_platform_table(doc, "error_rate", where),
        forwarder=forwarder,
        actions=tuple(actions),
    )
