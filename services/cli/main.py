"""`wfctl`: the command line of Workflow Runtime (README, CLI).

Commands are thin: parse → call a service function → render. Errors a user can fix are one line
on stderr with exit status 2; configuration errors exit 2 as well; bugs keep their traceback.

`wfctl execute` (the runner Job's command, started once per execution) takes a fast path that
skips typer, rich and every other command module: nothing heavy is imported before the runner.
The typer app is built on first use for everything else (`wfctl execute --help` included).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

USAGE_ERROR = 2
SERVICE_ERROR = 1
# Failures of the services we talk to (unreachable database or queue, refused request): one
# line for the user, not a traceback. Matched by module (a package and its submodules) so the
# runner never imports boto3.
_SERVICE_ERROR_MODULES = (
    "botocore", "sqlalchemy.exc", "psycopg", "services.core.queue", "services.cli.remote", "urllib3", "httpx",
)


def _is_service_error(error: Exception) -> bool:
    module = type(error).__module__
    return any(module == m or module.startswith(f"{m}.") for m in _SERVICE_ERROR_MODULES)


def _one_line(error: Exception) -> str:
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:500]


@lru_cache(maxsize=1)
def build_app() -> typer.Typer:
    import typer

    from services.cli import (
        apply,
        audit,
        channels,
        db,
        dispatch,
        dlq,
        execute,
        executions,
        integrations,
        local,
        notifications,
        pools,
        run,
        schedules,
        serve,
        spawn,
        tokens,
        workflows,
    )

    app = typer.Typer(
        name="wfctl",
        help="Workflow Runtime: run workflows on cron schedules, one Kubernetes Job per run.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.add_typer(db.app, name="db")
    app.add_typer(workflows.app, name="workflows")
    app.add_typer(schedules.app, name="schedules")
    app.add_typer(executions.app, name="executions")
    app.add_typer(integrations.app, name="integrations")
    app.add_typer(dlq.app, name="dlq")
    app.add_typer(channels.app, name="channels")
    app.add_typer(notifications.app, name="notifications")
    app.add_typer(pools.app, name="pools")
    app.add_typer(local.app, name="local")
    app.add_typer(tokens.app, name="tokens")
    app.add_typer(audit.app, name="audit")
    app.command("apply")(apply.apply)
    app.command("run")(run.run_workflow)
    app.command("dispatch")(dispatch.dispatch)
    app.command("spawn")(spawn.spawn)
    app.command("execute")(execute.execute)
    app.command("serve")(serve.serve)
    return app


@lru_cache(maxsize=1)
def build_command() -> Any:
    """The click command typer builds from the app: built once, not on every call (typer's own
    `app()` rebuilds it each time, ~30 ms — which matters to in-process callers such as tests)."""
    import typer.main

    return typer.main.get_command(build_app())


def __getattr__(name: str) -> Any:
    """`services.cli.main.app` still works; it is built lazily."""
    if name == "app":
        return build_app()
    raise AttributeError(name)


def is_fast_execute(args: Sequence[str]) -> bool:
    """Exactly `wfctl execute`: the runner, which must start without the CLI framework."""
    return list(args) == ["execute"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run wfctl with `argv`; returns the exit status instead of exiting (for tests)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if is_fast_execute(args):
        from services.cli.execute import execute

        return execute()
    return _main_typer(args)


#: Characters `str.splitlines` breaks on: escaped, so an error is always one line.
_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


def _error_line(text: str) -> str:
    return f"error: {text.translate(_LINE_BREAKS)}"


def _check_arguments(args: list[str]) -> None:
    """Arguments are UTF-8 text: invalid bytes (decoded by Python as lone surrogates) and NUL
    would otherwise reach the database as an encoding error instead of a one-line refusal."""
    from services.core.errors import UserError

    for position, arg in enumerate(args):
        field = f"argument {position + 1}"
        if arg.startswith("--") and "=" in arg:
            field = arg.split("=", 1)[0].lstrip("-")
        elif position and args[position - 1].startswith("--"):
            field = args[position - 1].lstrip("-")
        if "\x00" in arg:
            raise UserError(field[:40], "contains a NUL character")
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raise UserError(field[:40], "is not valid UTF-8") from None


def _main_typer(args: list[str]) -> int:
    # typer >= 0.29 ships its own click: its exceptions are reached through typer only.
    import typer

    from services.core.errors import ConfigError, UserError

    try:
        _check_arguments(args)
        result = build_command()(args=args, standalone_mode=False)
        return result if isinstance(result, int) else 0
    except UserError as error:
        print(_error_line(f"{error.field}: {error.message}"), file=sys.stderr)
        return USAGE_ERROR
    except ConfigError as error:
        print(_error_line(str(error)), file=sys.stderr)
        return USAGE_ERROR
    except typer.Exit as exit_:
        return int(exit_.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except typer.TyperException as error:  # usage errors: a missing argument, an unknown option
        format_message = getattr(error, "format_message", None)
        message = format_message() if callable(format_message) else str(error)
        if not message.strip():  # a group given no command: its help is printed, nothing is wrong
            return int(getattr(error, "exit_code", USAGE_ERROR))
        context = getattr(error, "ctx", None)
        usage = f" (see '{context.command_path} --help')" if context is not None else ""
        print(_error_line(f"{message}{usage}"), file=sys.stderr)
        return int(getattr(error, "exit_code", USAGE_ERROR))
    except Exception as error:
        if not _is_service_error(error):
            raise
        print(_error_line(_one_line(error)), file=sys.stderr)
        return SERVICE_ERROR


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
