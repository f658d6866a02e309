"""Analysis through the real operator, a real Prometheus and the simulated app.

Each scenario runs the controller against the sandbox (`Sandbox(prometheus=True)`): the
simulated app exports request metrics per ReplicaSet (5xx share and latency follow the image
tag: "bad" = 30 % errors, "idle" = no traffic), Prometheus scrapes them every second, and the
AnalysisRuns query it with the catalog's `http-success-rate` / `http-latency-p99` queries.

The catalog templates measure once a minute (their interval is not an arg), so each scenario
installs a namespaced copy of a catalog template with a 1 s interval and an `initialDelay`
longer than the `rate()` window: the canary Service served the stable pods until the rollout
started, and a window reaching back before that would mix their traffic in.

Most scenarios share one sandbox (one Rollout each, own names); the Prometheus-down and the
controller-kill scenarios get their own.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import os
import pathlib
import re
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from rollouts.analysis.templates import build_analysis_run
from rollouts.cli.main import app as cli
from rollouts.models.analysis import ClusterAnalysisTemplate, load
from rollouts.models.rollout import POD_TEMPLATE_HASH_LABEL, parse_spec
from rollouts.sandbox.cluster import CATALOG_DIR, EXAMPLES_DIR, Sandbox

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
NS = "default"
WINDOW = "3s"  # rate() window: 3 scrapes
DELAY = "4s"  # initialDelay: past the window, so the canary's own traffic alone is measured
TIMEOUT = 40.0

needs_prometheus = pytest.mark.skipif(
    shutil.which("prometheus") is None and os.environ.get("CI", "").lower() != "true",
    reason="the prometheus binary is not installed (scripts/setup.sh installs it)",
)


# --- manifests ---------------------------------------------------------------------------------


def fast_template(sb: Sandbox, catalog_name: str, name: str, *, interval: str = "1s",
                  initial_delay: str | None = DELAY, **metric_fields: Any) -> Obj:
    """A namespaced AnalysisTemplate: the catalog template with a short interval."""
    source = next(d for d in sb.catalog() if d["metadata"]["name"] == catalog_name)
    template = copy.deepcopy(source)
    template["kind"] = "AnalysisTemplate"
    template["metadata"] = {"name": name, "namespace": NS}
    for metric in template["spec"]["metrics"]:
        metric["interval"] = interval
        if initial_delay is not None:
            metric["initialDelay"] = initial_delay
        metric.update(metric_fields)
    return template


def analysis(template: str, service: str, **args: str) -> Obj:
    values = {"service": service, "namespace": NS, "window": WINDOW, **args}
    return {"templates": [{"templateName": template}],
            "args": [{"name": k, "value": v} for k, v in values.items()]}


def services(name: str, *suffixes: str) -> list[Obj]:
    return [{
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": f"{name}-{suffix}" if suffix else name, "namespace": NS},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    } for suffix in suffixes]


def rollout(name: str, strategy: Obj, *, replicas: int = 2, image: str = "app:1.0") -> Obj:
    return {
        "apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": image}]}},
            "strategy": strategy,
        },
    }


def canary(name: str, steps: list[Obj], **fields: Any) -> Obj:
    return {"canary": {"canaryService": f"{name}-canary", "stableService": f"{name}-stable",
                       "scaleDownDelaySeconds": 0, "steps": steps, **fields}}


def install(sb: Sandbox, *docs: Obj | list[Obj]) -> None:
    flat: list[Obj] = []
    for doc in docs:
        flat.extend(doc if isinstance(doc, list) else [doc])
    sb.apply(flat)
    for doc in flat:
        if doc["kind"] == "Rollout":
            sb.wait_phase(doc["metadata"]["name"], "Healthy", timeout=TIMEOUT)


# --- reading the cluster -----------------------------------------------------------------------


def describe(sb: Sandbox, name: str) -> str:
    status = sb.status(name)
    runs = {n: (r.get("status") or {}).get("phase") for n, r in sb.analysis_runs(name).items()}
    return (f"phase={status.get('phase')} step={status.get('currentStepIndex')} "
            f"message={status.get('message')!r} pause={status.get('pauseConditions')} "
            f"sizes={sb.sizes(name)} runs={runs}")


def wait(sb: Sandbox, name: str, what: str, check: Callable[[], Any],
         timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: {describe(sb, name)}")


def phase_is(sb: Sandbox, name: str, phase: str) -> Callable[[], Obj | None]:
    def check() -> Obj | None:
        obj = sb.rollout(name)
        status = obj.get("status") or {}
        fresh = status.get("observedGeneration") == obj["metadata"].get("generation")
        return status if fresh and status.get("phase") == phase else None
    return check


def run_of(sb: Sandbox, name: str, kind: str) -> Obj | None:
    for run in sb.analysis_runs(name).values():
        if run["metadata"]["labels"].get("rollouts.dev/analysis-kind") == kind:
            return run
    return None


def run_phase(sb: Sandbox, name: str, kind: str) -> str | None:
    run = run_of(sb, name, kind)
    return None if run is None else (run.get("status") or {}).get("phase")


def measurements(run: Obj) -> list[Obj]:
    return [m for r in (run.get("status") or {}).get("metricResults") or ()
            for m in r.get("measurements") or ()]


def stable_hash(sb: Sandbox, name: str) -> str:
    return str(sb.status(name)["stableRS"])


def hash_of(sb: Sandbox, name: str, image: str) -> str:
    for pod_hash, rs in sb.replica_sets(name).items():
        if rs["spec"]["template"]["spec"]["containers"][0]["image"] == image:
            return pod_hash
    raise AssertionError(f"no ReplicaSet with {image}: {describe(sb, name)}")


def assert_stable_only(sb: Sandbox, name: str, old: str, service: str) -> None:
    sizes = sb.sizes(name)
    assert sizes[old] == (2, 2), describe(sb, name)
    assert all(size == (0, 0) for h, size in sizes.items() if h != old), describe(sb, name)
    assert sb.service_selector(service)[POD_TEMPLATE_HASH_LABEL] == old


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared() -> Iterator[Sandbox]:
    """One sandbox with Prometheus and an in-thread controller for most scenarios."""
    if shutil.which("prometheus") is None and os.environ.get("CI", "").lower() != "true":
        pytest.skip("the prometheus binary is not installed (scripts/setup.sh installs it)")
    with Sandbox(prometheus=True, ready_delay=0.1, requeue_floor=0.2) as sb:
        sb.start_controller()
        yield sb


@pytest.fixture
def own() -> Iterator[Sandbox]:
    """A sandbox of its own (the scenario breaks Prometheus or kills the controller)."""
    with Sandbox(prometheus=True, ready_delay=0.1, requeue_floor=0.2) as sb:
        yield sb


# --- canary ------------------------------------------------------------------------------------


@needs_prometheus
def test_step_analysis_passes_and_the_rollout_completes(shared: Sandbox) -> None:
    sb, name = shared, "pass"
    install(sb, fast_template(sb, "http-success-rate", "pass-success"),
            fast_template(sb, "http-latency-p99", "pass-latency"),
            services(name, "", "stable", "canary"),
            rollout(name, canary(name, [
                {"setWeight": 50},
                {"analysis": {
                    "templates": [{"templateName": "pass-success"},
                                  {"templateName": "pass-latency"}],
                    "args": analysis("x", f"{name}-canary", count="2")["args"]}},
            ])))
    sb.set_image(name, "app:2.0")
    wait(sb, name, "the step analysis to run", lambda: run_phase(sb, name, "step") == "Running")
    status = wait(sb, name, "Healthy on the new revision", lambda: (
        phase_is(sb, name, "Healthy")() if run_phase(sb, name, "step") else None))
    new = hash_of(sb, name, "app:2.0")
    assert status["stableRS"] == new, describe(sb, name)
    run = run_of(sb, name, "step")
    assert run is not None and run["status"]["phase"] == "Successful", run
    results = {r["name"]: r for r in run["status"]["metricResults"]}
    assert results["success-rate"]["successful"] == 2, results
    assert results["latency"]["successful"] == 2, results
    # The canary's own traffic was judged: a success rate near 1, p99 well under 500 ms (~75 ms
    # over a long window; a 3 s window of integer counts is coarser).
    for m in results["success-rate"]["measurements"]:
        assert float(m["value"].strip("[]")) >= 0.95, m
    for m in results["latency"]["measurements"]:
        assert 10 <= float(m["value"].strip("[]")) <= 150, m
    assert sb.service_selector(f"{name}-canary")[POD_TEMPLATE_HASH_LABEL] == new


@needs_prometheus
def test_step_analysis_failure_aborts_to_stable(shared: Sandbox) -> None:
    sb, name = shared, "fail"
    install(sb, fast_template(sb, "http-success-rate", "fail-success"),
            services(name, "", "stable", "canary"),
            rollout(name, canary(name, [
                {"setWeight": 50},
                {"analysis": analysis("fail-success", f"{name}-canary", count="3",
                                      **{"failure-limit": "0"})},
                {"pause": {}},
            ])))
    old = stable_hash(sb, name)
    sb.set_image(name, "app:2.0-bad")
    status = wait(sb, name, "Degraded", phase_is(sb, name, "Degraded"))
    wait(sb, name, "the canary scaled down", lambda: sb.sizes(name).get(old) == (2, 2) and all(
        s == (0, 0) for h, s in sb.sizes(name).items() if h != old))
    assert_stable_only(sb, name, old, f"{name}-canary")
    assert sb.service_selector(f"{name}-stable")[POD_TEMPLATE_HASH_LABEL] == old
    assert run_phase(sb, name, "step") == "Failed"
    message = sb.status(name)["message"]
    # The bad image fails 30% of requests: the measured success rate is near 0.7, not exactly.
    measured = re.search(r"value \[(0\.\d+)", message)
    assert "success-rate" in message and measured, message
    assert 0.5 < float(measured.group(1)) < 0.95, message
    assert status["stableRS"] == old


@needs_prometheus
def test_no_traffic_is_inconclusive_and_pauses(shared: Sandbox) -> None:
    sb, name = shared, "idle"
    install(sb, fast_template(sb, "http-success-rate", "idle-success"),
            services(name, "", "stable", "canary"),
            rollout(name, canary(name, [
                {"setWeight": 50},
                {"analysis": analysis("idle-success", f"{name}-canary", count="3",
                                      **{"inconclusive-limit": "0"})},
            ])))
    sb.set_image(name, "app:2.0-idle")  # the canary's pods get no requests: rate() is 0
    status = wait(sb, name, "Paused", lambda: (
        phase_is(sb, name, "Paused")() if run_phase(sb, name, "step") else None))
    reasons = [p["reason"] for p in status.get("pauseConditions") or ()]
    assert "InconclusiveAnalysisRun" in reasons, describe(sb, name)
    assert status["currentStepIndex"] == 1
    run = run_of(sb, name, "step")
    assert run is not None and run["status"]["phase"] == "Inconclusive", run
    assert measurements(run)[-1]["value"] == "[]"
    assert "inconclusive" in run["status"]["message"]
    # Not aborted: the canary keeps its pods until a human decides.
    assert sb.sizes(name)[hash_of(sb, name, "app:2.0-idle")][0] == 1


@needs_prometheus
def test_background_analysis_failing_mid_rollout_aborts(shared: Sandbox) -> None:
    sb, name = shared, "bgcheck"
    install(sb, fast_template(sb, "http-success-rate", "bgcheck-success"),
            services(name, "", "stable", "canary"),
            rollout(name, canary(
                name, [{"setWeight": 50}, {"pause": {}}],
                analysis=analysis("bgcheck-success", f"{name}-canary", count="0",
                                  **{"failure-limit": "0"}))))
    old = stable_hash(sb, name)
    sb.set_image(name, "app:2.0-bad")
    # The rollout reaches its pause while the background run keeps measuring...
    wait(sb, name, "paused at step 2", lambda: (
        (sb.status(name).get("phase") == "Paused" and sb.status(name).get("currentStepIndex") == 1)
        or run_phase(sb, name, "background") == "Failed"))
    # ...and its failure aborts the rollout.
    wait(sb, name, "Degraded", phase_is(sb, name, "Degraded"))
    assert run_phase(sb, name, "background") == "Failed"
    assert "background" in sb.status(name)["message"], describe(sb, name)
    wait(sb, name, "the canary scaled down",
         lambda: all(s == (0, 0) for h, s in sb.sizes(name).items() if h != old))
    assert_stable_only(sb, name, old, f"{name}-canary")


# --- blue-green --------------------------------------------------------------------------------


def blue_green(name: str, **fields: Any) -> Obj:
    return {"blueGreen": {"activeService": f"{name}-active",
                          "previewService": f"{name}-preview",
                          "autoPromotionEnabled": True, "scaleDownDelaySeconds": 1, **fields}}


@needs_prometheus
def test_pre_promotion_analysis_holds_the_switch_until_it_passes(shared: Sandbox) -> None:
    sb, name = shared, "blue"
    install(sb, fast_template(sb, "http-success-rate", "blue-success"),
            services(name, "active", "preview"),
            rollout(name, blue_green(name, prePromotionAnalysis=analysis(
                "blue-success", f"{name}-preview", count="3"))))
    old = stable_hash(sb, name)
    sb.set_image(name, "app:2.0")
    active = f"{name}-active"
    seen_running = 0
    deadline = time.monotonic() + TIMEOUT
    while run_phase(sb, name, "prePromotion") != "Successful":
        assert time.monotonic() < deadline, describe(sb, name)
        phase = run_phase(sb, name, "prePromotion")
        if phase in (None, "Pending", "Running"):
            # Read after the run's phase: the active Service is still on the old revision.
            assert sb.service_selector(active)[POD_TEMPLATE_HASH_LABEL] == old, describe(sb, name)
            seen_running += phase == "Running"
        else:
            raise AssertionError(f"pre-promotion run {phase}: {describe(sb, name)}")
        time.sleep(0.1)
    assert seen_running > 10  # the run took seconds, and the switch waited
    new = hash_of(sb, name, "app:2.0")
    wait(sb, name, "Healthy", phase_is(sb, name, "Healthy"))
    assert sb.status(name)["stableRS"] == new
    assert sb.service_selector(active)[POD_TEMPLATE_HASH_LABEL] == new


@needs_prometheus
def test_post_promotion_failure_switches_back(shared: Sandbox) -> None:
    sb, name = shared, "green"
    install(sb, fast_template(sb, "http-success-rate", "green-success"),
            services(name, "active", "preview"),
            rollout(name, blue_green(name, postPromotionAnalysis=analysis(
                "green-success", f"{name}-active", count="3", **{"failure-limit": "0"}))))
    old = stable_hash(sb, name)
    sb.set_image(name, "app:2.0-bad")
    active = f"{name}-active"
    # The switch happens first: the post-promotion analysis judges live traffic.
    wait(sb, name, "the active Service on the new revision", lambda: (
        sb.service_selector(active)[POD_TEMPLATE_HASH_LABEL] != old))
    new = sb.service_selector(active)[POD_TEMPLATE_HASH_LABEL]
    wait(sb, name, "Degraded", phase_is(sb, name, "Degraded"))
    assert run_phase(sb, name, "postPromotion") == "Failed"
    assert sb.service_selector(active)[POD_TEMPLATE_HASH_LABEL] == old
    assert sb.service_selector(f"{name}-preview")[POD_TEMPLATE_HASH_LABEL] == old
    status = sb.status(name)
    assert status["stableRS"] == old and new != old
    assert "success-rate" in status["message"], status["message"]


# --- failure of the metric source, and of the controller -------------------------------------


@needs_prometheus
def test_prometheus_down_errors_count_and_abort(own: Sandbox) -> None:
    sb, name = own, "down"
    sb.start_controller()
    install(sb, fast_template(sb, "http-success-rate", "down-success", initial_delay=None,
                              consecutiveErrorLimit=2),
            services(name, "", "stable", "canary"),
            rollout(name, canary(name, [
                {"setWeight": 50},
                {"analysis": analysis("down-success", f"{name}-canary", count="3")},
            ])))
    old = stable_hash(sb, name)
    sb.stop_prometheus()
    sb.set_image(name, "app:2.0")
    wait(sb, name, "Degraded", phase_is(sb, name, "Degraded"))
    run = run_of(sb, name, "step")
    assert run is not None and run["status"]["phase"] == "Error", run
    result = run["status"]["metricResults"][0]
    assert result["error"] == 3 and result["consecutiveError"] == 3, result
    assert result["count"] == 0 and result.get("successful", 0) == 0, result
    taken = measurements(run)
    assert [m["phase"] for m in taken] == ["Error"] * 3, taken
    assert all(m.get("message") for m in taken), taken
    assert "consecutiveErrorLimit 2" in run["status"]["message"], run["status"]["message"]
    message = sb.status(name)["message"]
    assert "errored" in message and "success-rate" in message, message
    wait(sb, name, "the canary scaled down",
         lambda: all(s == (0, 0) for h, s in sb.sizes(name).items() if h != old))
    assert_stable_only(sb, name, old, f"{name}-canary")


@needs_prometheus
def test_controller_killed_during_analysis_resumes_without_duplicates(own: Sandbox) -> None:
    sb, name = own, "restart"
    sb.start_controller(process=True)
    install(sb, fast_template(sb, "http-success-rate", "restart-success", interval="2s"),
            services(name, "", "stable", "canary"),
            rollout(name, canary(name, [
                {"setWeight": 50},
                {"analysis": analysis("restart-success", f"{name}-canary", count="4")},
            ])))
    sb.set_image(name, "app:2.0")
    wait(sb, name, "a first measurement", lambda: (
        (run := run_of(sb, name, "step")) is not None and len(measurements(run)) >= 1))
    sb.kill_controller()
    before = measurements(run_of(sb, name, "step") or {})
    time.sleep(3)  # a slot falls due while no controller runs
    assert measurements(run_of(sb, name, "step") or {}) == before
    sb.start_controller(process=True)
    wait(sb, name, "Healthy", lambda: (
        phase_is(sb, name, "Healthy")() if run_phase(sb, name, "step") == "Successful" else None),
         timeout=60)
    run = run_of(sb, name, "step")
    assert run is not None
    taken = measurements(run)
    started = [m["startedAt"] for m in taken]
    assert len(started) == len(set(started)), taken
    assert started == sorted(started), taken
    assert [m["phase"] for m in taken] == ["Successful"] * 4, taken
    # Slots stay on the run's 2 s grid (a missed one is taken late, never twice).
    times = [dt.datetime.fromisoformat(s.replace("Z", "+00:00")) for s in started]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert all(g >= 2 and abs(g / 2 - round(g / 2)) < 0.01 for g in gaps), gaps


# --- the examples ------------------------------------------------------------------------------


def _catalog() -> dict[str, ClusterAnalysisTemplate]:
    import yaml

    found = {}
    for path in sorted(CATALOG_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found[doc["metadata"]["name"]] = load(ClusterAnalysisTemplate, doc)
    return found


@pytest.mark.parametrize("example", ["canary-analysis.yaml", "bluegreen-analysis.yaml"])
def test_example_lints_and_its_analyses_resolve(example: str) -> None:
    import yaml

    path = EXAMPLES_DIR / example
    result = CliRunner().invoke(cli, ["lint", str(path), str(CATALOG_DIR)])
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    body = next(d for d in docs if d["kind"] == "Rollout")
    body["metadata"].update(namespace="shop", uid="u1")
    strategy = parse_spec(body["spec"]).strategy
    refs = []
    if strategy.canary is not None:
        refs += [("step", s.analysis, i) for i, s in enumerate(strategy.canary.steps or ())
                 if s.analysis is not None]
        if strategy.canary.analysis is not None:
            refs.append(("background", strategy.canary.analysis, None))
    if strategy.blue_green is not None:
        refs += [("prePromotion", strategy.blue_green.pre_promotion_analysis, None),
                 ("postPromotion", strategy.blue_green.post_promotion_analysis, None)]
    assert refs
    for kind, ref, index in refs:
        assert ref is not None
        run = build_analysis_run(body, ref, kind=kind, pod_hash="abc123", templates={},
                                 cluster_templates=_catalog(), stable_hash="old000",
                                 step_index=index)
        args = {a["name"]: a["value"] for a in run["spec"]["args"]}
        assert args["namespace"] == "shop"
        assert args["service"].startswith(body["metadata"]["name"])
        for metric in run["spec"]["metrics"]:
            query = metric["provider"]["prometheus"]["query"]
            assert "{{" not in query and f'service="{args["service"]}"' in query


@needs_prometheus
def test_canary_example_measures_against_the_sandbox_prometheus(shared: Sandbox) -> None:
    """The example as written runs in the sandbox: its runs resolve to our Prometheus."""
    sb = shared
    sb.apply(pathlib.Path(EXAMPLES_DIR / "canary-analysis.yaml"))
    sb.wait_phase("web", "Healthy", timeout=TIMEOUT)
    sb.set_image("web", "example/web:2.0")
    wait(sb, "web", "the pause before the analysis", lambda: sb.status("web").get("phase")
         == "Paused" and sb.status("web").get("currentStepIndex") == 1)
    # Enough canary traffic for the example's min-request-rate over its 1m window (rate()
    # divides by the window), instead of the example's 90 s pause.
    assert sb.prometheus is not None
    sb.prometheus.wait_for('sum(rate(http_requests_total{service="web-canary"}[1m])) > 1.5',
                           timeout=TIMEOUT)
    result = CliRunner().invoke(
        cli, ["--kubeconfig", str(sb.kubeconfig), "-n", NS, "promote", "web"])
    assert result.exit_code == 0, result.output
    run = wait(sb, "web", "a step measurement", lambda: (
        (r := run_of(sb, "web", "step")) is not None and len(measurements(r)) >= 2 and r))
    args = {a["name"]: a["value"] for a in run["spec"]["args"]}
    assert args["prometheus-address"] == sb.prometheus_url
    assert all(m["phase"] == "Successful" for m in measurements(run)), measurements(run)
