"""The delivery queue: POSTs notification records in the background, with retries.

The reconcile pass only hands records over (`submit`) and reads outcomes back (`annotate`);
it never waits for a receiver. Each record is delivered by its own task (at most
`concurrency` at once), retried with exponential backoff on network errors, timeouts,
HTTP 429 and 5xx, and given up on other 4xx answers, after `attempts` tries, or when its
service is not configured. The outcome wakes the Rollout, whose next pass writes it into
`status.notifications` (see `subscriptions`).

Delivery is at least once: a controller killed after a receiver accepted a record but
before the Sent state was written sends it once more after the restart (receivers can
deduplicate on the payload's `id`). Nothing Sent or Failed in status is ever sent again.

Secrets: URLs and header values are never logged or recorded; a failure is described by
its HTTP status code or error class only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from rollouts.errors import NotFoundError
from rollouts.kube.client import KubeClient
from rollouts.models.rollout import NotificationRecord, RolloutStatus
from rollouts.notifications.config import Service, ServiceError, Services, parse_services
from rollouts.notifications.payloads import payload
from rollouts.notifications.subscriptions import Outcome, pending, with_notifications

log = logging.getLogger("rollouts.notifications")

Key = tuple[str, str]  # (namespace, name) of a Rollout
ReadServices = Callable[[], Awaitable[Services]]
# (service kind, trigger, result) for each finished delivery: "sent" or "failed".
OnDelivery = Callable[[str, str, str], None]


@dataclass(frozen=True)
class DeliveryPolicy:
    attempts: int = 5
    backoff: float = 2.0  # seconds before the first retry; doubles after each
    max_backoff: float = 60.0
    timeout: float = 10.0  # seconds per request
    concurrency: int = 8


class _Retry(Exception):
    """An attempt that may succeed if tried again; the message is safe to record."""


class _GiveUp(Exception):
    """An attempt that will not succeed if tried again; the message is safe to record."""


class Notifier:
    """One per controller process (kept in the operator's runtime, not module state)."""

    def __init__(self, read_services: ReadServices, wake: Callable[[Key], None], *,
                 policy: DeliveryPolicy | None = None, on_delivery: OnDelivery | None = None,
                 http: httpx.AsyncClient | None = None) -> None:
        self.policy = policy or DeliveryPolicy()
        self._read_services = read_services
        self._wake = wake
        self._on_delivery = on_delivery
        self._http = http or httpx.AsyncClient(timeout=self.policy.timeout,
                                               follow_redirects=False)
        self._slots = asyncio.Semaphore(self.policy.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._submitted: dict[Key, set[str]] = {}
        self._outcomes: dict[Key, dict[str, Outcome]] = {}

    # --- the reconcile pass's side ----------------------------------------------------------

    def annotate(self, key: Key, old: RolloutStatus, new: RolloutStatus,
                 annotations: Mapping[str, str] | None, now: Any) -> RolloutStatus:
        """`new` with this pass's notification records: outcomes of deliveries folded in,
        a Pending record for each event the transition fires (pure but for forgetting the
        outcomes that `old` already shows)."""
        outcomes = self._outcomes.get(key, {})
        for record in old.notifications or ():
            if record.state != "Pending":
                outcomes.pop(record.id, None)  # written: no longer needed
        return with_notifications(old, new, annotations, now, list(outcomes.values()))

    def submit(self, key: Key, status: RolloutStatus) -> None:
        """Deliver the Pending records of a status that has been written (never before:
        a record whose status write failed is fired again, under another id)."""
        seen = self._submitted.setdefault(key, set())
        for record in pending(status):
            if record.id not in seen and record.id not in self._outcomes.get(key, {}):
                seen.add(record.id)
                task = asyncio.create_task(self._deliver(key, record), name=_task_name(key))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def forget(self, key: Key) -> None:
        """The Rollout's reconcile loop ended (deleted, or this replica stands by). What is
        submitted or finished is kept while its deliveries run or their outcomes are not
        written, so a loop that starts again neither sends a record twice nor loses an
        outcome; a deleted Rollout's entries go once nothing is left in flight."""
        if not self._outcomes.get(key) and not any(
                not task.done() for task in self._tasks if task.get_name() == _task_name(key)):
            self._submitted.pop(key, None)
            self._outcomes.pop(key, None)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._http.aclose()

    async def drain(self) -> None:
        """Wait for the deliveries in flight (tests, and a clean shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- the background side ----------------------------------------------------------------

    async def _deliver(self, key: Key, record: NotificationRecord) -> None:
        names = {"rollout": f"{key[0]}/{key[1]}", "trigger": record.trigger,
                 "service": record.service, "notification": record.id}
        attempts, error, kind = 0, None, "unknown"
        async with self._slots:
            for attempts in range(1, self.policy.attempts + 1):
                try:
                    service = (await self._read_services()).get(record.service)
                    kind = service.kind
                    await self._post(service, key, record)
                    error = None
                    break
                except (_GiveUp, ServiceError) as exc:
                    error = str(exc)
                    break
                except _Retry as exc:
                    error = str(exc)
                except Exception as exc:  # reading the ConfigMap/Secret failed
                    error = f"reading the notification configuration: {type(exc).__name__}"
                if attempts < self.policy.attempts:
                    delay = min(self.policy.max_backoff,
                                self.policy.backoff * 2 ** (attempts - 1))
                    log.warning("notification not delivered; retrying",
                                extra={**names, "error": error, "attempt": attempts,
                                       "retry_in": delay})
                    await asyncio.sleep(delay)
        state = "Failed" if error else "Sent"
        if error:
            log.error("notification failed", extra={**names, "error": error,
                                                    "attempts": attempts})
        else:
            log.info("notification sent", extra={**names, "attempts": attempts})
        if self._on_delivery is not None:
            self._on_delivery(kind, record.trigger, state.lower())
        self._outcomes.setdefault(key, {})[record.id] = Outcome(record.id, state, attempts,
                                                                 error)
        self._wake(key)

    async def _post(self, service: Service, key: Key, record: NotificationRecord) -> None:
        body = payload(service.kind, key[0], key[1], record)
        try:
            response = await self._http.post(service.url, json=body,
                                              headers=dict(service.headers))
        except httpx.TimeoutException as exc:
            raise _Retry(f"timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise _Retry(f"request failed ({type(exc).__name__})") from None
        code = response.status_code
        if code < 300:
            return
        if code == 429 or code >= 500:
            raise _Retry(f"HTTP {code}")
        raise _GiveUp(f"HTTP {code}")


def _task_name(key: Key) -> str:
    return f"notify:{key[0]}/{key[1]}"


@dataclass(frozen=True)
class ConfigSource:
    """Where the services are: a ConfigMap and (optionally) a Secret, read on every attempt
    so that a corrected configuration takes effect without a restart."""

    namespace: str
    config_map: str
    secret: str | None = None

    async def read(self, client: KubeClient) -> Services:
        try:
            config = await client.get("", "v1", "configmaps", self.namespace, self.config_map)
        except NotFoundError:
            return Services()
        secret: Mapping[str, Any] = {}
        if self.secret:
            with contextlib.suppress(NotFoundError):
                secret = await client.get("", "v1", "secrets", self.namespace, self.secret)
        return parse_services(config.get("data"), secret_values(secret.get("data")))


def secret_values(data: Mapping[str, Any] | None) -> dict[str, str]:
    """A Secret's `data`, decoded (the API server folds `stringData` into it)."""
    return {str(k): base64.b64decode(str(v)).decode("utf-8", "replace")
            for k, v in (data or {}).items()}
