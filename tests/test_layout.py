"""The shape of the code: no import circles, between the top-level packages or inside one.

Every import counts, the ones inside functions too (a lazy import is still a dependency);
only ``if TYPE_CHECKING:`` blocks are left out. The packages sit in layers: ``actions``
(the core) under ``connectors`` and ``nlu``, and ``opsbot`` (the command line) on top.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("actions", "connectors", "nlu", "opsbot", "simulators")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports (a name imported from a package counts as
    the module it is, if it is one, else as the package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(block.test) for node in ast.walk(block)}

    def resolve(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    found: set[str] = set()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(t for a in node.names if (t := resolve(a.name)))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + [base] * bool(base))
            found.update(t for a in node.names if (t := resolve(f"{base}.{a.name}")))
    found.discard(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the path that closes it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_imports_itself_through_others() -> None:
    found = _cycle(_graph())
    assert found is None, "import circle: " + " -> ".join(found or [])


def test_the_top_level_packages_import_in_one_direction() -> None:
    top = {p: set() for p in PACKAGES}
    for name, targets in _graph().items():
        top[name.split(".")[0]].update(t.split(".")[0] for t in targets)
    packages = {p: {t for t in targets if t != p} for p, targets in top.items()}
    found = _cycle(packages)
    assert found is None, "the packages import each other: " + " -> ".join(found or [])
    assert not packages["actions"], f"actions is the core; it imports {packages['actions']}"


def test_the_checker_finds_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_package_in_actions_is_named_like_a_library() -> None:
    """rasa_sdk finds the actions with ``pkgutil.walk_packages``, which imports each
    package found by its bare name: ``actions/backends/jenkins/`` would import
    python-jenkins instead, and the action server would not start."""
    import importlib.util

    def installed(name: str) -> bool:  # a folder of data (a namespace package) is harmless
        spec = importlib.util.find_spec(name)
        return spec is not None and spec.origin is not None

    clashes = sorted(path.parent.name for path in (ROOT / "actions").rglob("__init__.py")
                     if path.parent != ROOT / "actions" and installed(path.parent.name))
    assert not clashes, f"packages in actions/ named like an installed module: {clashes}"


LONG = 800  # lines; a longer module is one cohesive thing and says why at its top


def test_a_long_module_says_why_it_is_one() -> None:
    unexplained = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            if text.count("\n") > LONG and "Why one module:" not in (ast.get_docstring(
                    ast.parse(text)) or ""):
                unexplained.append(f"{path.relative_to(ROOT)} ({text.count(chr(10))} lines)")
    assert not unexplained, (f"over {LONG} lines without \"Why one module:\" in the docstring "
                             f"(split it along its seams, or say why it is one): {unexplained}")
