"""The package's imports run one way: from the HTTP layer down to the data layer and the
leaves, never back up, and no module imports itself through others (no cycle). Read from the
source (every import, a function's own included; not those under `if TYPE_CHECKING:`, which
name types for the checker and never run), so a new arrow shows here before it tangles."""

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Final

SOURCE: Final = Path(__file__).parents[1] / "src"
PACKAGE: Final = SOURCE / "heroapi"

# From the top down: a module may import its own layer and those below, never one above.
LAYERS: Final = (
    ("heroapi.__main__", "heroapi.cli"),
    ("heroapi.main",),
    ("heroapi.middleware", "heroapi.docs", "heroapi.openapi"),
    ("heroapi.routes",),
    ("heroapi.accounts", "heroapi.errors", "heroapi.exposition"),
    ("heroapi.throttle", "heroapi.revisions", "heroapi.migrate", "heroapi.migrations"),
    ("heroapi.crud", "heroapi.rendering", "heroapi.access_log"),
    ("heroapi.db", "heroapi.security"),
    ("heroapi.config", "heroapi.database_url", "heroapi.logs"),
    (
        "heroapi.models",
        "heroapi.cursors",
        "heroapi.addresses",
        "heroapi.metrics",
        "heroapi.origins",
    ),
)


def _name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of `tree` but those under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            yield from (inner for child in node.orelse for inner in ast.walk(child))
            continue
        yield node
        yield from _runtime_nodes(node)


def _imports(path: Path) -> Iterator[str]:
    module = _name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)


def _graph() -> dict[str, set[str]]:
    modules = {_name(path): path for path in PACKAGE.rglob("*.py")}
    return {
        name: {target for target in _imports(path) if target in modules and target != name}
        for name, path in modules.items()
    }


def _layer(module: str) -> int:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer of LAYERS: place it")


def test_no_import_runs_up_a_layer() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in _graph().items()
        if module != "heroapi"
        for target in targets
        if target != "heroapi" and _layer(target) < _layer(module)
    ]
    assert upward == []


def test_no_import_cycle() -> None:
    graph = _graph()
    cycles: dict[frozenset[str], str] = {}
    for start in sorted(graph):
        stack = [(start, [start])]
        seen = set()
        while stack:
            module, path = stack.pop()
            for target in graph[module]:
                if target == start:
                    cycles.setdefault(frozenset(path), " -> ".join([*path, start]))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, [*path, target]))
    assert list(cycles.values()) == []
