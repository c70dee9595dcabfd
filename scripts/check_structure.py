"""Check the package's shape: sizes, import cycles, layering and estimator branches.

Run as ``python scripts/check_structure.py [PACKAGE_DIR]`` (default: the
``bayesmix`` folder next to this script's folder). Every module of the package
is checked, the paper application included:

* no module over 600 lines, and no function or method over 80 lines, counted
  from the first statement after its docstring to its last line;
* no import cycle among the package's modules, counting imports inside
  functions and relative imports; ``from a import b`` is an import of module
  ``a.b`` where that is a module, else of ``a``. Imports under
  ``if TYPE_CHECKING:`` never run, so they make no cycle;
* no library module (anything outside ``<package>/paper/``) imports the paper
  application, whether by an import statement or by ``importlib.import_module``
  with a literal name;
* outside ``<package>/results/``, no code branches on which estimator made a
  result: ``isinstance`` (or ``issubclass``) naming ``MLResult`` or
  ``BayesResult``, alone or in a tuple; a comparison with an attribute named
  ``estimator``; ``hasattr(x, "idata")``; a comparison with a type or a type's
  name (``type(x) is ...``, ``type(x).__name__ == ...``, ``x.__class__``, the
  strings ``"MLResult"`` and ``"BayesResult"``); ``match`` on either. A message
  that merely prints ``type(x).__name__`` is no branch.

Only the standard library is used, so the check runs before anything is
installed. It prints one line per violation, ``path:line: message``, and exits
with status 1; when clean it prints a one-line summary and exits with status 0.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MAX_MODULE_LINES = 600
"""The most lines a module may have."""

MAX_FUNCTION_LINES = 80
"""The most lines a function may have, its signature and docstring not counted."""

RESULT_TYPES = frozenset({"MLResult", "BayesResult"})
"""The result classes whose type code outside the results package must not test."""

APPLICATION = "paper"
"""The subpackage that is an application on top of the library."""

RESULTS = "results"
"""The subpackage that alone may know which estimator made a result."""


@dataclass(frozen=True, order=True)
class Violation:
    """One breach of the rules, at a place in a file.

    Parameters
    ----------
    path : str
        The file, relative to the package folder's parent.
    line : int
        The line the breach starts on (1 for whole-module breaches).
    message : str
        What is wrong, in words.
    """

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class Module:
    """A parsed module of the package.

    Parameters
    ----------
    name : str
        The dotted module name, e.g. ``bayesmix.model.spec``.
    path : Path
        The file.
    display : str
        The file as it is named in messages.
    tree : ast.Module
        The parsed source.
    n_lines : int
        The number of lines in the file.
    is_package : bool
        Whether the file is a package's ``__init__.py``.
    """

    name: str
    path: Path
    display: str
    tree: ast.Module
    n_lines: int
    is_package: bool
    imports: list[tuple[str, int, bool]] = field(default_factory=list)
    """Each import as (dotted target, line, whether it runs), filled by `collect_imports`."""


def load_modules(package_dir: Path) -> list[Module]:
    """Parse every module under a package folder.

    Parameters
    ----------
    package_dir : Path
        The package's folder (the one holding its top ``__init__.py``).

    Returns
    -------
    list of Module
        The modules, sorted by name.
    """
    modules = []
    root = package_dir.parent
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(root)
        parts = list(rel.with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        text = path.read_text(encoding="utf-8")
        modules.append(
            Module(
                name=".".join(parts),
                path=path,
                display=rel.as_posix(),
                tree=ast.parse(text, filename=str(path)),
                n_lines=len(text.splitlines()),
                is_package=is_package,
            )
        )
    return sorted(modules, key=lambda m: m.name)


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def function_length(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function from its first statement after the docstring to its end.

    Parameters
    ----------
    node : ast.FunctionDef or ast.AsyncFunctionDef
        The function.

    Returns
    -------
    int
        The number of lines; 0 for a function whose body is only a docstring.
    """
    body = node.body[1:] if _is_docstring(node.body[0]) else node.body
    if not body or node.end_lineno is None:
        return 0
    return node.end_lineno - body[0].lineno + 1


def check_sizes(module: Module) -> Iterator[Violation]:
    """Find a module over the line limit and functions over theirs.

    Parameters
    ----------
    module : Module
        The module to check.

    Yields
    ------
    Violation
        One per module or function over its limit.
    """
    if module.n_lines > MAX_MODULE_LINES:
        yield Violation(
            module.display,
            1,
            f"module has {module.n_lines} lines (limit {MAX_MODULE_LINES})",
        )
    yield from _check_functions(module, module.tree, "")


