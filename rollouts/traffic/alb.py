"""AWS Load Balancer Controller: the `actions.<service>` annotation on the user's Ingress.

The Ingress routes a path to the action Service (rootService, else stableService) on port
`use-annotation`; the annotation of that name holds a forward action splitting between the
canary and stable target groups (with optional stickiness). A header route is an action
and a conditions annotation of its own (named as the managed route) and a path to that
action inserted before the weighted one. The router writes only those. With pingPong the
factory binds the ping and pong Services as stable / canary by turns. An experiment
template with a `weight` is one more target group of the forward action (its Service, on
servicePort) while its Experiment runs.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from rollouts.models.traffic import ALBTrafficRouting
from rollouts.planner.routing import ObjectKey, Observed, RouteWrite, TrafficIntent
from rollouts.traffic.common import (
    Binding,
    Body,
    Problems,
    RouterBase,
    agreed,
    collect,
    editable,
    extra_weights,
    guarded_patch,
    managed_entry_ops,
    maybe_int,
    missing,
    without_managed,
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
        for _, key in self.ingresses:
            snapshot = observed.get(key)
            if snapshot is None or not _uses_action(snapshot.body, self.action_service):
                continue
            desired = editable(snapshot)
            wanted = self._annotations(intent, _annotations(snapshot.body))
            if wanted:
                desired["metadata"]["annotations"] = wanted
            first: list[Body] = []
            for i, rule in enumerate(desired.get("spec", {}).get("rules") or []):
                paths = (rule.get("http") or {}).get("paths") or []
                template = next((p for p in paths if _backend(p) == self.action_service), None)
                if template is None:
                    continue
                routes = [_header_path(template, r.name) for r in intent.header_routes]
                first += managed_entry_ops(f"/spec/rules/{i}/http/paths", paths,
                                           self.binding.managed_routes, routes, _backend)
                rule["http"]["paths"] = routes + without_managed(
                    paths, self.binding.managed_routes, _backend)
            writes.append(guarded_patch(snapshot, desired, first))
        return collect(writes)

    def _annotations(self, intent: TrafficIntent, observed: Mapping[str, Any]
                     ) -> dict[str, Any]:
        """The Ingress's annotations with ours set: the weighted action, and per header route
        an action to the canary and its header conditions. A value equal as JSON to the one
        observed (written with other spacing) is left as it is."""
        prefix = self.config.annotation_prefix
        ours = {f"{prefix}/{kind}.{name}" for name in self.binding.managed_routes
                for kind in ("actions", "conditions")}
        out = {k: v for k, v in observed.items() if k not in ours}
        values: dict[str, Any] = {self.annotation: self._action(intent)}
        for route in intent.header_routes:
            values[f"{prefix}/actions.{route.name}"] = {"Type": "forward", "ForwardConfig": {
                "TargetGroups": [{"ServiceName": self.binding.canary_service,
                                  "ServicePort": str(self.config.service_port)}]}}
            values[f"{prefix}/conditions.{route.name}"] = [
                {"Field": "http-header", "HttpHeaderConfig": {
                    "HttpHeaderName": h.name,
                    # ALB matches exactly, with * and ? wildcards: a prefix is "value*".
                    "Values": [h.value + ("*" if h.match == "prefix" else "")]}}
                for h in route.matches]
        for name, value in values.items():
            same = _parsed(observed.get(name)) == value
            out[name] = observed[name] if same else json.dumps(value, separators=(",", ":"))
        return out

    def verified_weight(self, observed: Observed) -> int | None:
        weights: list[int | None] = []
        for _, key in self.ingresses:
            canary = [maybe_int(g.get("Weight")) for g in self._groups(observed, key)
                      if g.get("ServiceName") == self.binding.canary_service]
            weights.append(canary[0] if len(canary) == 1 else None)
        return agreed(weights)

    def extra_weight(self, observed: Observed, service: str) -> int | None:
        weights: list[int | None] = []
        for _, key in self.ingresses:
            if observed.get(key) is None:
                return None
            weights += extra_weights(self._groups(observed, key), _group_service, service,
                                     "Weight")
        return agreed(weights) if weights else 0

    def _groups(self, observed: Observed, key: ObjectKey) -> list[Any]:
        snapshot = observed.get(key)
        action = _parsed(_annotations(snapshot.body).get(self.annotation)) if snapshot else None
        groups = ((action or {}).get("ForwardConfig") or {}).get("TargetGroups") or []
        return [g for g in groups if isinstance(g, Mapping)]

    def _action(self, intent: TrafficIntent) -> dict[str, Any]:
        port = str(self.config.service_port)
        forward: dict[str, Any] = {"TargetGroups": [
            {"ServiceName": self.binding.canary_service, "ServicePort": port,
             "Weight": intent.canary_weight},
            {"ServiceName": self.binding.stable_service, "ServicePort": port,
             "Weight": intent.stable_weight},
            *({"ServiceName": d.service, "ServicePort": port, "Weight": d.weight}
              for d in intent.extra),
        ]}
        sticky = self.config.stickiness_config
        if sticky is not None:
            forward["TargetGroupStickinessConfig"] = {"Enabled": sticky.enabled,
                                                      "DurationSeconds": sticky.duration_seconds}
        return {"Type": "forward", "ForwardConfig": forward}


def _group_service(group: Mapping[str, Any]) -> object:
    return group.get("ServiceName")


def _annotations(body: Mapping[str, Any]) -> Mapping[str, Any]:
    return (body.get("metadata") or {}).get("annotations") or {}


def _parsed(text: object) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _backend(path: Mapping[str, Any]) -> object:
    return ((path.get("backend") or {}).get("service") or {}).get("name")


def _header_path(template: Mapping[str, Any], route: str) -> Body:
    """The action path copied for a header route: same path, its own action."""
    path = copy.deepcopy(dict(template))
    path["backend"] = {"service": {"name": route, "port": {"name": "use-annotation"}}}
    return path


def _uses_action(body: Mapping[str, Any], service: str) -> bool:
    spec = body.get("spec") or {}
    backends = [spec.get("defaultBackend") or {}]
    backends += [p.get("backend") or {} for r in spec.get("rules") or []
                 for p in (r.get("http") or {}).get("paths") or []]
    return any((b.get("service") or {}).get("name") == service
               and ((b.get("service") or {}).get("port") or {}).get("name") == "use-annotation"
               for b in backends)
