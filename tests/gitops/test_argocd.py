"""Argo CD resource actions for Rollouts (examples/gitops/argocd/) agree with the CLI.

For every recorded Rollout: the actions discovery.lua enables are exactly the operations
`rollouts` accepts (rollouts.planner.operations), and each enabled action's Lua writes the
status the CLI writes (its merge patch applied). The ConfigMap users apply embeds exactly
these scripts, and the Application example is what docs/gitops.md describes.
"""

from __future__ import annotations

import copy
import datetime as dt
import pathlib
from typing import Any

import pytest
import yaml

from rollouts.errors import OperationError
from rollouts.models.rollout import read_rollout
from rollouts.planner.operations import decide
from tests.gitops.argocd_cm import ACTIONS, ACTIONS_KEY, ARGOCD, HEALTH_KEY, build, script
from tests.gitops.lua import RECORDED, recorded, run

NOW = "2026-12-04T20:00:00Z"
CLOCK = dt.datetime(2026, 12, 4, 20, 0, tzinfo=dt.UTC)
# Action name -> (CLI operation, --full)
OPERATIONS = {"promote": ("promote", False), "promote-full": ("promote", True),
              "abort": ("abort", False), "retry": ("retry", False),
              "pause": ("pause", False), "resume": ("resume", False)}


def cli_patch(obj: dict[str, Any], action: str) -> dict[str, Any] | None:
    """The status merge patch `rollouts <operation>` writes, or None when it refuses."""
    operation, full = OPERATIONS[action]
    try:
        return decide(operation, read_rollout(obj), CLOCK, full=full)
    except OperationError:
        return None


def merged(status: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(status)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def enabled(obj: dict[str, Any]) -> set[str]:
    actions = run(script("actions/discovery.lua"), obj)
    assert set(actions) == set(ACTIONS)
    return {name for name, flags in actions.items() if not flags["disabled"]}


@pytest.mark.parametrize("name", RECORDED)
def test_discovery_enables_what_the_cli_accepts(name: str) -> None:
    obj = recorded(name)
    assert enabled(obj) == {a for a in ACTIONS if cli_patch(obj, a) is not None}


ACCEPTED = [(name, action) for name in RECORDED for action in ACTIONS
            if cli_patch(recorded(name), action) is not None]


@pytest.mark.parametrize(("name", "action"), ACCEPTED)
def test_each_action_writes_what_the_cli_writes(name: str, action: str) -> None:
    obj = recorded(name)
    patch = cli_patch(obj, action)
    assert patch is not None
    after = run(script(f"actions/{action}.lua"), copy.deepcopy(obj), now=NOW)
    assert after["status"] == merged(obj["status"], patch)
    # Only status changes: nothing a GitOps diff would show, no new generation.
    assert after["spec"] == obj["spec"] and after["metadata"] == obj["metadata"]


def test_every_state_offers_something_useful() -> None:
    assert enabled(recorded("canary-paused-at-step")) == {"promote", "promote-full", "abort",
                                                          "pause"}
    assert enabled(recorded("canary-paused-by-user")) >= {"resume"}
    assert enabled(recorded("canary-aborted")) == {"retry"}
    assert enabled(recorded("canary-healthy")) == set()
    assert "promote" in enabled(recorded("bluegreen-paused"))


def test_the_configmap_embeds_the_scripts() -> None:
    text = (ARGOCD / "argocd-cm.yaml").read_text()
    assert text == build(), "regenerate: python3 -m tests.gitops.argocd_cm"
    data = yaml.safe_load(text)["data"]
    assert data[HEALTH_KEY] == script("health.lua")
    actions = yaml.safe_load(data[ACTIONS_KEY])
    assert actions["discovery.lua"] == script("actions/discovery.lua")
    assert [d["name"] for d in actions["definitions"]] == list(ACTIONS)


def test_the_application_ignores_the_controllers_service_selector() -> None:
    app = yaml.safe_load((ARGOCD / "application.yaml").read_text())
    assert app["kind"] == "Application"
    ignored = app["spec"]["ignoreDifferences"]
    assert {"group": "", "kind": "Service",
            "jqPathExpressions": ['.spec.selector["rollouts-pod-template-hash"]']} in ignored
    assert "RespectIgnoreDifferences=true" in app["spec"]["syncPolicy"]["syncOptions"]


def test_examples_are_documented() -> None:
    gitops = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "gitops.md").read_text()
    for path in ("examples/gitops/argocd/argocd-cm.yaml",
                 "examples/gitops/argocd/application.yaml",
                 "examples/gitops/flux/kustomization.yaml"):
        assert path in gitops
