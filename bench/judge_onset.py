"""How many looks the sequential count test needs when a regression starts partway through.

    python bench/judge_onset.py                  # expected counts, and 200 Poisson draws
    python bench/judge_onset.py --draws 500 --seed 3

A canary at the bench's traffic (bench/judge_prometheus.py: 20 rps canary, 80 rps baseline,
a look a minute, so 1200 and 4800 requests a look) and a 1% baseline error rate, judged by
`sequential.sequential_counts` as the catalog's error-rate-vs-baseline metric does (20%
relative tolerance, 95%). The canary is good (the baseline's rate) for the first 0, 2 or 5
looks, then `ratio` times worse. Printed: looks to fail counted from the first bad look,
with the expected counts in every look, and the median over `--draws` Poisson releases
(">N": not failed within N bad looks).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rollouts.analysis.sequential import SequentialState, sequential_counts

TOLERANCE, CONFIDENCE = 0.2, 0.95
CANARY, BASELINE, RATE = 1200, 4800, 0.01
RATIOS = (10.0, 5.0, 3.0, 2.0)
GOOD_LOOKS = (0, 2, 5)
BAD_LOOKS = 10


def looks_to_fail(looks: list[tuple[float, float, float, float]], good: int) -> int | None:
    """Looks after the onset until the first fail; None when it never fails."""
    state = SequentialState.start(TOLERANCE)
    for index, look in enumerate(looks):
        state = state.update(*look)
        decision = sequential_counts(state, confidence=CONFIDENCE).decision
        if decision == "fail":
            return index + 1 - good if index >= good else 0
        if decision == "pass" and index >= good:
            return None
    return None


def expected(ratio: float, good: int) -> int | None:
    looks = [(CANARY * RATE, CANARY, BASELINE * RATE, BASELINE)] * good
    looks += [(CANARY * RATE * ratio, CANARY, BASELINE * RATE, BASELINE)] * BAD_LOOKS
    return looks_to_fail(looks, good)


def drawn(rng: np.random.Generator, ratio: float, good: int) -> list[int | None]:
    results = []
    for _ in range(DRAWS[0]):
        rates = np.r_[np.full(good, RATE), np.full(BAD_LOOKS, RATE * ratio)]
        xc, xb = rng.poisson(CANARY * rates), rng.poisson(BASELINE * RATE, len(rates))
        looks = [(float(c), CANARY, float(b), BASELINE) for c, b in zip(xc, xb, strict=True)]
        results.append(looks_to_fail(looks, good))
    return results


DRAWS = [200]


def _fmt(value: float | None) -> str:
    return f">{BAD_LOOKS}" if value is None else f"{value:g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    DRAWS[0] = args.draws
    rng = np.random.default_rng(args.seed)
    print(f"looks to fail from the onset, after {'/'.join(map(str, GOOD_LOOKS))} good looks "
          f"(1% base, {CANARY}/{BASELINE} requests a look, tolerance {TOLERANCE:g})")
    print(f"{'ratio':>6}  {'expected counts':>16}  {'median of ' + str(args.draws):>16}  "
          f"{'early fails':>12}")
    for ratio in RATIOS:
        exact = "/".join(_fmt(expected(ratio, good)) for good in GOOD_LOOKS)
        medians, early = [], []
        for good in GOOD_LOOKS:
            results = drawn(rng, ratio, good)
            failed = sorted(r if r is not None else BAD_LOOKS + 1 for r in results)
            middle = failed[len(failed) // 2]
            medians.append(None if middle > BAD_LOOKS else middle)
            early.append(sum(r == 0 for r in results))
        print(f"{ratio:>5g}x  {exact:>16}  {'/'.join(map(_fmt, medians)):>16}  "
              f"{'/'.join(map(str, early)):>12}")


if __name__ == "__main__":
    main()
