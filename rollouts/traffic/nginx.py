"""NGINX Ingress: a canary Ingress beside each stable one.

The controller creates and owns `<rollout>-<stable ingress>-canary`: the stable Ingress's
rules, only the paths that lead to stableService, pointed at canaryService, with the
`canary` / `canary-weight` annotations (and `canary-by-header*` for a header route). The
stable Ingress itself is only read.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from rollouts.models.traffic import NginxTrafficRouting
from rollouts.planner.routing import ObjectKey, Observed, RouteWrite, TrafficIntent
from rollouts.traffic.common import (
    Binding,
    Body,
    Problems,
    RouterBase,
    agreed,
    as_regex,
    collect,
    maybe_int,
    missing,
    not_ours,
    owned_write,
)

API_VERSION = "networking.k8s.io/v1"
BASE = "spec.strategy.canary.trafficRouting.nginx"
_MAX_NAME = 253


def canary_ingress_name(rollout: str, ingress: str) -> str:
    return f"{rollout}-{ingress}"[: _MAX_NAME - len("-canary")] + "-canary"


class NginxRouter(RouterBase):
    name = "nginx"

    def __init__(self, config: NginxTrafficRouting, binding: Binding) -> None:
        self.binding = binding
        self.config = config
        self.pairs = tuple(
            (f"{BASE}.{path}",
             ObjectKey(API_VERSION, "Ingress", name, binding.namespace),
             ObjectKey(API_VERSION, "Ingress", canary_ingress_name(binding.rollout_name, name),
                       binding.namespace))
            for path, name in config.ingresses())

    def objects(self, observed: Observed | None = None) -> tuple[ObjectKey, ...]:
        return tuple(k for _, stable, canary in self.pairs for k in (stable, canary))

    def owned(self) -> tuple[ObjectKey, ...]:
        return tuple(canary for _, _, canary in self.pairs)

    def problems(self, observed: Observed) -> Problems:
        found: Problems = []
        for path, stable, canary in self.pairs:
            found += missing(path, stable, observed)
            snapshot = observed.get(stable)
            if snapshot is not None and not _canary_spec(snapshot.body, self.binding):
                found.append((path, f"Ingress {stable.name} has no backend to stableService "
                              f"{self.binding.stable_service}"))
            found += not_ours(self.binding, path, observed.get(canary))
        return found

    def writes(self, observed: Observed, intent: TrafficIntent) -> tuple[RouteWrite, ...]:
        writes: list[RouteWrite | None] = []
        for _, stable, canary in self.pairs:
            snapshot = observed.get(stable)
            spec = _canary_spec(snapshot.body, self.binding) if snapshot else None
            if spec is None:
                continue
            writes.append(owned_write(self.binding, canary, observed.get(canary), spec,
                                      self._annotations(intent)))
        return collect(writes)

    def verified_weight(self, observed: Observed) -> int | None:
        key = f"{self.config.annotation_prefix}/canary-weight"
        weights: list[int | None] = []
        for _, _, canary in self.pairs:
            snapshot = observed.get(canary)
            if snapshot is None:
                return None
            weights.append(maybe_int((snapshot.body.get("metadata", {}).get("annotations")
                                      or {}).get(key)))
        return agreed(weights)

    def _annotations(self, intent: TrafficIntent) -> dict[str, str]:
        prefix = self.config.annotation_prefix
        out = {f"{prefix}/{k}": v
               for k, v in (self.config.additional_ingress_annotations or {}).items()}
        out[f"{prefix}/canary"] = "true"
        out[f"{prefix}/canary-weight"] = str(intent.canary_weight)
        if intent.max_weight != 100:
            out[f"{prefix}/canary-weight-total"] = str(intent.max_weight)
        # NGINX has one header canary per Ingress: the first header route's first header.
        for route in intent.header_routes[:1]:
            for header in route.matches[:1]:
                out[f"{prefix}/canary-by-header"] = header.name
                if header.match == "exact":
                    out[f"{prefix}/canary-by-header-value"] = header.value
                else:
                    out[f"{prefix}/canary-by-header-pattern"] = as_regex(header.match,
                                                                         header.value)
        out.update(self.config.canary_ingress_annotations or {})
        return out


def _canary_spec(body: Mapping[str, Any], binding: Binding) -> Body | None:
    """The stable Ingress's spec narrowed to the stable Service's paths, pointed at the
    canary; None when no backend leads to the stable Service."""
    spec = copy.deepcopy(dict(body.get("spec") or {}))
    found = False
    default = spec.get("defaultBackend")
    if default is not None:
        if _retarget(default, binding):
            found = True
        else:
            spec.pop("defaultBackend")
    rules = []
    for rule in spec.get("rules") or []:
        paths = [p for p in (rule.get("http") or {}).get("paths") or []
                 if _retarget(p.get("backend") or {}, binding)]
        if paths:
            rules.append({**rule, "http": {**rule["http"], "paths": paths}})
    if rules:
        spec["rules"] = rules
    else:
        spec.pop("rules", None)
    return spec if found or rules else None


def _retarget(backend: Body, binding: Binding) -> bool:
    service = backend.get("service") or {}
    if service.get("name") != binding.stable_service:
        return False
    service["name"] = binding.canary_service
    return True
