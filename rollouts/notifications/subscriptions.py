"""Who is subscribed to what, and the delivery records kept in `status.notifications`.

A subscription is an annotation on the Rollout, in Argo Rollouts' spelling or ours:

    notifications.argoproj.io/subscribe.<trigger>.<service>: "<recipient>[;<recipient>...]"
    notifications.rollouts.dev/subscribe.<trigger>.<service>: "<recipient>[;...]"

The value names recipients (a Slack channel, for instance) and may be empty: a webhook
needs none. Annotations live in Git with the Rollout, so subscribing is a reviewed change.

Records: every event owed to a subscribed service becomes one record in the status the
planner writes for the pass that fired it (state Pending). The delivery queue sends it and
reports the outcome; the next pass writes Sent or Failed. The records, not the controller's
memory, say what was delivered, so a restarted controller sends what is still Pending and
nothing else. Recent finished records are kept (a short history for `kubectl get -o yaml`),
older ones dropped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from rollouts.models.rollout import NotificationRecord, RolloutStatus
from rollouts.notifications.triggers import ALIASES, TRIGGERS, Fired, fired

PREFIXES: Final = ("notifications.argoproj.io/subscribe.", "notifications.rollouts.dev/subscribe.")
# Finished records kept per Rollout (Pending ones are always kept).
HISTORY: Final = 10


@dataclass(frozen=True)
class Subscription:
    trigger: str
    service: str
    recipient: str = ""


@dataclass(frozen=True)
class Outcome:
    """What the delivery queue made of one record."""

    id: str
    state: str  # "Sent" or "Failed"
    attempts: int
    error: str | None = None


def subscriptions(annotations: Mapping[str, str] | None) -> list[Subscription]:
    """Every (trigger, service, recipient) the annotations ask for; unknown triggers are
    skipped (a typo must not stop the Rollout; `rollouts lint` is the place to catch it)."""
    found: set[Subscription] = set()
    for key, value in (annotations or {}).items():
        prefix = next((p for p in PREFIXES if key.startswith(p)), None)
        if prefix is None:
            continue
        trigger, _, service = key[len(prefix):].partition(".")
        trigger = ALIASES.get(trigger, trigger)
        if trigger not in TRIGGERS or not service:
            continue
        recipients = [r.strip() for r in str(value or "").replace(",", ";").split(";")]
        for recipient in [r for r in recipients if r] or [""]:
            found.add(Subscription(trigger, service, recipient))
    return sorted(found, key=lambda s: (TRIGGERS.index(s.trigger), s.service, s.recipient))


def record_id(event: Fired, subscription: Subscription, now: dt.datetime) -> str:
    """Stable for one event and one destination; differs for every other pair."""
    text = "|".join([event.trigger, event.revision or "", str(event.step), now.isoformat(),
                     subscription.service, subscription.recipient])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def with_notifications(old: RolloutStatus, new: RolloutStatus,
                       annotations: Mapping[str, str] | None, now: dt.datetime,
                       outcomes: Iterable[Outcome] = ()) -> RolloutStatus:
    """`new` with the records of `old` (outcomes applied) and one Pending record per event
    the transition fires and per subscription to it."""
    done = {outcome.id: outcome for outcome in outcomes}
    records = [_finished(record, done.get(record.id)) for record in old.notifications or ()]
    wanted = subscriptions(annotations)
    for event in fired(old, new):
        for sub in (s for s in wanted if s.trigger == event.trigger):
            records.append(NotificationRecord(
                id=record_id(event, sub, now), trigger=event.trigger, service=sub.service,
                recipient=sub.recipient, time=now, revision=event.revision, step=event.step,
                phase=event.phase, message=event.message))
    pending = [r for r in records if r.state == "Pending"]
    finished = [r for r in records if r.state != "Pending"][-HISTORY:]
    kept = [r for r in records if r in pending or r in finished]
    return new.model_copy(update={"notifications": kept or None})


def pending(status: RolloutStatus) -> list[NotificationRecord]:
    return [r for r in status.notifications or () if r.state == "Pending"]


def _finished(record: NotificationRecord, outcome: Outcome | None) -> NotificationRecord:
    if outcome is None or record.state != "Pending":
        return record
    return record.model_copy(update={"state": outcome.state, "attempts": outcome.attempts,
                                     "error": outcome.error})
