"""The map in CONTRIBUTING.md held against the code: every module listed, no import cycle, and an
engine that loads no display, settings, HTTP client or store."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "evalrun"


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The evalrun modules ``name`` imports when it is itself imported (not inside functions,
    not under ``TYPE_CHECKING``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    imported: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.If) and not _is_type_checking(node):
                visit(node.body + node.orelse)
            elif isinstance(node, (ast.Try,)):
                visit(node.body + [s for h in node.handlers for s in h.body] + node.orelse + node.finalbody)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                imported.add(base)
                imported.update(f"{base}.{alias.name}" for alias in node.names)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return {m for m in imported if m in modules and m != name and not name.startswith(m + ".")}


def test_every_module_is_on_the_map() -> None:
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    missing = [
        str(path.relative_to(PACKAGE)) for path in _modules().values() if f"`{path.relative_to(PACKAGE)}`" not in text
    ]
    assert not missing, f"modules missing from CONTRIBUTING.md's map: {missing}"


def test_the_imports_form_no_cycle() -> None:
    modules = _modules()
    graph = {name: _runtime_imports(name, path, modules) for name, path in modules.items()}
    done: set[str] = set()

    def walk(name: str, trail: list[str]) -> None:
        if name in trail:
            raise AssertionError(" -> ".join([*trail[trail.index(name) :], name]))
        if name in done:
            return
        for target in sorted(graph[name]):
            walk(target, [*trail, name])
        done.add(name)

    for name in graph:
        walk(name, [])
    assert graph["evalrun.engine"], "the import graph was not read"


def test_the_engine_loads_no_display_settings_http_or_store() -> None:
    """Imported alone, the engine (and the model client it calls) brings in none of them (checked
    in a fresh interpreter)."""
    forbidden = (
        "rich", "typer", "httpx", "diskcache", "sqlite3", "yaml", "evalrun.display", "evalrun.settings",
        "evalrun.runner", "evalrun.cli.", "evalrun.providers.http", "evalrun.providers.openai",
        "evalrun.providers.anthropic", "evalrun.providers.sim", "evalrun.cache.disk", "evalrun.sim",
    )  # fmt: skip
    code = (
        "import sys, evalrun.engine\n"
        # httpx._main is evalrun's stand-in for httpx's command line (_startup.py), not httpx
        f"loaded = [m for m in sys.modules if m.startswith({forbidden!r}) or m == 'evalrun.cli']\n"
        "loaded = [m for m in loaded if m != 'httpx._main']\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"the engine loads {done.stdout.strip()}"
