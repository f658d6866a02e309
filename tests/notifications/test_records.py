"""Subscriptions from annotations, delivery records, service configuration and payloads."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from rollouts.models.rollout import NotificationRecord, RolloutStatus
from rollouts.notifications import triggers as t
from rollouts.notifications.config import ServiceError, parse_services
from rollouts.notifications.payloads import payload
from rollouts.notifications.subscriptions import (
    HISTORY,
    Outcome,
    Subscription,
    pending,
    subscriptions,
    with_notifications,
)

NOW = dt.datetime(2026, 12, 4, 20, 0, tzinfo=dt.UTC)
OLD = RolloutStatus(phase="Paused", observed_pod_hash="b", current_step_index=1)
ABORTED = RolloutStatus(phase="Degraded", observed_pod_hash="b", current_step_index=1,
                        abort=True, message="aborted by operator")


def test_argo_and_own_annotations_are_both_read() -> None:
    subs = subscriptions({
        "notifications.argoproj.io/subscribe.on-rollout-aborted.slack": "#ops; #team",
        "notifications.rollouts.dev/subscribe.on-rollout-completed.audit": "",
        "notifications.argoproj.io/subscribe.on-rollout-updated.audit": "",  # Argo alias
        "notifications.argoproj.io/subscribe.on-no-such-trigger.slack": "",  # skipped
        "notifications.argoproj.io/subscribe.on-rollout-paused": "",  # no service: skipped
        "example.com/other": "x",
    })
    assert subs == [
        Subscription(t.STARTED, "audit"),
        Subscription(t.ABORTED, "slack", "#ops"),
        Subscription(t.ABORTED, "slack", "#team"),
        Subscription(t.COMPLETED, "audit"),
    ]


def test_a_transition_adds_one_pending_record_per_subscription() -> None:
    annotations = {"notifications.rollouts.dev/subscribe.on-rollout-aborted.audit": "",
                   "notifications.rollouts.dev/subscribe.on-rollout-degraded.slack": "#ops",
                   "notifications.rollouts.dev/subscribe.on-rollout-completed.slack": "#ops"}
    status = with_notifications(OLD, ABORTED, annotations, NOW)
    records = status.notifications or []
    assert [(r.trigger, r.service, r.recipient, r.state) for r in records] == [
        (t.ABORTED, "audit", "", "Pending"), (t.DEGRADED, "slack", "#ops", "Pending")]
    assert len({r.id for r in records}) == 2
    assert records[0].message == "aborted by operator" and records[0].revision == "b"
    # The rest of the status is what the planner decided.
    assert status.model_copy(update={"notifications": None}) == ABORTED


def test_no_subscription_no_record_and_nothing_written() -> None:
    assert with_notifications(OLD, ABORTED, {}, NOW).notifications is None


def test_outcomes_finish_records_and_history_is_bounded() -> None:
    annotations = {"notifications.rollouts.dev/subscribe.on-rollout-aborted.audit": ""}
    first = with_notifications(OLD, ABORTED, annotations, NOW)
    (record,) = pending(first)
    done = with_notifications(first, first, annotations, NOW,
                              [Outcome(record.id, "Sent", 2)])
    assert [(r.state, r.attempts) for r in done.notifications or []] == [("Sent", 2)]
    assert pending(done) == []
    many = [NotificationRecord(id=str(i), trigger=t.ABORTED, service="a", time=NOW,
                               state="Sent") for i in range(HISTORY + 5)]
    waiting = NotificationRecord(id="p", trigger=t.ABORTED, service="a", time=NOW)
    kept = with_notifications(
        OLD.model_copy(update={"notifications": [waiting, *many]}), OLD, {}, NOW)
    ids = [r.id for r in kept.notifications or []]
    assert ids[0] == "p" and len(ids) == HISTORY + 1 and ids[-1] == str(HISTORY + 4)


def test_records_survive_the_wire_round_trip() -> None:
    annotations = {"notifications.rollouts.dev/subscribe.on-rollout-aborted.audit": ""}
    status = with_notifications(OLD, ABORTED, annotations, NOW)
    assert RolloutStatus.model_validate(json.loads(json.dumps(status.to_wire()))) == status


CONFIG = {
    "service.webhook.audit": "url: $audit-url\nheaders:\n  Authorization: $token\n",
    "service.slack": "url: $slack-url\n",
    "service.teams.ops": "url: https://teams.example/hook\n",
    "service.teams.bad": "url: $missing\n",
    "service.email.mail": "url: https://x\n",
    "service.webhook.noturl": "url: ftp://x\n",
    "service.webhook.broken": "url: [\n",
    "context": "ignored",
}
SECRET = {"audit-url": "https://hooks.example/s3cr3t", "token": "Bearer t0k3n",
          "slack-url": "https://hooks.slack.example/T/B/XYZsecret"}


def test_services_resolve_secret_references() -> None:
    services = parse_services(CONFIG, SECRET)
    audit = services.get("audit")
    assert (audit.kind, audit.url, dict(audit.headers)) == (
        "webhook", SECRET["audit-url"], {"Authorization": "Bearer t0k3n"})
    assert services.get("slack").kind == "slack"
    assert services.get("ops").url == "https://teams.example/hook"
    assert "s3cr3t" not in repr(audit) and "t0k3n" not in repr(services)


@pytest.mark.parametrize(("name", "reason"), [
    ("bad", "Secret key 'missing'"), ("mail", "unknown kind"), ("noturl", "http"),
    ("broken", "YAML"), ("nothere", "no service 'nothere'")])
def test_broken_services_say_why_without_secrets(name: str, reason: str) -> None:
    with pytest.raises(ServiceError, match=reason) as caught:
        parse_services(CONFIG, SECRET).get(name)
    assert not any(value in str(caught.value) for value in SECRET.values())


RECORD = NotificationRecord(id="abc123", trigger=t.ABORTED, service="audit", recipient="#ops",
                            time=NOW, revision="6f9d", step=1, phase="Degraded",
                            message="aborted by operator")


def test_webhook_payload_is_the_documented_shape() -> None:
    assert payload("webhook", "shop", "checkout", RECORD) == {
        "apiVersion": "notifications.rollouts.dev/v1", "id": "abc123",
        "trigger": "on-rollout-aborted", "time": "2026-12-04T20:00:00Z",
        "rollout": {"namespace": "shop", "name": "checkout"}, "revision": "6f9d", "step": 1,
        "phase": "Degraded", "message": "aborted by operator", "recipient": "#ops"}


def test_slack_and_teams_payloads() -> None:
    slack = payload("slack", "shop", "checkout", RECORD)
    assert slack["text"] == "Rollout shop/checkout: rollout aborted"
    assert slack["channel"] == "#ops"
    fields = {f["title"]: f["value"] for f in slack["attachments"][0]["fields"]}
    assert fields == {"Revision": "6f9d", "Step": "1", "Phase": "Degraded",
                      "Message": "aborted by operator"}
    teams = payload("teams", "shop", "checkout", RECORD)
    assert teams["@type"] == "MessageCard" and teams["summary"] == slack["text"]
    assert {"name": "Phase", "value": "Degraded"} in teams["sections"][0]["facts"]
    assert teams["themeColor"] == "d93f0b"


def test_the_documented_example_is_complete() -> None:
    import pathlib

    import yaml

    root = pathlib.Path(__file__).resolve().parents[2]
    docs = {d["kind"]: d for d in yaml.safe_load_all(
        (root / "examples" / "notifications.yaml").read_text())}
    services = parse_services(docs["ConfigMap"]["data"], docs["Secret"]["stringData"])
    assert sorted(services.found) == ["audit", "ops", "slack"] and not services.broken
    subs = subscriptions(docs["Rollout"]["metadata"]["annotations"])
    assert {s.service for s in subs} <= set(services.found)
    assert Subscription(t.ABORTED, "slack", "#oncall") in subs
