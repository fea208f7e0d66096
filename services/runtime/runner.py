"""The runner (`wfctl execute`, the Job's command): run one execution's steps, record everything.

Order of events, and why:
1. Claim the execution with a conditional update (pending/starting → running). A duplicate Job
   (SQS redelivery, a retried spawner) loses the claim and exits 0 without running a step.
2. Prepare: check the workflow, the input (≤ 256 KiB), the step types, and decrypt the
   integrations the steps name. Any problem fails the execution before a step runs.
3. Run the steps in order, each in a worker thread (see `worker`), with its `if` evaluated and
   its `with` rendered first. Every step leaves a step_runs row; outputs and errors are redacted
   and bounded before they are stored.
4. Finish through `finish_execution`: succeeded, failed (the first failing step ends the run),
   or timed_out (SIGTERM, or the workflow's own deadline). Failed and timed-out runs get a retry
   scheduled when attempts remain. A run the spawner already cancelled stays cancelled.

The execution's output is the output of the last step that ran (skipped steps do not count).

Exit status: 0 succeeded or nothing to do (not claimable), 1 failed or timed out, 2 bad
configuration (a missing variable), 143 stopped by SIGTERM.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.core.errors import ConfigError
from services.core.inputs import InputError, check_input, parse_input
from services.core.settings import RunnerSettings
from services.core.signals import stop_on_signals
from services.runtime.definition import DefinitionError, StepSpec, WorkflowSpec, parse_definition
from services.runtime.interrupts import StopRequest
from services.runtime.limits import bound_output, json_safe, one_line
from services.runtime.redaction import Redactor, redacting_logs
from services.runtime.steps.base import Step, StepCancelled, StepContext, StepError
from services.runtime.steps.registry import StepRegistry, UnknownStepType
from services.runtime.store import ExecutionRecord, RunStore
from services.runtime.templating import TemplateError, evaluate_condition, render_value, with_paths
from services.runtime.worker import Ending, run_interruptible

log = logging.getLogger("services.runtime.runner")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_SIGTERM = 143


class PreparationError(Exception):
    """The run cannot start; the message (one line) is recorded on the execution."""


@dataclass
class Prepared:
    record: ExecutionRecord
    workflow: WorkflowSpec
    input: dict[str, Any]
    steps: dict[str, Step]
    credentials: dict[str, dict[str, str]]
    redactor: Redactor


@dataclass
class Verdict:
    """How the run ended: the execution's status, error and output, and the exit status."""

    status: str
    exit_code: int
    error: str | None = None
    output: Any = None


