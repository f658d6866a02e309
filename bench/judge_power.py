"""Where the sequential count test loses power and time (no Prometheus: Poisson draws).

    python bench/judge_power.py misses --ratio 2 --base 0.01 --releases 3000 --seed 1
    python bench/judge_power.py floor --ratio 2 --base 0.01 --looks-per-minute 60

The traffic is bench/judge_prometheus.py's: canary 20 req/s, stable 80 req/s, the catalog's
1.2x tolerance at 95%.

* `misses`: releases judged a look a minute, as the catalog's metric (10 looks, then up to 3
  more while the test is inconclusive); for every release not failed by the 10th look,
  which check held it there: the count e-value (below 1/alpha) or the consistency checks
  (count e-value at 1/alpha, neither the swing-robust e-value nor a sign test agreeing);
  and what the extra looks made of it (failed, passed, still inconclusive).
* `floor`: minutes to detection of the count e-value alone (the mixture over ratios, no
  consistency checks) with `--looks-per-minute` looks, against Wald's SPRT that knows the
  true ratio (1.2x against it, alpha = beta = 0.05) on the same draws and looks, and
  against Wald's expected time (`judge_prometheus.sprt_minutes`). With many looks a minute
  this is what the mixture costs for not knowing the effect; with one, what the look costs.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from judge_prometheus import ALPHA, BETA, NULL_RATIO, Case, sprt_minutes

from rollouts.analysis.sequential import (
    SequentialState,
    _bound_indices,
    _grid,
    _log_e_values,
    sequential_counts,
)

TOLERANCE = NULL_RATIO - 1
CANARY_RPS, STABLE_RPS = 20.0, 80.0
LOOKS, EXTRA = 10, 3


def _look(rng: np.random.Generator, ratio: float, base: float, seconds: float) -> tuple[int, ...]:
    nc, nb = rng.poisson(CANARY_RPS * seconds), rng.poisson(STABLE_RPS * seconds)
    return rng.binomial(nc, min(1.0, base * ratio)), nc, rng.binomial(nb, base), nb


def misses(ratio: float, base: float, releases: int, seed: int) -> Counter[str]:
    rng = np.random.default_rng(seed)
    tally: Counter[str] = Counter()
    for _ in range(releases):
        state = SequentialState.start(TOLERANCE)
        for look in range(1, LOOKS + EXTRA + 1):
            state = state.update(*(float(v) for v in _look(rng, ratio, base, 60.0)))
            evidence = sequential_counts(state, min_samples=100, final=look >= LOOKS)
            if evidence.decision == "fail" and look <= LOOKS:
                tally["failed by look 10"] += 1
            elif evidence.decision == "pass" and look < LOOKS:
                tally["passed early"] += 1
            elif evidence.decision == "pass" and look == LOOKS:
                tally["passed at look 10: the count e-value < 1/alpha"] += 1
            elif look == LOOKS:  # inconclusive: the count e-value is there, the checks not
                continue
            elif look > LOOKS and evidence.decision in ("fail", "pass"):
                tally[f"held by the consistency checks at look 10, {evidence.decision} by "
                      f"look {look}"] += 1  # fmt: skip
            elif look == LOOKS + EXTRA:
                tally["held by the consistency checks at look 10, inconclusive at 13"] += 1
            else:
                continue
            break
    return tally


def floor(ratio: float, base: float, per_minute: int, releases: int, seed: int) -> None:
    grid = _grid(TOLERANCE)
    _, high = _bound_indices(grid, TOLERANCE)
    rates = np.exp(grid)
    upper, lower = math.log((1 - BETA) / ALPHA), math.log(BETA / (1 - ALPHA))
    rng = np.random.default_rng(seed)
    mixture, known = [], []
    for _ in range(releases):
        log_likelihood = np.zeros(len(grid))
        found: float | None = None
        wald, wald_at = 0.0, None
        for k in range(1, 30 * per_minute + 1):
            xc, nc, xb, nb = _look(rng, ratio, base, 60.0 / per_minute)
            if nc > 0 and nb > 0 and xc + xb > 0:
                share = rates * nc / (rates * nc + nb)
                log_likelihood += xc * np.log(share) + xb * np.log1p(-share)
                if wald_at is None:
                    p1, p0 = (r * nc / (r * nc + nb) for r in (ratio, NULL_RATIO))
                    wald += xc * math.log(p1 / p0) + xb * math.log((1 - p1) / (1 - p0))
                    if wald >= upper or wald <= lower:
                        wald_at = k / per_minute if wald >= upper else math.inf
                if found is None and _log_e_values(log_likelihood, grid)[0][high] >= math.log(20):
                    found = k / per_minute
            if found is not None and wald_at is not None:
                break
        mixture.append(found if found is not None else math.inf)
        known.append(wald_at if wald_at is not None else math.inf)
    bound = sprt_minutes(Case("", True, base, ratio))
    assert bound is not None
    for name, times in (("count e-value alone", mixture), ("SPRT knowing the ratio", known)):
        array = np.asarray(times)
        p50, p90 = np.percentile(array, 50), np.percentile(array, 90)
        print(
            f"{ratio:g}x at {base:.1%}, {per_minute} look(s)/min, {name:23}: detected "
            f"{np.isfinite(array).mean():6.1%} within 30 min, p50 {p50:.2f} min, p90 {p90:.2f}; "
            f"Wald's expected {bound:.2f} min; p50 / Wald {p50 / bound:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("misses", "floor"))
    parser.add_argument("--ratio", type=float, default=2.0)
    parser.add_argument("--base", type=float, default=0.01)
    parser.add_argument("--releases", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--looks-per-minute", type=int, default=60)
    args = parser.parse_args()
    if args.what == "misses":
        tally = misses(args.ratio, args.base, args.releases, args.seed)
        print(f"{args.ratio:g}x at {args.base:.1%}, {args.releases} releases, seed {args.seed}:")
        for outcome, n in sorted(tally.items(), key=lambda item: -item[1]):
            print(f"  {outcome:60} {n:6} {n / args.releases:7.2%}")
    else:
        floor(args.ratio, args.base, args.looks_per_minute, args.releases, args.seed)


if __name__ == "__main__":
    main()
