"""Runs the whole Pulumi program under `pulumi.runtime.set_mocks` and records what it declares.

No Pulumi CLI, no provider plugins, no cloud: the mock monitor answers every resource
registration and invoke. The program is executed the way the Pulumi Python host does it
(`runpy.run_path` on the project directory), with stack configuration built from the real
`Pulumi.yaml` defaults and a stack file, so a broken default or stack file fails the tests too.

Inputs are recorded exactly as the engine would receive them: camelCase keys (pulumi-kubernetes'
typed Args classes are serialised), numbers as floats, and secret values wrapped in Pulumi's
secret envelope (the secret-ness is pushed up to the top-level property).
"""

from __future__ import annotations

import hashlib
import runpy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT = "workflow-runtime"

# Pulumi's marker for a secret value on the wire (pulumi.runtime.rpc._special_secret_sig).
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"

# Distinctive test secrets: if any of these strings shows up outside a Secret, it leaked.
TEST_DB_PASSWORD = "pw-7f1c-NEVER-IN-PLAIN-INPUTS"
TEST_DATABASE_URL = f"postgresql://workflow:{TEST_DB_PASSWORD}@db.internal.example:5432/workflow"
TEST_ENCRYPTION_KEY = "key-9d4b-NEVER-IN-PLAIN-INPUTS-c2VjcmV0LWtleQ=="
TEST_SECRETS = {
    f"{PROJECT}:databaseUrl": TEST_DATABASE_URL,
    f"{PROJECT}:integrationEncryptionKey": TEST_ENCRYPTION_KEY,
}
FAKE_ACCOUNT_ID = "123456789012"


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG


def plain(value: Any) -> Any:
    """Unwrap secret envelopes and turn integral floats back into ints (as YAML would hold them)."""
    if is_secret(value):
        return plain(value["value"])
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass
class Recorded:
    """One resource registration as the engine would have seen it."""

    type: str
    name: str
    inputs: dict[str, Any]
    provider: str | None
    urn: str = ""
    #: URN of the parent resource (a component, or the root stack).
    parent_urn: str = ""
    #: URNs of the resources it was told to wait for (`depends_on`).
    dependency_urns: tuple[str, ...] = ()

    @property
    def props(self) -> dict[str, Any]:
        """Inputs with secrets unwrapped and integral numbers as ints."""
        return plain(self.inputs)

    @property
    def is_kubernetes_object(self) -> bool:
        return self.type.startswith("kubernetes:") and not self.type.startswith("kubernetes:helm")

    def manifest(self) -> dict[str, Any]:
        """The Kubernetes object this resource applies: the inputs are the object."""
        assert self.is_kubernetes_object, self.type
        return self.props


class RecordingMocks(Mocks):
    """Echoes inputs as outputs, adds the computed outputs the program reads, records everything."""

    def __init__(self) -> None:
        self.resources: list[Recorded] = []
        self.calls: list[MockCallArgs] = []

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(Recorded(args.typ, args.name, dict(args.inputs), args.provider))
        outputs = dict(args.inputs)
        resource_id = f"{args.name}-id"
        if args.typ == "aws:sqs/queue:Queue":
            queue_name = args.inputs["name"]
            outputs["arn"] = f"arn:aws:sqs:us-east-1:{FAKE_ACCOUNT_ID}:{queue_name}"
            outputs["url"] = f"https://sqs.us-east-1.amazonaws.com/{FAKE_ACCOUNT_ID}/{queue_name}"
            resource_id = outputs["url"]
        elif args.typ == "aws:iam/role:Role":
            outputs["arn"] = f"arn:aws:iam::{FAKE_ACCOUNT_ID}:role/{args.name}"
            resource_id = args.name
        elif args.typ == "aws:ecr/repository:Repository":
            outputs["registryId"] = FAKE_ACCOUNT_ID
            outputs["repositoryUrl"] = (
                f"{FAKE_ACCOUNT_ID}.dkr.ecr.eu-west-1.amazonaws.com/{args.inputs['name']}"
            )
        elif args.typ == "docker-build:index:Image":
            tag = args.inputs["tags"][0]
            digest = "sha256:" + hashlib.sha256(tag.encode()).hexdigest()
            outputs["digest"] = digest
            # As documented for pulumi-docker-build: pushed images get a digest-pinned ref,
            # images that are only loaded locally get their tag.
            outputs["ref"] = f"{tag}@{digest}" if args.inputs.get("push") else tag
        return resource_id, outputs

    def call(self, args: MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        self.calls.append(args)
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": FAKE_ACCOUNT_ID,
                "arn": f"arn:aws:iam::{FAKE_ACCOUNT_ID}:user/test",
                "userId": "AIDATEST",
                "id": FAKE_ACCOUNT_ID,
            }
        if args.token == "aws:index/getPartition:getPartition":
            return {
                "partition": "aws",
                "dnsSuffix": "amazonaws.com",
                "reverseDnsPrefix": "com.amazonaws",
                "id": "aws",
            }
        if args.token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {
                "userName": "AWS",
                "password": "ecr-token-from-mock",
                "authorizationToken": "QVdTOmVjci10b2tlbg==",
                "proxyEndpoint": f"https://{FAKE_ACCOUNT_ID}.dkr.ecr.eu-west-1.amazonaws.com",
                "expiresAt": "2030-01-01T00:00:00Z",
                "registryId": FAKE_ACCOUNT_ID,
                "id": "eu-west-1",
            }
        raise AssertionError(f"the program made an invoke the tests do not mock: {args.token}")


