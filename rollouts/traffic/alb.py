"""AWS Load Balancer Controller: the `actions.<service>` annotation on the user's Ingress.

The Ingress routes a path to the action Service (rootService, else stableService) on port
`use-annotation`; the annotation of that name holds a forward action splitting between the
canary and stable target groups (with optional stickiness). The router writes only that
annotation. With pingPong the factory binds the ping and pong Services as stable / canary
by turns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rollouts.models.traffic import ALBTrafficRouting
from rollouts.planner.routing import ObjectKey, Observed, RouteWrite, TrafficIntent
from rollouts.traffic.common import (
    Binding,
    Problems,
    RouterBase,
    agreed,
    collect,
    editable,
    guarded_patch,
    maybe_int,
    missing,
)

API_VERSION = "networking.k8s.io/v1"
BASE = "spec.strategy.canary.trafficRouting.alb"


class ALBRouter(RouterBase):
    name = "alb"

    def __init__(self, config: ALBTrafficRouting, binding: Binding) -> None:
        self.config = config
        self.binding = binding
        self.action_service = config.root_service or binding.stable_service
        self.annotation = f"{config.annotation_prefix}/actions.{self.action_service}"
        self.ingresses = tuple((f"{BASE}.{path}",
                                ObjectKey(API_VERSION, "Ingress", name, binding.namespace))
                               for path, name in config.all_ingresses())

    def objects(self, observed: Observed | None = None) -> tuple[ObjectKey, ...]:
        return tuple(key for _, key in self.ingresses)

    def problems(self, observed: Observed) -> Problems:
        found: Problems = []
        for path, key in self.ingresses:
            found += missing(path, key, observed)
            snapshot = observed.get(key)
            if snapshot is not None and not _uses_action(snapshot.body, self.action_service):
                found.append((path, f"Ingress {key.name} has no backend to Service "
                              f"{self.action_service} on port use-annotation"))
        return found

    def writes(self, observed: Observed, intent: TrafficIntent) -> tuple[RouteWrite, ...]:
        writes: list[RouteWrite | None] = []
        wanted = self._action(intent)
        for _, key in self.ingresses:
            snapshot = observed.get(key)
            if snapshot is None or not _uses_action(snapshot.body, self.action_service):
                continue
            if _parsed(_annotations(snapshot.body).get(self.annotation)) == wanted:
                continue  # same action, maybe written with other spacing: leave it
            desired = editable(snapshot)
            desired["metadata"].setdefault("annotations", {})[self.annotation] = json.dumps(
                wanted, separators=(",", ":"))
            writes.append(guarded_patch(snapshot, desired))
        return collect(writes)

    def verified_weight(self, observed: Observed) -> int | None:
        weights: list[int | None] = []
        for _, key in self.ingresses:
            snapshot = observed.get(key)
            action = _parsed(_annotations(snapshot.body).get(self.annotation)) if snapshot else None
            groups = ((action or {}).get("ForwardConfig") or {}).get("TargetGroups") or []
            canary = [maybe_int(g.get("Weight")) for g in groups
                      if g.get("ServiceName") == self.binding.canary_service]
            weights.append(canary[0] if len(canary) == 1 else None)
        return agreed(weights)

    def _action(self, intent: TrafficIntent) -> dict[str, Any]:
        port = str(self.config.service_port)
        forward: dict[str, Any] = {"TargetGroups": [
            {"ServiceName": self.binding.canary_service, "ServicePort": port,
             "Weight": intent.canary_weight},
            {"ServiceName": self.binding.stable_service, "ServicePort": port,
             "Weight": intent.stable_weight},
        ]}
        sticky = self.config.stickiness_config
        if sticky is not None:
            forward["TargetGroupStickinessConfig"] = {"Enabled": sticky.enabled,
                                                      "DurationSeconds": sticky.duration_seconds}
        return {"Type": "forward", "ForwardConfig": forward}


def _annotations(body: Mapping[str, Any]) -> Mapping[str, Any]:
    return (body.get("metadata") or {}).get("annotations") or {}


def _parsed(text: object) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _uses_action(body: Mapping[str, Any], service: str) -> bool:
    spec = body.get("spec") or {}
    backends = [spec.get("defaultBackend") or {}]
    backends += [p.get("backend") or {} for r in spec.get("rules") or []
                 for p in (r.get("http") or {}).get("paths") or []]
    return any((b.get("service") or {}).get("name") == service
               and ((b.get("service") or {}).get("port") or {}).get("name") == "use-annotation"
               for b in backends)
