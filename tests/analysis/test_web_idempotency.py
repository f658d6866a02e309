"""A web measurement carries an Idempotency-Key naming the measurement (run, metric,
ordinal): taken again after its status write was lost, it sends the same key, so an endpoint
with side effects can tell the repeat; the next measurement sends another."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from rollouts.analysis.providers.base import ProviderContext
from rollouts.analysis.providers.job import MeasurementContext, RunRef
from rollouts.analysis.providers.web import IDEMPOTENCY_HEADER
from rollouts.analysis.run import measurement_index
from rollouts.models.analysis import MetricResult
from tests.analysis.test_web_provider import measure, metric

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
RUN = RunRef("web-abc-step-2", "shop", uid="3f1d-uid")


def context(result: MetricResult | None) -> MeasurementContext:
    """What the runner passes: the ordinal comes from the recorded status only."""
    return MeasurementContext.extend(ProviderContext(), RUN, NOW, measurement_index(result))


async def sent_key(ctx: ProviderContext, **web: object) -> str | None:
    _, recorder = await measure(httpx.Response(200, json={"ok": True}),
                                metric(method="POST", body="go", **web), ctx)
    return recorder.requests[0].headers.get(IDEMPOTENCY_HEADER)


async def test_a_retaken_measurement_sends_the_same_key_the_next_one_another() -> None:
    before = MetricResult(name="w", count=2)  # two measurements recorded
    first = await sent_key(context(before))
    # The write recording the third was lost to a kill: the status still says two.
    again = await sent_key(context(before))
    assert first == again == "3f1d-uid/w/3"
    after = MetricResult(name="w", count=3)
    assert await sent_key(context(after)) == "3f1d-uid/w/4"


async def test_the_metric_own_key_wins_and_no_run_sends_none() -> None:
    own = await sent_key(context(None), headers=[{"key": "idempotency-key", "value": "mine"}])
    assert own == "mine"
    assert await sent_key(ProviderContext()) is None
    no_uid = MeasurementContext.extend(ProviderContext(), RunRef("r", "ns"), NOW, 1)
    assert await sent_key(no_uid) == "ns/r/w/1"
