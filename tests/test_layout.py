"""The shape of the code: generic modules never name a vendor, nothing imports in a circle, and
no module grows past 500 lines."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter import vendors

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("exporter", "dashboards", "alerts")
MAX_LINES = 500


def python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def vendor_owned(path: Path) -> bool:
    """A vendor's own package, or the registry (the one generic module that names them)."""
    relative = path.relative_to(ROOT).parts
    if relative[:2] != ("exporter", "vendors"):
        return False
    return len(relative) == 3 or relative[2] in vendors.names()


def docstrings(tree: ast.Module) -> set[int]:
    """ids of the string nodes that document a module, class or function."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def code_words(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Every identifier and string in the code, with its line; comments and docstrings are not
    code."""
    skip = docstrings(tree)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Name):
            yield line, node.id
        elif isinstance(node, ast.Attribute):
            yield line, node.attr
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield line, node.name
        elif isinstance(node, ast.arg | ast.keyword) and node.arg:
            yield line, node.arg
        elif isinstance(node, ast.alias):
            yield line, f"{node.name} {node.asname or ''}"
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield line, node.module
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str | bytes)
            and id(node) not in skip
        ):
            text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
            yield line, text


def test_generic_code_names_no_vendor() -> None:
    names = vendors.names()
    assert len(names) >= 3
    offences = []
    for path in python_files(*PACKAGES):
        if vendor_owned(path):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, word in code_words(tree):
            lowered = word.lower()
            offences += [
                f"{path.relative_to(ROOT)}:{line}: {name}" for name in names if name in lowered
            ]
    assert offences == []


def test_the_vendor_check_can_fail() -> None:
    tree = ast.parse('"""About datto."""\n# datto\nx = {"type": "datto"}\n')
    assert [word for _, word in code_words(tree) if "datto" in word] == ["datto"]


def imports(path: Path, known: set[str]) -> set[str]:
    """The project modules a module imports, anywhere in it (TYPE_CHECKING and function-level
    imports included), plus the packages Python initialises on the way there, except its own."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    found = set()
    own_ancestors = {".".join(own.split(".")[:i]) for i in range(1, own.count(".") + 1)}
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name in known and name != own and (name == target or name not in own_ancestors):
                found.add(name)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_no_import_cycles() -> None:
    paths = python_files(*PACKAGES)
    known = {module_name(p) for p in paths}
    graph = {module_name(p): imports(p, known) for p in paths}
    assert "exporter.vendors" in graph["exporter.config"]
    assert cycles(graph) == []
    # One way: the dashboards read the alerts' thresholds; alerts/ reads nothing of theirs, and
    # the thresholds read nothing but the exporter's own (shared with its status page), which
    # read nothing at all. The exporter, installed alone, reads neither alerts/ nor dashboards/.
    assert graph["alerts.thresholds"] <= {"exporter", "exporter.thresholds"}
    assert graph["exporter.thresholds"] == set()
    for name, imported in graph.items():
        if name.startswith("alerts"):
            assert not {i for i in imported if i.startswith("dashboards")}, name
        if name.startswith("exporter"):
            assert not {i for i in imported if i.startswith(("alerts", "dashboards"))}, name


def test_the_cycle_check_can_fail() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("folder", [*PACKAGES, "tests", "bench"])
def test_no_module_over_500_lines(folder: str) -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in python_files(folder)
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
