"""The one place a Runtime is built: `watch`, `replay`, the TUI and the demo all call
`build_runtime`, so each of them holds the same things.

What an owner holds, and where it lives:
- the alert dispatcher, built here from `[[alerts]]` (none configured: none) and started at
  once; the runtime owns it from then on: `Runtime.close()` flushes it (at most
  `alert_flush_timeout` seconds) and stops it, before anything else is closed;
- the probes and the `[backup]` receiver, which `Runtime.start_live()` starts and
  `Runtime.close()` stops;
- retention, which `Runtime.poll()` applies every PRUNE_INTERVAL.

Replaying history (`replay`, the TUI's replay mode) passes `alerts=False`: it alerts nothing,
as its incidents are all historical, and so starts no alert threads either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

import httpx

from observatory.probes.scheduler import default_client
from observatory.runtime import ALERT_FLUSH_TIMEOUT, Runtime

if TYPE_CHECKING:
    from observatory.config import Config
    from observatory.detect.drift import DriftEvent
    from observatory.incidents.model import Change
    from observatory.store.db import Store


def build_runtime(
    config: Config,
    db: str | None = None,
    *,
    on_change: Callable[[Change], None] | None = None,
    on_drift: Callable[[DriftEvent], None] | None = None,
    store: Store | None = None,
    alerts: bool = True,
    alert_flush_timeout: float = ALERT_FLUSH_TIMEOUT,
    bell_stream: TextIO | None = None,
    probe_client_factory: Callable[[], httpx.AsyncClient] = default_client,
) -> Runtime:
    """The runtime on `config` (and `db` or `store`), with its alert dispatcher attached and
    running when `alerts` and the config has `[[alerts]]`. Close it with `Runtime.close()`,
    which flushes the alerts first. `bell_stream`: where a bell sink rings (default: stderr
    when it is a terminal)."""
    dispatcher = None
    if alerts and config.alerts:
        from observatory.alerts import AlertDispatcher, build_sinks

        dispatcher = AlertDispatcher(build_sinks(config.alerts, bell_stream=bell_stream))
    try:
        runtime = Runtime(
            config,
            db,
            on_change=on_change,
            on_drift=on_drift,
            store=store,
            dispatcher=dispatcher,
            alert_flush_timeout=alert_flush_timeout,
            probe_client_factory=probe_client_factory,
        )
    except BaseException:
        if dispatcher is not None:
            dispatcher.close(0)  # never started: this only closes the sinks
        raise
    if dispatcher is not None:
        dispatcher.start()
    return runtime
