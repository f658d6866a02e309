"""`get` / `list` rendering on fixed inputs: model objects in, text out."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from rollouts.cli import render
from rollouts.cli.cluster import watch_views
from rollouts.kube.client import KubeClient
from tests.cli.conftest import BLUE_GREEN_SPEC, CANARY_PAUSED, CANARY_SPEC, GROUP, VERSION, Sandbox

NOW = dt.datetime(2024, 1, 1, 0, 0, 20, tzinfo=dt.UTC)
UID = "uid-1"


def owner(uid: str = UID) -> list[dict[str, Any]]:
    return [{"apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout", "name": "web",
             "uid": uid, "controller": True}]


def rollout(spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "prod", "uid": UID, "generation": 1,
                         "creationTimestamp": "2023-12-31T22:00:00Z"},
            "spec": spec, "status": status}


def rs(pod_hash: str, revision: int, desired: int, ready: int, uid: str = UID) -> dict[str, Any]:
    return {"metadata": {"name": f"web-{pod_hash}", "ownerReferences": owner(uid),
                         "labels": {"rollouts-pod-template-hash": pod_hash},
                         "annotations": {"rollouts.dev/revision": str(revision)}},
            "spec": {"replicas": desired},
            "status": {"replicas": desired, "readyReplicas": ready, "availableReplicas": ready}}


RUN = {
    "metadata": {"name": "web-new-2", "ownerReferences": owner(),
                 "creationTimestamp": "2024-01-01T00:00:00Z",
                 "labels": {"rollouts-pod-template-hash": "new",
                            "rollouts.dev/analysis-kind": "step", "rollouts.dev/step-index": "1"}},
    "status": {"phase": "Running", "metricResults": [
        {"name": "error-rate", "phase": "Running", "successful": 2, "count": 2,
         "measurements": [{"phase": "Successful", "value": "0.2"},
                          {"phase": "Successful", "value": "0.01"}]},
        {"name": "latency", "phase": "Pending"},
    ]},
}


def canary_view() -> render.RolloutView:
    return render.build_view(
        rollout(CANARY_SPEC, CANARY_PAUSED),
        [rs("old", 1, 3, 3), rs("new", 2, 1, 1), rs("other", 3, 9, 9, uid="someone-else")],
        [RUN, {**RUN, "metadata": {**RUN["metadata"], "ownerReferences": owner("x")}}],
    )


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def test_canary_tree() -> None:
    text = render.to_text(render.rollout_tree(canary_view(), NOW))
    assert lines(text) == [
        "Rollout web  (namespace prod)",
        "├── Status:   Paused  Step 2/4: paused, 40s left",
        "├── Strategy: Canary",
        "├── Step:     2/4",
        "│   ├── ✔ setWeight: 25",
        "│   ├── ▶ pause: 60s",
        "│   ├── ○ setWeight: 50",
        "│   └── ○ pause (until promoted)",
        "├── Weights:  canary 25%, stable 75%, desired 25% (verified)",
        "├── Pause:    paused, 40s left",
        "├── Revisions",
        "│   ├── #2 web-new (canary)  pods 1 desired, 1 ready, 1 available",
        "│   └── #1 web-old (stable)  pods 3 desired, 3 ready, 3 available",
        "└── Analysis",
        "    └── web-new-2 Running (step 2)",
        "        ├── error-rate: 0.01 Running (2 ok, 0 failed, 0 inconclusive, 0 errors)",
        "        └── latency: - Pending (0 ok, 0 failed, 0 inconclusive, 0 errors)",
    ]


def test_tree_fits_80_columns_and_colour_is_optional() -> None:
    plain = render.to_text(render.rollout_tree(canary_view(), NOW))
    assert all(len(line) <= 80 for line in plain.splitlines())
    coloured = render.to_text(render.rollout_tree(canary_view(), NOW), color=True)
    assert "\x1b[" in coloured and "\x1b[" not in plain


def test_blue_green_tree_roles_and_waiting() -> None:
    status = {"phase": "Paused", "message": "Preview revision new is ready; waiting for promote",
              "observedGeneration": 1, "currentPodHash": "new", "stableRS": "old",
              "controllerPause": True,
              "pauseConditions": [{"reason": "BlueGreenPause",
                                   "startTime": "2024-01-01T00:00:00Z"}],
              "blueGreen": {"activeSelector": "old", "previewSelector": "new"}}
    view = render.build_view(rollout(BLUE_GREEN_SPEC, status),
                             [rs("old", 1, 2, 2), rs("new", 2, 2, 1)])
    text = render.to_text(render.rollout_tree(view, NOW))
    assert "Strategy: BlueGreen" in text
    assert "Services: active -> old, preview -> new" in text
    assert "Pause:    preview ready, waiting for promote" in text
    assert "#2 web-new (preview)  pods 2 desired, 1 ready, 1 available" in text
    assert "#1 web-old (stable, active)  pods 2 desired, 2 ready, 2 available" in text
    assert "Step" not in text and "Weights" not in text


def test_aborted_and_stale_generation_are_shown() -> None:
    status = {**CANARY_PAUSED, "phase": "Degraded", "abort": True,
              "abortMessage": "Rollout aborted by user", "abortedAt": "2024-01-01T00:00:10Z",
              "observedGeneration": 0, "pauseConditions": None}
    text = render.to_text(render.rollout_tree(render.build_view(rollout(CANARY_SPEC, status)),
                                              NOW))
    assert "Aborted:  Rollout aborted by user at 2024-01-01T00:00:10Z" in text
    assert "Generation 1 not yet observed by the controller (observed 0)" in text
    assert "▶" not in text  # nothing is current while aborted
    assert "(no ReplicaSets)" in text


def test_a_user_abort_shows_the_step_the_controller_recorded() -> None:
    status = {**CANARY_PAUSED, "phase": "Degraded", "abort": True, "currentStepIndex": 0,
              "step": "aborted at 2/4", "abortMessage": "Rollout aborted by user",
              "pauseConditions": None}
    view = render.build_view(rollout(CANARY_SPEC, status))
    assert render.step_label(view) == "2/4 aborted"
    assert [s.state for s in render.step_states(view)][:3] == ["done", "aborted", "pending"]


def test_invalid_spec_still_renders() -> None:
    status = {"phase": "Degraded", "message": "InvalidSpec: spec.selector: Field required"}
    spec = {"strategy": {"canary": {"steps": [{"setWeight": 10, "pause": {}}]}}}
    text = render.to_text(render.rollout_tree(render.build_view(rollout(spec, status)), NOW))
    assert "InvalidSpec: spec.selector: Field required" in text
    assert "setWeight: 10" in text


def test_invalid_spec_marks_no_step_done() -> None:
    # The controller refused the spec: no step ran, whatever the index says.
    status = {"phase": "Degraded", "message": "InvalidSpec: spec.strategy: bad",
              "observedGeneration": 1, "currentStepIndex": 2,
              "conditions": [{"type": "InvalidSpec", "status": "True",
                              "message": "spec.strategy: bad"}]}
    spec = {**CANARY_SPEC, "strategy": {"canary": {"steps": [{"setWeight": 10},
                                                              {"pause": {}}]}}}
    view = render.build_view(rollout(spec, status))
    text = render.to_text(render.rollout_tree(view, NOW))
    assert "✔" not in text and "all steps done" not in text
    assert "Step:     -/2 (invalid spec)" in text
    assert render.list_row(view.rollout, NOW)["step"] == "-/2 (invalid spec)"


ABORTED_RUN = {
    "metadata": {"name": "web-new-2", "ownerReferences": owner(),
                 "creationTimestamp": "2024-01-01T00:00:00Z",
                 "labels": {"rollouts-pod-template-hash": "new",
                            "rollouts.dev/analysis-kind": "step", "rollouts.dev/step-index": "1"}},
    "status": {"phase": "Failed", "message": 'metric "error-rate" failed: value 0.3',
               "metricResults": [{"name": "error-rate", "phase": "Failed", "failed": 1,
                                  "message": 'metric "error-rate" failed: value 0.3',
                                  "measurements": [{"phase": "Failed", "value": "0.3"}]}]},
}


def test_aborted_at_a_step_says_where_once() -> None:
    # As the controller leaves it: index reset to 0, the failed step run says where it stopped.
    reason = 'Aborted: step 2 AnalysisRun web-new-2 Failed: metric "error-rate" failed: value 0.3'
    status = {**CANARY_PAUSED, "phase": "Degraded", "abort": True, "abortMessage": reason,
              "message": f"{reason}; stable revision old serving all traffic",
              "currentStepIndex": 0, "pauseConditions": None,
              "canary": {"weights": {"canary": {"podTemplateHash": "new", "weight": 0},
                                     "stable": {"podTemplateHash": "old", "weight": 100},
                                     "verified": False}, "desiredWeight": 0}}
    view = render.build_view(rollout(CANARY_SPEC, status), [rs("old", 1, 4, 4),
                                                             rs("new", 2, 0, 0)], [ABORTED_RUN])
    text = render.to_text(render.rollout_tree(view, NOW), width=200)
    assert "Step:     2/4 aborted" in text
    assert "✔ setWeight: 25" in text and "✖ pause: 60s" in text and "○ setWeight: 50" in text
    assert "not yet verified" not in text
    assert "Aborted:  Aborted" not in text
    assert text.count('metric "error-rate" failed: value 0.3') == 1
    assert "web-new (aborted)" in text and "(canary)" not in text
    assert render.list_row(view.rollout, NOW)["step"] == "aborted"  # no runs in a list
    assert render.step_label(view) == "2/4 aborted"


def test_status_line_counts_down_with_the_pause_line() -> None:
    later = NOW + dt.timedelta(seconds=15)
    text = render.to_text(render.rollout_tree(canary_view(), later))
    assert "Step 2/4: paused, 25s left" in text
    assert "Pause:    paused, 25s left" in text
    assert "paused for 60s more" not in text


def test_user_pause_and_auto_promotion_countdown() -> None:
    user = {**CANARY_PAUSED, "pauseConditions": [
        {"reason": "PausedByUser", "startTime": "2024-01-01T00:00:00Z"}]}
    assert render.pause_left(render.parse_rollout(rollout(CANARY_SPEC, user)), NOW) == (
        "paused by user (resume to continue)", None)
    spec = {**BLUE_GREEN_SPEC, "strategy": {"blueGreen": {
        "activeService": "a", "autoPromotionSeconds": 90}}}
    status = {"phase": "Paused", "currentPodHash": "new", "stableRS": "old",
              "previewReadyAt": "2024-01-01T00:00:00Z"}
    assert render.pause_left(render.parse_rollout(rollout(spec, status)), NOW) == (
        "auto-promotion", 70)


def test_list_table() -> None:
    rows = [render.parse_rollout(rollout(CANARY_SPEC, CANARY_PAUSED)),
            render.parse_rollout(rollout(BLUE_GREEN_SPEC, {"phase": "Healthy"}))]
    text = render.to_text(render.rollouts_table(rows, NOW, all_namespaces=True))
    assert [line.split() for line in text.splitlines()] == [
        ["NAMESPACE", "NAME", "STRATEGY", "PHASE", "STEP", "WEIGHT", "AGE"],
        ["prod", "web", "Canary", "Paused", "2/4", "25%", "2h"],
        ["prod", "web", "BlueGreen", "Healthy", "-", "-", "2h"],
    ]


def test_summary_of_fixed_view() -> None:
    assert render.summary(canary_view()) == {
        "name": "web", "namespace": "prod", "phase": "Paused",
        "message": "Step 2/4: paused for 60s more", "revision": "new", "stableRevision": "old",
        "step": {"index": 1, "total": 4}, "weights": {"canary": 25, "stable": 75, "desired": 25},
        "aborted": False, "analysis": [{"name": "web-new-2", "phase": "Running", "message": ""}],
        "observedGeneration": 1, "generation": 1,
    }


def test_age() -> None:
    assert [render.age(t, NOW) for t in (
        "2024-01-01T00:00:00Z", "2023-12-31T23:50:00Z", "2023-12-31T20:00:00Z",
        "2023-12-25T00:00:00Z", None)] == ["20s", "10m", "4h", "7d", "?"]


def test_watch_views_follow_changes(sandbox: Sandbox) -> None:
    """`get --watch` is driven by watch events: a status write yields a new view."""
    created = sandbox.rollout(status=CANARY_PAUSED)
    sandbox.replica_set(created, "new", 2, 1, 1)

    async def scenario() -> list[tuple[int | None, int]]:
        seen: list[tuple[int | None, int]] = []
        client = KubeClient.load(str(sandbox.kubeconfig))
        async with client:
            views = watch_views(client, sandbox.namespace, "web")
            async for view in views:
                assert view is not None
                seen.append((view.rollout.status.current_step_index, len(view.replica_sets)))
                if len(seen) == 1:
                    await asyncio.to_thread(
                        sandbox.emulator.patch_object, GROUP, VERSION, "rollouts",
                        sandbox.namespace, "web", {"status": {"currentStepIndex": 2}}, "status")
                elif len(seen) == 2:
                    await asyncio.to_thread(sandbox.replica_set, created, "old", 1, 3, 3)
                elif seen[-1][1] == 2:
                    break
            await views.aclose()
            return seen

    seen = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert seen[0] == (1, 1)
    assert seen[1] == (2, 1)
    assert seen[-1] == (2, 2)


def test_blue_green_old_revision_counts_down_to_its_scale_down() -> None:
    status = {"phase": "Healthy", "observedGeneration": 1, "currentPodHash": "new",
              "stableRS": "new", "blueGreen": {"activeSelector": "new"}}
    old = rs("old", 1, 2, 2)
    old["metadata"]["annotations"]["rollouts.dev/scale-down-deadline"] = "2024-01-01T00:00:45Z"
    view = render.build_view(rollout(BLUE_GREEN_SPEC, status), [old, rs("new", 2, 2, 2)])
    text = render.to_text(render.rollout_tree(view, NOW), width=120)
    assert "#1 web-old  pods 2 desired, 2 ready, 2 available; scaled down in 25s" in text
    later = render.to_text(render.rollout_tree(view, NOW + dt.timedelta(seconds=30)), width=120)
    assert "scaled down in 0s" not in later and "scaled down in" not in later
    assert "; scaling down" in render.to_text(
        render.rollout_tree(view, NOW + dt.timedelta(seconds=60)), width=120)


def test_a_first_revision_ran_no_steps() -> None:
    healthy = {"phase": "Healthy", "observedGeneration": 1, "currentPodHash": "old",
               "stableRS": "old", "currentStepIndex": 4}
    installed = render.build_view(rollout(CANARY_SPEC, healthy), [rs("old", 1, 4, 4)])
    text = render.to_text(render.rollout_tree(installed, NOW))
    assert "Step:     -/4 (first revision: steps skipped)" in text
    assert "- setWeight: 25" in text and "✔" not in text
    released = {**healthy, "currentPodHash": "new", "stableRS": "new"}
    done = render.build_view(rollout(CANARY_SPEC, released),
                             [rs("old", 1, 0, 0), rs("new", 2, 4, 4)])
    text = render.to_text(render.rollout_tree(done, NOW))
    assert "Step:     4/4 done" in text and text.count("✔") == 4
