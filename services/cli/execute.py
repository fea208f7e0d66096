"""`wfctl execute`: the runner, the Kubernetes Job's command (docs/architecture.md).

No options: everything comes from the Job's environment (WORKFLOW_ID, EXECUTION_ID,
WORKFLOW_INPUT, DATABASE_URL, INTEGRATION_ENCRYPTION_KEY). `wfctl execute` with no arguments
bypasses typer entirely (see `services.cli.main`) so a Job starts fast; this module therefore
imports nothing at load time.
"""

from __future__ import annotations


def execute() -> int:
    """Run one execution (the runner Job's command); configuration comes from the environment.

    Reads WORKFLOW_ID, EXECUTION_ID, WORKFLOW_INPUT (optional; falls back to the stored input),
    DATABASE_URL and INTEGRATION_ENCRYPTION_KEY. Exit status: 0 succeeded (or already claimed by
    another Job), 1 failed or timed out, 2 configuration error, 143 stopped by SIGTERM.
    """
    from services.runtime.runner import main

    return main()
