"""Role metadata (canaryMetadata / stableMetadata, activeMetadata / previewMetadata): tables
for the pure parts, and releases followed pod by pod (tests.unit.pod_world)."""

from __future__ import annotations

from typing import Any

import pytest

from rollouts.models.rollout import BlueGreenStatus, RolloutSpec, RolloutStatus, parse_spec
from rollouts.planner.pod_metadata import (
    decode,
    encode,
    key_changes,
    metadata_view,
    roles,
    with_role_metadata,
)
from rollouts.planner.types import (
    PatchPodMetadata,
    PatchReplicaSetPodMetadata,
    PodMetadataView,
)
from tests.unit.pod_world import PodWorld
from tests.unit.world import blue_green_spec, canary_spec

STABLE = {"labels": {"role": "stable"}, "annotations": {"note": "serving"}}
CANARY = {"labels": {"role": "canary", "track": "canary"}}


def view(labels: dict[str, str] | None = None,
         annotations: dict[str, str] | None = None) -> PodMetadataView:
    return metadata_view({"labels": labels or {}, "annotations": annotations or {}})


def canary(**kw: Any) -> RolloutSpec:
    return parse_spec(canary_spec([{"setWeight": 50}, {"pause": {"duration": "10s"}}],
                                  canaryMetadata=CANARY, stableMetadata=STABLE, **kw))


@pytest.mark.parametrize(("status", "expected"), [
    ({}, {}),
    ({"stableRS": "a", "currentPodHash": "a"}, {"a": view(**STABLE)}),
    ({"stableRS": "a", "currentPodHash": "b"}, {"a": view(**STABLE), "b": view(**CANARY)}),
    ({"currentPodHash": "b"}, {"b": view(**CANARY)}),
])
def test_canary_roles(status: dict[str, Any], expected: dict[str, PodMetadataView]) -> None:
    assert roles(canary(), RolloutStatus.model_validate(status)) == expected


def test_blue_green_roles_follow_the_active_selector() -> None:
    spec = parse_spec(blue_green_spec(activeMetadata={"labels": {"role": "active"}},
                                      previewMetadata={"labels": {"role": "preview"}}))
    preview = RolloutStatus(stable_rs="a", current_pod_hash="b",
                            blue_green=BlueGreenStatus(active_selector="a"))
    assert roles(spec, preview) == {"a": view({"role": "active"}),
                                    "b": view({"role": "preview"})}
    switched = RolloutStatus(stable_rs="a", current_pod_hash="b",
                             blue_green=BlueGreenStatus(active_selector="b"))
    assert roles(spec, switched) == {"b": view({"role": "active"})}


def test_no_metadata_gives_empty_roles() -> None:
    spec = parse_spec(canary_spec([]))
    assert roles(spec, RolloutStatus(stable_rs="a", current_pod_hash="b")) == {
        "a": view(), "b": view()}


KEEP = frozenset({"app", "rollouts-pod-template-hash"})


@pytest.mark.parametrize(("before", "after", "current", "expected"), [
    # first time: every role key is set
    (view(), view({"role": "canary"}), {"app": "x"}, {"role": "canary"}),
    # promotion: changed keys set, keys only the old role had removed
    (view({"role": "canary", "track": "canary"}), view({"role": "stable"}),
     {"app": "x", "role": "canary", "track": "canary"}, {"role": "stable", "track": None}),
    # already right: nothing
    (view({"role": "stable"}), view({"role": "stable"}), {"role": "stable"}, {}),
    # a removed key that the pod no longer has: nothing to remove
    (view({"gone": "1"}), view(), {"app": "x"}, {}),
    # the template's own keys are never touched, neither set nor removed
    (view({"app": "other"}), view({"app": "mine"}), {"app": "x"}, {}),
])
def test_key_changes(before: PodMetadataView, after: PodMetadataView,
                     current: dict[str, str], expected: dict[str, str | None]) -> None:
    assert key_changes(before, after, current=current, keep=KEEP, kind="labels") == expected


def test_encode_decode_round_trip_and_bad_values() -> None:
    meta = view({"b": "2", "a": "1"}, {"x": "y"})
    assert decode(encode(meta)) == meta
    assert encode(meta) == '{"annotations":{"x":"y"},"labels":{"a":"1","b":"2"}}'
    for bad in (None, "", "{", "[]", 3):
        assert decode(bad) == view()


def test_a_new_replica_set_gets_its_role_in_the_template() -> None:
    manifest = {"metadata": {"name": "rs", "annotations": {"rollouts.dev/revision": "2"}},
                "spec": {"template": {"metadata": {"labels": {"app": "x"}}, "spec": {}}}}
    out = with_role_metadata(manifest, view({"role": "canary", "app": "no"}, {"n": "1"}))
    assert out["spec"]["template"]["metadata"] == {
        "labels": {"role": "canary", "app": "x"}, "annotations": {"n": "1"}}
    notes = out["metadata"]["annotations"]
    assert notes["rollouts.dev/revision"] == "2"
    assert decode(notes["rollouts.dev/ephemeral-metadata"]) == view(
        {"role": "canary", "app": "no"}, {"n": "1"})
    assert manifest["spec"]["template"]["metadata"] == {"labels": {"app": "x"}}  # not mutated


