"""The controller's metrics and readiness logic, without a server."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from rollouts.errors import ConflictError
from rollouts.telemetry import Telemetry, acting_verdict, parse_address

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def _seen(seconds_ago: float) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).isoformat()


@pytest.mark.parametrize(("peers", "me", "priority", "acting", "why"), [
    ({"a": {"priority": 2, "lastseen": _seen(1)}}, "a", 2, True, "acting"),
    ({"a": {"priority": 2, "lastseen": _seen(1)}, "b": {"priority": 1, "lastseen": _seen(1)}},
     "a", 2, True, "acting"),
    ({"a": {"priority": 2, "lastseen": _seen(1)}, "b": {"priority": 1, "lastseen": _seen(1)}},
     "b", 1, False, "higher priority"),
    ({"a": {"priority": 1, "lastseen": _seen(1)}, "b": {"priority": 1, "lastseen": _seen(1)}},
     "a", 1, False, "same priority"),
    # A peer past its lifetime is dead and ranks nothing.
    ({"a": {"priority": 5, "lifetime": 60, "lastseen": _seen(61)},
      "b": {"priority": 1, "lastseen": _seen(1)}}, "b", 1, True, "acting"),
    ({"a": {"priority": 5, "lifetime": 60, "lastseen": _seen(59)},
      "b": {"priority": 1, "lastseen": _seen(1)}}, "b", 1, False, "higher priority"),
    ({"a": {"priority": 1, "lastseen": _seen(1)}}, "b", 9, False, "not registered"),
])
def test_acting_follows_kopf_peering_rules(peers: dict[str, Any], me: str, priority: int,
                                           acting: bool, why: str) -> None:
    verdict, reason = acting_verdict(peers, me, priority, NOW)
    assert verdict is acting
    assert why in reason


def _samples(telemetry: Telemetry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(telemetry.registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def _rollout(phase: str, step: int | None = None, desired: int | None = None,
             weight: int | None = None, strategy: str = "canary") -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if step is not None:
        status["currentStepIndex"] = step
    if desired is not None or weight is not None:
        status["canary"] = {"desiredWeight": desired, "weights": {"canary": {"weight": weight}}}
    return {"metadata": {"namespace": "shop", "name": "web"},
            "spec": {"strategy": {strategy: {}}}, "status": status}


def test_rollout_series_follow_the_status_and_go_with_the_rollout() -> None:
    t = Telemetry(process_metrics=False)
    key = frozenset({("namespace", "shop"), ("name", "web")})
    t.observe_rollout(_rollout("Progressing", step=1, desired=50, weight=25), "ADDED")
    samples = _samples(t)
    info = ("rollouts_rollout_info", key | {("phase", "Progressing"), ("strategy", "canary")})
    assert samples[info] == 1
    assert samples[("rollouts_rollout_current_step_index", key)] == 1
    assert samples[("rollouts_rollout_canary_desired_weight", key)] == 50
    assert samples[("rollouts_rollout_canary_weight", key)] == 25

    t.observe_rollout(_rollout("Healthy", step=3, desired=100, weight=100), "MODIFIED")
    samples = _samples(t)
    assert info not in samples  # the old phase's series is gone, not left at 1
    assert samples[("rollouts_rollout_info",
                    key | {("phase", "Healthy"), ("strategy", "canary")})] == 1
    assert samples[("rollouts_rollout_canary_weight", key)] == 100

    t.observe_rollout(_rollout("Healthy", step=3, desired=100, weight=100), "DELETED")
    assert not [k for k in _samples(t) if k[0].startswith("rollouts_rollout_")]


def test_rollout_labels_stay_bounded() -> None:
    t = Telemetry(process_metrics=False)
    body = _rollout("Bogus", strategy="somethingElse")
    body["status"]["currentStepIndex"] = "three"
    t.observe_rollout(body, None)
    samples = _samples(t)
    assert samples[("rollouts_rollout_info", frozenset({
        ("namespace", "shop"), ("name", "web"), ("phase", "Unknown"),
        ("strategy", "unknown")}))] == 1
    assert not [k for k in samples if k[0] == "rollouts_rollout_current_step_index"]


def _run(phase: str | None) -> dict[str, Any]:
    return {"metadata": {"namespace": "shop", "name": "web-1"},
            "status": {"phase": phase} if phase else {}}


def test_analysis_run_outcome_is_counted_once_on_its_transition() -> None:
    t = Telemetry(process_metrics=False)
    failed = ("rollouts_analysis_runs_completed_total", frozenset({("phase", "Failed")}))
    t.observe_analysis_run(_run(None), "ADDED")
    t.observe_analysis_run(_run("Running"), "MODIFIED")
    assert _samples(t)[failed] == 0
    t.observe_analysis_run(_run("Failed"), "MODIFIED")
    t.observe_analysis_run(_run("Failed"), "MODIFIED")  # a later write to the finished run
    assert _samples(t)[failed] == 1
    # A run first seen finished (a restarted controller listing it) is not counted again.
    fresh = Telemetry(process_metrics=False)
    fresh.observe_analysis_run(_run("Failed"), None)
    assert _samples(fresh)[failed] == 0


async def test_reconcile_passes_are_timed_by_outcome() -> None:
    ticks = iter([0.0, 0.5, 1.0, 1.25, 2.0, 4.0])
    t = Telemetry(clock=lambda: next(ticks), process_metrics=False)

    async def ok() -> float:
        return 1.0

    async def conflict() -> float:
        raise ConflictError(409, "Conflict", "stale")

    async def broken() -> float:
        raise RuntimeError("boom")

    assert await t.timed(ok)() == 1.0
    with pytest.raises(ConflictError):
        await t.timed(conflict)()
    with pytest.raises(RuntimeError):
        await t.timed(broken)()
    samples = _samples(t)
    for outcome, seconds in (("success", 0.5), ("conflict", 0.25), ("error", 2.0)):
        labels = frozenset({("outcome", outcome)})
        assert samples[("rollouts_reconcile_duration_seconds_sum", labels)] == seconds
        assert samples[("rollouts_reconcile_duration_seconds_count", labels)] == 1


def test_api_requests_are_counted_by_verb_and_code() -> None:
    t = Telemetry(process_metrics=False)
    t.observe_request("patch", 409)
    t.observe_request("patch", 409)
    t.observe_request("get", None)
    samples = _samples(t)
    assert samples[("rollouts_kube_api_requests_total",
                    frozenset({("verb", "patch"), ("code", "409")}))] == 2
    assert samples[("rollouts_kube_api_requests_total",
                    frozenset({("verb", "get"), ("code", "error")}))] == 1


@pytest.mark.parametrize(("text", "expected"), [
    (":8080", ("0.0.0.0", 8080)), ("127.0.0.1:0", ("127.0.0.1", 0)),
    ("[::1]:9090", ("::1", 9090)),
])
def test_metrics_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["8080", "host:", "host:http", ":70000"])
def test_bad_metrics_address_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_address(text)


def promtool_problems(text: str) -> str:
    """What `promtool check metrics` says about an exposition ('' when it is clean)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: run scripts/setup.sh")
    done = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                          capture_output=True, timeout=30)
    problems = (done.stdout + done.stderr).decode().strip()
    return problems if done.returncode else ""


