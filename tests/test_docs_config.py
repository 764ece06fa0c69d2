"""docs/configuration.md names every environment variable the code reads, once, and no other.

The variables are found by reading the source, not from a list: every read of
``os.environ`` (``get``, ``[...]``, ``setdefault``, ``in``, ``os.getenv``) and of a mapping
handed down as the environment (a name such as ``env``), with the variable's name
followed back through constants, loops over constant tuples, f-strings and the
arguments of the helpers that read it (``_port("OPSBOT_PORT", ...)``,
``account_from_env(env, "JIRA")`` reading ``JIRA_URL`` ...). A read whose name cannot be
followed fails the test with its place, so a new variable cannot slip past by being
read in an unusual way. The shell scripts' ``${VAR:-default}`` and the ``${VAR}``
references of the project's YAML files count too.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "configuration.md"
ENV_EXAMPLE = ROOT / "deploy" / "opsbot.env.example"
PACKAGES = ("actions", "connectors", "opsbot", "nlu", "simulators")
SCRIPTS = ROOT / "scripts"
# Project files whose ${VAR} references opsbot (or Rasa, for endpoints.yml) fills in.
YAML_FILES = ("endpoints.yml", "credentials.yml", "operations/*.yml")

Function = ast.FunctionDef | ast.AsyncFunctionDef
NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$")
# Names a mapping of environment variables goes by in the code.
ENV_MAPPINGS = {"env", "environ", "variables"}
ENV_REFERENCE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::?-[^}]*)?\}")

# Reads whose variable is not a fixed name, by design; each must still be found in the
# code (a stale entry fails), so the list cannot hide a new read.
NOT_FIXED = {
    ("actions/operations/_runners.py", "one"):
        "an operation file's ${VAR}, filled in when it runs: the team names its variables",
    ("actions/operations/_checks.py", "_check_env"):
        "an operation file's ${VAR}, checked when the file is loaded",
    ("actions/operations/_runs.py", "reaches_jenkins"):
        "an operation file's ${VAR} in run.http.url, to tell whether it posts to Jenkins",
    ("actions/_redact.py", "secrets_from_env"):
        "every <PREFIX>_USER with its <PREFIX>_TOKEN or _PASSWORD, to mask HTTP Basic pairs",
}


@dataclass
class Read:
    where: str
    function: str
    names: set[str] | None  # None: the name could not be followed


@dataclass
class Module:
    path: str
    tree: ast.Module
    constants: dict[str, ast.expr] = field(default_factory=dict)
    parents: dict[ast.AST, ast.AST] = field(default_factory=dict)
    imported: set[str] = field(default_factory=set)


class Source:
    """Every Python module of the packages, with what is needed to follow a name back."""

    def __init__(self, root: Path) -> None:
        self.modules: list[Module] = []
        for package in PACKAGES:
            for path in sorted((root / package).rglob("*.py")):
                tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
                module = Module(str(path.relative_to(root)), tree)
                for node in ast.walk(tree):
                    for child in ast.iter_child_nodes(node):
                        module.parents[child] = node
                    if isinstance(node, ast.ImportFrom):
                        module.imported |= {a.asname or a.name for a in node.names}
                for statement in tree.body:
                    targets = statement.targets if isinstance(statement, ast.Assign) else (
                        [statement.target] if isinstance(statement, ast.AnnAssign)
                        and statement.value is not None else [])
                    value = getattr(statement, "value", None)
                    for target in targets:
                        if isinstance(target, ast.Name) and value is not None:
                            module.constants[target.id] = value
                self.modules.append(module)
        self.functions: dict[str, list[tuple[Module, Function]]] = {}
        self.calls: dict[str, list[tuple[Module, ast.Call]]] = {}
        for module in self.modules:
            for node in ast.walk(module.tree):
                if isinstance(node, Function):
                    self.functions.setdefault(node.name, []).append((module, node))
                elif isinstance(node, ast.Call):
                    called = node.func
                    name = called.id if isinstance(called, ast.Name) else (
                        called.attr if isinstance(called, ast.Attribute) else None)
                    if name:
                        self.calls.setdefault(name, []).append((module, node))

    # -- where a read is --------------------------------------------------------------

    def enclosing(self, module: Module, node: ast.AST) -> Function | None:
        current = module.parents.get(node)
        while current is not None:
            if isinstance(current, Function):
                return current
            current = module.parents.get(current)
        return None

    def reads(self) -> Iterator[Read]:
        for module in self.modules:
            for node in ast.walk(module.tree):
                key = _read_key(node)
                if key is None:
                    continue
                function = self.enclosing(module, node)
                names = self.resolve(module, function, key, depth=0)
                yield Read(f"{module.path}:{node.lineno}",  # type: ignore[attr-defined]
                           function.name if function else "<module>", names)

    # -- following a name back ----------------------------------------------------------

    def resolve(self, module: Module, function: Function | None,
                expr: ast.expr, depth: int) -> set[str] | None:
        if depth > 6:
            return None
        if isinstance(expr, ast.Constant):
            return {expr.value} if isinstance(expr.value, str) else None
        if isinstance(expr, ast.JoinedStr | ast.BinOp):
            parts = expr.values if isinstance(expr, ast.JoinedStr) else (
                [expr.left, expr.right] if isinstance(expr.op, ast.Add) else None)
            if parts is None:
                return None
            results = {""}
            for part in parts:
                inner = part.value if isinstance(part, ast.FormattedValue) else part
                found = self.resolve(module, function, inner, depth + 1)
                if found is None:
                    return None
                results = {a + b for a in results for b in found}
            return results
        if isinstance(expr, ast.Name):
            return self._resolve_name(module, function, expr.id, depth)
        if isinstance(expr, ast.Subscript):
            return self._strings(module, function, expr.value, depth + 1)
        return None

    def _resolve_name(self, module: Module, function: Function | None,
                      name: str, depth: int) -> set[str] | None:
        while function is not None:
            local = self._in_function(module, function, name, depth)
            if local is not False:
                return local  # type: ignore[return-value]
            function = self.enclosing(module, function)
        return self._constant(name, depth)

    def _in_function(self, module: Module, function: Function,
                     name: str, depth: int, collection: bool = False) -> set[str] | None | bool:
        """The names ``name`` holds inside ``function`` (``collection``: the names in the
        collection it holds); False if it is not bound there."""
        arguments = [a.arg for a in (*function.args.posonlyargs, *function.args.args)]
        keyword_only = [a.arg for a in function.args.kwonlyargs]
        if name in arguments or name in keyword_only:
            return self._from_callers(module, function, name, arguments, depth)
        found: set[str] = set()
        bound = False
        for node in ast.walk(function):
            if isinstance(node, ast.For | ast.comprehension) and _binds(node.target, name):
                bound = True
                strings = self._strings(module, function, node.iter, depth + 1)
            elif isinstance(node, ast.Assign) and any(_binds(t, name) for t in node.targets):
                bound = True
                strings = (self._strings if collection else self.resolve)(
                    module, function, node.value, depth + 1)
            else:
                continue
            if strings is None:
                return None
            found |= strings
        return found if bound else False

    def _from_callers(self, home: Module, function: Function,
                      name: str, arguments: list[str], depth: int) -> set[str] | None:
        found: set[str] = set()
        method = bool(arguments) and arguments[0] in ("self", "cls")
        for module, call in self.calls.get(function.name, []):
            if not _may_call(home, function, module, call):
                continue
            index = arguments.index(name) if name in arguments else None
            given: ast.expr | None = next(
                (k.value for k in call.keywords if k.arg == name), None)
            if given is None and index is not None:
                position = index - (1 if method and isinstance(call.func, ast.Attribute) else 0)
                if 0 <= position < len(call.args) and not any(
                        isinstance(a, ast.Starred) for a in call.args[:position + 1]):
                    given = call.args[position]
            if given is None:
                continue  # the default is used: a default is a constant, not a variable name
            value = self.resolve(module, self.enclosing(module, call), given, depth + 1)
            if value is None:
                return None
            found |= value
        return found or None

    def _constant(self, name: str, depth: int) -> set[str] | None:
        for module in self.modules:
            if name in module.constants:
                return self._strings(module, None, module.constants[name], depth + 1)
        return None

    def _strings(self, module: Module, function: Function | None,
                 expr: ast.expr, depth: int) -> set[str] | None:
        """The variable-like strings in a collection (a loop's iterable, a table)."""
        if depth > 8:
            return None
        if isinstance(expr, ast.Name):
            scope = function
            while scope is not None:
                local = self._in_function(module, scope, expr.id, depth, collection=True)
                if local is not False:
                    return local  # type: ignore[return-value]
                scope = self.enclosing(module, scope)
            return self._constant(expr.id, depth)
        if isinstance(expr, ast.Subscript):
            return self._strings(module, function, expr.value, depth + 1)
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and \
                expr.func.attr in ("items", "keys", "values"):
            return self._strings(module, function, expr.func.value, depth + 1)
        if isinstance(expr, ast.Constant):
            return {expr.value} if isinstance(expr.value, str) else None
        if isinstance(expr, ast.Tuple | ast.List | ast.Set | ast.Dict):
            found: set[str] = set()
            for node in ast.walk(expr):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                        and NAME.match(node.value):
                    found.add(node.value)
                elif isinstance(node, ast.Name):
                    inner = self._constant(node.id, depth + 1)
                    found |= {s for s in inner or () if NAME.match(s)}
            return found
        return None


def _may_call(home: Module, function: Function,
              module: Module, call: ast.Call) -> bool:
    """Whether ``call`` (in ``module``) can be a call of ``function`` (defined in ``home``):
    a private helper is called from its own module only; a bare name from elsewhere must
    be imported there."""
    if module is home:
        return True
    if function.name.startswith("_"):
        return False
    if isinstance(call.func, ast.Attribute):
        return True
    return function.name in module.imported


def _binds(target: ast.expr, name: str) -> bool:
    return any(isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and n.id == name
               for n in ast.walk(target))


def _is_environ(expr: ast.expr) -> bool:
    """``os.environ``, or a mapping the code names as the environment (``env``)."""
    if isinstance(expr, ast.Attribute):
        return expr.attr == "environ" and isinstance(expr.value, ast.Name) and expr.value.id == "os"
    return isinstance(expr, ast.Name) and expr.id in ENV_MAPPINGS


def _read_key(node: ast.AST) -> ast.expr | None:
    """The key expression of an environment read at ``node``; None if it is none."""
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "getenv" and \
                isinstance(func.value, ast.Name) and func.value.id == "os" and node.args:
            return node.args[0]
        if isinstance(func, ast.Attribute) and func.attr in ("get", "setdefault", "pop") and \
                _is_environ(func.value) and node.args:
            return node.args[0]
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and \
            _is_environ(node.value) and not (isinstance(node.slice, ast.Constant)
                                             and isinstance(node.slice.value, int)):
        return node.slice
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and \
            isinstance(node.ops[0], ast.In | ast.NotIn) and _is_environ(node.comparators[0]):
        return node.left
    return None


def _shell_reads(path: Path) -> set[str]:
    """Variables a script takes from its environment: ``${VAR:-default}``, or ``$VAR``
    used without being set in the script."""
    text = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines()
                     if not line.lstrip().startswith("#"))
    defaulted = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):?[-=]", text))
    assigned = set(re.findall(r"(?:^|[\s;(])(?:export\s+|local\s+)?([A-Z][A-Z0-9_]*)=", text, re.M))
    assigned |= set(re.findall(r"\bfor\s+([A-Z][A-Z0-9_]*)\s+in\b", text))
    used = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", text))
    return defaulted | (used - assigned)


