"""What the benches read from /proc: a process's CPU and memory, the load average over a run
(sampled), and CPU affinity for giving the controller a core to itself.

Linux only. Used by run_canaries.py; no psutil needed.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import threading
import time
from dataclasses import dataclass, field

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    user: float
    system: float
    hwm_kib: int
    rss_kib: int

    @property
    def cpu(self) -> float:
        return self.user + self.system


def proc_sample(pid: int | str) -> ProcSample:
    """CPU seconds and memory of a process from /proc."""
    stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "; comm may hold spaces
    user, system = int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK
    memory: dict[str, int] = {}
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            memory[key] = int(value.split()[0])
    return ProcSample(user, system, memory.get("VmHWM", 0), memory.get("VmRSS", 0))


def run_queue_wait(pid: int | str) -> float:
    """Seconds the process's main thread has spent runnable but waiting for a CPU
    (/proc/PID/schedstat, second field; 0.0 where the kernel keeps no schedstats)."""
    try:
        fields = pathlib.Path(f"/proc/{pid}/schedstat").read_text().split()
        return int(fields[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def load_average() -> float:
    """The one-minute load average."""
    return float(pathlib.Path("/proc/loadavg").read_text().split()[0])


def pin(pid: int | str, cpus: set[int]) -> None:
    """Every thread of a process onto `cpus` (threads made later inherit their maker's)."""
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):  # the thread ended meanwhile
            os.sched_setaffinity(int(task.name), cpus)


def split_cpus(controller_cpu: int) -> tuple[set[int], set[int]]:
    """(the controller's CPU, every other CPU this process may use) for --controller-cpu."""
    allowed = os.sched_getaffinity(0)
    if controller_cpu not in allowed or len(allowed) < 2:
        raise ValueError(f"CPU {controller_cpu} is not one of {sorted(allowed)}, or there is "
                         "no other CPU left for the sandbox")
    return {controller_cpu}, allowed - {controller_cpu}


@dataclass
class Sampler:
    """Samples a process's RSS and the load average every `interval` seconds on a thread, so
    that a run can say where its memory peak came and how busy the machine was."""

    pid: int
    interval: float = 0.5
    # (t, rss KiB, one-minute load, CPU seconds of the process so far)
    points: list[tuple[float, int, float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sample = proc_sample(self.pid)
            except (FileNotFoundError, ProcessLookupError):
                return
            self.points.append((time.time(), sample.rss_kib, load_average(), sample.cpu))
            self._stop.wait(self.interval)

    def load_range(self, start: float, end: float) -> tuple[float, float]:
        loads = [load for t, _, load, _ in self.points if start <= t <= end] or [load_average()]
        return min(loads), max(loads)

    def rss_at(self, when: float) -> float:
        """RSS (MiB) at the last sample before `when`."""
        before = [rss for t, rss, _, _ in self.points if t <= when]
        return (before[-1] if before else 0) / 1024

    def peak(self) -> tuple[float, float]:
        """(the largest RSS sampled, MiB; when, as a time.time() stamp)."""
        if not self.points:
            return 0.0, 0.0
        t, rss, _, _ = max(self.points, key=lambda point: point[1])
        return rss / 1024, t

    def busiest(self, start: float, end: float, window: float = 5.0) -> float:
        """The largest share of one CPU the process used over any `window` seconds between
        `start` and `end` (1.0: a whole core): whether it was CPU-bound in a burst."""
        points = [(t, cpu) for t, _, _, cpu in self.points if start <= t <= end]
        best = 0.0
        for i, (t0, cpu0) in enumerate(points):
            for t1, cpu1 in points[i + 1:]:
                if t1 - t0 >= window:
                    best = max(best, (cpu1 - cpu0) / (t1 - t0))
                    break
        return best
