"""Release judges on releases that go through a real Prometheus, with known truth.

    python bench/judge_prometheus.py                 # 200 releases per case, seed 1
    python bench/judge_prometheus.py --releases 500 --seed 7 --json
    python bench/judge_prometheus.py --interval 30 --scrape 15 --horizon 15 --cases 2x --judges ours

Options for the look interval and horizon (defaults: the tables of docs/benchmarks.md):
`--interval` is the error-rate metric's look (its `interval`, and the `[{{interval}}]` window
of its queries), `--horizon` its looks in minutes (`count` = horizon / interval; the
Kayenta-style judge and `sprt-known` use the same horizon), `--scrape` the scrape interval
of the drawn series (a look needs a scrape, two with `--looks-query increase`), and
`--query-offset` shifts the looks off the scrapes' grid (with 0 every look's window starts
and ends on a scrape, so `increase()` extrapolates nothing; a real controller's looks fall
anywhere between scrapes). `--looks-query` is how a look counts: `difference` (the catalog's
queries: every counter now minus a look ago) or `increase` (`increase()` over the look,
which extrapolates: off the scrapes' grid a look two scrapes long sees one scrape interval's
growth, doubled). `--cases` / `--judges` keep the cases whose name contains one of the
words, and the judges named. `--pass-margin R` sets ours' error-rate metric's
`compare.passMargin.relative` (`off`: 1000, the last-look rule off; unset: the catalog's).

The cases and their series: `judge_cases.py`.

Judges (decisions by the controller's own pure code: `assessment.measure`,
`comparison.judge`, `record_measurement`, `assess_metric`; metric settings read from the
catalog files in `analysis/`):

* threshold: the catalog's `http-success-rate` (>= 95% over rate[5m]) and `http-latency-p99`
  (p99 <= 500 ms), 5 looks a minute apart, failureLimit 1 (defaults); fails when either does.
* kayenta-mw: fixed horizon, Kayenta style: after 10 minutes, a one-sided Mann-Whitney at 95%
  of the canary's 10 per-minute error rates against the baseline's (tolerance 20%), and of
  its per-minute p99 latencies (tolerance 10%); fails when either does.
* ours: the catalog's `http-compare`: `error-rate-vs-baseline` (sequentialCounts, a look a
  minute, 10 looks, 1.2x tolerance, 95%) and `latency-vs-baseline` (mannWhitney on 10
  per-minute p99s a side at 10 minutes, 10% tolerance).

Reported per case and judge: the share of releases failed (for a good release: a false
rollback; for a bad one: caught), missed (bad releases promoted: passed), inconclusive
(neither: the rollout pauses, as the controller does with an Inconclusive run), median and
p90 minutes to the failing look, and for error-rate cases the SPRT bound: Wald's expected
time for a sequential probability ratio test that knows the true ratio, testing it against
1.2x (alpha = beta = 0.05) on the same traffic: no test with those error rates is faster on
average for that effect; p50/SPRT is the median over it. `sprt-known` is that test run on
the same per-minute counts with our look interval and horizon (a look a minute, 10 looks):
the best any judge that looks once a minute can do, knowing the effect.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from judge_cases import CASES, SIGMA, T0, Case, Observed, Setup, observe, render_case
from margin_option import (
    add_extra_looks_option,
    add_pass_margin_option,
    extra_looks,
    pass_margin_words,
)

from rollouts.analysis.assessment import assess_metric, measure, new_result, record_measurement
from rollouts.analysis.comparison import judge
from rollouts.analysis.providers.base import ComparisonSamples
from rollouts.analysis.rank_tests import mann_whitney
from rollouts.analysis.statistics import Tolerance
from rollouts.analysis.templates import substitute_args
from rollouts.models.analysis import Metric, MetricResult, load_cluster_analysis_template
from rollouts.sandbox.prometheus import PrometheusServer

CATALOG = Path(__file__).resolve().parents[1] / "analysis"
NULL_RATIO = 1.2  # the catalog comparison's tolerance: the SPRT bound tests against it
ALPHA = BETA = 0.05
DEFAULT_SETUP = Setup()  # the recorded tables' looks


# ---------------------------------------------------------------------------------------------
# Judges: (decision, minute of the deciding look)


@functools.cache
def catalog_metric(
    template: str,
    name: str | None = None,
    overrides: tuple[tuple[str, str], ...] = (),
    pass_margin: float | None = None,
    extra: int | None = None,
) -> Metric:
    """The template's metric, its args at their defaults (placeholders where required)
    but for `overrides` ((arg, value) pairs); `pass_margin` sets its
    `compare.passMargin.relative`, `extra` its `compare.extraMeasurements` (validated as a
    manifest's would be)."""
    doc = yaml.safe_load((CATALOG / f"{template}.yaml").read_text(encoding="utf-8"))
    defaults = {a["name"]: a.get("value") or f"bench-{a['name']}" for a in doc["spec"]["args"]}
    defaults.update(overrides)
    doc = substitute_args(doc, defaults)
    for metric in doc["spec"]["metrics"]:
        if name is None or metric["name"] == name:
            if pass_margin is not None:
                metric["compare"]["passMargin"] = {"relative": pass_margin}
            if extra is not None:
                metric["compare"]["extraMeasurements"] = extra
    loaded = load_cluster_analysis_template(doc)
    return next(m for m in loaded.spec.metrics if name is None or m.name == name)


def _at(minute: float) -> datetime:
    return datetime.fromtimestamp(T0 + 60 * minute, tz=UTC)


def _fold(metric: Metric, result: MetricResult, record: Any) -> tuple[MetricResult, str]:
    result = record_measurement(result, record)
    return result, assess_metric(metric, result).phase


def _vector(value: float) -> list[float]:
    return [] if math.isnan(value) else [float(value)]  # the evaluator takes Python floats


Outcome = tuple[str, float]  # (decision, minute of the deciding look)


def threshold_judge(obs: dict[str, Observed], seed: int, setup: Setup) -> Outcome:
    metrics = [(catalog_metric("http-success-rate"), obs["success5m"].get(seed, "canary")),
               (catalog_metric("http-latency-p99"), obs["p99_5m"].get(seed, "canary"))]  # fmt: skip
    results = [new_result(m.name) for m, _ in metrics]
    phases = ["Running"] * len(metrics)
    for minute in range(1, setup.minutes + 1):
        for i, (metric, values) in enumerate(metrics):
            if phases[i] != "Running":
                continue
            record = measure(metric, _vector(values[minute - 1]), started_at=_at(minute),
                             finished_at=_at(minute))  # fmt: skip
            results[i], phases[i] = _fold(metric, results[i], record)
            if phases[i] == "Failed":
                return "fail", minute
        if all(p != "Running" for p in phases):
            return ("pass" if all(p == "Successful" for p in phases) else "inconclusive"), minute
    return "inconclusive", setup.minutes


def kayenta_judge(obs: dict[str, Observed], seed: int, setup: Setup) -> Outcome:
    horizon = setup.horizon

    def per_minute_rate(role: str) -> np.ndarray:
        errors = obs["errors"].get(seed, role)[:horizon]
        requests = obs["requests"].get(seed, role)[:horizon]
        with np.errstate(invalid="ignore", divide="ignore"):
            return errors / requests

    checks = [
        (per_minute_rate("canary"), per_minute_rate("stable"), 0.2),
        (obs["p99_1m"].get(seed, "canary")[:horizon], obs["p99_1m"].get(seed, "stable")[:horizon],
         0.1),
    ]  # fmt: skip
    decisions = [mann_whitney(c, b, tolerance=Tolerance(relative=tol), confidence=0.95,
                              min_samples=5).decision for c, b, tol in checks]  # fmt: skip
    if "fail" in decisions:
        return "fail", horizon
    return ("pass" if all(d == "pass" for d in decisions) else "inconclusive"), horizon


def errors_metric(setup: Setup) -> Metric:
    """The catalog's error-rate metric with the setup's look interval, horizon, pass margin
    and extra looks."""
    looks = (("interval", f"{setup.interval}s"), ("looks", str(setup.count)))
    return catalog_metric(
        "http-compare", "error-rate-vs-baseline", looks, setup.pass_margin, setup.extra_looks
    )


def our_judge(obs: dict[str, Observed], seed: int, setup: Setup) -> Outcome:
    metric = errors_metric(setup)
    latency_metric = catalog_metric("http-compare", "latency-vs-baseline")
    errors = {role: obs["looks_errors"].get(seed, role) for role in ("canary", "stable")}
    requests = {role: obs["looks_requests"].get(seed, role) for role in ("canary", "stable")}
    p99 = {role: obs["p99_1m"].get(seed, role) for role in ("canary", "stable")}
    result, phase = new_result(metric.name), "Running"
    latency_phase = "Running"
    for look in range(1, setup.looks + 1):
        minute = look * setup.interval / 60
        if phase == "Running":
            samples = ComparisonSamples(
                tuple(_vector(errors["canary"][look - 1]) or [0.0]),
                tuple(_vector(errors["stable"][look - 1]) or [0.0]),
                tuple(_vector(requests["canary"][look - 1]) or [0.0]),
                tuple(_vector(requests["stable"][look - 1]) or [0.0]),
            )
            record = judge(metric, samples, result, started_at=_at(minute),
                           finished_at=_at(minute))  # fmt: skip
            result, phase = _fold(metric, result, record)
            if phase == "Failed":
                return "fail", minute
        if minute == 10:  # initialDelay 10m: one look at the last 10 one-minute p99s
            samples = ComparisonSamples(tuple(p99["canary"][:10]), tuple(p99["stable"][:10]))
            record = judge(latency_metric, samples, None, started_at=_at(10), finished_at=_at(10))
            _, latency_phase = _fold(latency_metric, new_result(latency_metric.name), record)
            if latency_phase == "Failed":
                return "fail", minute
        if phase != "Running" and latency_phase != "Running":
            good = phase == "Successful" and latency_phase == "Successful"
            return ("pass" if good else "inconclusive"), minute
    return "inconclusive", setup.minutes


def sprt_oracle(case: Case, power_one: bool = False) -> Judge:
    """Wald's SPRT that knows the case's true ratio (1.2x against it, alpha = beta = 0.05)
    on the same per-look counts Prometheus returned, at our look interval and horizon.
    `power_one`: the one-boundary version (reject at 1/alpha, never accept: it catches
    every regression eventually, where the two-boundary one accepts 1.2x on about 5%)."""
    upper = math.log(1 / ALPHA) if power_one else math.log((1 - BETA) / ALPHA)
    lower = -math.inf if power_one else math.log(BETA / (1 - ALPHA))

    def judge_fn(obs: dict[str, Observed], seed: int, setup: Setup) -> Outcome:
        sides = ("canary", "stable")
        xc, xb = (np.nan_to_num(obs["looks_errors"].get(seed, r)) for r in sides)
        nc, nb = (np.nan_to_num(obs["looks_requests"].get(seed, r)) for r in sides)
        total = 0.0
        for look in range(1, setup.count + 1):
            i, minute = look - 1, look * setup.interval / 60
            if nc[i] > 0 and nb[i] > 0:
                p1, p0 = (r * nc[i] / (r * nc[i] + nb[i]) for r in (case.error_ratio, NULL_RATIO))
                total += xc[i] * math.log(p1 / p0) + xb[i] * math.log((1 - p1) / (1 - p0))
            if total >= upper:
                return "fail", minute
            if total <= lower:
                return "pass", minute
        return "pass", setup.horizon

    return judge_fn


Judge = Callable[[dict[str, Observed], int, Setup], Outcome]
JUDGES: dict[str, Judge] = {
    "threshold": threshold_judge,
    "kayenta-mw": kayenta_judge,
    "ours": our_judge,
}


# ---------------------------------------------------------------------------------------------
# The SPRT bound


def sprt_minutes(case: Case) -> float | None:
    """Wald's expected time to reject ratio NULL_RATIO when the true ratio is the case's."""
    rho = case.error_ratio
    if rho <= NULL_RATIO or case.latency_scale != 1.0 or case.canary_sigma != SIGMA:
        return None
    share = case.canary_rps / (case.canary_rps + case.stable_rps)

    def p(ratio: float) -> float:  # an error is the canary's with this probability
        return ratio * share / (ratio * share + 1 - share)

    p1, p0 = p(rho), p(NULL_RATIO)
    kl = p1 * math.log(p1 / p0) + (1 - p1) * math.log((1 - p1) / (1 - p0))
    drift = (1 - BETA) * math.log((1 - BETA) / ALPHA) + BETA * math.log(BETA / (1 - ALPHA))
    errors_per_minute = 60 * case.base_rate * (rho * case.canary_rps + case.stable_rps)
    return drift / kl / errors_per_minute


# ---------------------------------------------------------------------------------------------
# Run and report


def run(
    releases: int,
    seed: int,
    setup: Setup = DEFAULT_SETUP,
    cases: tuple[str, ...] = (),
    judges: tuple[str, ...] = (),
    caught_by: tuple[int, ...] = (),
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Every case whose name contains one of `cases` (all without), by every judge named in
    `judges` (all without; `sprt-known` on error-rate cases, `sprt-one` only when named).
    `caught_by`: minutes at which to count the share of releases failed so far."""
    timings = {"generate_s": 0.0, "promtool_s": 0.0, "query_s": 0.0, "judge_s": 0.0}
    chosen = [(i, c) for i, c in enumerate(CASES) if not cases or any(w in c.name for w in cases)]
    prom = PrometheusServer()
    try:
        for index, case in chosen:
            started = time.perf_counter()
            text = render_case(index, case, releases, seed, setup)
            timings["generate_s"] += time.perf_counter() - started
            started = time.perf_counter()
            prom.load_openmetrics(text)
            timings["promtool_s"] += time.perf_counter() - started
        prom.start()
        rows = []
        for index, case in chosen:
            started = time.perf_counter()
            obs = observe(prom, index, setup)
            timings["query_s"] += time.perf_counter() - started
            started = time.perf_counter()
            judging = dict(JUDGES)
            if sprt_minutes(case) is not None:
                judging["sprt-known"] = sprt_oracle(case)
                judging["sprt-one"] = sprt_oracle(case, power_one=True)
            for name, judge_fn in judging.items():
                if name not in judges if judges else name == "sprt-one":
                    continue
                outcomes = [judge_fn(obs, s, setup) for s in range(releases)]
                rows.append(_row(case, name, outcomes, setup, caught_by))
            timings["judge_s"] += time.perf_counter() - started
    finally:
        prom.stop()
    return rows, timings


def sprt_look_minutes(bound: float | None, setup: Setup) -> float | None:
    """Wald's expected time at the data's resolution: the first look at or after it (looks
    every `setup.interval` seconds; no judge that sees counts only at its looks can fail
    before its first look)."""
    if bound is None:
        return None
    looks = max(1, math.ceil(bound * 60 / setup.interval - 1e-9))
    return looks * setup.interval / 60


def _row(
    case: Case,
    judge_name: str,
    outcomes: list[Outcome],
    setup: Setup = DEFAULT_SETUP,
    caught_by: tuple[int, ...] = (),
) -> dict[str, Any]:
    n = len(outcomes)
    failed = [minute for decision, minute in outcomes if decision == "fail"]
    passed_at = [minute for decision, minute in outcomes if decision == "pass"]
    passed = sum(decision == "pass" for decision, _ in outcomes)
    inconclusive = sum(decision == "inconclusive" for decision, _ in outcomes)
    bound = sprt_minutes(case)
    p50 = float(np.median(failed)) if failed and case.bad else None
    return {
        "case": case.name,
        "judge": judge_name,
        "bad": case.bad,
        "releases": n,
        "failed": len(failed) / n,
        "missed": passed / n if case.bad else None,  # promoted; Inconclusive pauses
        "inconclusive": inconclusive / n,
        "detect_p50_min": p50,
        "detect_p90_min": float(np.percentile(failed, 90)) if failed and case.bad else None,
        # a good release's minutes to pass (promotion), median and p90
        "pass_p50_min": float(np.median(passed_at)) if passed_at and not case.bad else None,
        "pass_p90_min": float(np.percentile(passed_at, 90)) if passed_at and not case.bad else None,
        "sprt_bound_min": bound,
        "p50_over_bound": p50 / bound if p50 is not None and bound else None,
        # the bound at the data's resolution: the first look at or after Wald's time
        "sprt_look_min": (at_look := sprt_look_minutes(bound, setup)),
        "p50_over_look_bound": p50 / at_look if p50 is not None and at_look else None,
        # the share of releases failed by each of these minutes
        "caught_by": {m: sum(t <= m for t in failed) / n for m in caught_by} if case.bad else {},
        # the minute by which 99% of the releases were failed (None: never within the run)
        "caught_99_min": _quantile_caught(failed, n, 0.99) if case.bad else None,
    }


def _quantile_caught(failed: list[float], n: int, share: float) -> float | None:
    """The minute by which `share` of the `n` releases had failed; None if fewer did."""
    needed = math.ceil(share * n - 1e-9)
    return sorted(failed)[needed - 1] if len(failed) >= needed else None


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(rows: list[dict[str, Any]], releases: int, seed: int, setup: Setup) -> None:
    looks = "looks every minute" if setup.interval == 60 else f"looks every {setup.interval}s"
    margin = f"; ours: {words}" if (words := pass_margin_words(setup.pass_margin)) else ""
    margin += f"; up to {extra_looks(setup.extra_looks, setup.count)} extra looks"
    print(f"releases per case: {releases}, seed {seed}; canary 20 req/s, stable 80 req/s "
          f"unless said; {looks}, horizon {setup.horizon} min, scrapes every {setup.scrape}s, "
          f"looks {setup.query_offset}s after a scrape, counted by "
          f"{setup.looks_query}{margin}")  # fmt: skip
    print("good case: 'failed' = false rollbacks, p50/p90: minutes to pass; bad case: "
          "'missed' = promoted, p50/p90: minutes to the failing look; "
          "'inconcl' = paused")  # fmt: skip
    head = f"{'case':30} {'judge':10} {'failed':>7} {'missed':>7} {'inconcl':>7} "
    print(head + f"{'p50':>5} {'p90':>5} {'SPRT':>6} {'p50/SPRT':>8} {'SPRT@look':>9} "
          f"{'p50/@look':>9}")  # fmt: skip
    for r in rows:
        missed = _fmt(r["missed"], ".1%")
        p50, p90 = _fmt(r["detect_p50_min"], "g"), _fmt(r["detect_p90_min"], "g")
        if not r["bad"]:  # a good release: minutes to pass
            p50, p90 = _fmt(r["pass_p50_min"], "g"), _fmt(r["pass_p90_min"], "g")
        sprt, ratio = _fmt(r["sprt_bound_min"], ".2f"), _fmt(r["p50_over_bound"], ".1f")
        at_look, look_ratio = _fmt(r["sprt_look_min"], "g"), _fmt(r["p50_over_look_bound"], ".1f")
        print(f"{r['case']:30} {r['judge']:10} {r['failed']:>7.1%} {missed:>7} "
              f"{r['inconclusive']:>7.1%} {p50:>5} {p90:>5} {sprt:>6} {ratio:>8} "
              f"{at_look:>9} {look_ratio:>9}")  # fmt: skip
    by = [r for r in rows if r["caught_by"]]
    if by:
        minutes = list(by[0]["caught_by"])
        print("failed by minute " + ", ".join(str(m) for m in minutes) + "; 99% failed by:")
        for r in by:
            shares = " ".join(f"{v:>6.1%}" for v in r["caught_by"].values())
            at = _fmt(r["caught_99_min"], "g")
            print(f"{r['case']:30} {r['judge']:10} {shares}  {at:>5}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=200, help="releases per case")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--interval", type=int, default=60, help="seconds between looks")
    parser.add_argument("--horizon", type=int, default=10, help="minutes of looks (count)")
    parser.add_argument("--scrape", type=int, default=30, help="seconds between scrapes")
    parser.add_argument("--query-offset", type=int, default=0, help="seconds after a scrape")
    parser.add_argument("--looks-query", choices=("increase", "difference"), default="difference")
    parser.add_argument("--cases", nargs="*", default=(), help="words of the cases to run")
    parser.add_argument("--judges", nargs="*", default=(),
                        choices=[*JUDGES, "sprt-known", "sprt-one"])  # fmt: skip
    parser.add_argument("--caught-by", type=int, nargs="*", default=(),
                        help="minutes at which to print the share of bad releases failed")
    add_pass_margin_option(parser)
    add_extra_looks_option(parser)
    args = parser.parse_args()
    setup = Setup(args.interval, args.horizon, args.scrape, args.query_offset, args.looks_query,
                  args.pass_margin, args.extra_looks)  # fmt: skip
    started = time.perf_counter()
    rows, timings = run(args.releases, args.seed, setup, tuple(args.cases), tuple(args.judges),
                        tuple(args.caught_by))  # fmt: skip
    timings["total_s"] = time.perf_counter() - started
    if args.json:
        margin = {} if args.pass_margin is None else {"pass_margin": args.pass_margin}
        print(json.dumps({"rows": rows, "timings": timings, **margin}, indent=2))
    else:
        print_table(rows, args.releases, args.seed, setup)
        print("timings: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))


if __name__ == "__main__":
    main()
