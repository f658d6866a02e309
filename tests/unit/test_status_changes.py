"""Typed status changes: a bad field or value fails, never vanishes on the way to the wire."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pydantic
import pytest

from rollouts.models.rollout import PauseCondition, RolloutStatus
from rollouts.models.wire import format_time, parse_time
from rollouts.planner.status import KEEP, StatusChanges

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def test_every_status_field_has_a_typed_slot_and_nothing_else() -> None:
    slots = {f.name for f in dataclasses.fields(StatusChanges)}
    assert slots == set(RolloutStatus.model_fields)


def test_a_bad_phase_fails_validation() -> None:
    changes = StatusChanges()
    changes.phase = "Bogus"  # type: ignore[assignment]  # mypy refuses it too
    with pytest.raises(pydantic.ValidationError):
        changes.applied_to(RolloutStatus())


def test_an_unknown_field_cannot_be_set() -> None:
    changes = StatusChanges()
    with pytest.raises(AttributeError):
        changes.stable_rss = "abc"  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        StatusChanges(stableRS="abc")  # type: ignore[call-arg]


def test_a_wrongly_typed_value_fails_validation() -> None:
    with pytest.raises(pydantic.ValidationError):
        StatusChanges(current_step_index="two").applied_to(  # type: ignore[arg-type]
            RolloutStatus())


def test_applied_changes_keep_what_is_not_set_and_delete_what_is_none() -> None:
    old = RolloutStatus(phase="Paused", stable_rs="aaa", current_step_index=1,
                        pause_conditions=[PauseCondition(reason="X", start_time=NOW)])
    new = StatusChanges(pause_conditions=None, current_step_index=2).applied_to(old)
    assert (new.phase, new.stable_rs, new.current_step_index, new.pause_conditions) == (
        "Paused", "aaa", 2, None)
    assert StatusChanges().changed() == {}
    assert StatusChanges(abort=None).changed() == {"abort": None}
    assert StatusChanges().phase is KEEP


def test_wire_patch_is_camel_case_with_none_for_deletions() -> None:
    patch = StatusChanges(stable_rs="aaa", abort=None, aborted_at=NOW,
                          pause_conditions=[PauseCondition(reason="X", start_time=NOW)]
                          ).wire_patch()
    assert patch == {"stableRS": "aaa", "abort": None, "abortedAt": "2026-01-01T12:00:00Z",
                     "pauseConditions": [{"reason": "X", "startTime": "2026-01-01T12:00:00Z"}]}


@pytest.mark.parametrize(("moment", "text"), [
    (dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC), "2026-01-01T12:00:00Z"),
    (dt.datetime(2026, 1, 1, 12, 0, 0, 250000, tzinfo=dt.UTC), "2026-01-01T12:00:00.250000Z"),
    (dt.datetime(2026, 1, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
     "2026-01-01T12:00:00Z"),
])
def test_time_codec_round_trips(moment: dt.datetime, text: str) -> None:
    assert format_time(moment) == text
    assert parse_time(text) == moment
    status = RolloutStatus.model_validate({"abortedAt": text})
    assert status.aborted_at == moment
    assert status.to_wire()["abortedAt"] == text


@pytest.mark.parametrize("bad", ["", "yesterday", 12, None, "2026-01-01T12:00:00"])
def test_unreadable_times_read_as_none(bad: object) -> None:
    assert parse_time(bad) is None


def test_a_naive_time_in_status_is_rejected() -> None:
    with pytest.raises(pydantic.ValidationError):
        RolloutStatus.model_validate({"abortedAt": "2026-01-01T12:00:00"})
