"""The SQL console: schema, example and history sidebar, an editor (ctrl+r or F5 runs),
results in a table, cancel a long query, export the result to csv / parquet / json.

The run key is ctrl+r (F5 too): ctrl+enter, which a GUI editor would use, does not reach
the app through tmux or most terminals (tmux sends nothing for it), so it is only an extra."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Input, OptionList, Static, TextArea, Tree

from observatory.store.query import first_line
from observatory.ui.history import SqlHistory
from observatory.ui.queries import (
    SQL_ROW_CAP,
    SqlResult,
    export_console_sql,
    export_format,
    run_console_sql,
    schema,
)
from observatory.ui.screens.base import ObservatoryScreen
from observatory.ui.snippets import SNIPPETS
from observatory.ui.text import clean, literal
from observatory.ui.widgets.footer import KeyFooter

HINT = "ctrl+r runs (F5 too) · ctrl+o examples · ctrl+g cancels · ctrl+s exports · read-only"


def error_text(error: str) -> Text:
    """An error in full: its lines kept (each made literal), wrapped to the width."""
    return Text("\n".join(clean(line) for line in error.splitlines()), style="red")


class SqlScreen(ObservatoryScreen):
    """Read-only SQL on the captured data, run by a thread worker on a read cursor."""

    BINDINGS = [
        Binding(
            "ctrl+r",
            "run",
            "Run",
            priority=True,
            tooltip="run the query (ctrl+enter too, where the terminal sends it)",
        ),
        Binding("f5", "run", "Run", show=False, priority=True),
        Binding("ctrl+enter", "run", "Run", show=False, priority=True),
        Binding(
            "ctrl+o",
            "examples",
            "Examples",
            priority=True,
            tooltip="example queries: pick one, Enter puts it in the editor",
        ),
        Binding("ctrl+g", "cancel", "Cancel", priority=True, tooltip="cancel the running query"),
        Binding(
            "ctrl+s",
            "export",
            "Export",
            priority=True,
            tooltip="export the result (.csv, .parquet, .json)",
        ),
        Binding(
            "ctrl+up",
            "history(-1)",
            "Older",
            show=False,
            priority=True,
            tooltip="older / newer query from the history",
        ),
        Binding("ctrl+down", "history(1)", "Newer", show=False, priority=True),
        Binding(
            "ctrl+b",
            "toggle_sidebar",
            "Sidebar",
            priority=True,
            tooltip="show / hide the schema and history sidebar",
        ),
        # Priority: the editor would otherwise take Esc (it moves focus out of the editor).
        Binding("escape", "back", "Back", priority=True, tooltip="back"),
    ]

    class Finished(Message):
        def __init__(self, result: SqlResult | None, error: str | None) -> None:
            super().__init__()
            self.result = result
            self.error = error

    class SchemaLoaded(Message):
        def __init__(self, tables: list[tuple[str, list[tuple[str, str]]]]) -> None:
            super().__init__()
            self.tables = tables

    class Exported(Message):
        def __init__(self, text: str, error: bool) -> None:
            super().__init__()
            self.text = text
            self.error = error

    def __init__(self, sql: str = "") -> None:
        super().__init__()
        self.initial_sql = sql
        self.history = SqlHistory()
        self._history_pos: int | None = None
        # the running query's cursor (to interrupt it)
        self._cursor: duckdb.DuckDBPyConnection | None = None
        self._cursor_lock = threading.Lock()
        self.last_sql: str | None = None  # the SQL of the result on show

    def compose(self) -> ComposeResult:
        with Vertical(id="sql-sidebar"):
            yield Static(Text("Schema", style="bold"), classes="section")
            tree: Tree[str] = Tree("tables", id="schema")
            tree.show_root = False
            yield tree
            yield Static(Text("Examples (ctrl+o)", style="bold"), classes="section")
            yield OptionList(*[literal(s.title) for s in SNIPPETS], id="examples")
            yield Static(Text("History", style="bold"), classes="section")
            yield OptionList(id="history")
        with Vertical(id="sql-main"):
            placeholder = "a query: ctrl+r runs it · ctrl+o picks an example"
            try:
                editor = TextArea.code_editor(
                    self.initial_sql, language="sql", id="editor", placeholder=placeholder
                )
            except Exception:  # no SQL grammar installed: plain text editing still works
                editor = TextArea.code_editor(
                    self.initial_sql, id="editor", placeholder=placeholder
                )
            yield editor
            yield Static(Text(HINT, style="dim"), id="sql-status")
            yield DataTable(id="results", zebra_stripes=True)
            # An error in full, wrapped (DuckDB's run to several lines), in place of a result.
            with VerticalScroll(id="sql-error-box"):
                yield Static(id="sql-error")
            yield Input(placeholder="export to file (.csv, .parquet or .json)", id="export-path")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#editor", TextArea).focus()
        self._show_history()
        self.load_schema()

    # -- schema ------------------------------------------------------------------------

    @work(thread=True, exit_on_error=False, group="sql-schema")
    def load_schema(self) -> None:
        try:
            with self.observatory.read_cursor() as cur:
                tables = schema(cur)
        except Exception:
            tables = []
        self.post_message(self.SchemaLoaded(tables))

    def on_sql_screen_schema_loaded(self, event: SchemaLoaded) -> None:
        tree = self.query_one("#schema", Tree)
        tree.clear()
        for table, columns in event.tables:
            node = tree.root.add(literal(table, "bold"), data=table)
            for column, kind in columns:
                label = Text.assemble(literal(column), " ", literal(kind.lower(), "dim"))
                node.add_leaf(label, data=column)
        tree.root.expand()

    def on_tree_node_selected(self, event: Tree.NodeSelected[str]) -> None:
        # A table or column name goes into the editor at the cursor.
        if event.node.data:
            self.query_one("#editor", TextArea).insert(str(event.node.data))

    # -- history -----------------------------------------------------------------------

    def _show_history(self) -> None:
        options = self.query_one("#history", OptionList)
        options.clear_options()
        for sql in reversed(self.history.entries):
            options.add_option(literal(" ".join(sql.split()), limit=24))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id == "examples":
            self._use_example(event.option_index)
            return
        entries = self.history.entries
        index = len(entries) - 1 - event.option_index
        if 0 <= index < len(entries):
            self._load_history(index)

    def action_history(self, step: int) -> None:
        entries = self.history.entries
        if not entries:
            return
        pos = len(entries) if self._history_pos is None else self._history_pos
        self._load_history(max(0, min(len(entries) - 1, pos + step)))

    def _load_history(self, index: int) -> None:
        self._history_pos = index
        editor = self.query_one("#editor", TextArea)
        editor.text = self.history.entries[index]
        editor.focus()

    # -- examples ----------------------------------------------------------------------

    def action_examples(self) -> None:
        """The example list, focused (the sidebar shown if it was hidden)."""
        self.query_one("#sql-sidebar").display = True
        examples = self.query_one("#examples", OptionList)
        if examples.highlighted is None:
            examples.highlighted = 0
        examples.focus()

    def _use_example(self, index: int) -> None:
        """Put example ``index`` in the editor, in place of what is there. A query being
        written goes to the history first, so ctrl+↑ brings it back."""
        if not 0 <= index < len(SNIPPETS):
            return
        editor = self.query_one("#editor", TextArea)
        draft = editor.text
        if draft.strip() and draft.strip() not in {s.sql for s in SNIPPETS}:
            self.history.add(draft)
            self._show_history()
            self.notify("the query you were writing is in the history: ctrl+↑ brings it back")
        self._history_pos = None
        # An edit (not `text =`): the cursor ends after it.
        editor.replace(SNIPPETS[index].sql, (0, 0), editor.document.end)
        editor.focus()

    # -- run / cancel ------------------------------------------------------------------

    def action_run(self) -> None:
        sql = self.query_one("#editor", TextArea).text
        self.history.add(sql)
        self._history_pos = None
        self._show_history()
        self.query_one("#sql-status", Static).update(Text("running… (ctrl+g cancels)", "dim"))
        self.run_sql(sql)

    @work(thread=True, exit_on_error=False, group="sql", exclusive=True)
    def run_sql(self, sql: str) -> None:
        try:
            cur = self.observatory.read_cursor()
            with self._cursor_lock:
                self._cursor = cur
            try:
                result = run_console_sql(cur, sql)
            finally:
                with self._cursor_lock:
                    self._cursor = None
                cur.close()
        except Exception as exc:
            self.post_message(self.Finished(None, str(exc).strip() or type(exc).__name__))
            return
        self.last_sql = sql
        self.post_message(self.Finished(result, None))

    def action_cancel(self) -> None:
        with self._cursor_lock:
            cur = self._cursor
        if cur is None:
            self.notify("no query is running")
            return
        cur.interrupt()

    def on_sql_screen_finished(self, event: Finished) -> None:
        status = self.query_one("#sql-status", Static)
        table = self.query_one("#results", DataTable)
        error_box = self.query_one("#sql-error-box", VerticalScroll)
        if event.error is not None:
            # The old result goes: under an error (a refusal or a cancel too) it would read
            # as this query's result; nor can it be exported any more.
            self.last_sql = None
            table.clear(columns=True)
            table.display = False
            status.update(
                Text.assemble(
                    ("error: ", "bold red"),
                    literal(error_text(event.error).plain.split("\n")[0], "red"),
                )
            )
            status.add_class("-error")
            self.query_one("#sql-error", Static).update(error_text(event.error))
            error_box.display = True
            error_box.scroll_home(animate=False)
            return
        status.remove_class("-error")
        error_box.display = False
        table.display = True
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
            note = f"first {SQL_ROW_CAP} rows shown; more not shown (ctrl+s exports them all)"
        status.update(
            Text.assemble((note, "yellow" if result.more else "green"), ("  ·  " + HINT, "dim"))
        )

    # -- export ------------------------------------------------------------------------

    def action_export(self) -> None:
        if self.last_sql is None:
            self.notify("run a query first; its result is what gets exported", severity="warning")
            return
        box = self.query_one("#export-path", Input)
        box.display = True
        self.set_focus(box)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "export-path":
            return
        name = event.value.strip()
        self._close_export()
        if not name or self.last_sql is None:
            return
        try:
            export_format(name)
        except Exception as exc:
            self.notify(clean(exc), severity="error", markup=False)
            return
        self.export(self.last_sql, str(Path(name).expanduser().resolve()))

    def _close_export(self) -> None:
        box = self.query_one("#export-path", Input)
        box.value = ""
        box.display = False
        self.query_one("#editor", TextArea).focus()

    @work(thread=True, exit_on_error=False, group="sql-export")
    def export(self, sql: str, path: str) -> None:
        try:
            with self.observatory.read_cursor() as cur:
                rows = export_console_sql(cur, sql, path)
        except Exception as exc:
            self.post_message(self.Exported(f"export failed: {first_line(exc)}", True))
            return
        self.post_message(self.Exported(f"exported {rows} rows to {path}", False))

    def on_sql_screen_exported(self, event: Exported) -> None:
        self.notify(
            clean(event.text), severity="error" if event.error else "information", markup=False
        )

    # -- navigation ----------------------------------------------------------------------

    def action_toggle_sidebar(self) -> None:
        sidebar = self.query_one("#sql-sidebar")
        sidebar.display = not sidebar.display

    def action_back(self) -> None:
        if self.query_one("#export-path", Input).display:
            self._close_export()
            return
        self.app.pop_screen()
