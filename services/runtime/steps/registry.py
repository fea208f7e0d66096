"""Finding the implementation of a step `type`.

Built-in types are imported lazily, one module each, so a run imports only what its steps use
(a workflow of `log` steps never pays for httpx). Other types come from installed packages
through the entry-point group `workflow_runtime.steps`:

    [project.entry-points."workflow_runtime.steps"]
    slack_message = "my_package.steps:SlackMessage"

The entry point may name a class (instantiated with no arguments), an object with a `run`
method, or a plain function `run(params, context)`. Built-in names cannot be overridden.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from services.runtime.steps.base import Step, StepContext

ENTRY_POINT_GROUP = "workflow_runtime.steps"
BUILTIN_STEPS: dict[str, str] = {
    "http": "services.runtime.steps.http:HttpStep",
    "transform": "services.runtime.steps.transform:TransformStep",
    "log": "services.runtime.steps.log:LogStep",
    "sleep": "services.runtime.steps.sleep:SleepStep",
    "fail": "services.runtime.steps.fail:FailStep",
}


class UnknownStepType(Exception):
    """No built-in and no entry point provides this type (or it failed to load)."""


class _FunctionStep:
    def __init__(self, function: Callable[[Mapping[str, Any], StepContext], Any]) -> None:
        self._function = function

    def run(self, params: Mapping[str, Any], context: StepContext) -> Any:
        return self._function(params, context)


def as_step(target: Any, name: str) -> Step:
    """Turn what an entry point names into a Step."""
    if isinstance(target, type):
        target = target()
    if hasattr(target, "run") and callable(target.run):
        return target  # type: ignore[no-any-return]
    if callable(target):
        return _FunctionStep(target)
    raise UnknownStepType(f"step type {name!r} does not provide a run(params, context) method")


def known_step_types() -> frozenset[str]:
    """Every step type this installation can run: the built-ins and the installed plugins."""
    return frozenset(BUILTIN_STEPS) | frozenset(discover_entry_points())


def discover_entry_points() -> dict[str, Any]:
    """Installed plugins by name; each value has `.load()`."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load_builtin(reference: str) -> Any:
    module_name, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


class StepRegistry:
    def __init__(self, discover: Callable[[], Mapping[str, Any]] | None = None) -> None:
        # None: ask importlib.metadata (looked up when first needed, so tests can patch it).
        self._discover = discover
        self._plugins: Mapping[str, Any] | None = None
        self._loaded: dict[str, Step] = {}

    def get(self, name: str) -> Step:
        if name not in self._loaded:
            self._loaded[name] = self._load(name)
        return self._loaded[name]

    def _load(self, name: str) -> Step:
        if name in BUILTIN_STEPS:
            return as_step(_load_builtin(BUILTIN_STEPS[name]), name)
        if self._plugins is None:
            self._plugins = (self._discover or discover_entry_points)()
        entry_point = self._plugins.get(name)
        if entry_point is None:
            raise UnknownStepType(
                f"unknown step type {name!r} (built-in: {', '.join(BUILTIN_STEPS)}; "
                f"others are installed through the entry-point group {ENTRY_POINT_GROUP})"
            )
        try:
            target = entry_point.load()
        except Exception as error:
            raise UnknownStepType(f"step type {name!r} failed to load: {type(error).__name__}: {error}") from None
        return as_step(target, name)
