"""After a status write, no pass plans from the body it replaced: the echo is waited for
until the watch shows it (bounded: then one GET), and a write whose outcome is unknown
(5xx, a lost reply) is settled by the watch or one GET (controller/echoes.py)."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import httpx
import pytest

from rollouts.controller.config import OperatorConfig
from rollouts.controller.echoes import ECHO_WAIT, NO_ECHO, look, outcome_unknown, read_retry_in
from rollouts.controller.reconciler import Reconciler
from rollouts.controller.runtime import Runtime
from rollouts.errors import ConflictError, KubeError, NotFoundError
from tests.unit.test_execute import Recorder, rollout_body, svc_body
from tests.unit.test_reconcile import Cluster

T0 = dt.datetime(2026, 12, 5, 8, 0, tzinfo=dt.UTC)
ROLLOUT = "/apis/rollouts.dev/v1alpha1/namespaces/shop/rollouts/web"
STATUS = ROLLOUT + "/status"
SERVICES = {("shop", name): [svc_body(name, {"app": "web"}, "1")]
            for name in ("web", "web-canary")}


def status_reply(code: int, reason: str) -> tuple[int, dict[str, Any]]:
    return code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                  "reason": reason, "code": code, "message": "whatever it says"}


class Clock:
    """The reconciler's clock, moved by the test."""

    def __init__(self) -> None:
        self.at = T0

    def now(self) -> dt.datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += dt.timedelta(seconds=seconds)

    def at_offset(self, seconds: float) -> None:
        self.at = T0 + dt.timedelta(seconds=seconds)


def written(rec: Recorder, body: dict[str, Any], version: str) -> dict[str, Any]:
    """`body` as the server has it after the last status PUT: that status, `version`."""
    status = [b for m, p, _, b in rec.requests if m == "PUT"][-1]["status"]
    return {**copy.deepcopy(body), "status": status,
            "metadata": {**body["metadata"], "resourceVersion": version}}


class Notifier:
    """Just enough of notifications.delivery's notifier: records what is submitted."""

    def __init__(self) -> None:
        self.submitted: list[Any] = []

    def annotate(self, key: Any, old: Any, new: Any, annotations: Any, now: Any) -> Any:
        return new

    def submit(self, key: Any, status: Any) -> None:
        self.submitted.append(status)


def reconciler_of(client: Any, clock: Clock | None = None) -> Reconciler:
    """The Rollout shop/web's reconciler on `client` (the test's clock, if given)."""
    runtime = Runtime(client=client, providers=None)  # type: ignore[arg-type]
    config = OperatorConfig() if clock is None else OperatorConfig(clock=clock)
    return Reconciler(config, runtime, ("shop", "web"))


def methods(rec: Recorder) -> list[str]:
    return [m for m, *_ in rec.requests]


@pytest.mark.parametrize(("exc", "unknown"), [
    (KubeError(500, "InternalError", "x"), True),
    (KubeError(504, "Timeout", "x"), True),
    (KubeError(503, "ServiceUnavailable", "x"), True),
    (httpx.ReadTimeout("x"), True),
    (httpx.RemoteProtocolError("x"), True),
    (httpx.WriteError("x"), True),
    (ConflictError(409, "Conflict", "x"), False),
    (KubeError(429, "TooManyRequests", "x"), False),
    (NotFoundError(404, "NotFound", "x"), False),
    (KubeError(422, "Invalid", "timeout"), False),  # never the message
    (httpx.ConnectError("x"), False),  # never sent
    (httpx.ConnectTimeout("x"), False),
    (ValueError("x"), False),
])
def test_which_failures_leave_a_writes_outcome_unknown(exc: BaseException,
                                                      unknown: bool) -> None:
    assert outcome_unknown(exc) is unknown


def test_look() -> None:
    assert look(NO_ECHO, "7", None, T0) == "watched"
    echo = NO_ECHO.after_write("7", T0, landed=True)
    assert look(echo, "8", None, T0) == "watched"
    assert look(echo, "7", None, T0) == ECHO_WAIT
    assert look(echo, "7", "7", T0 + dt.timedelta(seconds=ECHO_WAIT)) == "read"
    assert look(echo, "7", "9", T0) == "latest"  # read fresh since, not behind
    unsure = NO_ECHO.after_write("7", T0, landed=False)
    assert look(unsure, "7", "7", T0) == "read"
    assert look(unsure.read("7"), "7", "7", T0) == "watched"  # it did not land


