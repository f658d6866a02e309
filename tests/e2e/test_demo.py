"""`rollouts demo --fast`: the whole scenario with the real controller, as a user runs it.

The first three acts (promote and abort by hand) need no Prometheus and are tested on their
own with `run_demo(analysis=False)`; the analysis acts (a real Prometheus judges the canary)
run with the command as typed, skipped only where the binary is missing outside CI.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from rollouts.cli.main import app
from rollouts.errors import OperationError
from rollouts.sandbox.cluster import Sandbox
from rollouts.sandbox.demo import OperationResult, run_demo

pytestmark = pytest.mark.e2e

needs_prometheus = pytest.mark.skipif(
    shutil.which("prometheus") is None and os.environ.get("CI", "").lower() != "true",
    reason="the prometheus binary is not installed (scripts/setup.sh installs it)",
)


def _console(buffer: io.StringIO) -> Console:
    return Console(file=buffer, width=80, force_terminal=False, color_system=None,
                   highlight=False, emoji=False)


def _assert_readable_in_80_columns(text: str) -> None:
    assert "\x1b[" not in text
    assert max(len(line) for line in text.splitlines()) <= 80, max(
        text.splitlines(), key=len)
    assert "OS signals are ignored" not in text


def test_the_first_acts_meet_every_expectation() -> None:
    buffer = io.StringIO()
    code = run_demo(keep=False, fast=True, out=_console(buffer), analysis=False)
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
    # Without the analysis acts there is no Prometheus, and no word of it.
    assert "Prometheus" not in text and "4. Install" not in text
    # The first revision ran no steps: none is marked done in its box.
    first_box = text[text.index("1. Install"):text.index("2. Release")]
    assert "○ 1. setWeight 25" in first_box and "✔ 1." not in first_box
    # The aborted box marks where it stopped, and shows one moment: weights already settled.
    last_box = text[text.index("✔ Degraded and marked aborted"):]
    assert "✔ 1. setWeight 25" in last_box and "✘ 2. pause 2s" in last_box
    assert "○ 3. setWeight 50" in last_box
    assert "canary 0%, stable 100%" in last_box
    # ...and the way on.
    assert "rollouts demo --keep" in text
    _assert_readable_in_80_columns(text)


def test_ctrl_c_stops_cleanly_and_leaves_no_files() -> None:
    seen: list[Path] = []

    def interrupted(sandbox: Sandbox, operation: str, name: str) -> OperationResult:
        seen.append(sandbox.workdir)
        assert sandbox.kubeconfig.exists()
        raise KeyboardInterrupt

    buffer = io.StringIO()
    code = run_demo(keep=False, fast=True, out=_console(buffer), operate=interrupted,
                    analysis=False)
    text = buffer.getvalue()
    assert code == 130, text
    assert text.rstrip().endswith("Interrupted: stopping the sandbox and removing its files.")
    assert seen and not seen[0].exists()


def test_a_refused_operation_fails_the_demo_saying_what_was_expected() -> None:
    def refuse(sandbox: Sandbox, operation: str, name: str) -> OperationResult:
        raise OperationError(f"cannot {operation} rollout {name}: testing")

    buffer = io.StringIO()
    code = run_demo(keep=False, fast=True, out=_console(buffer), operate=refuse,
                    analysis=False)
    text = buffer.getvalue()
    assert code == 1, text
    assert "✘ rollouts promote web" in text
    assert "expected: the operation to be accepted" in text
    assert "seen:     it refused: cannot promote rollout web: testing" in text
    assert "All 12 expectations met" not in text


@needs_prometheus
def test_rollouts_demo_fast_through_the_cli_with_the_analysis_acts() -> None:
    """The command as typed: promote/abort written by the CLI's own writer, then a good
    release promoted and a bad one rolled back by the analysis alone."""
    result = CliRunner().invoke(app, ["demo", "--fast"], env={"COLUMNS": "80"})
    text = result.output
    assert result.exit_code == 0, text
    assert "rollout web promoted" in text
    assert "rollout web aborted" in text
    acts = text[text.index("4. Install examples/demo-analysis.yaml"):]
    for line in (
        "✔ Healthy: 4/4 pods of example/api:1.0 are the stable revision",
        # the good release: measured 3 times, promoted with nobody's help
        "5. Release example/api:2.0: the analysis promotes it",
        "✔ 50%: 2 pods of example/api:2.0, 2 stable; step 2's AnalysisRun started",
        "✔ AnalysisRun Successful: 3 measurements, all Successful",
        "✔ Healthy on example/api:2.0 with no promote: 4/4 pods, example/api:1.0 at 0",
        # the bad release: failed on its measurement, rolled back with nobody's help
        "6. Release example/api:3.0-bad: the analysis rolls it back",
        "✔ 50%: 2 pods of example/api:3.0-bad, 2 stable; step 2's AnalysisRun started",
        "The failing measurement, and the Rollout's status.message:",
        "failureCondition  len(result) > 0 && result[0] < 0.95  (true: Failed)",
        "✔ AnalysisRun Failed: a measurement below 0.95",
        "✔ Degraded and aborted by the controller, no abort command",
        "✔ stable example/api:2.0 back at 4/4 pods",
        "✔ canary example/api:3.0-bad scaled to 0",
        "✔ status.message names the failed AnalysisRun and metric",
        # the Gateway API acts: exact weights on an HTTPRoute, a header route, a rollback
        "7. Install examples/gatewayapi-canary.yaml: Gateway API",
        "✔ 5%: the HTTPRoute holds 5/95, 1 canary pod beside 4 stable",
        '✔ header route "testers": x-tester: yes goes to the canary',
        "✔ 25%: the HTTPRoute holds 25/75, still 1 canary pod",
        "✔ promoted: the route back to 0/100 (all on the new stable), no header route",
        "✔ rolled back by its analysis: the route at 0/100, no header route",
        "✔ the API server applied weight 0 before the canary's scale-down",
        # the judge act: a 10x regression at 0.5% caught by the comparison with baseline pods
        "10. Install examples/experiment-judge.yaml: a judge, not a threshold",
        "11. Release example/judge:2-regress: 10x the errors, still 95% success",
        "✔ Experiment running: 3 baseline pods (stable template), 3 canary pods",
        "The judge's evidence (AnalysisRun status, last measurement):",
        "✔ the judge failed the Experiment: decision fail",
        "✔ caught as soon as the evidence was there: within 10 looks",
        "✔ a 95% success-rate threshold would have passed it",
        "✔ aborted by the experiment step: stable back at 4/4, canary at 0",
        "✔ the Experiment's ReplicaSets scaled to 0",
        "✔ All 37 expectations met",
    ):
        assert line in acts, f"missing {line!r} in:\n{text}"
    assert "$ rollouts" not in acts  # no human operation in the analysis acts
    good, bad = acts.split("6. Release", 1)
    bad = bad.split("7. Install", 1)[0]
    judge = acts.split("11. Release", 1)[1]
    assert re.search(r"^  decision +fail: canary error rate higher than 1\.5x baseline's",
                     judge, re.MULTILINE), judge
    rate = re.search(r"^  threshold +canary success rate ([0-9.]+)%", judge, re.MULTILINE)
    assert rate is not None and float(rate.group(1)) >= 95.0, judge
    # The good run's measurements, value and phase each, as the controller recorded them.
    taken = re.findall(r"^  success-rate  (\d)  (\[[0-9.e-]+\])\s+✔ Successful$", good,
                       re.MULTILINE)
    assert [n for n, _ in taken] == ["1", "2", "3"], good
    assert all(float(v.strip("[]")) >= 0.95 for _, v in taken), taken
    # The bad run's failing measurement: ~70% of requests succeed.
    value = re.search(r"^  value +\[([0-9.]+)\]$", bad, re.MULTILINE)
    assert value is not None and 0.5 < float(value.group(1)) < 0.95, bad
    assert re.search(r"^  metric +success-rate \(#1 of AnalysisRun api-\w+-step-1\)$", bad,
                     re.MULTILINE), bad
    assert re.search(r"status\.message +Aborted: step 2 AnalysisRun api-\w+-step-1 Failed:",
                     bad), bad
    # Live log lines for the run: its phase and each measurement as it comes.
    assert re.search(r"analysis    Successful  (\d\.\d{3} ✔  ){2}\d\.\d{3} ✔$", good,
                     re.MULTILINE), good
    assert re.search(r"analysis    Failed      0\.\d+ ✘", bad), bad
    _assert_readable_in_80_columns(text)


def test_without_prometheus_the_demo_says_how_to_install_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no prometheus binary
    result = CliRunner().invoke(app, ["demo", "--fast"], env={"COLUMNS": "80"})
    assert result.exit_code == 1, result.output
    assert "✘ The demo needs Prometheus for its analysis acts." in result.output
    assert "The 'prometheus' binary is not on PATH." in result.output
    assert "scripts/setup.sh installs it (Debian's prometheus package), as root:" \
        in result.output
    assert "  bash scripts/setup.sh && rollouts demo" in result.output
    assert "Sandbox API server" not in result.output  # nothing was started
    assert max(len(line) for line in result.output.splitlines()) <= 80
