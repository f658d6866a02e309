"""Compare release judges on synthetic releases: false rollbacks, misses, detection time.

    python bench/judge.py                      # 300 releases per scenario, seed 1
    python bench/judge.py --releases 1000 --seed 7 --json
    python bench/judge.py --looks-per-interval 4     # the sequential judge looks 4x an interval
    python bench/judge.py --judges sequential --pass-margin off   # the last-look rule off

The releases are drawn in this process (numpy, seeded): no Prometheus, no controller. Each
release is a canary and its baseline receiving `requests` requests per side per interval,
with a baseline error rate and a canary error rate `ratio` times it; some scenarios add
shared blips (an interval where a dependency fails and both sides see 20x the errors).
Up to `--horizon` intervals are judged (default 10). An interval stands for a minute: with
`--looks-per-interval K` the sequential judge looks K times an interval, at requests / K a
look (its checks take windows of a minute: `check_windows`), and the swings and blips last
the whole interval; the other judges see the interval's sums, as with K = 1. Judges:

* threshold-95 / threshold-99: the canary's success rate in the interval must be >= 95% /
  99% (an Argo successCondition); the first interval below fails the release.
* mann-whitney: fixed horizon. At the end, the canary's per-interval error rates against
  the baseline's, one-sided Mann-Whitney at 95% with a 10% relative tolerance
  (`rank_tests.mann_whitney`); detection time is the horizon.
* sequential: `sequential.sequential_counts` after every interval (the `sequentialCounts`
  metric: 10% relative tolerance, 95% confidence, 100 requests minimum), stopping at the
  first fail or pass; an undecided release passes at the horizon, unless the test is
  inconclusive there (too little traffic, count evidence the consistency checks do not
  confirm, or a regression of the pass margin not ruled out: `--pass-margin R`, relative,
  or `off`; default the product's, 2x): then it looks up to 3 more intervals
  (`extraMeasurements`), and a release still inconclusive is neither passed nor failed (the
  rollout would pause).

A release with ratio 1 is good: failing it is a false rollback. A release with ratio > 1.1
is bad: passing it is a miss. "decided": intervals until the right decision (a bad release
failed, a good one passed), median and p90 over the releases that got it.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from margin_option import (
    add_extra_looks_option,
    add_pass_margin_option,
    extra_looks,
    pass_margin_kwargs,
    pass_margin_words,
)

from rollouts.analysis.rank_tests import mann_whitney
from rollouts.analysis.sequential import SequentialState, sequential_counts
from rollouts.analysis.statistics import Tolerance

TOLERANCE = 0.1
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Scenario:
    name: str
    requests: int  # per side per interval
    base_rate: float
    ratio: float
    blip_chance: float = 0.0
    noisy: bool = False  # the canary's rate times a gamma swing per interval (mean 1, cv 0.7)


SCENARIOS = (
    Scenario("good, 0.1% errors, 5000 req/interval", 5000, 0.001, 1.0),
    Scenario("good, 1% errors, 1000 req/interval", 1000, 0.01, 1.0),
    Scenario("good, 0.5% errors, shared blips 10%", 2000, 0.005, 1.0, 0.1),
    Scenario("good, low traffic 60 req/interval", 60, 0.01, 1.0),
    Scenario("good, 1% errors, 8 req/interval", 8, 0.01, 1.0),
    Scenario("bad 10x, 0.1% -> 1%, 5000 req", 5000, 0.001, 10.0),
    Scenario("bad 10x, 0.1% -> 1%, 500 req", 500, 0.001, 10.0),
    Scenario("bad 2x, 1% -> 2%, 1000 req", 1000, 0.01, 2.0),
    Scenario("bad 1.5x, 1% -> 1.5%, 5000 req", 5000, 0.01, 1.5),
    Scenario("good, 1% errors, noisy canary, 1000 req", 1000, 0.01, 1.0, noisy=True),
    Scenario("bad 2x, 1% -> 2%, noisy canary, 1000 req", 1000, 0.01, 2.0, noisy=True),
    Scenario("bad 10x, 1% -> 10%, noisy canary, 1000", 1000, 0.01, 10.0, noisy=True),
    # Appended (round 7), so that the scenarios above keep their draws: the canary's traffic
    # of the catalog's bench (20 req/s) at 0.1%, and 1 req/s at 1%, where 2x shows slowly.
    Scenario("good, 0.1% errors, 1200 req/interval", 1200, 0.001, 1.0),
    Scenario("bad 2x, 0.1% -> 0.2%, 1200 req", 1200, 0.001, 2.0),
    Scenario("bad 2x, 1% -> 2%, 60 req/interval", 60, 0.01, 2.0),
)

@dataclass(frozen=True)
class Release:
    """Errors per look (K looks an interval) and requests per interval; `canary_errors` and
    `baseline_errors` are the interval's sums."""

    look_canary_errors: np.ndarray
    look_baseline_errors: np.ndarray
    requests: int
    looks_per_interval: int = 1

    @property
    def canary_errors(self) -> np.ndarray:
        return self.look_canary_errors.reshape(-1, self.looks_per_interval).sum(axis=1)

    @property
    def baseline_errors(self) -> np.ndarray:
        return self.look_baseline_errors.reshape(-1, self.looks_per_interval).sum(axis=1)


