"""/metrics, /healthz and /readyz of a real `rollouts controller` process in the sandbox.

The scrape is parsed with prometheus-client's own parser and linted with `promtool check
metrics`; the Grafana dashboard's queries are run by promtool over it and, in another test,
asked of a real Prometheus (Debian's) scraping the controller; two replicas sharing a
KopfPeering show that exactly one is ready (acting).
"""

from __future__ import annotations

import datetime as dt
import pathlib
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rollouts.sandbox.prometheus import PrometheusServer
from tests.chart.dashboard import dashboard_problems, dashboard_queries
from tests.e2e.conftest import CountingSandbox
from tests.e2e.processes import ControllerProcess, controller, wait_until
from tests.unit.test_telemetry import promtool_problems

pytestmark = pytest.mark.e2e

# A canary whose analysis asks a Prometheus that is not there: every measurement errors,
# the run ends in Error and the controller aborts the release.
MANIFESTS = """
apiVersion: rollouts.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: unreachable}
spec:
  metrics:
    - name: success-rate
      interval: 1s
      count: 3
      consecutiveErrorLimit: 1
      successCondition: "result[0] >= 0.95"
      provider:
        prometheus: {address: "http://127.0.0.1:9", query: "vector(1)"}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-canary}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: rollouts.dev/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "example/web:1"}]}
  strategy:
    canary:
      canaryService: web-canary
      stableService: web
      steps:
        - setWeight: 50
        - analysis: {templates: [{templateName: unreachable}]}
"""


def scrape(process: ControllerProcess) -> tuple[str, dict[str, list[Any]]]:
    response = process.get("/metrics")
    assert response is not None and response.status_code == 200
    families: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(response.text):
        families.setdefault(family.name, []).extend(family.samples)
    return response.text, families


def value(families: dict[str, list[Any]], sample: str, **labels: str) -> float:
    family = sample.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
    for s in families.get(family, []):
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    raise AssertionError(f"no sample {sample}{labels}")


def test_metrics_of_a_running_controller(sandbox: CountingSandbox, tmp_path: pathlib.Path
                                         ) -> None:
    sandbox.apply(MANIFESTS)
    with controller(sandbox.kubeconfig, tmp_path / "controller.log",
                    "-n", sandbox.namespace, "--standalone") as process:
        assert wait_until("/healthz", lambda: process.status("/healthz") == 200,
                          on_timeout=process.output)
        wait_until("/readyz", lambda: process.status("/readyz") == 200,
                   on_timeout=process.output)
        sandbox.wait_phase("web", "Healthy")
        sandbox.set_image("web", "example/web:2")
        status = sandbox.wait_phase("web", "Degraded", timeout=60)
        assert status.get("abort") is True

        text, families = wait_until("the run's outcome in /metrics", lambda: (
            (scraped := scrape(process)) and value(
                scraped[1], "rollouts_analysis_runs_completed_total", phase="Error") >= 1
            and scraped))
    assert promtool_problems(text) == ""
    # The dashboard's queries, run by promtool over this scrape, each find data.
    assert dashboard_problems(text, dashboard_queries(), tmp_path) == ""
    key = {"namespace": sandbox.namespace, "name": "web"}
    assert value(families, "rollouts_rollout_info", **key, phase="Degraded",
                 strategy="canary") == 1
    assert value(families, "rollouts_analysis_runs_completed_total", phase="Error") == 1
    assert value(families, "rollouts_analysis_measurement_duration_seconds_count",
                 provider="prometheus") >= 1
    assert value(families, "rollouts_reconcile_duration_seconds_count", outcome="success") > 0
    assert value(families, "rollouts_kube_api_requests_total", verb="patch", code="200") > 0
    assert value(families, "rollouts_controller_acting") == 1
    assert value(families, "rollouts_controller_caches_synced") == 1
    assert "process_resident_memory_bytes" in families
    # Bounded label sets: no path or object name in the request counter.
    assert {frozenset(s.labels) for s in families["rollouts_kube_api_requests"]} == {
        frozenset({"verb", "code"})}


