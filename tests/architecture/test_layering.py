"""The dependency rules of the layout (README, Layout): imports point down, never in a cycle.

contract ← core ← notify ← {dispatcher, spawner, runtime} ← console ← {cli, local}. Notify sits
just above core because the services write its outbox events in their own transactions; the
console sits above the services because its actions call the same service functions as wfctl. The contract
is standard library only (infra/ and the runner import it); core imports no service; the runner
never imports the Kubernetes client or boto3 (it starts once per run and must stay light).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services"

LAYER: dict[str, float] = {
    "contract": 0,
    "core": 1,
    "dispatcher": 2,
    "spawner": 2,
    "runtime": 2,
    "notify": 1.5,
    "console": 2.5,
    "cli": 3,
    "local": 3,
}
#: Packages of one layer that may use another: `wfctl local …` commands drive services.local.
SIBLINGS_ALLOWED: set[tuple[str, str]] = {("cli", "local")}


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(SERVICES.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def imported(path: Path, module: str) -> set[str]:
    """Every module `path` imports, at any depth (lazy imports are dependencies too)."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                base = ".".join(anchor[: len(anchor) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def package_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "services" or len(parts) < 2:
        return None
    return parts[1]


GRAPH = {name: imported(path, name) for name, path in modules()}


def test_every_service_package_has_a_layer() -> None:
    packages = {package_of(name) for name in GRAPH} - {None}
    assert packages <= set(LAYER), f"packages without a layer: {packages - set(LAYER)}"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module: str) -> None:
    own = package_of(module)
    if own is None:
        return
    for target in GRAPH[module]:
        other = package_of(target)
        if other is None or other == own or other not in LAYER:
            continue
        assert LAYER[other] < LAYER[own] or (own, other) in SIBLINGS_ALLOWED, (
            f"{module} imports {target}: services.{own} may not depend on services.{other}"
        )


def test_the_contract_is_standard_library_only() -> None:
    for target in GRAPH["services.contract"]:
        top = target.split(".")[0]
        assert top in sys.stdlib_module_names or target == "__future__", f"services.contract imports {target}"


def test_the_runtime_never_imports_kubernetes_or_boto3() -> None:
    for module, targets in GRAPH.items():
        if package_of(module) != "runtime":
            continue
        heavy = {t for t in targets if t.split(".")[0] in {"kubernetes", "boto3", "botocore"}}
        assert not heavy, f"{module} imports {heavy}"


def test_no_import_cycles_between_modules() -> None:
    known = set(GRAPH)
    edges = {m: {t for t in targets if t in known and t != m} for m, targets in GRAPH.items()}
    # A package's __init__ importing its own modules is how packages work, not a cycle.
    for m in edges:
        edges[m] = {t for t in edges[m] if not t.startswith(m + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
