"""Container environment variables.

Values that are secret (database URL, encryption key, AWS keys) only ever appear as
`secretKeyRef`s: a pod spec, the runner template and the spawner's view of them carry the Secret's
name and key, never the value (docs/architecture.md).
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

#: Keys inside the platform's Kubernetes Secrets equal the variable names the services read
#: (DATABASE_URL and INTEGRATION_ENCRYPTION_KEY are in services/contract.py).
AWS_ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
AWS_SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"


def plain(name: str, value: pulumi.Input[str]) -> k8s.core.v1.EnvVarArgs:
    """A variable whose value is not sensitive."""
    return k8s.core.v1.EnvVarArgs(name=name, value=value)


def from_secret(name: str, secret_name: pulumi.Input[str], key: str) -> k8s.core.v1.EnvVarArgs:
    """A variable the kubelet resolves from a Secret; `optional=False` fails the pod loudly."""
    return k8s.core.v1.EnvVarArgs(
        name=name,
        value_from=k8s.core.v1.EnvVarSourceArgs(
            secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(
                name=secret_name, key=key, optional=False
            )
        ),
    )
