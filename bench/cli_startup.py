"""How long the `rollouts` command takes to answer `version`, `--help` and a completion.

Runs each command N times in a fresh interpreter (as a shell would) and prints the median
and the spread. Nothing asserts on these figures; docs/benchmarks.md records them.

    python3 bench/cli_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

ENTRY = "import sys; sys.argv[0] = 'rollouts'; from rollouts.cli.main import main; main()"
COMMANDS = {
    "rollouts version": (["version"], {}),
    "rollouts --help": (["--help"], {}),
    "rollouts get --help": (["get", "--help"], {}),
    "completion of 'rollouts pro'": ([], {"_ROLLOUTS_COMPLETE": "complete_bash",
                                          "COMP_WORDS": "rollouts pro", "COMP_CWORD": "1"}),
}


def measure(command: list[str], env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - started)
    return times


def report(label: str, times: list[float]) -> None:
    print(f"{label}: median {statistics.median(times) * 1000:.0f} ms, "
          f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms ({len(times)} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    measure([sys.executable, "-c", ENTRY, "version"], {}, 2)  # warm the file cache
    report("python3 -c pass (the floor)", measure([sys.executable, "-c", "pass"], {}, runs))
    for label, (args, env) in COMMANDS.items():
        report(label, measure([sys.executable, "-c", ENTRY, *args], env, runs))


if __name__ == "__main__":
    main()
