"""The pods/eviction subresource (policy/v1 Eviction), answering as kube-apiserver does.

- 201 and a Success Status: the pod is deleted (a pod already terminating is evicted too).
- 404 NotFound: no such pod. 400 BadRequest: the Eviction names another pod.
- 409 Conflict: `deleteOptions.preconditions.uid` is not the pod's uid.
- 429 TooManyRequests (cause DisruptionBudget): a PodDisruptionBudget selecting the pod
  allows no disruption now. 500: more than one budget selects the pod.

There is no disruption controller here, so a budget's allowed disruptions are computed from
the pods at the time of the request (healthy = Ready and not terminating; expected = the pods
it selects), with minAvailable or maxUnavailable as an int or a percentage (rounded up). As with
`unhealthyPodEvictionPolicy: IfHealthyBudget`, a pod that is not Ready may be evicted while the
budget is met.
"""

from __future__ import annotations

import math
from typing import Any

from rollouts.sandbox import apierrors
from rollouts.sandbox.apierrors import ApiError
from rollouts.sandbox.selectors import LabelSelector

Obj = dict[str, Any]
_PODS = ("", "v1", "pods")
_BUDGETS = ("policy", "v1", "poddisruptionbudgets")

VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."


def _ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _healthy(pod: Obj) -> bool:
    return _ready(pod) and not pod["metadata"].get("deletionTimestamp")


def _scaled(value: Any, total: int) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(total * int(value[:-1]) / 100)
    return int(value)


def desired_healthy(budget: Obj, expected: int) -> int:
    """Pods the budget wants healthy out of `expected` (minAvailable, or expected minus
    maxUnavailable). Example: maxUnavailable 1 of 4 -> 3; minAvailable 50% of 3 -> 2."""
    spec = budget.get("spec") or {}
    if spec.get("minAvailable") is not None:
        return _scaled(spec["minAvailable"], expected)
    if spec.get("maxUnavailable") is not None:
        return max(0, expected - _scaled(spec["maxUnavailable"], expected))
    return expected  # neither set: the API defaults to minAvailable 100%


def _budget_allows(budget: Obj, pod: Obj, pods: list[Obj]) -> None:
    selector = LabelSelector.from_dict((budget.get("spec") or {}).get("selector"))
    selected = [p for p in pods if selector.matches(p["metadata"].get("labels"))]
    healthy = sum(1 for p in selected if _healthy(p))
    wanted = desired_healthy(budget, len(selected))
    if not _healthy(pod) and healthy >= wanted:
        return
    if healthy - wanted > 0:
        return
    name = budget["metadata"]["name"]
    raise ApiError(429, "TooManyRequests", VIOLATION, details={"causes": [{
        "reason": "DisruptionBudget",
        "message": f"The disruption budget {name} needs {wanted} healthy pods and has "
                   f"{healthy} currently"}]})


def evict(emulator: Any, namespace: str, name: str, body: Any) -> Obj:
    """Carry out one eviction request against `emulator` (an ApiEmulator); raises ApiError."""
    meta = (body or {}).get("metadata") or {} if isinstance(body, dict) else {}
    if meta.get("name") and meta["name"] != name:
        raise apierrors.bad_request("name in URL does not match name in Eviction object")
    pod = emulator.get_object(*_PODS, namespace, name)
    if pod is None:
        raise apierrors.not_found("", "pods", name)
    options = (body or {}).get("deleteOptions") or {} if isinstance(body, dict) else {}
    wanted_uid = (options.get("preconditions") or {}).get("uid")
    if wanted_uid and wanted_uid != pod["metadata"].get("uid"):
        raise apierrors.conflict("", "pods", name, (
            f"Precondition failed: UID in precondition: {wanted_uid}, "
            f"UID in object meta: {pod['metadata'].get('uid')}"))
    if not pod["metadata"].get("deletionTimestamp"):
        labels = pod["metadata"].get("labels")
        budgets = [b for b in emulator.list_objects(*_BUDGETS, namespace=namespace)
                   if LabelSelector.from_dict((b.get("spec") or {}).get("selector"))
                   .matches(labels)]
        if len(budgets) > 1:
            raise ApiError(500, "InternalError", "This pod has more than one "
                           "PodDisruptionBudget, which the eviction subresource does not support.")
        if budgets:
            _budget_allows(budgets[0], pod, emulator.list_objects(*_PODS, namespace=namespace))
    emulator.delete_object(*_PODS, namespace, name)
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "code": 201}
