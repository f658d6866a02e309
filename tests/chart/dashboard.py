"""The Grafana dashboard's queries run by promtool against an exposition of the controller.

Each panel's query becomes an alerting rule `absent(<query>)`; the exposition's samples
become promtool input series (counters and histogram series rising, gauges flat) over 15
minutes; `promtool test rules` then parses every query and evaluates it, and an alert that
fires names a panel whose query finds nothing among the names and labels the controller
exports.
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.chart.helm import CHART

DASHBOARD = CHART / "files" / "dashboard.json"
RISING = ("counter", "histogram", "summary")


def dashboard_queries(dashboard: pathlib.Path = DASHBOARD) -> dict[str, str]:
    """Panel title -> query, for every target of every panel."""
    panels = json.loads(dashboard.read_text())["panels"]
    return {f"{panel['title']} #{n}": target["expr"]
            for panel in panels for n, target in enumerate(panel.get("targets", []))}


def _series(exposition: str) -> list[dict[str, str]]:
    found = []
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(sample.labels.items()))
            value = max(float(sample.value), 0.0)
            if family.type in RISING and not sample.name.endswith("_created"):
                values = f"{value:g}+{max(value, 1.0):g}x60"
            else:
                values = f"{value:g}x60"
            found.append({"series": f"{sample.name}{{{labels}}}", "values": values})
    return found


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def dashboard_problems(exposition: str, queries: dict[str, str], work: pathlib.Path) -> str:
    """What promtool says about the queries over the exposition ('' when each one parses
    and returns data)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: run scripts/setup.sh")
    alerts = {f"Panel{n}": (title, expr) for n, (title, expr) in enumerate(queries.items())}
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"alert": name, "expr": f"absent({expr})", "labels": {"panel": title}}
        for name, (title, expr) in alerts.items()]}]}
    (work / "rules.yaml").write_text(yaml.safe_dump(rules))
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "15s", "tests": [{
        "interval": "15s",
        "input_series": _series(exposition),
        "alert_rule_test": [{"eval_time": "14m", "alertname": name, "exp_alerts": []}
                            for name in alerts],
    }]}
    (work / "test.yaml").write_text(yaml.safe_dump(tests))
    done = subprocess.run([promtool, "test", "rules", "test.yaml"], capture_output=True,
                          text=True, timeout=120, cwd=work)
    problems = (done.stdout + done.stderr).strip()
    return re.sub(r"\n\s*\n", "\n", problems) if done.returncode else ""
