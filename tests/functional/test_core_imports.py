"""The headless core never imports `textual` (DESIGN "Architecture"): only observatory/ui/ may.

Checked twice: statically (every import statement outside ui/, wherever it sits, even
inside a function) and dynamically (importing every core module in a fresh interpreter
leaves `textual` out of sys.modules).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import observatory

PACKAGE = Path(observatory.__file__).resolve().parent
UI = PACKAGE / "ui"
TEXTUAL = {"textual", "textual_serve"}  # the UI's libraries: only observatory/ui/ imports them


def core_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if UI not in p.parents)


def core_modules() -> list[str]:
    names = []
    for path in core_files():
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts[-1] == "__main__":
            continue  # running it starts the CLI
        names.append(".".join(parts))
    return names


def imported_names(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.append(node.args[0].value)
    return names


def test_the_core_is_what_we_think_it_is() -> None:
    modules = core_modules()
    for expected in ("observatory.cli", "observatory.config", "observatory.store.db"):
        assert expected in modules
    assert not any(m.startswith("observatory.ui") for m in modules)


def test_no_core_file_imports_textual() -> None:
    offenders = []
    for path in core_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name in imported_names(tree):
            if name.split(".")[0] in TEXTUAL:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}: {name}")
    assert offenders == []


def test_the_checker_sees_imports_in_functions() -> None:
    """Guard the guard: lazy imports inside functions count too."""
    tree = ast.parse(
        "def f():\n    import textual.app\n"
        "def g():\n    from textual.widgets import DataTable\n"
        "def h():\n    importlib.import_module('textual')\n"
    )
    assert imported_names(tree) == ["textual.app", "textual.widgets", "textual"]


def test_importing_every_core_module_leaves_textual_out() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {core_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('textual', 'textual_serve', 'observatory'))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout)
    assert not [m for m in loaded if m.split(".")[0] in TEXTUAL]
    assert set(core_modules()) <= set(loaded)


def test_the_cli_help_does_not_load_textual() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from observatory.cli import main\n"
        "r = CliRunner().invoke(main, ['query', '--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print('textual' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
