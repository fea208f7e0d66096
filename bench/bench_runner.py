"""Runner start-up benchmark (not a test): process start → first step, and peak RSS.

Runs `python -m services.cli execute` as a child process against a real Postgres, once per
fresh execution of a one-`log`-step workflow, and reads:
- first-step latency: the first step's JSON log line time minus the moment before spawning;
- peak RSS: the child's own `ru_maxrss` from `os.wait4` (the same figure as
  `getrusage(RUSAGE_CHILDREN)` for that child alone, without the embedded Postgres's initdb);
- total: spawn → exit (includes recording the final status).

Targets: first step < 300 ms, peak RSS < 80 MB. Postgres: BENCH_DATABASE_URL or
TEST_DATABASE_URL, else an embedded server in a temporary folder.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import check_target, fresh_database  # noqa: E402
from services.core.db.models import Execution  # noqa: E402
from services.core.db.session import session_factory  # noqa: E402
from services.core.workflows import apply_workflow, parse_workflow  # noqa: E402

RUNS = 7
TARGET_FIRST_STEP_MS = 300
TARGET_RSS_MB = 80
WORKFLOW = """
name: bench-runner
steps:
  - {id: first, type: log, with: {message: "first step"}}
"""


def new_execution(url: str) -> tuple[str, str]:
    with session_factory(url)() as session, session.begin():
        workflow, _ = apply_workflow(session, parse_workflow(WORKFLOW))
        execution = Execution(
            workflow_id=workflow.id, trigger="manual", dedup_key=f"manual:{uuid.uuid4()}", status="starting", input={}
        )
        session.add(execution)
        session.flush()
        return str(workflow.id), str(execution.id)


def first_step_time(stderr: str) -> float:
    for line in stderr.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("step_id") == "first" and event.get("message") == "first step":
            return datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()
    raise RuntimeError(f"no first-step log line in:\n{stderr}")


def run_once(url: str) -> tuple[float, float, float]:
    workflow_id, execution_id = new_execution(url)
    env = {**os.environ, "DATABASE_URL": url, "LOG_FORMAT": "json"}
    env.update(WORKFLOW_ID=workflow_id, EXECUTION_ID=execution_id)
    with tempfile.TemporaryFile() as err:
        started = time.time()
        process = subprocess.Popen([sys.executable, "-m", "services.cli", "execute"], cwd=ROOT, env=env, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        total = time.time() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode()
    if process.returncode != 0:
        raise RuntimeError(f"runner exited {process.returncode}:\n{stderr}")
    first_ms = (first_step_time(stderr) - started) * 1000
    rss_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    return first_ms, rss_mb, total * 1000


def main() -> int:
    with fresh_database() as url:
        run_once(url)  # warm the page cache
        results = [run_once(url) for _ in range(RUNS)]
    firsts, rsses, totals = zip(*results, strict=True)
    first, rss = statistics.median(firsts), max(rsses)
    print(f"runner first step: median {first:.0f} ms (min {min(firsts):.0f}, max {max(firsts):.0f})")
    print(f"runner peak RSS:   max {rss:.1f} MB")
    print(f"runner total:      median {statistics.median(totals):.0f} ms (spawn to exit, {RUNS} runs)")
    first_met = check_target("runner, process start to first step (median)", first, "ms", TARGET_FIRST_STEP_MS)
    rss_met = check_target("runner, peak RSS", rss, "MB", TARGET_RSS_MB)
    return 0 if first_met and rss_met else 1


if __name__ == "__main__":
    sys.exit(main())
