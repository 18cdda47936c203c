"""``[[dependencies]]``: what destinations hang on (:class:`DependencyConfig`), the check that
ties ``via`` to them (:func:`check_dependency_links`), and a destination's
:class:`ResponsePlan`.

A dependency is a node between the events and the destination that Observatory does not
deliver to itself (a CDP, a forwarder, a platform's API, a status page). Its probes run like a
destination's and are stored in ``probes`` under its name, but it never gets a pane or
incidents of its own: its state is what its newest probes say.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from observatory.config.destinations import ProbeConfig, ResponseFields
from observatory.config.fields import NonEmptyStr, _custom, check_link
from observatory.util.durations import format_duration

if TYPE_CHECKING:
    from observatory.config.model import Config

DependencyKind = Literal["cdp", "forwarder", "platform_api", "status_page"]


class DependencyConfig(ResponseFields):
    """``[[dependencies]]``: one upstream node, named in destinations' ``via``."""

    name: NonEmptyStr
    kind: DependencyKind
    docs: str | None = None  # an http(s) URL: the vendor's documentation or status page
    probes: list[ProbeConfig] = Field(default_factory=list)

    _docs = field_validator("docs")(check_link)


def check_dependency_links(config: Config) -> Config:
    """Config-wide checks (a model validator of :class:`Config`): dependency names unique and
    not a destination's, and every ``via`` entry a configured dependency. A wrong name in
    ``via`` would otherwise show as a node that is never probed and never fails."""
    destinations = {d.name: i for i, d in enumerate(config.destinations)}
    seen: dict[str, int] = {}
    for i, dep in enumerate(config.dependencies):
        if dep.name in seen:
            raise _custom(
                "duplicate",
                f"duplicate dependency name {dep.name!r} (already used by "
                f"dependencies[{seen[dep.name]}]; set name = ...)",
                suffix=("dependencies", i, "name"),
            )
        if dep.name in destinations:
            raise _custom(
                "duplicate",
                f"is also the name of destinations[{destinations[dep.name]}]: a dependency "
                "needs a name of its own (its probes are stored under it)",
                dep.name,
                suffix=("dependencies", i, "name"),
            )
        seen[dep.name] = i
    known = ", ".join(sorted(seen)) or "none: add a [[dependencies]] table"
    for i, dest in enumerate(config.destinations):
        for j, name in enumerate(dest.via):
            if name not in seen:
                raise _custom(
                    "unknown",
                    f"is not a configured dependency (known: {known})",
                    name,
                    suffix=("destinations", i, "via", j),
                )
            if name in dest.via[:j]:
                raise _custom(
                    "duplicate",
                    "is named twice in the chain",
                    name,
                    suffix=("destinations", i, "via", j),
                )
    return config


def dependents(config: Config, dependency: str) -> list[str]:
    """The configured destinations whose chain passes through ``dependency``, in config order."""
    return [d.name for d in config.destinations if dependency in d.via]


@dataclass(frozen=True)
class ResponsePlan:
    """What the config says to do when ``destination`` breaks: who owns it, the runbook, the
    fallback, how long a re-send is still accepted, and the chain it hangs on. Carried into
    incident screens and exports from the config at the time of asking, never stored with an
    incident (the plan may change after it)."""

    destination: str
    via: tuple[str, ...] = ()
    owner: str | None = None
    runbook: str | None = None
    fallback: str | None = None
    retry_window: float | None = None

    def rows(self) -> list[tuple[str, str]]:
        """The configured parts as (label, text), in reading order (the fallback first)."""
        out: list[tuple[str, str]] = []
        if self.fallback:
            out.append(("Fallback", self.fallback))
        if self.retry_window is not None:
            out.append(("Retry window", format_duration(self.retry_window, coarse=True)))
        if self.runbook:
            out.append(("Runbook", self.runbook))
        if self.owner:
            out.append(("Owner", self.owner))
        if self.via:
            out.append(("Depends on", " → ".join((*self.via, self.destination))))
        return out

    def as_dict(self) -> dict[str, object]:
        """The plan for JSON: every field, unset ones as null."""
        return {
            "owner": self.owner,
            "runbook": self.runbook,
            "fallback": self.fallback,
            "retry_window_s": self.retry_window,
            "via": list(self.via),
        }


def response_plan(config: Config | None, destination: str) -> ResponsePlan | None:
    """The configured plan for ``destination``; None when the config says nothing about it
    (no config, an unconfigured destination, or one with no response fields set)."""
    if config is None:
        return None
    dest = config.destination(destination)
    if dest is None:
        return None
    plan = ResponsePlan(
        destination=dest.name,
        via=tuple(dest.via),
        owner=dest.owner,
        runbook=dest.runbook,
        fallback=dest.fallback,
        retry_window=dest.retry_window,
    )
    return plan if plan.rows() else None
