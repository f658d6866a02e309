"""`rollouts controller -n`: a name no namespace can have is a usage error before anything
starts; a namespace that does not exist is one warning in the controller's log, then the
controller runs (it may be created later)."""

from __future__ import annotations

import json
import logging
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

import rollouts.cli.controller
import rollouts.kube.config
from rollouts.cli.main import app
from rollouts.kube.config import Connection
from rollouts.sandbox.apiserver import ApiEmulator
from rollouts.sandbox.emulator_thread import EmulatorThread


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(rollouts.kube.config, "load",
                        lambda *_: Connection(host="https://k8s.test"))
    monkeypatch.setattr(rollouts.kube.config, "check_reachable",
                        lambda *_: calls.append({"reached": True}))
    monkeypatch.setattr(rollouts.cli.controller, "controller_command",
                        lambda **kwargs: calls.append(kwargs))
    return calls


@pytest.mark.parametrize("name", ["Shop", "shop_1", "", "a" * 64, "shop.eu"])
def test_an_invalid_namespace_is_a_usage_error(started: list[dict[str, Any]],
                                               name: str) -> None:
    result = CliRunner().invoke(app, ["controller", "-n", "default", "--namespace", name])
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: invalid namespace ") and repr(name) in line
    assert started == []  # neither the server asked nor the controller started


def test_valid_namespaces_reach_the_controller(started: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(app, ["controller", "-n", "shop", "-n", "team-1"])
    assert result.exit_code == 0, result.output
    assert started[-1]["namespaces"] == ["shop", "team-1"]


@pytest.fixture
def root_logging() -> Iterator[None]:
    """The controller command configures the root logger: put it back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture
def kubeconfig(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    emulator = ApiEmulator(namespaces=("default", "shop"))
    thread = EmulatorThread(emulator)
    thread.start()
    try:
        yield emulator.write_kubeconfig(tmp_path / "kubeconfig")
    finally:
        thread.stop()


@pytest.fixture
def operator_runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    monkeypatch.setattr(rollouts.cli.controller, "run_operator",
                        lambda config, **kwargs: runs.append(kwargs))
    return runs


def test_a_missing_namespace_is_one_warning_then_the_controller_runs(
        root_logging: None, kubeconfig: pathlib.Path,
        operator_runs: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(app, ["controller", "--kubeconfig", str(kubeconfig),
                                      "-n", "shop", "-n", "nowhere"])
    assert result.exit_code == 0, result.output
    assert [run["namespaces"] for run in operator_runs] == [("shop", "nowhere")]
    records = [json.loads(line) for line in result.stderr.splitlines()]
    [warning] = [r for r in records if r["level"].upper() == "WARNING"]
    assert warning["message"] == ("namespace nowhere does not exist; watching it anyway: "
                                  "Rollouts created there later are picked up")


def test_all_namespaces_checks_none(root_logging: None, kubeconfig: pathlib.Path,
                                    operator_runs: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(app, ["controller", "--kubeconfig", str(kubeconfig), "-A",
                                      "-n", "nowhere"])
    assert result.exit_code == 0, result.output
    assert len(operator_runs) == 1 and operator_runs[0]["clusterwide"] is True
    assert "nowhere" not in result.stderr
