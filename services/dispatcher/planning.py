"""Which fire times a dispatcher tick enqueues: catch-up, window and jitter, with no I/O."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.core.db.models import Catchup, FireReason

# A fire time first seen more than this long after it is "missed" (README, Schedules).
MISSED_AFTER = timedelta(seconds=60)
# `catchup: all` enqueues at most this many missed times per tick, oldest first.
MAX_CATCHUP_PER_TICK = 100


@dataclass(frozen=True)
class Plan:
    """What one tick does for one schedule."""

    to_send: tuple[datetime, ...]
    # Each dropped fire time with the reason the fire-time ledger records.
    drops: tuple[tuple[datetime, FireReason], ...]
    # Where the schedule resumes: the first fire time not handled by this tick, or None when
    # every due time was handled (the caller then uses the next fire time after `now`).
    resume_from: datetime | None

    @property
    def dropped(self) -> tuple[datetime, ...]:
        return tuple(t for t, _ in self.drops)


def window_start(now: datetime, window_seconds: int) -> datetime:
    """The oldest fire time that may still run at `now`.

    The window bounds missed times only: an on-time fire time (seen within a minute) is never
    older than the window, whatever `catchup_window_seconds` says.
    """
    return min(now - timedelta(seconds=window_seconds), now - MISSED_AFTER)


def plan_fire_times(
    due: Sequence[datetime],
    now: datetime,
    catchup: Catchup | str,
    window_seconds: int,
) -> Plan:
    """Split the due fire times (sorted, all <= now) into those to send and those to drop.

    * Times older than the catch-up window are never run.
    * Times seen within 60 s are on time and always sent.
    * Missed times: `latest` sends one run, for the most recent one, unless an on-time run is
      already being sent; `all` sends every one, oldest first, at most 100 per tick; `none`
      drops them.
    """
    if not due or now - due[0] <= MISSED_AFTER:
        # Every due time is on time (the oldest is): all are sent, whatever the policy. This is
        # the plan of nearly every schedule in nearly every tick.
        return Plan(tuple(due), (), resume_from=None)
    policy = Catchup(catchup)
    oldest = window_start(now, window_seconds)
    expired = tuple((t, FireReason.OUTSIDE_WINDOW) for t in due if t < oldest)
    eligible = [t for t in due if t >= oldest]
    missed = [t for t in eligible if now - t > MISSED_AFTER]
    on_time = [t for t in eligible if now - t <= MISSED_AFTER]
    if policy == Catchup.ALL:
        if len(missed) > MAX_CATCHUP_PER_TICK:
            sent = missed[:MAX_CATCHUP_PER_TICK]
            return Plan(tuple(sent), expired, resume_from=missed[MAX_CATCHUP_PER_TICK])
        return Plan(tuple(missed + on_time), expired, resume_from=None)
    if policy == Catchup.LATEST and missed and not on_time:
        superseded = tuple((t, FireReason.SUPERSEDED_LATEST) for t in missed[:-1])
        return Plan((missed[-1],), expired + superseded, resume_from=None)
    reason = FireReason.CATCHUP_NONE if policy == Catchup.NONE else FireReason.SUPERSEDED_LATEST
    return Plan(tuple(on_time), expired + tuple((t, reason) for t in missed), resume_from=None)


def jitter_delay(schedule_id: uuid.UUID | str, fire_time: datetime, jitter_seconds: int) -> int:
    """A deterministic delay in [0, jitter_seconds] for one fire time of one schedule.

    Deterministic so a re-sent message (after a crash) is delayed the same, and spread by a hash
    so schedules sharing an expression do not all start in the same second.
    """
    if jitter_seconds <= 0:
        return 0
    digest = hashlib.sha256(f"{schedule_id}:{fire_time.isoformat()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (jitter_seconds + 1)