def test_metric_names_pass_promtool() -> None:
    t = Telemetry()
    t.observe_rollout(_rollout("Progressing", step=1, desired=50, weight=25), None)
    t.observe_request("get", 200)
    t.measurement_seconds.labels(provider="prometheus").observe(0.1)
    t.reconcile_seconds.labels(outcome="success").observe(0.1)
    assert promtool_problems(generate_latest(t.registry).decode()) == ""
    # The check itself bites: a counter without _total and a non-base unit are reported.
    bad = ("# HELP x_latency_milliseconds x\n# TYPE x_latency_milliseconds gauge\n"
           "x_latency_milliseconds 1\n")
    assert "milliseconds" in promtool_problems(bad)


async def test_a_busy_or_bad_metrics_address_is_a_clear_error() -> None:
    import socket

    from rollouts.telemetry import MetricsAddressError

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(MetricsAddressError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            async with Telemetry(process_metrics=False).serve(f"127.0.0.1:{port}"):
                pass
    with pytest.raises(MetricsAddressError, match="HOST:PORT"):
        async with Telemetry(process_metrics=False).serve("nonsense"):
            pass


def test_synced_once_kopf_and_the_operator_s_own_watches_have_listed() -> None:
    telemetry = Telemetry(process_metrics=False)
    telemetry.expect_watches()
    telemetry.observe_rollout(_rollout("Healthy"), None)  # kopf's caches are in
    assert _samples(telemetry)[("rollouts_controller_caches_synced", frozenset())] == 0
    telemetry.mark_watches_synced()
    assert _samples(telemetry)[("rollouts_controller_caches_synced", frozenset())] == 1
    alone = Telemetry(process_metrics=False)  # no watches of its own to wait for
    alone.mark_synced()
    assert _samples(alone)[("rollouts_controller_caches_synced", frozenset())] == 1
