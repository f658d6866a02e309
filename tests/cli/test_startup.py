"""Rough edges a new user meets first: start-up cost, help text, --version, completion.

Start-up is not timed here (bench/cli_startup.py measures it); what is checked is the cause
of a slow start: importing the CLI must not load the cluster client stack.
"""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from rollouts import __version__
from rollouts.cli.main import app
from tests.cli.conftest import Sandbox

HEAVY = ("kopf", "kubernetes", "httpx", "rollouts.models", "rollouts.kube", "rollouts.planner")


def test_importing_the_cli_loads_no_cluster_client() -> None:
    code = ("import sys, rollouts.cli.main\n"
            f"print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"


def test_version_flag_and_command() -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["--version"]).stdout == f"rollouts {__version__}\n"
    assert runner.invoke(app, ["version"]).stdout == f"rollouts {__version__}\n"


def test_help_speaks_command_line_not_python() -> None:
    runner = CliRunner()
    for args in (["--help"], ["get", "--help"], ["lint", "--help"], ["demo", "--help"],
                 ["status", "--help"], ["dashboard", "--help"]):
        text = runner.invoke(app, args, env={"COLUMNS": "120"}).stdout
        for leak in ("<bool>", "<str>", "<int>", "list[", "{name}", "{paths}", "<Path>"):
            assert leak not in text, f"{' '.join(args)} shows {leak}:\n{text}"
    usage = runner.invoke(app, ["get", "--help"], env={"COLUMNS": "120"}).stdout
    assert "[OPTIONS] NAME" in usage and "--kubeconfig" in usage and "PATH" in usage


def complete(sandbox: Sandbox, words: str) -> list[str]:
    env = {"_ROLLOUTS_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
    result = sandbox.runner.invoke(app, [], env=env, prog_name="rollouts")
    return result.stdout.split()


def test_completion_of_commands_and_rollout_names(sandbox: Sandbox) -> None:
    sandbox.rollout("web")
    sandbox.rollout("worker")
    sandbox.rollout("api")
    assert "promote" in complete(sandbox, "rollouts pro")
    kube = f"rollouts --kubeconfig {sandbox.kubeconfig}"
    assert complete(sandbox, f"{kube} get w") == ["web", "worker"]
    assert complete(sandbox, f"{kube} promote ") == ["api", "web", "worker"]
    # No cluster: nothing to offer, and nothing printed into the shell.
    assert complete(sandbox, "rollouts --kubeconfig /nonexistent get w") == []


def test_controller_refuses_a_bad_allow_metric_address() -> None:
    result = CliRunner().invoke(app, ["controller", "--allow-metric-address", "not-a-cidr"])
    assert result.exit_code != 0
    assert "--allow-metric-address 'not-a-cidr' is not a CIDR" in result.output
    help_text = CliRunner().invoke(app, ["controller", "--help"], env={"COLUMNS": "200"}).stdout
    assert "--allow-metric-address" in help_text
