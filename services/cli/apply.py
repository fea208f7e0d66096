"""`wfctl apply -f FILE|DIR [--dry-run] [--prune]`: declarative workflows and schedules."""

from __future__ import annotations

from pathlib import Path

import typer

from services.cli.context import settings
from services.cli.jsonarg import read_standard_input
from services.cli.render import OUTPUT_OPTION, OutputFormat, to_json, warn_unknown_channels
from services.core.audit import cli_actor
from services.core.db.session import session_factory
from services.dispatcher.apply import apply_documents, parse_documents, read_manifests

ALLOW_UNKNOWN_HELP = "Accept step types this installation does not know (the runner image provides them)"


def apply(
    file: Path = typer.Option(..., "--file", "-f", help="Multi-document YAML file, a folder of them, or - for stdin"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would change; change nothing"),
    prune: bool = typer.Option(False, "--prune", help="Delete schedules no document names"),
    allow_unknown_step_types: bool = typer.Option(False, "--allow-unknown-step-types", help=ALLOW_UNKNOWN_HELP),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Create, update (and with --prune delete) workflows and schedules to match the files, all or nothing."""
    sources = [("-", read_standard_input("file"))] if str(file) == "-" else read_manifests(file)
    documents = parse_documents(sources)
    known = None
    if not allow_unknown_step_types:
        from services.runtime.steps.registry import known_step_types

        known = known_step_types()
    session = session_factory(settings().require_database_url())()
    try:
        changes = apply_documents(session, documents, prune=prune, known_step_types=known, actor=cli_actor())
        for doc in documents:
            warn_unknown_channels(session, doc.body.get("notify"), f"{doc.kind.lower()} {doc.name}")
        if dry_run:
            session.rollback()  # validated and computed exactly as a real apply, then undone
        else:
            session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
    if output == OutputFormat.JSON:
        rows = [{"kind": c.kind, "name": c.name, "action": c.action, "fields": c.fields} for c in changes]
        typer.echo(to_json({"dry_run": dry_run, "changes": rows}))
        return
    prefix = "(dry run) " if dry_run else ""
    for change in changes:
        typer.echo(prefix + change.line())
    counts = {a: sum(c.action == a for c in changes) for a in ("created", "changed", "unchanged", "pruned")}
    typer.echo(prefix + ", ".join(f"{n} {a}" for a, n in counts.items()))
