"""Services the controller creates and owns when the Rollout asks for it.

With `spec.strategy.createServices: true`, a Service the strategy names (canaryService,
stableService, activeService, previewService) that does not exist is created by the
controller, owned by the Rollout (deleted with it), as Flagger creates its Services. The
Service gets one port per container port of the pod template and a selector already pinned
to a revision, so it never selects every revision; the strategy re-pins it from then on.
Without the field, a missing Service stays an InvalidSpec (a typo must not create Services).
"""

from __future__ import annotations

from typing import Any

from rollouts.models.rollout import LabelSelector, ValidRollout
from rollouts.models.wire import POD_TEMPLATE_HASH_LABEL, rollout_owner_reference
from rollouts.planner.manifests import desired_hash
from rollouts.planner.types import CreateService, Observed

FIELD = "spec.strategy.createServices"


def service_ports(rollout: ValidRollout) -> list[dict[str, Any]]:
    """One Service port per container port of the pod template, targeting it.

    E.g. a container `web` with ports [{name: http, containerPort: 8080}] gives
    [{name: http, port: 8080, targetPort: 8080, protocol: TCP}].
    """
    ports: list[dict[str, Any]] = []
    seen: set[tuple[int, str]] = set()
    for container in rollout.template.get("spec", {}).get("containers") or ():
        for port in (container.get("ports") or ()) if isinstance(container, dict) else ():
            number = port.get("containerPort") if isinstance(port, dict) else None
            if not isinstance(number, int) or isinstance(number, bool):
                continue
            protocol = str(port.get("protocol") or "TCP")
            if (number, protocol) in seen:
                continue
            seen.add((number, protocol))
            ports.append({"name": str(port.get("name") or f"{protocol.lower()}-{number}"),
                          "port": number, "targetPort": number, "protocol": protocol})
    return ports


def service_manifest(rollout: ValidRollout, name: str, pod_hash: str,
                     ports: list[dict[str, Any]]) -> dict[str, Any]:
    selector = {**((rollout.spec.selector or LabelSelector()).match_labels or {}),
                POD_TEMPLATE_HASH_LABEL: pod_hash}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": rollout.metadata.namespace,
            "ownerReferences": [
                rollout_owner_reference(rollout.metadata.name, rollout.metadata.uid)],
        },
        "spec": {"selector": selector, "ports": ports},
    }


def creations(rollout: ValidRollout, observed: Observed
              ) -> tuple[list[CreateService], list[tuple[str, str]]]:
    """The Services to create (and problems that prevent it, by field path)."""
    if not rollout.spec.strategy.create_services:
        return [], []
    strategy = rollout.spec.strategy
    named = ([strategy.canary.canary_service, strategy.canary.stable_service]
             if strategy.canary else [])
    if strategy.blue_green:
        named += [strategy.blue_green.active_service, strategy.blue_green.preview_service]
    missing = [name for name in dict.fromkeys(named)
               if name and observed.services.get(name) is None]
    if not missing:
        return [], []
    ports = service_ports(rollout)
    if not ports:
        return [], [(FIELD, "the pod template declares no container port for the Services "
                            f"to create ({', '.join(missing)})")]
    # Pinned from the start: the stable revision once there is one, else the first one.
    pod_hash = rollout.status.stable_rs or desired_hash(rollout)
    return [CreateService(name, service_manifest(rollout, name, pod_hash, ports))
            for name in missing], []
