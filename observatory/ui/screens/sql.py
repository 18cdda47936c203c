"""The SQL console: an editor, ctrl+enter runs, results in a table, errors on one line."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static, TextArea

from observatory.ui.queries import SQL_ROW_CAP, SqlResult, run_console_sql
from observatory.ui.text import literal

DEFAULT_SQL = (
    "SELECT destination, outcome, count(*) AS n\n"
    "FROM events\nGROUP BY ALL\nORDER BY destination, n DESC"
)


class SqlScreen(Screen[None]):
    """Read-only SQL on the captured data, run by a thread worker on a read cursor."""

    BINDINGS = [
        Binding("ctrl+enter", "run", "Run", priority=True),
        Binding("ctrl+r", "run", "Run", show=False, priority=True),
        Binding("f5", "run", "Run", show=False),
        # Priority: the editor would otherwise take Esc (it moves focus out of the editor).
        Binding("escape", "app.pop_screen", "Back", priority=True),
    ]

    class Finished(Message):
        def __init__(self, result: SqlResult | None, error: str | None) -> None:
            super().__init__()
            self.result = result
            self.error = error

    def __init__(self, sql: str = DEFAULT_SQL) -> None:
        super().__init__()
        self.initial_sql = sql
        self.runs = 0  # finished runs (tests wait on it)

    def compose(self) -> ComposeResult:
        try:
            editor = TextArea.code_editor(self.initial_sql, language="sql", id="editor")
        except Exception:  # no SQL grammar installed: plain text editing still works
            editor = TextArea.code_editor(self.initial_sql, id="editor")
        yield editor
        yield Static(Text("ctrl+enter runs · read-only", style="dim"), id="sql-status")
        yield DataTable(id="results", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#editor", TextArea).focus()

    def action_run(self) -> None:
        sql = self.query_one("#editor", TextArea).text
        self.query_one("#sql-status", Static).update(Text("running…", style="dim"))
        self.run_sql(sql)

    @work(thread=True, exit_on_error=False, group="sql", exclusive=True)
    def run_sql(self, sql: str) -> None:
        try:
            cur = self.app.read_cursor()  # type: ignore[attr-defined]
            try:
                result = run_console_sql(cur, sql)
            finally:
                cur.close()
        except Exception as exc:
            message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            self.post_message(self.Finished(None, message))
            return
        self.post_message(self.Finished(result, None))

    def on_sql_screen_finished(self, event: Finished) -> None:
        status = self.query_one("#sql-status", Static)
        table = self.query_one("#results", DataTable)
        self.runs += 1
        if event.error is not None:
            status.update(Text.assemble(("error: ", "bold red"), literal(event.error, "red")))
            status.add_class("-error")
            return
        status.remove_class("-error")
        result = event.result
        assert result is not None
        table.clear(columns=True)
        table.add_columns(*[literal(c, "bold") for c in result.columns])
        for row in result.rows:
            table.add_row(
                *[
                    Text(str(v), justify="right")
                    if isinstance(v, int | float)
                    else literal(v, limit=60)
                    for v in row
                ]
            )
        n = len(result.rows)
        note = f"{n} row{'s' if n != 1 else ''}"
        if result.more:
            note = (
                f"first {SQL_ROW_CAP} rows shown; more not shown"
                " (use `observatory query --format csv` for all)"
            )
        status.update(Text(note, style="yellow" if result.more else "green"))
