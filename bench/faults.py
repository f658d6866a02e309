"""Proof under faults: drive Rollouts to their outcomes while the controller is hurt.

    python bench/faults.py kills --runs 500          # SIGKILL the controller at random instants
    python bench/faults.py api --runs 96             # 10% API faults + 10% cut watch streams
    python bench/faults.py prometheus                # a metric source that errors / hangs
    python bench/faults.py all --runs 100            # the three, one table

Runs go in batches (`--batch`, 8 by default): one sandbox per batch (API emulator, kubelet
simulator, a Prometheus stand-in, a recorder of every write to Rollouts, ReplicaSets,
Services and AnalysisRuns), the real `rollouts controller` as a subprocess, and one Rollout
per run cycling through the scenarios canary (step + background analysis, a timed and an
indefinite pause, promoted by the driver), blue-green (pre + post promotion analysis),
abort and git revert. See rollouts/sandbox/campaign.py for what is checked: the end state of
each run and, from the write history, that no step was skipped or repeated, no measurement
duplicated or lost, no promotion or abort lost, and no canary scaled down before the stable
revision carried all the traffic.

Batch `k` of a campaign started with `--seed S` has seed `S + k`; a wrong outcome is printed
with its batch seed, and `--seed <that> --runs <batch>` replays that batch. `api` also runs
the same batches without faults (through the same proxy) to report the slowdown.
This is a benchmark, not a test: it prints figures and exits 1 if any outcome was wrong.
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import statistics
import sys
import time
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(ROOT))

from rollouts.sandbox.campaign import BatchResult, run_batch  # noqa: E402
from rollouts.sandbox.outage import prometheus_outage  # noqa: E402


def _batches(args: argparse.Namespace, mode: str, **kwargs: Any) -> list[BatchResult]:
    out, left, index = [], args.runs, 0
    while left > 0:
        size = min(args.batch, left)
        seed = args.seed + index
        result = run_batch(seed=seed, size=size, mode=mode, run_timeout=args.run_timeout,
                           **kwargs)
        out.append(result)
        wrong = len(result.wrong)
        print(f"  {mode} batch seed {seed}: {size} runs, {result.kills} kills, "
              f"{sum(result.faults.values())} API faults, {wrong} wrong, "
              f"{result.wall_seconds:.1f}s", file=sys.stderr, flush=True)
        for run in result.wrong:
            print(f"    WRONG {run.name} seed {run.seed}: {run.outcome} {run.problems}",
                  file=sys.stderr, flush=True)
        left, index = left - size, index + 1
    return out


def _converge(batches: list[BatchResult]) -> list[float]:
    return [r.converge_seconds for b in batches for r in b.runs
            if r.converge_seconds is not None]


def _summary(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"p50 {statistics.median(ordered):.1f}s / p95 {p95:.1f}s / max {ordered[-1]:.1f}s"


def _row(label: str, batches: list[BatchResult], faults: int, slowdown: str) -> dict[str, Any]:
    runs = [r for b in batches for r in b.runs]
    return {"campaign": label, "runs": len(runs), "faults": faults,
            "extra_queries": sum(r.extra_queries for r in runs),
            "wrong": [{"run": r.name, "seed": r.seed, "outcome": r.outcome,
                       "problems": r.problems} for r in runs if r.outcome != "ok"],
            "converge": _summary(_converge(batches)), "slowdown": slowdown,
            "wall": sum(b.wall_seconds for b in batches)}


def kills(args: argparse.Namespace) -> dict[str, Any]:
    batches = _batches(args, "kills", kill_every=(args.kill_min, args.kill_max))
    total = sum(b.kills for b in batches)
    per_run = [r.kills for b in batches for r in b.runs]
    row = _row("controller SIGKILL", batches, total, "-")
    row["faults_detail"] = (f"{total} kills; runs killed at least once: "
                            f"{sum(1 for k in per_run if k)}/{len(per_run)}")
    return row


def api(args: argparse.Namespace) -> dict[str, Any]:
    baseline = [] if args.no_baseline else _batches(args, "proxy", fault_rate=0.0,
                                                    cut_rate=0.0)
    faulty = _batches(args, "proxy", fault_rate=args.rate, cut_rate=args.cut_rate)
    injected: dict[str, int] = {}
    for batch in faulty:
        for kind, n in batch.faults.items():
            injected[kind] = injected.get(kind, 0) + n
    base, hurt = _converge(baseline), _converge(faulty)
    slowdown = (f"{statistics.median(hurt) / statistics.median(base):.2f}x median "
                f"({statistics.median(base):.1f}s -> {statistics.median(hurt):.1f}s)"
                if base and hurt else "-")
    row = _row(f"API faults {args.rate:.0%} + cut watches {args.cut_rate:.0%}", faulty,
               sum(injected.values()), slowdown)
    requests = sum(b.requests for b in faulty)
    row["faults_detail"] = (", ".join(f"{n} x {k}" for k, n in sorted(injected.items()))
                            + f" in {requests} requests")
    row["baseline_wrong"] = [r.name for b in baseline for r in b.runs if r.outcome != "ok"]
    return row


def prometheus(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    result = prometheus_outage(timeout=args.run_timeout)
    healthy = next(r for r in result.runs if r.name == "healthy")
    hangs = next(r for r in result.runs if r.name == "hangs")
    return {
        "campaign": "Prometheus outage (503, refused, hang)", "runs": len(result.runs),
        "faults": result.queries.get("error", 0) + result.queries.get("hang", 0),
        "wrong": [{"run": r.name, "outcome": r.outcome, "problems": r.problems}
                  for r in result.wrong],
        "converge": ", ".join(f"{r.name} {r.outcome} {r.seconds or 0:.1f}s"
                              for r in result.runs),
        "slowdown": (f"healthy Rollout done in {healthy.seconds or 0:.1f}s while the hanging "
                     f"one took {hangs.seconds or 0:.1f}s to abort"),
        "faults_detail": f"stub answers {result.queries}",
        "messages": {r.name: r.message for r in result.runs},
        "wall": time.monotonic() - started,
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| campaign | runs | faults injected | wrong outcomes | time to converge | "
             "slowdown |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['campaign']} | {row['runs']} | {row['faults_detail']} | "
                     f"{len(row['wrong'])} | {row['converge']} | {row['slowdown']} |")
    for row in rows:
        if row.get("extra_queries"):
            lines.append(f"\n{row['campaign']}: {row['extra_queries']} metric queries beyond "
                         "the measurements recorded (re-taken after a lost write)")
    for row in rows:
        for wrong in row["wrong"]:
            lines.append(f"\nWRONG ({row['campaign']}): {json.dumps(wrong)}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("campaign", choices=("kills", "api", "prometheus", "all"))
    parser.add_argument("--runs", type=int, default=500, help="runs per campaign (500)")
    parser.add_argument("--batch", type=int, default=8, help="runs at once per sandbox (8)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the first batch (1)")
    parser.add_argument("--kill-min", type=float, default=0.5,
                        help="least seconds between kills (0.5)")
    parser.add_argument("--kill-max", type=float, default=4.0,
                        help="most seconds between kills (4)")
    parser.add_argument("--rate", type=float, default=0.1, help="API fault rate (0.1)")
    parser.add_argument("--cut-rate", type=float, default=0.1,
                        help="share of watch streams cut (0.1)")
    parser.add_argument("--run-timeout", type=float, default=120.0,
                        help="seconds a run may take before it counts as stuck (120)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="api: skip the fault-free baseline batches (no slowdown figure)")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.batch < 1:
        parser.error("--runs and --batch must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A SIGKILLed controller leaves half-read requests: the emulator's tracebacks are noise.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    campaigns = {"kills": [kills], "api": [api], "prometheus": [prometheus],
                 "all": [kills, api, prometheus]}[args.campaign]
    rows = [campaign(args) for campaign in campaigns]
    print(json.dumps(rows, indent=2) if args.json else table(rows))
    return 1 if any(row["wrong"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
