"""How AnalysisRuns gate canary steps, background analysis and blue-green promotion."""

from __future__ import annotations

from typing import Any

from rollouts.planner.types import CreateAnalysisRun, TerminateAnalysisRun
from tests.unit.world import World, blue_green_spec, canary_spec

ANALYSIS = {"templates": [{"templateName": "success-rate"}]}


def canary_world(steps: list[dict[str, Any]], **canary: Any) -> World:
    w = World(canary_spec(steps, canaryService="canary", stableService="stable", **canary))
    w.run()
    assert w.status.phase == "Healthy"
    w.set_image("app:2")
    return w


def test_step_analysis_blocks_until_successful() -> None:
    w = canary_world([{"setWeight": 25}, {"analysis": ANALYSIS}, {"setWeight": 50}])
    w.run()
    creates = [a for p in w.history for a in p.actions if isinstance(a, CreateAnalysisRun)]
    assert [(c.kind, c.step_index, c.field) for c in creates] == [
        ("step", 1, "spec.strategy.canary.steps[1].analysis")]
    assert w.status.current_step_index == 1
    assert w.status.phase == "Progressing"
    assert "Step 2/3" in w.status.message
    w.run()
    assert len(w.runs) == 1, "the run is created once"
    w.finish_runs("Successful")
    w.run()
    assert w.status.phase == "Healthy"
    assert w.status.stable_rs == w.status.current_pod_hash


def test_failed_step_analysis_aborts_with_the_runs_message() -> None:
    w = canary_world([{"setWeight": 50}, {"analysis": ANALYSIS}, {"setWeight": 75}])
    old = w.status.stable_rs
    w.run()
    message = 'metric "error-rate" failed: value [0.12] does not satisfy "result[0] < 0.05"'
    w.finish_runs("Failed", message=message)
    result = w.step()
    assert w.status.abort is True
    assert w.status.phase == "Degraded"
    assert message in w.status.message
    assert "error-rate" in (w.status.abort_message or "")
    # Stable first, in the very pass that saw the failure.
    assert any(getattr(a, "replicas", None) == 4 and getattr(a, "name", "").endswith(old or "")
               for a in result.actions)
    w.run()
    assert w.sizes()[old or ""] == 4
    assert w.sizes()[w.status.current_pod_hash or ""] == 0
    assert w.selector("canary") == old


def test_error_run_aborts_too() -> None:
    w = canary_world([{"analysis": ANALYSIS}])
    w.run()
    w.finish_runs("Error", message="prometheus unreachable (5 consecutive errors)")
    w.run()
    assert w.status.phase == "Degraded" and w.status.abort


def test_inconclusive_pauses_until_promoted() -> None:
    w = canary_world([{"setWeight": 25}, {"analysis": ANALYSIS}, {"setWeight": 50}])
    w.run()
    w.finish_runs("Inconclusive", message="no data")
    w.run()
    assert w.status.phase == "Paused"
    assert [p.reason for p in w.status.pause_conditions or []] == ["InconclusiveAnalysisRun"]
    assert "promote or abort" in w.status.message
    w.edit_status(current_step_index=2, pause_conditions=None)  # promote
    w.run()
    assert w.status.phase == "Healthy"


def test_retry_after_failed_analysis_measures_afresh() -> None:
    w = canary_world([{"analysis": ANALYSIS}])
    w.run()
    w.finish_runs("Failed", message="bad")
    w.run()
    assert w.status.abort and w.status.analysis_attempt == 1
    w.edit_status(abort=None, abort_message=None, aborted_at=None, current_step_index=0)
    w.run()
    running = [r for r in w.runs.values() if r.phase == "Running"]
    assert [r.attempt for r in running] == [1]
    assert w.status.phase == "Progressing"
    w.finish_runs("Successful")
    w.run()
    assert w.status.phase == "Healthy"


def test_background_analysis_aborts_at_any_step_and_is_terminated_on_success() -> None:
    steps = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}]
    w = canary_world(steps, analysis={**ANALYSIS, "startingStep": 1})
    w.step()
    assert not w.runs, "not before startingStep"
    w.run()
    assert [r.kind for r in w.runs.values()] == ["background"]
    w.finish_runs("Failed", message="latency p99 900ms > 500ms")
    w.run()
    assert w.status.phase == "Degraded"
    assert "latency" in w.status.message

    ok = canary_world(steps, analysis=ANALYSIS)
    ok.run()
    ok.edit_status(current_step_index=2, pause_conditions=None)
    ok.run()
    assert ok.status.phase == "Healthy"
    terminated = [a for p in ok.history for a in p.actions if isinstance(a, TerminateAnalysisRun)]
    assert len(terminated) == 1


def test_missing_template_is_invalid_spec_naming_the_field() -> None:
    w = canary_world([{"analysis": ANALYSIS}])
    w.analysis_problems["spec.strategy.canary.steps[0].analysis.templates[0]"] = \
        'AnalysisTemplate "success-rate" not found'
    result = w.step()
    assert result.status.phase == "Degraded"
    assert "steps[0].analysis.templates[0]" in result.status.message
    assert result.actions == ()


def bg_world(**bg: Any) -> World:
    w = World(blue_green_spec(**bg))
    w.run()
    w.set_image("app:2")
    return w


def test_pre_promotion_analysis_blocks_the_switch() -> None:
    w = bg_world(prePromotionAnalysis=ANALYSIS)
    old = w.status.stable_rs
    w.run()
    assert w.selector("active") == old
    assert [r.kind for r in w.runs.values()] == ["prePromotion"]
    w.finish_runs("Successful")
    w.run()
    assert w.selector("active") == w.status.current_pod_hash
    assert w.status.phase == "Healthy"


def test_pre_promotion_failure_aborts_without_switching() -> None:
    w = bg_world(prePromotionAnalysis=ANALYSIS)
    old = w.status.stable_rs
    w.run()
    w.finish_runs("Failed", message="bad")
    w.run()
    assert w.status.phase == "Degraded"
    assert w.selector("active") == old and w.selector("preview") == old


def test_post_promotion_failure_switches_back() -> None:
    w = bg_world(postPromotionAnalysis=ANALYSIS)
    old = w.status.stable_rs
    new = w.status.current_pod_hash
    w.run()
    new = w.status.current_pod_hash
    assert w.selector("active") == new, "switched before the post-promotion verdict"
    assert w.status.stable_rs == old, "not stable until the analysis passes"
    assert w.sizes()[old or ""] == 3
    w.finish_runs("Failed", message="errors after switch")
    w.run()
    assert w.status.phase == "Degraded"
    assert w.selector("active") == old


def test_post_promotion_success_marks_stable() -> None:
    w = bg_world(postPromotionAnalysis=ANALYSIS)
    w.run()
    w.finish_runs("Successful")
    w.run()
    assert w.status.phase == "Healthy"
    assert w.status.stable_rs == w.status.current_pod_hash


def test_aborted_status_shows_the_failed_run_not_a_stale_running_one() -> None:
    w = canary_world([{"setWeight": 50}, {"analysis": ANALYSIS}])
    w.run()
    assert w.status.canary is not None
    running = w.status.canary.current_step_analysis_run_status
    assert running is not None and running.status == "Running"
    w.finish_runs("Failed", message="bad")
    w.run()
    shown = w.status.canary.current_step_analysis_run_status
    assert shown is not None and shown.status == "Failed" and shown.message == "bad"
