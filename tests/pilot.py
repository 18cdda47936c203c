"""Driving a Textual app under Pilot: wait for what the user would see, or for a screen's
workers to finish. Used by the UI tests and by the functional tests that open a screen."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from textual.pilot import Pilot
from textual.screen import Screen
from textual.widget import Widget
from textual.worker import Worker, WorkerFailed

from observatory.ui.screens.dashboard import DashboardScreen
from observatory.ui.screens.destination import DestinationScreen
from observatory.ui.screens.incidents import IncidentsScreen
from observatory.ui.widgets.destination_pane import DestinationPane

S = TypeVar("S", bound=Screen[Any])


async def wait_for(pilot: Pilot[Any], predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Let the app run until `predicate()` holds (a state the user sees) or fail after
    `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("timed out waiting for the app")
        await pilot.pause(0.02)
    await pilot.pause()


def busy(node: Widget) -> bool:
    """Whether any worker `node` started is still running."""
    return any(w.node is node and not w.is_finished for w in node.app.workers)


async def settle(pilot: Pilot[Any], node: Widget, timeout: float = 20.0) -> None:
    """Wait until the workers `node` (a screen) runs are done and what they posted is handled.

    A worker posts its reply before it finishes, so once it has finished a `pause()` hands the
    reply to the screen. A reply may start another worker (acknowledge, then reload the list),
    which may even finish within that pause: the screen's `run_worker` (what `@work` calls)
    is wrapped meanwhile so that one is waited for too. A worker that died of an exception
    fails the test."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    started: list[Worker[Any]] = []
    run_worker = node.run_worker

    def recording_run_worker(*args: Any, **kwargs: Any) -> Worker[Any]:
        worker = run_worker(*args, **kwargs)
        started.append(worker)
        return worker

    setattr(node, "run_worker", recording_run_worker)  # noqa: B010  # mypy: no method-assign
    try:
        await pilot.pause()  # the screen mounts (and starts its first load) first
        waited: set[Worker[Any]] = set()
        while True:
            running = [w for w in node.app.workers if w.node is node]
            workers = [w for w in dict.fromkeys([*started, *running]) if w not in waited]
            if not workers:
                return
            try:
                results = await asyncio.wait_for(
                    asyncio.gather(*(w.wait() for w in workers), return_exceptions=True),
                    deadline - loop.time(),
                )
            except TimeoutError:
                raise AssertionError(f"timed out waiting for the workers of {node!r}") from None
            for result in results:
                if isinstance(result, WorkerFailed):
                    raise result
            waited.update(workers)
            await pilot.pause()  # the replies they posted
    finally:
        del node.run_worker  # the class's method again


async def open_screen(pilot: Pilot[Any], key: str, screen_type: type[S]) -> S:
    """Press ``key``: the screen of ``screen_type`` it opens, once its workers are done."""
    await pilot.press(key)
    screen = pilot.app.screen
    assert isinstance(screen, screen_type)
    await settle(pilot, screen)
    return screen


async def open_incidents(pilot: Pilot[Any]) -> IncidentsScreen:
    """`i` from the dashboard: the incidents screen, once its list has loaded."""
    return await open_screen(pilot, "i", IncidentsScreen)


async def dashboard(
    pilot: Pilot[Any], panes: int | None = None, charts: bool = False
) -> DashboardScreen:
    """The dashboard once its panes are shown and laid out: ``panes`` of them (default: one
    per destination of the app's snapshot), their charts drawn too when ``charts``."""
    app = pilot.app

    def ready() -> bool:
        snap = getattr(app, "snapshot", None)
        if snap is None:
            return False
        shown = list(app.screen.query(DestinationPane))
        want = len(snap.statuses) if panes is None else panes
        return (
            len(shown) >= want
            and all(p.virtual_region.height for p in shown)
            and (not charts or all(p.chart_text.plain for p in shown))
        )

    await wait_for(pilot, ready)
    await pilot.pause(0.1)
    screen = app.screen
    assert isinstance(screen, DashboardScreen)
    return screen


async def open_destination(pilot: Pilot[Any], name: str) -> DestinationScreen:
    """From a fresh dashboard: Enter on ``name``'s pane, once its screen has loaded."""
    dash = await dashboard(pilot)
    dash.set_focus(dash.panes[name])
    await pilot.press("enter")
    screen = pilot.app.screen
    assert isinstance(screen, DestinationScreen)
    await settle(pilot, screen)
    return screen
