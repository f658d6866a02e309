"""The delivery queue against real HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator

import pytest

from rollouts.models.rollout import RolloutStatus
from rollouts.notifications import triggers as t
from rollouts.notifications.config import Services, parse_services
from rollouts.notifications.delivery import DeliveryPolicy, Notifier
from rollouts.notifications.subscriptions import pending
from tests.notifications.receiver import (
    Receiver,
    always,
    closed_port,
    failing_first,
    hanging_first,
)

NOW = dt.datetime(2026, 12, 4, 20, 0, tzinfo=dt.UTC)
KEY = ("shop", "checkout")
SECRET_PATH = "/hooks/T000/B000/s3cr3tpath"
TOKEN = "Bearer t0k3n-value"
OLD = RolloutStatus(phase="Paused", observed_pod_hash="b", current_step_index=1)
ABORTED = RolloutStatus(phase="Degraded", observed_pod_hash="b", current_step_index=1,
                        abort=True, message="aborted by operator")
ANNOTATIONS = {"notifications.argoproj.io/subscribe.on-rollout-aborted.audit": ""}
FAST = DeliveryPolicy(attempts=3, backoff=0.01, max_backoff=0.02, timeout=0.5)


class Harness:
    """A Notifier whose services point at `url`, recording wake-ups and metrics."""

    def __init__(self, url: str, policy: DeliveryPolicy = FAST) -> None:
        self.url = url
        self.woken: list[tuple[str, str]] = []
        self.counted: list[tuple[str, str, str]] = []
        self.notifier = Notifier(self.services, self.woken.append, policy=policy,
                                 on_delivery=lambda *c: self.counted.append(c))

    async def services(self) -> Services:
        return parse_services(
            {"service.webhook.audit": "url: $url\nheaders:\n  Authorization: $token\n"},
            {"url": self.url + SECRET_PATH, "token": TOKEN})

    async def one_pass(self, old: RolloutStatus, new: RolloutStatus) -> RolloutStatus:
        """What the operator does in a pass: annotate, (write), submit."""
        status = self.notifier.annotate(KEY, old, new, ANNOTATIONS, NOW)
        self.notifier.submit(KEY, status)
        return status


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


async def deliver(harness: Harness) -> RolloutStatus:
    """Abort, deliver, and write the outcome back (the pass the wake-up causes)."""
    written = await harness.one_pass(OLD, ABORTED)
    assert [r.state for r in written.notifications or []] == ["Pending"]
    await harness.notifier.drain()
    assert harness.woken == [KEY]
    return await harness.one_pass(written, written)


async def test_delivered_once_and_recorded_as_sent(receiver: Receiver) -> None:
    h = Harness(receiver.url)
    final = await deliver(h)
    (record,) = final.notifications or []
    assert (record.state, record.attempts, record.error) == ("Sent", 1, None)
    ((path, headers, body),) = receiver.requests
    assert path == SECRET_PATH and headers["Authorization"] == TOKEN
    assert body["trigger"] == t.ABORTED and body["id"] == record.id
    assert body["rollout"] == {"namespace": "shop", "name": "checkout"}
    assert h.counted == [("webhook", t.ABORTED, "sent")]
    # Later passes send nothing more.
    await h.one_pass(final, final)
    await h.notifier.drain()
    assert len(receiver.requests) == 1
    await h.notifier.aclose()


async def test_a_server_error_is_retried(receiver: Receiver) -> None:
    receiver.behaviour = failing_first(2, 503)
    h = Harness(receiver.url)
    (record,) = (await deliver(h)).notifications or []
    assert (record.state, record.attempts) == ("Sent", 3)
    assert len(receiver.requests) == 3
    await h.notifier.aclose()


async def test_retries_back_off_doubling_up_to_the_cap(receiver: Receiver,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    receiver.behaviour = always(503)
    h = Harness(receiver.url, DeliveryPolicy(attempts=5, backoff=0.01, max_backoff=0.03,
                                             timeout=0.5))
    (record,) = (await deliver(h)).notifications or []
    assert (record.state, record.attempts, record.error) == ("Failed", 5, "HTTP 503")
    waits = [r.__dict__["retry_in"] for r in caplog.records
             if r.getMessage() == "notification not delivered; retrying"]
    assert waits == [0.01, 0.02, 0.03, 0.03]
    await h.notifier.aclose()


async def test_a_client_error_is_not_retried(receiver: Receiver) -> None:
    receiver.behaviour = always(404)
    h = Harness(receiver.url)
    (record,) = (await deliver(h)).notifications or []
    assert (record.state, record.attempts, record.error) == ("Failed", 1, "HTTP 404")
    assert h.counted == [("webhook", t.ABORTED, "failed")]
    await h.notifier.aclose()


async def test_a_slow_receiver_times_out_and_is_retried(receiver: Receiver) -> None:
    receiver.behaviour = hanging_first(1)
    h = Harness(receiver.url, DeliveryPolicy(attempts=3, backoff=0.01, timeout=0.2))
    (record,) = (await deliver(h)).notifications or []
    assert (record.state, record.attempts) == ("Sent", 2)
    await h.notifier.aclose()


async def test_a_slow_receiver_does_not_hold_up_the_pass(receiver: Receiver) -> None:
    receiver.behaviour = hanging_first(1)
    h = Harness(receiver.url, DeliveryPolicy(attempts=2, backoff=0.01, timeout=30))
    written = await h.one_pass(OLD, ABORTED)  # returns with the delivery still in flight
    assert pending(written) and h.woken == []
    await h.notifier.aclose()  # cancels the delivery; the record stays Pending in status


async def test_a_receiver_that_is_down_fails_after_the_attempts(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    h = Harness(f"http://127.0.0.1:{closed_port()}")
    (record,) = (await deliver(h)).notifications or []
    assert (record.state, record.attempts) == ("Failed", 3)
    assert record.error == "request failed (ConnectError)"
    everything = caplog.text + repr([r.__dict__ for r in caplog.records])
    everything += str(record.model_dump())
    assert "s3cr3tpath" not in everything and "t0k3n" not in everything
    assert "notification failed" in caplog.text
    await h.notifier.aclose()


async def test_an_unknown_service_fails_with_a_reason(receiver: Receiver) -> None:
    h = Harness(receiver.url)
    annotations = {"notifications.argoproj.io/subscribe.on-rollout-aborted.nobody": ""}
    written = h.notifier.annotate(KEY, OLD, ABORTED, annotations, NOW)
    h.notifier.submit(KEY, written)
    await h.notifier.drain()
    (record,) = h.notifier.annotate(KEY, written, written, annotations, NOW).notifications or []
    assert record.state == "Failed" and "no service 'nobody'" in (record.error or "")
    assert receiver.requests == []
    await h.notifier.aclose()


async def test_restart_delivers_what_is_pending_and_nothing_else(receiver: Receiver) -> None:
    # The first controller wrote the Pending record, then died before delivering it.
    first = Harness(receiver.url)
    written = first.notifier.annotate(KEY, OLD, ABORTED, ANNOTATIONS, NOW)
    await first.notifier.aclose()
    # The second one's first pass starts from the written status: the transition does not
    # fire again, the Pending record is delivered once.
    second = Harness(receiver.url)
    again = await second.one_pass(written, written)
    assert [r.id for r in again.notifications or []] == [r.id for r in pending(written)]
    await second.notifier.drain()
    final = await second.one_pass(again, again)
    assert [r.state for r in final.notifications or []] == ["Sent"]
    await second.notifier.aclose()
    # A third controller finds nothing to send.
    third = Harness(receiver.url)
    await third.one_pass(final, final)
    await third.notifier.drain()
    assert len(receiver.requests) == 1
    await third.notifier.aclose()


async def test_a_record_whose_status_write_failed_is_not_sent(receiver: Receiver) -> None:
    h = Harness(receiver.url)
    h.notifier.annotate(KEY, OLD, ABORTED, ANNOTATIONS, NOW)  # the write then conflicts
    await h.notifier.drain()
    assert receiver.requests == []
    await h.notifier.aclose()


async def test_a_loop_that_restarts_in_process_does_not_send_twice(receiver: Receiver) -> None:
    # kopf stops a Rollout's loop when this replica stands by and starts it again later.
    h = Harness(receiver.url)
    written = await h.one_pass(OLD, ABORTED)
    h.notifier.forget(KEY)  # the loop ends while the delivery is in flight
    await h.one_pass(written, written)  # and starts again from the same status
    await h.notifier.drain()
    final = await h.one_pass(written, written)
    assert [r.state for r in final.notifications or []] == ["Sent"]
    assert len(receiver.requests) == 1
    h.notifier.forget(KEY)
    assert final.notifications and h.notifier.annotate(KEY, final, final, {}, NOW) == final
    await h.notifier.aclose()
