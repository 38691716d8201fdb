"""The layout's import rules, read from the source (no import needed): app -> worker -> adrpo_engine,
migrations -> worker, never upwards; the engine imports no web, queue or database library; and no
circle among the project's modules."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("adrpo_engine", "worker", "app", "migrations")
# Who may import whom (besides itself).
ALLOWED = {
    "adrpo_engine": set(),
    "worker": {"adrpo_engine"},
    "app": {"worker", "adrpo_engine"},
    "migrations": {"worker"},
}
# Libraries of the web layer, the task queue and the database: the engine must run without them.
SERVICE_LIBRARIES = {"fastapi", "starlette", "uvicorn", "gradio", "gradio_client", "celery", "kombu", "redis",
                     "sqlalchemy", "alembic", "psycopg", "psycopg2"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in (REPO / package).rglob("*.py")}


def imports_of(name: str, path: Path) -> set[str]:
    """Absolute names a module imports anywhere in it (function-level imports too; relative ones resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def module_edges(name: str, path: str | Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports. ``from pkg import mod`` needs ``pkg.mod``
    (the package is already being imported when any of its modules is); ancestors are never a circle."""
    targets = imports_of(name, Path(path))
    edges = set()
    for target in targets:
        if target not in modules or target == name or name.startswith(target + "."):
            continue
        if any(other.startswith(target + ".") and other in targets for other in modules):
            continue  # a package named only as the parent of a submodule imported from it
        edges.add(target)
    return edges


def test_imports_only_go_downwards_and_the_engine_has_no_service_import():
    wrong = []
    for name, path in project_modules().items():
        top = name.split(".")[0]
        for target in imports_of(name, path):
            root = target.split(".")[0]
            if root in PACKAGES and root != top and root not in ALLOWED[top]:
                wrong.append(f"{name} imports {target}")
            if top == "adrpo_engine" and root in SERVICE_LIBRARIES:
                wrong.append(f"{name} imports the service library {root}")
    assert wrong == []


def test_no_import_circle_among_modules():
    # Function-level imports count too: a lazy import that closes a circle is still a circle.
    modules = project_modules()
    graph = {}
    for name, path in modules.items():
        graph[name] = module_edges(name, path, modules)
    circles = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert circles == []
