"""Building blocks for pods that pass the Kubernetes "restricted" Pod Security Standard.

The namespace enforces `restricted`, so a workload missing any of these settings is rejected by
the API server at pod creation time, which for a CronJob or a spawned Job means a silent failure
minutes later. Building every pod from the same helpers keeps the dispatcher, the spawner and the
runner template consistent, and lets one set of tests and policies cover all three.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.config import ResourceSpec
from services import contract

# The unprivileged user and group baked into the images (images/Dockerfile) and the writable /tmp
# every container gets (its root file system is read-only) are values of services/contract.py.


def pod_security_context() -> k8s.core.v1.PodSecurityContextArgs:
    """Pod-level settings: non-root identity and the runtime's default seccomp profile."""
    return k8s.core.v1.PodSecurityContextArgs(
        run_as_non_root=True,
        run_as_user=contract.RUN_AS_USER,
        run_as_group=contract.RUN_AS_GROUP,
        fs_group=contract.RUN_AS_GROUP,
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def container_security_context() -> k8s.core.v1.SecurityContextArgs:
    """Container-level settings; repeated here so each container is compliant on its own."""
    return k8s.core.v1.SecurityContextArgs(
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        run_as_non_root=True,
        run_as_user=contract.RUN_AS_USER,
        run_as_group=contract.RUN_AS_GROUP,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def tmp_volume() -> k8s.core.v1.VolumeArgs:
    """The scratch volume mounted at /tmp."""
    return k8s.core.v1.VolumeArgs(
        name=contract.TMP_VOLUME,
        empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit=contract.TMP_SIZE_LIMIT),
    )


def tmp_volume_mount() -> k8s.core.v1.VolumeMountArgs:
    return k8s.core.v1.VolumeMountArgs(name=contract.TMP_VOLUME, mount_path=contract.TMP_PATH)


def resource_requirements(resources: ResourceSpec) -> k8s.core.v1.ResourceRequirementsArgs:
    """Requests and limits of one container (the policy pack rejects a container without limits)."""
    return k8s.core.v1.ResourceRequirementsArgs(
        requests={"cpu": resources.cpu_request, "memory": resources.memory_request},
        limits={"cpu": resources.cpu_limit, "memory": resources.memory_limit},
    )


def restricted_pod_spec(
    service_account_name: pulumi.Input[str],
    container: k8s.core.v1.ContainerArgs,
    *,
    automount_service_account_token: bool,
    **fields: Any,
) -> k8s.core.v1.PodSpecArgs:
    """A one-container pod spec with the restricted settings, the /tmp volume and no service links.

    Service links would put every Service of the namespace into the environment.
    """
    return k8s.core.v1.PodSpecArgs(
        service_account_name=service_account_name,
        automount_service_account_token=automount_service_account_token,
        enable_service_links=False,
        security_context=pod_security_context(),
        containers=[container],
        volumes=[tmp_volume()],
        **fields,
    )
