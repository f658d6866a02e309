"""The simulated application: exposition format, exact ratios by image, the simulator's
endpoints following ReplicaSets and Services in the API emulator."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import httpx
import pytest

from rollouts.sandbox.apiserver import ApiEmulator
from rollouts.sandbox.app import AppSimulator
from rollouts.sandbox.app_traffic import (
    BAD,
    GOOD,
    IDLE,
    SLOW,
    ReplicaSetTraffic,
    profile_for_image,
    profile_for_pod_spec,
    render_exposition,
)
from rollouts.sandbox.emulator_thread import EmulatorThread

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample; checks HELP/TYPE come before their samples."""
    samples = []
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#") or not line:
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        assert any(name == t or name.startswith(t + "_") for t in typed), name
        samples.append((name, dict(_LABEL.findall(labels)), float(value)))
    return samples


def app(profile: Any = GOOD, *, ready: int = 2, services: tuple[str, ...] = ("web-canary",),
        seconds: float = 100.0) -> ReplicaSetTraffic:
    traffic = ReplicaSetTraffic(namespace="shop", replicaset="web-abc", rollout="web",
                                pod_hash="abc", pod_labels={"app": "web"}, profile=profile,
                                now=0.0)
    traffic.set_services(services, 0.0)
    traffic.set_ready(ready, 0.0)
    traffic.advance(seconds)
    return traffic


def requests(traffic: ReplicaSetTraffic, **match: str) -> dict[str, float]:
    return {labels["code"]: value for name, labels, value in parse(traffic.render(100.0))
            if name == "http_requests_total"
            and all(labels.get(k) == v for k, v in match.items())}


# --- profiles ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("image", "expected"), [
    ("example/web:1.0", GOOD), ("web:2.0-bad", BAD), ("registry:5000/web:bad", BAD),
    ("registry:5000/bad/web:1.0", GOOD),  # only the tag counts, not the path or the port
    ("web:1.1-slow", SLOW), ("web:idle", IDLE), ("web", GOOD),
    ("web@sha256:bad0", BAD),
])
def test_profile_follows_the_image_tag(image: str, expected: Any) -> None:
    assert profile_for_image(image) is expected


def test_one_bad_container_makes_the_pod_bad() -> None:
    spec = {"containers": [{"image": "web:1"}, {"image": "sidecar:bad"}]}
    assert profile_for_pod_spec(spec) is BAD
    assert profile_for_pod_spec({"containers": []}) is GOOD


# --- exposition --------------------------------------------------------------------------------


def test_exposition_parses_and_carries_the_labels_templates_use() -> None:
    samples = parse(app().render(100.0))
    names = {name for name, _, _ in samples}
    assert names == {
        "http_requests_total", "http_request_duration_seconds_bucket",
        "http_request_duration_seconds_sum", "http_request_duration_seconds_count",
        "sandbox_app_ready_pods",
    }
    for name, labels, _ in samples:
        assert labels["namespace"] == "shop"
        assert labels["rollouts_pod_template_hash"] == "abc" and labels["rollout"] == "web"
        if name != "sandbox_app_ready_pods":
            assert labels["service"] == "web-canary"
    ready = [v for n, _, v in samples if n == "sandbox_app_ready_pods"]
    assert ready == [2]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_exposition() -> None:
    text = render_exposition([app(), app(BAD, services=("web", "web-stable"))])
    result = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                            capture_output=True, check=False, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("profile", "errors"), [(GOOD, Fraction(1, 200)),
                                                  (BAD, Fraction(3, 10))])
def test_error_share_is_exact(profile: Any, errors: Fraction) -> None:
    # 2 pods x 10 req/s x 100 s = 2000 requests to the one Service.
    codes = requests(app(profile))
    assert sum(codes.values()) == 2000
    assert codes["500"] == 2000 * errors
    assert codes["404"] == 2000 / 50  # not an error for the templates


def test_every_matching_service_gets_its_own_stream() -> None:
    traffic = app(services=("web", "web-canary"))
    assert sum(requests(traffic, service="web").values()) == 2000
    assert sum(requests(traffic, service="web-canary").values()) == 2000


def test_idle_and_unready_export_flat_counters() -> None:
    assert set(requests(app(IDLE)).values()) == {0}
    assert set(requests(app(ready=0)).values()) == {0}
    assert requests(app(services=())) == {}


def test_counters_are_monotonic_and_follow_readiness_changes() -> None:
    traffic = app(seconds=10.0)  # 2 pods for 10 s: 200
    traffic.set_ready(1, 10.0)
    traffic.advance(20.0)  # 1 pod for 10 s: +100
    traffic.set_services((), 20.0)
    traffic.advance(30.0)  # no Service: nothing
    traffic.set_services(("web-canary",), 30.0)
    traffic.advance(30.5)  # half a second of 1 pod: 5
    assert traffic.streams["web-canary"].requests == 305
    traffic.advance(29.0)  # a clock going back never takes requests away
    assert traffic.streams["web-canary"].requests == 305


