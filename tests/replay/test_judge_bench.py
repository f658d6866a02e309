"""bench/judge_prometheus.py runs end to end (a handful of releases per case).

This checks the pipeline — draw, promtool, Prometheus, range queries, the three judges —
and that the obvious cases come out right; the rates themselves are the bench's to measure
(docs/benchmarks.md), with hundreds of releases, not this test's.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from rollouts.errors import InvalidSpecError
from tests.analysis.conftest import require_binaries

BENCH = Path(__file__).resolve().parents[2] / "bench" / "judge_prometheus.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("judge_prometheus", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.prometheus
def test_the_bench_pipeline_runs_and_tells_the_obvious_cases_apart() -> None:
    require_binaries()
    bench = _bench()
    rows, timings = bench.run(releases=4, seed=3)
    # Every judge on every case, and the SPRT that knows the effect on the error-rate cases.
    known = sum(bench.sprt_minutes(case) is not None for case in bench.CASES)
    assert len(rows) == len(bench.CASES) * len(bench.JUDGES) + known
    assert by_judge(rows, "sprt-known") == known
    by = {(r["case"], r["judge"]): r for r in rows}
    for row in rows:
        assert row["releases"] == 4
        assert 0.0 <= row["failed"] <= 1.0
    # 10x the errors at 1% is caught by both statistical judges, ours at the first look.
    assert by[("errors 10x, 1%", "ours")]["failed"] == 1.0
    assert by[("errors 10x, 1%", "ours")]["detect_p50_min"] == 1.0
    assert by[("errors 10x, 1%", "kayenta-mw")]["detect_p50_min"] == 10.0
    # 0.1% -> 1% still serves 99%: the 95% threshold passes it.
    assert by[("errors 10x, 0.1%", "threshold")]["failed"] == 0.0
    assert by[("latency +50%", "ours")]["failed"] == 1.0
    assert by[("good, 1% errors", "ours")]["missed"] is None
    assert set(timings) >= {"promtool_s", "query_s", "judge_s"}


def by_judge(rows: list[dict[str, object]], judge: str) -> int:
    return sum(row["judge"] == judge for row in rows)


def test_the_sprt_bound_matches_walds_formula() -> None:
    bench = _bench()
    case = bench.Case("x", True, 0.01, 2.0)
    # An error is the canary's with p1 = 0.4/1.2 = 1/3 (ratio 2, canary 20% of traffic)
    # against p0 = 0.24/1.04 (ratio 1.2): 0.02717 nats per error; Wald's 2.650 nats for
    # alpha = beta = 0.05 take 97.5 errors, at 72 errors a minute (1% of 40 + 80 req/s).
    assert bench.sprt_minutes(case) == pytest.approx(1.35, abs=0.01)
    assert bench.sprt_minutes(bench.Case("good", False)) is None


def test_the_look_setup_is_checked() -> None:
    bench = _bench()
    # 30 looks, then up to 5 x 30 extra ones (75 minutes) by default; 3 when told.
    setup = bench.Setup(interval=30, horizon=15, scrape=15)
    assert (setup.count, setup.minutes, setup.looks) == (30, 91, 181)
    short = bench.Setup(interval=30, horizon=15, scrape=15, extra_looks=3)
    assert (short.count, short.minutes, short.looks) == (30, 18, 35)
    assert bench.Setup().count == 10 and bench.Setup(extra_looks=3).minutes == 14
    assert bench.Setup(interval=30, scrape=30).count == 20  # a difference: a scrape a look
    with pytest.raises(ValueError, match="span 2 scrape"):
        bench.Setup(interval=30, scrape=30, looks_query="increase")  # increase() needs two
    with pytest.raises(ValueError, match="span 1 scrape"):
        bench.Setup(interval=15, scrape=30)
    with pytest.raises(ValueError, match="whole looks"):
        bench.Setup(interval=45, horizon=10, scrape=15)


@pytest.mark.prometheus
def test_half_minute_looks_catch_a_10x_regression_at_the_first_look() -> None:
    require_binaries()
    bench = _bench()
    setup = bench.Setup(interval=30, horizon=5, scrape=15, query_offset=7)
    rows, _ = bench.run(releases=3, seed=3, setup=setup, cases=("10x, 1%", "good, 1%"),
                        judges=("ours",))  # fmt: skip
    by = {row["case"]: row for row in rows}
    assert set(by) == {"errors 10x, 1%", "good, 1% errors"}
    assert by["errors 10x, 1%"]["failed"] == 1.0
    assert by["errors 10x, 1%"]["detect_p50_min"] == 0.5
    # The errors pass at the horizon (5 min); the latency metric's one look is at 10.
    assert by["good, 1% errors"]["pass_p50_min"] == 10.0


def test_the_pass_margin_option_reaches_ours_error_rate_metric() -> None:
    bench = _bench()
    import margin_option  # on the path once the bench is loaded

    assert margin_option.parse_pass_margin("off") == margin_option.OFF
    assert margin_option.parse_pass_margin("0.5") == 0.5
    for bad in ("0", "-1", "inf", "nan", "twice"):
        with pytest.raises(argparse.ArgumentTypeError):
            margin_option.parse_pass_margin(bad)
    default = bench.errors_metric(bench.Setup(horizon=15)).compare  # unset: the catalog's
    for margin in (0.5, margin_option.OFF):
        compare = bench.errors_metric(bench.Setup(horizon=15, pass_margin=margin)).compare
        assert compare.effective_pass_margin() == margin
        assert compare.effective_tolerance() == default.effective_tolerance()
    # The margin is validated as a manifest's: the latency metric (mannWhitney) refuses one.
    with pytest.raises(InvalidSpecError, match="passMargin"):
        bench.catalog_metric("http-compare", "latency-vs-baseline", (), 0.5)
    assert margin_option.pass_margin_words(None) == ""
    assert margin_option.pass_margin_words(1.0) == "pass margin 1 (2x)"
    assert margin_option.pass_margin_words(margin_option.OFF) == "pass margin off"
