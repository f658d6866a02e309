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
BENCH_MEMORY=FILE       every 2 s, append "unix-time RSS (peak), malloc: in use, free in the
                        heap, mmapped" (glibc's mallinfo2: live blocks against what malloc
                        keeps freed, i.e. fragmentation)
BENCH_PYMALLOC=S        every S seconds, the summary of sys._debugmallocstats() (CPython's small-
                        object allocator: arenas held, bytes in live blocks, bytes free in
                        them) appended to /tmp/bench-pymalloc.txt with VmRSS
BENCH_TYPES=S           every S seconds, the 40 types with the most bytes among the objects the
                        cyclic collector tracks (count, sys.getsizeof sum, by module.type),
                        into /tmp/bench-types-N.txt
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


def _memory_status() -> str:
    """VmRSS and VmHWM of this process, as /proc/self/status has them."""
    try:
        with open("/proc/self/status") as status:
            fields = dict(line.split(":", 1) for line in status if line.startswith("Vm"))
    except OSError:
        return "no /proc"
    return (f"RSS {fields['VmRSS'].strip()} (peak {fields['VmHWM'].strip()}), "
            f"{_malloc_status()}")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _malloc_status() -> str:
    """glibc's view of the heap: in use, free (kept by malloc) and mmapped, in MiB."""
    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return "no mallinfo2"
    mallinfo2.restype = _Mallinfo2
    info = mallinfo2()
    mib = 2**20
    return (f"malloc: in use {info.uordblks / mib:.1f} MiB, free in the heap "
            f"{info.fordblks / mib:.1f} MiB, mmapped {info.hblkhd / mib:.1f} MiB")


_PYMALLOC_LINES = (b"# arenas allocated current", b"# arenas highwater mark",
                   b"# bytes in allocated blocks", b"# bytes in available blocks",
                   b"unused pools", b"# bytes lost to")


def _pymalloc(seconds: float) -> None:
    import sys
    import tempfile

    def dump() -> None:
        # _debugmallocstats writes to the C stderr: point fd 2 at a file for the moment.
        with tempfile.TemporaryFile() as capture:
            saved = os.dup(2)
            try:
                os.dup2(capture.fileno(), 2)
                sys._debugmallocstats()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            capture.seek(0)
            lines = [line.strip().decode() for line in capture
                     if line.lstrip().startswith(_PYMALLOC_LINES)]
        with open("/tmp/bench-pymalloc.txt", "a") as out:
            out.write(f"at {time.time():.0f}: {_memory_status()}\n")
            out.writelines(f"    {line}\n" for line in lines)

    _every(seconds, dump)


def _types(seconds: float) -> None:
    import collections
    import gc
    import sys

    state = {"n": 0}

    def dump() -> None:
        state["n"] += 1
        counts: collections.Counter[str] = collections.Counter()
        sizes: collections.Counter[str] = collections.Counter()
        for obj in gc.get_objects():
            kind = type(obj)
            name = f"{kind.__module__}.{kind.__qualname__}"
            counts[name] += 1
            sizes[name] += sys.getsizeof(obj)
        lines = [f"at {time.time():.0f}: {_memory_status()}"]
        lines.extend(f"{size / 2**20:8.2f} MiB {counts[name]:9d}  {name}"
                     for name, size in sizes.most_common(40))
        with open(f"/tmp/bench-types-{state['n'] % 3}.txt", "w") as out:
            out.write("\n".join(lines) + "\n")

    _every(seconds, dump)


def _tracemalloc(seconds: float) -> None:
    import tracemalloc

    tracemalloc.start(12)
    state = {"n": 0}

    def dump() -> None:
        state["n"] += 1
        snapshot = tracemalloc.take_snapshot()
        traced, traced_peak = tracemalloc.get_traced_memory()
        lines = [f"at {time.time():.0f}: traced {traced / 2**20:.1f} MiB (peak "
                 f"{traced_peak / 2**20:.1f}), {_memory_status()}"]
        for key in ("filename", "lineno", "traceback"):
            lines.append(f"--- by {key}")
            for stat in snapshot.statistics(key)[:30]:
                lines.append(f"{stat.size / 2**20:8.2f} MiB {stat.count:8d}")
                # file:line only (format() would read every source file into linecache,
                # whose lines then count in the next snapshot)
                lines.extend(f"      {frame.filename}:{frame.lineno}"
                             for frame in list(stat.traceback)[::-1][:12])
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
    if os.environ.get("BENCH_MEMORY"):
        _memory_path = os.environ["BENCH_MEMORY"]

        def _append_memory() -> None:
            with open(_memory_path, "a") as out:
                out.write(f"{time.time():.0f} {_memory_status()}\n")

        _every(2.0, _append_memory)
    if os.environ.get("BENCH_PYMALLOC"):
        _pymalloc(float(os.environ["BENCH_PYMALLOC"]))
    if os.environ.get("BENCH_TYPES"):
        _types(float(os.environ["BENCH_TYPES"]))
    if os.environ.get("BENCH_TRACEMALLOC"):
        _tracemalloc(float(os.environ["BENCH_TRACEMALLOC"]))
