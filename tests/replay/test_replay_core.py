"""The replay walk with a scripted sampler (no Prometheus): the strategy's semantics."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from rollouts.analysis.providers.base import (
    ErrorReason,
    Measurement,
    MeasurementResult,
    ProviderError,
)
from rollouts.analysis.replay import ReplayInput, replay
from rollouts.models.analysis import Metric, load_analysis_template
from rollouts.models.rollout import parse_spec

START = datetime(2025, 1, 1, tzinfo=UTC)

TEMPLATE = load_analysis_template(
    yaml.safe_load("""
apiVersion: rollouts.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: rate}
spec:
  metrics:
    - name: rate
      interval: 1m
      count: 3
      successCondition: len(result) > 0 && result[0] >= 0.95
      failureCondition: len(result) > 0 && result[0] < 0.95
      provider:
        prometheus: {address: "http://p:9090", query: up}
""")
)


def given(steps: list[dict[str, Any]], background: bool = False) -> ReplayInput:
    canary: dict[str, Any] = {"steps": steps}
    if background:
        canary["analysis"] = {"templates": [{"templateName": "rate"}]}
    body = {
        "apiVersion": "rollouts.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "app", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}},
                         "spec": {"containers": [{"name": "a", "image": "a"}]}},
            "strategy": {"canary": canary},
        },
    }  # fmt: skip
    return ReplayInput(body, parse_spec(body["spec"]), {"rate": TEMPLATE}, {}, "c1", "s1")


def values(by_minute: Callable[[int], MeasurementResult]) -> Callable[[Metric, datetime], Any]:
    def sample(metric: Metric, at: datetime) -> MeasurementResult:
        return by_minute(int((at - START).total_seconds() // 60))

    return sample


def vector(value: float) -> Measurement:
    return Measurement([value], f"[{value}]", "vector")


ANALYSIS = {"analysis": {"templates": [{"templateName": "rate"}]}}


def go(steps: list[dict[str, Any]], sample: Any, minutes: int = 30, step: int = 60,
       background: bool = False) -> Any:  # fmt: skip
    return replay(given(steps, background), sample, start=START,
                  end=START + timedelta(minutes=minutes), step=timedelta(seconds=step))  # fmt: skip


def test_steps_run_in_order_and_a_passing_analysis_promotes() -> None:
    result = go([{"setWeight": 10}, {"pause": {"duration": "5m"}}, ANALYSIS],
                values(lambda m: vector(0.99)))  # fmt: skip
    assert result.outcome == "promoted"
    # Pause 0..5m, then 3 measurements at 5, 6, 7m: the 3rd completes the run.
    assert result.at == START + timedelta(minutes=7)
    measured = [e.at for e in result.events if e.kind == "measurement"]
    assert measured == [START + timedelta(minutes=m) for m in (5, 6, 7)]


def test_the_first_failing_measurement_aborts_at_its_step() -> None:
    result = go([{"setWeight": 10}, ANALYSIS, {"setWeight": 50}],
                values(lambda m: vector(0.99 if m < 1 else 0.5)))  # fmt: skip
    assert (result.outcome, result.step, result.at) == ("aborted", 1, START + timedelta(minutes=1))


def test_background_analysis_failing_aborts_during_a_pause() -> None:
    result = go([{"pause": {"duration": "10m"}}], values(lambda m: vector(0.99 if m < 2 else 0.1)),
                background=True)  # fmt: skip
    assert (result.outcome, result.step) == ("aborted", None)
    assert result.at == START + timedelta(minutes=2)  # the 3rd of count 3 fails
    assert "background analysis Failed" in result.message


def test_an_inconclusive_run_pauses_the_replay() -> None:
    empty = Measurement([], "[]", "vector")
    result = go([ANALYSIS], values(lambda m: empty))
    assert result.outcome == "paused"
    assert "Inconclusive" in result.message


def test_provider_errors_end_in_abort_after_the_consecutive_error_limit() -> None:
    down = ProviderError(ErrorReason.CONNECTION, "refused")
    result = go([ANALYSIS], values(lambda m: down), step=10)
    assert result.outcome == "aborted"
    # Errors retry after 10 s; the 5th in a row exceeds consecutiveErrorLimit 4.
    errors = [e for e in result.events if e.kind == "measurement"]
    assert len(errors) == 5 and all(e.phase == "Error" for e in errors)


def test_a_pause_without_duration_is_noted_and_passed() -> None:
    result = go([{"pause": {}}, {"setWeight": 100}], values(lambda m: vector(1.0)))
    assert result.outcome == "promoted" and result.at == START
    assert any(e.kind == "note" and "waits for a human" in e.message for e in result.events)


def test_a_step_longer_than_the_interval_skips_slots_like_a_late_controller() -> None:
    result = go([ANALYSIS], values(lambda m: vector(0.99)), step=150)
    measured = [e.at for e in result.events if e.kind == "measurement"]
    # Ticks at 0, 2.5, 5 min: slots 0, then the latest on the grid at or before the tick.
    assert measured == [START + timedelta(minutes=m) for m in (0, 2, 5)]


def test_undecided_when_the_window_ends_first() -> None:
    result = go([{"pause": {"duration": "1h"}}], values(lambda m: vector(1.0)), minutes=10)
    assert (result.outcome, result.at) == ("undecided", None)


@pytest.mark.parametrize("step", [0, -60])
def test_a_step_must_be_positive(step: int) -> None:
    with pytest.raises(ValueError, match="step must be positive"):
        go([ANALYSIS], values(lambda m: vector(1.0)), step=step)


def blue_green(strategy: dict[str, Any]) -> ReplayInput:
    base = given([])
    body = {**base.rollout, "spec": {**base.rollout["spec"], "strategy": {"blueGreen": {
        "activeService": "a", "previewService": "p", **strategy}}}}  # fmt: skip
    return ReplayInput(body, parse_spec(body["spec"]), {"rate": TEMPLATE}, {}, "c1", "s1")


def test_blue_green_promotes_after_auto_promotion_seconds_then_post_analysis_can_abort() -> None:
    analysis = {"templates": [{"templateName": "rate"}]}
    setup = blue_green({"autoPromotionSeconds": 120, "postPromotionAnalysis": analysis})
    result = replay(setup, values(lambda m: vector(0.99 if m < 3 else 0.5)), start=START,
                    end=START + timedelta(minutes=20), step=timedelta(minutes=1))  # fmt: skip
    switched = [e.at for e in result.events if e.kind == "step"]
    assert switched == [START + timedelta(minutes=2)]
    # postPromotion measures at 2, 3 (fails) minutes.
    assert (result.outcome, result.at) == ("aborted", START + timedelta(minutes=3))
    assert "postPromotion analysis Failed" in result.message


def test_blue_green_without_auto_promotion_is_noted_and_promoted_after_pre_analysis() -> None:
    setup = blue_green({"autoPromotionEnabled": False,
                        "prePromotionAnalysis": {"templates": [{"templateName": "rate"}]}})
    result = replay(setup, values(lambda m: vector(0.99)), start=START,
                    end=START + timedelta(minutes=20), step=timedelta(minutes=1))  # fmt: skip
    assert (result.outcome, result.at) == ("promoted", START + timedelta(minutes=2))
    assert any(e.kind == "note" and "a human promotes" in e.message for e in result.events)