@dataclass
class Run:
    config: RunnerSettings
    store: RunStore
    stop: StopRequest
    registry: StepRegistry = field(default_factory=StepRegistry)

    @property
    def extra(self) -> dict[str, str]:
        return {"execution_id": str(self.config.execution_id)}

    def execute(self) -> int:
        if not self.store.claim(self.config.execution_id):
            status = self.store.status(self.config.execution_id)
            if status is None:
                log.error("execution does not exist; nothing to run", extra=self.extra)
                return EXIT_FAILED
            log.info(f"execution is {status}, not pending or starting; not running it again", extra=self.extra)
            return EXIT_OK
        log.info("execution claimed", extra=self.extra)
        try:
            prepared = self.prepare()
        except PreparationError as error:
            return self.finish(Verdict("failed", EXIT_FAILED, error=one_line(f"cannot run: {error}")), Redactor())
        except Exception as error:  # a bug or a broken row: still end the claimed execution
            log.exception("cannot run", extra=self.extra)
            return self.finish(Verdict("failed", EXIT_FAILED, error=f"cannot run: {_describe(error)}"), Redactor())
        with redacting_logs(prepared.redactor):
            try:
                verdict = self.run_steps(prepared)
            except Exception as error:  # never leave a claimed execution `running`
                log.exception("runner error", extra=self.extra)
                verdict = Verdict("failed", EXIT_FAILED, error=f"runner error: {_describe(error)}")
            return self.finish(verdict, prepared.redactor)

    # 2. Prepare -------------------------------------------------------------------------------

    def prepare(self) -> Prepared:
        record = self.store.load(self.config.execution_id)
        if record is None:
            raise PreparationError("the execution record disappeared")
        if str(record.workflow_id) != self.config.workflow_id:
            raise PreparationError(
                f"WORKFLOW_ID {self.config.workflow_id} does not match the execution's workflow {record.workflow_id}"
            )
        try:
            workflow = parse_definition(record.definition)
        except DefinitionError as error:
            raise PreparationError(f"workflow definition is malformed: {error}") from None
        try:
            if self.config.workflow_input is not None:
                payload = parse_input(self.config.workflow_input, "WORKFLOW_INPUT")
            else:
                payload = check_input(record.input if record.input is not None else {}, "input")
        except InputError as error:
            raise PreparationError(f"{error.field} {error.message}") from None
        steps: dict[str, Step] = {}
        for spec in workflow.steps:
            try:
                steps[spec.id] = self.registry.get(spec.type)
            except UnknownStepType as error:
                raise PreparationError(f"steps[{spec.position}].type: {error}") from None
        credentials = self.load_credentials(workflow)
        secrets = [s for credential in credentials.values() for s in _secrets(credential)]
        return Prepared(record, workflow, payload, steps, credentials, Redactor(secrets))

    def load_credentials(self, workflow: WorkflowSpec) -> dict[str, dict[str, str]]:
        names = {spec.integration for spec in workflow.steps if spec.integration}
        if not names:
            return {}
        from services.core.credentials import unseal
        from services.core.crypto import EncryptionKeyError, keyring_from_value

        stored = self.store.integrations(names)
        for spec in workflow.steps:
            if spec.integration and spec.integration not in stored:
                raise PreparationError(f"steps[{spec.position}].integration: no integration named {spec.integration!r}")
        try:
            keyring = keyring_from_value(self.config.encryption_keys)
            return {name: unseal(stored[name], keyring, name) for name in sorted(stored)}
        except EncryptionKeyError as error:
            raise PreparationError(str(error)) from None

    # 3. Steps ---------------------------------------------------------------------------------

    def run_steps(self, prepared: Prepared) -> Verdict:
        record, workflow = prepared.record, prepared.workflow
        data: dict[str, Any] = {
            "input": with_paths(prepared.input, "input"),
            "steps": with_paths({}, "steps"),
            "execution": {
                "id": str(record.id),
                "attempt": record.attempt,
                "trigger": record.trigger,
                "scheduled_for": _iso(record.scheduled_for),
            },
            "workflow": {"name": workflow.name},
        }
        deadline = time.monotonic() + workflow.timeout_seconds
        last_output: Any = None
        for spec in workflow.steps:
            if self.stop.requested:
                return self.stopped_verdict(None)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                error = f"workflow timed out after {workflow.timeout_seconds:g}s before step {spec.id!r}"
                return Verdict("timed_out", EXIT_FAILED, error=error)
            verdict, output, ran = self.run_step(prepared, spec, data, remaining)
            if verdict is not None:
                return verdict
            if ran:
                last_output = output
        return Verdict("succeeded", EXIT_OK, output=bound_output(prepared.redactor.value(json_safe(last_output))))

    def run_step(
        self, prepared: Prepared, spec: StepSpec, data: dict[str, Any], remaining: float
    ) -> tuple[Verdict | None, Any, bool]:
        """Run one step; returns (a verdict when the run ends here, the output, whether it ran)."""
        execution_id = self.config.execution_id
        extra = {**self.extra, "step_id": spec.id}
        redact = prepared.redactor
        try:
            if spec.condition is not None and not evaluate_condition(spec.condition, data):
                self.store.record_step(execution_id, spec.id, spec.position, spec.type, "skipped")
                data["steps"][spec.id] = with_paths({"output": None, "status": "skipped"}, f"steps.{spec.id}")
                log.info("step skipped (if is false)", extra=extra)
                return None, None, False
            params = render_value(spec.params, data, "with")
        except TemplateError as error:
            message = one_line(redact.text(f"template error in {error}"))
            self.store.record_step(execution_id, spec.id, spec.position, spec.type, "failed", error=message)
            log.error(f"step failed: {message}", extra=extra)
            return Verdict("failed", EXIT_FAILED, error=f"step {spec.id!r} failed: {message}"), None, True

        step_run = self.store.start_step(execution_id, spec.id, spec.position, spec.type)
        log.info(f"step started ({spec.type})", extra=extra)
        context = StepContext(
            execution_id=str(execution_id),
            step_id=spec.id,
            workflow=prepared.workflow.name,
            data=data,
            credential=prepared.credentials.get(spec.integration) if spec.integration else None,
            deny_private_networks=self.config.deny_private_networks,
            logger=logging.LoggerAdapter(logging.getLogger("services.runtime.steps"), extra),
        )
        step = prepared.steps[spec.id]
        limit = remaining if spec.timeout_seconds is None else min(spec.timeout_seconds, remaining)
        result = run_interruptible(
            lambda: step.run(params, context), context.cancelled, limit,
            lambda: self.stop.requested, name=f"step-{spec.id}",
        )
        if result.ending is Ending.STOPPED:
            return self.stopped_verdict((step_run, spec)), None, True
        if result.ending is Ending.TIMED_OUT:
            own_limit = spec.timeout_seconds is not None and spec.timeout_seconds <= remaining
            message = f"timed out after {limit:g}s"
            self.store.end_step(step_run, "timed_out", error=message)
            log.error(f"step {message}", extra=extra)
            if own_limit:
                return Verdict("failed", EXIT_FAILED, error=f"step {spec.id!r} {message}"), None, True
            timeout = prepared.workflow.timeout_seconds
            error = f"workflow timed out after {timeout:g}s during step {spec.id!r}"
            return Verdict("timed_out", EXIT_FAILED, error=error), None, True
        produced = result.output if result.error is None else getattr(result.error, "output", None)
        try:
            stored, output = _storable(produced, redact)
        except Exception as error:  # MemoryError, RecursionError: the step fails, never stays running
            result.error, stored, output = StepError(f"its output cannot be stored: {_describe(error)}"), None, None
        if result.error is not None:
            message = one_line(redact.text(_describe(result.error)))
            self.store.end_step(step_run, "failed", output=stored, error=message)
            log.error(f"step failed: {message}", extra=extra, exc_info=not isinstance(result.error, StepError))
            return Verdict("failed", EXIT_FAILED, error=f"step {spec.id!r} failed: {message}"), None, True
        self.store.end_step(step_run, "succeeded", output=stored)
        data["steps"][spec.id] = with_paths({"output": output, "status": "succeeded"}, f"steps.{spec.id}")
        log.info(f"step succeeded in {result.seconds:.3f}s", extra=extra)
        return None, output, True

    def stopped_verdict(self, current: tuple[int, StepSpec] | None) -> Verdict:
        """SIGTERM: the Job's deadline or an eviction. A run already cancelled stays cancelled."""
        signal_name = self.stop.signal_name or "SIGTERM"
        cancelled = self.store.status(self.config.execution_id) == "cancelled"
        where = f" during step {current[1].id!r}" if current else ""
        if current is not None:
            step_run, _ = current
            status = "cancelled" if cancelled else "timed_out"
            self.store.end_step(step_run, status, error=f"stopped by {signal_name}")
        error = f"stopped by {signal_name} (deadline exceeded or pod evicted){where}"
        return Verdict("timed_out", EXIT_SIGTERM, error=error)

    # 4. Finish --------------------------------------------------------------------------------

    def finish(self, verdict: Verdict, redactor: Redactor) -> int:
        error = one_line(redactor.text(verdict.error)) if verdict.error else None
        finished = self.store.finish(self.config.execution_id, verdict.status, error=error, output=verdict.output)
        if finished:
            level = logging.INFO if verdict.status == "succeeded" else logging.ERROR
            log.log(level, f"execution {verdict.status}" + (f": {error}" if error else ""), extra=self.extra)
        else:
            status = self.store.status(self.config.execution_id)
            log.warning(f"execution was already {status}; left as it is", extra=self.extra)
        return verdict.exit_code


def _storable(value: Any, redact: Redactor) -> tuple[Any, Any]:
    """(what is stored: redacted and bounded, what later steps see: JSON-safe); None stays None."""
    if value is None:
        return None, None
    safe = json_safe(value)
    return bound_output(redact.value(safe)), safe


def _secrets(credential: Mapping[str, str]) -> list[str]:
    from services.core.credentials import secret_values

    return secret_values(credential)


def _describe(error: BaseException) -> str:
    if isinstance(error, StepCancelled):
        return "interrupted"
    if isinstance(error, StepError):
        return str(error) or type(error).__name__
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def execute(env: Mapping[str, str] | None = None, registry: StepRegistry | None = None) -> int:
    """Run the execution named by the environment; returns the exit status.

    Raises ConfigError for a missing or malformed variable (nothing can be recorded then).
    """
    config = RunnerSettings.from_env(env)
    stop = StopRequest()
    with stop_on_signals(stop.request), RunStore.connect(config.database_url) as store:
        return Run(config, store, stop, registry or StepRegistry()).execute()


def main() -> int:
    """The process entry point: logging, then `execute`, configuration errors as one line."""
    import sys

    from services.core.logs import configure_logging

    configure_logging("runner")
    try:
        return execute()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
