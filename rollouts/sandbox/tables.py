"""Table answers (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), as `kubectl get`
asks for them: the columns kube-apiserver's printers give built-in kinds (pods: READY, STATUS,
RESTARTS; services: TYPE, CLUSTER-IP, PORT(S)...), and a CRD's additionalPrinterColumns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

from rollouts.sandbox.selectors import dotted, get_path

Obj = dict[str, Any]
Cell = Callable[[Obj, dt.datetime], Any]


def parse_time(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None


def human_age(seconds: float) -> str:
    """Ages as kubectl prints them (duration.HumanDuration, short form)."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    if s < 3600 * 3:
        m, r = divmod(s, 60)
        return f"{m}m{r}s" if m < 10 and r else f"{m}m"
    if s < 86400 * 2:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _age(obj: Obj, now: dt.datetime) -> str:
    created = parse_time(obj.get("metadata", {}).get("creationTimestamp", ""))
    return human_age((now - created).total_seconds()) if created else "<unknown>"


def _field(*path: str, default: Any = 0) -> Cell:
    def cell(obj: Obj, _: dt.datetime) -> Any:
        value = get_path(obj, path)
        return default if value is None else value
    return cell


def _pod_ready(obj: Obj, _: dt.datetime) -> str:
    containers = (obj.get("spec") or {}).get("containers") or []
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    return f"{sum(1 for s in statuses if s.get('ready'))}/{len(containers)}"


def _pod_status(obj: Obj, _: dt.datetime) -> str:
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    status = obj.get("status") or {}
    for s in status.get("containerStatuses") or []:
        waiting = (s.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return str(waiting["reason"])
    return str(status.get("reason") or status.get("phase") or "Unknown")


def _restarts(obj: Obj, _: dt.datetime) -> int:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount") or 0) for s in statuses)


def _external_ip(obj: Obj, _: dt.datetime) -> str:
    spec = obj.get("spec") or {}
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    ips = [i.get("ip") or i.get("hostname") for i in ingress] + list(spec.get("externalIPs") or [])
    if ips:
        return ",".join(str(i) for i in ips if i)
    return "<pending>" if spec.get("type") == "LoadBalancer" else "<none>"


def _ports(obj: Obj, _: dt.datetime) -> str:
    ports = (obj.get("spec") or {}).get("ports") or []
    text = ",".join(
        f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/"
        f"{p.get('protocol', 'TCP')}" for p in ports)
    return text or "<none>"


def _ready_of(obj: Obj, _: dt.datetime) -> str:
    status = obj.get("status") or {}
    return f"{status.get('readyReplicas') or 0}/{(obj.get('spec') or {}).get('replicas', 0)}"


def _count(key: str) -> Cell:
    return lambda obj, _: len(obj.get(key) or {})


def _job_status(obj: Obj, _: dt.datetime) -> str:
    conditions = (obj.get("status") or {}).get("conditions") or []
    for kind, label in (("Failed", "Failed"), ("Complete", "Complete"),
                        ("Suspended", "Suspended")):
        if any(c.get("type") == kind and c.get("status") == "True" for c in conditions):
            return label
    return "Running"


def _completions(obj: Obj, _: dt.datetime) -> str:
    wanted = (obj.get("spec") or {}).get("completions", 1)
    return f"{(obj.get('status') or {}).get('succeeded') or 0}/{wanted}"


def _crd_created(obj: Obj, _: dt.datetime) -> str:
    return str(obj.get("metadata", {}).get("creationTimestamp", ""))


def _holder(obj: Obj, _: dt.datetime) -> str:
    return str((obj.get("spec") or {}).get("holderIdentity") or "")


# (group, plural) -> [(column, type, cell)], as kube-apiserver's printers
# (pkg/printers/internalversion).
Columns = Sequence[tuple[str, str, Cell]]
BUILTIN_COLUMNS: Final[Mapping[tuple[str, str], Columns]] = MappingProxyType({
    ("", "pods"): [("Ready", "string", _pod_ready), ("Status", "string", _pod_status),
                   ("Restarts", "string", _restarts)],
    ("", "services"): [("Type", "string", _field("spec", "type", default="ClusterIP")),
                       ("Cluster-IP", "string", _field("spec", "clusterIP", default="<none>")),
                       ("External-IP", "string", _external_ip),
                       ("Port(s)", "string", _ports)],
    ("", "namespaces"): [("Status", "string", _field("status", "phase", default=""))],
    ("", "configmaps"): [("Data", "integer", _count("data"))],
    ("", "secrets"): [("Type", "string", _field("type", default="Opaque")),
                      ("Data", "integer", _count("data"))],
    ("", "serviceaccounts"): [("Secrets", "integer", _count("secrets"))],
    ("", "events"): [("Type", "string", _field("type", default="")),
                     ("Reason", "string", _field("reason", default="")),
                     ("Message", "string", _field("message", default=""))],
    ("apps", "replicasets"): [("Desired", "integer", _field("spec", "replicas")),
                              ("Current", "integer", _field("status", "replicas")),
                              ("Ready", "integer", _field("status", "readyReplicas"))],
    ("apps", "deployments"): [("Ready", "string", _ready_of),
                              ("Up-to-date", "integer", _field("status", "updatedReplicas")),
                              ("Available", "integer", _field("status", "availableReplicas"))],
    ("batch", "jobs"): [("Status", "string", _job_status),
                        ("Completions", "string", _completions)],
    ("coordination.k8s.io", "leases"): [("Holder", "string", _holder)],
    ("apiextensions.k8s.io", "customresourcedefinitions"): [
        ("Created At", "date", _crd_created)],
})


def _column(name: str, type_: str, description: str) -> Obj:
    return {"name": name, "type": type_, "format": "name" if name == "Name" else "",
            "priority": 0, "description": description}


def table(group: str, plural: str, printer_columns: Sequence[tuple[str, str]],
          items: Sequence[Obj], resource_version: str, now: dt.datetime) -> Obj:
    """A meta.k8s.io/v1 Table of `items`: NAME, the kind's columns, AGE."""
    cells: list[tuple[str, str, Cell]] = list(BUILTIN_COLUMNS.get((group, plural), []))
    for name, path in printer_columns:
        if name.lower() != "age":
            cells.append((name, "string", _field(*dotted(path), default="")))
    with_age = (group, plural) != ("apiextensions.k8s.io", "customresourcedefinitions")
    columns = [_column("Name", "string", "Name must be unique within a namespace.")]
    columns += [_column(name, type_, name) for name, type_, _ in cells]
    if with_age:
        columns.append(_column("Age", "string", "CreationTimestamp"))
    rows = []
    for obj in items:
        row: list[Any] = [obj["metadata"]["name"]]
        row += [cell(obj, now) for _, _, cell in cells]
        if with_age:
            row.append(_age(obj, now))
        rows.append({"cells": row, "object": {"kind": "PartialObjectMetadata",
                                              "apiVersion": "meta.k8s.io/v1",
                                              "metadata": obj["metadata"]}})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": columns, "rows": rows}
