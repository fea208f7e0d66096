"""Labels shared by every Kubernetes object of the platform.

The `app` label is the one operators select on (`kubectl get jobs -l app=workflow-runner`); the
`app.kubernetes.io/*` labels are the recommended ones that tools such as dashboards group by.
"""

from __future__ import annotations

PART_OF = "workflow-runtime"


def component_labels(app: str, component: str) -> dict[str, str]:
    """Labels for one component's objects; `app` is also used as the selector label."""
    return {
        "app": app,
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }
