"""The house keeps its map: no import loop, and no import from a room to one beside or above it.

The map is the package docstring of ``opensms_async`` (one line a module, under its room); this
file reads it from there, so the docs a new engineer reads and the rule checked here are one.
Every import counts: top-level ones, those under ``TYPE_CHECKING``, those inside functions
(lazy), and modules imported by name with ``importlib`` (every string in such a module that
names a module of the package).
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

PACKAGE = "opensms_async"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE
ROOM = re.compile(r"(\d+) (\w+):")
ENTRY = re.compile(r" {4}([\w.]+) {2,}\S")
MODULE_NAME = re.compile(r"\.*[A-Za-z_][\w.]*")


@attrs.frozen
class Room:
    """A room of the map: its level (the number) and its name."""

    level: int
    name: str


def read_map() -> dict[str, Room]:
    """Module (dotted, without the package prefix; the package itself by its name) -> room."""
    docstring = ast.get_docstring(ast.parse((ROOT / "__init__.py").read_text()))
    assert docstring, "the package docstring holds the map"
    rooms: dict[str, Room] = {}
    room: Room | None = None
    for line in docstring.splitlines():
        if match := ROOM.match(line):
            room = Room(int(match[1]), match[2])
        elif (match := ENTRY.match(line)) and room is not None:
            assert match[1] not in rooms, f"{match[1]} is on the map twice"
            rooms[match[1]] = room
    return rooms


def module_files() -> dict[str, Path]:
    """Every module of the package, named as on the map."""
    files = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts) or PACKAGE] = path
    return files


def absolute(name: str) -> str:
    """A map name as an importable dotted name."""
    return PACKAGE if name == PACKAGE else f"{PACKAGE}.{name}"


def imports(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """The modules of the package that ``name`` imports in any way, with the line of each."""
    tree = ast.parse(path.read_text())
    package = absolute(name) if path.name == "__init__.py" else absolute(name).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _known(alias.name, known, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve("." * node.level + (node.module or ""), package)
            for alias in node.names:  # ``from . import x`` imports the module x
                yield from _known(f"{base}.{alias.name}", known, node.lineno, fallback=base)
    if any(_imports_importlib(node) for node in ast.walk(tree)):
        for node in ast.walk(tree):  # a module imported by name: any string naming one counts
            if _names_a_module(node):
                assert isinstance(node, ast.Constant) and isinstance(node.value, str)
                yield from _known(_resolve(node.value, package), known, node.lineno)


def _names_a_module(node: ast.AST) -> bool:
    if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        return False
    return bool(MODULE_NAME.fullmatch(node.value)) and "." in node.value


def _imports_importlib(node: ast.AST) -> bool:
    if isinstance(node, ast.Import):
        return any(alias.name.split(".")[0] == "importlib" for alias in node.names)
    return isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "importlib"


def _resolve(target: str, package: str) -> str:
    level = len(target) - len(target.lstrip("."))
    if not level:
        return target
    base = package.split(".")
    base = base[: len(base) - (level - 1)]
    rest = target[level:]
    return ".".join(base + ([rest] if rest else []))


def _known(
    target: str, known: set[str], line: int, fallback: str | None = None
) -> Iterator[tuple[str, int]]:
    for candidate in (target, fallback):
        if candidate in known:
            yield candidate, line
            return


@functools.cache
def graph() -> dict[str, dict[str, int]]:
    """Module -> {imported module: line of the first import}, in absolute dotted names."""
    files = {absolute(name): path for name, path in module_files().items()}
    known = set(files)
    edges: dict[str, dict[str, int]] = {}
    for name, path in files.items():
        short = name.removeprefix(f"{PACKAGE}.") if name != PACKAGE else PACKAGE
        found: dict[str, int] = {}
        for target, line in imports(short, path, known):
            if target != name:
                found.setdefault(target, line)
        edges[name] = found
    return edges


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The groups of modules that import each other (strongly connected, more than one)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_the_map_names_every_module_once() -> None:
    """Every module of the package is on the map, and everything on the map exists."""
    on_map, present = set(read_map()), set(module_files())
    assert not present - on_map, f"modules missing from the map: {sorted(present - on_map)}"
    assert not on_map - present, f"the map names modules that do not exist: {on_map - present}"


def test_no_import_loop() -> None:
    """No two modules import each other, directly or round a loop, even lazily or for types."""
    assert cycles(graph()) == []


def test_no_import_runs_sideways_or_up() -> None:
    """Each import goes to the module's own room or to a room of a lower level."""
    rooms = {absolute(name): room for name, room in read_map().items()}
    wrong = []
    for module, targets in graph().items():
        here = rooms[module]
        for target, line in targets.items():
            there = rooms[target]
            if there != here and there.level >= here.level:
                wrong.append(f"{module}:{line} ({here.name}) imports {target} ({there.name})")
    assert wrong == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from ._poller import X", {"opensms_async._poller"}),
        ("if TYPE_CHECKING:\n    from ._client import C", {"opensms_async._client"}),
        ("def f():\n    from .stores.redis import R", {"opensms_async.stores.redis"}),
        ("import importlib\nT = {'a': ('.receiver', 'x')}", {"opensms_async.receiver"}),
        ("from . import _state", {"opensms_async._state"}),
    ],
)
def test_every_kind_of_import_is_seen(source: str, expected: set[str], tmp_path: Path) -> None:
    """The reader sees plain, type-only, lazy and by-name imports."""
    path = tmp_path / "probe.py"
    path.write_text(source)
    known = set(graph())
    assert {target for target, _ in imports("probe", path, known)} == expected


def test_a_loop_is_found() -> None:
    """The loop finder finds a loop of three and ignores a chain."""
    edges = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}
    assert cycles(edges) == [["a", "b", "c"]]
