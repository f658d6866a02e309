"""Fuzz the condition language (and `rollouts lint`/`convert`) with a bigger budget.

Runs the fuzz tests of the suite (tests/unit/test_expr_fuzz.py, tests/cli/test_lint_fuzz.py)
with ROLLOUTS_FUZZ_EXAMPLES examples a test and a random seed, and prints what pytest says.

    python bench/fuzz_conditions.py --examples 10000
    python bench/fuzz_conditions.py --examples 2000 --target lint
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {
    "conditions": ["tests/unit/test_expr_fuzz.py"],
    "lint": ["tests/cli/test_lint_fuzz.py"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000, help="examples per test")
    parser.add_argument("--target", choices=[*TARGETS, "all"], default="conditions")
    args = parser.parse_args()
    files = [f for name, fs in TARGETS.items() if args.target in (name, "all") for f in fs]
    env = {**os.environ, "ROLLOUTS_FUZZ_EXAMPLES": str(args.examples),
           "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    code = subprocess.call(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--hypothesis-show-statistics", *files],
        cwd=ROOT, env=env,
    )
    elapsed = time.perf_counter() - started
    print(f"fuzz {args.target}: {args.examples} examples per test, exit {code}, "
          f"{elapsed:.1f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
