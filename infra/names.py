"""Fixed names of the platform's Kubernetes objects.

These are deliberately not auto-named: other parts of the system refer to them by name (the
spawner reads the runner template named RUNNER_TEMPLATE_NAME, the Role is scoped to that one
template, IAM trust policies name the service accounts, operators type them into `kubectl`).
"""

from __future__ import annotations

DISPATCHER_CRONJOB = "workflow-dispatcher"
DISPATCHER_SERVICE_ACCOUNT = "workflow-dispatcher"

SPAWNER_DEPLOYMENT = "workflow-spawner"
SPAWNER_SERVICE_ACCOUNT = "workflow-spawner"
SPAWNER_ROLE = "workflow-spawner"

RUNNER_TEMPLATE = "workflow-runner"
RUNNER_SERVICE_ACCOUNT = "workflow-runner"

DATABASE_SECRET = "workflow-runtime-database"
ENCRYPTION_KEY_SECRET = "workflow-runtime-encryption-key"
AWS_CREDENTIALS_SECRET = "workflow-runtime-aws-credentials"

CONSOLE_DEPLOYMENT = "workflow-console"
CONSOLE_SERVICE = "workflow-console"
CONSOLE_SERVICE_ACCOUNT = "workflow-console"
CONSOLE_SECRET = "workflow-runtime-console"
