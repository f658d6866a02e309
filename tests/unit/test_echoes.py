"""The writes of a held pass, waited for in the watch-fed caches (controller/echoes.py)."""

from __future__ import annotations

from typing import Any

from rollouts.controller.echoes import Echo, awaited, missing
from rollouts.planner.types import CreateReplicaSet, PinService, ScaleReplicaSet
from tests.unit.test_execute import rs_body, svc_body


def test_creates_scales_and_pins_are_awaited_unguarded_writes_are_not() -> None:
    actions = (CreateReplicaSet("web-b", "b", 1, 2, {}), ScaleReplicaSet("web-a", 2, None, "7"),
               PinService("web-canary", "b", "3", {}), ScaleReplicaSet("web-c", 0))
    assert awaited(actions) == (Echo("ReplicaSet", "web-b", None),
                                Echo("ReplicaSet", "web-a", "7"),
                                Echo("Service", "web-canary", "3"))


def test_an_echo_shows_once_the_cache_holds_the_object_at_another_version() -> None:
    echoes = (Echo("ReplicaSet", "web-b", None), Echo("ReplicaSet", "web-a", "7"),
              Echo("Service", "web-canary", "3"))
    services: dict[str, Any] = {"web-canary": svc_body("web-canary", {"app": "web"}, "3")}
    stale = [rs_body("web-a", "a", 3, "7")]
    assert missing(echoes, stale, services.get) == echoes
    services["web-canary"] = svc_body("web-canary", {"app": "web"}, "4")
    fresh = [rs_body("web-a", "a", 2, "8"), rs_body("web-b", "b", 1, "9")]
    assert missing(echoes, fresh, services.get) == ()
    assert missing(echoes, fresh, lambda name: None) == (echoes[2],)  # not cached at all
