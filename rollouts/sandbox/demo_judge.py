"""The judge act of `rollouts demo`: a 10x error regression at a low base rate (0.5% -> 5%,
still 95% success, which a 95% threshold lets through) caught within seconds by a comparison
of the canary's pods with fresh baseline pods started by an `experiment` step.

Runs after the analysis acts (it measures through the same Prometheus). The evidence it
prints is the judge's own, read from the Experiment's AnalysisRun; the canary's success rate
is read from Prometheus (the pods' whole request counters), to show what a threshold sees.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import httpx
from rich.table import Table
from rich.text import Text

from rollouts.models.wire import GROUP, VERSION, controller_owner
from rollouts.sandbox.cluster import EXAMPLES_DIR

if TYPE_CHECKING:
    from rollouts.sandbox.demo import Demo

NAME = "judge"
MANIFEST = EXAMPLES_DIR / "experiment-judge.yaml"
FIRST_IMAGE = "example/judge:1.0"
REGRESSED_IMAGE = "example/judge:2-regress"  # 5% errors where 1.0 has 0.5%
THRESHOLD = 0.95
MAX_LOOKS = 10  # of the judge's 20: "as soon as the evidence is there", not at the horizon


def experiment(demo: Demo) -> dict[str, Any] | None:
    """The Experiment the Rollout's step made (the newest, if several)."""
    sb = demo.sandbox
    uid = sb.rollout(NAME)["metadata"]["uid"]
    made = [e for e in sb.emulator.list_objects(GROUP, VERSION, "experiments", sb.namespace)
            if any(o.get("uid") == uid for o in e["metadata"].get("ownerReferences") or [])]
    made.sort(key=lambda e: str(e["metadata"].get("creationTimestamp")))
    return made[-1] if made else None


def phase_of(body: dict[str, Any] | None) -> str | None:
    return ((body or {}).get("status") or {}).get("phase")


def judge_run(demo: Demo, body: dict[str, Any]) -> dict[str, Any] | None:
    sb = demo.sandbox
    for run in sb.emulator.list_objects(GROUP, VERSION, "analysisruns", sb.namespace):
        owner = controller_owner(run, "Experiment")
        if owner is not None and owner[0] == body["metadata"]["name"]:
            return run
    return None


def last_evidence(run: dict[str, Any] | None) -> dict[str, Any]:
    for result in ((run or {}).get("status") or {}).get("metricResults") or []:
        for measurement in reversed(result.get("measurements") or []):
            if "evidence" in measurement:
                return dict(measurement["evidence"])
    return {}


def success_rate(demo: Demo, pod_hash: str) -> float | None:
    """Non-5xx share of every request the pods of `pod_hash` answered (Prometheus' counters
    since the pods started): what a success-rate threshold would judge. The counters' last
    values: the pods may be gone by now (their series then go stale at once)."""
    url = f"{demo.sandbox.prometheus_url}/api/v1/query"
    selector = f'rollouts_pod_template_hash="{pod_hash}"'
    query = (f'1 - sum(last_over_time(http_requests_total{{{selector},code=~"5.."}}[5m])) '
             f"/ sum(last_over_time(http_requests_total{{{selector}}}[5m]))")
    try:
        answer = httpx.get(url, params={"query": query}, timeout=5.0).json()
        return float(answer["data"]["result"][0]["value"][1])
    except (httpx.HTTPError, KeyError, IndexError, ValueError):
        return None


