"""Where the sequential count test loses power and time (no Prometheus: Poisson draws).

    python bench/judge_power.py misses --ratio 2 --base 0.01 --releases 3000 --seed 1
    python bench/judge_power.py floor --ratio 2 --base 0.01 --looks-per-minute 60
    python bench/judge_power.py sweep --look-seconds 60 --horizons 15 --pass-margin off

The traffic is bench/judge_prometheus.py's: canary 20 req/s, stable 80 req/s, the catalog's
1.2x tolerance at 95%. `--pass-margin R` (relative, or `off`) sets the last look's pass
margin of `misses` and `sweep` (default: the product's, 2x); `floor` and `sprt-horizon` do
not call the judge.

* `misses`: releases judged a look a minute, as the catalog's metric (10 looks, then up to 3
  more while the test is inconclusive); for every release not failed by the 10th look,
  which check held it there: the count e-value (below 1/alpha) or the consistency checks
  (count e-value at 1/alpha, neither the swing-robust e-value nor a sign test agreeing);
  and what the extra looks made of it (failed, passed, still inconclusive).
* `sweep`: the catalog's metric (sequentialCounts with its consistency checks) at several look
  lengths (`--look-seconds`, e.g. 60 30 15: the metric's `interval`) and horizons
  (`--horizons` in minutes: `count` = horizon / look), on good, bad and noisy releases (the
  noisy canary's rate swings once a minute: gamma, cv 0.7, as in bench/judge_prometheus.py,
  so a 15 s look sees the same swing four times): false rollbacks, caught / paused /
  promoted, minutes to fail (bad) and to pass (good), p50 and p90. Every release is drawn
  once per look length and judged at every horizon on the same draws.
* `sprt-horizon`: how long Wald's SPRT that knows the effect needs to catch a share of the
  releases (`--target`, 0.99): the two-boundary SPRT (alpha = beta = 0.05, whose power is
  about 1 - beta at any horizon) and the one-boundary "power one" SPRT (reject at 1/alpha,
  never accept), looked at every second and once a minute; and Wald's expected time with
  beta = 1 - target.
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
from margin_option import add_pass_margin_option, pass_margin_kwargs, pass_margin_words

from rollouts.analysis.check_windows import Window
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


def misses(
    ratio: float, base: float, releases: int, seed: int, pass_margin: float | None = None
) -> Counter[str]:
    rng = np.random.default_rng(seed)
    tally: Counter[str] = Counter()
    for _ in range(releases):
        state = SequentialState.start(TOLERANCE)
        for look in range(1, LOOKS + EXTRA + 1):
            state = state.update(*(float(v) for v in _look(rng, ratio, base, 60.0)))
            evidence = sequential_counts(
                state, min_samples=100, final=look >= LOOKS, **pass_margin_kwargs(pass_margin)
            )
            state = evidence.state or state  # what the judgment remembers
            if evidence.decision == "fail" and look <= LOOKS:
                tally["failed by look 10"] += 1
            elif evidence.decision == "pass" and look < LOOKS:
                tally["passed early"] += 1
            elif evidence.decision == "pass" and look == LOOKS:
                tally["passed at look 10: the count e-value < 1/alpha"] += 1
            elif look == LOOKS:  # inconclusive: checks not agreeing, or the pass margin
                continue
            elif look > LOOKS and evidence.decision in ("fail", "pass"):
                tally[f"held at look 10 (checks or pass margin), {evidence.decision} by "
                      f"look {look}"] += 1  # fmt: skip
            elif look == LOOKS + EXTRA:
                tally["held at look 10 (checks or pass margin), inconclusive at 13"] += 1
            else:
                continue
            break
    return tally


# (name, base error rate, ratio, noisy): the bench's error-rate cases at the catalog traffic.
SWEEP_CASES = (
    ("good, 0.1%", 0.001, 1.0, False),
    ("good, 1%", 0.01, 1.0, False),
    ("good, noisy", 0.01, 1.0, True),
    ("2x, 0.1%", 0.001, 2.0, False),
    ("2x, 1%", 0.01, 2.0, False),
    ("2x, noisy", 0.01, 2.0, True),
    ("10x, 0.1%", 0.001, 10.0, False),
    ("10x, 1%", 0.01, 10.0, False),
)


def _timeline(
    rng: np.random.Generator, ratio: float, base: float, noisy: bool, look: float, looks: int
) -> np.ndarray:
    """Per look: canary errors, canary requests, baseline errors, baseline requests; the
    canary's rate swings once a minute when noisy (a look of L s sees its minute's swing)."""
    minute = (np.arange(looks) * look // 60).astype(int)
    swing = rng.gamma(2.0, 0.5, int(minute[-1]) + 1)[minute] if noisy else np.ones(looks)
    nc, nb = rng.poisson(CANARY_RPS * look, looks), rng.poisson(STABLE_RPS * look, looks)
    xc = rng.binomial(nc, np.minimum(1.0, base * ratio * swing))
    return np.stack([xc, nc, rng.binomial(nb, base), nb], axis=1).astype(float)


def _outcomes(
    counts: np.ndarray,
    look: float,
    horizons: list[int],
    extra: int,
    per_look: bool = False,
    pass_margin: float | None = None,
) -> dict[int, tuple[str, float]]:
    """(decision, minutes) of the catalog's metric at every horizon, on one release's looks:
    early fail or pass, else at `count` = horizon / look: pass, fail, or inconclusive and
    up to `extra` more looks (then a still inconclusive release pauses). `per_look`: the
    consistency checks fed every look as a window of its own (as before check windows).
    `pass_margin`: the last look's (None: `sequential_counts`' default)."""
    count = {h: round(h * 60 / look) for h in horizons}
    outcome: dict[int, tuple[str, float]] = {}
    state = SequentialState.start(TOLERANCE)
    for k, row in enumerate(counts, start=1):
        state = state.update(*(float(v) for v in row), seconds=60.0 if per_look else look)
        looked = sequential_counts(state, min_samples=100)
        state, early = looked.state or state, looked.decision  # what the judgment remembers
        final = None
        for h in horizons:
            if h in outcome:
                continue
            if early in ("fail", "pass"):
                outcome[h] = (early, k * look / 60)
            elif k >= count[h]:
                final = final or sequential_counts(
                    state, min_samples=100, final=True, **pass_margin_kwargs(pass_margin)
                ).decision
                if final in ("fail", "pass") or k >= count[h] + extra:
                    outcome[h] = (final, k * look / 60)
        if len(outcome) == len(horizons):
            break
    return outcome


def sweep(
    look_seconds: list[float],
    horizons: list[int],
    releases: int,
    seed: int,
    extra: int,
    per_look: bool = False,
    cases: tuple[str, ...] = (),
    pass_margin: float | None = None,
) -> None:
    checks = "every look its own check window" if per_look else "check windows of 60 s"
    if words := pass_margin_words(pass_margin):
        checks += f"; {words}"
    print(f"{releases} releases a case, seed {seed}; canary {CANARY_RPS:g} req/s, stable "
          f"{STABLE_RPS:g} req/s, 1.2x tolerance, 95%, up to {extra} extra looks; "
          f"{checks}")  # fmt: skip
    print("good: 'failed' = false rollbacks, p50/p90 = minutes to pass; bad: minutes to fail")
    print(f"{'case':12} {'look':>5} {'horizon':>7} {'failed':>7} {'paused':>7} {'promoted':>8} "
          f"{'p50':>6} {'p90':>6}")  # fmt: skip
    for index, (name, base, ratio, noisy) in enumerate(SWEEP_CASES):
        if cases and not any(word in name for word in cases):
            continue
        for look in look_seconds:
            rng = np.random.default_rng([seed, index, int(look)])
            looks = round(max(horizons) * 60 / look) + extra
            per_release = [
                _outcomes(
                    _timeline(rng, ratio, base, noisy, look, looks), look, horizons, extra,
                    per_look, pass_margin,
                )
                for _ in range(releases)
            ]
            for h in horizons:
                decided = [r[h] for r in per_release]
                share = Counter(d for d, _ in decided)
                right = "fail" if ratio > NULL_RATIO else "pass"
                times = [t for d, t in decided if d == right]
                p50 = f"{np.percentile(times, 50):6.2f}" if times else f"{'-':>6}"
                p90 = f"{np.percentile(times, 90):6.2f}" if times else f"{'-':>6}"
                print(f"{name:12} {look:>4g}s {h:>5}m {share['fail'] / releases:>7.1%} "
                      f"{share['inconclusive'] / releases:>7.1%} "
                      f"{share['pass'] / releases:>8.1%} {p50} {p90}", flush=True)  # fmt: skip


def wald_minutes(ratio: float, base: float, alpha: float, beta: float) -> float:
    """Wald's expected minutes for the SPRT of `ratio` against 1.2x with these error rates."""
    share = CANARY_RPS / (CANARY_RPS + STABLE_RPS)
    p1, p0 = (r * share / (r * share + 1 - share) for r in (ratio, NULL_RATIO))
    kl = p1 * math.log(p1 / p0) + (1 - p1) * math.log((1 - p1) / (1 - p0))
    drift = (1 - beta) * math.log((1 - beta) / alpha) + beta * math.log(beta / (1 - alpha))
    return drift / kl / (60 * base * (ratio * CANARY_RPS + STABLE_RPS))


