"""Our own writes, until the watch brings them back.

**The Rollout's status** (`RolloutEcho`). A pass that wrote the status must not plan again
from the body it replaced: it would plan the same transition a second time from a status
the server no longer has (a 409 at best). So the next passes wait, woken by the Rollout's
watch, until the watched body is at another resourceVersion than every one known to be
behind the server; if the watch has not shown it within `ECHO_WAIT`, the Rollout is read
fresh (one GET) and planned from that. A status write whose outcome is unknown (a timeout,
a 5xx: it may have landed with only the reply lost) is handled the same way, except that
the next pass reads at once unless the watch already shows a newer version: waiting for an
echo of a write that may not have landed would only add the timeout.

**A held pass's actions** (`Echo`). The ReplicaSet and Service watch events of a pass's
actions come before its status echo, as a rule. A pass whose status is held back
(`rollouts.planner.write_folding`) has no echo to wait for, and the next pass may be woken
by the first of its actions' watch events (the Service's) while the caches do not show the
others yet: it would create the ReplicaSet again (an AlreadyExists no-op, but a request)
or scale it from a stale view (a 409). So until every action of a held pass shows in the
caches, or `ECHO_WAIT` is up, the next pass waits for them, woken by their watch events.
(A failed pass's actions are not waited for: which of them went out is not known, and each
is guarded, so a stale view costs a no-op create or a 409.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from rollouts.errors import KubeError
from rollouts.planner.types import Action, CreateReplicaSet, PinService, ScaleReplicaSet

__all__ = ["ECHO_WAIT", "NO_ECHO", "Echo", "Look", "RolloutEcho", "awaited", "look", "missing",
           "outcome_unknown", "read_retry_in"]

# How long to trust that our own write will come back through the watch before reading
# the object fresh (the status) or planning from the caches as they are (a held pass's
# actions).
ECHO_WAIT = 5.0


@dataclass(frozen=True)
class RolloutEcho:
    """The Rollout's versions the watch may still show that are behind the server (the
    ones our status writes replaced), and until when to wait for the watch to move past
    them before reading the Rollout fresh."""

    behind: frozenset[str]
    until: dt.datetime

    def after_write(self, version: str, now: dt.datetime, *, landed: bool) -> RolloutEcho:
        """Also behind: `version`, replaced by a status write (`landed`: known to have;
        else its outcome is unknown, and the next pass reads fresh unless the watch shows
        a newer version)."""
        return RolloutEcho(self.behind | {version},
                           now + dt.timedelta(seconds=ECHO_WAIT) if landed else now)

    def read(self, version: str) -> RolloutEcho:
        """After a fresh read: the server is at `version`, so that one is not behind."""
        return RolloutEcho(self.behind - {version}, self.until)


NO_ECHO = RolloutEcho(frozenset(), dt.datetime.min.replace(tzinfo=dt.UTC))

Look = Literal["watched", "latest", "read"] | float


def look(echo: RolloutEcho, watched: str, latest: str | None, now: dt.datetime) -> Look:
    """Which body a pass plans from: the watched one ("watched", once it is at none of the
    versions behind), the one last read fresh ("latest", its version, while it is not
    behind), else wait that many seconds for the watch, or "read" the Rollout once the
    wait is up."""
    if watched not in echo.behind:
        return "watched"
    if latest is not None and latest not in echo.behind:
        return "latest"
    left = (echo.until - now).total_seconds()
    return left if left > 0 else "read"


def outcome_unknown(exc: BaseException) -> bool:
    """Whether a write that raised `exc` may have been applied: the reply was lost (a
    transport failure after the request went out) or the server failed (5xx: e.g. a
    timeout after the write was committed). By status code only, never the message; a
    connection never made, a 409, a 429 and other 4xx were not applied."""
    if isinstance(exc, KubeError):
        return exc.status >= 500
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return False
    return isinstance(exc, httpx.TransportError)


def read_retry_in(exc: BaseException, failures: int) -> float | None:
    """Seconds until the fresh read of the Rollout is tried again, after it failed for the
    `failures`-th time in a row with `exc`; None: not a failure that passes (a 403, a bad
    request: the pass fails and backs off as any other failure). A refusal for load (429),
    a server error and a transport failure pass as a rule: the read is retried on its own
    short schedule (0.5 s doubling up to `ECHO_WAIT`) instead of failing the pass, whose
    backoff grows to minutes and would hold the Rollout long after the API recovered (the
    fault campaign's slowest runs). By status code only, never the message."""
    if isinstance(exc, KubeError):
        if exc.status != 429 and exc.status < 500:
            return None
    elif not isinstance(exc, httpx.TransportError):
        return None
    return min(ECHO_WAIT, 0.5 * 2.0 ** max(failures - 1, 0))


@dataclass(frozen=True)
class Echo:
    """An object a pass wrote: shown by the caches once they hold it at another
    resourceVersion than `replaced` (None: created, shown once it is there at all)."""

    kind: Literal["ReplicaSet", "Service"]
    name: str
    replaced: str | None


def awaited(actions: Sequence[Action]) -> tuple[Echo, ...]:
    """The echoes to wait for after applying `actions` (an unguarded write has none the
    caches could tell apart)."""
    echoes: list[Echo] = []
    for action in actions:
        if isinstance(action, CreateReplicaSet):
            echoes.append(Echo("ReplicaSet", action.name, None))
        elif isinstance(action, ScaleReplicaSet) and action.resource_version:
            echoes.append(Echo("ReplicaSet", action.name, action.resource_version))
        elif isinstance(action, PinService) and action.resource_version:
            echoes.append(Echo("Service", action.service, action.resource_version))
    return tuple(echoes)


def _version(body: Mapping[str, Any] | None) -> str | None:
    if body is None:
        return None
    return str((body.get("metadata") or {}).get("resourceVersion") or "")


def missing(echoes: Sequence[Echo], replica_sets: Iterable[Any],
            service: Callable[[str], Mapping[str, Any] | None]) -> tuple[Echo, ...]:
    """The echoes the caches do not show yet: `replica_sets` the Rollout's ReplicaSet
    bodies, `service(name)` a Service's body (None when not cached)."""
    by_name = {str((rs.get("metadata") or {}).get("name")): rs for rs in replica_sets
               if isinstance(rs, Mapping)}
    left = []
    for echo in echoes:
        body = by_name.get(echo.name) if echo.kind == "ReplicaSet" else service(echo.name)
        version = _version(body)
        if version is None or (echo.replaced is not None and version == echo.replaced):
            left.append(echo)
    return tuple(left)
