"""The layering rules of docs/architecture.md, read from the imports of every module."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ftui"
HEAVY = ("torch", "transformers", "peft", "accelerate", "safetensors", "gguf")


@dataclass(frozen=True)
class Import:
    module: str  # the dotted name of the importing module
    target: str  # the dotted name imported
    line: int
    top_level: bool  # executed when the module is imported (not inside a function)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> list[Import]:
    module = _module_name(path)
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def visit(node: ast.AST, top_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child):
                continue  # annotations only: never executed
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    found.append(Import(module, alias.name, child.lineno, top_level))
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(module, is_package, child.level, child.module)
                found.append(Import(module, base, child.lineno, top_level))
                for alias in child.names:  # `from ftui import server` names a module too
                    found.append(Import(module, f"{base}.{alias.name}", child.lineno, top_level))
            else:
                visit(child, top_level)

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return found


ALL = [imp for path in sorted(PACKAGE.rglob("*.py")) for imp in _imports(path)]


def _within(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _broken(importers: tuple[str, ...], forbidden: tuple[str, ...], top_level_only=False):
    return [
        f"{imp.module}:{imp.line} imports {imp.target}"
        for imp in ALL
        if _within(imp.module, *importers)
        and _within(imp.target, *forbidden)
        and (imp.top_level or not top_level_only)
    ]


UI = ("textual", "rich", "ftui.app", "ftui.screens", "ftui.widgets", "ftui.messages")
CLIENT_SIDE = (
    "ftui.client",
    "ftui.types",
    "ftui.records",
    "ftui.dialects",
    "ftui.datadir",
    "ftui.textsafe",
    "ftui.cache",
    "ftui.config",
    "ftui.local_server",
    "ftui.prepare",
    "ftui.results",
    "ftui.fmt",
    "ftui.jobfeed",
    "ftui.notify",
    "ftui.loopback",
)


def test_the_rules_see_the_imports():
    """The reader finds what the rules are about (a rule over no imports proves nothing)."""
    targets = {(i.module, i.target) for i in ALL}
    assert ("ftui.app", "textual.app") in targets
    assert any(m.startswith("ftui.server") and t == "torch" for m, t in targets)
    assert any(m.startswith("ftui.screens") and t.startswith("ftui.client") for m, t in targets)


@pytest.mark.parametrize(
    ("rule", "importers", "forbidden"),
    [
        ("the client side imports no UI and no server", CLIENT_SIDE, (*UI, "ftui.server")),
        (
            "the server imports no UI and never the client",
            ("ftui.server",),
            (
                *UI,
                "ftui.client",
                "ftui.cache",
                "ftui.config",
                "ftui.local_server",
                "ftui.prepare",
                "ftui.commands",
                "ftui.cli",
            ),
        ),
        (
            "screens and widgets reach the network only through the client",
            ("ftui.app", "ftui.screens", "ftui.widgets"),
            ("httpx", "ftui.server", "ftui.client.transport", "ftui.client.follow"),
        ),
        (
            "commands reach servers only through the client",
            ("ftui.commands", "ftui.cli"),
            ("httpx", "ftui.client.transport"),
        ),
    ],
)
def test_layering_rule(rule, importers, forbidden):
    assert _broken(importers, forbidden) == [], rule


def test_heavy_libraries_only_inside_server_functions():
    """torch, transformers and peft cost seconds to import: never at a module's top level, and
    never outside the server (the TUI and the commands start without them)."""
    at_top = _broken(("ftui",), HEAVY, top_level_only=True)
    outside = [
        f"{imp.module}:{imp.line} imports {imp.target}"
        for imp in ALL
        if _within(imp.target, *HEAVY) and not _within(imp.module, "ftui.server")
    ]
    assert at_top == [] and outside == []
