"""The command line contract (DESIGN "Command line"): commands, help, exit codes, and what
goes to stdout (JSON only) versus stderr (everything human).

Contracts about the process (exit codes, one stderr line, no traceback, stdout contents) run
`python -m observatory` in a real subprocess; help texts use click's CliRunner.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from observatory.cli import main

REPO = Path(__file__).resolve().parents[2]
SAMPLE_LOGS = REPO / "sample_logs"
SHIPPED_CONFIG = REPO / "config.toml"

COMMANDS = [
    "demo",
    "ingest",
    "replay",
    "watch",
    "query",
    "incidents",
    "export",
    "simulate",
    "reconcile",
    "deps",
]
SUMMARY_KEYS = {"lines", "rows", "rejected", "seconds", "rows_per_s"}


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`observatory ARGS...` in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "observatory", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command (asserting there is exactly one)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert proc.stdout == ""
    return lines[0]


def copy_shipped(tmp_path: Path) -> Path:
    """A copy of the shipped config.toml and sample_logs/ (so DB files land in tmp_path)."""
    shutil.copy(SHIPPED_CONFIG, tmp_path / "config.toml")
    shutil.copytree(SAMPLE_LOGS, tmp_path / "sample_logs")
    return tmp_path / "config.toml"


def non_blank_lines(*paths: Path) -> int:
    return sum(1 for p in paths for ln in p.read_bytes().split(b"\n") if ln.strip())


# ------------------------------------------------------------------ commands and help


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output
    assert f"observatory {command}" in result.output  # the example uses the command


def test_the_group_lists_every_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    listed = set(main.commands)
    assert set(COMMANDS) <= listed
    for command in COMMANDS:
        assert command in result.output
    assert "Example" in result.output


def test_help_and_version_in_a_real_process(tmp_path: Path) -> None:
    proc = run("--help", cwd=tmp_path)
    assert proc.returncode == 0
    assert "ingest" in proc.stdout and "query" in proc.stdout
    proc = run("--version", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip()


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("ingest", ["--config", "--db"]),
        ("replay", ["--config", "--db", "--speed"]),
        ("watch", ["--config", "--db", "--duration", "--fail-on-incident"]),
        ("query", ["--db", "--format", "--output"]),
        ("incidents", ["--db", "--format"]),
        ("export", ["--db", "--format", "--output"]),
        ("simulate", ["--scenario", "--logs", "--port", "--duration"]),
        ("reconcile", ["--destination", "--since", "--format", "--output"]),
        ("deps", ["--config", "--db", "--format"]),
    ],
)
def test_commands_take_the_documented_options(command: str, options: list[str]) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    for option in options:
        assert option in result.output, f"{command} lacks {option}"


def test_format_choices_are_the_documented_ones() -> None:
    out = CliRunner().invoke(main, ["query", "--help"]).output
    for fmt in ("table", "csv", "json", "parquet"):
        assert fmt in out
    out = CliRunner().invoke(main, ["export", "--help"]).output
    for fmt in ("md", "json", "csv", "html"):
        assert fmt in out


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert CliRunner().invoke(main, ["query"]).exit_code == 2  # SQL missing
    assert CliRunner().invoke(main, ["query", "select 1", "--format", "xml"]).exit_code == 2
    assert CliRunner().invoke(main, ["ingest", "--no-such-option"]).exit_code == 2
    assert CliRunner().invoke(main, ["no-such-command"]).exit_code == 2


# ------------------------------------------------------------------ bad configurations

SOURCE = """
[[sources]]
name = "fwd"
path = "logs/*.jsonl"
format = "jsonl"
"""

BAD_CONFIGS = {
    "bad-format": (SOURCE.replace('"jsonl"', '"csv"'), [], "sources[0].format"),
    "unknown-key": ("[storage]\ncolour = 'blue'\n" + SOURCE, [], "storage.colour"),
    "unknown-source-key": (SOURCE + "colour = 'blue'\n", [], "sources[0].colour"),
    "bad-duration": ('[storage]\nretention = "7 parsecs"\n' + SOURCE, [], "storage.retention"),
    "negative-duration": ('[storage]\nretention = "-1d"\n' + SOURCE, [], "storage.retention"),
    "unset-env": (
        SOURCE.replace('"logs/*.jsonl"', '"${OBSERVATORY_TEST_SURELY_UNSET}/*.jsonl"'),
        [],
        "sources[0].path",
    ),
    "missing-required": (SOURCE.replace('path = "logs/*.jsonl"\n', ""), [], "sources[0].path"),
    "toml-syntax": ("[[sources]\nname = 'fwd'\n", [], "config"),
    "missing-file": (None, [], "config"),
    "bad-budget": (
        SOURCE + '[detection]\nfalse_alarm_budget = "often"\n',
        [],
        "detection.false_alarm_budget",
    ),
    "webhook-without-url": (SOURCE + '[[alerts]]\nkind = "webhook"\n', [], "alerts[0].url"),
    "invalid-regex": (
        SOURCE.replace('"jsonl"', '"regex"') + "pattern = '(?P<ts>\\S+'\n",
        [],
        "sources[0].pattern",
    ),
    "path-matches-no-source": (
        SOURCE + '[[sources]]\nname = "relay"\npath = "logs/*.logfmt"\nformat = "logfmt"\n',
        ["other/stray.log"],
        "PATH",
    ),
    "path-missing": (SOURCE, ["logs/nope.jsonl"], "PATH"),
    "no-sources": ('[storage]\nretention = "1d"\n', [], "sources"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS), ids=list(BAD_CONFIGS))
def test_bad_config_exits_2_with_one_line_naming_the_key(tmp_path: Path, case: str) -> None:
    text, paths, key = BAD_CONFIGS[case]
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.jsonl").write_text('{"time": 1, "dest": "x"}\n')
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "stray.log").write_text("x\n")
    config = tmp_path / "bad.toml"
    if text is not None:
        config.write_text(text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "OBSERVATORY_TEST_SURELY_UNSET"}
    proc = run(
        "ingest",
        *paths,
        "--config",
        str(config),
        "--db",
        str(tmp_path / "x.duckdb"),
        cwd=tmp_path,
        env=env,
    )
    line = one_error_line(proc)
    assert proc.returncode == 2, proc.stderr
    assert f"{key}:" in line, line


def test_a_regex_re2_cannot_run_is_a_config_error(tmp_path: Path) -> None:
    """A lookahead is valid Python `re` but not RE2 (what DuckDB runs): that is a mistake in
    `sources[0].pattern`, so exit 2 naming it, not a DuckDB error or a traceback."""
    config = tmp_path / "config.toml"
    config.write_text(
        SOURCE.replace('"jsonl"', '"regex"') + "pattern = '(?P<ts>\\S+) (?=x)(?P<d>\\S+)'\n",
        encoding="utf-8",
    )
    (tmp_path / "logs").mkdir()
    proc = run("ingest", "--config", str(config), "--db", str(tmp_path / "x.duckdb"), cwd=tmp_path)
    line = one_error_line(proc)
    assert proc.returncode == 2, line
    assert "sources[0].pattern:" in line


def test_secrets_from_the_environment_are_not_echoed(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(SOURCE + '[[alerts]]\nkind = "webhook"\nurl = "${HOOK}"\n', encoding="utf-8")
    env = {**os.environ, "HOOK": "not-a-url-hunter2-secret"}
    proc = run("ingest", "--config", str(config), cwd=tmp_path, env=env)
    line = one_error_line(proc)
    assert proc.returncode == 2
    assert "alerts[0].url:" in line
    assert "hunter2" not in proc.stderr


def test_default_config_is_read_from_the_working_directory(tmp_path: Path) -> None:
    proc = run("ingest", cwd=tmp_path)  # no ./config.toml
    line = one_error_line(proc)
    assert proc.returncode == 2
    assert "config:" in line and "config.toml" in line


# ------------------------------------------------------------------ runtime failures


def test_a_file_that_is_not_a_database_exits_1_on_one_line(tmp_path: Path) -> None:
    copy_shipped(tmp_path)
    (tmp_path / "notes.duckdb").write_text("these are my notes\n")
    proc = run("ingest", "--db", "notes.duckdb", cwd=tmp_path)
    line = one_error_line(proc)
    assert proc.returncode == 1
    assert "notes.duckdb" in line
    assert (tmp_path / "notes.duckdb").read_text() == "these are my notes\n"


def test_a_database_locked_by_another_process_exits_1_on_one_line(tmp_path: Path) -> None:
    copy_shipped(tmp_path)
    holder = duckdb.connect(str(tmp_path / "held.duckdb"))  # holds the write lock
    try:
        proc = run("ingest", "--db", "held.duckdb", cwd=tmp_path)
    finally:
        holder.close()
    line = one_error_line(proc)
    assert proc.returncode == 1
    held = (tmp_path / "held.duckdb").resolve()
    assert f"the database {held} is in use by process {os.getpid()}" in line


# ------------------------------------------------------------------ ingest


def test_ingest_the_shipped_config(tmp_path: Path) -> None:
    copy_shipped(tmp_path)
    repo_db_existed = (REPO / "observatory.duckdb").exists()
    proc = run("ingest", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out_lines = proc.stdout.splitlines()
    assert len(out_lines) == 1, proc.stdout
    summary = json.loads(out_lines[0])
    assert set(summary) == SUMMARY_KEYS
    assert summary["lines"] == summary["rows"] + summary["rejected"]
    assert summary["rejected"] == 2  # sample_logs/forwarder.jsonl has exactly 2 bad lines
    assert summary["lines"] == non_blank_lines(*sorted((tmp_path / "sample_logs").iterdir()))
    assert summary["seconds"] >= 0 and summary["rows_per_s"] >= 0

    db = tmp_path / "observatory.duckdb"  # storage.db, relative to the config file
    assert db.exists()
    assert (REPO / "observatory.duckdb").exists() == repo_db_existed
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM events").fetchall() == [(summary["rows"],)]
        rejects = con.execute("SELECT source, file FROM rejects").fetchall()
        assert [(s, Path(f).name) for s, f in rejects] == [("forwarder", "forwarder.jsonl")] * 2
        sources = dict(con.execute("SELECT source, count(*) FROM events GROUP BY 1").fetchall())
        assert set(sources) == {"forwarder", "relay", "egress"}
    finally:
        con.close()

    again = run("ingest", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert (second["lines"], second["rows"], second["rejected"]) == (0, 0, 0)


def test_ingest_paths_with_their_sources(tmp_path: Path) -> None:
    config = copy_shipped(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run(
        "ingest",
        str(tmp_path / "sample_logs" / "forwarder.jsonl"),
        str(tmp_path / "sample_logs" / "egress.log"),
        "--config",
        str(config),
        "--db",
        "x.duckdb",
        cwd=elsewhere,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    forwarder = non_blank_lines(tmp_path / "sample_logs" / "forwarder.jsonl")
    egress = non_blank_lines(tmp_path / "sample_logs" / "egress.log")
    assert summary["lines"] == forwarder + egress
    assert summary["rejected"] == 2
    assert (elsewhere / "x.duckdb").exists()  # --db is relative to the working directory
    assert not (tmp_path / "observatory.duckdb").exists()
    con = duckdb.connect(str(elsewhere / "x.duckdb"), read_only=True)
    try:
        got = dict(con.execute("SELECT source, count(*) FROM events GROUP BY 1").fetchall())
    finally:
        con.close()
    assert got == {"forwarder": forwarder - 2, "egress": egress}


def test_progress_goes_to_stderr_never_stdout(tmp_path: Path) -> None:
    """With progress forced to print on every update, stdout still holds only the JSON."""
    copy_shipped(tmp_path)
    code = (
        "import sys\n"
        "from observatory.util import progress\n"
        "init = progress.ProgressLine.__init__\n"
        "def eager(self, *a, **k):\n"
        "    init(self, *a, **k)\n"
        "    self.every = 0.0\n"
        "    self.last = float('-inf')\n"
        "progress.ProgressLine.__init__ = eager\n"
        "from observatory.cli import main\n"
        "main(['ingest'], prog_name='observatory')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ingest:" in proc.stderr  # progress was shown...
    assert len(proc.stdout.splitlines()) == 1  # ...and stdout is the summary alone
    assert set(json.loads(proc.stdout)) == SUMMARY_KEYS


def test_progress_line_writes_to_stderr_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    from observatory.util.progress import ProgressLine

    with ProgressLine("ingest") as progress:
        progress.every = 0.0
        progress.last = float("-inf")
        progress.update(5_000_000, 10_000_000)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "ingest:" in captured.err and "50.0%" in captured.err


def test_failures_print_nothing_on_stdout(tmp_path: Path) -> None:
    copy_shipped(tmp_path)
    for args in (
        ["ingest", "nope.jsonl"],
        ["query", "select nope", "--db", "missing.duckdb"],
        ["ingest", "--config", "missing.toml"],
    ):
        proc = run(*args, cwd=tmp_path)
        assert proc.returncode != 0
        assert proc.stdout == "", args
        assert proc.stderr.strip(), args


def test_web_refuses_without_an_owner_and_tui_options_belong_to_the_tui(tmp_path: Path) -> None:
    """`web` sessions are viewers: with nobody owning the database it says so, exit 1.
    The TUI's --config/--attach before a command are refused (exit 2), not ignored."""
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[storage]\ndb = "{tmp_path / "o.duckdb"}"\n\n[[sources]]\nname = "f"\n'
        f'path = "{tmp_path / "*.jsonl"}"\nformat = "jsonl"\n'
    )
    web = run("web", "--config", str(cfg), "--port", "8999", cwd=tmp_path)
    assert web.returncode == 1 and web.stdout == ""
    assert "no owner of" in web.stderr and "observatory watch" in web.stderr
    misplaced = run("--attach", "http://127.0.0.1:1", "incidents", cwd=tmp_path)
    assert misplaced.returncode == 2 and "give the command's own options" in misplaced.stderr
    help_text = CliRunner().invoke(main, ["--help"]).output
    assert "--attach URL" in help_text and "--token" in help_text


def test_the_tui_replay_flag_is_documented_and_only_the_tuis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "--replay" in CliRunner().invoke(main, ["--help"]).output
    before_a_command = CliRunner().invoke(main, ["--replay", "incidents"])
    assert before_a_command.exit_code == 2 and "--replay" in before_a_command.output
    monkeypatch.chdir(tmp_path)  # no ./config.toml: no history to replay (not the demo)
    no_config = CliRunner().invoke(main, ["--replay"])
    assert no_config.exit_code == 2 and "config.toml" in no_config.output
