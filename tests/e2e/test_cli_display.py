"""What `rollouts get` shows while the real controller works (rough edges of issue 12)."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from rollouts.cli.main import app
from rollouts.sandbox.cluster import EXAMPLES_DIR
from tests.e2e.conftest import CountingSandbox

pytestmark = pytest.mark.e2e


def get(sb: CountingSandbox, name: str) -> str:
    result = CliRunner().invoke(app, ["--kubeconfig", str(sb.kubeconfig), "get", name],
                                env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_blue_green_old_revision_shows_its_scale_down_countdown(
        cluster: CountingSandbox) -> None:
    cluster.apply(EXAMPLES_DIR / "bluegreen.yaml")  # scaleDownDelaySeconds: 30
    cluster.wait_phase("shop", "Healthy")
    first = get(cluster, "shop")
    assert "(first revision: steps skipped)" not in first  # blue-green has no steps
    cluster.set_image("shop", "example/shop:2.0")
    cluster.wait_phase("shop", "Paused")
    result = CliRunner().invoke(app, ["--kubeconfig", str(cluster.kubeconfig), "promote",
                                      "shop"])
    assert result.exit_code == 0, result.output
    # The controller marks the old ReplicaSet for scale-down and then writes the status that
    # makes the new revision stable and active; a `get` between those two writes shows the
    # old revision still stable with a countdown. Wait for the settled view: the countdown
    # must end up on the old revision, never on the new one.
    def countdown_line() -> str | None:
        out = get(cluster, "shop")
        return next((line for line in out.splitlines() if "scaled down in" in line
                     and "(stable" not in line and "(active" not in line), None)

    old = cluster.wait_for("the old revision's countdown", countdown_line)
    assert "#1 " in old, old
    seconds = re.search(r"scaled down in (\d+)s", old)
    assert seconds is not None and 0 < int(seconds.group(1)) <= 30, old


def test_aborted_canary_reads_once_and_names_the_aborted_revision(
        cluster: CountingSandbox) -> None:
    cluster.apply(EXAMPLES_DIR / "canary.yaml")
    cluster.wait_phase("web", "Healthy")
    assert "Step:     -/4 (first revision: steps skipped)" in get(cluster, "web")
    cluster.set_image("web", "example/web:2.0")
    cluster.wait_phase("web", "Paused", step=1)
    result = CliRunner().invoke(app, ["--kubeconfig", str(cluster.kubeconfig), "abort", "web"])
    assert result.exit_code == 0, result.output
    cluster.wait_for("the canary scaled down", lambda: cluster.wait_phase("web", "Degraded")
                     and all(size == (0, 0) for h, size in cluster.sizes("web").items()
                             if h != cluster.status("web").get("stableRS")))
    text = get(cluster, "web")
    assert "Step:     2/4 aborted" in text  # status.step keeps where the abort found it
    assert "(aborted)" in text and "(canary)" not in text
    assert "not yet verified" not in text
    assert "Aborted:  Aborted" not in text and text.count("Rollout aborted by user") == 1
    listed = CliRunner().invoke(app, ["--kubeconfig", str(cluster.kubeconfig), "list"])
    assert re.search(r"web\s+Canary\s+Degraded\s+2/4 aborted", listed.stdout), listed.stdout
