"""A Rollout's body copied and parsed once per resourceVersion (issue 11: cost per pass).

Every pass needs the body as plain data (the status as the server has it, to compare the
planned one with) and as a validated model. A pass woken by anything but the Rollout's own
watch (a pause ending, a ReplicaSet or Service event, a held write coming due) sees the
same resourceVersion as the pass before; copying and validating it again was 4-7 % of the
controller's CPU at 1,000 Rollouts (docs/benchmarks.md). The same (uid, resourceVersion)
is the same object on the server, so its parse is kept and reused.

Nothing a pass derives from these may be written back into them: the model and the
snapshot are shared by every pass of that resourceVersion (the reconciler replaces fields
with `dataclasses.replace`, never in place; tests/unit/test_parse_once.py checks it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rollouts.kube.cache import plain_copy
from rollouts.models.rollout import InvalidRollout, ValidRollout, parse_rollout

__all__ = ["Parsed", "parse_once", "version_of"]


@dataclass(frozen=True)
class Parsed:
    """One version of a Rollout: its body as plain data and its model."""

    uid: str
    resource_version: str
    snapshot: Mapping[str, Any]  # shared: read, never written
    rollout: ValidRollout | InvalidRollout

    @property
    def status(self) -> Any:
        """The status as the server has it (raw)."""
        return self.snapshot.get("status")


def version_of(body: Mapping[str, Any]) -> tuple[str, str]:
    """(uid, resourceVersion) of a Rollout body, read without copying it."""
    metadata = body.get("metadata") or {}
    return str(metadata.get("uid") or ""), str(metadata.get("resourceVersion") or "")


def parse_once(previous: Parsed | None, body: Mapping[str, Any]) -> Parsed:
    """`previous` when `body` is the same object at the same version (a body without a
    resourceVersion is never taken for another), else `body` copied and parsed."""
    uid, version = version_of(body)
    if (previous is not None and version and previous.resource_version == version
            and previous.uid == uid):
        return previous
    snapshot: dict[str, Any] = plain_copy(body)
    return Parsed(uid, version, snapshot, parse_rollout(snapshot))
