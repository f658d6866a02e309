"""`rollouts demo --fast`: the whole scenario with the real controller, as a user runs it."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from typer.testing import CliRunner

from rollouts.cli.main import app
from rollouts.errors import OperationError
from rollouts.sandbox.cluster import Sandbox
from rollouts.sandbox.demo import OperationResult, run_demo

pytestmark = pytest.mark.e2e


def _console(buffer: io.StringIO) -> Console:
    return Console(file=buffer, width=80, force_terminal=False, color_system=None,
                   highlight=False, emoji=False)


def test_run_demo_meets_every_expectation() -> None:
    buffer = io.StringIO()
    code = run_demo(keep=False, fast=True, out=_console(buffer))
    text = buffer.getvalue()
    assert code == 0, text
    for line in (
        "1. Install examples/canary.yaml",
        "✔ Healthy: 4/4 pods of example/web:1.0 are the stable revision",
        "✔ 25%: 1 pod of example/web:2.0, 3 of the stable revision, weights 25/75",
        "✔ 50%: canary 50 / stable 50, 2 pods each",
        "$ rollouts promote web",
        "currentStepIndex: 3 -> 4",
        "✔ Healthy on example/web:2.0: 4/4 pods, example/web:1.0 at 0",
        "✔ 25%: 1 pod of example/web:3.0, 3 of the stable revision, weights 25/75",
        "$ rollouts abort web",
        "abort: <unset> -> true",
        "✔ abort decided at the first pause (step 2/4)",
        "✔ Degraded and marked aborted",
        "✔ stable example/web:2.0 back at 4/4 pods",
        "✔ canary example/web:3.0 scaled to 0",
        "✔ All 12 expectations met",
    ):
        assert line in text, f"missing {line!r} in:\n{text}"
    # The live view: step list, weights, ReplicaSets with roles, Services.
    assert "▶ 4. pause (until promoted)" in text
    assert "canary 50%, stable 50%  (desired canary 50%, verified)" in text
    assert "example/web:3.0  aborted" in text
    # A log line per transition, and no controller noise on a plain console.
    assert "Paused      step 2/4  canary 25%            pods 2.0 1/1, 1.0 3/3" in text
    assert "OS signals are ignored" not in text
    assert "\x1b[" not in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_a_refused_operation_fails_the_demo_saying_what_was_expected() -> None:
    def refuse(sandbox: Sandbox, operation: str, name: str) -> OperationResult:
        raise OperationError(f"cannot {operation} rollout {name}: testing")

    buffer = io.StringIO()
    code = run_demo(keep=False, fast=True, out=_console(buffer), operate=refuse)
    text = buffer.getvalue()
    assert code == 1, text
    assert "✘ rollouts promote web" in text
    assert "expected: the operation to be accepted" in text
    assert "seen:     it refused: cannot promote rollout web: testing" in text
    assert "All 12 expectations met" not in text


def test_rollouts_demo_fast_through_the_cli() -> None:
    """The command as typed, with promote/abort written by the CLI's own writer."""
    result = CliRunner().invoke(app, ["demo", "--fast"])
    assert result.exit_code == 0, result.output
    assert "rollout web promoted" in result.output
    assert "rollout web aborted" in result.output
    assert "All 12 expectations met" in result.output
