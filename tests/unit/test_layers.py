"""The layers hold: hapx/'s modules import one another without a circle, and never reach up to components/."""

import ast
import sys
from pathlib import Path

from tests.conftest import PROJECT

HAPX = PROJECT / "hapx"


def module_name(path: Path) -> str:
    """hapx/cli/render.py -> hapx.cli.render; a package's __init__.py is the package."""
    parts = path.relative_to(PROJECT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, name: str, modules: set[str]) -> set[str]:
    """Every module the module name (at path) imports, at the top or inside a function, resolved to
    a name of modules where it is one of them (`from hapx import spec` is hapx.spec), else as written."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in modules else base)
    return found


def hapx_graph() -> dict[str, set[str]]:
    """hapx's module import graph: each module of hapx/ and the modules of hapx/ it imports."""
    paths = sorted(HAPX.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): {m for m in imported(p, module_name(p), modules) if m in modules} - {module_name(p)} for p in paths}


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle in graph (its modules in order, the first repeated at the end), or []."""
    done: set[str] = set()
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        if node in stack:
            return stack[stack.index(node):] + [node]
        if node in done:
            return []
        stack.append(node)
        for nxt in sorted(graph[node]):
            found = visit(nxt)
            if found:
                return found
        stack.pop()
        done.add(node)
        return []

    for start in sorted(graph):
        found = visit(start)
        if found:
            return found
    return []


def test_the_cycle_finder_finds_a_circle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_the_graph_sees_lazy_and_from_package_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("from hapx import spec\n\ndef f():\n    from hapx.model import Settings\n")
    assert imported(source, "hapx.m", {"hapx.spec", "hapx.model"}) >= {"hapx.spec", "hapx.model"}


def test_hapx_imports_have_no_circle():
    graph = hapx_graph()
    assert {"hapx.settings", "hapx.stackfile", "hapx.model"} <= set(graph)
    assert cycle(graph) == [], "import circle: " + " -> ".join(cycle(graph))


def test_hapx_imports_nothing_from_components():
    modules = {module_name(p) for p in HAPX.rglob("*.py")}
    upward = {module_name(p): sorted(m for m in imported(p, module_name(p), modules) if m.split(".")[0] == "components")
              for p in sorted(HAPX.rglob("*.py"))}
    assert {name: found for name, found in upward.items() if found} == {}


def test_only_commands_import_commands():
    """hapx/cli/ holds the entry points: the library and the Pulumi layer never import them."""
    paths = sorted([*HAPX.rglob("*.py"), *(PROJECT / "components").rglob("*.py"), PROJECT / "__main__.py"])
    modules = {module_name(p) for p in paths}
    callers = {module_name(p): sorted(m for m in imported(p, module_name(p), modules) if m.startswith("hapx.cli"))
               for p in paths if not module_name(p).startswith("hapx.cli")}
    assert {name: found for name, found in callers.items() if found} == {}


def test_on_node_scripts_use_the_standard_library_only_and_nobody_imports_them():
    """hapx/on_node/ runs under the nodes' python3, shipped as text: no hapx, no third-party package."""
    scripts = sorted((HAPX / "on_node").glob("*.py"))
    assert [p.name for p in scripts] == ["__init__.py", "status_report.py"]
    for path in scripts:
        outside = {m for m in imported(path, module_name(path), set()) if m.split(".")[0] not in sys.stdlib_module_names}
        assert outside == set(), f"{path.name} imports {sorted(outside)}"
    graph = hapx_graph()
    assert sorted(m for m, deps in graph.items() if any(d.startswith("hapx.on_node") for d in deps)) == []
