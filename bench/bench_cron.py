"""Cron micro-benchmark: next fire time for 10,000 distinct (expression, zone) pairs.

Run: .venv/bin/python bench/bench_cron.py [--pairs 10000] [--croniter-pairs 1000] [--seed 7]

In one run, for the same pairs and the same `after` instants (each pair asked once per pass):
- engine cold: services/core/cron.py with every cache emptied first, so each call
  includes parsing the expression, building the pair and (once per zone and year) finding the
  zone's transitions;
- engine warm: the compiled pairs cached, new `after` instants (results are never cached);
- croniter: `croniter(expression, after_in_zone).get_next(datetime)` (what the platform used
  before the engine, without its DST rules on top), which parses on every call; on an evenly
  spread subset of the pairs (`--croniter-pairs`);
- cronsim: `next(CronSim(expression, after_in_zone))`, which parses on every call.
Prints CPU µs per call, the ratios to the engine, and how often the others agree with the engine
(they differ where croniter is not Vixie cron: `*/N` day fields are ORed, `N-N` is widened;
cronsim has its own DST rules). Target: a few µs per warm call (≤ 5 µs).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import check_target  # noqa: E402
from services.core import cron  # noqa: E402

TARGET_WARM_US = 5.0
ZONES = (
    "UTC", "Europe/Berlin", "Europe/London", "Europe/Paris", "Europe/Moscow", "Europe/Istanbul", "Europe/Lisbon",
    "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "America/Sao_Paulo",
    "America/Santiago", "America/Mexico_City", "America/Toronto", "America/Havana", "America/St_Johns",
    "Asia/Tokyo", "Asia/Kolkata", "Asia/Shanghai", "Asia/Singapore", "Asia/Dubai", "Asia/Tehran",
    "Asia/Kathmandu", "Asia/Jerusalem", "Asia/Beirut", "Africa/Cairo", "Africa/Casablanca", "Africa/Johannesburg",
    "Australia/Sydney", "Australia/Adelaide", "Australia/Lord_Howe", "Australia/Perth", "Pacific/Auckland",
    "Pacific/Chatham", "Pacific/Apia", "Pacific/Honolulu", "Atlantic/Azores", "America/Godthab", "Asia/Gaza",
)
Pair = tuple[str, str]


class Timing(NamedTuple):
    mean_us: float  # CPU time per call
    median_us: float  # wall time of the median call
    results: list[datetime]


NextFireTime = Callable[[str, str, datetime], datetime]


def expression(rng: random.Random) -> str:
    """A cron expression of the kinds fleets use: fixed times, steps, business hours, lists."""
    minute = rng.choice([
        str(rng.randrange(60)), f"*/{rng.choice([5, 10, 15, 20, 30])}", f"{rng.randrange(30)},{rng.randrange(30, 60)}",
        "*", f"{rng.randrange(10)}-{rng.randrange(10, 60)}/{rng.choice([5, 7, 10])}",
    ])
    hour = rng.choice([
        "*", str(rng.randrange(24)), f"{rng.randrange(12)}-{rng.randrange(12, 24)}", f"*/{rng.choice([2, 3, 4, 6])}",
        f"{rng.randrange(12)},{rng.randrange(12, 24)}",
    ])
    dom = rng.choice(["*"] * 6 + [str(rng.randint(1, 28)), f"1,{rng.randint(2, 28)}", f"{rng.randint(1, 14)}-28"])
    month = rng.choice(["*"] * 6 + [str(rng.randint(1, 12)), "jan-jun", "*/3", "mar,jun,sep,dec"])
    dow = rng.choice(["*"] * 4 + ["mon-fri", str(rng.randrange(7)), "sat,sun", "1-5", "mon,wed,fri"])
    return f"{minute} {hour} {dom} {month} {dow}"


def make_pairs(count: int, seed: int) -> list[Pair]:
    rng = random.Random(seed)
    pairs: dict[Pair, None] = {}
    while len(pairs) < count:
        pairs[(expression(rng), rng.choice(ZONES))] = None
    return list(pairs)


def make_afters(count: int, seed: int) -> list[datetime]:
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [start + timedelta(seconds=rng.randrange(2 * 365 * 86400)) for _ in range(count)]


def clear_engine_caches() -> None:
    cron.clear_caches()


def croniter_next(expression: str, timezone: str, after: datetime) -> datetime:
    from croniter import croniter

    return croniter(expression, after.astimezone(ZoneInfo(timezone))).get_next(datetime).astimezone(UTC)


def cronsim_next(expression: str, timezone: str, after: datetime) -> datetime:
    from cronsim import CronSim

    return next(CronSim(expression, after.astimezone(ZoneInfo(timezone)))).astimezone(UTC)


def run(
    function: NextFireTime,
    pairs: Sequence[Pair],
    afters: Sequence[datetime],
    before_pass: Callable[[], None] = lambda: None,
) -> Timing:
    """Call `function` once per pair, in two passes: CPU time per call (this process's only, so
    other work on the machine does not count) from a pass with no timer around each call (two
    timer reads would add a twentieth to a warm call), then the median wall time of one call from
    a pass that times each. `before_pass` runs before each pass (to measure cold calls)."""
    before_pass()
    started = time.process_time()
    results = [function(expr, zone, after) for (expr, zone), after in zip(pairs, afters, strict=True)]
    cpu = (time.process_time() - started) / len(pairs) * 1e6
    before_pass()
    calls = []
    for (expr, zone), after in zip(pairs, afters, strict=True):
        call_started = time.perf_counter_ns()
        function(expr, zone, after)
        calls.append(time.perf_counter_ns() - call_started)
    return Timing(cpu, statistics.median(calls) / 1000, results)


def agreement(results: list[datetime], reference: list[datetime], pairs: Sequence[Pair]) -> str:
    differing = [index for index, (a, b) in enumerate(zip(results, reference, strict=True)) if a != b]
    text = f"{len(pairs) - len(differing)}/{len(pairs)} agree with the engine"
    if differing:
        expr, zone = pairs[differing[0]]
        theirs, ours = results[differing[0]], reference[differing[0]]
        text += f" (e.g. {expr!r} in {zone}: {theirs:%Y-%m-%d %H:%M} vs {ours:%Y-%m-%d %H:%M} UTC)"
    return text


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--croniter-pairs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    pairs = make_pairs(args.pairs, args.seed)
    afters = make_afters(len(pairs), args.seed + 1)
    warm_afters = make_afters(len(pairs), args.seed + 2)
    print(f"{len(pairs)} distinct (expression, zone) pairs over {len({z for _, z in pairs})} zones, "
          f"{len({e for e, _ in pairs})} expressions; one next_fire_time per pair per pass")

    cold = run(cron.next_fire_time, pairs, afters, before_pass=clear_engine_caches)
    warm = min((run(cron.next_fire_time, pairs, warm_afters) for _ in range(3)), key=lambda t: t.mean_us)
    every = max(1, len(pairs) // max(1, args.croniter_pairs))
    subset = slice(None, None, every)
    croniter = run(croniter_next, pairs[subset], afters[subset])
    rows = [
        ("engine cold (incl. compile)", cold, ""),
        ("engine warm", warm, ""),
        (f"croniter, {len(croniter.results)} pairs", croniter,
         agreement(croniter.results, cold.results[subset], pairs[subset])),
    ]
    try:
        import cronsim  # noqa: F401
    except ImportError:
        print("cronsim: not installed (pip install -e '.[dev]'), not measured")
    else:
        other = run(cronsim_next, pairs, afters)
        rows.append(("cronsim 2", other, agreement(other.results, cold.results, pairs)))

    print(f"{'':34} {'CPU µs/call':>11} {'median µs':>10} {'÷ warm':>8} {'÷ cold':>8}")
    for label, timing, note in rows:
        print(f"{label:34} {timing.mean_us:11.2f} {timing.median_us:10.2f} {timing.mean_us / warm.mean_us:8.1f} "
              f"{timing.mean_us / cold.mean_us:8.1f}  {note}")
    print(f"croniter {croniter.mean_us / warm.mean_us:.0f}× slower than the warm engine (median call "
          f"{croniter.median_us / warm.median_us:.0f}×), {rows[-1][0]} {rows[-1][1].mean_us / warm.mean_us:.0f}×")
    met = check_target("cron, warm next fire time", warm.mean_us, "µs", TARGET_WARM_US)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
