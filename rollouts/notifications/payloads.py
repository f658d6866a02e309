"""The bodies POSTed for one notification record (pure).

Generic webhook (`kind: webhook`), a documented JSON object, version 1:

    {
      "apiVersion": "notifications.rollouts.dev/v1",
      "id": "9f2c0d4e5a6b7c8d",          # the same on a retried delivery: deduplicate on it
      "trigger": "on-rollout-aborted",
      "time": "2026-12-04T20:01:02Z",    # when the controller saw the transition
      "rollout": {"namespace": "shop", "name": "checkout"},
      "revision": "6f9d7c5b8",           # pod-template hash of the revision rolling out
      "step": 2,                         # status.currentStepIndex (null for blue-green)
      "phase": "Degraded",
      "message": "Metric error-rate failed ...",
      "recipient": ""                    # the subscription's value, if any
    }

Slack (`kind: slack`): an incoming-webhook message (`text` plus one attachment with the
facts); Microsoft Teams (`kind: teams`): a connector MessageCard.
"""

from __future__ import annotations

from typing import Any, Final

from rollouts.models.rollout import NotificationRecord
from rollouts.notifications import triggers

API_VERSION: Final = "notifications.rollouts.dev/v1"

_TITLES: Final = {
    triggers.STARTED: "rollout started",
    triggers.STEP_COMPLETED: "step completed",
    triggers.PAUSED: "rollout paused",
    triggers.ANALYSIS_FAILED: "analysis failed",
    triggers.ABORTED: "rollout aborted",
    triggers.COMPLETED: "rollout completed",
    triggers.DEGRADED: "rollout degraded",
}
_BAD: Final = frozenset({triggers.ANALYSIS_FAILED, triggers.ABORTED, triggers.DEGRADED})
# Attachment / card colours: red for trouble, green for done, blue for everything else.
_COLOURS: Final = {"bad": "#d93f0b", "good": "#2eb67d", "info": "#1f6feb"}


def payload(kind: str, namespace: str, name: str, record: NotificationRecord) -> dict[str, Any]:
    builder = {"webhook": webhook, "slack": slack, "teams": teams}[kind]
    return builder(namespace, name, record)


def webhook(namespace: str, name: str, record: NotificationRecord) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "id": record.id,
        "trigger": record.trigger,
        "time": record.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "rollout": {"namespace": namespace, "name": name},
        "revision": record.revision,
        "step": record.step,
        "phase": record.phase,
        "message": record.message,
        "recipient": record.recipient,
    }


def summary(namespace: str, name: str, record: NotificationRecord) -> str:
    title = _TITLES.get(record.trigger, record.trigger)
    return f"Rollout {namespace}/{name}: {title}"


def facts(record: NotificationRecord) -> list[tuple[str, str]]:
    found = [("Revision", record.revision), ("Step", None if record.step is None
                                              else str(record.step)),
             ("Phase", record.phase), ("Message", record.message or None)]
    return [(label, value) for label, value in found if value is not None]


def slack(namespace: str, name: str, record: NotificationRecord) -> dict[str, Any]:
    body: dict[str, Any] = {
        "text": summary(namespace, name, record),
        "attachments": [{
            "color": _COLOURS[_tone(record)],
            "fields": [{"title": label, "value": value, "short": label != "Message"}
                       for label, value in facts(record)],
        }],
    }
    if record.recipient:
        body["channel"] = record.recipient
    return body


def teams(namespace: str, name: str, record: NotificationRecord) -> dict[str, Any]:
    return {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": summary(namespace, name, record),
        "title": summary(namespace, name, record),
        "themeColor": _COLOURS[_tone(record)].lstrip("#"),
        "sections": [{"facts": [{"name": label, "value": value}
                                for label, value in facts(record)]}],
    }


def _tone(record: NotificationRecord) -> str:
    if record.trigger in _BAD:
        return "bad"
    return "good" if record.trigger == triggers.COMPLETED else "info"