def sprt_horizon(ratio: float, base: float, target: float, releases: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    minutes = 120
    share = CANARY_RPS / (CANARY_RPS + STABLE_RPS)
    p1, p0 = (r * share / (r * share + 1 - share) for r in (ratio, NULL_RATIO))
    up, down = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
    upper, lower = math.log((1 - BETA) / ALPHA), math.log(BETA / (1 - ALPHA))
    seconds = minutes * 60
    canary = rng.poisson(base * ratio * CANARY_RPS, (releases, seconds))
    baseline = rng.poisson(base * STABLE_RPS, (releases, seconds))
    path = np.cumsum(canary * up + baseline * down, axis=1)
    print(f"{ratio:g}x at {base:.1%}: Wald's expected time (alpha 0.05) "
          f"beta 0.05: {wald_minutes(ratio, base, ALPHA, BETA):.1f} min, beta "
          f"{1 - target:.2g}: {wald_minutes(ratio, base, ALPHA, 1 - target):.1f} min")  # fmt: skip
    for every, label in ((1, "every second"), (60, "once a minute")):
        seen = path[:, every - 1 :: every]
        times = (np.arange(seen.shape[1]) + 1) * every / 60
        crossed_up = seen >= upper
        first_up = np.where(crossed_up.any(axis=1), crossed_up.argmax(axis=1), seen.shape[1])
        crossed_down = seen <= lower
        never = seen.shape[1]
        first_down = np.where(crossed_down.any(axis=1), crossed_down.argmax(axis=1), never)
        two = np.where(first_up < first_down, first_up, never)
        rejected = seen >= math.log(1 / ALPHA)
        one = np.where(rejected.any(axis=1), rejected.argmax(axis=1), never)
        for name, first in (("two-boundary", two), ("power-one", one)):
            at_time = times[np.minimum(first, len(times) - 1)]
            caught = np.sort(np.where(first < never, at_time, np.inf))
            at = caught[math.ceil(target * releases) - 1]
            by = " / ".join(f"{(caught <= h).mean():.1%}" for h in (10, 15, 20, 30))
            print(f"  {name:12} looked {label:13}: caught within {minutes} min "
                  f"{np.isfinite(caught).mean():6.1%}; {target:.0%} caught by {at:.1f} min; "
                  f"by 10/15/20/30 min {by}")  # fmt: skip


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


def _windows_wait_for_errors(errors: float, longest: float = 300.0) -> None:
    """Make check windows close only after a minute AND `errors` errors (or `longest`
    seconds): the low-count windows evaluated in round 5 (docs/benchmarks.md), patched into
    this process only."""
    plain = Window.closed.fget
    assert plain is not None

    def closed(window: Window) -> bool:
        enough = window.canary_errors + window.baseline_errors >= errors
        return bool(plain(window)) and (enough or window.seconds >= longest * (1 - 1e-9))

    Window.closed = property(closed)  # type: ignore[method-assign,assignment]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("misses", "floor", "sweep", "sprt-horizon"))
    parser.add_argument("--ratio", type=float, default=2.0)
    parser.add_argument("--base", type=float, default=0.01)
    parser.add_argument("--releases", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--looks-per-minute", type=int, default=60)
    parser.add_argument("--look-seconds", type=float, nargs="+", default=[60.0, 30.0, 15.0])
    parser.add_argument("--horizons", type=int, nargs="+", default=[10, 15, 20])
    parser.add_argument("--extra", type=int, default=EXTRA, help="extraMeasurements")
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--checks-per-look", action="store_true",
                        help="sweep: feed the checks every look as a window (no windows)")
    parser.add_argument("--cases", nargs="*", default=(), help="sweep: words of the cases")
    parser.add_argument("--min-window-errors", type=float, default=0.0,
                        help="sweep: a check window also waits for this many errors (both "
                        "sides), up to 5 minutes (an experiment; not the product's rule)")
    add_pass_margin_option(parser)
    args = parser.parse_args()
    if args.min_window_errors:
        _windows_wait_for_errors(args.min_window_errors)
    if args.what == "sweep":
        sweep(args.look_seconds, args.horizons, args.releases, args.seed, args.extra,
              args.checks_per_look, tuple(args.cases), args.pass_margin)  # fmt: skip
        return
    if args.what == "sprt-horizon":
        sprt_horizon(args.ratio, args.base, args.target, args.releases, args.seed)
        return
    if args.what == "misses":
        tally = misses(args.ratio, args.base, args.releases, args.seed, args.pass_margin)
        margin = f", {words}" if (words := pass_margin_words(args.pass_margin)) else ""
        print(f"{args.ratio:g}x at {args.base:.1%}, {args.releases} releases, seed "
              f"{args.seed}{margin}:")  # fmt: skip
        for outcome, n in sorted(tally.items(), key=lambda item: -item[1]):
            print(f"  {outcome:60} {n:6} {n / args.releases:7.2%}")
    else:
        floor(args.ratio, args.base, args.looks_per_minute, args.releases, args.seed)


if __name__ == "__main__":
    main()
