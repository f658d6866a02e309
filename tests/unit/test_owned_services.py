"""spec.strategy.createServices: missing Services are created, owned by the Rollout, already
pinned to a revision; without the field a missing Service stays an InvalidSpec."""

from __future__ import annotations

from typing import Any

import pytest

from rollouts.models.rollout import POD_TEMPLATE_HASH_LABEL as HASH
from rollouts.planner.types import CreateService, ServiceView
from tests.unit.world import World, blue_green_spec, canary_spec


def with_ports(spec: dict[str, Any], ports: list[dict[str, Any]]) -> dict[str, Any]:
    spec["template"]["spec"]["containers"][0]["ports"] = ports
    return spec


def missing(world: World, *names: str) -> World:
    for name in names:
        world.services.pop(name)
    return world


@pytest.mark.parametrize(("spec", "names"), [
    (canary_spec([{"setWeight": 50}], canaryService="canary", stableService="stable"),
     ["canary", "stable"]),
    (blue_green_spec(), ["active", "preview"]),
])
def test_missing_services_are_created_owned_and_pinned(spec: dict[str, Any],
                                                       names: list[str]) -> None:
    spec["strategy"]["createServices"] = True
    with_ports(spec, [{"name": "http", "containerPort": 8080}, {"containerPort": 9090,
                                                                "protocol": "UDP"}])
    world = missing(World(spec), *names)
    result = world.plan()
    creates = [a for a in result.actions if isinstance(a, CreateService)]
    assert sorted(c.name for c in creates) == sorted(names)
    assert len(result.actions) == len(creates)  # this pass only creates
    assert result.status.phase == "Progressing"
    assert result.status.message.startswith("creating Service ")
    assert [e.reason for e in result.events] == ["ServiceCreated"] * len(names)
    manifest = creates[0].manifest
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert manifest["metadata"]["ownerReferences"][0]["controller"] is True
    assert manifest["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": 8080, "protocol": "TCP"},
        {"name": "udp-9090", "port": 9090, "targetPort": 9090, "protocol": "UDP"}]
    # Pinned from the start: it never selects every revision.
    selector = manifest["spec"]["selector"]
    assert selector["app"] == "demo" and selector[HASH]

    # Once they exist, the strategy takes over.
    for create in creates:
        world.services[create.name] = ServiceView(create.name,
                                                  dict(create.manifest["spec"]["selector"]))
    world.run()
    assert world.status.phase == "Healthy"


def test_without_the_field_a_missing_service_is_invalid() -> None:
    world = missing(World(canary_spec([], canaryService="canary", stableService="stable")),
                    "canary")
    result = world.plan()
    assert result.actions == ()
    assert result.status.phase == "Degraded"
    assert 'spec.strategy.canary.canaryService: Service "canary" not found' in \
        result.status.message


def test_no_container_port_is_an_invalid_spec_naming_the_field() -> None:
    spec = canary_spec([], canaryService="canary", stableService="stable")
    spec["strategy"]["createServices"] = True
    world = missing(World(spec), "canary")
    result = world.plan()
    assert result.actions == ()
    assert "spec.strategy.createServices: the pod template declares no container port" in \
        result.status.message
