"""The dependency document: per configured destination its chain (``via`` → destination),
each node's state now, whether it flows, its last incident and drill, and its response plan.

:func:`build_document` fills it from the config and what has been observed (through any read
cursor, see :mod:`observatory.dependencies.observed`); :mod:`observatory.dependencies.render`
writes it as a table, Markdown or JSON. Whether a fallback was ever used is not something
Observatory sees, and the document says so instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from observatory.config import dependents
from observatory.dependencies.observed import (
    FLOW_WINDOW,
    DrillRef,
    Flow,
    IncidentRef,
    drills,
    flowing_elsewhere,
    flows,
    incidents,
    probe_states,
)
from observatory.util.durations import format_age

if TYPE_CHECKING:
    from observatory.config import Config, DependencyConfig

FALLBACK_USE_UNKNOWN = (
    "Whether a fallback was ever used is unknown: Observatory sees deliveries, probes and "
    "incidents, not the procedures people ran."
)
# Node states that mean "look at this now".
BAD_STATES = frozenset({"failing", "critical", "error", "warning"})


@dataclass(frozen=True)
class Node:
    """One node of a chain: a dependency, or the destination at its end."""

    name: str
    role: Literal["dependency", "destination"]
    kind: str  # the dependency's kind, or the destination's vendor
    state: str  # ok, failing, stale, unknown; a destination's open incident: its severity
    detail: str  # what says so
    checked_at: float | None = None  # a dependency's newest probe result
    owner: str | None = None
    runbook: str | None = None
    fallback: str | None = None
    docs: str | None = None

    @property
    def bad(self) -> bool:
        return self.state in BAD_STATES


@dataclass(frozen=True)
class DestinationEntry:
    """One destination's section of the document."""

    name: str
    vendor: str
    chain: list[Node]  # upstream first, the destination last
    flow: Flow | None  # None: never seen
    last_incident: IncidentRef | None
    last_drill: DrillRef | None
    owner: str | None
    runbook: str | None
    fallback: str | None
    retry_window: float | None

    @property
    def flowing(self) -> bool:
        return self.flow is not None and self.flow.events > 0


@dataclass(frozen=True)
class DependencyEntry:
    node: Node
    used_by: list[str]


@dataclass
class DepsDocument:
    generated_at: float
    destinations: list[DestinationEntry]
    dependencies: list[DependencyEntry]
    drills_table: bool  # False: no drill ever ran here (no `drills` table)
    unconfigured: list[str] = field(default_factory=list)  # flowing, not in the config
    window: float = FLOW_WINDOW

    def failing_shared(self) -> list[DependencyEntry]:
        """Failing dependencies and the destinations that hang on them (the first thing a
        reader needs during an outage)."""
        return [d for d in self.dependencies if d.node.bad and d.used_by]


def dependency_node(dep: DependencyConfig, probed: dict[str, Any] | None) -> Node:
    """A dependency as a node: its state from ``probed`` (:func:`probe_states`'s entry, also
    carried in the Snapshot), or unknown, saying why."""
    if probed is not None:
        state, detail = str(probed.get("state", "unknown")), str(probed.get("detail", ""))
        checked = probed.get("checked_at")
    else:
        state, checked = "unknown", None
        detail = "no probe results yet" if dep.probes else "not probed (no probes configured)"
    return Node(
        dep.name,
        "dependency",
        dep.kind,
        state,
        detail,
        None if checked is None else float(checked),
        dep.owner,
        dep.runbook,
        dep.fallback,
        dep.docs,
    )


def _destination_node(
    config: Config, name: str, open_incident: IncidentRef | None, flow: Flow | None, now: float
) -> Node:
    dest = config.destination(name)
    vendor = config.vendor_for(name)
    if open_incident is not None:
        state = open_incident.severity
        detail = f"open incident {open_incident.id} ({open_incident.detector})"
    elif flow is not None and flow.events > 0:
        state, detail = "ok", f"{flow.events:,} events in the last {window_text(FLOW_WINDOW)}"
    elif flow is not None and flow.last_seen is not None:
        age = format_age(now, flow.last_seen)
        state, detail = (
            "stale",
            f"no traffic seen in the last {window_text(FLOW_WINDOW)} (last {age})",
        )
    else:
        state, detail = "unknown", "no traffic seen"
    return Node(
        name,
        "destination",
        vendor,
        state,
        detail,
        owner=dest.owner if dest else None,
        runbook=dest.runbook if dest else None,
        fallback=dest.fallback if dest else None,
    )


def window_text(seconds: float) -> str:
    """The traffic window in words ("15 min")."""
    return f"{seconds / 60:g} min"


def build_document(config: Config, cur: Any, now: float) -> DepsDocument:
    """The document for ``config``'s destinations, from what ``cur`` reads at ``now``."""
    names = [d.name for d in config.destinations]
    dep_names = [d.name for d in config.dependencies]
    seen = flows(cur, names, now)
    open_incidents, newest = incidents(cur, names)
    drilled = drills(cur, names)
    probed = probe_states(cur, dep_names, now)
    dep_nodes = {d.name: dependency_node(d, probed.get(d.name)) for d in config.dependencies}
    entries = []
    for dest in config.destinations:
        flow = seen.get(dest.name)
        chain = [dep_nodes[v] for v in dest.via if v in dep_nodes]
        chain.append(_destination_node(config, dest.name, open_incidents.get(dest.name), flow, now))
        entries.append(
            DestinationEntry(
                name=dest.name,
                vendor=config.vendor_for(dest.name),
                chain=chain,
                flow=flow,
                last_incident=newest.get(dest.name),
                last_drill=(drilled or {}).get(dest.name),
                owner=dest.owner,
                runbook=dest.runbook,
                fallback=dest.fallback,
                retry_window=dest.retry_window,
            )
        )
    deps = [DependencyEntry(dep_nodes[n], dependents(config, n)) for n in dep_names]
    return DepsDocument(
        generated_at=now,
        destinations=entries,
        dependencies=deps,
        drills_table=drilled is not None,
        unconfigured=flowing_elsewhere(cur, names + dep_names, now),
    )
