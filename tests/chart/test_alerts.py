"""The alert rules in examples/prometheus-rules.yaml: valid, about metrics the controller
exports, and firing when they should (`promtool test rules`)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from rollouts.telemetry import Telemetry
from tests.chart.helm import ROOT

RULES = ROOT / "examples" / "prometheus-rules.yaml"
RULE_TESTS = ROOT / "tests" / "chart" / "prometheus-rules.test.yaml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: run scripts/setup.sh")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


def test_rules_are_valid() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_rules_fire_as_expected() -> None:
    done = promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_rules_query_exported_metrics() -> None:
    exported = {family.name for family in Telemetry().registry.collect()}
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            names = {re.sub(r"_(bucket|count|sum|total)$", "", n)
                     for n in re.findall(r"\brollouts_[a-z_]+", rule["expr"])}
            assert names and names <= exported, (rule["alert"], names - exported)
