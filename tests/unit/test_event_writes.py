"""Which Events a pass writes (rollouts.planner.events, pure) and how they reach the API
(kube.execute.post_events with an EventMemory; httpx.MockTransport, no server)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollouts.kube.events import EventMemory
from rollouts.kube.execute import post_events
from rollouts.planner.events import (
    EVENT_HOLD,
    REPEAT_WINDOW,
    CountEvent,
    CreateEvent,
    Held,
    Recorded,
    decide_writes,
    fold,
    hold,
    key_of,
)
from rollouts.planner.types import Event
from tests.unit.test_execute import NOW, Recorder, meta, rollout_body

EVENTS_PATH = "/api/v1/namespaces/shop/events"


def normal(reason: str, message: str) -> Event:
    return Event("Normal", reason, message)


def warning(reason: str, message: str) -> Event:
    return Event("Warning", reason, message)


NEW_REVISION = [normal("ServiceSwitched", "Service web-canary now selects revision bbb"),
                normal("ReplicaSetCreated", "Created ReplicaSet web-bbb (revision 2)"),
                normal("RolloutProgressing", "Step 1/4: setWeight 50")]
STEP = [normal("RolloutStepChanged", "Step 1/4 -> 2/4"),
        normal("RolloutPaused", "Step 2/4: paused 2s")]
PROMOTION = [normal("ServiceSwitched", "Service web now selects revision bbb"),
             normal("RolloutStepChanged", "Step 4/4 -> 4/4"),
             normal("RolloutPromoted", "Revision bbb is now stable")]
ABORT = [normal("ServiceSwitched", "Service web-canary now selects revision aaa"),
         warning("RolloutAborted", "aborted by analysis"),
         warning("RolloutDegraded", "aborted by analysis")]


@pytest.mark.parametrize(("events", "expected"), [
    ([], ()),
    # One Normal Event per transition: the most telling reason, every message, lead first.
    (NEW_REVISION, (normal("ReplicaSetCreated",
                           "Created ReplicaSet web-bbb (revision 2); Service web-canary now "
                           "selects revision bbb; Step 1/4: setWeight 50"),)),
    (STEP, (normal("RolloutStepChanged", "Step 1/4 -> 2/4; Step 2/4: paused 2s"),)),
    # A promotion completes the steps: the step change says nothing more.
    (PROMOTION, (normal("RolloutPromoted",
                        "Revision bbb is now stable; Service web now selects revision bbb"),)),
    # Warnings stay Warnings, apart from the Normal facts; a message said twice, once.
    (ABORT, (warning("RolloutAborted", "aborted by analysis"),
             normal("ServiceSwitched", "Service web-canary now selects revision aaa"))),
    # A pass with one fact writes it as it is.
    ([normal("RolloutPaused", "paused by a user")], (normal("RolloutPaused",
                                                            "paused by a user"),)),
    ([warning("InvalidSpec", "steps[0]: bad")], (warning("InvalidSpec", "steps[0]: bad"),)),
])
def test_one_event_per_transition(events: list[Event], expected: tuple[Event, ...]) -> None:
    assert fold(events) == expected


def test_a_step_change_without_promotion_is_kept() -> None:
    [event] = fold([normal("RolloutStepChanged", "Step 2/4 -> 3/4"),
                    normal("ServiceSwitched", "Service web-canary now selects revision bbb")])
    assert event.reason == "RolloutStepChanged"
    assert "Service web-canary" in event.message


def test_a_new_event_is_created() -> None:
    assert decide_writes(STEP, {}, NOW) == (CreateEvent(fold(STEP)[0]),)


def test_a_repeat_is_counted_on_the_event_written_before() -> None:
    [event] = fold(STEP)
    seen = {key_of(event): Recorded("web.abc", 3, NOW - dt.timedelta(minutes=5))}
    assert decide_writes(STEP, seen, NOW) == (CountEvent("web.abc", 4, event),)


def test_an_old_repeat_is_a_new_event() -> None:
    [event] = fold(STEP)
    seen = {key_of(event): Recorded("web.abc", 3, NOW - REPEAT_WINDOW - dt.timedelta(1))}
    assert decide_writes(STEP, seen, NOW) == (CreateEvent(event),)


def test_an_event_differing_in_anything_is_not_a_repeat() -> None:
    [event] = fold(STEP)
    for other in (Event("Warning", event.reason, event.message),
                  Event("Normal", "Other", event.message),
                  Event("Normal", event.reason, event.message + "!")):
        seen = {key_of(other): Recorded("web.abc", 1, NOW)}
        assert decide_writes(STEP, seen, NOW) == (CreateEvent(event),)


def test_memory_is_per_rollout_object_and_bounded() -> None:
    memory = EventMemory(per_rollout=2)
    key = ("shop", "web")
    for n in range(3):
        memory.remember(key, "uid-1", ("Normal", "R", str(n)), Recorded(f"e{n}", 1, NOW))
    assert set(memory.of(key, "uid-1")) == {("Normal", "R", "1"), ("Normal", "R", "2")}
    assert memory.of(key, "uid-2") == {}  # a Rollout recreated under the same name
    memory.forget(key)
    assert memory.of(key, "uid-1") == {}


async def test_a_repeat_patches_count_and_last_timestamp() -> None:
    rec = Recorder()
    memory = EventMemory()
    body = rollout_body()
    later = NOW + dt.timedelta(minutes=1)
    async with rec.client() as client:
        await post_events(client, meta(body), tuple(STEP), NOW, memory)
        await post_events(client, meta(body), tuple(STEP), later, memory)
    (create, path, _, created), (patch, patched_path, kind, patched) = rec.requests
    assert (create, path) == ("POST", EVENTS_PATH)
    assert created["count"] == 1 and created["reason"] == "RolloutStepChanged"
    assert (patch, patched_path) == ("PATCH", f"{EVENTS_PATH}/{created['metadata']['name']}")
    assert kind == "application/merge-patch+json"
    assert patched == {"count": 2, "lastTimestamp": "2026-01-01T12:01:00Z"}


async def test_a_repeat_of_an_expired_event_creates_it_again() -> None:
    memory = EventMemory()
    body = rollout_body()
    [event] = fold(STEP)
    memory.remember(("shop", "web"), "uid-1", key_of(event), Recorded("web.gone", 1, NOW))
    rec = Recorder({("PATCH", f"{EVENTS_PATH}/web.gone"): (404, {
        "kind": "Status", "code": 404, "reason": "NotFound", "message": "not found"})})
    async with rec.client() as client:
        await post_events(client, meta(body), tuple(STEP), NOW, memory)
    assert [r[0] for r in rec.requests] == ["PATCH", "POST"]
    [recorded] = memory.of(("shop", "web"), "uid-1").values()
    assert recorded.name == rec.requests[1][3]["metadata"]["name"] and recorded.count == 1


# --- rule 4: the Events of a transition the Rollout passes through wait for the next ---


def test_a_passing_transition_waits_and_goes_out_with_the_next_resting_one() -> None:
    post, held = hold(Held(), NEW_REVISION, resting=False, now=NOW)
    assert post == () and held == Held(tuple(NEW_REVISION), NOW)
    assert held.due_in(NOW + dt.timedelta(seconds=1)) == EVENT_HOLD.total_seconds() - 1
    later = NOW + dt.timedelta(seconds=1)
    post, held = hold(held, STEP, resting=True, now=later)
    assert post == (*NEW_REVISION, *STEP) and held == Held()
    assert held.due_in(later) is None
    # ... and they make one Event, the most telling reason leading.
    assert [e.reason for e in fold(post)] == ["RolloutStepChanged"]


def test_held_events_go_out_when_the_hold_is_up_even_without_a_new_transition() -> None:
    _, held = hold(Held(), STEP, resting=False, now=NOW)
    post, still = hold(held, [], resting=False, now=NOW + EVENT_HOLD - dt.timedelta(seconds=0.5))
    assert post == () and still == held  # the hold is counted from the first Event held
    post, still = hold(held, [], resting=False, now=NOW + EVENT_HOLD)
    assert post == tuple(STEP) and still == Held()


def test_a_warning_or_a_resting_rollout_posts_at_once_with_what_is_held() -> None:
    _, held = hold(Held(), NEW_REVISION, resting=False, now=NOW)
    post, still = hold(held, ABORT, resting=False, now=NOW)
    assert post == (*NEW_REVISION, *ABORT) and still == Held()
    post, still = hold(Held(), PROMOTION, resting=True, now=NOW)
    assert post == tuple(PROMOTION) and still == Held()
    assert hold(Held(), [], resting=False, now=NOW) == ((), Held())


def test_a_timed_pause_shorter_than_the_hold_is_passed_through() -> None:
    """Paused with `moves_in` (the pause's end) shorter than EVENT_HOLD: held, due no
    sooner than the pause's end (the step after it carries them); a pause of EVENT_HOLD
    or more, or an indefinite one (None), is a resting state."""
    _, held = hold(Held(), NEW_REVISION, resting=False, now=NOW)
    later = NOW + dt.timedelta(seconds=0.5)
    post, short = hold(held, STEP, resting=True, now=later, moves_in=2.0)
    assert post == () and short == Held((*NEW_REVISION, *STEP), NOW)
    post, still = hold(held, STEP, resting=True, now=later,
                       moves_in=EVENT_HOLD.total_seconds() - 0.5)
    assert post == () and still == Held((*NEW_REVISION, *STEP), NOW)  # ends with the hold
    post, still = hold(held, STEP, resting=True, now=later,
                       moves_in=EVENT_HOLD.total_seconds())
    assert post == (*NEW_REVISION, *STEP) and still == Held()
    post, still = hold(held, STEP, resting=True, now=later, moves_in=None)
    assert post == (*NEW_REVISION, *STEP) and still == Held()
    # Held since long ago (a slow first step): a short pause still passes through, and
    # what is held is due at its end, not at once.
    slow = NOW + EVENT_HOLD * 3
    post, still = hold(held, STEP, resting=True, now=slow, moves_in=2.0)
    assert post == () and still.due_in(slow) == 2.0
    # A pause that ends past the hold, passed through again: due at its end.
    post, still = hold(short, [], resting=True, now=NOW + EVENT_HOLD, moves_in=1.0)
    assert post == () and still.due_in(NOW + EVENT_HOLD) == 1.0
    # Its end: due, they go out (or wait with a held status: write_folding rule 3).
    post, still = hold(still, [], resting=False, now=NOW + EVENT_HOLD + dt.timedelta(seconds=1))
    assert post == (*NEW_REVISION, *STEP) and still == Held()


@given(passes=st.lists(st.tuples(
    st.floats(0.0, 5.0),  # seconds since the previous pass
    st.integers(0, 2),  # Events planned
    st.booleans(),  # resting
    st.sampled_from([None, 0.5, 2.0, 2.99, 3.0, 10.0]),  # moves_in (a timed pause's end)
    st.booleans(),  # a Warning among them
), min_size=1, max_size=25))
def test_held_events_are_posted_once_in_order_and_never_past_their_due(
        passes: list[tuple[float, int, bool, float | None, bool]]) -> None:
    """Rule 4 over any run of passes: every Event goes out exactly once, in the order
    planned; a Warning or a resting state (not a short timed pause) posts all that is
    held; nothing stays held past the later of EVENT_HOLD after the first held and the end
    of the short pause that last passed it through."""
    now, held, posted, planned, n = NOW, Held(), [], [], 0
    for gap, count, resting, moves_in, warning in passes:
        now += dt.timedelta(seconds=gap)
        events = [normal("RolloutStepChanged", f"e{n + i}") for i in range(count)]
        if warning and events:
            events[-1] = Event("Warning", "RolloutAborted", f"e{n + count - 1}")
        n += count
        planned += events
        was = held
        post, held = hold(held, events, resting=resting, now=now,
                          moves_in=moves_in if resting else None)
        posted += post
        pending = was.events + tuple(events)
        short = resting and moves_in is not None and moves_in < EVENT_HOLD.total_seconds()
        if pending and ((resting and not short) or any(e.type == "Warning" for e in pending)
                        or (was.since is not None and now - was.since >= EVENT_HOLD
                            and not short)):
            assert held == Held() and post == pending
        if held.events:
            assert held.since is not None and not post
            due = held.due_in(now)
            assert due is not None and due > 0
            limit = max(EVENT_HOLD.total_seconds(), moves_in or 0.0) if short else (
                EVENT_HOLD.total_seconds())
            assert due <= limit + 1e-9
    assert [*posted, *held.events] == planned