def judge_act(demo: Demo, number: int) -> None:
    demo.name = NAME
    demo.act(f"{number}. Install {MANIFEST.parent.name}/{MANIFEST.name}: a judge, not a "
             "threshold")
    demo.say(f"A Rollout {NAME} of 4 {FIRST_IMAGE} pods. Steps: setWeight 25, then an")
    demo.say("experiment: 3 fresh pods of the stable template (baseline) beside 3 of the new")
    demo.say("one, each behind its own Service, and an analysis comparing their error counts")
    demo.say("with a sequential test every 3s (fails when the canary's rate is shown above")
    demo.say("1.5x the baseline's, consistently across looks).")
    demo.sandbox.apply(MANIFEST)
    first = demo.wait(f"{NAME}'s first revision to be Healthy",
                      lambda s: s.up_to_date and s.phase == "Healthy"
                      and s.sizes(s.stable_hash) == (4, 4))
    demo.expect(f"Healthy: 4/4 pods of {FIRST_IMAGE} are the stable revision",
                (FIRST_IMAGE, 4, 4), demo._rs_summary(first, first.stable_hash))
    demo.breathe()

    demo.act(f"{number + 1}. Release {REGRESSED_IMAGE}: 10x the errors, still 95% success")
    demo.say("Its pods answer 5% of requests with a 5xx where the stable's answer 0.5%.")
    demo.say("A success-rate >= 95% threshold passes it; the comparison with the baseline")
    demo.say("does not.")
    demo.sandbox.set_image(NAME, REGRESSED_IMAGE)
    demo.wait("the experiment's baseline and canary pods to be available",
                        lambda s: s.up_to_date and phase_of(experiment(demo)) in (
                            "Running", "Failed"),
                        seen=lambda s: f"{s.phase}: {s.message}")
    ready_at = time.monotonic()
    made = experiment(demo)
    assert made is not None
    templates = {t["name"]: t.get("availableReplicas") for t in
                 made["status"].get("templateStatuses") or []}
    demo.expect("Experiment running: 3 baseline pods (stable template), 3 canary pods",
                {"baseline": 3, "canary": 3}, templates)
    aborted = demo.wait(
        "the Experiment to fail and the Rollout to abort",
        lambda s: s.phase == "Degraded" and s.aborted and s.sizes(s.stable_hash) == (4, 4)
        and s.sizes(s.current_hash) == (0, 0),
        seen=lambda s: f"{s.phase}: {s.message}")
    caught = time.monotonic() - ready_at
    made = experiment(demo) or made
    run = judge_run(demo, made)
    evidence = last_evidence(run)
    hashes = {t["name"]: t.get("podTemplateHash") for t in
              made["status"].get("templateStatuses") or []}
    canary_rate = success_rate(demo, str(hashes.get("canary")))
    print_evidence(demo, evidence, caught, canary_rate)
    demo.expect("the judge failed the Experiment: decision fail",
                ("Failed", "Failed", "fail"),
                (phase_of(made), phase_of(run), evidence.get("decision")))
    demo.expect_that(f"caught as soon as the evidence was there: within {MAX_LOOKS} looks",
                     0 < int(evidence.get("looks") or 0) <= MAX_LOOKS,
                     f"at most {MAX_LOOKS} looks", str(evidence.get("looks")))
    demo.expect_that(f"a {THRESHOLD:.0%} success-rate threshold would have passed it",
                     canary_rate is not None and canary_rate >= THRESHOLD,
                     f"the canary's success rate >= {THRESHOLD}", str(canary_rate))
    demo.expect_that("aborted by the experiment step: stable back at 4/4, canary at 0",
                     aborted.aborted and "Experiment" in aborted.message,
                     "a Degraded Rollout whose message names the Experiment",
                     repr(aborted.message))
    demo.wait("the experiment's pods scaled to 0",
              lambda s: _experiment_pods(demo, made) == 0)
    demo.expect("the Experiment's ReplicaSets scaled to 0", 0, _experiment_pods(demo, made))
    demo.show(aborted)


def _experiment_pods(demo: Demo, made: dict[str, Any]) -> int:
    sb = demo.sandbox
    total = 0
    for rs in sb.emulator.list_objects("apps", "v1", "replicasets", sb.namespace):
        owner = controller_owner(rs, "Experiment")
        if owner is not None and owner[0] == made["metadata"]["name"]:
            total += int((rs.get("spec") or {}).get("replicas") or 0)
    return total


def print_evidence(demo: Demo, evidence: dict[str, Any], caught: float,
                   canary_rate: float | None) -> None:
    """The comparison's evidence, as recorded in the AnalysisRun's last measurement."""
    demo.out.print(Text("The judge's evidence (AnalysisRun status, last measurement):",
                        style="bold"))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()

    def number(key: str, digits: int = 1) -> str:
        value = evidence.get(key)
        return "-" if value is None else f"{float(value):.{digits}f}"

    grid.add_row("", "test", f"{evidence.get('test', '-')} (anytime-valid, checked every look)")
    grid.add_row("", "canary", f"{number('canaryErrors')} errors / {number('canary', 0)} "
                               "requests")
    grid.add_row("", "baseline", f"{number('baselineErrors')} errors / "
                                 f"{number('baseline', 0)} requests")
    grid.add_row("", "error ratio", f"{number('effect', 2)}x the baseline's, at least "
                                    f"{number('intervalLow', 2)}x "
                                    f"({float(evidence.get('confidence') or 0):.0%} confidence)")
    grid.add_row("", "e-value", f"{number('eValue', 1)} after {evidence.get('looks', '-')} "
                                "looks")
    grid.add_row("", "decision", Text(f"{evidence.get('decision', '-')}: "
                                      f"{evidence.get('reason', '')}"))
    grid.add_row("", "caught", f"{caught:.1f}s after the experiment's pods were available")
    grid.add_row("", "threshold", "canary success rate " + (
        "-" if canary_rate is None else f"{canary_rate:.2%}") + f" (>= {THRESHOLD:.0%}: a "
        "threshold template passes it)")
    from rollouts.sandbox.demo_view import print_view
    print_view(demo.out, grid)

