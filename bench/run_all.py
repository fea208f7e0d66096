"""Run every benchmark in bench/ and print their figures, then every target and whether it was met (`make bench`).

Exits 1 when a target was missed or a benchmark failed. This machine's speed varies during a
day (about ±30 %), so read a miss next to the ratios each benchmark measures in the same run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import TARGET_PREFIX  # noqa: E402

HERE = Path(__file__).resolve().parent
#: Extra runs of a script with other arguments (its default run always happens).
EXTRA_RUNS: dict[str, list[list[str]]] = {
    "bench_dispatcher.py": [["--schedules", "10000", "--pairs", "few", "--apscheduler", "0", "--send", "0"]],
}
TIMEOUT_SECONDS = 1800


def run(command: list[str]) -> tuple[int, list[str]]:
    """Run one benchmark, echoing its output as it comes; returns its status and target lines."""
    targets: list[str] = []
    with subprocess.Popen(command, cwd=HERE.parent, stdout=subprocess.PIPE, text=True, bufsize=1) as process:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            if line.startswith(TARGET_PREFIX):
                targets.append(line[len(TARGET_PREFIX):].rstrip())
        try:
            status = process.wait(TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            status = -1
    return status, targets


def main() -> int:
    failed: list[str] = []
    targets: list[str] = []
    for script in sorted(HERE.glob("bench_*.py")):
        for arguments in [[], *EXTRA_RUNS.get(script.name, [])]:
            name = " ".join([script.name, *arguments])
            print(f"== {name}", flush=True)
            status, found = run([sys.executable, str(script), *arguments])
            targets.extend(found)
            if status != 0 and not any(line.endswith("MISSED") for line in found):
                failed.append(f"{name} (exit status {status})")
    print("\n== targets")
    for line in targets:
        print(("MISSED  " if line.endswith("MISSED") else "met     ") + line.rsplit(": ", 1)[0])
    for name in failed:
        print(f"FAILED  {name}")
    missed = sum(line.endswith("MISSED") for line in targets)
    failures = f", {len(failed)} benchmarks failed" if failed else ""
    print(f"{len(targets) - missed} of {len(targets)} targets met{failures}")
    return 1 if missed or failed else 0


if __name__ == "__main__":
    sys.exit(main())