def _yaml_reads(root: Path) -> set[str]:
    found: set[str] = set()
    for pattern in YAML_FILES:
        for path in root.glob(pattern):
            for line in path.read_text(encoding="utf-8").splitlines():
                if not line.lstrip().startswith("#"):
                    found |= set(ENV_REFERENCE.findall(line.split(" #")[0]))
    return found


@functools.cache
def variables_read(root: Path = ROOT) -> tuple[set[str], list[str], set[tuple[str, str]]]:
    """(every variable read, the reads whose name could not be followed, the NOT_FIXED
    entries that matched a read)."""
    found: set[str] = set()
    unresolved: list[str] = []
    exempted: set[tuple[str, str]] = set()
    for read in Source(root).reads():
        place = (read.where.split(":")[0], read.function)
        if place in NOT_FIXED:
            exempted.add(place)
            continue
        if read.names is None or not read.names:
            unresolved.append(f"{read.where} (in {read.function})")
            continue
        bad = sorted(n for n in read.names if not NAME.match(n))
        if bad:
            unresolved.append(f"{read.where} (in {read.function}): {bad}")
        found |= {n for n in read.names if NAME.match(n)}
    for script in sorted((root / SCRIPTS.name).glob("*.sh")):
        found |= _shell_reads(script)
    found |= _yaml_reads(root)
    return found, unresolved, exempted