def _check_functions(module: Module, parent: ast.AST, prefix: str) -> Iterator[Violation]:
    for node in ast.iter_child_nodes(parent):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            qualname = prefix + node.name
            length = function_length(node)
            if length > MAX_FUNCTION_LINES:
                yield Violation(
                    module.display,
                    node.lineno,
                    f"function {qualname} has {length} lines (limit {MAX_FUNCTION_LINES})",
                )
            yield from _check_functions(module, node, qualname + ".")
        elif isinstance(node, ast.ClassDef):
            yield from _check_functions(module, node, prefix + node.name + ".")
        else:
            yield from _check_functions(module, node, prefix)


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _walk_imports(node: ast.AST, runs: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Every import statement or call under a node, with whether it runs at all."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node, runs
        return
    if isinstance(node, ast.Call) and _literal_import_call(node) is not None:
        yield node, runs
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        for child in node.body:
            yield from _walk_imports(child, False)
        for child in node.orelse:
            yield from _walk_imports(child, runs)
        return
    for child in ast.iter_child_nodes(node):
        yield from _walk_imports(child, runs)


def _literal_import_call(node: ast.Call) -> str | None:
    """The literal module name of ``importlib.import_module(...)`` or ``__import__(...)``."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in {"import_module", "__import__"} or not node.args:
        return None
    first = node.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None


def _package_of(module: Module) -> str:
    return module.name if module.is_package else module.name.rpartition(".")[0]


def _resolve_relative(module: Module, level: int, name: str | None) -> str:
    base = _package_of(module).split(".")
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def collect_imports(module: Module, known: set[str]) -> None:
    """Record the package modules a module imports, each with its line.

    Parameters
    ----------
    module : Module
        The module; its ``imports`` list is filled.
    known : set of str
        The names of all the package's modules, to tell ``from a import b``
        of a module ``b`` from that of a name ``b`` defined in ``a``.
    """
    for node, runs in _walk_imports(module.tree, True):
        for target in _targets(module, node, known):
            module.imports.append((target, getattr(node, "lineno", 1), runs))


def _targets(module: Module, node: ast.AST, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = _resolve_relative(module, node.level, node.module)
        else:
            base = node.module or ""
        found = []
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            found.append(sub if sub in known else base)
        return found
    if isinstance(node, ast.Call):
        literal = _literal_import_call(node)
        if literal is None:
            return []
        if literal.startswith("."):
            level = len(literal) - len(literal.lstrip("."))
            return [_resolve_relative(module, level, literal.lstrip(".") or None)]
        return [literal]
    return []


def _owner(target: str, known: set[str]) -> str | None:
    """The package module an import target names: itself, or its nearest known parent."""
    parts = target.split(".")
    while parts:
        name = ".".join(parts)
        if name in known:
            return name
        parts.pop()
    return None


def check_cycles(modules: Sequence[Module]) -> Iterator[Violation]:
    """Find import cycles among the package's modules.

    Parameters
    ----------
    modules : sequence of Module
        The modules, their imports collected.

    Yields
    ------
    Violation
        One per strongly connected group of modules, naming one cycle in it.
    """
    by_name = {m.name: m for m in modules}
    known = set(by_name)
    graph: dict[str, dict[str, int]] = {name: {} for name in by_name}
    for module in modules:
        for target, line, runs in module.imports:
            owner = _owner(target, known)
            if runs and owner is not None and owner != module.name:
                graph[module.name].setdefault(owner, line)
    for group in _strongly_connected(graph):
        if len(group) < 2:
            continue
        start = min(group)
        cycle = _shortest_cycle(graph, start, group)
        first = by_name[start]
        yield Violation(
            first.display,
            graph[start][cycle[1]],
            "import cycle: " + " -> ".join(cycle),
        )


def _strongly_connected(graph: dict[str, dict[str, int]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative so that deep chains do not hit the recursion limit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[set[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                groups.append(group)
    return groups


def _shortest_cycle(graph: dict[str, dict[str, int]], start: str, group: set[str]) -> list[str]:
    """A shortest path from ``start`` back to itself, within one strongly connected group."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child not in group:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return [start, start]


def check_layering(module: Module, package: str) -> Iterator[Violation]:
    """Find a library module that imports the paper application.

    Parameters
    ----------
    module : Module
        The module, its imports collected.
    package : str
        The top package's name.

    Yields
    ------
    Violation
        One per import of the application from outside it.
    """
    application = f"{package}.{APPLICATION}"
    if _within(module.name, application):
        return
    for target, line, _ in module.imports:
        if _within(target, application):
            yield Violation(
                module.display,
                line,
                f"library module {module.name} imports {target}; "
                f"the library must not depend on the {APPLICATION} application",
            )


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def check_estimator_branches(module: Module, package: str) -> Iterator[Violation]:
    """Find code outside the results package that tests which estimator made a result.

    Parameters
    ----------
    module : Module
        The module.
    package : str
        The top package's name.

    Yields
    ------
    Violation
        One per branch on the estimator.
    """
    if _within(module.name, f"{package}.{RESULTS}"):
        return
    for node in ast.walk(module.tree):
        reason = _estimator_branch(node)
        if reason is not None:
            yield Violation(
                module.display,
                getattr(node, "lineno", 1),
                f"branches on the estimator ({reason}); use the results interface",
            )


def _estimator_branch(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id in {"isinstance", "issubclass"} and len(node.args) == 2:
            named = _result_type_names(node.args[1])
            if named:
                return f"{node.func.id} on {', '.join(named)}"
        if node.func.id == "hasattr" and len(node.args) == 2:
            attr = node.args[1]
            if isinstance(attr, ast.Constant) and attr.value == "idata":
                return 'hasattr(..., "idata")'
    if isinstance(node, ast.Compare):
        for operand in [node.left, *node.comparators]:
            reason = _branching_operand(operand)
            if reason is not None:
                return f"comparison with {reason}"
    if isinstance(node, ast.Match):
        reason = _branching_operand(node.subject)
        if reason is not None:
            return f"match on {reason}"
        for case in node.cases:
            for pattern in ast.walk(case.pattern):
                if isinstance(pattern, ast.MatchClass) and _result_type_names(pattern.cls):
                    return "match on a result class"
    return None


def _result_type_names(node: ast.expr) -> list[str]:
    """The result classes an ``isinstance`` second argument names, alone or in a tuple."""
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [name for element in node.elts for name in _result_type_names(element)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _result_type_names(node.left) + _result_type_names(node.right)
    name = _simple_name(node)
    return [name] if name in RESULT_TYPES else []


def _simple_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _branching_operand(operand: ast.expr) -> str | None:
    """Why an operand of a comparison makes it a test of the estimator, if it does.

    The whole operand is searched, so that ``(a.estimator, b.estimator) == ...``
    and ``type(x).__name__.lower() == ...`` count as well.
    """
    for node in ast.walk(operand):
        reason = _branching_part(node)
        if reason is not None:
            return reason
    return None


def _branching_part(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and node.attr == "estimator":
        return "an attribute named estimator"
    if isinstance(node, ast.Constant) and node.value in RESULT_TYPES:
        return f'the string "{node.value}"'
    if isinstance(node, ast.Call) and _simple_name(node.func) == "getattr" and len(node.args) > 1:
        name = node.args[1]
        if isinstance(name, ast.Constant) and name.value == "estimator":
            return "an attribute named estimator"
    if isinstance(node, ast.expr) and _simple_name(node) in RESULT_TYPES:
        return f"the class {_simple_name(node)}"
    if _is_type_of(node):
        return "a type"
    if isinstance(node, ast.Attribute) and node.attr in {"__name__", "__qualname__"}:
        if _is_type_of(node.value):
            return "a type's name"
    return None


def _is_type_of(node: ast.AST) -> bool:
    """Whether an expression is ``type(x)`` or ``x.__class__``."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id == "type" and len(node.args) == 1
    return isinstance(node, ast.Attribute) and node.attr == "__class__"


def check(package_dir: Path) -> tuple[list[Violation], int]:
    """Run every check over a package.

    Parameters
    ----------
    package_dir : Path
        The package's folder.

    Returns
    -------
    violations : list of Violation
        Every breach found, sorted by file and line.
    n_modules : int
        How many modules were checked.
    """
    modules = load_modules(package_dir)
    package = package_dir.name
    known = {m.name for m in modules}
    violations: list[Violation] = []
    for module in modules:
        collect_imports(module, known)
        violations.extend(check_sizes(module))
        violations.extend(check_layering(module, package))
        violations.extend(check_estimator_branches(module, package))
    violations.extend(check_cycles(modules))
    # a comparison nested in another is found twice; one line each is enough
    return sorted(set(violations)), len(modules)


def main(argv: Sequence[str] | None = None) -> int:
    """Check a package and report.

    Parameters
    ----------
    argv : sequence of str, optional
        At most one argument, the package folder; the default is the
        ``bayesmix`` folder of the repository holding this script.

    Returns
    -------
    int
        1 when a rule is broken, else 0.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1:
        print("usage: check_structure.py [PACKAGE_DIR]", file=sys.stderr)
        return 2
    package_dir = Path(args[0]) if args else Path(__file__).resolve().parent.parent / "bayesmix"
    if not (package_dir / "__init__.py").is_file():
        print(f"error: {package_dir} is not a package folder", file=sys.stderr)
        return 2
    violations, n_modules = check(package_dir)
    for violation in violations:
        print(violation)
    if violations:
        return 1
    print(
        f"structure ok: {n_modules} modules, each at most {MAX_MODULE_LINES} lines, functions at "
        f"most {MAX_FUNCTION_LINES}, no import cycle, no library import of "
        f"{package_dir.name}.{APPLICATION}, no estimator branch outside {RESULTS}/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
