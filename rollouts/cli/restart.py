"""`rollouts restart NAME`: set spec.restartAt, so the controller replaces every pod created
before that moment, one at a time (rollouts/planner/restart.py), without a new revision.

Like `set image` and `undo` it writes the spec: in a GitOps setup the change belongs in Git
(a `restartAt` there), or the next sync reverts it. The write is a merge patch of
`spec.restartAt` alone, guarded by the resourceVersion it read.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from rollouts.cli.kubeopts import GROUP, VERSION, CliError, api_call
from rollouts.errors import ConflictError
from rollouts.kube.client import KubeClient
from rollouts.models.base import parse_duration
from rollouts.models.wire import format_time, whole_seconds

WRITE_ATTEMPTS = 3


def restart_moment(now: dt.datetime, delay: str | None) -> dt.datetime:
    """When the restart starts: now, or `delay` (a duration such as 30s or 5m) from now, at
    whole seconds (pods created in that same second count as new)."""
    seconds = 0
    if delay:
        try:
            seconds = parse_duration(delay)
        except ValueError as exc:
            raise CliError(f"--in: {exc}") from None
    return whole_seconds(now + dt.timedelta(seconds=seconds))


def restart_patch(moment: dt.datetime, resource_version: str) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": resource_version},
            "spec": {"restartAt": format_time(moment)}}


@dataclass(frozen=True)
class RestartRequest:
    restart_at: dt.datetime
    previous: str | None  # the restartAt it replaced


async def request_restart(client: KubeClient, namespace: str, name: str,
                          moment: dt.datetime) -> RestartRequest:
    for _ in range(WRITE_ATTEMPTS):
        async with api_call("get", "rollouts", namespace, name):
            body = await client.get(GROUP, VERSION, "rollouts", namespace, name)
        previous = (body.get("spec") or {}).get("restartAt")
        version = str((body.get("metadata") or {}).get("resourceVersion") or "")
        async with api_call("patch", "rollouts", namespace, name):
            try:
                await client.patch_merge(GROUP, VERSION, "rollouts", namespace, name,
                                         restart_patch(moment, version))
            except ConflictError:
                continue
        return RestartRequest(moment, str(previous) if previous else None)
    raise CliError(f"rollout {name} kept changing while it was being written "
                   f"({WRITE_ATTEMPTS} conflicts in a row); nothing was written, try again")
