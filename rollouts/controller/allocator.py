"""Handing freed heap back to the operating system while the controller's memory grows.

glibc's malloc keeps the memory a process frees for its next allocations and returns it to
the system only from the top of the heap. The controller frees most of its start-up burst
(kopf lists every watched object and hands each to a short-lived worker at once), but what
stays allocated in between pins the heap, so the process's resident size stays near the
burst's peak for good. `malloc_trim(0)` gives back every free page of every arena.

Trimming walks the heap, so it is done only when the resident size has grown by `GROWTH`
since the last trim (the start-up burst, a burst of changes): a quiet controller reads one
small /proc file a second and trims nothing. Without glibc (musl, macOS) this does nothing.
Measured at 1,000 Rollouts in docs/benchmarks.md ("Memory and lag at 1,000 Rollouts,
round 2").
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import os
from collections.abc import Callable

# Container objects allocated (net) between two collections of the youngest generation
# (CPython's default: 700). See `tune_collector`.
YOUNG_THRESHOLD = 5_000
# Resident growth (bytes) since the last trim that makes the next check trim.
GROWTH = 4 * 2**20
INTERVAL = 1.0  # seconds between checks


def malloc_trim() -> Callable[[], object] | None:
    """glibc's `malloc_trim(0)`, or None where there is no such function."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


def resident_bytes() -> int | None:
    """This process's resident set size, or None without /proc."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def should_trim(resident: int, trimmed_at: int, growth: int = GROWTH) -> bool:
    """Whether the resident size has grown enough since the last trim to trim again."""
    return resident - trimmed_at >= growth


async def release_freed_memory(interval: float = INTERVAL) -> None:
    """Until cancelled: every `interval`, trim the heap if the resident size grew by GROWTH
    since the last trim (see the module's doc)."""
    trim = malloc_trim()
    if trim is None or resident_bytes() is None:
        return
    trimmed_at = 0
    while True:
        await asyncio.sleep(interval)
        resident = resident_bytes()
        if resident is None:
            return
        if should_trim(resident, trimmed_at):
            trim()
            trimmed_at = resident_bytes() or resident
        else:
            trimmed_at = min(trimmed_at, resident)  # it shrank: measure growth from here


def tune_collector(young: int = YOUNG_THRESHOLD) -> None:
    """Make the cyclic garbage collector cheaper for a process that is the controller.

    At 1,000 Rollouts a full collection walked ~2 million objects (~0.5 s) and ran every
    few seconds in a burst: the collector took a quarter of the controller's CPU. What is
    alive once the modules are imported (classes, functions, schemas) lives as long as the
    process: `gc.freeze()` takes it out of every later collection. A youngest generation of
    `young` objects instead of 700 lets the short-lived objects of a pass and of an event
    (decoded bodies, copies, models) die before they are promoted, so fewer reach the oldest
    generation and trigger a full collection. Process-wide: call it only where the
    controller is the program (not when it is embedded in a thread of another program).
    """
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(young, middle, oldest)
