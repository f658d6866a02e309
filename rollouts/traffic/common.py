"""What every router shares: its binding to the Rollout, guarded patches, owned objects.

A router builds the object it wants by changing a copy of the observed one in the fields it
owns only; `guarded_patch` turns the difference into an RFC 6902 patch (so nothing else of
the user's object is written) led by the observed resourceVersion (so a stale write is a
409). Objects the controller owns are created whole and patched back when they drift.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonpatch

from rollouts.planner.routing import (
    ExtraDestination,
    HeaderMatch,
    ObjectKey,
    Observed,
    RouteSnapshot,
    RouteWrite,
    TrafficIntent,
)
from rollouts.traffic.json_diff import json_diff

Body = dict[str, Any]
Problems = list[tuple[str, str]]


@dataclass(frozen=True)
class Binding:
    """What a router needs from the Rollout besides its own trafficRouting block."""

    namespace: str
    rollout_name: str
    canary_service: str
    stable_service: str
    max_weight: int = 100
    # Every name in trafficRouting.managedRoutes: routes by these names are ours to remove.
    managed_routes: tuple[str, ...] = ()
    # The ownerReference put on objects the router creates (the Rollout, as controller).
    owner: Mapping[str, Any] = field(default_factory=dict)
    # Experiment templates' Services the routes may send weight to (those of the Rollout's
    # Experiments, and its status.canary.weights.additional): finalize removes
    # destinations to them too.
    experiment_services: tuple[str, ...] = ()

    def owns(self, body: Mapping[str, Any]) -> bool:
        uid = self.owner.get("uid")
        refs = body.get("metadata", {}).get("ownerReferences") or []
        return any(isinstance(r, Mapping) and r.get("uid") == uid for r in refs)


def set_weights(entries: Iterable[Any], name_of: Callable[[Mapping[str, Any]], object],
                weights: Mapping[object, int]) -> None:
    """Set `weight` on the entries whose name (read by `name_of`) has a weight given."""
    for entry in entries:
        name = name_of(entry)
        if name in weights:
            entry["weight"] = weights[name]


def side_weights(canary: str, stable: str, intent: TrafficIntent) -> dict[object, int]:
    return {canary: intent.canary_weight, stable: intent.stable_weight}


def weigh_extras(entries: list[Any], name_of: Callable[[Mapping[str, Any]], object],
                 intent: TrafficIntent, make: Callable[[ExtraDestination], Body],
                 weight_key: str = "weight") -> list[Any]:
    """A destination list with the intent's extra destinations: those present get their
    weight, missing ones are appended (built by `make`), retired ones are removed; every
    other entry is left as it is. E.g. [canary, stable, exp-a] with extra exp-b 5 and
    exp-a retired -> [canary, stable, exp-b(5)]."""
    wanted = {d.service: d for d in intent.extra}
    retired = set(intent.retired) - set(wanted)
    out: list[Any] = []
    for entry in entries:
        name = name_of(entry) if isinstance(entry, Mapping) else None
        if name in retired:
            continue
        if isinstance(name, str) and name in wanted:
            entry[weight_key] = wanted.pop(name).weight
        out.append(entry)
    return out + [make(d) for d in intent.extra if d.service in wanted]


def extra_weights(entries: Iterable[Any], name_of: Callable[[Mapping[str, Any]], object],
                  service: str, weight_key: str = "weight") -> list[int | None]:
    """The weights the entries naming `service` hold ([0] when none does)."""
    found = [maybe_int(e.get(weight_key, 0)) for e in entries
             if isinstance(e, Mapping) and name_of(e) == service]
    return found or [0]


def stable_only(max_weight: int, retired: tuple[str, ...] = ()) -> TrafficIntent:
    """All traffic to stable, no managed route, no destination to `retired` Services: what
    finalize holds."""
    return TrafficIntent(canary_weight=0, stable_weight=max_weight, max_weight=max_weight,
                         retired=retired)


def editable(snapshot: RouteSnapshot) -> Body:
    """A deep, plain copy of an observed body to change."""
    return copy.deepcopy(_plain(snapshot.body))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def guarded_patch(snapshot: RouteSnapshot, desired: Mapping[str, Any],
                  first: list[Body] | None = None) -> RouteWrite | None:
    """The JSON patch from the observed body to `desired`, led by the resourceVersion guard;
    None when they are equal. `first` (from `managed_entry_ops`) goes before the computed
    difference, so that inserting our own route is an insert, not a rewrite of the user's
    routes by position."""
    staged = jsonpatch.apply_patch(_plain(snapshot.body), first) if first else snapshot.body
    ops = [*(first or []), *json_diff(_plain(staged), _plain(desired))]
    if not ops:
        return None
    metadata = snapshot.body.get("metadata") or {}
    version = metadata.get("resourceVersion", "")
    guard = {"op": "replace" if "resourceVersion" in metadata else "add",
             "path": "/metadata/resourceVersion", "value": version}
    return RouteWrite(snapshot.key, "patch", patch=(guard, *ops))


def owned_write(binding: Binding, key: ObjectKey, snapshot: RouteSnapshot | None,
                spec: Mapping[str, Any], annotations: Mapping[str, str] | None = None,
                top: Mapping[str, Any] | None = None) -> RouteWrite | None:
    """Create an object the controller owns, or patch it back to what it should be."""
    metadata: Body = {"name": key.name, "namespace": key.namespace,
                      "ownerReferences": [dict(binding.owner)]}
    if annotations:
        metadata["annotations"] = dict(annotations)
    fields = dict(top) if top is not None else {"spec": _plain(spec)}
    if snapshot is None:
        manifest = {"apiVersion": key.api_version, "kind": key.kind, "metadata": metadata,
                    **fields}
        return RouteWrite(key, "create", manifest=manifest)
    if not binding.owns(snapshot.body):
        return None  # reported by problems(): never overwrite an object we did not create
    desired = editable(snapshot)
    desired["metadata"]["ownerReferences"] = [dict(binding.owner)]
    if annotations:
        desired["metadata"]["annotations"] = dict(annotations)
    else:
        desired["metadata"].pop("annotations", None)
    desired.update(copy.deepcopy(fields))
    return guarded_patch(snapshot, desired)


def owned_delete(binding: Binding, snapshot: RouteSnapshot | None) -> RouteWrite | None:
    if snapshot is None or not binding.owns(snapshot.body):
        return None
    return RouteWrite(snapshot.key, "delete")


def not_ours(binding: Binding, field_path: str, snapshot: RouteSnapshot | None) -> Problems:
    if snapshot is None or binding.owns(snapshot.body):
        return []
    key = snapshot.key
    return [(field_path, f"{key.kind} {key.name} exists and was not created by this Rollout; "
             "rename or delete it")]


def missing(field_path: str, key: ObjectKey, observed: Observed) -> Problems:
    if observed.get(key) is not None:
        return []
    return [(field_path, f"{key.kind} {key.name} not found in namespace {key.namespace}")]


def agreed(values: Iterable[int | None]) -> int | None:
    """The one value all read-backs agree on; None when any is missing or they differ."""
    found = set(values)
    if len(found) != 1:
        return None
    return next(iter(found))


def collect(writes: Iterable[RouteWrite | None]) -> tuple[RouteWrite, ...]:
    return tuple(w for w in writes if w is not None)


def names_service(host: object, service: str) -> bool:
    """True when a host names the Service: `svc`, `svc.ns`, `svc.ns.svc.cluster.local`."""
    return isinstance(host, str) and (host == service or host.startswith(service + "."))


def entry_name(item: Mapping[str, Any]) -> object:
    return item.get("name")


def without_managed(items: list[Any], managed: Iterable[str],
                    name_of: Callable[[Mapping[str, Any]], object] = entry_name) -> list[Any]:
    names = set(managed)
    return [i for i in items if not (isinstance(i, Mapping) and name_of(i) in names)]


def managed_entry_ops(pointer: str, items: list[Any], managed: Iterable[str],
                      wanted: list[Body],
                      name_of: Callable[[Mapping[str, Any]], object] = entry_name,
                      ) -> list[Body]:
    """JSON patch ops that make our named entries of a list `wanted`, first, in order:
    remove ours (by index, last first) and insert the wanted ones at the front. Empty when
    the list already starts with exactly them. `name_of` reads an entry's name."""
    names = set(managed)
    ours = [i for i, item in enumerate(items) if isinstance(item, Mapping)
            and name_of(item) in names]
    if ours == list(range(len(wanted))) and [_plain(items[i]) for i in ours] == wanted:
        return []
    ops: list[Body] = [{"op": "remove", "path": f"{pointer}/{i}"} for i in reversed(ours)]
    ops += [{"op": "add", "path": f"{pointer}/{i}", "value": copy.deepcopy(entry)}
            for i, entry in enumerate(wanted)]
    return ops


