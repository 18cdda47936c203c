"""Active probes of destination and status APIs (httpx, async, on their own thread)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from observatory.config import ConfigError, ProbeConfig
from observatory.probes.base import (
    HttpProbeBase,
    Probe,
    ProbeResult,
    parse_rate_limit_headers,
    redact_url,
    reported_status,
)
from observatory.probes.kinds import (
    HttpProbe,
    PrometheusProbe,
    SegmentDeliveryProbe,
    StatuspageProbe,
)
from observatory.probes.scheduler import ProbeScheduler

if TYPE_CHECKING:
    from observatory.config import Config

KINDS: dict[str, type[HttpProbeBase]] = {
    "statuspage": StatuspageProbe,
    "segment_delivery": SegmentDeliveryProbe,
    "prometheus": PrometheusProbe,
    "http": HttpProbe,
}


def probe_name(config: ProbeConfig) -> str:
    """A readable name that never contains the URL: the kind, plus component or selector."""
    if config.kind == "statuspage" and config.component:
        return f"statuspage:{config.component}"
    if config.kind == "prometheus" and config.selector:
        return f"prometheus:{config.selector}"
    if config.kind == "http" and config.method == "HEAD":
        return "http:HEAD"
    return config.kind


def make_probe(destination: str, config: ProbeConfig, name: str | None = None) -> HttpProbeBase:
    return KINDS[config.kind](destination, config, name or probe_name(config))


def build_probes(config: Config) -> list[Probe]:
    """One probe per ``[[destinations.probes]]`` and ``[[dependencies.probes]]`` (a
    dependency's results carry its name as their destination); names unique within one."""
    out: list[Probe] = []
    owners = [("destinations", d.name, d.probes) for d in config.destinations]
    owners += [("dependencies", d.name, d.probes) for d in config.dependencies]
    index = {"destinations": 0, "dependencies": 0}
    for table, owner, probes in owners:
        i = index[table]
        index[table] += 1
        seen: dict[str, int] = {}
        for j, pc in enumerate(probes):
            name = probe_name(pc)
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                name = f"{name}#{seen[name]}"
            try:
                out.append(make_probe(owner, pc, name))
            except ValueError as exc:
                raise ConfigError(f"{table}[{i}].probes[{j}].selector", str(exc)) from None
    return out


__all__ = [
    "HttpProbe",
    "Probe",
    "ProbeResult",
    "ProbeScheduler",
    "PrometheusProbe",
    "SegmentDeliveryProbe",
    "StatuspageProbe",
    "build_probes",
    "make_probe",
    "parse_rate_limit_headers",
    "probe_name",
    "redact_url",
    "reported_status",
]
