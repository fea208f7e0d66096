"""Workflow Runtime's policy pack: `pulumi preview --policy-pack policy` enforces it.

The rule logic lives in `rules.py` as pure functions (tested in tests/infra/test_policy.py);
this file only adapts them to pulumi-policy. The Pulumi CLI runs this directory as a program, so
`rules` is imported from beside this file.
"""

from __future__ import annotations

from collections.abc import Callable

import rules
from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)


def _validator(
    rule: Callable[[str, rules.Props], list[str]],
) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for violation in rule(args.resource_type, args.props):
            report_violation(violation, None)

    return validate


PolicyPack(
    name="workflow-runtime",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        ResourceValidationPolicy(
            name="restricted-workloads",
            description=(
                "Jobs, CronJobs, Deployments and PodTemplates meet the Kubernetes restricted Pod "
                "Security Standard, use a read-only root file system and set CPU and memory limits."
            ),
            validate=_validator(rules.workload_violations),
        ),
        ResourceValidationPolicy(
            name="namespaced-rbac-without-wildcards",
            description=(
                "No ClusterRole or ClusterRoleBinding, no RoleBinding to a ClusterRole, and no '*' "
                "in any Role rule."
            ),
            validate=_validator(rules.rbac_violations),
        ),
        ResourceValidationPolicy(
            name="sqs-encrypted-with-redrive",
            description=(
                "SQS queues are encrypted at rest and, unless they are dead-letter queues, have a "
                "redrive policy."
            ),
            validate=_validator(rules.sqs_queue_violations),
        ),
    ],
)
