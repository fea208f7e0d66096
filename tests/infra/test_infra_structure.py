"""How the program is put together: components, parents, names, providers, exports, imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from infra_harness import REPO_ROOT, ProgramRun

INFRA = REPO_ROOT / "infra"
COMPONENT_PREFIX = "workflow-runtime:index:"
EXPECTED_COMPONENTS = {
    "WorkQueue",
    "PlatformSecrets",
    "RuntimeNamespace",
    "Dispatcher",
    "Spawner",
    "RunnerTemplate",
    "Images",
    "Console",
}


def infra_modules() -> list[Path]:
    return sorted(INFRA.glob("*.py"))


def component_classes(tree: ast.Module) -> list[ast.ClassDef]:
    def is_component(base: ast.expr) -> bool:
        return isinstance(base, ast.Attribute) and base.attr == "ComponentResource"

    return [
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef) and any(is_component(b) for b in node.bases)
    ]


def test_one_component_per_module_with_typed_args() -> None:
    found = set()
    for module in infra_modules():
        tree = ast.parse(module.read_text())
        components = component_classes(tree)
        assert len(components) <= 1, f"{module.name} defines several components"
        if not components:
            continue
        component = components[0]
        found.add(component.name)
        args_class = f"{component.name}Args"
        dataclasses = {
            node.name
            for node in tree.body
            if isinstance(node, ast.ClassDef)
            and any("dataclass" in ast.unparse(d) for d in node.decorator_list)
        }
        assert args_class in dataclasses, f"{module.name} lacks the dataclass {args_class}"
        init = next(
            node
            for node in component.body
            if isinstance(node, ast.FunctionDef) and node.name == "__init__"
        )
        arguments = [a.arg for a in init.args.args]
        assert arguments[:3] == ["self", "name", "args"], module.name
        assert ast.unparse(init.args.args[2].annotation) == args_class
        last = init.body[-1]
        assert "self.register_outputs(" in ast.unparse(last), (
            f"{component.name}.__init__ must end with register_outputs"
        )
    assert EXPECTED_COMPONENTS <= found


def test_infra_imports_nothing_from_services_but_the_contract() -> None:
    for module in [*infra_modules(), REPO_ROOT / "__main__.py"]:
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                allowed = name == "services.contract" or (
                    name == "services" and [a.name for a in node.names] == ["contract"]
                )
                assert allowed or (name != "services" and not name.startswith("services.")), (
                    f"{module.name} imports {name}: infra/ may import only services/contract.py"
                )


def test_every_component_is_declared(any_run: ProgramRun) -> None:
    declared = {
        r.type.removeprefix(COMPONENT_PREFIX)
        for r in any_run.resources
        if r.type.startswith(COMPONENT_PREFIX)
    }
    assert EXPECTED_COMPONENTS <= declared


def test_children_are_parented_and_named_after_their_component(any_run: ProgramRun) -> None:
    components = {r.urn: r.name for r in any_run.resources if r.type.startswith(COMPONENT_PREFIX)}
    for recorded in any_run.resources:
        if recorded.type.startswith(("pulumi:providers:", COMPONENT_PREFIX)):
            continue
        assert recorded.parent_urn in components, f"{recorded.type} {recorded.name} has no parent"
        parent_name = components[recorded.parent_urn]
        assert recorded.name.startswith(f"{parent_name}-"), (
            f"{recorded.name} should be named '{parent_name}-...'"
        )


@pytest.mark.parametrize("package", ["kubernetes", "aws"])
def test_explicit_providers_only(any_run: ProgramRun, package: str) -> None:
    resources = [r for r in any_run.resources if r.type.startswith(f"{package}:")]
    assert resources
    for recorded in resources:
        # A provider reference is "<provider URN>::<provider id>"; default providers are named
        # "default" or "default_<version>".
        assert recorded.provider, f"{recorded.type} {recorded.name} has no provider"
        *urn_parts, provider_name, _provider_id = recorded.provider.split("::")
        assert urn_parts[-1].endswith(f"pulumi:providers:{package}")
        assert not provider_name.startswith("default"), (
            f"{recorded.type} {recorded.name} uses a default provider"
        )


def test_kubernetes_context_comes_from_the_stack(
    local_run: ProgramRun, production_run: ProgramRun
) -> None:
    assert local_run.one("pulumi:providers:kubernetes").props["context"] == (
        "kind-workflow-runtime"
    )
    assert (
        production_run.one("pulumi:providers:kubernetes")
        .props["context"]
        .startswith("arn:aws:eks:")
    )


def test_namespace_enforces_restricted_pod_security(any_run: ProgramRun) -> None:
    namespace = any_run.one("kubernetes:core/v1:Namespace").props["metadata"]
    assert namespace["name"] == any_run.exports["namespace"]
    for mode in ("enforce", "warn", "audit"):
        assert namespace["labels"][f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_local_namespace_is_local(local_run: ProgramRun) -> None:
    assert local_run.exports["namespace"] == "local"


def test_every_namespaced_object_is_in_the_platform_namespace(any_run: ProgramRun) -> None:
    for recorded in any_run.kubernetes_objects():
        manifest = recorded.manifest()
        if manifest["kind"] == "Namespace":
            continue
        assert manifest["metadata"]["namespace"] == any_run.exports["namespace"], recorded.name


def test_exports(any_run: ProgramRun) -> None:
    assert set(any_run.exports) == {
        "queueUrl",
        "dlqUrl",
        "namespace",
        "runnerTemplateName",
        "dispatcherImage",
        "spawnerImage",
        "runnerImage",
        "consoleImage",
        "consoleService",
    }
    assert all(isinstance(value, str) and value for value in any_run.exports.values())
