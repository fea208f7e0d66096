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
   timed_out (SIGTERM, or the workflow's own deadline), or cancelled (someone asked: `wfctl
   executions cancel`; seen between steps, polled during a step, or as the SIGTERM of the Job's
   deletion). Failed and timed-out runs get a retry scheduled when attempts remain. A run the
   spawner already cancelled stays cancelled.

Run control (docs/workflows.md): a step with `retry` is attempted again inside the run when its
failure is one its `retry.on` names, after a back-off, within the workflow's deadline; every
attempt's error is kept on the step. A re-run from step S (`rerun_from_step`) records the steps
before S as `reused`, with the outputs the earlier execution recorded, and starts at S. Steps
get an idempotency key that is the same for every attempt and every retry of one fire time.

The execution's output is the output of the last step that ran (skipped steps do not count).

Exit status: 0 succeeded or nothing to do (not claimable), 1 failed, timed out, or cancelled
on a request the runner saw itself, 2 bad configuration (a missing variable), 143 stopped by
SIGTERM (a deadline, an eviction, or a cancel that deleted the Job).
"""

from __future__ import annotations

import hashlib
import logging
import threading
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
from services.runtime.retries import failure_kind, should_retry
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
#: How often a running step looks for a cancel request (one primary-key read).
CANCEL_POLL_SECONDS = 1.0


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
    #: Who asked to cancel this run, once seen.
    cancelled_by: str | None = None
    _cancel_checked: float = 0.0

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
        start = 0
        if record.rerun_from_step:
            reused = self.reuse_steps(prepared, data)
            if isinstance(reused, Verdict):
                return reused
            start, last_output = reused
        for index in range(start, len(workflow.steps)):
            spec = workflow.steps[index]
            if self.stop.requested or self.cancel_seen(force=True):
                verdict = self.stopped_verdict(None)
                self.mark_cancelled(verdict, workflow.steps[index:])
                return verdict
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                error = f"workflow timed out after {workflow.timeout_seconds:g}s before step {spec.id!r}"
                return Verdict("timed_out", EXIT_FAILED, error=error)
            verdict, output, ran = self.run_step(prepared, spec, data, deadline)
            if verdict is not None:
                self.mark_cancelled(verdict, workflow.steps[index + 1 :])
                return verdict
            if ran:
                last_output = output
        return Verdict("succeeded", EXIT_OK, output=stored_output(last_output, prepared.redactor)[0])

    def reuse_steps(self, prepared: Prepared, data: dict[str, Any]) -> Verdict | tuple[int, Any]:
        """A re-run from step S: record the steps before S as `reused`, with the outputs the
        earlier execution recorded, and put those outputs in the template context."""
        record, steps = prepared.record, prepared.workflow.steps
        from_step = record.rerun_from_step
        index = next((i for i, spec in enumerate(steps) if spec.id == from_step), None)
        if index is None or record.rerun_of is None:
            error = f"cannot re-run from step {from_step!r}: the workflow has no such step"
            return Verdict("failed", EXIT_FAILED, error=error)
        recorded = self.store.recorded_steps(record.rerun_of)
        missing = [spec.id for spec in steps[:index] if spec.id not in recorded]
        if missing:
            error = (
                f"cannot re-run from step {from_step!r}: step {missing[0]!r} has no reusable output "
                f"in execution {record.rerun_of}"
            )
            return Verdict("failed", EXIT_FAILED, error=error)
        last_output: Any = None
        for spec in steps[:index]:
            step = recorded[spec.id]
            stored, full = stored_output(step.output, prepared.redactor)
            self.store.record_reused(self.config.execution_id, spec.id, spec.position, spec.type, stored, full)
            status = "skipped" if step.status == "skipped" else "succeeded"
            data["steps"][spec.id] = with_paths({"output": step.output, "status": status}, f"steps.{spec.id}")
            if status != "skipped":
                last_output = step.output
        log.info(
            f"re-run from step {from_step!r}: {index} earlier step(s) reused from execution {record.rerun_of}",
            extra=self.extra,
        )
        return index, last_output

    def idempotency_key(self, record: ExecutionRecord, spec: StepSpec) -> str:
        """The same for every attempt of the step and every retry of the run (the chain's first
        dedup key, e.g. the fire time's), different for every step and every new request."""
        base = record.root_dedup_key or str(record.id)
        return hashlib.sha256(f"{base}|{spec.id}".encode()).hexdigest()[:40]

    def run_step(
        self, prepared: Prepared, spec: StepSpec, data: dict[str, Any], deadline: float
    ) -> tuple[Verdict | None, Any, bool]:
        """Run one step (its attempts); returns (a verdict when the run ends here, the output, whether it ran)."""
        execution_id = self.config.execution_id
        extra = {**self.extra, "step_id": spec.id}
        redact = prepared.redactor
        # `if` and `with` are user code too: they run in the interruptible worker, so the
        # workflow's deadline and SIGTERM stop a template that loops (issue 15).
        rendering = run_interruptible(
            lambda: _render_step(spec, data), threading.Event(), max(0.0, deadline - time.monotonic()),
            lambda: self.stop.requested or self.cancel_seen(), name=f"render-{spec.id}",
        )
        if rendering.ending is Ending.STOPPED:
            return self.stopped_verdict(None), None, True
        if rendering.ending is Ending.TIMED_OUT:
            timeout = prepared.workflow.timeout_seconds
            message = f"workflow timed out after {timeout:g}s while rendering step {spec.id!r}"
            self.store.record_step(execution_id, spec.id, spec.position, spec.type, "timed_out", error=message)
            log.error(message, extra=extra)
            return Verdict("timed_out", EXIT_FAILED, error=message), None, True
        try:
            if rendering.error is not None:
                raise rendering.error
            run_it, params = rendering.output
            if not run_it:
                self.store.record_step(execution_id, spec.id, spec.position, spec.type, "skipped")
                data["steps"][spec.id] = with_paths({"output": None, "status": "skipped"}, f"steps.{spec.id}")
                log.info("step skipped (if is false)", extra=extra)
                return None, None, False
        except TemplateError as error:
            message = one_line(redact.text(f"template error in {error}"))
            self.store.record_step(execution_id, spec.id, spec.position, spec.type, "failed", error=message)
            log.error(f"step failed: {message}", extra=extra)
            return Verdict("failed", EXIT_FAILED, error=f"step {spec.id!r} failed: {message}"), None, True

        step_run = self.store.start_step(execution_id, spec.id, spec.position, spec.type)
        log.info(f"step started ({spec.type})", extra=extra)
        step = prepared.steps[spec.id]
        key = self.idempotency_key(prepared.record, spec)
        attempt = 1
        while True:
            context = StepContext(
                execution_id=str(execution_id),
                step_id=spec.id,
                workflow=prepared.workflow.name,
                data=data,
                credential=prepared.credentials.get(spec.integration) if spec.integration else None,
                deny_private_networks=self.config.deny_private_networks,
                logger=logging.LoggerAdapter(logging.getLogger("services.runtime.steps"), extra),
                idempotency_key=key,
                attempt=attempt,
            )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timeout = prepared.workflow.timeout_seconds
                self.store.end_step(step_run, "timed_out", error=f"no time left for attempt {attempt}")
                error = f"workflow timed out after {timeout:g}s during step {spec.id!r}"
                return Verdict("timed_out", EXIT_FAILED, error=error), None, True
            limit = remaining if spec.timeout_seconds is None else min(spec.timeout_seconds, remaining)
            result = run_interruptible(
                lambda context=context: _run_and_bound(step, params, context, redact), context.cancelled, limit,
                lambda: self.stop.requested or self.cancel_seen(), name=f"step-{spec.id}",
            )
            if result.ending is Ending.STOPPED:
                return self.stopped_verdict((step_run, spec)), None, True
            if result.ending is Ending.FINISHED and result.error is None:
                break
            failed_output: Any = None
            if result.ending is Ending.TIMED_OUT:
                own_limit = spec.timeout_seconds is not None and spec.timeout_seconds <= remaining
                message = f"timed out after {limit:g}s"
                if not own_limit:
                    self.store.end_step(step_run, "timed_out", error=message)
                    log.error(f"step {message}", extra=extra)
                    timeout = prepared.workflow.timeout_seconds
                    error = f"workflow timed out after {timeout:g}s during step {spec.id!r}"
                    return Verdict("timed_out", EXIT_FAILED, error=error), None, True
                kind, status = "timeout", "timed_out"
            else:
                message = one_line(redact.text(_describe(result.error)))
                failed_output = getattr(result.error, "output", None)
                kind, status = failure_kind(result.error), "failed"
            retrying = should_retry(spec.retry, attempt, kind)
            delay = spec.retry.delay_before(attempt + 1)
            if retrying and deadline - time.monotonic() <= delay:
                retrying = False
                message = f"{message} (no time left for attempt {attempt + 1} within the workflow's timeout)"
            if spec.retry.max_attempts > 1:
                self.store.record_failed_attempt(step_run, attempt, kind, message, retrying)
            if retrying:
                log.warning(
                    f"step attempt {attempt} failed ({kind}): {message}; retrying in {delay:g}s", extra=extra
                )
                if not self.wait_backoff(delay):
                    return self.stopped_verdict((step_run, spec)), None, True
                attempt += 1
                continue
            stored = stored_output(failed_output, redact)[0] if failed_output is not None else None
            self.store.end_step(step_run, status, output=stored, error=message)
            if status == "timed_out":
                log.error(f"step {message}", extra=extra)
                return Verdict("failed", EXIT_FAILED, error=f"step {spec.id!r} {message}"), None, True
            log.error(f"step failed: {message}", extra=extra, exc_info=not isinstance(result.error, StepError))
            return Verdict("failed", EXIT_FAILED, error=f"step {spec.id!r} failed: {message}"), None, True
        output, stored, full = result.output
        self.store.end_step(step_run, "succeeded", output=stored, full_output=full)
        data["steps"][spec.id] = with_paths({"output": output, "status": "succeeded"}, f"steps.{spec.id}")
        attempts = f" after {attempt} attempts" if attempt > 1 else ""
        log.info(f"step succeeded in {result.seconds:.3f}s{attempts}", extra=extra)
        return None, output, True

    def wait_backoff(self, seconds: float) -> bool:
        """Sleep between attempts; False as soon as the run is being stopped or cancelled."""
        until = time.monotonic() + seconds
        while True:
            if self.stop.requested or self.cancel_seen():
                return False
            left = until - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(0.05, left))

    def cancel_seen(self, force: bool = False) -> bool:
        """Has someone asked to cancel this run? Reads the record at most once a second (or now)."""
        if self.cancelled_by is not None:
            return True
        now = time.monotonic()
        if not force and now - self._cancel_checked < CANCEL_POLL_SECONDS:
            return False
        self._cancel_checked = now
        self.cancelled_by = self.store.cancel_requested_by(self.config.execution_id)
        return self.cancelled_by is not None

    def mark_cancelled(self, verdict: Verdict, specs: list[StepSpec]) -> None:
        """A cancelled run's steps that never started are recorded `cancelled` too."""
        if verdict.status != "cancelled":
            return
        for spec in specs:
            self.store.record_step(
                self.config.execution_id, spec.id, spec.position, spec.type, "cancelled",
                error="not run: the execution was cancelled",
            )

    def stopped_verdict(self, current: tuple[int, StepSpec] | None) -> Verdict:
        """A stop: a cancel request (polled, or the SIGTERM of the Job's deletion), or the Job's
        deadline or an eviction (SIGTERM). A run already cancelled stays cancelled."""
        where = f" during step {current[1].id!r}" if current else ""
        by = self.cancelled_by or self.store.cancel_requested_by(self.config.execution_id)
        exit_code = EXIT_SIGTERM if self.stop.requested else EXIT_FAILED
        if by is not None:
            self.cancelled_by = by
            if current is not None:
                self.store.end_step(current[0], "cancelled", error=f"cancelled by {by}")
            return Verdict("cancelled", exit_code, error=f"cancelled by {by}{where}")
        signal_name = self.stop.signal_name or "SIGTERM"
        if current is not None:
            self.store.end_step(current[0], "timed_out", error=f"stopped by {signal_name}")
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


def stored_output(value: Any, redactor: Redactor) -> tuple[Any, Any]:
    """What a row keeps of an output, made the one way: JSON-safe, redacted, bounded to 64 KiB;
    and the whole redacted value when bounding cut it (a re-run from a later step reuses it)."""
    whole = redactor.value(json_safe(value))
    bounded = bound_output(whole)
    return bounded, (whole if bounded is not whole else None)


def _render_step(spec: StepSpec, data: dict[str, Any]) -> tuple[bool, Any]:
    """(whether the step runs: its `if`, its rendered `with`); raises TemplateError."""
    if spec.condition is not None and not evaluate_condition(spec.condition, data):
        return False, None
    return True, render_value(spec.params, data, "with")


def _run_and_bound(step: Step, params: Any, context: StepContext, redact: Redactor) -> tuple[Any, Any, Any]:
    """Run the step and make its output storable in the same interruptible worker: serialising
    a huge output must not outlive the deadline either."""
    output = json_safe(step.run(params, context))
    stored, full = stored_output(output, redact)
    return output, stored, full


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
    with stop_on_signals(stop.request), RunStore.connect(config.database_url, config.execution_id) as store:
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
