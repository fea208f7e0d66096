"""Notification rules as data: who to tell about which events, and the deadlines (no I/O).

A workflow and a schedule may each carry `notify: [{on: [events…], channel: NAME}]` plus
`late_after` and `long_running_after` (docs/notifications.md). A schedule's rules add to its
workflow's; a schedule's deadline replaces the workflow's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from services.core.db.models import NotificationEvent
from services.core.durations import parse_duration
from services.core.errors import UserError

EVENTS: tuple[str, ...] = tuple(event.value for event in NotificationEvent)
CHANNEL_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,251}[a-z0-9])?$")
SETTINGS_KEYS = ("notify", "late_after", "long_running_after")


def validate_rules(rules: Any, field: str = "notify") -> list[dict[str, Any]]:
    """Check a `notify` list; returns it normalised (`on` always a list of known events)."""
    if rules is None:
        return []
    if not isinstance(rules, list):
        raise UserError(field, "must be a list of {on: [events], channel: NAME}")
    normalised = []
    for index, rule in enumerate(rules):
        where = f"{field}[{index}]"
        if not isinstance(rule, dict):
            raise UserError(where, "must be a mapping with on and channel")
        rule = {("on" if key is True else key): value for key, value in rule.items()}
        unknown = sorted(str(key) for key in rule if key not in ("on", "channel"))
        if unknown:
            raise UserError(f"{where}.{unknown[0]}", "unknown field (a rule has on and channel)")
        events = rule.get("on")
        if isinstance(events, str):
            events = [events]
        if not isinstance(events, list) or not events:
            raise UserError(f"{where}.on", f"must be a non-empty list of events ({', '.join(EVENTS)})")
        for event in events:
            if event not in EVENTS:
                raise UserError(f"{where}.on", f"{event!r} is not one of {', '.join(EVENTS)}")
        channel = rule.get("channel")
        if not isinstance(channel, str) or not CHANNEL_NAME.fullmatch(channel):
            raise UserError(f"{where}.channel", "must be the name of a channel (see wfctl channels list)")
        normalised.append({"on": list(dict.fromkeys(events)), "channel": channel})
    return normalised


def validate_settings(document: Any, field: str = "notify") -> dict[str, Any]:
    """A schedule's `--notify`: `{notify: [...], late_after, long_running_after}` or just the list."""
    if document is None:
        return {}
    if isinstance(document, list):
        document = {"notify": document}
    if not isinstance(document, dict):
        raise UserError(field, "must be a list of rules or an object with notify, late_after, long_running_after")
    unknown = sorted(str(key) for key in document if key not in SETTINGS_KEYS)
    if unknown:
        raise UserError(f"{field}.{unknown[0]}", f"unknown field (one of {', '.join(SETTINGS_KEYS)})")
    settings: dict[str, Any] = {}
    if document.get("notify"):
        settings["notify"] = validate_rules(document["notify"], f"{field}.notify")
    for key in ("late_after", "long_running_after"):
        if document.get(key) is not None:
            parse_duration(document[key], f"{field}.{key}")
            settings[key] = document[key]
    return settings


@dataclass(frozen=True)
class Rules:
    """The rules in force for one run: the workflow's plus its schedule's."""

    rules: tuple[dict[str, Any], ...]
    late_after: timedelta | None
    long_running_after: timedelta | None

    def channels_for(self, event: str) -> list[str]:
        """Each channel once, in the order the rules name them."""
        return list(dict.fromkeys(r["channel"] for r in self.rules if event in r["on"]))


def effective_rules(
    workflow_definition: Mapping[str, Any] | None, schedule_settings: Mapping[str, Any] | None
) -> Rules:
    """Combine a workflow definition's rules with a schedule's (`Schedule.notify`)."""
    workflow = workflow_definition or {}
    schedule = schedule_settings or {}
    rules: list[dict[str, Any]] = []
    for source in (workflow, schedule):
        rules.extend(validate_rules(source.get("notify"), "notify"))

    def deadline(key: str) -> timedelta | None:
        for source in (schedule, workflow):
            if source.get(key) is not None:
                return parse_duration(source[key], key)
        return None

    return Rules(tuple(rules), deadline("late_after"), deadline("long_running_after"))


