"""antiAffinity: the rule injected into a new revision's pod template (table), and where the
planner puts it."""

from __future__ import annotations

from typing import Any

import pytest

from rollouts.models.pods import AntiAffinity
from rollouts.models.rollout import rollout_manifest_errors
from rollouts.planner.anti_affinity import anti_affinity_term, with_anti_affinity
from rollouts.planner.types import CreateReplicaSet
from tests.unit.world import World, blue_green_spec, canary_spec

REQUIRED = AntiAffinity.model_validate({"requiredDuringSchedulingIgnoredDuringExecution": {}})
PREFERRED = AntiAffinity.model_validate(
    {"preferredDuringSchedulingIgnoredDuringExecution": {"weight": 7}})
USER_TERM = {"labelSelector": {"matchLabels": {"db": "x"}}, "topologyKey": "zone"}


@pytest.mark.parametrize(("spec", "rule", "stable", "pod_hash", "expected"), [
    ({}, None, "s", "n", {}),
    ({}, REQUIRED, None, "n", {}),  # first revision: nothing to avoid
    ({}, REQUIRED, "s", "s", {}),  # the stable revision itself
    ({}, REQUIRED, "s", "n", {"affinity": {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [anti_affinity_term("s")]}}}),
    ({}, PREFERRED, "s", "n", {"affinity": {"podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 7, "podAffinityTerm": anti_affinity_term("s")}]}}}),
    # the user's own rules are kept, the injected one is added after them
    ({"affinity": {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [USER_TERM]},
        "nodeAffinity": {"x": 1}}}, REQUIRED, "s", "n",
     {"affinity": {"nodeAffinity": {"x": 1}, "podAntiAffinity": {
         "requiredDuringSchedulingIgnoredDuringExecution": [USER_TERM,
                                                            anti_affinity_term("s")]}}}),
    # already there: not added twice
    ({"affinity": {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [anti_affinity_term("s")]}}},
     REQUIRED, "s", "n", {"affinity": {"podAntiAffinity": {
         "requiredDuringSchedulingIgnoredDuringExecution": [anti_affinity_term("s")]}}}),
])
def test_with_anti_affinity(spec: dict[str, Any], rule: AntiAffinity | None,
                            stable: str | None, pod_hash: str,
                            expected: dict[str, Any]) -> None:
    before = repr(spec)
    assert with_anti_affinity(spec, rule, stable, pod_hash) == expected
    assert repr(spec) == before  # the input is not changed


def test_the_term_matches_the_stable_pods_on_one_node() -> None:
    assert anti_affinity_term("abc") == {
        "labelSelector": {"matchExpressions": [
            {"key": "rollouts-pod-template-hash", "operator": "In", "values": ["abc"]}]},
        "topologyKey": "kubernetes.io/hostname"}


@pytest.mark.parametrize(("value", "error"), [
    ({}, "exactly one of"),
    ({"requiredDuringSchedulingIgnoredDuringExecution": {},
      "preferredDuringSchedulingIgnoredDuringExecution": {"weight": 1}}, "exactly one of"),
    ({"preferredDuringSchedulingIgnoredDuringExecution": {"weight": 0}}, "greater than"),
    ({"preferredDuringSchedulingIgnoredDuringExecution": {"weight": 101}}, "less than"),
    ({"preferredDuringSchedulingIgnoredDuringExecution": {}}, "Field required"),
])
def test_bad_anti_affinity_names_the_field(value: dict[str, Any], error: str) -> None:
    errors = rollout_manifest_errors(canary_spec([], antiAffinity=value))
    assert errors and all(p.startswith("spec.strategy.canary.antiAffinity") for p, _ in errors)
    assert any(error in m for _, m in errors), errors


def created(world: World) -> list[CreateReplicaSet]:
    return [a for plan in world.history for a in plan.actions
            if isinstance(a, CreateReplicaSet)]


@pytest.mark.parametrize("spec", [
    canary_spec([{"setWeight": 50}, {"pause": {}}], canaryService="canary",
                stableService="stable",
                antiAffinity={"requiredDuringSchedulingIgnoredDuringExecution": {}}),
    blue_green_spec(antiAffinity={"requiredDuringSchedulingIgnoredDuringExecution": {}}),
])
def test_only_a_new_revision_gets_the_rule(spec: dict[str, Any]) -> None:
    w = World(spec)
    w.run()
    first = w.status.stable_rs
    (initial,) = created(w)
    assert "affinity" not in initial.manifest["spec"]["template"]["spec"]
    w.set_image("app:2")
    w.run()
    second = created(w)[-1]
    assert second.pod_hash != first
    assert second.manifest["spec"]["template"]["spec"]["affinity"] == {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [anti_affinity_term(first or "")]}}
    # The pod-template hash is the template's as written: the rule makes no new revision.
    assert second.pod_hash == w.status.current_pod_hash
