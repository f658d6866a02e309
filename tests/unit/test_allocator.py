"""rollouts.controller.allocator: when the heap is trimmed, and that the loop trims on growth
only (the trim and the resident size are injected; no clock, no real heap)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from rollouts.controller import allocator
from rollouts.controller.allocator import GROWTH, should_trim

MIB = 2**20


@pytest.mark.parametrize(("resident", "trimmed_at", "trim"), [
    (100 * MIB, 0, True),                     # the first check after start
    (100 * MIB, 100 * MIB, False),            # nothing grew
    (100 * MIB + GROWTH - 1, 100 * MIB, False),
    (100 * MIB + GROWTH, 100 * MIB, True),
    (90 * MIB, 100 * MIB, False),             # shrank
])
def test_should_trim_on_growth_only(resident: int, trimmed_at: int, trim: bool) -> None:
    assert should_trim(resident, trimmed_at) is trim


def test_release_trims_when_grown_and_not_when_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = iter([
        100 * MIB,              # start: /proc is there
        100 * MIB, 80 * MIB,    # check 1: grew from 0 -> trim; after the trim
        81 * MIB,               # check 2: +1 MiB -> no trim
        79 * MIB,               # check 3: shrank -> no trim, growth measured from 79
        79 * MIB + GROWTH, 70 * MIB,  # check 4: +GROWTH -> trim; after the trim
    ])
    trims: list[int] = []
    monkeypatch.setattr(allocator, "malloc_trim", lambda: lambda: trims.append(1))

    def resident() -> int:
        try:
            return next(sizes)
        except StopIteration:
            raise asyncio.CancelledError from None

    monkeypatch.setattr(allocator, "resident_bytes", resident)

    async def no_wait(_: float) -> None:
        return None

    monkeypatch.setattr(allocator.asyncio, "sleep", no_wait)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(allocator.release_freed_memory())
    assert len(trims) == 2


def test_without_malloc_trim_the_loop_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "malloc_trim", lambda: None)
    asyncio.run(allocator.release_freed_memory())  # returns at once


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")
def test_malloc_trim_and_resident_size_on_linux() -> None:
    trim = allocator.malloc_trim()
    assert trim is not None
    trim()
    resident = allocator.resident_bytes()
    assert resident is not None and resident > MIB


def run_python(code: str) -> None:
    """`code` in a fresh interpreter (what it checks is process-wide)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr


def test_the_controller_imports_no_unused_optional_library() -> None:
    """kopf without the Kubernetes clients, httpcore without trio (rollouts.operator); both
    still importable afterwards by whoever wants them."""
    run_python("import sys, importlib.util; import rollouts.operator; "
               "assert 'kopf' in sys.modules and 'httpcore' in sys.modules; "
               "assert 'kubernetes' not in sys.modules, 'kubernetes imported'; "
               "assert 'trio' not in sys.modules, 'trio imported'; "
               "import kopf._cogs.helpers.thirdparty as t; assert t.V1ObjectMetaSync is None; "
               "[importlib.import_module(m) for m in ('kubernetes', 'trio') "
               " if importlib.util.find_spec(m) is not None]")


def test_tune_collector_freezes_what_is_alive_and_widens_the_young_generation() -> None:
    """In a subprocess: the collector's settings are process-wide."""
    run_python("import gc; from rollouts.controller.allocator import tune_collector, "
               "YOUNG_THRESHOLD; before = gc.get_threshold(); tune_collector(); "
               "assert gc.get_freeze_count() > 0; "
               "assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:]), gc.get_threshold()")
