"""The dashboard: an incident bar, a grid of panes (one per destination), a filter, a status line.

The grid takes the terminal: one column under GRID_TWO columns of terminal, two from there,
three from GRID_THREE (each pane stays about 75 columns or more, room for a chart of a bucket
a column and its legend), never more columns than panes shown; rows share the height
(PANE_MIN to PANE_MAX rows each, scrolling beyond). `w` cycles the charts' window.

The filter is typed into the status line (`/`, then the text; Enter keeps it, Esc clears it)
rather than into an Input that appears: showing a widget re-lays out the whole screen, which
under a heavy live load kept a keypress off the screen for well over 100 ms. Updating one
line of text does not move anything.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from observatory.detect.trend import WINDOWS
from observatory.ui.attached import UNAUTHORIZED
from observatory.ui.driver import Snapshot
from observatory.ui.screens.base import ObservatoryScreen
from observatory.ui.text import literal
from observatory.ui.widgets.destination_pane import DestinationPane
from observatory.ui.widgets.footer import KeyFooter
from observatory.ui.widgets.incident_bar import IncidentBar
from observatory.util.zonetime import DisplayZone

# Terminal widths (columns) from which the grid has two, then three columns of panes.
GRID_TWO = 150
GRID_THREE = 225
# A pane's height (rows, borders included): the rows share the height between these.
PANE_MIN = 9
PANE_MAX = 22
# Pane states listed first (DOWN, DEGRADED: an incident is open).
ALERTING = ("down", "degraded")
# The charts' windows, as indices of DestinationStatus.trends (detect.trend.WINDOWS).
WINDOW_NAMES = tuple(f"{w // 60} min" for w in WINDOWS)


def grid_columns(width: int, panes: int) -> int:
    """How many panes across on a terminal ``width`` columns wide, for ``panes`` shown."""
    across = 3 if width >= GRID_THREE else 2 if width >= GRID_TWO else 1
    return max(1, min(across, panes))


def pane_height(available: int, rows: int) -> int:
    """Each row of panes' height: an equal share of ``available`` within the bounds."""
    return max(PANE_MIN, min(PANE_MAX, available // max(1, rows)))


class PaneList(VerticalScroll, inherit_bindings=False, can_focus=False):
    """The panes' scrolling grid, without the arrow keys a scroll view takes: on the
    dashboard they move focus between panes (which scrolls the focused one into view)."""

    def on_resize(self) -> None:
        screen = self.screen
        if isinstance(screen, DashboardScreen):
            screen.fit_grid()


def neighbour(boxes: list[tuple[int, ...]], current: int, direction: str) -> int | None:
    """The index of the pane to move to from `boxes[current]` (boxes are (x, y, width,
    height) on screen, in display order), or None to stay.

    left / right: the previous / next pane in reading order (in a grid a row's end goes on
    to the next row's start). up / down: the nearest pane wholly above / below, the one
    most in line with the current one first; in one column that is the previous / next."""
    if direction in ("left", "right"):
        step = current + (1 if direction == "right" else -1)
        return step if 0 <= step < len(boxes) else None
    x, y, width, height = boxes[current]
    centre = x + width / 2
    best: tuple[float, float] | None = None
    found = None
    for n, (bx, by, bw, bh) in enumerate(boxes):
        if direction == "down":
            gap = by - (y + height)
        else:
            gap = y - (by + bh)
        if n == current or gap < 0:
            continue
        score = (gap, abs(bx + bw / 2 - centre))
        if best is None or score < best:
            best, found = score, n
    return found


class DashboardScreen(ObservatoryScreen):
    """Live panes, rendered from the app's latest Snapshot only (no queries per frame)."""

    # Arrows move between panes by where they are on screen (see `neighbour`), so they keep
    # working when the panes are laid out in a grid.
    BINDINGS = [
        Binding("up", "move('up')", "Up", show=False, tooltip="move between destinations"),
        Binding("down", "move('down')", "Down", show=False),
        Binding("left", "move('left')", "Previous", show=False),
        Binding("right", "move('right')", "Next", show=False),
        Binding(
            "enter",
            "open",
            "Open",
            tooltip="open the focused destination (on the incident bar: the incident)",
        ),
        Binding("w", "cycle_window", "Window", tooltip="charts over the last 1, 15 or 60 min"),
        Binding("slash", "filter", "Filter", tooltip="filter destinations (Esc clears)"),
        Binding("escape", "clear_filter", "Clear filter", show=False, tooltip="clear the filter"),
    ]

    AUTO_FOCUS = ".pane"

    def __init__(self) -> None:
        super().__init__()
        self.panes: dict[str, DestinationPane] = {}
        self.filter_text = ""
        self.filtering = False  # keys go to the filter (typed into the status line)
        self.window = 1  # the charts' window: an index of WINDOWS (15 minutes)
        self._grid: tuple[int, int] | None = None  # (columns, pane height) laid out
        self._order: list[str] = []  # the panes' order on screen (by name)

    def compose(self) -> ComposeResult:
        yield IncidentBar(id="incident-bar")
        with PaneList(id="panes"):
            yield Static(id="no-match")  # shown when the filter matches no destination
        yield Static(id="status-line")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.watch(self.app, "snapshot", self.show_snapshot)
        self.watch(self.app, "link", lambda _link: self._status(self.observatory.snapshot))
        self.watch(self.app, "history_note", lambda _note: self._status(self.observatory.snapshot))

    def show_snapshot(self, snap: Snapshot | None) -> None:
        if snap is None:
            self._status(None)
            return
        self.query_one(IncidentBar).show(snap.incidents, snap.now, self.observatory.zone)
        container = self.query_one("#panes", VerticalScroll)
        new = [name for name in snap.statuses if name not in self.panes]
        for name in new:
            pane = DestinationPane(name, self.observatory.zone, classes="pane")
            self.panes[name] = pane
        if new:
            container.mount(*[self.panes[n] for n in new])
        self._order_panes(snap, container)
        self._apply(snap)
        self._status(snap)

    def _order_panes(self, snap: Snapshot, container: VerticalScroll) -> None:
        """Destinations in trouble (DOWN, DEGRADED) first, the rest after, each in name
        order: on a small terminal the outage is on screen, not scrolled away. Only a change
        of state moves panes (a re-layout); focus stays on its destination."""
        alert = [n for n in self.panes if n in snap.statuses and snap.statuses[n].state in ALERTING]
        order = alert + [n for n in self.panes if n not in alert]
        if order == self._order:
            return
        self._order = order
        panes = [c for c in container.children if isinstance(c, DestinationPane)]
        if [p.destination for p in panes] == order:
            return  # as they are (new panes mount at the end): nothing to move
        for name in reversed(order):  # each to the front: ends in `order`
            pane = self.panes[name]
            if pane.parent is container and container.children[0] is not pane:
                container.move_child(pane, before=0)

    def _apply(self, snap: Snapshot) -> None:
        onsets = {i.id: i.onset for i in snap.incidents}
        for name, status in snap.statuses.items():
            pane = self.panes[name]
            onset = onsets.get(status.incident_id) if status.incident_id else None
            pane.show(status, snap.now, snap.backup.get(name), self.window, onset)
        self._show_matching()
        if self.focused is None:
            self._focus_first_shown()

    def _focus_first_shown(self) -> None:
        shown = self.shown_panes()
        if shown:
            shown[0].focus()

    def _status(self, snap: Snapshot | None) -> None:
        line = self.query_one("#status-line", Static)
        if self.filtering:
            text = Text(" FILTER ", style="bold reverse")
            text.append("  /")
            text.append_text(literal(self.filter_text, "bold"))
            text.append(" ", style="reverse")  # the cursor
            text.append("   Enter keep · Esc clear", style="dim")
            line.update(text, layout=False)
            return
        if snap is None:
            line.update(self._attachment() or Text("starting…", style="dim"), layout=False)
            return
        text = Text()
        zone = self.observatory.zone
        if snap.history is not None:  # only history in the sources: say so, and since when
            text.append(f" history: {fmt_span(zone, *snap.history)}, nothing live ", "bold reverse")
        else:
            text.append(" LIVE " if snap.live else " HISTORY ", style="bold reverse")
            text.append(f" {zone.clock(snap.now)}")
        if self.observatory.paused:
            text.append(" PAUSED ", style="bold black on yellow")
        attachment = self._attachment()
        if attachment is not None:
            text.append(" ")
            text.append_text(attachment)
        if self.observatory.history_note:  # the replay (R): its progress, what it found
            text.append("  ")
            text.append(self.observatory.history_note, style="bold")
        elif snap.history is not None:
            text.append("  R", style="bold")
            text.append(" replays it")
        text.append("  charts: ")
        text.append(f"{WINDOW_NAMES[self.window]}", style="bold")
        text.append(" (w)", style="dim")
        dests, incidents = len(snap.statuses), len(snap.incidents)
        text.append(f"  {dests} destination{'' if dests == 1 else 's'}")
        text.append(f"  {incidents} open incident{'' if incidents == 1 else 's'}")
        if snap.drill:
            text.append("  ")
            style = "bold black on yellow" if snap.drill_overdue else "dim"
            text.append(f" {snap.drill} " if snap.drill_overdue else snap.drill, style=style)
        if self.filter_text:
            text.append("  filter: ")
            text.append_text(literal(self.filter_text))
        if snap.note:
            text.append("  ")
            text.append_text(literal(snap.note, "italic"))
        line.update(text, layout=False)

    def _attachment(self) -> Text | None:
        """Attached: to what (the URL, never the token), and whether the link is up."""
        url = self.observatory.attached_to
        if url is None:
            return None
        link = self.observatory.link
        text = Text()
        if link is not None and not link.connected:
            text.append(" DISCONNECTED ", style="bold white on red")
            text.append("  disconnected, retrying: ")
            text.append_text(literal(link.url))
            if link.reason == UNAUTHORIZED:
                text.append_text(literal(f" ({link.reason})", "bold red"))
        elif link is None:
            text.append("connecting to ", style="dim")
            text.append_text(literal(url, "dim"))
        else:
            text.append(" ATTACHED ", style="bold black on cyan")
            text.append("  ")
            text.append_text(literal(url))
        return text

    def action_open(self) -> None:
        if isinstance(self.focused, DestinationPane | IncidentBar):
            self.focused.action_open()

    def shown_panes(self) -> list[DestinationPane]:
        """The panes shown, in screen order."""
        return [self.panes[n] for n in self._order or self.panes if self.panes[n].display]

    def action_move(self, direction: str) -> None:
        """Focus the pane next to the focused one in `direction` (see `neighbour`)."""
        shown = self.shown_panes()
        bar = self.query_one(IncidentBar)
        if not shown:
            return
        # set_focus, not focus(): focus() takes effect later, so in a burst of keys (↓↓↓
        # typed fast, or sent at once through tmux) each would move from the same pane.
        if self.focused is bar:  # the incident bar sits above the panes
            if direction in ("down", "right"):
                self.set_focus(shown[0])
            return
        if self.focused not in shown:
            self.set_focus(shown[0])
            return
        # Positions in the container's content (off-screen panes have one too).
        boxes = [tuple(p.virtual_region) for p in shown]
        if not all(w and h for _x, _y, w, h in boxes):  # not laid out yet: display order
            boxes = [(0, n, 1, 1) for n in range(len(shown))]
        target = neighbour(boxes, shown.index(self.focused), direction)
        if target is not None:
            self.set_focus(shown[target])  # scrolls it into view
        elif direction == "up" and bar.display:  # from the top row, up to the incident bar
            self.set_focus(bar)

    def fit_grid(self) -> None:
        """Columns for the width, rows sharing the height (only a change re-lays out)."""
        container = self.query_one("#panes", PaneList)
        shown = sum(1 for p in self.panes.values() if p.display)
        if not shown or not container.size.height:
            return
        columns = grid_columns(self.size.width, shown)
        rows = -(-shown // columns)
        height = pane_height(container.size.height, rows)
        if self._grid == (columns, height):
            return
        self._grid = (columns, height)
        container.styles.grid_size_columns = columns
        container.styles.grid_rows = str(height)
        self.query_one("#no-match").styles.column_span = columns

    def action_cycle_window(self) -> None:
        """The charts' next window: 1, 15, 60 minutes, around."""
        self.window = (self.window + 1) % len(WINDOWS)
        snap = self.observatory.snapshot
        if snap is not None:
            self._apply(snap)
        self._status(snap)

    def action_filter(self) -> None:
        self.filtering = True
        self._status(self.observatory.snapshot)

    def action_clear_filter(self) -> None:
        self.filtering = False
        self._set_filter("")

    def on_key(self, event: events.Key) -> None:
        """While filtering, every key edits the filter: none reaches the app's bindings.

        `/` starts filtering here rather than through its binding: bindings run when the key
        has bubbled up to the app, after the screen has already seen the keys typed right
        behind it (`/tik` in one burst would open the incidents on its `i`)."""
        if not self.filtering:
            if event.key == "slash":
                event.stop()
                event.prevent_default()
                self.action_filter()
            return
        event.stop()
        event.prevent_default()
        if event.key == "escape":
            self.action_clear_filter()
        elif event.key == "enter":
            self.filtering = False
            self._set_filter(self.filter_text)
            self._focus_first_shown()
        elif event.key in ("backspace", "ctrl+h"):
            self._set_filter(self.filter_text[:-1])
        elif event.key == "ctrl+u":
            self._set_filter("")
        elif event.is_printable and event.character:
            self._set_filter(self.filter_text + event.character)

    def on_paste(self, event: events.Paste) -> None:
        if self.filtering:
            event.stop()
            self._set_filter(self.filter_text + " ".join(event.text.split()))

    def _set_filter(self, value: str) -> None:
        self.filter_text = value
        self._show_matching()
        self._status(self.observatory.snapshot)

    def _show_matching(self) -> None:
        """Show the panes whose destination matches the filter (only changes re-lay out)."""
        needle = self.filter_text.lower()
        for name, pane in self.panes.items():
            visible = needle in name.lower()
            if pane.display != visible:
                pane.display = visible
        none = bool(self.panes) and not any(p.display for p in self.panes.values())
        message = self.query_one("#no-match", Static)
        if none:
            text = Text("no destinations match ")
            text.append_text(literal(repr(self.filter_text), "bold"))
            text.append(" — Esc clears the filter")
            message.update(text)
        if message.display != none:
            message.display = none
        self.fit_grid()

    def on_incident_bar_selected(self, event: IncidentBar.Selected) -> None:
        from observatory.ui.screens.incidents import IncidentsScreen

        self.app.push_screen(IncidentsScreen(select=event.incident_id))

    def on_destination_pane_selected(self, event: DestinationPane.Selected) -> None:
        from observatory.ui.screens.destination import DestinationScreen

        self.app.push_screen(DestinationScreen(event.destination))


def fmt_span(zone: DisplayZone, first: float, last: float) -> str:
    """A span of event time to the minute, in ``zone``: "2026-11-20 14:00–14:40 UTC" (the
    date once when both ends fall on the same day)."""
    start, end = zone.at(first), zone.at(last)
    if start.date() == end.date():
        return f"{start:%Y-%m-%d %H:%M}–{zone.stamp(last, '%H:%M')}"
    return f"{start:%Y-%m-%d %H:%M} – {zone.stamp(last, '%Y-%m-%d %H:%M')}"
