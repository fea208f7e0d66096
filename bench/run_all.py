"""Run every benchmark in bench/ and print their figures (`make bench`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Extra runs of a script with other arguments (its default run always happens).
EXTRA_RUNS: dict[str, list[list[str]]] = {
    "bench_dispatcher.py": [["--schedules", "10000", "--pairs", "few", "--apscheduler", "0", "--send", "0"]],
}


def main() -> int:
    failures = 0
    for script in sorted(HERE.glob("bench_*.py")):
        for arguments in [[], *EXTRA_RUNS.get(script.name, [])]:
            print(f"== {' '.join([script.name, *arguments])}", flush=True)
            result = subprocess.run([sys.executable, str(script), *arguments], cwd=HERE.parent, timeout=900)
            failures += result.returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