@pytest.mark.prometheus
def test_a_real_prometheus_scrapes_the_controller_and_the_dashboard_queries_find_data(
        sandbox: CountingSandbox, tmp_path: pathlib.Path) -> None:
    """Debian's Prometheus scrapes the controller's /metrics every second through a release
    that its analysis aborts; then every query of the Grafana dashboard, asked of that
    Prometheus, returns series."""
    sandbox.apply(MANIFESTS)
    with controller(sandbox.kubeconfig, tmp_path / "controller.log",
                    "-n", sandbox.namespace, "--standalone") as process:
        wait_until("/readyz", lambda: process.status("/readyz") == 200, timeout=60,
                   on_timeout=process.output)
        prometheus = PrometheusServer([f"127.0.0.1:{process.port}"], job="rollouts",
                                      scrape_interval=1.0).start()
        try:
            up = prometheus.wait_for('up{job="rollouts"} == 1', timeout=60)
            assert up[0]["metric"]["instance"] == f"127.0.0.1:{process.port}"
            sandbox.wait_phase("web", "Healthy")
            sandbox.set_image("web", "example/web:2")
            sandbox.wait_phase("web", "Degraded", timeout=60)
            info = prometheus.wait_for(
                'rollouts_rollout_info{job="rollouts",phase="Degraded",strategy="canary"}',
                timeout=30)
            assert info[0]["metric"]["name"] == "web"
            for title, query in dashboard_queries().items():
                found = prometheus.wait_for(query, timeout=30)
                assert found, f"panel {title}: {query} returned nothing"
            errors = prometheus.wait_for(
                'sum(increase(rollouts_analysis_runs_completed_total{phase="Error"}[1h]))',
                lambda result: bool(result) and float(result[0]["value"][1]) > 0, timeout=30)
            assert errors
        finally:
            prometheus.stop()


PEERING = {
    "apiVersion": "kopf.dev/v1", "kind": "KopfPeering",
    "metadata": {"name": "rollouts"}, "status": {},
}


def test_exactly_one_of_two_replicas_is_ready(sandbox: CountingSandbox,
                                              tmp_path: pathlib.Path) -> None:
    sandbox.apply([PEERING])
    args = ("-n", sandbox.namespace)  # peering auto-detected: the KopfPeering exists
    with controller(sandbox.kubeconfig, tmp_path / "first.log", *args) as first:
        wait_until("the first replica to act", lambda: first.status("/readyz") == 200,
                   on_timeout=first.output)
        with controller(sandbox.kubeconfig, tmp_path / "second.log", *args) as second:
            # The replica started last has the higher priority: it takes over.
            wait_until("the second replica to act", lambda: second.status("/readyz") == 200,
                       timeout=45, on_timeout=second.output)
            wait_until("the first replica to stand by",
                       lambda: first.status("/readyz") == 503, timeout=45,
                       on_timeout=first.output)
            response = first.get("/readyz")
            assert response is not None and "[-]acting failed: standby" in response.text
            # What the chart's readiness probe asks: alive and synced, whatever the role.
            assert first.status("/readyz?exclude=acting") == 200
            assert first.status("/healthz") == 200
            _, families = scrape(first)
            assert value(families, "rollouts_controller_acting") == 0
        # The acting replica is gone (its peering record goes with it): the other resumes.
        wait_until("the first replica to act again", lambda: first.status("/readyz") == 200,
                   timeout=45, on_timeout=first.output)


def test_a_replica_that_starts_as_standby_is_ready_for_its_role(
        sandbox: CountingSandbox, tmp_path: pathlib.Path) -> None:
    """A live peer with a higher priority (a phantom record whose lifetime is short) keeps
    the new replica standing by from its start: kopf lists nothing, yet the probe the chart
    uses passes; once the phantom's record expires the replica acts and reconciles."""
    phantom = {"priority": 2**62, "lifetime": 20,  # outlives a slow start under load
               "lastseen": dt.datetime.now(dt.UTC).isoformat()}
    sandbox.apply([{**PEERING, "status": {"phantom": phantom}}])
    sandbox.apply(MANIFESTS)
    with controller(sandbox.kubeconfig, tmp_path / "standby.log",
                    "-n", sandbox.namespace) as process:
        wait_until("the probe the chart uses",
                   lambda: process.status("/readyz?exclude=acting") == 200,
                   on_timeout=process.output)
        response = wait_until("kopf to register this replica beside the phantom", lambda: (
            (r := process.get("/readyz?verbose")) is not None
            and "phantom has a higher priority" in r.text and r), on_timeout=process.output)
        assert response.status_code == 503
        assert "[+]caches-synced ok" in response.text
        assert "[-]acting failed: standby: phantom has a higher priority" in response.text
        assert not sandbox.status("web"), "a standby must not reconcile"
        wait_until("the replica to act once the phantom expires",
                   lambda: process.status("/readyz") == 200, timeout=45,
                   on_timeout=process.output)
        sandbox.wait_phase("web", "Healthy")
