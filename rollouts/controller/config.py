"""The controller's settings: one frozen object passed down (no module-level state)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from rollouts.clock import Clock, SystemClock
from rollouts.models.rollout import ValidRollout
from rollouts.notifications.delivery import ConfigSource, DeliveryPolicy
from rollouts.planner.routing import Router
from rollouts.planner.step_plugins import StepPlugin, load_step_plugins
from rollouts.traffic import rollout_router


class RouterFactory(Protocol):
    """The router of a parsed Rollout; `experiment_services` are its Experiments' Services
    (given when it is deleted: its routes must let go of them too)."""

    def __call__(self, rollout: ValidRollout, experiment_services: Iterable[str] = (),
                 /) -> Router | None: ...


@dataclass(frozen=True)
class OperatorConfig:
    clock: Clock = field(default_factory=SystemClock)
    # Namespaces to serve; empty with clusterwide=False means the kubeconfig's namespace.
    namespaces: tuple[str, ...] = ()
    clusterwide: bool = False
    # None: kopf's auto-detection (standalone when the peering CRD is absent).
    standalone: bool | None = None
    peering_name: str = "rollouts"
    # kopf peering priority: of two live replicas the higher acts (equal ones both pause).
    peering_priority: int | None = None
    # Serve /metrics, /healthz and /readyz here ("host:port", ":port"); None: not at all.
    metrics_address: str | None = None
    # Bounds on the wait before the next pass: the floor is also the delay after a conflict
    # and the first retry delay after an error; the ceiling caps requeues and backoff.
    requeue_floor: float = 0.5
    requeue_ceiling: float = 300.0
    finalizer: str = "rollouts.dev/finalizer"
    # Seconds a stopping reconcile may take to finish its pass before it is cancelled.
    cancellation_timeout: float = 5.0
    # Rollout passes running at once; the others wait their turn, and read the Rollout when
    # they start (a Rollout woken twice while waiting makes one pass). Bounds the memory of a
    # burst (a thousand Rollouts changed at once) to this many passes' working sets.
    parallel_passes: int = 32
    # Prometheus for metrics that name no address (e.g. the sandbox's own Prometheus).
    prometheus_address: str | None = None
    # Networks metric providers may reach although link-local / cloud metadata
    # (`--allow-metric-address CIDR`, repeatable).
    allow_metric_addresses: tuple[str, ...] = ()
    # The traffic router of a Rollout (None: no trafficRouting, the pods are the split).
    # Route objects are read on each pass of a Rollout that has a router.
    router_factory: RouterFactory | None = rollout_router
    # Where notification services are configured (None: notifications are off).
    notifications: ConfigSource | None = None
    notification_policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    # Canary step plugins by name (default: the entry-point group rollouts.step_plugins).
    step_plugins: Mapping[str, StepPlugin] = field(default_factory=load_step_plugins)