def _quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """histogram_quantile's linear interpolation, for checking the shapes."""
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


@pytest.mark.parametrize(("profile", "low", "high"), [(GOOD, 0.05, 0.1), (BAD, 1.0, 2.5),
                                                       (SLOW, 1.0, 2.5)])
def test_latency_histogram_is_cumulative_with_the_profile_p99(profile: Any, low: float,
                                                              high: float) -> None:
    samples = parse(app(profile).render(100.0))
    buckets = sorted(
        (float(labels["le"]), value) for name, labels, value in samples
        if name == "http_request_duration_seconds_bucket")
    counts = [c for _, c in buckets]
    assert counts == sorted(counts) and counts[-1] == 2000
    count = next(v for n, _, v in samples if n == "http_request_duration_seconds_count")
    assert count == 2000
    assert low < _quantile(buckets, 0.99) <= high


# --- the simulator against the API emulator -----------------------------------------------------


class Targets:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def set_targets(self, targets: Any, *, job: str | None = None) -> None:
        self.calls.append(list(targets))


@pytest.fixture
def emulator() -> Iterator[ApiEmulator]:
    emulator = ApiEmulator()
    thread = EmulatorThread(emulator)
    thread.start()
    try:
        yield emulator
    finally:
        thread.stop()


def replica_set(name: str, pod_hash: str, image: str, ready: int) -> dict[str, Any]:
    labels = {"app": "web", "rollouts-pod-template-hash": pod_hash}
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default", "labels": labels,
                     "ownerReferences": [{"apiVersion": "rollouts.dev/v1alpha1",
                                          "kind": "Rollout", "name": "web", "uid": "u1",
                                          "controller": True}]},
        "spec": {"replicas": ready, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "web", "image": image}]}}},
    }


def set_ready(emulator: ApiEmulator, name: str, ready: int) -> None:
    emulator.patch_object("apps", "v1", "replicasets", "default", name,
                          {"status": {"replicas": ready, "readyReplicas": ready}},
                          subresource="status")


def service(name: str, selector: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": selector, "ports": [{"port": 80}]}}


def scrape(address: str) -> str:
    return httpx.get(f"http://{address}/metrics", timeout=5).text


def wait_until(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_simulator_serves_ready_replica_sets_and_follows_services(
        emulator: ApiEmulator) -> None:
    targets = Targets()
    with AppSimulator(emulator, targets, spare_endpoints=1) as sim:
        assert len(targets.calls[-1]) == 1  # the spare endpoint, registered up front
        emulator.apply_manifest(service("web-canary", {"app": "web",
                                                       "rollouts-pod-template-hash": "new"}))
        emulator.apply_manifest(service("web", {"app": "web"}))
        emulator.apply_manifest(replica_set("web-old", "old", "web:1", 2))
        emulator.apply_manifest(replica_set("web-new", "new", "web:2-bad", 1))
        set_ready(emulator, "web-old", 2)
        set_ready(emulator, "web-new", 1)
        endpoints = wait_until(lambda: len(sim.endpoints()) == 2 and sim.endpoints())
        # The spare went to the first ReplicaSet; the second needed a new, registered one.
        assert sorted(targets.calls[-1]) == sorted(endpoints.values())
        old = parse(scrape(endpoints["web-old"]))
        new = parse(scrape(endpoints["web-new"]))
        assert {lb["service"] for n, lb, _ in old if n == "http_requests_total"} == {"web"}
        assert {lb["service"] for n, lb, _ in new if n == "http_requests_total"} == {
            "web", "web-canary"}
        def canary_codes() -> dict[str, float]:
            return {lb["code"]: v for n, lb, v in parse(scrape(endpoints["web-new"]))
                    if n == "http_requests_total" and lb["service"] == "web-canary"}

        codes = wait_until(lambda: sum(canary_codes().values()) >= 10 and canary_codes())
        total = sum(codes.values())
        assert codes["500"] == math.floor(total * Fraction(3, 10)), codes  # "bad": 30 %

        # The canary Service moves to the old revision: the new one stops getting its traffic.
        emulator.patch_object("", "v1", "services", "default", "web-canary",
                              {"spec": {"selector": {"app": "web",
                                                     "rollouts-pod-template-hash": "old"}}})
        wait_until(lambda: "web-canary" not in scrape(endpoints["web-new"]))
        assert 'service="web-canary"' in scrape(endpoints["web-old"])

        # No ready pod left: the endpoint goes back to the pool and exports nothing.
        set_ready(emulator, "web-new", 0)
        wait_until(lambda: "web-new" not in sim.endpoints())
        assert scrape(endpoints["web-new"]) == ""
        emulator.delete_object("apps", "v1", "replicasets", "default", "web-old")
        wait_until(lambda: not sim.endpoints())
        assert len(sim.targets()) == 2  # endpoints stay registered, idle
