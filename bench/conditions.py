"""Throughput of the condition evaluator: evaluations per second on one core.

Each condition is compiled once (as the analysis runner does) and evaluated repeatedly
against a typical result; prints evaluations/s and µs per evaluation. No assertion: the
figures are recorded in docs/benchmarks.md.

    python bench/conditions.py              # default: 2 s per condition
    python bench/conditions.py --seconds 5 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from rollouts.analysis.conditions import compile_condition

# (name, condition, result): shapes from Argo Rollouts' docs and our analysis catalog.
CASES: list[tuple[str, str, object]] = [
    ("prometheus scalar", "result[0] >= 0.95", [0.97]),
    ("guarded vector", "len(result) == 0 || result[0] < 0.05", [0.01]),
    ("nan guard", "isNaN(result[0]) || result[0] < 0.05", [0.02]),
    ("predicate no braces", "all(result, # < 1000)", [120.0, 340.5, 80.0, 999.0]),
    ("predicate .field", "all(result, {asFloat(.value) >= 9900})",
     [{"value": "9950"}, {"value": "9901.5"}, {"value": "9999"}]),
    ("web json", "result.status == 'ok' && result.errors < 5", {"status": "ok", "errors": 1}),
    ("mean of 60", "mean(result) < 0.05", [0.01 + i / 10_000 for i in range(60)]),
    ("filter+count", "count(result, # > 0.5) <= 2", [0.1 * (i % 7) for i in range(30)]),
    ("regex", "result matches '^2\\\\d\\\\d$'", "204"),
    ("nil coalescing", "(result?.data?.rate ?? 0) > 0.9", {"data": {"rate": 0.95}}),
]


def measure(text: str, result: object, seconds: float) -> tuple[float, int]:
    condition = compile_condition(text)
    condition.evaluate(result)  # warm up, and fail early on a broken case
    count = 0
    batch = 200
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        for _ in range(batch):
            condition.evaluate(result)
        count += batch
    return count / (time.perf_counter() - started), count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per condition")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for name, text, result in CASES:
        rate, count = measure(text, result, args.seconds)
        rows.append({"case": name, "condition": text, "evals_per_s": round(rate),
                     "us_per_eval": round(1e6 / rate, 1), "evaluations": count})
    started = time.perf_counter()
    for _ in range(2_000):
        compile_condition("all(result, {asFloat(.value) >= 9900}) && len(result) > 0")
    compile_us = (time.perf_counter() - started) / 2_000 * 1e6
    if args.json:
        print(json.dumps({"cases": rows, "compile_us": round(compile_us, 1)}, indent=2))
        return 0
    print(f"{'case':<22} {'evals/s':>10} {'µs/eval':>9}  condition")
    for row in rows:
        print(f"{row['case']:<22} {row['evals_per_s']:>10} {row['us_per_eval']:>9}  "
              f"{row['condition']}")
    print(f"compile (typical condition): {compile_us:.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