def as_regex(match: Literal["exact", "prefix", "regex"], value: str) -> str:
    """A header / path match as a regular expression (for APIs without prefix matching)."""
    if match == "regex":
        return value
    return "^" + re.escape(value) + (".*" if match == "prefix" else "$")


def header_regex_or_exact(header: HeaderMatch) -> tuple[Literal["Exact", "RegularExpression"],
                                                        str]:
    if header.match == "exact":
        return "Exact", header.value
    return "RegularExpression", as_regex(header.match, header.value)


def maybe_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


class RouterBase:
    """finalize for every router: its writes for all-stable, and its own objects deleted."""

    binding: Binding

    def objects(self, observed: Observed | None = None) -> tuple[ObjectKey, ...]:
        raise NotImplementedError

    def writes(self, observed: Observed, intent: TrafficIntent) -> tuple[RouteWrite, ...]:
        raise NotImplementedError

    def owned(self) -> tuple[ObjectKey, ...]:
        """Objects this router creates (deleted by finalize)."""
        return ()

    def extra_weight(self, observed: Observed, service: str) -> int | None:
        """Routers that cannot send weight to experiment Services never do (validation
        refuses a template `weight` with them): 0."""
        return 0

    def finalize(self, observed: Observed) -> tuple[RouteWrite, ...]:
        owned = set(self.owned())
        all_stable = stable_only(self.binding.max_weight, self.binding.experiment_services)
        kept = [w for w in self.writes(observed, all_stable)
                if w.key not in owned]
        return (*kept, *collect(owned_delete(self.binding, observed.get(k))
                                for k in self.owned()))