async def test_the_echo_is_awaited_over_several_wakes_then_the_rollout_is_read_once() -> None:
    clock = Clock()
    cluster = Cluster.of_canary()
    rec = cluster.rec
    async with rec.client() as client:
        reconciler = reconciler_of(client, clock)
        stale = copy.deepcopy(cluster.body)
        await reconciler.reconcile(stale, *cluster.caches(), {}, ({}, {}))
        cluster.take_writes()  # on the server and in the other caches, not the Rollout's
        assert methods(rec).count("PUT") == 1
        sent = len(rec.requests)
        for seconds in (0.1, 1.0, 2.0):  # woken by other watch events: still waiting
            clock.advance(seconds)
            wait = await reconciler.reconcile(stale, *cluster.caches(), {}, ({}, {}))
            assert wait == pytest.approx(ECHO_WAIT - (clock.at - T0).total_seconds())
            assert len(rec.requests) == sent
        rec.replies[("GET", ROLLOUT)] = (200, cluster.body)
        clock.advance(ECHO_WAIT)
        await reconciler.reconcile(stale, *cluster.caches(), {}, ({}, {}))
        # Read once, planned from what was read: nothing planned twice (the held Events
        # came due meanwhile: they go out).
        assert [m for m, p, _, _ in rec.requests[sent:] if not p.endswith("/events")] == [
            "GET"]
        assert reconciler.parsed is not None
        assert reconciler.parsed.resource_version == cluster.body["metadata"]["resourceVersion"]
        # The watch is still behind: the body read is planned from, without another GET.
        cluster.pods_ready()
        await reconciler.reconcile(stale, *cluster.caches(), {}, ({}, {}))
        assert methods(rec)[sent:].count("GET") == 1
        assert any(p.endswith("/status") for _, p, _ in cluster.take_writes())


async def test_the_watch_showing_the_write_ends_the_wait_without_a_read() -> None:
    clock = Clock()
    rec = Recorder()
    body = rollout_body(status={})
    async with rec.client() as client:
        reconciler = reconciler_of(client, clock)
        await reconciler.reconcile(body, {}, SERVICES, {}, ({}, {}))
        clock.advance(0.5)
        await reconciler.reconcile(written(rec, body, "43"), {}, SERVICES, {}, ({}, {}))
    assert "GET" not in methods(rec)
    assert reconciler.parsed is not None and reconciler.parsed.resource_version == "43"


@pytest.mark.parametrize("landed", [True, False])
async def test_a_status_write_of_unknown_outcome_is_settled_by_one_read(landed: bool) -> None:
    """A 504 on the status PUT: the next pass reads the Rollout. Landed: nothing is planned
    twice and the pass's held Events are kept; lost: the status is planned again."""
    clock = Clock()
    cluster = Cluster.of_canary()
    rec = cluster.rec
    rec.replies[("PUT", STATUS)] = status_reply(504, "Timeout")
    notifier = Notifier()
    async with rec.client() as client:
        reconciler = reconciler_of(client, clock)
        reconciler.runtime.notifier = notifier  # type: ignore[assignment]
        stale = copy.deepcopy(cluster.body)
        with pytest.raises(KubeError):
            await reconciler.reconcile(stale, *cluster.caches(), {}, ({}, {}))
        assert reconciler.unsure is not None and not reconciler.held.events
        assert notifier.submitted == []  # not known to be written
        cluster.take_writes()
        del rec.replies[("PUT", STATUS)]
        rec.replies[("GET", ROLLOUT)] = (200, cluster.body if landed else stale)
        clock.advance(1.0)
        sent = len(rec.requests)
        await reconciler.reconcile(stale, *cluster.caches(), {}, ({}, {}))  # watch: behind
        after = methods(rec)[sent:]
        assert after == (["GET"] if landed else ["GET", "PUT"])
        assert reconciler.unsure is None
        assert reconciler.held.events  # the new revision's Events: held, not lost
        # Its notifications go out when the status is known to be written.
        assert notifier.submitted and notifier.submitted[-1].phase == "Progressing"
        if landed:  # the watch still behind: planned from the body read, nothing written
            sent = len(rec.requests)
            clock.advance(0.1)
            await reconciler.reconcile(stale, *cluster.caches(), {}, ({}, {}))
            assert methods(rec)[sent:] == []


