"""Render the chart with the real Helm binary (installed by scripts/setup.sh)."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
from typing import Any

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "rollouts"
VALUE_SETS = {path.name.removesuffix("-values.yaml"): path
              for path in sorted((CHART / "ci").glob("*-values.yaml"))}
RELEASE, NAMESPACE = "rollouts", "rollouts-system"


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("helm")
    if binary is None:
        pytest.fail("helm is missing: run scripts/setup.sh")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)


def render(values: pathlib.Path | dict[str, Any] | None = None, *, crds: bool = False,
           tmp: pathlib.Path | None = None) -> list[dict[str, Any]]:
    """`helm template` of the chart as a list of objects; fails the test on a Helm error."""
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    if crds:
        args.append("--include-crds")
    if isinstance(values, dict):
        assert tmp is not None, "a values dict needs a tmp directory"
        path = tmp / "values.json"
        path.write_text(json.dumps(values))
        values = path
    if values is not None:
        args += ["--values", str(values)]
    done = helm(*args)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc.get("kind") == kind]
