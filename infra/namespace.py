"""The namespace that holds every workload, enforcing the "restricted" Pod Security Standard.

Enforcement happens in the API server, so a runner Job whose pod drifts from the profile is
rejected rather than run with more privilege than intended. `warn` and `audit` at the same level
make violations visible to `kubectl apply` users and in audit logs as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.labels import component_labels

PSS_LEVEL = "restricted"


def pod_security_labels(level: str = PSS_LEVEL) -> dict[str, str]:
    """The `pod-security.kubernetes.io/*` labels for one level, pinned to the latest version."""
    labels: dict[str, str] = {}
    for mode in ("enforce", "warn", "audit"):
        labels[f"pod-security.kubernetes.io/{mode}"] = level
        labels[f"pod-security.kubernetes.io/{mode}-version"] = "latest"
    return labels


@dataclass(frozen=True)
class RuntimeNamespaceArgs:
    #: The namespace's name, from stack configuration (`local` for the local stack).
    name: str


class RuntimeNamespace(pulumi.ComponentResource):
    """The platform's namespace; `name` resolves only once it exists, so dependents wait."""

    name: pulumi.Output[str]

    def __init__(
        self, name: str, args: RuntimeNamespaceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("workflow-runtime:index:RuntimeNamespace", name, None, opts)
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.name,
                labels={
                    **component_labels("workflow-runtime", "namespace"),
                    **pod_security_labels(),
                },
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.name = namespace.metadata.name
        self.register_outputs({"name": self.name})
