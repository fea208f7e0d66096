"""The runner template: the `PodTemplate` every runner Job is built from.

In the cluster it is the PodTemplate the platform deploys (RUNNER_TEMPLATE_NAME in
RUNNER_NAMESPACE), read once at start-up, so image, resources and secrets change with a deploy
and never with the spawner's code. For tests and one machine it is a YAML file of the same shape;
a default one ships next to this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client import V1PodTemplate, V1PodTemplateSpec

from services.contract import RUNNER_CONTAINER, RUNNER_TEMPLATE, SECRET_ENV_NAMES
from services.core.errors import ConfigError

DEFAULT_TEMPLATE_PATH = Path(__file__).with_name("runner-template.yaml")
DEFAULT_TEMPLATE_NAME = RUNNER_TEMPLATE
DEFAULT_NAMESPACE = "default"
CONTAINER_NAME = RUNNER_CONTAINER


class TemplateError(ConfigError):
    """The runner template cannot produce a Job that meets the contract."""

    def __init__(self, message: str) -> None:
        super().__init__(f"runner template: {message}")


@dataclass(frozen=True)
class RunnerTemplate:
    """The pod part of the template, where Jobs go, and which container is the runner."""

    namespace: str
    pod: V1PodTemplateSpec
    container_name: str = CONTAINER_NAME


def template_from_manifest(document: Any, namespace: str | None = None) -> RunnerTemplate:
    """Check a PodTemplate manifest (as parsed YAML/JSON) and wrap it.

    Refuses, with a one-line reason, a template with no runner container or with a secret
    variable given as a plain value: better to stop at start-up than to launch such Jobs.
    """
    if not isinstance(document, dict) or document.get("kind") != "PodTemplate":
        raise TemplateError("must be a PodTemplate manifest (kind: PodTemplate)")
    try:
        parsed = V1PodTemplate.from_dict(document)
    except ValueError as error:
        first = str(error).splitlines()
        raise TemplateError(f"not a valid PodTemplate ({first[0] if first else error})") from None
    if parsed is None or parsed.template is None or parsed.template.spec is None:
        raise TemplateError("template.spec is missing")
    containers = parsed.template.spec.containers or []
    names = [container.name for container in containers]
    if CONTAINER_NAME in names:
        container_name = CONTAINER_NAME
    elif len(names) == 1:
        container_name = names[0]
    else:
        raise TemplateError(f"needs a container named {CONTAINER_NAME!r} (found {names})")
    runner = next(c for c in containers if c.name == container_name)
    if not runner.image:
        raise TemplateError(f"container {container_name!r} has no image")
    for var in runner.env or []:
        if var.name in SECRET_ENV_NAMES and (var.value_from is None or var.value_from.secret_key_ref is None):
            raise TemplateError(f"env {var.name} must come from a secretKeyRef, never a value")
    target = namespace or (parsed.metadata.namespace if parsed.metadata else None) or DEFAULT_NAMESPACE
    return RunnerTemplate(namespace=target, pod=parsed.template, container_name=container_name)


def load_template_file(path: Path, namespace: str | None = None) -> RunnerTemplate:
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise TemplateError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError:
        raise TemplateError(f"{path} is not valid YAML") from None
    return template_from_manifest(document, namespace)


def fetch_template(core_api: Any, name: str, namespace: str) -> RunnerTemplate:
    """Read the PodTemplate from the cluster (needs `get` on that one podtemplate)."""
    from kubernetes.client import ApiException

    try:
        found = core_api.read_namespaced_pod_template(name, namespace)
    except ApiException as error:
        raise TemplateError(f"cannot read PodTemplate {namespace}/{name}: HTTP {error.status} {error.reason}") from None
    document = found.model_dump(by_alias=True, exclude_none=True, mode="json")
    document.setdefault("kind", "PodTemplate")
    document.setdefault("apiVersion", "v1")
    return template_from_manifest(document, namespace)
