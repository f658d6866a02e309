"""`rollouts controller --log-format` / ROLLOUTS_LOG_FORMAT reach the controller; a wrong
value is refused before anything starts."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

import rollouts.cli.controller
import rollouts.kube.config
from rollouts.cli.main import app
from rollouts.kube.config import Connection


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(rollouts.kube.config, "load",
                        lambda *_: Connection(host="https://k8s.test"))
    monkeypatch.setattr(rollouts.kube.config, "check_reachable", lambda *_: None)
    monkeypatch.setattr(rollouts.cli.controller, "controller_command",
                        lambda **kwargs: calls.append(kwargs))
    monkeypatch.delenv("ROLLOUTS_LOG_FORMAT", raising=False)
    return calls


@pytest.mark.parametrize(("args", "env", "expected"), [
    ([], {}, "json"),
    (["--log-format", "text"], {}, "text"),
    ([], {"ROLLOUTS_LOG_FORMAT": "text"}, "text"),
    (["--log-format", "json"], {"ROLLOUTS_LOG_FORMAT": "text"}, "json"),
])
def test_the_log_format_reaches_the_controller(started: list[dict[str, Any]], args: list[str],
                                               env: dict[str, str], expected: str) -> None:
    result = CliRunner().invoke(app, ["controller", *args], env=env)
    assert result.exit_code == 0, result.output
    [call] = started
    assert call["log_format"] == expected


def test_an_unknown_log_format_is_refused(started: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(app, ["controller", "--log-format", "xml"])
    assert result.exit_code == 2
    assert "xml" in result.output
    assert started == []
