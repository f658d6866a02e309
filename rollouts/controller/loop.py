"""The loop of one object's daemon: a pass whenever the object is woken or its requeue
comes due, conflicts observed again (never retried as is), failures backed off."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from rollouts.controller.config import OperatorConfig
from rollouts.controller.runtime import Key, Runtime
from rollouts.errors import ConflictError, KubeError

log = logging.getLogger("rollouts.operator")


class Stopped(Protocol):
    """What the loop needs of kopf's DaemonStopped: true once stopped, and a wait for it."""

    def __bool__(self) -> bool: ...

    def wait(self) -> Awaitable[object]: ...


class Done(Exception):
    """Raised by a pass whose object needs no more passes: the loop ends."""


def clamp(config: OperatorConfig, delay: float | None) -> float | None:
    if delay is None:
        return None
    return min(config.requeue_ceiling, max(config.requeue_floor, delay))


async def sleep(wake: asyncio.Event, stopped: Stopped, delay: float | None) -> None:
    """Until the object is woken, the daemon is stopped, or `delay` seconds pass."""
    if wake.is_set() or stopped:
        return
    waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stopped.wait())]
    try:
        await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def run_loop(config: OperatorConfig, runtime: Runtime, key: Key,
                stopped: Stopped, one_pass: Callable[[], Awaitable[float | None]],
                names: Mapping[str, str]) -> None:
    """Run `one_pass` whenever the object is woken or its requeue comes due, until stopped.

    A conflict (some write was based on a stale view) is never retried as is: the next pass
    observes again, soon after the watch delivers the change (its event wakes the loop),
    backing off while conflicts repeat. Any other failure is logged with the object's name
    and retried with exponential backoff; other objects are unaffected.
    """
    wake = runtime.wakeup(key)
    wake.set()  # the first pass runs at once
    delay: float | None = None
    failures = conflicts = 0
    try:
        while not stopped:
            await sleep(wake, stopped, delay)
            if stopped:
                break
            wake.clear()
            try:
                delay = clamp(config, await one_pass())
                failures = conflicts = 0
            except Done:
                return
            except ConflictError as exc:
                conflicts += 1
                log.debug("conflict; observing again", extra={**names, "error": str(exc)})
                delay = min(config.requeue_ceiling,
                            config.requeue_floor * 2 ** min(conflicts - 1, 6))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = min(config.requeue_ceiling,
                            config.requeue_floor * 2 ** min(failures, 20))
                log.error("pass failed", exc_info=not isinstance(exc, KubeError),
                          extra={**names, "error": str(exc), "error_type": type(exc).__name__,
                                 "failures": failures, "retry_in": delay})
    finally:
        runtime.forget(key)