def draw(
    rng: np.random.Generator, scenario: Scenario, horizon: int, looks: int = 1,
    extra: int | None = None,
) -> Release:
    """`horizon` intervals plus the sequential judge's extra looks (whole intervals; at
    least the product's default, so that the draws do not depend on `extra` below it),
    with `looks` looks an interval, each at requests / looks."""
    most = max(extra_looks(None, horizon * looks), extra or 0)
    intervals = horizon + -(-most // looks)
    blips = rng.random(intervals) < scenario.blip_chance
    base = np.where(blips, np.minimum(1.0, scenario.base_rate * 20), scenario.base_rate)
    swing = rng.gamma(2.0, 0.5, intervals) if scenario.noisy else 1.0
    canary = np.minimum(1.0, base * scenario.ratio * swing)
    per_look = scenario.requests // looks
    return Release(
        rng.binomial(per_look, np.repeat(canary, looks)),
        rng.binomial(per_look, np.repeat(base, looks)),
        scenario.requests,
        looks,
    )


# A judge returns ("fail" | "pass" | "inconclusive", intervals used), given the horizon.
Judge = Callable[[Release, int], tuple[str, float]]


def threshold(minimum: float) -> Judge:
    def judge(release: Release, horizon: int) -> tuple[str, int]:
        for look, errors in enumerate(release.canary_errors[:horizon], start=1):
            if 1 - errors / release.requests < minimum:
                return "fail", look
        return "pass", horizon

    return judge


def fixed_mann_whitney(release: Release, horizon: int) -> tuple[str, int]:
    evidence = mann_whitney(
        release.canary_errors[:horizon] / release.requests,
        release.baseline_errors[:horizon] / release.requests,
        tolerance=Tolerance(relative=TOLERANCE),
        confidence=CONFIDENCE,
        min_samples=5,
    )
    return evidence.decision, horizon


MIN_SAMPLES = 100  # the sequential judge's minSamples (requests a side)


def sequential(
    release: Release, horizon: int, pass_margin: float | None = None, extra: int | None = None
) -> tuple[str, float]:
    """As the metric does: from the horizon on, an inconclusive look waits for at most
    `extra` more (None: the product's default); inconclusive then (the rollout would
    pause) is neither a pass nor a fail. Time in intervals (a look is 1 /
    looks_per_interval of one). `pass_margin`: `sequential_counts`' (None: its default)."""
    state = SequentialState.start(TOLERANCE)
    k = release.looks_per_interval
    count = horizon * k
    last = count + extra_looks(extra, count)
    requests = float(release.requests // k)
    for look in range(1, last + 1):
        state = state.update(
            float(release.look_canary_errors[look - 1]),
            requests,
            float(release.look_baseline_errors[look - 1]),
            requests,
            seconds=60.0 / k,
        )
        evidence = sequential_counts(
            state,
            confidence=CONFIDENCE,
            min_samples=MIN_SAMPLES,
            final=look >= count,
            **pass_margin_kwargs(pass_margin),
        )
        state = evidence.state or state  # what the judgment remembers (a plain failure)
        if evidence.decision in ("fail", "pass"):
            return evidence.decision, look / k
        traffic = evidence.has_min_samples(MIN_SAMPLES)
        if evidence.decision == "inconclusive" and look >= count + extra_looks(
            extra, count, traffic
        ):
            return "inconclusive", look / k
    raise AssertionError("unreachable")


JUDGES: dict[str, Judge] = {
    "threshold-95": threshold(0.95),
    "threshold-99": threshold(0.99),
    "mann-whitney": fixed_mann_whitney,
    "sequential": sequential,
}


def run(
    releases: int,
    seed: int,
    horizon: int,
    looks: int = 1,
    scenarios: tuple[str, ...] = (),
    judges: tuple[str, ...] = (),
    pass_margin: float | None = None,
    extra: int | None = None,
) -> list[dict[str, object]]:
    """Every scenario whose name contains one of `scenarios` (all without), by the judges
    named in `judges` (all without); each scenario's draws do not depend on the others.
    `pass_margin`, `extra`: the sequential judge's (None: the product's default)."""
    rows: list[dict[str, object]] = []
    chosen = dict(JUDGES)
    chosen["sequential"] = functools.partial(sequential, pass_margin=pass_margin, extra=extra)
    for index, scenario in enumerate(SCENARIOS):
        if scenarios and not any(word in scenario.name for word in scenarios):
            continue
        rng = np.random.default_rng([seed, index])
        drawn = [draw(rng, scenario, horizon, looks, extra) for _ in range(releases)]
        bad = scenario.ratio > 1 + TOLERANCE
        for name, judge in chosen.items():
            if judges and name not in judges:
                continue
            started = time.perf_counter()
            outcomes = [judge(release, horizon) for release in drawn]
            elapsed = time.perf_counter() - started
            fails = [look for decision, look in outcomes if decision == "fail"]
            # Intervals until the right decision: a fail for a bad release, a pass for a good.
            decided = [
                look for decision, look in outcomes if decision == ("fail" if bad else "pass")
            ]
            inconclusive = sum(decision == "inconclusive" for decision, _ in outcomes)
            rows.append(
                {
                    "scenario": scenario.name,
                    "judge": name,
                    "bad": bad,
                    "fail_rate": len(fails) / releases,
                    "inconclusive_rate": inconclusive / releases,
                    "decided_p50": float(np.median(decided)) if decided else None,
                    "decided_p90": float(np.percentile(decided, 90)) if decided else None,
                    "ms_per_release": 1000 * elapsed / releases,
                }
            )
    return rows


def _print(
    rows: list[dict[str, object]],
    releases: int,
    seed: int,
    horizon: int,
    looks: int,
    pass_margin: float | None = None,
    extra: int | None = None,
) -> None:
    every = "" if looks == 1 else f"; the sequential judge looks {looks} times an interval"
    if words := pass_margin_words(pass_margin):
        every += f"; the sequential judge's {words}"
    every += f"; it adds up to {extra_looks(extra, horizon * looks)} looks"
    print(f"releases per scenario: {releases}, seed {seed}, horizon {horizon} intervals{every}")
    print("false rb: good releases failed; miss: bad releases passed; decided: intervals to")
    print("the right decision (fail for bad, pass for good)")
    header = f"{'scenario':40} {'judge':13} {'false rb':>8} {'miss':>6} {'inconcl':>7} "
    print(header + f"{'decided p50':>11} {'p90':>5} {'ms/rel':>7}")
    for row in rows:
        fail = float(row["fail_rate"])  # type: ignore[arg-type]
        inconclusive = float(row["inconclusive_rate"])  # type: ignore[arg-type]
        false_rb = "-" if row["bad"] else f"{fail:.1%}"
        miss = f"{max(0.0, 1 - fail - inconclusive):.1%}" if row["bad"] else "-"
        p50 = "-" if row["decided_p50"] is None else f"{row['decided_p50']:g}"
        p90 = "-" if row["decided_p90"] is None else f"{row['decided_p90']:g}"
        print(
            f"{row['scenario']:40} {row['judge']:13} {false_rb:>8} {miss:>6} "
            f"{inconclusive:>7.1%} {p50:>11} {p90:>5} {row['ms_per_release']:>7.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--horizon", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--looks-per-interval", type=int, default=1,
                        help="looks of the sequential judge per interval (a minute)")  # fmt: skip
    parser.add_argument("--scenarios", nargs="*", default=(), help="words of the scenarios")
    parser.add_argument("--judges", nargs="*", default=(), choices=list(JUDGES))
    add_pass_margin_option(parser)
    add_extra_looks_option(parser)
    args = parser.parse_args()
    rows = run(args.releases, args.seed, args.horizon, args.looks_per_interval,
               tuple(args.scenarios), tuple(args.judges), args.pass_margin,
               args.extra_looks)  # fmt: skip
    if args.json:
        if args.pass_margin is not None:  # the sequential judge's rows say theirs
            for row in rows:
                if row["judge"] == "sequential":
                    row["pass_margin"] = args.pass_margin
        print(json.dumps(rows, indent=2))
    else:
        _print(rows, args.releases, args.seed, args.horizon, args.looks_per_interval,
               args.pass_margin, args.extra_looks)  # fmt: skip


if __name__ == "__main__":
    main()