@pytest.mark.parametrize(("code", "reason"), [(409, "Conflict"), (429, "TooManyRequests")])
async def test_a_write_known_not_to_have_landed_reads_nothing(code: int, reason: str) -> None:
    rec = Recorder({("PUT", STATUS): status_reply(code, reason)})
    body = rollout_body(status={})
    async with rec.client() as client:
        reconciler = reconciler_of(client)
        with pytest.raises(KubeError):
            await reconciler.reconcile(body, {}, SERVICES, {}, ({}, {}))
        del rec.replies[("PUT", STATUS)]
        await reconciler.reconcile(body, {}, SERVICES, {}, ({}, {}))
    assert "GET" not in methods(rec)
    assert methods(rec).count("PUT") == 2  # planned again from the watched body


async def test_a_rollout_gone_when_read_ends_the_pass() -> None:
    clock = Clock()
    rec = Recorder({("PUT", STATUS): status_reply(500, "InternalError"),
                    ("GET", ROLLOUT): status_reply(404, "NotFound")})
    body = rollout_body(status={})
    async with rec.client() as client:
        reconciler = reconciler_of(client, clock)
        with pytest.raises(KubeError):
            await reconciler.reconcile(body, {}, SERVICES, {}, ({}, {}))
        assert await reconciler.reconcile(body, {}, SERVICES, {}, ({}, {})) is None
    assert methods(rec).count("PUT") == 1


@pytest.mark.parametrize(("exc", "failures", "retry_in"), [
    (KubeError(503, "ServiceUnavailable", "x"), 1, 0.5),
    (KubeError(500, "InternalError", "x"), 2, 1.0),
    (KubeError(429, "TooManyRequests", "x"), 3, 2.0),
    (httpx.ReadTimeout("x"), 4, 4.0),
    (httpx.ConnectError("x"), 9, ECHO_WAIT),  # capped
    (KubeError(403, "Forbidden", "x"), 1, None),  # fails the pass, as any other failure
    (KubeError(400, "BadRequest", "timeout"), 1, None),  # never the message
    (ValueError("x"), 1, None),
])
def test_when_a_failed_read_is_tried_again(exc: BaseException, failures: int,
                                          retry_in: float | None) -> None:
    assert read_retry_in(exc, failures) == retry_in


async def test_a_failed_read_is_retried_soon_without_failing_the_pass() -> None:
    """The GET that settles a write of unknown outcome fails (503): the pass does not fail
    (the loop's error backoff grows to minutes), it asks to be run again soon, doubling
    the wait while the read keeps failing; the next read that succeeds plans on."""
    clock = Clock()
    rec = Recorder({("PUT", STATUS): status_reply(500, "InternalError"),
                    ("GET", ROLLOUT): status_reply(503, "ServiceUnavailable")})
    body = rollout_body(status={})
    async with rec.client() as client:
        reconciler = reconciler_of(client, clock)
        with pytest.raises(KubeError):
            await reconciler.reconcile(body, {}, SERVICES, {}, ({}, {}))
        waits = []
        for _ in range(3):
            clock.advance(0.5)
            waits.append(await reconciler.reconcile(body, {}, SERVICES, {}, ({}, {})))
        assert waits == [0.5, 1.0, 2.0]
        assert methods(rec).count("PUT") == 1  # nothing planned from the stale body
        rec.replies[("GET", ROLLOUT)] = (200, body)  # the write did not land
        del rec.replies[("PUT", STATUS)]
        clock.advance(2.0)
        await reconciler.reconcile(body, {}, SERVICES, {}, ({}, {}))
        assert reconciler.read_failures == 0
    assert methods(rec).count("GET") == 4
    assert methods(rec).count("PUT") == 2  # planned again from the body read


async def test_a_forbidden_read_fails_the_pass() -> None:
    clock = Clock()
    rec = Recorder({("PUT", STATUS): status_reply(500, "InternalError"),
                    ("GET", ROLLOUT): status_reply(403, "Forbidden")})
    body = rollout_body(status={})
    async with rec.client() as client:
        reconciler = reconciler_of(client, clock)
        with pytest.raises(KubeError):
            await reconciler.reconcile(body, {}, SERVICES, {}, ({}, {}))
        with pytest.raises(KubeError) as raised:
            await reconciler.reconcile(body, {}, SERVICES, {}, ({}, {}))
        assert raised.value.status == 403
