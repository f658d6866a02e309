"""A Rollout's body copied and parsed once per resourceVersion (issue 11: cost per pass).

Every pass needs the body as plain data (the status as the server has it, to compare the
planned one with) and as a validated model. A pass woken by anything but the Rollout's own
watch (a pause ending, a ReplicaSet or Service event, a held write coming due) sees the
same resourceVersion as the pass before; copying and validating it again was 4-7 % of the
controller's CPU at 1,000 Rollouts (docs/benchmarks.md). The same (uid, resourceVersion)
is the same object on the server, so its parse is kept and reused. A new version whose
spec is the one parsed before (our own status write's echo, as a rule: most new versions
in a canary are) reuses the validated spec and its copy, and reads only its metadata and
status.

Nothing a pass derives from these may be written back into them: the model and the
snapshot are shared by every pass of that resourceVersion (the reconciler replaces fields
with `dataclasses.replace`, never in place; tests/unit/test_parse_once.py checks it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rollouts.kube.cache import plain_copy
from rollouts.models.rollout import InvalidRollout, ValidRollout, parse_rollout, read_rollout

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


def version_of(metadata: Mapping[str, Any]) -> tuple[str, str]:
    """(uid, resourceVersion) of a Rollout from its metadata, read without copying it."""
    return str(metadata.get("uid") or ""), str(metadata.get("resourceVersion") or "")


def parse_once(previous: Parsed | None, body: Mapping[str, Any],
               version: tuple[str, str] | None = None) -> Parsed:
    """`previous` when `body` is the same object at the same version (a body without a
    resourceVersion is never taken for another), else `body` copied and parsed: its spec
    validated again only if it differs from `previous`'s. `version`: `version_of` the
    body's metadata, when the caller has it."""
    uid, resource_version = (version if version is not None
                             else version_of(body.get("metadata") or {}))
    if previous is None or previous.uid != uid:
        previous = None
    elif resource_version and previous.resource_version == resource_version:
        return previous
    spec = body.get("spec")
    if (previous is not None and spec == previous.snapshot.get("spec")
            and body.get("apiVersion") == previous.snapshot.get("apiVersion")):
        # What parse_rollout derives from the spec is the same: only metadata and status
        # are new (read as parse_rollout reads them). The spec is not copied either: the
        # previous copy is equal, and shared copies are never written.
        rest: dict[str, Any] = plain_copy({k: v for k, v in body.items() if k != "spec"})
        read = read_rollout(rest)  # its spec is not read
        if "spec" in previous.snapshot:
            rest["spec"] = previous.snapshot["spec"]
        rollout = dataclasses.replace(previous.rollout, metadata=read.metadata,
                                      status=read.status)
        return Parsed(uid, resource_version, rest, rollout)
    snapshot: dict[str, Any] = plain_copy(body)
    return Parsed(uid, resource_version, snapshot, parse_rollout(snapshot))
