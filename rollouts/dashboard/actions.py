"""The dashboard's one seam to the operations: the CLI's code path, unchanged.

`promote`, `abort`, `retry`, `pause` and `resume` are decided by
`rollouts.planner.operations` and written by `rollouts.cli.cluster.write_operation` (read,
decide, merge-patch the status with the resourceVersion, re-decide on a conflict), exactly
as `rollouts promote NAME` does. Everything the dashboard does goes through `apply_operation`
so that a change of that API is a change of this function only.
"""

from __future__ import annotations

from dataclasses import dataclass

from rollouts.cli import changes
from rollouts.cli.cluster import write_operation
from rollouts.kube.client import KubeClient

OPERATION_NAMES = ("promote", "abort", "retry", "pause", "resume")


@dataclass(frozen=True)
class Outcome:
    message: str  # "rollout web promoted (namespace default)"
    changes: tuple[str, ...]  # "currentStepIndex: 1 -> 2", as the CLI prints them


async def apply_operation(client: KubeClient, namespace: str, name: str, operation: str, *,
                          full: bool = False) -> Outcome:
    """Run one operation like the CLI; OperationError / CliError propagate (refusals)."""
    result = await write_operation(client, namespace, name, operation, full=full)
    return Outcome(changes.operation_done(name, namespace, operation, full=full),
                   tuple(changes.operation_changes(result.before, result.updates)))