def canary_world() -> PodWorld:
    """Healthy on its first revision, with canary and stable metadata."""
    w = PodWorld(canary_spec([{"setWeight": 50}, {"pause": {"duration": "10s"}}],
                             canaryService="canary", stableService="stable",
                             canaryMetadata=CANARY, stableMetadata=STABLE))
    w.run()
    return w


def released(world: PodWorld) -> tuple[str | None, str | None]:
    old = world.status.stable_rs
    world.set_image("app:2")
    world.run()
    return old, world.status.current_pod_hash


def labels_of(world: PodWorld, pod_hash: str | None, key: str) -> set[str | None]:
    return {p.labels.get(key) for p in world.pods_of(pod_hash)}


def test_canary_release_pods_take_their_roles_in_place() -> None:
    w = canary_world()
    first = w.status.stable_rs
    assert labels_of(w, first, "role") == {"stable"} and len(w.pods_of(first)) == 4
    assert {p.annotations.get("note") for p in w.pods_of(first)} == {"serving"}
    old, new = released(w)
    assert old == first and w.status.phase == "Paused"
    assert labels_of(w, new, "role") == {"canary"} and labels_of(w, new, "track") == {"canary"}
    assert labels_of(w, old, "role") == {"stable"}
    canary_uids = {p.uid for p in w.pods_of(new)}
    w.advance(10)
    w.run()
    assert w.status.stable_rs == new and w.status.phase == "Healthy"
    pods = w.pods_of(new)
    assert {p.uid for p in pods} >= canary_uids  # promoted in place: the same pods
    assert labels_of(w, new, "role") == {"stable"} and labels_of(w, new, "track") == {None}
    assert {p.annotations.get("note") for p in pods} == {"serving"}
    assert all(p.labels["app"] == "demo" for p in pods)
    # The template of the stable ReplicaSet now makes stable pods.
    assert w.templates[new][0]["role"] == "stable" and "track" not in w.templates[new][0]


def test_a_quiet_rollout_lists_no_pods_and_writes_nothing() -> None:
    w = canary_world()
    released(w)
    w.advance(10)
    w.run()
    before = w.pod_lists
    for _ in range(3):
        result = w.step()
        assert not result.actions
    assert w.pod_lists == before


def test_the_pods_are_listed_after_the_template_changed() -> None:
    """First the template (no pods listed), then the pods (listed), then the record."""
    w = canary_world()
    released(w)
    w.advance(10)
    new = w.status.current_pod_hash
    promotion = w.step()
    while w.status.stable_rs != new:
        promotion = w.step()
    kinds = [type(a) for a in promotion.actions]
    assert PatchReplicaSetPodMetadata in kinds and PatchPodMetadata not in kinds
    listed = w.pod_lists
    pods = w.step()
    assert w.pod_lists == listed + 1
    patches = [a for a in pods.actions if isinstance(a, PatchPodMetadata)]
    assert len(patches) == 4
    assert all(a.labels == {"role": "stable", "track": None} for a in patches)
    assert isinstance(pods.actions[-1], PatchReplicaSetPodMetadata)


def test_metadata_changed_in_the_spec_reaches_running_pods() -> None:
    spec = canary_spec([], canaryService="canary", stableService="stable",
                       stableMetadata={"labels": {"role": "stable"}})
    w = PodWorld(spec)
    w.run()
    uids = {p.uid for p in w.pods.values()}
    w.spec["strategy"]["canary"]["stableMetadata"] = {"labels": {"tier": "gold"}}
    w.run()
    assert {p.uid for p in w.pods.values()} == uids  # no new revision, no new pods
    assert labels_of(w, w.status.stable_rs, "tier") == {"gold"}
    assert labels_of(w, w.status.stable_rs, "role") == {None}


def test_blue_green_preview_pods_become_active_in_place() -> None:
    w = PodWorld(blue_green_spec(activeMetadata={"labels": {"role": "active"}},
                                 previewMetadata={"labels": {"role": "preview"}},
                                 autoPromotionEnabled=False))
    w.run()
    old = w.status.stable_rs
    assert labels_of(w, old, "role") == {"active"}
    w.set_image("app:2")
    w.run()
    new = w.status.current_pod_hash
    assert w.status.phase == "Paused"
    assert labels_of(w, new, "role") == {"preview"} and labels_of(w, old, "role") == {"active"}
    uids = {p.uid for p in w.pods_of(new)}
    w.edit_status(pause_conditions=None)  # promote
    w.run()
    assert w.selector("active") == new
    assert {p.uid for p in w.pods_of(new)} == uids
    assert labels_of(w, new, "role") == {"active"}


def test_a_replica_set_scaled_in_this_pass_gets_its_metadata_on_the_next() -> None:
    """Its resourceVersion moves with the scale: writing both in one pass would be a 409."""
    from rollouts.planner.pod_metadata import metadata_actions
    from rollouts.planner.types import Observed, ReplicaSetView

    spec = canary()
    status = RolloutStatus(stable_rs="a", current_pod_hash="a")
    observed = Observed(replica_sets=(ReplicaSetView("demo-a", "a", 1, 4, resource_version="7"),))
    actions, _ = metadata_actions(spec, {}, status, observed)
    assert [type(a) for a in actions] == [PatchReplicaSetPodMetadata]
    assert actions[0].resource_version == "7"  # type: ignore[union-attr]
    assert metadata_actions(spec, {}, status, observed, frozenset({"demo-a"}))[0] == []
