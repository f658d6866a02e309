"""Ping-pong (canary.pingPong): two Services that take turns being the stable one.

Argo Rollouts semantics: `status.canary.stablePingPong` says which of pingService /
pongService selects the stable revision; the other one is the canary's. The first revision
becomes stable behind ping; each promotion hands the stable role to the Service that
carried the canary, so no Service's selector is changed while it carries traffic: the
routes hold the full weight on the canary's Service when the promotion is made, and that is
exactly "all to stable" once the roles have swapped. Pure.

E.g. stable ping (v1), release v2: pong selects v2, the routes walk pong 5% → 100%; on
promotion stablePingPong becomes pong and ping is now the canary's, at weight 0.
"""

from __future__ import annotations

from typing import Literal

from rollouts.models.rollout import CanaryStrategy, RolloutStatus

Side = Literal["ping", "pong"]


def stable_side(status: RolloutStatus) -> Side:
    """Which Service is stable now; ping until a promotion has said otherwise."""
    canary = status.canary
    return canary.stable_ping_pong if canary and canary.stable_ping_pong else "ping"


def other(side: Side) -> Side:
    return "pong" if side == "ping" else "ping"


def recorded_side(strategy: CanaryStrategy | None, status: RolloutStatus) -> Side | None:
    """status.canary.stablePingPong to write: None without pingPong."""
    return None if strategy is None or strategy.ping_pong is None else stable_side(status)


def side_services(strategy: CanaryStrategy, status: RolloutStatus
                  ) -> tuple[str | None, str | None]:
    """(stable Service, canary Service) of the ping-pong pair now; (None, None) without it."""
    pair = strategy.ping_pong
    if pair is None:
        return None, None
    names = {"ping": pair.ping_service, "pong": pair.pong_service}
    side = stable_side(status)
    return names[side], names[other(side)]
