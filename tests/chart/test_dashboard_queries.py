"""The Grafana dashboard's queries, parsed and evaluated by promtool over the controller's
exposition (tests/chart/dashboard.py); tests/e2e/test_metrics.py runs the same check over a
real controller's scrape."""

from __future__ import annotations

import pathlib

from prometheus_client import generate_latest

from rollouts.telemetry import Telemetry
from tests.chart.dashboard import dashboard_problems, dashboard_queries


def exposition() -> str:
    """A controller's registry with one sample behind every series the dashboard reads."""
    t = Telemetry(process_metrics=False)
    t.observe_rollout({"metadata": {"namespace": "shop", "name": "web"},
                       "spec": {"strategy": {"canary": {}}},
                       "status": {"phase": "Progressing", "currentStepIndex": 1,
                                  "canary": {"desiredWeight": 50,
                                             "weights": {"canary": {"weight": 25}}}}}, None)
    run = {"metadata": {"namespace": "shop", "name": "web-1"}}
    t.observe_analysis_run({**run, "status": {"phase": "Running"}}, None)
    t.observe_analysis_run({**run, "status": {"phase": "Successful"}}, None)
    t.observe_request("patch", 200)
    t.measurement_seconds.labels(provider="prometheus").observe(0.1)
    t.reconcile_seconds.labels(outcome="success").observe(0.1)
    t.acting.set(1)
    return generate_latest(t.registry).decode()


def test_every_dashboard_query_parses_and_finds_data(tmp_path: pathlib.Path) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 10
    assert dashboard_problems(exposition(), queries, tmp_path) == ""


def test_the_check_bites(tmp_path: pathlib.Path) -> None:
    queries = {"misspelt": "sum(rollouts_rollout_infos)",
               "wrong label": 'rollouts_rollout_info{phase="Running"}',
               "bad syntax": "sum by (phase (rollouts_rollout_info)"}
    for title, query in queries.items():
        problems = dashboard_problems(exposition(), {title: query}, tmp_path)
        assert problems, f"{title}: promtool found nothing wrong with {query!r}"