def documented(page: Path = PAGE) -> list[tuple[str, list[str]]]:
    """The table rows of the page whose first cell is one `VARIABLE`: (name, the cells)."""
    rows = []
    for line in page.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if cells and re.fullmatch(r"`[A-Z][A-Z0-9_]*`", cells[0]):
            rows.append((cells[0].strip("`"), cells))
    return rows


def test_every_variable_the_code_reads_is_on_the_page_once() -> None:
    read, _, _ = variables_read()
    rows = documented()
    names = [name for name, _ in rows]
    missing = sorted(read - set(names))
    assert not missing, (f"docs/configuration.md does not describe {', '.join(missing)}: "
                         "add a row (variable, what it does, default, example)")
    extra = sorted(set(names) - read)
    assert not extra, (f"docs/configuration.md describes {', '.join(extra)}, which the code "
                       "no longer reads: remove the row")
    twice = sorted({n for n in names if names.count(n) > 1})
    assert not twice, f"docs/configuration.md describes {', '.join(twice)} more than once"


def test_every_row_says_what_the_default_and_an_example_are() -> None:
    for name, cells in documented():
        assert len(cells) == 4 and all(cells), \
            f"docs/configuration.md: the row of {name} needs 4 filled cells: {cells}"


def test_every_read_is_followed_to_its_name() -> None:
    _, unresolved, exempted = variables_read()
    assert not unresolved, (
        "these reads of the environment name their variable in a way the scan cannot follow "
        "(use a constant, or a helper whose callers pass one):\n  " + "\n  ".join(unresolved))
    stale = sorted(set(NOT_FIXED) - exempted)
    assert not stale, f"NOT_FIXED lists reads that are no longer in the code: {stale}"


def test_the_scan_finds_reads_of_every_shape() -> None:
    read, _, _ = variables_read()
    for name in ("OPSBOT_PORT",  # settings._port(name)
                 "JIRA_TIMEOUT",  # account_from_env(env, "JIRA") -> f"{prefix}_TIMEOUT"
                 "TEAMS_TOKEN_ISSUER",  # a loop over a constant table
                 "OPSBOT_ACTIONS_SECRET",  # a constant imported from another module
                 "PGPORT",  # a shell script
                 "CDN_TOKEN"):  # an operation file
        assert name in read, name


def test_the_deployment_template_names_only_variables_the_code_reads() -> None:
    read, _, _ = variables_read()
    named = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(encoding="utf-8"),
                           re.M))
    assert named, "deploy/opsbot.env.example names no variable"
    unknown = sorted(named - read)
    assert not unknown, (f"deploy/opsbot.env.example sets {', '.join(unknown)}, "
                         "which opsbot never reads")
