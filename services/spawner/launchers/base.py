"""The one small interface the spawner and the reconciler use to run Jobs anywhere."""

from __future__ import annotations

from typing import Protocol

from kubernetes.client import V1Job

from services.spawner.outcomes import JobOutcome


class LaunchError(RuntimeError):
    """The Job could not be created or deleted now; the message is retried later."""


class Launcher(Protocol):
    def launch(self, job: V1Job) -> bool:
        """Create the Job; True when created, False when it already existed (both success).

        Raises `LaunchError` when the outcome is unknown or refused, so the caller retries.
        """
        ...

    def delete(self, job_name: str) -> None:
        """Delete the Job and stop its run; deleting a Job that does not exist is no error."""
        ...

    def observe(self) -> list[JobOutcome]:
        """Every runner Job that exists now, with its state (for the reconciler)."""
        ...

    def process_ended(self, job_name: str) -> bool:
        """True when this launcher knows the run's process has ended (local runs only)."""
        ...

    def close(self) -> None: ...
