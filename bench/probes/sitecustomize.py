"""Probes for the controller subprocess of bench/run_canaries.py (docs/benchmarks.md,
"Memory and lag at 1,000 Rollouts, round 2"). Put this directory first on PYTHONPATH; the
bench passes its environment to the controller, and these act only in a process whose
command line has the word `controller`:

    PYTHONPATH=bench/probes:$PWD BENCH_GC_STATS=/tmp/gc.txt python3 bench/run_canaries.py ...

BENCH_GC_STATS=FILE     every 5 s, append "unix-time [collections by generation]
                        [CPU seconds in them by generation]" (thread CPU time inside the
                        collector, from gc.callbacks: waiting for a CPU not counted)
BENCH_MALLOC_TRIM=S     malloc_trim(0) every S seconds (what the allocator keeps)
BENCH_MMAP_THRESHOLD=B  mallopt(M_MMAP_THRESHOLD, B): blocks of B bytes and more mmapped
                        (and returned when freed); a fixed threshold stops glibc raising it
BENCH_TRACEMALLOC=S     tracemalloc (12 frames); every S seconds the largest allocation
                        sites by file, line and traceback into /tmp/bench-trace-N.txt (slow)
"""

from __future__ import annotations

import ctypes
import os
import threading
import time


def _is_controller() -> bool:
    try:
        with open("/proc/self/cmdline", "rb") as cmdline:
            return b"controller" in cmdline.read().split(b"\0")
    except OSError:
        return False


def _every(seconds: float, action) -> None:  # type: ignore[no-untyped-def]
    def loop() -> None:
        while True:
            time.sleep(seconds)
            action()

    threading.Thread(target=loop, name="bench-probe", daemon=True).start()


def _gc_stats(path: str) -> None:
    import gc

    totals = {"start": 0.0, "seconds": [0.0, 0.0, 0.0], "count": [0, 0, 0]}

    def callback(phase: str, info: dict) -> None:  # type: ignore[type-arg]
        if phase == "start":
            totals["start"] = time.thread_time()
        else:
            generation = info["generation"]
            totals["seconds"][generation] += time.thread_time() - totals["start"]
            totals["count"][generation] += 1

    gc.callbacks.append(callback)

    def dump() -> None:
        with open(path, "a") as out:
            seconds = [round(s, 2) for s in totals["seconds"]]
            out.write(f"{time.time():.0f} {totals['count']} {seconds}\n")

    _every(5.0, dump)


def _tracemalloc(seconds: float) -> None:
    import tracemalloc

    tracemalloc.start(12)
    state = {"n": 0}

    def dump() -> None:
        state["n"] += 1
        snapshot = tracemalloc.take_snapshot()
        lines = []
        for key in ("filename", "lineno", "traceback"):
            lines.append(f"--- by {key}")
            for stat in snapshot.statistics(key)[:30]:
                lines.append(f"{stat.size / 2**20:8.2f} MiB {stat.count:8d}")
                frames = stat.traceback.format(limit=12, most_recent_first=True)
                lines.extend("      " + frame.strip() for frame in frames[::2])
        with open(f"/tmp/bench-trace-{state['n'] % 3}.txt", "w") as out:
            out.write("\n".join(lines))

    _every(seconds, dump)


if _is_controller():
    _libc = ctypes.CDLL("libc.so.6")
    if os.environ.get("BENCH_MMAP_THRESHOLD"):
        _libc.mallopt(-3, int(os.environ["BENCH_MMAP_THRESHOLD"]))  # M_MMAP_THRESHOLD
    if os.environ.get("BENCH_MALLOC_TRIM"):
        _every(float(os.environ["BENCH_MALLOC_TRIM"]), lambda: _libc.malloc_trim(0))
    if os.environ.get("BENCH_GC_STATS"):
        _gc_stats(os.environ["BENCH_GC_STATS"])
    if os.environ.get("BENCH_TRACEMALLOC"):
        _tracemalloc(float(os.environ["BENCH_TRACEMALLOC"]))