@dataclass
class ProgramRun:
    """Everything one execution of the program declared."""

    resources: list[Recorded]
    exports: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_: str) -> list[Recorded]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> Recorded:
        matches = [r for r in self.of_type(type_) if name is None or r.name == name]
        assert len(matches) == 1, f"expected one {type_} {name or ''}, got {len(matches)}"
        return matches[0]

    def kubernetes_objects(self) -> list[Recorded]:
        return [r for r in self.resources if r.is_kubernetes_object]

    def by_kind(self, kind: str) -> list[dict[str, Any]]:
        return [r.manifest() for r in self.kubernetes_objects() if r.inputs.get("kind") == kind]


# --- Stack configuration -------------------------------------------------------------------


def _as_config_string(value: Any) -> str:
    """Config reaches a Python program as strings; booleans in Pulumi's spelling."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def project_defaults() -> dict[str, str]:
    """Defaults of the typed `config:` block of Pulumi.yaml, as the CLI would pass them."""
    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())
    defaults: dict[str, str] = {}
    for key, declaration in project.get("config", {}).items():
        if ":" in key:  # another namespace (pulumi:..., aws:...): not the program's config
            continue
        if isinstance(declaration, Mapping) and "default" in declaration:
            defaults[f"{PROJECT}:{key}"] = _as_config_string(declaration["default"])
    return defaults


def stack_file_values(path: Path) -> dict[str, str]:
    """The `config:` of a stack settings file; fails on committed encrypted values."""
    values = yaml.safe_load(path.read_text()).get("config", {}) or {}
    result: dict[str, str] = {}
    for key, value in values.items():
        assert not isinstance(value, Mapping) or "secure" not in value, (
            f"{path.name} commits an encrypted value for {key}"
        )
        if key.startswith(f"{PROJECT}:"):
            result[key] = _as_config_string(value)
    return result


def stack_config(stack_file: Path, **overrides: str | None) -> dict[str, str]:
    """Pulumi.yaml defaults < stack file < test secrets < overrides (None removes a key)."""
    config = {**project_defaults(), **stack_file_values(stack_file), **TEST_SECRETS}
    for key, value in overrides.items():
        full_key = f"{PROJECT}:{key}"
        if value is None:
            config.pop(full_key, None)
        else:
            config[full_key] = value
    return config


LOCAL_STACK_FILE = REPO_ROOT / "Pulumi.local.yaml"
PRODUCTION_STACK_FILE = REPO_ROOT / "docs" / "Pulumi.production.example.yaml"


# --- Running the program -------------------------------------------------------------------


class ParentRecordingMonitor(MockMonitor):
    """The stock mock monitor, plus the parent and the dependencies of every registration
    (Mocks do not see them)."""

    def __init__(self, mocks: Mocks) -> None:
        super().__init__(mocks)
        self.parents: dict[tuple[str, str], str] = {}
        self.dependencies: dict[tuple[str, str], tuple[str, ...]] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        self.parents[(request.type, request.name)] = request.parent
        self.dependencies[(request.type, request.name)] = tuple(request.dependencies)
        return super().RegisterResource(request)


def _urns_by_type_and_name(monitor: MockMonitor) -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    for urn in monitor.resources:
        qualified_type, name = urn.split("::")[2], urn.split("::")[3]
        found[(qualified_type.split("$")[-1], name)] = urn
    return found


def _configure(config: dict[str, str], stack: str, monitor: MockMonitor, mocks: Mocks) -> None:
    # A fresh root stack per run, so exports from an earlier run do not carry over.
    pulumi_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(config, secret_keys=list(TEST_SECRETS))


def run_program(config: dict[str, str], stack: str = "local") -> ProgramRun:
    """Execute `__main__.py` under mocks with `config`; exceptions from the program propagate."""
    mocks = RecordingMocks()
    monitor = ParentRecordingMonitor(mocks)
    _configure(config, stack, monitor, mocks)

    exports: dict[str, Any] = {}

    @pulumi.runtime.test
    def execute() -> pulumi.Output[Any]:
        runpy.run_path(str(REPO_ROOT), run_name="__main__")
        root = pulumi_settings.get_root_resource()
        outputs = dict(getattr(root, "outputs", {}))
        return pulumi.Output.all(**outputs).apply(exports.update)

    execute()
    urns = _urns_by_type_and_name(monitor)
    for recorded in mocks.resources:
        recorded.urn = urns.get((recorded.type, recorded.name), "")
        recorded.parent_urn = monitor.parents.get((recorded.type, recorded.name), "")
        recorded.dependency_urns = monitor.dependencies.get((recorded.type, recorded.name), ())
    return ProgramRun(resources=mocks.resources, exports=exports)


def load_stack_config(config: dict[str, str], stack: str = "local") -> Any:
    """`infra.config.load()` alone, with `config` as the stack configuration."""
    from infra import config as infra_config

    mocks = RecordingMocks()
    _configure(config, stack, MockMonitor(mocks), mocks)
    loaded: list[Any] = []

    @pulumi.runtime.test
    def execute() -> None:
        loaded.append(infra_config.load())

    execute()
    return loaded[0]


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, leaf) of a nested input structure, secret envelopes included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, f"{path}[{index}]")
    else:
        yield path, value
