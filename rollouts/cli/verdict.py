"""What `rollouts status` concludes from a Rollout's status, for CI (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollouts.cli.kubeopts import CliError
from rollouts.models.rollout import Rollout


@dataclass(frozen=True)
class Verdict:
    """Whether CI can stop waiting, the exit code if so, and why."""

    done: bool
    code: int
    reason: str


def assess(rollout: Rollout, *, until_paused: bool = False) -> Verdict:
    """0 Healthy (or paused for a human with `until_paused`), 1 failed, else not done.

    Nothing is trusted until the controller has observed the current generation: before
    that the phase describes the previous spec.
    """
    status = rollout.status
    meta = rollout.metadata
    if status.observed_generation is None or status.observed_generation < meta.generation:
        return Verdict(False, 2, f"waiting for the controller to observe generation "
                                 f"{meta.generation} (observed {status.observed_generation})")
    invalid = status.condition("InvalidSpec")
    if (invalid is not None and invalid.status == "True") or status.message.startswith(
            "InvalidSpec"):
        detail = invalid.message if invalid is not None and invalid.message else status.message
        return Verdict(True, 1, f"invalid spec: {detail.removeprefix('InvalidSpec: ')}")
    if status.abort:
        return Verdict(True, 1, f"aborted: {status.abort_message or status.message}")
    if status.phase == "Degraded":
        return Verdict(True, 1, f"degraded: {status.message}")
    if status.phase == "Healthy":
        return Verdict(True, 0, status.message or "healthy")
    if status.phase == "Paused" and until_paused:
        return Verdict(True, 0, f"paused: {status.message}")
    return Verdict(False, 2, f"{status.phase or 'Unknown'}: {status.message}")


async def wait_for_verdict(client: Any, namespace: str, name: str, verdict: Verdict,
                seconds: int | None, until_paused: bool, *, quiet: bool) -> Verdict:
    """Follow the Rollout until `status` can conclude, or `seconds` pass (exit 2)."""
    import asyncio

    from rich.console import Console

    from rollouts.cli.cluster import watch_views

    console = Console(highlight=False, emoji=False)
    last = verdict.reason

    async def follow() -> Verdict:
        nonlocal last
        async for view in watch_views(client, namespace, name, plurals=("rollouts",)):
            if view is None:
                raise CliError(f"rollout {name} was deleted while waiting")
            current = assess(view.rollout, until_paused=until_paused)
            if not quiet and current.reason != last:
                console.print(f"  {current.reason}", markup=False, soft_wrap=True)
            last = current.reason
            if current.done:
                return current
        raise CliError("the watch ended unexpectedly")  # pragma: no cover

    if not quiet:
        console.print(f"Waiting for rollout {name}: {verdict.reason}", markup=False, soft_wrap=True)
    try:
        async with asyncio.timeout(seconds):
            return await follow()
    except TimeoutError:
        return Verdict(False, 2, last)
