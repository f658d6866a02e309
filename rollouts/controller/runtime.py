"""The controller's mutable state (one per running operator, kept in kopf's memo) and the
keys its wake-ups are filed under."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rollouts.analysis.runner import ProviderSet
from rollouts.controller.config import OperatorConfig
from rollouts.kube.client import KubeClient
from rollouts.kube.events import EventMemory
from rollouts.models.wire import controller_owner
from rollouts.notifications.delivery import Notifier

Key = tuple[str, str]  # (namespace, name)


@dataclass
class Runtime:
    """Per-operator mutable state, kept in kopf's memo (one per running operator)."""

    client: KubeClient
    providers: ProviderSet
    # Rollout passes running at once (OperatorConfig.parallel_passes).
    passes: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(OperatorConfig.parallel_passes))
    # One per running reconcile daemon; created by the daemon, dropped when it exits.
    wakeups: dict[Key, asyncio.Event] = field(default_factory=dict)
    # (namespace, service) -> Rollouts whose strategy names it, and the reverse.
    service_users: dict[Key, set[Key]] = field(default_factory=dict)
    services_of: dict[Key, tuple[str, ...]] = field(default_factory=dict)
    notifier: Notifier | None = None
    # The Events written lately about each Rollout, to count repeats on them.
    events: EventMemory = field(default_factory=EventMemory)
    # Whether the first reconcile daemon has started (said once: a process-level line).
    serving: bool = False

    def wakeup(self, key: Key) -> asyncio.Event:
        event = self.wakeups.get(key)
        if event is None:
            event = self.wakeups[key] = asyncio.Event()
        return event

    def wake(self, key: Key) -> None:
        # Nothing to do without a daemon: a starting daemon makes its first pass anyway, and
        # creating events here would leak one per deleted Rollout.
        event = self.wakeups.get(key)
        if event is not None:
            event.set()

    def set_services(self, key: Key, services: tuple[str, ...]) -> None:
        if self.services_of.get(key, ()) == services:
            return
        namespace = key[0]
        for service in self.services_of.pop(key, ()):
            users = self.service_users.get((namespace, service))
            if users is not None:
                users.discard(key)
                if not users:
                    del self.service_users[(namespace, service)]
        if services:
            self.services_of[key] = services
        for service in services:
            self.service_users.setdefault((namespace, service), set()).add(key)

    def wake_namespace(self, namespace: str | None) -> None:
        """Wake every Rollout of a namespace (all of them for None): a template changed."""
        for key, event in self.wakeups.items():
            if namespace is None or key[0] == namespace:
                event.set()

    def forget(self, key: Key) -> None:
        self.wakeups.pop(key, None)
        self.set_services(key, ())
        self.events.forget(key)
        if self.notifier is not None:  # notifications
            self.notifier.forget(key)


def owner_key(body: Mapping[str, Any], namespace: str | None) -> Key | None:
    """The Rollout controlling an object, if one does."""
    owner = controller_owner(body)
    return None if owner is None else (namespace or "", owner[0])


def is_owned(body: Any, **_: Any) -> bool:
    return controller_owner(body) is not None


def experiment_key(namespace: str | None, name: str | None) -> Key:
    return (namespace or "", f"experiment/{name or ''}")


def experiment_owner_key(body: Mapping[str, Any], namespace: str | None) -> Key | None:
    """The Experiment controlling an object, if one does."""
    owner = controller_owner(body, "Experiment")
    return None if owner is None else experiment_key(namespace, owner[0])


def is_experiment_owned(body: Any, **_: Any) -> bool:
    return controller_owner(body, "Experiment") is not None


def run_key(namespace: str | None, name: str | None) -> Key:
    # A separate key space from Rollouts (an AnalysisRun may share a Rollout's name).
    return (namespace or "", f"analysisrun/{name or ''}")


def deployment_key(name: str) -> str:
    # Kept with the Service names a Rollout watches; "/" is in no Service name.
    return f"deployment/{name}"
