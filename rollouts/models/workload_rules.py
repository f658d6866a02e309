"""Fields the controller would accept but not act on, refused with a message instead.

A field a manifest sets must either change what the controller does or be refused naming
the field; it is never silently ignored. The traffic-routing rules live in
models/traffic.py (`traffic_errors`); these are the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rollouts.models.rollout import RolloutSpec

CANARY = "spec.strategy.canary"
BLUE_GREEN = "spec.strategy.blueGreen"


def ignored_field_errors(spec: RolloutSpec) -> list[tuple[str, str]]:
    """(field path, message) for every field set where it would do nothing."""
    errors: list[tuple[str, str]] = []
    canary = spec.strategy.canary
    if canary is not None and canary.traffic_routing is None:
        # Without a router the canary's traffic is its pods: the old revision's pods go as
        # the canary's come (stable first), and an aborted canary's pods are its traffic.
        # Delaying their scale-down would change nothing a client sees (Argo Rollouts
        # refuses these two without trafficRouting as well). 0 (no delay) is what happens.
        for field, name in (("scale_down_delay_seconds", "scaleDownDelaySeconds"),
                            ("abort_scale_down_delay_seconds", "abortScaleDownDelaySeconds")):
            if field in canary.model_fields_set and getattr(canary, field):
                errors.append((f"{CANARY}.{name}", f"{name} other than 0 requires "
                               "trafficRouting: without a traffic router the canary's "
                               "share of traffic is its share of pods, so there is nothing "
                               "to delay"))
        if canary.replica_progress_threshold is not None:
            errors.append((f"{CANARY}.replicaProgressThreshold",
                           "replicaProgressThreshold requires trafficRouting: without a "
                           "traffic router a weight is the canary's share of available pods "
                           "and cannot be reached with fewer"))
    blue_green = spec.strategy.blue_green
    if blue_green is not None and blue_green.max_unavailable not in (0, "0%"):
        # The preview is brought to full size before the switch and the old active is
        # scaled down after it: no pod is ever allowed to be unavailable.
        errors.append((f"{BLUE_GREEN}.maxUnavailable", "maxUnavailable other than 0 is not "
                       "supported: the preview ReplicaSet is made fully available before the "
                       "active Service is switched to it"))
    return errors
