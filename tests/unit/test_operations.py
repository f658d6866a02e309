"""promote / abort / retry / pause / resume as tables: status in, updates (or refusal) out."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from rollouts.errors import OperationError
from rollouts.models.rollout import Rollout
from rollouts.planner import operations

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
STAMP = "2024-05-01T12:00:00Z"
EARLIER = "2024-05-01T11:00:00Z"

TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}}
CANARY = {
    "selector": {"matchLabels": {"app": "web"}},
    "template": TEMPLATE,
    "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}]}},
}
BLUE_GREEN = {
    "selector": {"matchLabels": {"app": "web"}},
    "template": TEMPLATE,
    "strategy": {"blueGreen": {"activeService": "a", "previewService": "p",
                               "autoPromotionEnabled": False}},
}

STEADY = {"currentPodHash": "aaa", "stableRS": "aaa", "currentStepIndex": 3}
FLIGHT = {"currentPodHash": "bbb", "stableRS": "aaa", "currentStepIndex": 1,
          "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": EARLIER}]}
ABORTED = {"currentPodHash": "bbb", "stableRS": "aaa", "currentStepIndex": 0, "abort": True,
           "abortedAt": EARLIER, "abortMessage": "Rollout aborted by user"}
LAST = {"currentPodHash": "bbb", "stableRS": "aaa", "currentStepIndex": 3}
USER_PAUSED = {"currentPodHash": "bbb", "stableRS": "aaa", "currentStepIndex": 0,
               "pauseConditions": [{"reason": "PausedByUser", "startTime": EARLIER}]}
BG_WAITING = {"currentPodHash": "bbb", "stableRS": "aaa", "controllerPause": True,
              "pauseConditions": [{"reason": "BlueGreenPause", "startTime": EARLIER}]}
BG_SCALING = {"currentPodHash": "bbb", "stableRS": "aaa"}


def rollout(status: dict[str, Any], spec: dict[str, Any] | None = None) -> Rollout:
    return Rollout.model_validate({"metadata": {"name": "web"}, "spec": spec or CANARY,
                                   "status": status})


OK_CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    # (operation, options, spec, status, expected updates)
    ("promote", {}, CANARY, FLIGHT, {"currentStepIndex": 2, "pauseConditions": None}),
    ("promote", {}, CANARY, {**FLIGHT, "currentStepIndex": None},
     {"currentStepIndex": 1, "pauseConditions": None}),
    ("promote", {}, CANARY, USER_PAUSED, {"currentStepIndex": 1, "pauseConditions": None}),
    ("promote", {"full": True}, CANARY, FLIGHT, {"promoteFull": True, "pauseConditions": None}),
    ("promote", {"full": True}, CANARY, LAST, {"promoteFull": True, "pauseConditions": None}),
    ("promote", {}, BLUE_GREEN, BG_WAITING, {"pauseConditions": None, "controllerPause": True}),
    ("promote", {}, BLUE_GREEN, USER_PAUSED, {"pauseConditions": None}),
    ("promote", {"full": True}, BLUE_GREEN, BG_SCALING,
     {"promoteFull": True, "pauseConditions": None}),
    ("abort", {}, CANARY, FLIGHT,
     {"abort": True, "abortedAt": STAMP, "abortMessage": "Rollout aborted by user"}),
    ("abort", {}, BLUE_GREEN, BG_WAITING,
     {"abort": True, "abortedAt": STAMP, "abortMessage": "Rollout aborted by user"}),
    ("retry", {}, CANARY, ABORTED,
     {"abort": None, "abortedAt": None, "abortMessage": None, "currentStepIndex": 0,
      "pauseConditions": None}),
    ("pause", {}, CANARY, FLIGHT,
     {"pauseConditions": [{"reason": "CanaryPauseStep", "startTime": EARLIER},
                          {"reason": "PausedByUser", "startTime": STAMP}]}),
    ("pause", {}, CANARY, BG_SCALING,
     {"pauseConditions": [{"reason": "PausedByUser", "startTime": STAMP}]}),
    ("resume", {}, CANARY, USER_PAUSED, {"pauseConditions": None}),
    ("resume", {}, CANARY,
     {**FLIGHT, "pauseConditions": [*FLIGHT["pauseConditions"],
                                    {"reason": "PausedByUser", "startTime": STAMP}]},
     {"pauseConditions": [{"reason": "CanaryPauseStep", "startTime": EARLIER}]}),
]


@pytest.mark.parametrize(("operation", "options", "spec", "status", "expected"), OK_CASES)
def test_operation_updates(operation: str, options: dict[str, Any], spec: dict[str, Any],
                           status: dict[str, Any], expected: dict[str, Any]) -> None:
    assert operations.decide(operation, rollout(status, spec), NOW, **options) == expected


REFUSED: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], str]] = [
    ("promote", {}, CANARY, STEADY, "no update in progress"),
    ("promote", {}, CANARY, {}, "no update in progress (no revision yet)"),
    ("promote", {}, CANARY, ABORTED, "it is aborted"),
    ("promote", {}, CANARY, LAST, "already past the last step"),
    ("promote", {"full": True}, CANARY, STEADY, "no update in progress"),
    ("promote", {"full": True}, CANARY, {**FLIGHT, "promoteFull": True}, "already being"),
    ("promote", {}, BLUE_GREEN, BG_SCALING, "not paused"),
    ("promote", {}, {"strategy": {}}, FLIGHT, "invalid spec"),
    ("abort", {}, CANARY, STEADY, "no update in progress"),
    ("abort", {}, CANARY, ABORTED, "it is aborted"),
    ("retry", {}, CANARY, FLIGHT, "not aborted"),
    ("retry", {}, CANARY, STEADY, "not aborted"),
    ("pause", {}, CANARY, USER_PAUSED, "already paused"),
    ("pause", {}, CANARY, STEADY, "no update in progress"),
    ("pause", {}, CANARY, ABORTED, "it is aborted"),
    ("resume", {}, CANARY, FLIGHT, "waiting at a pause step: use promote"),
    ("resume", {}, {**CANARY, "paused": True}, FLIGHT, "spec.paused is true"),
    ("resume", {}, CANARY, STEADY, "not paused by a user"),
]


@pytest.mark.parametrize(("operation", "options", "spec", "status", "message"), REFUSED)
def test_operation_refused(operation: str, options: dict[str, Any], spec: dict[str, Any],
                           status: dict[str, Any], message: str) -> None:
    with pytest.raises(OperationError, match="web") as info:
        operations.decide(operation, rollout(status, spec), NOW, **options)
    assert message in str(info.value)


def test_unknown_operation() -> None:
    with pytest.raises(ValueError):
        operations.decide("restart", rollout(FLIGHT), NOW)


def test_updates_are_status_fields_only() -> None:
    """Every field an operation writes is a RolloutStatus field (never spec)."""
    from rollouts.models.rollout import RolloutStatus

    wire = {f.alias or name for name, f in RolloutStatus.model_fields.items()}
    for operation, options, spec, status, _ in OK_CASES:
        updates = operations.decide(operation, rollout(status, spec), NOW, **options)
        assert set(updates) <= wire, operation
