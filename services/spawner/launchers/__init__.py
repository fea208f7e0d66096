"""Where runner Jobs run: a Kubernetes cluster, or subprocesses on this machine (docs/architecture.md)."""

from services.spawner.launchers.base import Launcher, LaunchError

__all__ = ["LaunchError", "Launcher"]
