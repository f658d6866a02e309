"""The Service an experiment template may ask for (Argo Rollouts v1alpha1
`TemplateSpec.service`): one Service selecting exactly that template's pods, owned by the
Experiment and deleted when its pods are scaled down (rollouts/experiments/manifests.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema

from rollouts.models.base import ApiModel

MAX_PORT = 65535


def _check_port(value: object) -> object:
    """A port number (1-65535) or an IANA port name (as Kubernetes' targetPort)."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_PORT:
        return value
    if isinstance(value, str) and 1 <= len(value) <= 15:
        return value
    raise ValueError("expected a port number (1-65535) or a port name")


PortNumberOrName = Annotated[
    int | str,
    BeforeValidator(_check_port),
    PlainSerializer(lambda v: v),
    WithJsonSchema({"x-kubernetes-int-or-string": True,
                    "anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_PORT},
                              {"type": "string", "minLength": 1, "maxLength": 15}]}),
]


class ServicePort(ApiModel):
    """How one container port of the template is exposed: the container port whose number
    (or name) is `targetPort` is served on `port`, under `name` if given. Container ports
    that no entry names are exposed on their own number, as without `ports`; the protocol is
    the container port's."""

    port: int = Field(ge=1, le=MAX_PORT)
    target_port: PortNumberOrName
    name: str | None = None


def exposes(port: ServicePort, container_port: int, container_port_name: str | None) -> bool:
    """Whether `port` names this container port (by number, or by name when a string)."""
    if isinstance(port.target_port, int):
        return port.target_port == container_port
    return bool(container_port_name) and port.target_port == container_port_name


class TemplateService(ApiModel):
    """A Service for one experiment template's pods (name defaults to the ReplicaSet's)."""

    name: str | None = None
    ports: list[ServicePort] | None = None


def container_ports(pod_spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ports a pod spec's containers declare (the entries with a containerPort)."""
    found: list[Mapping[str, Any]] = []
    for container in pod_spec.get("containers") or ():
        if not isinstance(container, Mapping):
            continue
        found += [p for p in container.get("ports") or ()
                  if isinstance(p, Mapping) and isinstance(p.get("containerPort"), int)]
    return found


def unmatched_ports(service: TemplateService, pod_spec: Mapping[str, Any]) -> list[int]:
    """Indexes of `service.ports` entries whose targetPort names no container port (they
    would expose nothing: refused rather than ignored)."""
    declared = container_ports(pod_spec)
    return [i for i, port in enumerate(service.ports or ())
            if not any(exposes(port, p["containerPort"], p.get("name")) for p in declared)]
